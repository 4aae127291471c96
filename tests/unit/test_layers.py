"""
The tree reads as the architecture (C{docs/architecture.rst}): imports
point down the layers, and down the rooms inside C{core/}, C{web/} and
C{storage/};
nothing imports the composition root, C{core/} is
pure, start-up errors are one type turned into an exit in the entry points
only, and the composition finds no capability by probing attributes; and the
test modules are leaves, sharing fixtures through the harness modules only.
Checked by reading the source, so a new module that breaks a rule fails here.
"""

import ast
import os

from twisted.trial.unittest import SynchronousTestCase

from tests import CHECKOUT
from tests.harness.source_trees import SOURCE, nodes, source_modules

#: Each package of pypid by its layer: a module may import its own package
#: and those of lower layers only.
LAYERS = {
    "core": 0,
    "config": 1,
    "assets": 2,
    "sandbox": 2,
    "jobs": 2,
    "http": 2,
    "machine": 2,
    "storage": 3,
    "auth": 4,
    "upstream": 4,
    "advisories": 4,
    "webhooks": 4,
    "state": 5,
    "tls": 5,
    "web": 6,
    "export": 7,
    "bundle": 7,
    "daemon": 8,
    "cli": 9,
    "tap": 10,
}

#: Imports across the layers kept on purpose, each with its reason:
#: C{(importing package, imported module)}. None today.
ALLOWED: set[tuple[str, str]] = set()


def modules():
    """C{(module name, path, syntax tree)} of every module of pypid, parsed once a process."""
    return tuple((module.dotted, module.path, module.tree) for module in source_modules())


def imported(tree):
    """The absolute names of the modules a syntax tree imports."""
    for node in nodes(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def package_of(module):
    """The package (layer) of a module of pypid: C{pypid.web.app} -> C{web}."""
    return module.split(".")[1]


class LayerTests(SynchronousTestCase):
    """The imports between pypid's packages."""

    def test_every_package_has_a_layer(self):
        """Every package and top-level module is placed in a layer."""
        found = {package_of(module) for module, _, _ in modules() if module != "pypid"}
        self.assertEqual(found - set(LAYERS), set())

    def test_imports_point_down(self):
        """A module imports its own package and lower layers only (and the listed exceptions)."""
        wrong = []
        for module, _, tree in modules():
            if module == "pypid":
                continue
            mine = package_of(module)
            for name in imported(tree):
                if not name.startswith("pypid."):
                    continue
                theirs = package_of(name)
                if theirs != mine and LAYERS[theirs] >= LAYERS[mine] \
                        and (mine, name) not in ALLOWED:
                    wrong.append(f"{module} imports {name}")
        self.assertEqual(wrong, [])

    def test_composition_root_not_imported(self):
        """Only the dropin, pypid.tac and the tests import pypid.tap."""
        wrong = [module for module, _, tree in modules()
                 if any(name == "pypid.tap" or name.startswith("pypid.tap.")
                        for name in imported(tree))]
        self.assertEqual(wrong, [])

    def test_core_is_pure(self):
        """C{core/} imports no other package of pypid and nothing of Twisted's I/O."""
        io = ("twisted.internet", "twisted.web", "twisted.application", "socket", "treq")
        wrong = []
        for module, _, tree in modules():
            if not module.startswith("pypid.core"):
                continue
            for name in imported(tree):
                if (name.startswith("pypid.") and not name.startswith("pypid.core")) \
                        or name.startswith(io):
                    wrong.append(f"{module} imports {name}")
        self.assertEqual(wrong, [])


    def test_one_reader(self):
        """
        Only L{pypid.auth.reader} decides what an identity may do: no other
        module asks the access model's rules (a call of one of
        L{pypid.auth.policy.AccessModel}'s rule methods), whether a name is
        a trusted publisher's (C{is_publisher}, C{PUBLISHER_PREFIX}), whose
        a token is (C{belongs}), what a token's scope or actions let it do
        (C{covers}, C{in token.actions}, C{in token.indexes},
        C{in token.projects}), or whether the identity acts by a
        token (C{identity.token is None}, or its truth); each asks a
        request's or an identity's reader, so who may do what has one
        answer. The modules that define what is asked are the exceptions,
        each for its own.
        """
        wrong = []
        for module, _, tree in modules():
            wrong += [f"{module}:{line} {what}" for line, what, definers in decisions(tree)
                      if module != "pypid.auth.reader" and module not in definers]
        self.assertEqual(wrong, [])

    def test_readers_made_by_the_gates(self):
        """
        Only the gates (L{pypid.web.identity.gates}) make a request's reader,
        once, and keep it on the request: no other module makes rules or
        readers (C{Rules(...)}, C{Reader(...)}, C{rules.reader(identity)}),
        and the routes ask C{Gates.reader(request)}.
        """
        wrong = []
        for module, _, tree in modules():
            if module not in ("pypid.auth.reader", "pypid.web.identity.gates"):
                wrong += [f"{module}:{line} {what}" for line, what in readers_made(tree)]
        self.assertEqual(wrong, [])

    def test_every_decision_found(self):
        """
        The checks see each way of deciding who may do what outside the
        reader, and of making a reader, and let through what only reads
        the identity (its name shown, its token's id recorded), the
        request's reader asked, and the indexes and projects of what is not
        a token (a configuration's, an entry's).
        """
        source = (
            "def route(request, identity, model, book, token, access, rules):\n"
            "    model.may_write(identity.name, 'six')\n"
            "    is_publisher(identity.name)\n"
            "    identity.name.startswith(PUBLISHER_PREFIX)\n"
            "    book.belongs(token, identity.name, identity.login)\n"
            "    token.covers('upload', 'six', 'default')\n"
            "    'upload' in identity.token.actions\n"
            "    identity.token is None\n"
            "    if identity.token:\n"
            "        pass\n"
            "    not identity.token\n"
            "    Rules(model)\n"
            "    Reader(rules, identity)\n"
            "    rules.reader(identity)\n"
            "    access.reader_of(identity)\n"
            "    access.reader(request).writes('six', 'default')\n"
            "    rule.covers('six')\n"
            "    shown = identity.name\n"
            "    recorded = identity.token.id\n"
            "    'six' in identity.token.indexes\n"
            "    'six' not in token.projects\n"
            "    'six' in config.indexes\n"
            "    'six' in entry.projects\n"
        )
        tree = ast.parse(source)
        self.assertEqual([(line, what) for line, what, _ in sorted(decisions(tree))], [
            (2, "calls may_write"), (3, "calls is_publisher"),
            (4, "tests a name for PUBLISHER_PREFIX"), (5, "calls belongs"),
            (6, "asks a token's covers"), (7, "reads a token's actions"),
            (8, "tests identity.token"), (9, "tests identity.token"),
            (11, "tests identity.token"), (20, "reads a token's indexes"),
            (21, "reads a token's projects")])
        self.assertEqual(sorted(readers_made(tree)), [
            (12, "makes a Rules"), (13, "makes a Reader"), (14, "makes a reader"),
            (15, "makes a reader")])

    def test_one_periodic_loop(self):
        """
        Periodic work runs in L{pypid.jobs.periodic.Periodic} alone: no other
        module writes a loop of its own with C{LoopingCall} or C{TimerService}.
        """
        wrong = []
        for module, _, tree in modules():
            if module.startswith("pypid.jobs"):
                continue
            for node in nodes(tree):
                if isinstance(node, ast.ImportFrom) and node.module in (
                        "twisted.internet.task", "twisted.application.internet"):
                    wrong += [f"{module} imports {alias.name}" for alias in node.names
                              if alias.name in ("LoopingCall", "TimerService")]
        self.assertEqual(wrong, [])


def _access_rules():
    """The names of L{pypid.auth.policy.AccessModel}'s rule methods."""
    import inspect

    from pypid.auth.policy import AccessModel
    return {name for name, member in inspect.getmembers(AccessModel, inspect.isfunction)
            if not name.startswith("_")}


def _token_scope(node):
    """
    Whether a syntax node reads what a token lets it do: any C{.actions},
    or the C{.indexes} or C{.projects} of what is named a token
    (C{token.indexes}, C{identity.token.projects}); an index's or a
    configuration's C{.indexes} and C{.projects} are not a token's.
    """
    if not isinstance(node, ast.Attribute):
        return False
    if node.attr == "actions":
        return True
    owner = node.value
    named = owner.id if isinstance(owner, ast.Name) else \
        owner.attr if isinstance(owner, ast.Attribute) else ""
    return node.attr in ("indexes", "projects") and named.lower().endswith("token")


def decisions(tree):
    """
    C{(line, what, definers)} of each question of who may do what a
    syntax tree asks (L{LayerTests.test_one_reader}), with the modules
    that define what it asks.
    """
    rules = _access_rules()
    assert "may_enter" in rules
    tokens, policy = "pypid.auth.tokens", "pypid.auth.policy"
    publishers = "pypid.auth.publisher_tokens"
    for node in nodes(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if isinstance(func, ast.Attribute) and name in rules:
                yield node.lineno, f"calls {name}", (policy,)
            elif name == "is_publisher":
                yield node.lineno, "calls is_publisher", (publishers,)
            elif name == "startswith" and any(
                    isinstance(arg, ast.Name) and arg.id == "PUBLISHER_PREFIX"
                    for arg in node.args):
                yield node.lineno, "tests a name for PUBLISHER_PREFIX", (publishers,)
            elif name == "belongs":
                yield node.lineno, "calls belongs", (tokens,)
            elif name == "covers" and node.args and isinstance(node.args[0], ast.Constant) \
                    and node.args[0].value in ("read", "upload"):
                yield node.lineno, "asks a token's covers", (tokens,)
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            read = [side.attr for side in sides if _token_scope(side)]
            if any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops) and read:
                yield node.lineno, f"reads a token's {read[0]}", (tokens,)
            elif isinstance(node.left, ast.Attribute) and node.left.attr == "token" \
                    and any(isinstance(op, (ast.Is, ast.IsNot)) for op in node.ops):
                # (whether the credentials are checked again is who is asking's)
                yield node.lineno, "tests identity.token", (
                    "pypid.web.identity.identification",)
        # (a token's truth, as a condition: C{if identity.token}, C{not identity.token})
        tested = (node.test if isinstance(node, (ast.If, ast.IfExp, ast.While, ast.Assert))
                  else node.operand if isinstance(node, ast.UnaryOp)
                  and isinstance(node.op, ast.Not) else None)
        if isinstance(tested, ast.Attribute) and tested.attr == "token":
            yield node.lineno, "tests identity.token", ()


def readers_made(tree):
    """
    C{(line, what)} of each reader or rules a syntax tree makes
    (L{LayerTests.test_readers_made_by_the_gates}): every C{reader} or
    C{reader_of} call but C{reader(request)}.
    """
    for node in nodes(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in ("Rules", "Reader"):
            yield node.lineno, f"makes a {func.id}"
        elif isinstance(func, ast.Attribute) and func.attr in ("reader", "reader_of") \
                and not (len(node.args) == 1 and isinstance(node.args[0], ast.Name)
                         and node.args[0].id == "request"):
            yield node.lineno, "makes a reader"


#: The rooms (sub-packages) of the packages that have them, bottom to top: a
#: module of a room may import its own room and the rooms below it. A module
#: directly in the package (C{pypid.web.app}) is the package's top, its
#: composition: it may import every room, and no room imports it. A tuple
#: is a level of peers (each cloud's adapter): each stands above the rooms
#: before it, and none imports another of its level.
ROOMS = {
    "core": ("util", "dists", "security", "indexes", "access", "records", "formats"),
    "web": ("identity", "server", "changes", "serving", "admin", "pages"),
    "storage": ("base", "folder", "bucket", ("s3", "azure", "gcs")),
}

#: Where a module directly in a package with rooms stands: above every room.
TOP = "(top)"


def rooms_of(package):
    """The names of the rooms of a package of L{ROOMS}, peers one by one."""
    return [room for level in ROOMS[package]
            for room in (level if isinstance(level, tuple) else (level,))]


def level_of(package, room):
    """The place of a room among its package's (peers share one), or L{None} for no room of it."""
    for place, level in enumerate(ROOMS[package]):
        if room == level or (isinstance(level, tuple) and room in level):
            return place
    return None


def room_of(module):
    """
    The room of a module of a package with rooms (C{pypid.core.indexes.index}
    -> C{indexes}), L{TOP} for a module directly in the package, or L{None}
    for the package itself and a module of another package. A room missing
    from L{ROOMS} is its folder's name all the same.
    """
    parts = module.split(".")
    if len(parts) < 3 or parts[0] != "pypid" or parts[1] not in ROOMS:
        return None
    if len(parts) == 3 and parts[2] not in rooms_of(parts[1]) \
            and not os.path.isdir(os.path.join(SOURCE, *parts)):
        return TOP
    return parts[2]


def imported_modules(module, tree, is_package=False):
    """
    The absolute names of what a syntax tree imports, anywhere in it (at
    the top, in a function, under C{TYPE_CHECKING}): relative imports made
    absolute, and C{from package import name} as C{package.name}.
    """
    package = module if is_package else module.rpartition(".")[0]
    for node in nodes(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                source = base + (f".{node.module}" if node.module else "")
            else:
                source = node.module or ""
            yield from (f"{source}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def upward_imports(module, tree, is_package=False):
    """
    What a module imports from a room above its own, or from its package's
    top, in its own package: C{"module imports name"} lines.
    """
    mine = room_of(module)
    if mine is None or mine == TOP:
        return []
    package = module.split(".")[1]
    wrong = []
    for name in imported_modules(module, tree, is_package):
        theirs = room_of(name)
        if theirs is None or theirs == mine or name.split(".")[1] != package:
            continue
        mine_at, theirs_at = level_of(package, mine), level_of(package, theirs)
        # (another room of the same level is a peer's: not below)
        if mine_at is None or theirs_at is None or theirs_at >= mine_at:
            wrong.append(f"{module} imports {name}")
    return wrong


class RoomTests(SynchronousTestCase):
    """The imports between the rooms of C{core/}, C{web/} and C{storage/}: down only."""

    def test_every_room_in_table(self):
        """Every sub-package of a package with rooms is a room of L{ROOMS}, and every room is one."""
        found = {package: set() for package in ROOMS}
        for module, _, _ in modules():
            room = room_of(module)
            if room not in (None, TOP):
                found[module.split(".")[1]].add(room)
        self.assertEqual(found, {package: set(rooms_of(package)) for package in ROOMS})

    def test_rooms_import_down(self):
        """A module of a room imports its own room and the rooms below it only: no exceptions."""
        wrong = []
        for module, path, tree in modules():
            wrong += upward_imports(module, tree, path.endswith("__init__.py"))
        self.assertEqual(wrong, [])

    def test_every_form_of_import_checked(self):
        """
        The check sees an import upward in each form (relative, lazy, for
        types only, of a room as a name) and from an unknown room or the
        top, and lets down and sideways imports through.
        """
        source = (
            "from typing import TYPE_CHECKING\n"
            "from pypid.core.util.lru import ByteLRU\n"
            "from pypid.core.indexes.index import Index\n"
            "from . import names\n"
            "from pypid.core import formats\n"
            "from ..records import metrics\n"
            "import pypid.core.security.osv\n"
            "import pypid.core.attic.old\n"
            "from pypid.core.parts import IMetricsSource\n"
            "from pypid.web.app import PypidApp\n"
            "if TYPE_CHECKING:\n"
            "    from pypid.core.access.shares import Share\n"
            "def later():\n"
            "    from pypid.core.formats.pages import frame\n"
        )
        self.assertEqual(upward_imports("pypid.core.security.advisories", ast.parse(source)), [
            "pypid.core.security.advisories imports pypid.core.indexes.index.Index",
            "pypid.core.security.advisories imports pypid.core.formats",
            "pypid.core.security.advisories imports pypid.core.records.metrics",
            "pypid.core.security.advisories imports pypid.core.attic.old",
            "pypid.core.security.advisories imports pypid.core.parts.IMetricsSource",
            "pypid.core.security.advisories imports pypid.core.access.shares.Share",
            "pypid.core.security.advisories imports pypid.core.formats.pages.frame",
        ])
        self.assertEqual(upward_imports("pypid.web.app", ast.parse(source)), [])

    def test_peers_checked(self):
        """
        A room of a level of peers (a cloud's) imports the rooms below its
        level, and neither a peer nor the package's top.
        """
        source = (
            "from pypid.storage.base.interface import StorageError\n"
            "from pypid.storage.folder.local import LocalStorage\n"
            "from pypid.storage.bucket.store import ObjectStore\n"
            "from pypid.storage.s3.sign import sign\n"
            "from pypid.storage.gcs.gcs_auth import GCSCredentials\n"
            "from pypid.storage import cloud_clients\n"
        )
        self.assertEqual(upward_imports("pypid.storage.azure.blob_calls", ast.parse(source)), [
            "pypid.storage.azure.blob_calls imports pypid.storage.s3.sign.sign",
            "pypid.storage.azure.blob_calls imports pypid.storage.gcs.gcs_auth.GCSCredentials",
            "pypid.storage.azure.blob_calls imports pypid.storage.cloud_clients",
        ])
        self.assertEqual(upward_imports("pypid.storage.s3.api", ast.parse(source)), [
            "pypid.storage.s3.api imports pypid.storage.gcs.gcs_auth.GCSCredentials",
            "pypid.storage.s3.api imports pypid.storage.cloud_clients",
        ])
        self.assertEqual(upward_imports("pypid.storage.bucket.storage", ast.parse(source)), [
            "pypid.storage.bucket.storage imports pypid.storage.s3.sign.sign",
            "pypid.storage.bucket.storage imports pypid.storage.gcs.gcs_auth.GCSCredentials",
            "pypid.storage.bucket.storage imports pypid.storage.cloud_clients",
        ])

    def test_room_of(self):
        """A module's room, its package's top, or none."""
        self.assertEqual([room_of(name) for name in (
            "pypid.core.indexes.index", "pypid.core.indexes", "pypid.core.parts", "pypid.core",
            "pypid.web.app", "pypid.web.pages", "pypid.auth.tokens", "pypid.core.attic.old",
            "pypid.storage.base.journal", "pypid.storage.s3.api", "pypid.storage.factory",
            "pypid.storage")],
            ["indexes", "indexes", TOP, None, TOP, "pages", None, "attic",
             "base", "s3", TOP, None])


#: The modules that hold the machine's ring itself: its own, the hub over
#: it (L{pypid.machine.topics}), and the supervisor's, which makes it and
#: hands it to the workers. Every other module tells and hears through a hub.
RING_HOLDERS = {"pypid.machine.ring", "pypid.machine.topics", "pypid.daemon.machine",
                "pypid.daemon.lean"}


def ring_uses(module, tree):
    """
    C{(line, what)} of each use of the ring itself in a module that is not
    one of L{RING_HOLDERS}: the name C{ChangeRing}, and an announcement
    made on a ring (C{ring.announce(...)}) outside C{pypid.machine}.
    """
    for node in nodes(tree):
        if module not in RING_HOLDERS and (
                (isinstance(node, ast.alias) and node.name.split(".")[-1] == "ChangeRing")
                or (isinstance(node, ast.Name) and node.id == "ChangeRing")
                or (isinstance(node, ast.Attribute) and node.attr == "ChangeRing")):
            yield getattr(node, "lineno", 0), "ChangeRing"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr == "announce" and not module.startswith("pypid.machine."):
            receiver = node.func.value
            name = receiver.attr if isinstance(receiver, ast.Attribute) else getattr(
                receiver, "id", "")
            if "ring" in name.lower():
                yield node.lineno, "announce"


class RingTests(SynchronousTestCase):
    """What the workers share goes through a hub: one table of topics, one reader."""

    def test_hub_only(self):
        """No module but the ring's holders names C{ChangeRing}, none announces on a ring."""
        wrong = [f"{path}:{line} {what}" for module, path, tree in modules()
                 for line, what in ring_uses(module, tree)]
        self.assertEqual(wrong, [])

    def test_uses_found(self):
        """The check finds each form of a use of the ring, and lets a hub and a feed be."""
        sample = ast.parse(
            "from pypid.machine.ring import ChangeRing\n"
            "import pypid.machine.ring\n"
            "x = pypid.machine.ring.ChangeRing\n"
            "self._ring.announce(b'j')\n"
            "worker.ring.announce(b'w 1')\n"
            "hub.publish(Topic.JOURNAL)\n"
            "self._feed.announce('a.whl')\n")
        self.assertEqual(sorted(ring_uses("pypid.web.sample", sample)),
                         [(1, "ChangeRing"), (3, "ChangeRing"), (4, "announce"),
                          (5, "announce")])
        self.assertEqual(sorted(ring_uses("pypid.daemon.machine", sample)),
                         [(4, "announce"), (5, "announce")])
        self.assertEqual(list(ring_uses("pypid.machine.topics", sample)), [])


class EntryPointTests(SynchronousTestCase):
    """Start-up errors become an exit in the entry points only."""

    def test_system_exit_only_in_entry_points(self):
        """C{raise SystemExit} is in C{pypid.tap} and in the tools' C{main} functions only."""
        wrong = []
        for module, path, tree in modules():
            for function, node in _raises(tree):
                if not _raises_system_exit(node):
                    continue
                if module == "pypid.tap" or (module.startswith("pypid.cli.")
                                             and function == "main"):
                    continue
                wrong.append(f"{path}:{node.lineno} (in {function})")
        self.assertEqual(wrong, [])


class CompositionTests(SynchronousTestCase):
    """The composition declares what parts offer; it does not probe for it."""

    def test_no_probing(self):
        """The composition root and the container call no C{hasattr}, and no C{getattr} with a default."""
        wrong = []
        for module, path, tree in modules():
            if module != "pypid.tap" and not module.startswith("pypid.daemon"):
                continue
            for node in nodes(tree):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and (
                        node.func.id == "hasattr"
                        or (node.func.id == "getattr" and len(node.args) == 3)):
                    wrong.append(f"{path}:{node.lineno}")
        self.assertEqual(wrong, [])


def _raises(tree):
    """C{(name of the enclosing function, Raise node)} of every raise in a tree."""
    def visit(node, function):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield from visit(child, child.name)
            else:
                if isinstance(child, ast.Raise):
                    yield function, child
                yield from visit(child, function)
    yield from visit(tree, "<module>")


def _raises_system_exit(node):
    exception = node.exc
    if isinstance(exception, ast.Call):
        exception = exception.func
    return isinstance(exception, ast.Name) and exception.id == "SystemExit"


#: Basenames that every package may have, each with one meaning wherever it
#: appears: a package's factory (its parts and the objects the command-line
#: tools share with the daemon).
SHARED_BASENAMES = {"__init__.py", "factory.py"}


class NameTests(SynchronousTestCase):
    """One meaning per name: a feature spread over packages gets a distinct module in each."""

    def test_module_basenames_unique(self):
        """No two modules of pypid share a basename (but a package's C{factory.py})."""
        seen = {}
        for module, path, _ in modules():
            name = os.path.basename(path)
            if name not in SHARED_BASENAMES:
                seen.setdefault(name, []).append(module)
        self.assertEqual({name: found for name, found in seen.items() if len(found) > 1}, {})

    def test_class_names_unique(self):
        """No two classes of pypid share a name."""
        seen = {}
        for module, _, tree in modules():
            for node in nodes(tree):
                if isinstance(node, ast.ClassDef):
                    seen.setdefault(node.name, []).append(module)
        self.assertEqual({name: found for name, found in seen.items() if len(found) > 1}, {})


class PackagingTests(SynchronousTestCase):
    """Every package of the tree ships (setup.py lists them: find_packages would drop the dropin)."""

    def test_every_package_listed(self):
        """The packages setup.py lists are exactly the folders of src/pypid with an __init__.py."""
        with open(os.path.join(os.path.dirname(SOURCE), "setup.py"), encoding="utf-8") as f:
            tree = ast.parse(f.read())
        [listed] = [keyword.value for node in nodes(tree) if isinstance(node, ast.Call)
                    for keyword in node.keywords if keyword.arg == "packages"]
        listed = {element.value for element in listed.elts}
        found = {os.path.relpath(folder, SOURCE).replace(os.sep, ".")
                 for folder, _, files in os.walk(os.path.join(SOURCE, "pypid"))
                 if "__init__.py" in files}
        self.assertEqual(listed - {"twisted.plugins"}, found)


TESTS = os.path.join(CHECKOUT, "tests")


def _is_test_module(module):
    """Whether a dotted name under C{tests} is a test module (its last part C{test_*})."""
    return module.startswith("tests.") and module.rsplit(".", 1)[-1].startswith("test_")


def _statements(node):
    """
    Every statement in C{node}, in functions, classes and blocks too: an
    import is a statement, so the expressions, most of a tree, are not
    walked (each test file is parsed anew, not kept: see L{nodes}).
    """
    for field in ("body", "orelse", "finalbody", "handlers", "cases"):
        for child in getattr(node, field, ()):
            if isinstance(child, ast.stmt):
                yield child
            yield from _statements(child)


def test_modules_imported(tree, package="tests"):
    """
    The test modules (C{tests...test_*}) a syntax tree of a module of
    C{tests/} imports; C{package} is the module's own package, for relative
    imports.
    """
    for node in _statements(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = base + (f".{node.module}" if node.module else "")
            else:
                module = node.module or ""
            if _is_test_module(module):
                yield module
            elif module == "tests" or module.startswith("tests."):
                yield from (f"{module}.{alias.name}" for alias in node.names
                            if alias.name.startswith("test_"))
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if _is_test_module(alias.name))


class TestModuleTests(SynchronousTestCase):
    """
    Test modules are leaves: what several share is in a harness module
    (C{tests/harness/}: L{tests.harness.fakes}, L{tests.harness.e2e} ...). A
    test module imported by another is loaded twice over by trial's
    discovery and drags its own imports in, and a TestCase imported with it
    runs twice.
    """

    def test_no_module_imports_a_test_module(self):
        """No module of C{tests/} (test, harness or benchmark) imports a test module."""
        wrong = []
        for folder, _, files in os.walk(TESTS):
            package = os.path.relpath(folder, CHECKOUT).replace(os.sep, ".")
            for name in sorted(files):
                if name.endswith(".py"):
                    with open(os.path.join(folder, name), encoding="utf-8") as f:
                        tree = ast.parse(f.read())
                    wrong += [f"{package}.{name} imports {module}"
                              for module in test_modules_imported(tree, package)]
        self.assertEqual(wrong, [])

    def test_every_form_of_import_found(self):
        """The check sees a test module imported in each way Python allows, and nothing else."""
        source = (
            "from tests.unit.web.test_web import basic\n"
            "import tests.unit.auth.test_auth\n"
            "from tests.unit import test_tap, test_layers as layers\n"
            "from tests.harness import fakes\n"
            "from .test_index import make_record\n"
            "from . import test_views\n"
            "from ..core import test_pages\n"
            "def f():\n"
            "    from tests.unit.test_tls import loaded\n"
            "from tests.harness.web import basic\n"
            "from tests.harness.fakes import FAST\n"
        )
        self.assertEqual(list(test_modules_imported(ast.parse(source), "tests.unit.web")), [
            "tests.unit.web.test_web", "tests.unit.auth.test_auth", "tests.unit.test_tap",
            "tests.unit.test_layers", "tests.unit.web.test_index", "tests.unit.web.test_views",
            "tests.unit.core.test_pages", "tests.unit.test_tls"])
