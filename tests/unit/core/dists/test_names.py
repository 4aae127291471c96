"""
Tests for L{pypid.core.dists.names}: PEP 503 normalisation, project name validity and
the parsing of wheel and sdist filenames, strict (uploads) and legacy
(existing package folders).
"""

from twisted.trial.unittest import SynchronousTestCase

from pypid.core.dists.names import (
    MAX_FILENAME_LENGTH,
    SDIST,
    WHEEL,
    InvalidName,
    ParsedFilename,
    canonical_version,
    check_filename_characters,
    distribution_key,
    filename_key,
    is_valid_name,
    normalize,
    parse_filename,
)


class NormalizeTests(SynchronousTestCase):
    """Tests for L{normalize}."""

    def test_separators_collapse(self):
        """Runs of C{-}, C{_} and C{.} become one dash and letters are lower-cased."""
        for name in ("Foo_Bar", "foo.bar", "FOO--bar", "foo-_.bar", "Foo.-_Bar"):
            self.assertEqual(normalize(name), "foo-bar", name)

    def test_already_normalized(self):
        """A normalized name is left as it is."""
        self.assertEqual(normalize("holy-grail2"), "holy-grail2")


class IsValidNameTests(SynchronousTestCase):
    """Tests for L{is_valid_name}."""

    def test_valid(self):
        """Letters, digits and inner separators make a valid name, in any case."""
        for name in ("a", "Z", "7", "foo", "Foo.Bar_baz-9", "a-b", "a..b"):
            self.assertTrue(is_valid_name(name), name)

    def test_invalid(self):
        """Empty names, leading or trailing separators and other characters are invalid."""
        for name in ("", "-foo", "foo-", ".foo", "foo_", "foo bar", "foo/bar", "föo", "foo+"):
            self.assertFalse(is_valid_name(name), name)

    def test_trailing_newline(self):
        """A trailing newline makes a name invalid (the spec's C{\\Z}, not C{$})."""
        self.assertFalse(is_valid_name("foo\n"))
        self.assertFalse(is_valid_name("a\n"))


class CanonicalVersionTests(SynchronousTestCase):
    """Tests for L{canonical_version}."""

    def test_normalizes(self):
        """A valid PEP 440 version is returned in its normalized spelling."""
        self.assertEqual(canonical_version("1.0-BETA.2"), "1.0b2")
        self.assertEqual(canonical_version("v2.0"), "2.0")

    def test_invalid(self):
        """An invalid version raises L{InvalidName} quoting it."""
        e = self.assertRaises(InvalidName, canonical_version, "not a version")
        self.assertIn("'not a version'", str(e))


class ParseWheelFilenameTests(SynchronousTestCase):
    """Tests for L{parse_filename} on wheels."""

    def test_simple(self):
        """A pure-Python wheel gives its normalized name, version and python tag."""
        self.assertEqual(
            parse_filename("Holy_Grail-1.0-py3-none-any.whl"),
            ParsedFilename("holy-grail", "1.0", WHEEL, "py3"),
        )

    def test_several_python_tags(self):
        """Compressed python tags are listed sorted and joined with dots."""
        parsed = parse_filename("foo-1.0-py3.py2-none-any.whl")
        self.assertEqual(parsed.pyversion, "py2.py3")
        parsed = parse_filename("foo-2.1-cp312.cp311-abi3-manylinux_2_17_x86_64.whl")
        self.assertEqual(parsed.pyversion, "cp311.cp312")

    def test_build_tag(self):
        """A build tag is accepted and does not change the version."""
        parsed = parse_filename("foo-1.0-1build-py3-none-any.whl")
        self.assertEqual(parsed, ParsedFilename("foo", "1.0", WHEEL, "py3"))

    def test_version_normalized(self):
        """The version in a wheel filename comes back normalized."""
        self.assertEqual(parse_filename("foo-1.0.0rc1-py3-none-any.whl").version, "1.0.0rc1")
        self.assertEqual(parse_filename("foo-01.0-py3-none-any.whl").version, "1.0")

    def test_invalid_wheel(self):
        """
        A wheel name without its tags, or with a bad part, is refused, the
        message saying what is wrong with which part, in words of its own:
        never the filename (the caller names it, whole), nor packaging's,
        which named it again without its C{.whl}.
        """
        for filename, why in (
                ("foo-1.0.whl", "a wheel's filename has 5 or 6 parts between dashes "
                                "(name-version[-build]-python-abi-platform.whl), not 2"),
                ("foo-1.0-py3-none.whl", "a wheel's filename has 5 or 6 parts between dashes "
                                         "(name-version[-build]-python-abi-platform.whl), not 4"),
                ("foo-notaversion!-py3-none-any.whl",
                 "its version 'notaversion!' is not a valid PEP 440 version"),
                ("bad name-1.1-py3-none-any.whl",
                 "its project name 'bad name' may hold only ASCII letters, digits and ._-"),
                ("foo_-1.0-py3-none-any.whl",
                 "its project name 'foo_' must start and end with a letter or a digit"),
                ("foo__bar-1.0-py3-none-any.whl",
                 "its project name 'foo__bar' is not escaped as a wheel's is "
                 "(each run of ._- becomes one _)")):
            e = self.assertRaises(InvalidName, parse_filename, filename)
            self.assertEqual(str(e), why)
            self.assertNotIn(filename.removesuffix(".whl"), str(e))

    def test_legacy_same(self):
        """Legacy mode parses wheels exactly as strict mode does."""
        filename = "foo-1.0-py2.py3-none-any.whl"
        self.assertEqual(parse_filename(filename, legacy=True), parse_filename(filename))


    def test_remembered_parts(self):
        """
        Names whose parts were seen in other names parse as they do the
        first time, and a valid part never makes an invalid name pass.
        """
        from pypid.core.dists import names

        filenames = [
            "Foo.Bar-1.0-py3-none-any.whl", "foo_bar-1.0-py3-none-any.whl",
            "foo_bar-2.0-py3-none-any.whl", "Foo.Bar-2.0-py3-none-any.whl",
            "baz-1.0-py3-none-any.whl", "baz-2.0-1b-py2.py3-none-any.whl",
            "foo_bar-2.0-1b-py2.py3-none-any.whl", "foo_bar-01.0-cp311-abi3-linux_x86_64.whl",
            "foo__bar-1.0-py3-none-any.whl", "foo bar-1.0-py3-none-any.whl",
            "baz-notaversion!-py3-none-any.whl", "baz-1.0-py3-none.whl",
            "baz-1.0-x-py3-none-any.whl", "baz-1.0-py3-none-any-extra.whl",
            "-1.0-py3-none-any.whl", "baz.whl", "baz-1.0-3py-none-any.whl",
            "baz-1.0-py3..py2-none-any.whl",
        ]

        def outcome(filename):
            try:
                return parse_filename(filename)
            except InvalidName as e:
                return str(e)

        fresh = {}
        for filename in filenames:
            names._wheel_projects.clear()
            names._wheel_rests.clear()
            fresh[filename] = outcome(filename)
        self.assertIsInstance(fresh["foo_bar-2.0-1b-py2.py3-none-any.whl"], ParsedFilename)
        self.assertIsInstance(fresh["foo__bar-1.0-py3-none-any.whl"], str)
        for order in (filenames, filenames[::-1], filenames * 2):
            names._wheel_projects.clear()
            names._wheel_rests.clear()
            for filename in order:
                self.assertEqual(outcome(filename), fresh[filename], filename)
        self.assertIn("foo_bar", names._wheel_projects)
        self.assertIn("2.0-1b-py2.py3-none-any.whl", names._wheel_rests)

    def test_remembered_parts_bounded(self):
        """Each table of remembered parts is emptied when full."""
        from pypid.core.dists import names

        self.patch(names, "_WHEEL_PARTS", 3)
        names._wheel_projects.clear()
        for i in range(7):
            parse_filename(f"p{i}-1.{i}-py3-none-any.whl")
            self.assertLessEqual(len(names._wheel_projects), 3)
            self.assertLessEqual(len(names._wheel_rests), 3)


class ParseSdistFilenameTests(SynchronousTestCase):
    """Tests for L{parse_filename} on sdists."""

    def test_pep625(self):
        """A PEP 625 sdist gives its project, version, C{sdist} and C{source}."""
        self.assertEqual(
            parse_filename("holy_grail-1.0.tar.gz"),
            ParsedFilename("holy-grail", "1.0", SDIST, "source"),
        )

    def test_zip(self):
        """A C{.zip} sdist is accepted on upload, as the public index's form does."""
        self.assertEqual(
            parse_filename("holy_grail-1.0rc1.zip"),
            ParsedFilename("holy-grail", "1.0rc1", SDIST, "source"),
        )

    def test_dashed_name(self):
        """An old dashed name whose last dash starts the version still parses."""
        self.assertEqual(parse_filename("my-project-1.0.tar.gz").project, "my-project")

    def test_invalid_sdist(self):
        """
        An upload's sdist name that cannot be read says which part is
        wrong, without the filename (the caller names it) or
        packaging's words.
        """
        for filename, why in (
                ("holy_grail.tar.gz", "it has no dash between the project name and the "
                                      "version (name-version.tar.gz)"),
                ("-1.0.tar.gz", "it has no project name before its version"),
                ("holy_grail-x.y.zip", "its version 'x.y' is not a valid PEP 440 version"),
                ("holy grail-1.0.tar.gz",
                 "its project name 'holy grail' may hold only ASCII letters, digits and ._-")):
            e = self.assertRaises(InvalidName, parse_filename, filename)
            self.assertEqual(str(e), why)

    def test_strict_refuses_legacy_extensions(self):
        """C{.tar.bz2} and C{.tgz} sdists are refused outside legacy mode."""
        for filename in ("foo-1.0.tar.bz2", "foo-1.0.tgz"):
            e = self.assertRaises(InvalidName, parse_filename, filename)
            self.assertIn("use .tar.gz, .whl or .zip", str(e))

    def test_legacy_extensions(self):
        """Legacy mode reads C{.tar.bz2} and C{.tgz} sdists."""
        self.assertEqual(
            parse_filename("My.Project-1.0.tar.bz2", legacy=True),
            ParsedFilename("my-project", "1.0", SDIST, "source"),
        )
        self.assertEqual(
            parse_filename("my-project-2.0.tgz", legacy=True),
            ParsedFilename("my-project", "2.0", SDIST, "source"),
        )

    def test_legacy_name_with_dashed_version(self):
        """Legacy mode finds the split of C{my-project-1.0-beta} that strict mode refuses."""
        self.assertRaises(InvalidName, parse_filename, "my-project-1.0-beta.tar.gz")
        self.assertEqual(
            parse_filename("my-project-1.0-beta.tar.gz", legacy=True),
            ParsedFilename("my-project", "1.0b0", SDIST, "source"),
        )

    def test_legacy_no_version(self):
        """Legacy mode still refuses a stem with no valid version in it."""
        e = self.assertRaises(InvalidName, parse_filename, "my-project.tar.gz", legacy=True)
        self.assertIn("cannot find a name and version", str(e))

    def test_folder_hint_is_what_is_served(self):
        """
        A folder's file of another extension is told every extension served
        (the README's list: it said only the three an upload takes, issue
        69), and each one named is read; an upload is told its three.
        """
        e = self.assertRaises(InvalidName, parse_filename, "notes.txt", legacy=True)
        self.assertEqual(str(e), "invalid file extension: pypid serves .whl, .tar.gz, .zip, "
                                 ".tar.bz2 and .tgz files")
        named = str(e).partition("serves ")[2].removesuffix(" files").replace(" and", ",")
        for ext in named.split(", "):
            filename = "demo-1.0" + ("-py3-none-any" if ext == ".whl" else "") + ext
            self.assertEqual(parse_filename(filename, legacy=True).project, "demo")
        e = self.assertRaises(InvalidName, parse_filename, "notes.txt")
        self.assertEqual(str(e), "invalid file extension: use .tar.gz, .whl or .zip")

    def test_other_extensions(self):
        """Eggs, installers and other files are refused in both modes."""
        for filename in ("foo-1.0-py3.8.egg", "foo-1.0.win32.exe", "foo-1.0.rpm", "foo-1.0.tar"):
            for legacy in (False, True):
                e = self.assertRaises(InvalidName, parse_filename, filename, legacy=legacy)
                self.assertIn("invalid file extension", str(e))


class FilenameCharacterTests(SynchronousTestCase):
    """Tests for the safety checks every filename goes through."""

    def assertRefused(self, filename, words):
        """Assert C{filename} is refused in both modes with C{words} in the message."""
        for legacy in (False, True):
            e = self.assertRaises(InvalidName, parse_filename, filename, legacy=legacy)
            self.assertIn(words, str(e))

    def test_slash(self):
        """A C{/} anywhere in a filename is refused."""
        self.assertRefused("../foo-1.0.tar.gz", "'/'")
        self.assertRefused("sub/foo-1.0-py3-none-any.whl", "'/'")

    def test_backslash(self):
        """A C{\\} anywhere in a filename is refused."""
        self.assertRefused("..\\foo-1.0.tar.gz", "'/'")

    def test_control_characters(self):
        """Characters 0-31 and 127 are refused."""
        for c in ("\x00", "\n", "\r", "\t", "\x1f", "\x7f"):
            self.assertRefused(f"foo{c}-1.0.tar.gz", "control characters")

    def test_leading_dot(self):
        """A filename starting with a dot (hidden, or C{..}) is refused."""
        self.assertRefused(".foo-1.0.tar.gz", "start with '.'")

    def test_empty(self):
        """An empty filename is refused."""
        self.assertRefused("", "empty")

    def test_too_long(self):
        """A filename over the byte limit is refused, and one at the limit is not."""
        stem = "a" * (MAX_FILENAME_LENGTH - len("-1.0.tar.gz"))
        ok = stem + "-1.0.tar.gz"
        self.assertEqual(len(ok), MAX_FILENAME_LENGTH)
        check_filename_characters(ok)
        self.assertEqual(parse_filename(ok).project, stem)
        self.assertRefused("a" + ok, "longer than")

    def test_length_in_bytes(self):
        """The limit counts UTF-8 bytes, not characters."""
        e = self.assertRaises(InvalidName, check_filename_characters, "é" * (MAX_FILENAME_LENGTH // 2 + 1))
        self.assertIn("longer than", str(e))


class DistributionKeyTests(SynchronousTestCase):
    """Tests for L{filename_key} and L{distribution_key}."""

    def test_spellings_share_a_key(self):
        """Spellings of one wheel share a key; other tags or versions do not."""
        key = filename_key("demo_pkg-1.0-py3-none-any.whl")
        self.assertEqual(filename_key("Demo.Pkg-1.0-py3-none-any.whl"), key)
        self.assertNotEqual(filename_key("demo_pkg-1.0-cp311-cp311-linux_x86_64.whl"), key)
        self.assertNotEqual(filename_key("demo_pkg-1.1-py3-none-any.whl"), key)

    def test_one_sdist_per_release(self):
        """Every sdist of a release shares a key, whatever its extension."""
        self.assertEqual(filename_key("demo_pkg-1.0.tar.gz"), filename_key("Demo-Pkg-1.0.zip"))

    def test_release_spellings_share_a_key(self):
        """C{1.0} and C{1.0.0} are one release, for wheels and sdists, as the public index holds."""
        self.assertEqual(filename_key("sp01-1.0-py3-none-any.whl"),
                         filename_key("sp01-1.0.0-py3-none-any.whl"))
        self.assertEqual(filename_key("sp05-1.0.tar.gz"), filename_key("sp05-1.0.0.tar.gz"))
        self.assertEqual(filename_key("sp05-1.0.tar.gz"), filename_key("sp05-1.zip"))
        self.assertEqual(filename_key("sp05-1.0a1.tar.gz"), filename_key("sp05-1.0.0a1.tar.gz"))
        self.assertEqual(filename_key("sp05-1.0+local.tar.gz"),
                         filename_key("sp05-1.0.0+local.tar.gz"))
        self.assertEqual(filename_key("sp05-1!2.0.tar.gz"), filename_key("sp05-1!2.0.0.tar.gz"))

    def test_other_releases_differ(self):
        """An epoch, a local version or another suffix makes another release."""
        key = filename_key("sp05-1.0.tar.gz")
        for other in ("sp05-1!1.0.tar.gz", "sp05-1.0+local.tar.gz", "sp05-1.0.post0.tar.gz",
                      "sp05-1.0.0.1.tar.gz", "sp05-1.0rc1.tar.gz", "sp05-1.0.dev0.tar.gz"):
            self.assertNotEqual(filename_key(other), key, other)
        self.assertNotEqual(filename_key("sp05-1.0+local.tar.gz"),
                            filename_key("sp05-1.0+local.0.tar.gz"))

    def test_tag_order_shares_a_key(self):
        """A compressed tag set is one set, whatever the order of its parts."""
        self.assertEqual(filename_key("sp03-1.0-py2.py3-none-any.whl"),
                         filename_key("sp03-1.0-py3.py2-none-any.whl"))
        self.assertEqual(
            filename_key("x-1.0-cp311-cp311-manylinux1_x86_64.manylinux_2_5_x86_64.whl"),
            filename_key("x-1.0-cp311-cp311-manylinux_2_5_x86_64.manylinux1_x86_64.whl"))

    def test_other_tags_or_builds_differ(self):
        """Another tag set, even an overlapping one, or another build number makes another key."""
        key = filename_key("sp04-1.0-py3-none-any.whl")
        for other in ("sp04-1.0-py2.py3-none-any.whl", "sp04-1.0-py3-abi3-any.whl",
                      "sp04-1.0-1-py3-none-any.whl", "sp04-1.0-py3-none-linux_x86_64.whl"):
            self.assertNotEqual(filename_key(other), key, other)
        self.assertNotEqual(filename_key("sp04-1.0-1-py3-none-any.whl"),
                            filename_key("sp04-1.0-2-py3-none-any.whl"))
        self.assertNotEqual(filename_key("sp04-1.0-1-py3-none-any.whl"),
                            filename_key("sp04-1.0-1a-py3-none-any.whl"))

    def test_agrees_with_packaging(self):
        """
        Wheel filenames share a key exactly when packaging reads the same
        project, release, build number and tag set from them.
        """
        from itertools import product

        from packaging.utils import canonicalize_version, parse_wheel_filename
        parts = product(
            ("demo_pkg", "Demo.Pkg", "other"),
            ("1", "1.0", "1.0.0", "1!1.0", "1.0+loc", "1.0.0+loc", "1.0.post0", "1.0a1"),
            ("", "1-", "01-", "2-", "1x-"),
            ("py3-none-any", "py2.py3-none-any", "py3.py2-none-any", "PY3-none-any",
             "cp311-abi3.none-any", "cp311-none.abi3-any"))
        names = [f"{project}-{version}-{build}{tags}.whl" for project, version, build, tags in parts]
        by_key, by_reading = {}, {}
        for filename in names:
            project, version, build, tags = parse_wheel_filename(filename)
            reading = (project, canonicalize_version(version), build, tags)
            by_key.setdefault(filename_key(filename), set()).add(reading)
            by_reading.setdefault(reading, set()).add(filename_key(filename))
        # one reading per key, one key per reading
        self.assertEqual([r for r in by_key.values() if len(r) > 1], [])
        self.assertEqual([k for k in by_reading.values() if len(k) > 1], [])
        self.assertLess(len(by_key), len(names))

    def test_record_form_agrees(self):
        """The key from a record's known fields equals the key parsed from its filename."""
        for filename in ("Demo_Pkg-1.0-1-py2.py3-none-any.whl", "demo_pkg-1.0.tar.gz",
                         "demo_pkg-1.0.0-01-py3.py2-none-any.whl", "demo_pkg-1!1.0.0+x.zip"):
            parsed = parse_filename(filename)
            self.assertEqual(
                distribution_key(parsed.project, parsed.version, parsed.packagetype, filename),
                filename_key(filename))

    def test_not_a_distribution(self):
        """A name that is no distribution has no key."""
        self.assertIsNone(filename_key("README.txt"))


class HostileFilenameTests(SynchronousTestCase):
    """
    Filenames that packaging takes and the index must not (issue 31): what
    follows a wheel's name is ASCII, and a project's name is one an upload
    could have, for uploads and for imports (C{legacy}) alike.
    """

    def test_wheel_tail_ascii(self):
        """Bidi overrides, C1 controls, zero-width characters and NFD twins are refused."""
        for tail in ("1\u202e", "1\x85", "1\u200b", "1e\u0301", "1\u00e9"):
            for filename in (f"pkg-1.0-{tail}-py3-none-any.whl",
                             f"pkg-1.0-py3-none-any{tail}.whl"):
                for legacy in (False, True):
                    with self.assertRaises(InvalidName, msg=repr(filename)):
                        parse_filename(filename, legacy=legacy)

    def test_wheel_tail_kept(self):
        """Real build tags, epochs, local versions and platform tags still parse."""
        for filename, version in [
            ("pkg-1.0-1abc-py3-none-any.whl", "1.0"),
            ("pkg-1!1.0+local.1-py3-none-manylinux_2_17_x86_64.whl", "1!1.0+local.1"),
            ("pkg-2.0-cp311-cp311-macosx_11_0_arm64.whl", "2.0"),
            ("pkg-2.0-py2.py3-none-any.whl", "2.0"),
        ]:
            self.assertEqual(parse_filename(filename).version, version, filename)

    def test_lookalike_names(self):
        """A name with a letter an upload's name cannot have is refused, imported or not."""
        for filename in ("p\u0430ckage-1.0-py3-none-any.whl",     # Cyrillic a
                         "\u212aeras-1.0-py3-none-any.whl",       # Kelvin sign
                         "cla\u017fs-1.0.tar.gz",                 # long s
                         "\u212aeras-1.0.tar.bz2"):
            for legacy in (False, True):
                with self.assertRaises(InvalidName, msg=repr((filename, legacy))):
                    parse_filename(filename, legacy=legacy)
