"""Tests of L{pypid.upstream.requirements}: what to pre-cache."""

from twisted.trial.unittest import SynchronousTestCase

from pypid.upstream.page_model import UpstreamFile
from pypid.upstream.requirements import (
    Pin,
    RequirementsError,
    parse_names,
    parse_pylock,
    parse_requirements,
    select,
)

SHA_A, SHA_B = "a" * 64, "b" * 64


def upstream(filename, version, sha256=SHA_A, yanked=None):
    """An upstream file of holy-grail."""
    return UpstreamFile(filename=filename, url="https://upstream.example/f/" + filename,
                        sha256=sha256, project="holy-grail", version=version,
                        packagetype="sdist" if filename.endswith(".tar.gz") else "bdist_wheel",
                        yanked=yanked)


class ParseRequirementsTests(SynchronousTestCase):
    """Requirements files."""

    def test_pins(self):
        """Exact pins, names alone, hashes, markers, comments and options."""
        text = (
            "# a comment\n"
            "--index-url https://upstream.example/simple/\n"
            "Holy_Grail==1.0.0 \\\n"
            "    --hash=sha256:" + SHA_A.upper() + " \\\n"
            "    --hash=md5:abc\n"
            "spam ; python_version >= '3'  # trailing comment\n"
            "eggs===2.0\n"
            "\n"
        )
        self.assertEqual(parse_requirements(text), [
            Pin("holy-grail", "1.0.0", frozenset([SHA_A])),
            Pin("spam"),
            Pin("eggs", "2.0"),
        ])

    def test_refused(self):
        """Ranges, URLs, includes and editables are refused with the line named."""
        for text, words in (("a>=1\n", "line 1: 'a>=1': pin an exact version"),
                            ("ok==1\nb @ https://upstream.example/b.whl\n", "line 2: a URL"),
                            ("-r other.txt\n", "line 1: -r cannot"),
                            ("-e .\n", "line 1: -e cannot"),
                            ("a==1.*\n", "line 1"),
                            ("not a requirement!\n", "line 1: not a requirement")):
            with self.assertRaises(RequirementsError) as caught:
                parse_requirements(text)
            self.assertIn(words, str(caught.exception))

    def test_names(self):
        """Plain names become pins of the latest version."""
        self.assertEqual(parse_names(["Holy.Grail", "spam"]),
                         [Pin("holy-grail"), Pin("spam")])
        self.assertRaises(RequirementsError, parse_names, ["not a name"])


class ParsePylockTests(SynchronousTestCase):
    """PEP 751 lock files."""

    def test_packages(self):
        """Every package's name, version and artifact hashes."""
        text = f"""
lock-version = "1.0"
[[packages]]
name = "Holy_Grail"
version = "1.0"
sdist = {{ url = "https://upstream.example/h.tar.gz", hashes = {{ sha256 = "{SHA_A}" }} }}
wheels = [{{ url = "https://upstream.example/h.whl", hashes = {{ sha256 = "{SHA_B}" }} }}]

[[packages]]
name = "spam"
"""
        self.assertEqual(parse_pylock(text), [
            Pin("holy-grail", "1.0", frozenset([SHA_A, SHA_B])),
            Pin("spam"),
        ])

    def test_refused(self):
        """Not TOML, no packages, or a package without a name: refused."""
        for text in ("not = [toml", "lock-version = '1.0'\n", "[[packages]]\nversion = '1'\n"):
            self.assertRaises(RequirementsError, parse_pylock, text)


class SelectTests(SynchronousTestCase):
    """Which upstream files a pin asks for."""

    files = [
        upstream("holy_grail-1.0-py3-none-any.whl", "1.0", SHA_A),
        upstream("holy_grail-1.0.tar.gz", "1.0", SHA_B),
        upstream("holy_grail-2.0-py3-none-any.whl", "2.0"),
        upstream("holy_grail-3.0-py3-none-any.whl", "3.0", yanked="broken"),
    ]

    def test_version(self):
        """A pinned version selects every file of it."""
        for pinned in ("1.0", "1.0.0"):
            chosen = select(Pin("holy-grail", pinned), self.files)
            self.assertEqual([f.filename for f in chosen],
                             ["holy_grail-1.0-py3-none-any.whl", "holy_grail-1.0.tar.gz"])

    def test_hashes(self):
        """Hashes narrow the files down."""
        chosen = select(Pin("holy-grail", "1.0", frozenset([SHA_B])), self.files)
        self.assertEqual([f.filename for f in chosen], ["holy_grail-1.0.tar.gz"])

    def test_latest(self):
        """Without a version, the latest version that is not yanked."""
        chosen = select(Pin("holy-grail"), self.files)
        self.assertEqual([f.filename for f in chosen], ["holy_grail-2.0-py3-none-any.whl"])

    def test_yanked_pin(self):
        """A pin of a yanked version still selects it (pip installs a pinned yank)."""
        chosen = select(Pin("holy-grail", "3.0"), self.files)
        self.assertEqual([f.filename for f in chosen], ["holy_grail-3.0-py3-none-any.whl"])

    def test_nothing(self):
        """No file of the version, or only yanked files: nothing."""
        self.assertEqual(select(Pin("holy-grail", "9.0"), self.files), ())
        self.assertEqual(select(Pin("holy-grail"), self.files[3:]), ())
