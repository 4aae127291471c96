"""
Tests for L{pypid.config}: the INI file, its defaults, overrides, and the
one-line errors that name the file, the section, the key and what is allowed.
"""

import os
import textwrap

from twisted.trial.unittest import SynchronousTestCase

from pypid.auth import hash_password
from pypid.config import (
    SCHEMA,
    Config,
    ConfigError,
    load_config,
    parse_override,
    parse_size,
)
from tests.fakes import FAST

ALICE_HASH = hash_password("secret", FAST)


class _ConfigMixin:
    """Helpers that write a configuration file in the test's own folder."""

    def write(self, text):
        """Write C{text} (dedented) to a new file and return its absolute path."""
        path = os.path.abspath(self.mktemp())
        with open(path, "w", encoding="utf-8") as f:
            f.write(textwrap.dedent(text))
        return path

    def refused(self, text=None, path=None, **kwargs):
        """Assert the configuration is refused; return the path and the message."""
        if path is None:
            path = self.write(text)
        e = self.assertRaises(ConfigError, load_config, path, **kwargs)
        message = str(e)
        self.assertNotIn("\n", message)
        self.assertTrue(message.startswith(path + ": "), message)
        return message


class DefaultsTests(SynchronousTestCase):
    """Tests for the configuration with no file."""

    def test_defaults(self):
        """Without a file every key has its documented default."""
        config = load_config(None)
        self.assertIsInstance(config, Config)
        self.assertEqual(config.source, "<defaults>")
        server = config.server
        self.assertEqual(server.listen, ("tcp:8080:interface=127.0.0.1",))
        self.assertIsNone(server.base_url)
        self.assertEqual(server.snapshot, os.path.abspath("var/index.json"))
        self.assertEqual(server.snapshot_interval, 30.0)
        self.assertEqual(server.max_upload_size, 100 << 20)
        self.assertEqual(server.threads, 4)
        self.assertIsNone(server.access_log)
        self.assertEqual(config.storage.backend, "local")
        self.assertEqual(config.storage.path, os.path.abspath("var/packages"))
        self.assertEqual(config.auth.read, "everyone")
        self.assertEqual(config.auth.upload, "authenticated")
        self.assertEqual(config.users, {})

    def test_frozen(self):
        """The configuration cannot be changed once loaded."""
        config = load_config(None)
        self.assertRaises(Exception, setattr, config.server, "threads", 8)

    def test_shipped_example(self):
        """The documented example file in C{etc/} loads, and matches the defaults."""
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        path = os.path.join(here, "etc", "pypid.ini")
        if not os.path.exists(path):
            self.skipTest("no etc/pypid.ini in this checkout")
        config = load_config(path)
        defaults = load_config(None)
        self.assertEqual(config.server, defaults.server)
        self.assertEqual(config.storage, defaults.storage)
        self.assertEqual(config.auth, defaults.auth)
        self.assertEqual(list(config.users), ["admin"])


class FileTests(_ConfigMixin, SynchronousTestCase):
    """Tests for a configuration file that sets every key."""

    def test_every_key(self):
        """Every key of every section is read and parsed."""
        path = self.write(f"""
            [pypid]
            listen =
                tcp:8080:interface=127.0.0.1
                ssl:8443:privateKey=key.pem:certKey=cert.pem
            base_url = https://pypi.internal.example
            snapshot = /srv/pypid/index.json
            snapshot_interval = 2.5
            max_upload_size = 1G
            threads = 16
            access_log = /var/log/pypid/access.log

            [storage]
            backend = LOCAL
            path = /srv/pypid/packages

            [auth]
            read = Authenticated
            upload = authenticated

            [users]
            alice = {ALICE_HASH}
            bob.smith@example = {ALICE_HASH}
            """)
        config = load_config(path)
        self.assertEqual(config.source, path)
        self.assertEqual(config.server.listen, (
            "tcp:8080:interface=127.0.0.1",
            "ssl:8443:privateKey=key.pem:certKey=cert.pem",
        ))
        self.assertEqual(config.server.base_url, "https://pypi.internal.example/")
        self.assertEqual(config.server.snapshot, "/srv/pypid/index.json")
        self.assertEqual(config.server.snapshot_interval, 2.5)
        self.assertEqual(config.server.max_upload_size, 1 << 30)
        self.assertEqual(config.server.threads, 16)
        self.assertEqual(config.server.access_log, "/var/log/pypid/access.log")
        self.assertEqual(config.storage.backend, "local")
        self.assertEqual(config.storage.path, "/srv/pypid/packages")
        self.assertEqual(config.auth.read, "authenticated")
        self.assertEqual(config.users, {"alice": ALICE_HASH, "bob.smith@example": ALICE_HASH})

    def test_partial_file(self):
        """Keys a file leaves out keep their defaults."""
        config = load_config(self.write("[pypid]\nthreads = 2\n"))
        self.assertEqual(config.server.threads, 2)
        self.assertEqual(config.server.max_upload_size, 100 << 20)
        self.assertEqual(config.storage.path, os.path.abspath("var/packages"))

    def test_relative_paths(self):
        """Relative paths become absolute against the current directory; C{~} is expanded."""
        config = load_config(self.write("""
            [pypid]
            snapshot = var/x/index.json
            access_log = logs/access.log
            [storage]
            path = ./packages
            """))
        self.assertEqual(config.server.snapshot, os.path.join(os.getcwd(), "var", "x", "index.json"))
        self.assertEqual(config.server.access_log, os.path.join(os.getcwd(), "logs", "access.log"))
        self.assertEqual(config.storage.path, os.path.join(os.getcwd(), "packages"))
        self.assertTrue(os.path.isabs(config.server.snapshot))
        config = load_config(self.write("[storage]\npath = ~/pkgs\n"))
        self.assertEqual(config.storage.path, os.path.expanduser("~/pkgs"))

    def test_empty_base_url(self):
        """An empty base_url means none, and a path in it keeps one trailing slash."""
        self.assertIsNone(load_config(self.write("[pypid]\nbase_url =\n")).server.base_url)
        config = load_config(self.write("[pypid]\nbase_url = http://h:8080/pypi//\n"))
        self.assertEqual(config.server.base_url, "http://h:8080/pypi/")


class OverrideTests(_ConfigMixin, SynchronousTestCase):
    """Tests for C{--set} and C{--listen}."""

    def test_set_wins_over_file(self):
        """An override replaces the file's value."""
        path = self.write("[pypid]\nthreads = 2\n")
        config = load_config(path, overrides=[("pypid", "threads", "8")])
        self.assertEqual(config.server.threads, 8)

    def test_set_adds_section(self):
        """An override may name a section the file (or the defaults) lack."""
        config = load_config(None, overrides=[("auth", "read", "authenticated"),
                                              ("users", "alice", ALICE_HASH)])
        self.assertEqual(config.auth.read, "authenticated")
        self.assertEqual(config.users, {"alice": ALICE_HASH})

    def test_set_validated(self):
        """An override is validated like the file, naming the section and key."""
        e = self.assertRaises(ConfigError, load_config, None,
                              overrides=[("pypid", "threads", "lots")])
        self.assertEqual(str(e), "--set pypid.threads: [pypid] threads: expected a whole number from 1 to 64")
        e = self.assertRaises(ConfigError, load_config, None,
                              overrides=[("pypid", "colour", "blue")])
        self.assertIn("[pypid] colour: unknown key", str(e))

    def test_listen_replaces(self):
        """C{--listen} replaces every endpoint of the file rather than adding to them."""
        path = self.write("[pypid]\nlisten =\n  tcp:1\n  tcp:2\n")
        config = load_config(path, listen=["tcp:3", "unix:/tmp/s"])
        self.assertEqual(config.server.listen, ("tcp:3", "unix:/tmp/s"))
        self.assertEqual(load_config(None, listen=["tcp:9"]).server.listen, ("tcp:9",))

    def test_listen_wins_over_set(self):
        """C{--listen} wins over a C{--set pypid.listen=...}."""
        config = load_config(None, overrides=[("pypid", "listen", "tcp:1")], listen=["tcp:2"])
        self.assertEqual(config.server.listen, ("tcp:2",))


class ErrorTests(_ConfigMixin, SynchronousTestCase):
    """Every problem is one L{ConfigError} line naming the file, section and key."""

    def test_missing_file(self):
        """A file that cannot be read is named, with the reason."""
        path = os.path.abspath(self.mktemp())
        message = self.refused(path=path)
        self.assertIn("cannot read the configuration file", message)
        self.assertIn("No such file", message)

    def test_not_utf8(self):
        """A file that is not UTF-8 is refused as such."""
        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as f:
            f.write(b"[pypid]\nbase_url = \xff\n")
        self.assertIn("not UTF-8", self.refused(path=path))

    def test_not_ini(self):
        """Text that is not INI (or a key given twice) is refused as such, on one line."""
        self.assertIn("not a valid INI file", self.refused("threads = 4\n"))
        self.assertIn("not a valid INI file", self.refused("[pypid]\nthreads = 1\nthreads = 2\n"))

    def test_unknown_section(self):
        """An unknown section is named, with the list of sections."""
        message = self.refused("[server]\nthreads = 4\n")
        self.assertIn("[server]: unknown section", message)
        for section in ("[pypid]", "[storage]", "[auth]", "[users]"):
            self.assertIn(section, message)

    def test_unknown_key(self):
        """An unknown key is named with its section, with the section's keys."""
        message = self.refused("[storage]\nfolder = /srv\n")
        self.assertIn("[storage] folder: unknown key; the keys are backend, path", message)

    def test_unknown_key_every_section(self):
        """Every declared section refuses keys it does not declare."""
        for section, keys in SCHEMA.items():
            message = self.refused(f"[{section}]\nnope = 1\n")
            self.assertIn(f"[{section}] nope: unknown key", message)
            for key in keys:
                self.assertIn(key, message)

    def test_bad_size(self):
        """A bad size names the key and the forms allowed."""
        for value in ("lots", "10X", "-5M", "0"):
            message = self.refused(f"[pypid]\nmax_upload_size = {value}\n")
            self.assertIn("[pypid] max_upload_size: expected", message)
        self.assertIn("100M", self.refused("[pypid]\nmax_upload_size = huge\n"))

    def test_bad_listen(self):
        """An empty listen names the key and gives an example endpoint."""
        message = self.refused("[pypid]\nlisten =\n")
        self.assertIn("[pypid] listen: expected one or more Twisted endpoint strings", message)
        self.assertIn("tcp:8080:interface=127.0.0.1", message)

    def test_bad_base_url(self):
        """A base_url that is not an http(s) URL without a query is refused with an example."""
        for value in ("ftp://example/", "example.com", "https://", "https://h/?x=1",
                      "https://h/#top"):
            message = self.refused(f"[pypid]\nbase_url = {value}\n")
            self.assertIn("[pypid] base_url: expected an http:// or https:// URL", message)

    def test_bad_threads(self):
        """Threads must be a whole number from 1 to 64."""
        for value in ("0", "65", "2.5", "four", "-1"):
            message = self.refused(f"[pypid]\nthreads = {value}\n")
            self.assertIn("[pypid] threads: expected a whole number from 1 to 64", message)

    def test_bad_interval(self):
        """The snapshot interval must be a positive number of seconds."""
        for value in ("0", "-1", "soon", "nan"):
            message = self.refused(f"[pypid]\nsnapshot_interval = {value}\n")
            self.assertIn("[pypid] snapshot_interval: expected a number of seconds", message)

    def test_bad_choice(self):
        """A choice key lists the allowed values."""
        message = self.refused("[auth]\nread = nobody\n")
        self.assertIn("[auth] read: expected one of: everyone, authenticated", message)
        message = self.refused("[storage]\nbackend = s3\n")
        self.assertIn("[storage] backend: expected one of: local", message)
        message = self.refused("[auth]\nupload = everyone\n")
        self.assertIn("[auth] upload: expected one of: authenticated", message)

    def test_empty_path(self):
        """A path key cannot be empty."""
        self.assertIn("[storage] path: expected a path", self.refused("[storage]\npath =\n"))

    def test_bad_user_hash(self):
        """A value in [users] that is not an argon2id hash names the user and how to make one."""
        message = self.refused("[users]\nalice = $2b$12$abcdefghijklmnopqrstuv\n")
        self.assertIn("[users] alice: only argon2id hashes", message)
        self.assertIn("pypid-passwd", message)

    def test_plaintext_password(self):
        """A plaintext password is refused, and never repeated in the message."""
        message = self.refused("[users]\nalice = hunter2-secret\n")
        self.assertIn("[users] alice: this looks like a plaintext password", message)
        self.assertNotIn("hunter2-secret", message)

    def test_bad_user_name(self):
        """A user name with characters outside the allowed set is refused."""
        message = self.refused(f"[users]\nal ice = {ALICE_HASH}\n")
        self.assertIn("[users] al ice: a user name is 1 to 64", message)


class ParseSizeTests(SynchronousTestCase):
    """Tests for L{parse_size}."""

    def test_forms(self):
        """Plain bytes and binary units, with or without B or iB, in any case."""
        cases = {
            "1048576": 1 << 20,
            "1": 1,
            "100M": 100 << 20,
            "100m": 100 << 20,
            "1G": 1 << 30,
            "2T": 2 << 40,
            "512KiB": 512 << 10,
            "512kb": 512 << 10,
            " 3 MB ": 3 << 20,
            "10B": 10,
        }
        for text, size in cases.items():
            self.assertEqual(parse_size(text), size, text)

    def test_refused(self):
        """Anything else raises L{ValueError} with the allowed forms."""
        for text in ("", "M", "1.5G", "-1", "0", "0K", "10 X", "1 PB", "ten"):
            e = self.assertRaises(ValueError, parse_size, text)
            self.assertIn("expected a size", str(e))


class ParseOverrideTests(SynchronousTestCase):
    """Tests for L{parse_override}."""

    def test_valid(self):
        """C{section.key=value} splits into its parts; the section is lower-cased."""
        self.assertEqual(parse_override("pypid.threads=8"), ("pypid", "threads", "8"))
        self.assertEqual(parse_override("Auth.read=authenticated"), ("auth", "read", "authenticated"))

    def test_value_keeps_equals(self):
        """Only the first C{=} separates; the value may be empty or hold C{=} and dots."""
        self.assertEqual(parse_override("users.alice=$argon2id$v=19$m=8"),
                         ("users", "alice", "$argon2id$v=19$m=8"))
        self.assertEqual(parse_override("pypid.base_url="), ("pypid", "base_url", ""))
        self.assertEqual(parse_override("users.bob.smith=x"), ("users", "bob.smith", "x"))

    def test_refused(self):
        """Text without a section, a key or an C{=} is refused, quoting it."""
        for text in ("threads=8", "pypid.threads", ".threads=8", "pypid.=8", "=8", ""):
            e = self.assertRaises(ValueError, parse_override, text)
            self.assertIn("expected section.key=value", str(e))
            self.assertIn(repr(text), str(e))


class CommandLineBlameTests(SynchronousTestCase):
    """Tests that a bad value from the command line is reported as such."""

    def test_set_named(self):
        """A bad value given with --set names --set, not the file."""
        e = self.assertRaises(ConfigError, load_config, None,
                              [("pypid", "max_upload_size", "lots")])
        self.assertTrue(str(e).startswith("--set pypid.max_upload_size: [pypid] max_upload_size:"),
                        str(e))

    def test_listen_named(self):
        """A bad --listen is reported as --listen."""
        e = self.assertRaises(ConfigError, load_config, None, (), ["  "])
        self.assertTrue(str(e).startswith("--listen pypid.listen:"), str(e))
