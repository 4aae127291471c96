"""
Tests that C{docs/configuration.rst} documents exactly what the configuration
parser accepts.

The sections and keys come from the parser's own table (L{pypid.config.SCHEMA},
with which L{pypid.config.load_config} refuses unknown keys, and
L{pypid.config.FREE_SECTIONS}, the sections whose keys are names), never from
a list written here, so a key added to the parser without its documentation
fails these tests, naming the key.

The document's convention, which these tests read: each section has a
heading C{``[section]``: what it is} underlined with C{-}, and each key is a
definition-list term at the start of a line, C{``key``} (or several,
C{``a``, ``b``}), whose indented definition has a C{:Default:} field; the
C{Reference} section holds an C{ini} block of every key with its default.
"""

import configparser
import os
import re

from twisted.trial.unittest import SynchronousTestCase

from pypid.config import FREE_SECTIONS, NAMED_SECTIONS, SCHEMA, ConfigError, load_config
from tests import CHECKOUT

CONFIGURATION = os.path.join(CHECKOUT,
                             "docs", "configuration.rst")

_SECTION_HEADING = re.compile(r"^``\[([a-z0-9_]+(?::NAME)?)\]``: \S")
_KEY_TERM = re.compile(r"^``[a-z0-9_]+``(?:, ``[a-z0-9_]+``)*$")
_UNDERLINES = "=-~"


def _is_underline(line, title):
    """Whether C{line} underlines C{title} as a reStructuredText heading."""
    return (bool(line) and line[0] in _UNDERLINES and line == line[0] * len(line)
            and bool(title.strip()) and not title[0].isspace() and len(line) >= len(title))


def documented_keys(text):
    """
    Read the key reference of C{docs/configuration.rst}: C{{section: {key:
    definition}}} for every C{``[section]``: ...} heading, each key with the
    text of its definition (a term naming several keys gives each the same).
    """
    lines = text.splitlines()
    sections = {}
    current = None
    keys = []
    for number, line in enumerate(lines):
        following = lines[number + 1] if number + 1 < len(lines) else ""
        if _is_underline(following, line):
            if following[0] in "=-":
                match = _SECTION_HEADING.match(line)
                current = match.group(1) if match and following[0] == "-" else None
                if current is not None:
                    sections.setdefault(current, {})
            keys = []
            continue
        if current is None or not line or line[0].isspace():
            if keys and line.strip():
                for key in keys:
                    sections[current][key] += line.strip() + "\n"
            continue
        keys = []
        if _KEY_TERM.match(line) and following.startswith(" "):
            keys = re.findall(r"``([a-z0-9_]+)``", line)
            for key in keys:
                sections[current][key] = ""
    return sections


def reference_block(text):
    """The C{ini} block of the C{Reference} section, read by C{configparser}."""
    match = re.search(r"^Reference\n=+\n.*?^\.\. code-block:: ini\n\n((?:   [^\n]*\n|\n)+)", text,
                      re.MULTILINE | re.DOTALL)
    if match is None:
        raise AssertionError("docs/configuration.rst has no ini block under 'Reference'")
    block = "\n".join(line[3:] for line in match.group(1).splitlines())
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str
    parser.read_string(block, source="the Reference block of docs/configuration.rst")
    return parser


def undocumented(documented):
    """Every C{[section] key} the parser accepts that C{documented} lacks."""
    return [f"[{section}] {key}" for section, keys in SCHEMA.items() for key in keys
            if key not in documented.get(section, {})]


def _named_keys():
    """C{{"index:NAME": its keys, ...}}: the named sections, as the document heads them."""
    return {f"{prefix}NAME": keys for prefix, keys in NAMED_SECTIONS.items()}


def refused(documented):
    """Every C{[section]} or C{[section] key} in C{documented} that the parser refuses."""
    found = []
    accepted = {**SCHEMA, **_named_keys()}
    for section, keys in documented.items():
        if section not in accepted and section not in FREE_SECTIONS:
            found.append(f"[{section}]")
        else:
            found += [f"[{section}] {key}" for key in keys
                      if key not in accepted.get(section, {})]
    return found


def _read_configuration():
    with open(CONFIGURATION, encoding="utf-8") as f:
        return f.read()


class ConfigurationDocsTests(SynchronousTestCase):
    """C{docs/configuration.rst} against the parser's table of sections and keys."""

    def setUp(self):
        self.text = _read_configuration()
        self.documented = documented_keys(self.text)

    def test_every_accepted_key_documented(self):
        """Every key the parser accepts has a term under its section's heading."""
        missing = undocumented(self.documented)
        self.assertEqual(missing, [], "accepted by the configuration parser but not documented "
                         "in docs/configuration.rst (a ``key`` term under the "
                         "``[section]``: heading): " + ", ".join(missing))

    def test_every_section_documented(self):
        """Every section the parser accepts, free ones included, has its own heading."""
        missing = [f"[{section}]" for section in [*SCHEMA, *sorted(FREE_SECTIONS)]
                   if section not in self.documented]
        self.assertEqual(missing, [], "sections accepted by the configuration parser without "
                         "a ``[section]``: heading in docs/configuration.rst: "
                         + ", ".join(missing))

    def test_named_sections_documented(self):
        """[index:NAME]'s keys each have a term under its heading; [upstream:NAME] a heading."""
        named = _named_keys()
        self.assertEqual(sorted(set(named) - set(self.documented)), [],
                         "named sections without a ``[prefix:NAME]``: heading")
        missing = [f"[index:NAME] {key}" for key in named["index:NAME"]
                   if key not in self.documented["index:NAME"]]
        self.assertEqual(missing, [], "accepted by the configuration parser but not "
                         "documented in docs/configuration.rst: " + ", ".join(missing))
        wrong = [f"[index:NAME] {key}" for key, (default, _parse) in named["index:NAME"].items()
                 if default.strip() and f":Default: ``{default.strip()}``"
                 not in self.documented["index:NAME"][key]]
        self.assertEqual(wrong, [], "defaults in docs/configuration.rst that are not the "
                         "parser's: " + ", ".join(wrong))

    def test_nothing_documented_that_is_refused(self):
        """Every documented section and key is one the parser accepts."""
        unknown = refused(self.documented)
        self.assertEqual(unknown, [], "documented in docs/configuration.rst but refused by "
                         "the configuration parser: " + ", ".join(unknown))

    def test_defaults_documented(self):
        """Each key's C{:Default:} field gives the parser's default (or says empty or none)."""
        wrong = []
        for section, keys in SCHEMA.items():
            for key, (default, _parse) in keys.items():
                definition = self.documented.get(section, {}).get(key)
                if definition is None:
                    continue  # reported by test_every_accepted_key_documented
                found = re.search(r"^:Default: (.*)$", definition, re.MULTILINE)
                shown = found.group(1) if found else None
                if default.strip():
                    ok = shown is not None and shown.startswith(f"``{default.strip()}``")
                else:
                    ok = shown is not None and shown.startswith(("empty", "none"))
                if not ok:
                    wrong.append(f"[{section}] {key} (the parser's default: {default!r}; "
                                 f"documented: {shown!r})")
        self.assertEqual(wrong, [], "defaults in docs/configuration.rst that are not the "
                         "parser's: " + "; ".join(wrong))

    def test_reference_block(self):
        """The Reference block lists every section and every key, with the parser's defaults."""
        parser = reference_block(self.text)
        self.assertEqual(sorted(parser.sections()), sorted([*SCHEMA, *FREE_SECTIONS]))
        for section, keys in SCHEMA.items():
            shown = dict(parser.items(section))
            expected = {key: default.strip() for key, (default, _parse) in keys.items()}
            differences = [f"[{section}] {key} (the parser's: {expected.get(key)!r}; the "
                           f"block's: {shown.get(key)!r})"
                           for key in sorted(set(shown) | set(expected))
                           if shown.get(key) != expected.get(key)]
            self.assertEqual(differences, [], "the Reference block of docs/configuration.rst "
                             "differs from the parser's keys and defaults: "
                             + "; ".join(differences))
        for section in FREE_SECTIONS:
            self.assertEqual(parser.items(section), [],
                             f"[{section}] has no default entries")

    def test_unknown_key_and_section_messages(self):
        """The documented messages for an unknown key and section are the parser's own."""
        folder = self.mktemp()
        os.makedirs(folder)
        for text in ("[pypid]\nbogus = 1\n", "[foo]\n"):
            path = os.path.join(folder, "pypid.ini")
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            with self.assertRaises(ConfigError) as caught:
                load_config(path)
            message = str(caught.exception)
            self.assertTrue(message.startswith(path))
            line = "pypid: etc/pypid.ini" + message[len(path):]
            self.assertIn(line, [shown.strip() for shown in self.text.splitlines()],
                          "docs/configuration.rst does not show the parser's message")


#: What a key's C{:Allowed:} field offers as a value: C{such as ``X``}, C{or
#: ``X``}, C{e.g. ``X``}, C{for example ``X``}, C{default ``X``}, or C{``X``
#: to}/C{for}/C{means} (C{``0`` to read them at start-up only}).
_OFFERED = re.compile(r"(?:\bsuch as|\bor|\be\.g\.|\bfor example|\bdefault) ``([^`\s]+)``"
                      r"|``([^`\s]+)`` (?:to|for|means)\b")

#: Tokens those phrases catch that are not values of the key: a header's
#: name, a size's units.
_NOT_VALUES = {("pypid", "base_url"): {"Forwarded"}, ("pypid", "max_upload_size"): {"T", "iB"}}


def _generic(section):
    """The document's heading of a section: C{index:NAME} for C{index:release}."""
    prefix, colon, _name = section.partition(":")
    return f"{prefix}:NAME" if colon else section


def offered_values(documented):
    """
    C{[(section, key, value)]}: every value a key's C{:Allowed:} field
    offers (L{_OFFERED}), but another key's name, a C{[section]} and a bare
    scheme (C{https://}).
    """
    every_key = {key for keys in documented.values() for key in keys}
    found = []
    for section, keys in documented.items():
        for key, definition in keys.items():
            allowed = re.search(r"^:Allowed: (.*?)(?=^:|\Z)", definition, re.MULTILINE | re.DOTALL)
            if allowed is None:
                continue
            for such, leading in _OFFERED.findall(allowed.group(1).replace("\n", " ")):
                value = such or leading
                if (value.startswith("[") or value.endswith("://") or value in every_key
                        or value in _NOT_VALUES.get((section, key), ())):
                    continue
                found.append((section, key, value))
    return found


def example_values(text):
    """C{[(section, key, value)]}: every assignment of the document's C{ini} blocks."""
    found = []
    for block in re.findall(r"^\.\. code-block:: ini\n\n((?:   [^\n]*\n|\n)+)", text,
                            re.MULTILINE):
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        parser.optionxform = str
        parser.read_string("\n".join(line[3:] for line in block.splitlines()))
        found += [(section, key, value) for section in parser.sections()
                  for key, value in parser.items(section)]
    return found


def _refused_values(values):
    """Of C{values}, those the key's own parser refuses, each with its reason."""
    keys_of = {**SCHEMA, **_named_keys()}
    refused = []
    for section, key, value in values:
        keys = keys_of.get(_generic(section))
        if keys is None or key not in keys:
            if _generic(section) not in FREE_SECTIONS:
                refused.append(f"[{section}] {key}: not a key")
            continue
        try:
            keys[key][1](value)
        except ValueError as e:
            refused.append(f"[{section}] {key} = {value}: {e}")
    return refused


class ExampleValuesTests(SynchronousTestCase):
    """
    Every value C{docs/configuration.rst} shows or offers is one its key's
    parser accepts (issue 42: C{[advisories] refresh = 0} was offered and
    refused).
    """

    def setUp(self):
        self.text = _read_configuration()

    def test_ini_examples(self):
        """Every C{key = value} of the document's C{ini} blocks is accepted."""
        values = example_values(self.text)
        self.assertGreater(len(values), 100)
        self.assertEqual(_refused_values(values), [])

    def test_offered_values(self):
        """Every value a key's C{:Allowed:} field offers is accepted."""
        values = offered_values(documented_keys(self.text))
        self.assertGreater(len(values), 30)
        self.assertIn(("advisories", "refresh", "0"), values)
        self.assertEqual(_refused_values(values), [])

    def test_refusal_reported(self):
        """A value the parser refuses is named with its key and the parser's reason."""
        self.assertEqual(_refused_values([("advisories", "refresh", "10s"),
                                          ("pypid", "bogus", "1")]),
                         ["[advisories] refresh = 10s: expected a duration of at least 1m, "
                          "or 0 to read them only at start-up and at SIGHUP",
                          "[pypid] bogus: not a key"])


class DocumentedKeysTests(SynchronousTestCase):
    """L{documented_keys} reads the document's convention, and misses nothing it should see."""

    def test_reads_terms_and_definitions(self):
        """Terms under a section heading are keys; other headings and indented terms are not."""
        text = ("Reference\n=========\n\n"
                "``[pypid]``: the server\n-----------------------\n\n"
                "``listen``\n   Where.\n\n   :Default: ``tcp:1``\n\n"
                "``a``, ``b``\n   Both.\n\n   ``nested``\n      Not a key.\n\n"
                "``https:PORT``\n   Not a key either.\n\n"
                "Sub\n~~~\n\n``c``\n   Still [pypid].\n\n"
                "Elsewhere\n=========\n\n``d``\n   Outside any section.\n")
        documented = documented_keys(text)
        self.assertEqual(sorted(documented), ["pypid"])
        self.assertEqual(sorted(documented["pypid"]), ["a", "b", "c", "listen"])
        self.assertIn(":Default: ``tcp:1``", documented["pypid"]["listen"])

    def test_misspelt_key_is_named(self):
        """A key misspelt in the document is named both as missing and as refused."""
        text = _read_configuration().replace("\n``ca_bundle``\n", "\n``ca_bundlx``\n", 1)
        documented = documented_keys(text)
        self.assertEqual(undocumented(documented), ["[pypid] ca_bundle"])
        self.assertEqual(refused(documented), ["[pypid] ca_bundlx"])

    def test_missing_section_is_named(self):
        """A free section whose heading is gone is reported, and its keys are not needed."""
        text = _read_configuration().replace("``[groups]``: groups of users",
                                             "Groups of users", 1)
        self.assertNotIn("groups", documented_keys(text))
        self.assertEqual(undocumented(documented_keys(text)), [])


class ArchitectureNamesTests(SynchronousTestCase):
    """
    Every dotted name docs/architecture.rst gives in code markup (a module,
    a class, a method or a field, under C{pypid.} or written from its
    module's or class's own name) names something that exists: a name
    left behind by a change is a defect of the docs.
    """

    #: file names and other dotted words that are not Python names
    NOT_PYTHON = (".tac", ".py", ".rst", ".ini", ".json", ".gz", ".txt", ".cfg", ".yaml",
                  ".toml", ".conf", ".html", ".css", ".js", ".whl", ".metadata", ".zip",
                  ".tar")

    def test_dotted_names_resolve(self):
        import importlib
        import inspect
        import pkgutil

        import attrs

        import pypid
        path = os.path.join(CHECKOUT,
                            "docs", "architecture.rst")
        with open(path, encoding="utf-8") as f:
            text = f.read()
        names = sorted(set(re.findall(
            r"``([A-Za-z_][A-Za-z_0-9]*(?:\.[A-Za-z_][A-Za-z_0-9]*)+)``", text)))
        modules = {info.name: importlib.import_module(info.name)
                   for info in pkgutil.walk_packages(pypid.__path__, "pypid.")}
        by_tail, classes = {}, {}
        for name, module in modules.items():
            by_tail.setdefault(name.rsplit(".", 1)[1], []).append(module)
            for key, value in vars(module).items():
                is_interface = hasattr(value, "queryTaggedValue") and hasattr(value, "names")
                if ((inspect.isclass(value) or is_interface)
                        and getattr(value, "__module__", None) == name):
                    classes.setdefault(key, []).append(value)

        def has(obj, attr):
            if hasattr(obj, attr) or attr in getattr(obj, "__annotations__", {}):
                return True
            if inspect.isclass(obj) and attrs.has(obj):
                return any(attr in (f.name, f.alias) for f in attrs.fields(obj))
            if hasattr(obj, "queryTaggedValue") and hasattr(obj, "names"):
                return attr in obj.names(all=True)  # (a zope Interface's methods)
            init = getattr(obj, "__init__", None) if inspect.isclass(obj) else None
            try:
                return f"self.{attr} =" in inspect.getsource(init)
            except (OSError, TypeError):
                return False

        def walk(obj, rest):
            for part in rest:
                if not has(obj, part):
                    return False
                obj = getattr(obj, part, None)
                if obj is None:
                    return True
            return True

        def resolves(name):
            parts = name.split(".")
            for base in (["pypid", *parts], parts):
                for i in range(len(base), 0, -1):
                    try:
                        found = importlib.import_module(".".join(base[:i]))
                    except ImportError:
                        continue
                    if walk(found, base[i:]):
                        return True
                    break
            return (any(walk(m, parts[1:]) for m in by_tail.get(parts[0], ()))
                    or any(walk(c, parts[1:]) for c in classes.get(parts[0], ())))
        stale = [n for n in names if not n.endswith(self.NOT_PYTHON) and not resolves(n)]
        self.assertGreater(len(names), 200)
        self.assertEqual(stale, [])


class ExportOptionsDocsTests(SynchronousTestCase):
    """
    Every option of C{pypid-export} (its parser's own list) is a term of the
    option list under "Running it" in docs/export.rst.
    """

    def test_every_option_documented(self):
        from pypid.cli.export import _parser

        with open(os.path.join(CHECKOUT, "docs", "export.rst"), encoding="utf-8") as f:
            text = f.read()
        running = re.search(r"^Running it\n=+\n(.*?)^\S[^\n]*\n=+\n", text,
                            re.MULTILINE | re.DOTALL).group(1)
        terms = set()
        for line in running.splitlines():
            if line.startswith("``"):
                terms.update(word.split()[0] for word in re.findall(r"``(-[^`]+)``", line))
        options = {option for action in _parser()._actions for option in action.option_strings
                   if option not in ("-h", "--help", "-c")}
        self.assertEqual(sorted(options - terms), [])
