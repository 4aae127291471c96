"""
Tests for L{pypid.config}: the INI file, its defaults, overrides, and the
one-line errors that name the file, the section, the key and what is allowed.
"""

import ipaddress
import os
import re
import textwrap
from datetime import UTC, datetime

import attrs
from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.hashes import hash_password
from pypid.config import SCHEMA, Config, ConfigError, load_config, parse_override
from pypid.config.index_settings import IndexConfig
from pypid.config.s3_settings import S3Config
from pypid.config.upstream_settings import UpstreamConfig, UpstreamCredentials
from pypid.core.indexes.index_names import NAME, ROUTE_SEGMENTS, BaseRef
from tests import CHECKOUT
from tests.harness.config_files import ConfigFiles
from tests.harness.fakes import FAST

ALICE_HASH = hash_password("secret", FAST)


def _shipped_example():
    """Return the text of C{etc/pypid.ini}, or L{None} when this checkout has none."""
    here = CHECKOUT
    path = os.path.join(here, "etc", "pypid.ini")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return f.read()


def _uncomment_section(text, section):
    """
    Uncomment the C{[section]} block of C{text} (commented out as
    C{#[section]}, or there with its keys commented out): its header and its
    C{#key = value} lines, up to the next section header, commented or not.
    """
    lines = text.split("\n")
    header = f"#[{section}]" if f"#[{section}]" in lines else f"[{section}]"
    start = lines.index(header)
    lines[start] = f"[{section}]"
    for i in range(start + 1, len(lines)):
        if lines[i].startswith(("[", "#[")):
            break
        lines[i] = re.sub(r"^#([a-z_]+ =)", r"\1", lines[i])
    return "\n".join(lines)


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

    def test_s3_defaults(self):
        """With the local backend the [s3] section is still there, holding its defaults."""
        s3 = load_config(None).stores["s3"]
        self.assertIsInstance(s3, S3Config)
        self.assertEqual(s3, S3Config(
            bucket="",
            prefix="",
            region="us-east-1",
            endpoint_url=None,
            addressing="virtual",
            access_key=None,
            secret_key=None,
            session_token=None,
            expire_after=900.0,
            buffer_time=300.0,
            download="redirect",
            public_url=None,
            sync_interval=30.0,
            multipart_threshold=64 << 20,
            timeout=30.0,
            bucket_snapshot=True,
        ))
        self.assertRaises(attrs.exceptions.FrozenInstanceError, setattr, s3, "bucket", "other")

    def test_frozen(self):
        """The configuration cannot be changed once loaded."""
        config = load_config(None)
        self.assertRaises(attrs.exceptions.FrozenInstanceError, setattr, config.server, "threads",
                          8)

    def test_shipped_example(self):
        """The documented example file in C{etc/} loads, and matches the defaults."""
        here = CHECKOUT
        path = os.path.join(here, "etc", "pypid.ini")
        if not os.path.exists(path):
            self.skipTest("no etc/pypid.ini in this checkout")
        config = load_config(path)
        defaults = load_config(None)
        # (its paths are the checkout's var/, wherever it is started: issue 60)
        var = os.path.join(here, "var")
        self.assertEqual(config.server, attrs.evolve(
            defaults.server, snapshot=os.path.join(var, "index.json")))
        self.assertEqual(config.storage, attrs.evolve(
            defaults.storage, path=os.path.join(var, "packages")))
        self.assertEqual(config.stores["s3"], defaults.stores["s3"])
        # (but for its admin: the shipped user is one, issue 60)
        self.assertEqual(attrs.evolve(config.auth, admins=(),
                                      tokens=defaults.auth.tokens), defaults.auth)
        self.assertEqual(config.auth.tokens, os.path.join(var, "tokens.json"))
        self.assertEqual(config.auth.admins, ("admin",))
        self.assertEqual(config.upstream, defaults.upstream)
        self.assertEqual(list(config.users), ["admin"])

    def test_shipped_s3_example(self):
        """The commented-out [s3] example in C{etc/pypid.ini} loads once uncommented."""
        text = _shipped_example()
        if text is None:
            self.skipTest("no etc/pypid.ini in this checkout")
        self.assertIn("\n#[s3]\n", text)
        text = _uncomment_section(text, "s3").replace("\nbackend = local\n", "\nbackend = s3\n")
        uncommented = os.path.abspath(self.mktemp())
        with open(uncommented, "w", encoding="utf-8") as f:
            f.write(text)
        config = load_config(uncommented)
        self.assertEqual(config.storage.backend, "s3")
        self.assertEqual(config.stores["s3"].bucket, "pypid-packages")
        defaults = load_config(None).stores["s3"]
        self.assertEqual(attrs.evolve(config.stores["s3"], bucket=""), defaults)

    def test_shipped_cloud_examples(self):
        """The commented-out [azure] and [gcs] examples load once uncommented."""
        text = _shipped_example()
        if text is None:
            self.skipTest("no etc/pypid.ini in this checkout")
        for section, name in (("azure", "packages"), ("gcs", "pypid-packages")):
            uncommented = _uncomment_section(text, section).replace(
                "\nbackend = local\n", f"\nbackend = {section}\n").replace(
                "\ndownload = redirect\n", "\ndownload = stream\n")
            path = os.path.abspath(self.mktemp())
            with open(path, "w", encoding="utf-8") as f:
                f.write(uncommented)
            config = load_config(path)
            self.assertEqual(config.storage.backend, section)
            held = config.stores["azure"].container if section == "azure" else config.stores["gcs"].bucket
            self.assertEqual(held, name)

    def test_upstream_defaults(self):
        """Without an [upstream] section there is no upstream, and every key has its default."""
        upstream = load_config(None).upstream
        self.assertIsInstance(upstream, UpstreamConfig)
        self.assertEqual(upstream, UpstreamConfig(
            mode="none",
            url=None,
            ttl=600.0,
            offline=False,
            private=(),
            merge=(),
            min_age=0.0,
            min_age_exempt=(),
            hosts=("*",),
            timeout=10.0,
            max_page_size=20 << 20,
        ))
        self.assertRaises(attrs.exceptions.FrozenInstanceError, setattr, upstream, "mode", "cache")

    def test_shipped_upstream_example(self):
        """
        The [upstream] section of C{etc/pypid.ini} (mode = none, the other
        keys commented out) loads once a user sets mode = cache and url, as
        the README says (issue 60), and so once every key is uncommented.
        """
        text = _shipped_example()
        if text is None:
            self.skipTest("no etc/pypid.ini in this checkout")
        self.assertIn("\n[upstream]\n", text)
        self.assertIn("\nmode = none\n", text)
        edited = os.path.abspath(self.mktemp())
        with open(edited, "w", encoding="utf-8") as f:
            f.write(text.replace("\nmode = none\n", "\nmode = cache\n").replace(
                "\n#url = https://upstream.example/simple/\n",
                "\nurl = https://upstream.example/simple/\n"))
        config = load_config(edited)
        self.assertEqual((config.upstream.mode, config.upstream.url, config.upstream.hosts),
                         ("cache", "https://upstream.example/simple/", ("upstream.example", "*")))
        uncommented = os.path.abspath(self.mktemp())
        with open(uncommented, "w", encoding="utf-8") as f:
            f.write(_uncomment_section(text, "upstream").replace("\nmode = none\n",
                                                                  "\nmode = cache\n"))
        config = load_config(uncommented)
        self.assertEqual(config.upstream.mode, "cache")
        self.assertEqual(config.upstream.url, "https://upstream.example/simple/")
        self.assertEqual(config.upstream.hosts, ("upstream.example", "*"))
        defaults = load_config(None)
        self.assertEqual(attrs.evolve(config.upstream, mode="none", url=None, hosts=("*",)),
                         defaults.upstream)
        self.assertEqual(config.stores["s3"], defaults.stores["s3"])


class FileTests(ConfigFiles, SynchronousTestCase):
    """Tests for a configuration file that sets every key."""

    def test_every_key(self):
        """Every key of every section is read and parsed."""
        path = self.write(f"""
            [pypid]
            listen =
                tcp:8080:interface=127.0.0.1
                unix:/run/pypid/http.sock:mode=660
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
            "unix:/run/pypid/http.sock:mode=660",
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
        """
        A relative path of the file is read against the file's folder
        (issue 60), whatever the current directory; C{~} is expanded; a
        default, C{--set} or the environment's value is read against the
        current directory.
        """
        path = self.write("""
            [pypid]
            snapshot = var/x/index.json
            access_log = ../logs/access.log
            [storage]
            path = ./packages
            """)
        folder = os.path.dirname(path)
        config = load_config(path)
        self.assertEqual(config.server.snapshot, os.path.join(folder, "var", "x", "index.json"))
        self.assertEqual(config.server.access_log,
                         os.path.join(os.path.dirname(folder), "logs", "access.log"))
        self.assertEqual(config.storage.path, os.path.join(folder, "packages"))
        self.assertEqual(config.auth.tokens, os.path.join(os.getcwd(), "var", "tokens.json"))
        config = load_config(path, [("storage", "path", "pkgs")],
                             environ={"PYPID_PYPID_SNAPSHOT": "snap.json"})
        self.assertEqual(config.storage.path, os.path.join(os.getcwd(), "pkgs"))
        self.assertEqual(config.server.snapshot, os.path.join(os.getcwd(), "snap.json"))
        config = load_config(self.write("[storage]\npath = ~/pkgs\n"))
        self.assertEqual(config.storage.path, os.path.expanduser("~/pkgs"))

    def test_empty_base_url(self):
        """An empty base_url means none, and a path in it keeps one trailing slash."""
        self.assertIsNone(load_config(self.write("[pypid]\nbase_url =\n")).server.base_url)
        config = load_config(self.write("[pypid]\nbase_url = http://h:8080/pypi//\n"))
        self.assertEqual(config.server.base_url, "http://h:8080/pypi/")


class OverrideTests(ConfigFiles, SynchronousTestCase):
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

    def test_set_unknown_section(self):
        """An unknown section that only C{--set} names is blamed on that C{--set}."""
        e = self.assertRaises(ConfigError, load_config, None,
                              overrides=[("server", "threads", "4")])
        self.assertTrue(str(e).startswith("--set server.threads: [server]: unknown section"),
                        str(e))
        path = self.write("[server]\nthreads = 4\n")
        e = self.assertRaises(ConfigError, load_config, path,
                              overrides=[("server", "threads", "4")])
        self.assertTrue(str(e).startswith(path + ": [server]: unknown section"), str(e))

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


class WorkersTests(ConfigFiles, SynchronousTestCase):
    """C{[pypid] workers}."""

    def test_values(self):
        """A whole number, or C{auto} (the cores this process may use); 1 by default."""
        self.assertEqual(load_config(None).server.workers, 1)
        path = self.write("[pypid]\nworkers = 3\n")
        self.assertEqual(load_config(path).server.workers, 3)
        path = self.write("[pypid]\nworkers = Auto\n")
        self.assertEqual(load_config(path).server.workers, len(os.sched_getaffinity(0)))
        for bad in ("0", "257", "many", "1.5"):
            message = self.refused(f"[pypid]\nworkers = {bad}\n")
            self.assertIn("[pypid] workers: expected a whole number from 1 to 256, or auto",
                          message)

    def test_upstream(self):
        """More than one with an upstream: the workers share its cache."""
        for section in ("[upstream]\nmode = cache\nurl = https://upstream.example/simple/\n",
                        "[upstream:corp]\nmode = cache\nurl = https://upstream.example/simple/\n"):
            self.assertEqual(load_config(self.write("[pypid]\nworkers = 2\n" + section))
                             .server.workers, 2)


class EnvironmentTests(ConfigFiles, SynchronousTestCase):
    """Tests for C{PYPID_<SECTION>_<KEY>} environment variables."""

    def test_over_the_file_under_set(self):
        """The environment wins over the file, and C{--set} over the environment."""
        path = self.write("[pypid]\nthreads = 2\n[auth]\nread = everyone\n")
        environ = {"PYPID_PYPID_THREADS": "6", "PYPID_AUTH_READ": "authenticated",
                   "PYPID_PYPID_BASE_URL": "https://pypi.internal.example/"}
        config = load_config(path, environ=environ)
        self.assertEqual((config.server.threads, config.auth.read, config.server.base_url),
                         (6, "authenticated", "https://pypi.internal.example/"))
        config = load_config(path, overrides=[("pypid", "threads", "8")], environ=environ)
        self.assertEqual(config.server.threads, 8)
        self.assertEqual(load_config(path).server.threads, 2)

    def test_others_left_alone(self):
        """Variables of no section (C{PYPID_CONFIG}, tools' own) are not the configuration's."""
        environ = {"PYPID_CONFIG": "x.ini", "PYPID_ARTIFACTS": "/tmp", "PYPID_AUTH": "a:b",
                   "PYPID_USERS_ALICE": ALICE_HASH, "PATH": "/bin"}
        config = load_config(None, environ=environ)
        self.assertEqual(config.users, {})

    def test_errors_name_the_variable(self):
        """A bad value or an unknown key is blamed on its variable, in one line."""
        e = self.assertRaises(ConfigError, load_config, None,
                              environ={"PYPID_PYPID_THREADS": "lots"})
        self.assertEqual(str(e), "environment PYPID_PYPID_THREADS: [pypid] threads: "
                                 "expected a whole number from 1 to 64")
        e = self.assertRaises(ConfigError, load_config, None,
                              environ={"PYPID_STORAGE_PAHT": "/srv"})
        self.assertTrue(str(e).startswith("environment PYPID_STORAGE_PAHT: [storage] paht: "
                                          "unknown key"), str(e))
        e = self.assertRaises(ConfigError, load_config, None,
                              overrides=[("pypid", "threads", "lots")],
                              environ={"PYPID_PYPID_THREADS": "lots"})
        self.assertTrue(str(e).startswith("--set pypid.threads:"), str(e))


class ErrorTests(ConfigFiles, SynchronousTestCase):
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
        for section in ("[pypid]", "[storage]", "[s3]", "[auth]", "[upstream]", "[users]"):
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

    def test_twisted_tls_endpoints(self):
        """Twisted's TLS endpoints, however spelt, are refused with one line pointing at https:."""
        message = self.refused("[pypid]\nlisten = ssl:8443:privateKey=k.pem:certKey=c.pem\n")
        self.assertEqual(message.split(": ", 1)[1],
                         "[pypid] listen: 'ssl:8443:privateKey=k.pem:certKey=c.pem' is "
                         "Twisted's TLS endpoint, with its default ciphers (AES128-SHA among "
                         "them): serve HTTPS with an https:PORT listener and [tls] certificate "
                         "and key")
        # Twisted reads each of these as ssl: or tls: (plugins match in any
        # case; an escape or a leading option changes nothing; haproxy: wraps).
        for line in ("SSL:8443", "Ssl:8443", "s\\sl:8443", "interface=127.0.0.1:ssl:8443",
                     "tls:/etc/pypid/certs", "TLS:/etc/pypid/certs:port=8443",
                     "haproxy:ssl:8443", "HAProxy:tls:/etc/pypid/certs"):
            message = self.refused(f"[pypid]\nlisten =\n  tcp:8080\n  {line}\n")
            self.assertIn(f"[pypid] listen: {line!r} is Twisted's TLS endpoint", message)
            self.assertIn("serve HTTPS with an https:PORT listener", message)
        for line in ("le:/srv/certs:tcp:443", "LETS:/srv/certs:tcp:443"):
            message = self.refused(f"[pypid]\nlisten = {line}\n")
            self.assertIn(f"[pypid] listen: {line!r} is txacme's TLS endpoint", message)
        e = self.assertRaises(ConfigError, load_config, None, (), ["ssl:8443"])
        self.assertTrue(str(e).startswith("--listen pypid.listen: [pypid] listen: 'ssl:8443' "
                                          "is Twisted's TLS endpoint"), str(e))

    def test_plain_endpoints_kept(self):
        """Only the endpoint type is read: a socket named ssl, or haproxy: over tcp:, is plain."""
        lines = ("unix:ssl", "tcp:8443:interface=127.0.0.1", "haproxy:tcp:8080",
                 "systemd:domain=INET:index=0")
        self.assertEqual(load_config(None, listen=list(lines)).server.listen, lines)

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
        message = self.refused("[storage]\nbackend = cloud\n")
        self.assertIn("[storage] backend: expected one of: local, s3", message)
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

    def test_several_bad_users(self):
        """
        Several users that cannot be used are refused at once, each named
        with what is wrong (no password repeated), each remedy once, last:
        one start-up error, not one a start.
        """
        message = self.refused(f"[users]\nalice = hunter2-secret\nbob = {ALICE_HASH}\n"
                               "carol = $2b$12$abcdefghijklmnopqrstuv\ndave = other-secret\n")
        self.assertTrue(message.endswith(
            ": [users]: users alice (this looks like a plaintext password, which is never "
            "accepted), carol (only argon2id hashes ($argon2id$...) are accepted (not bcrypt, "
            "crypt or other formats)), dave (this looks like a plaintext password, which is "
            "never accepted) cannot be used; make one with pypid-passwd and put it in [users] "
            "as: name = <hash>"), message)
        self.assertNotIn("secret", message)

    def test_bad_user_name(self):
        """A user name with characters outside the allowed set is refused."""
        message = self.refused(f"[users]\nal ice = {ALICE_HASH}\n")
        self.assertIn("[users] al ice: a user name is 1 to 64", message)


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


class S3Tests(ConfigFiles, SynchronousTestCase):
    """Tests for each key of the C{[s3]} section on its own."""

    def s3(self, text):
        """Load a file made of an C{[s3]} section with C{text}, and return its L{S3Config}."""
        return load_config(self.write("[s3]\n" + textwrap.dedent(text))).stores["s3"]

    def refused_s3(self, key, value):
        """Assert C{key = value} in C{[s3]} is refused naming file and key; return the message."""
        message = self.refused(f"[s3]\n{key} = {value}\n")
        self.assertIn(f": [s3] {key}: ", message)
        return message

    def test_every_key(self):
        """Every key of the section is read and parsed."""
        s3 = load_config(self.write("""
            [storage]
            backend = S3

            [s3]
            bucket = pypid.packages-2
            prefix = /teams/python
            region = eu-west-3
            endpoint_url = http://minio.internal.example:9000/
            addressing = Virtual
            access_key = AKIDEXAMPLE
            secret_key = wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY
            session_token = FwoGZXIvYXdzEXAMPLE//token=
            expire_after = 12h
            buffer_time = 1.5h
            download = stream
            public_url = https://downloads.internal.example/pypid
            sync_interval = 2m
            multipart_threshold = 128M
            timeout = 45s
            bucket_snapshot = no
            """)).stores["s3"]
        self.assertEqual(s3, S3Config(
            bucket="pypid.packages-2",
            prefix="teams/python/",
            region="eu-west-3",
            endpoint_url="http://minio.internal.example:9000",
            addressing="virtual",
            access_key="AKIDEXAMPLE",
            secret_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            session_token="FwoGZXIvYXdzEXAMPLE//token=",
            expire_after=43200.0,
            buffer_time=5400.0,
            download="stream",
            public_url="https://downloads.internal.example/pypid/",
            sync_interval=120.0,
            multipart_threshold=128 << 20,
            timeout=45.0,
            bucket_snapshot=False,
        ))

    def test_bucket(self):
        """A bucket name of 3 to 63 lowercase letters, digits, dots and hyphens is kept."""
        for name in ("abc", "my-bucket.v2", "0ab", "a" * 63, "pypid.internal.example"):
            self.assertEqual(self.s3(f"bucket = {name}\naddressing = path\n").bucket, name)
        self.assertEqual(self.s3("bucket =\n").bucket, "")

    def test_bad_bucket(self):
        """A name S3 does not allow is refused with the naming rules."""
        for name in ("ab", "a" * 64, "My-Bucket", "-abc", "abc-", ".abc", "abc.", "a..b",
                     "a_b", "a b", "bücket"):
            message = self.refused_s3("bucket", name)
            self.assertIn("expected an S3 bucket name: 3 to 63 lowercase letters", message)
        message = self.refused_s3("bucket", "192.168.1.1")
        self.assertIn("a bucket name cannot be an IP address", message)

    def test_prefix(self):
        """A prefix loses its leading slash and gains a trailing one; empty means none."""
        cases = {
            "": "",
            "/": "",
            "pypid": "pypid/",
            "pypid/": "pypid/",
            "/pypid": "pypid/",
            "/teams/python/": "teams/python/",
            "a b/c.d/..e": "a b/c.d/..e/",
        }
        for value, prefix in cases.items():
            self.assertEqual(self.s3(f"prefix = {value}\n").prefix, prefix, value)

    def test_bad_prefix(self):
        """Empty segments, '.' and '..' segments and control characters are refused."""
        for value in ("a//b", "//a", "a//", "a/../b", "..", "../a", "a/.", "./a"):
            message = self.refused_s3("prefix", value)
            self.assertIn("not allowed in a key prefix", message)
        self.assertIn("empty segments (a//b)", self.refused_s3("prefix", "a//b"))
        self.assertIn("'.' and '..' segments", self.refused_s3("prefix", "a/../b"))
        self.assertIn("control characters", self.refused_s3("prefix", "a\tb"))
        message = self.refused("[s3]\nprefix = a\n  b\n")
        self.assertIn("[s3] prefix: control characters", message)
        e = self.assertRaises(ConfigError, load_config, None, [("s3", "prefix", "a\x7fb")])
        self.assertEqual(str(e), "--set s3.prefix: [s3] prefix: control characters (and line "
                                 "breaks) are not allowed in a key prefix")

    def test_region(self):
        """A region of lowercase letters, digits and hyphens is kept."""
        self.assertEqual(self.s3("region = eu-west-3\n").region, "eu-west-3")
        self.assertEqual(self.s3("region = garage\n").region, "garage")

    def test_bad_region(self):
        """Anything but lowercase letters, digits and hyphens (or nothing) is refused."""
        for value in ("", "EU-WEST-1", "us_east_1", "us east 1", "eu-west-1."):
            message = self.refused_s3("region", value)
            self.assertIn("expected a region name such as us-east-1", message)

    def test_endpoint_url(self):
        """An http(s) endpoint is kept without its trailing slash; empty means none."""
        cases = {
            "http://127.0.0.1:9000": "http://127.0.0.1:9000",
            "http://127.0.0.1:9000/": "http://127.0.0.1:9000",
            "https://s3.internal.example/": "https://s3.internal.example",
            "https://gateway.internal.example:8443/s3/": "https://gateway.internal.example:8443/s3",
            "http://[::1]:9000": "http://[::1]:9000",
        }
        for value, url in cases.items():
            self.assertEqual(self.s3(f"endpoint_url = {value}\n").endpoint_url, url, value)
        self.assertIsNone(self.s3("endpoint_url =\n").endpoint_url)

    def test_bad_endpoint_url(self):
        """Other schemes, no host, a query, a fragment, user info or a bad port are refused."""
        for value in ("ftp://127.0.0.1/", "127.0.0.1:9000", "http://", "http:///path",
                      "http://h/?a=1", "http://h/?", "http://h/#x", "http://h#",
                      "http://user:pw@h/", "http://user@h/", "http://h:port/",
                      "http://h:99999/", "http://h/a b", "http://[::1/"):
            message = self.refused_s3("endpoint_url", value)
            self.assertIn("expected an http:// or https:// URL with a host and no query, "
                          "fragment, user name or password, such as http://127.0.0.1:9000",
                          message)

    def test_addressing(self):
        """C{path} and C{virtual} are kept in any case; empty is resolved automatically."""
        self.assertEqual(self.s3("addressing = path\n").addressing, "path")
        self.assertEqual(self.s3("addressing = VIRTUAL\n").addressing, "virtual")
        self.assertEqual(self.s3("addressing =\n").addressing, "virtual")
        self.assertEqual(self.s3("endpoint_url = http://127.0.0.1:9000\n").addressing, "path")
        s3 = self.s3("endpoint_url = https://s3.internal.example\naddressing = virtual\n")
        self.assertEqual(s3.addressing, "virtual")

    def test_bad_addressing(self):
        """Another addressing style is refused, listing the allowed ones."""
        message = self.refused_s3("addressing", "host")
        self.assertIn("expected one of: path, virtual; or empty for automatic", message)

    def test_credentials(self):
        """The access key, secret key and session token are kept; empty means none."""
        s3 = self.s3("access_key = AKID\nsecret_key = se/cr+et\nsession_token = to==ken\n")
        self.assertEqual((s3.access_key, s3.secret_key, s3.session_token),
                         ("AKID", "se/cr+et", "to==ken"))
        s3 = self.s3("access_key = AKID\nsecret_key = secret\n")
        self.assertIsNone(s3.session_token)
        s3 = self.s3("access_key =\nsecret_key =\nsession_token =\n")
        self.assertEqual((s3.access_key, s3.secret_key, s3.session_token), (None, None, None))

    def test_bad_credentials(self):
        """A credential with a space or control character is refused, without repeating it."""
        for key in ("access_key", "secret_key", "session_token"):
            message = self.refused_s3(key, "top secret")
            self.assertIn("spaces and control characters are not allowed", message)
            self.assertNotIn("top secret", message)

    def test_expire_after(self):
        """The presigned URL lifetime is a duration of up to 7 days."""
        self.assertEqual(self.s3("expire_after = 2h\n").expire_after, 7200.0)
        self.assertEqual(self.s3("expire_after = 7d\n").expire_after, 604800.0)
        self.assertEqual(self.s3("expire_after = 604800\nbuffer_time = 1\n").expire_after,
                         604800.0)

    def test_bad_expire_after(self):
        """Longer than 7 days, under a second or not a duration is refused."""
        for value in ("604801", "8d", "7.5d", "169h"):
            message = self.refused_s3("expire_after", value)
            self.assertIn("expected at most 7d (604800 seconds), the longest a signed "
                          "download URL can be valid", message)
        self.assertIn("expected at least 1 second", self.refused_s3("expire_after", "0.5"))
        self.assertIn("expected a duration", self.refused_s3("expire_after", "soon"))
        self.assertIn("greater than 0", self.refused_s3("expire_after", "0"))

    def test_durations(self):
        """buffer_time, sync_interval and timeout are durations."""
        s3 = self.s3("buffer_time = 5m\nsync_interval = 0.5\ntimeout = 1.5m\n")
        self.assertEqual((s3.buffer_time, s3.sync_interval, s3.timeout), (300.0, 0.5, 90.0))

    def test_bad_durations(self):
        """A bad buffer_time, sync_interval or timeout is refused with the allowed forms."""
        for key in ("buffer_time", "sync_interval", "timeout"):
            for value in ("0", "-1", "soon", "5 minutes"):
                message = self.refused_s3(key, value)
                self.assertIn("expected a duration", message)

    def test_download(self):
        """C{download} is C{redirect} or C{stream}, in any case."""
        self.assertEqual(self.s3("download = Stream\n").download, "stream")
        self.assertEqual(self.s3("download = redirect\n").download, "redirect")
        message = self.refused_s3("download", "proxy")
        self.assertIn("expected one of: redirect, stream", message)

    def test_public_url(self):
        """A public URL is kept with one trailing slash; empty means none."""
        s3 = self.s3("public_url = https://downloads.internal.example/pypid\n")
        self.assertEqual(s3.public_url, "https://downloads.internal.example/pypid/")
        s3 = self.s3("public_url = http://127.0.0.1:9000/bucket//\n")
        self.assertEqual(s3.public_url, "http://127.0.0.1:9000/bucket/")
        self.assertIsNone(self.s3("public_url =\n").public_url)

    def test_bad_public_url(self):
        """A public URL that is not http(s), or has a query or fragment, is refused."""
        for value in ("ftp://h/", "downloads.internal.example", "https://", "https://h/?x=1",
                      "https://h/#top"):
            message = self.refused_s3("public_url", value)
            self.assertIn("expected an http:// or https:// URL with no query", message)

    def test_multipart_threshold(self):
        """The multipart threshold is a size from 5M to 5G."""
        self.assertEqual(self.s3("multipart_threshold = 5M\n").multipart_threshold, 5 << 20)
        self.assertEqual(self.s3("multipart_threshold = 5G\n").multipart_threshold, 5 << 30)
        self.assertEqual(self.s3("multipart_threshold = 16MiB\n").multipart_threshold, 16 << 20)

    def test_bad_multipart_threshold(self):
        """Below S3's smallest part, above its largest, or not a size is refused."""
        for value in ("4M", "5242879", "6G", "1T"):
            message = self.refused_s3("multipart_threshold", value)
            self.assertIn("expected a size from 5M (S3's smallest part) to 5G", message)
        self.assertIn("expected a size such as 100M", self.refused_s3("multipart_threshold", "x"))

    def test_bucket_snapshot(self):
        """C{bucket_snapshot} is a yes/no switch, with the usual spellings, in any case."""
        for value in ("yes", "YES", "true", "On", "1"):
            self.assertIs(self.s3(f"bucket_snapshot = {value}\n").bucket_snapshot, True, value)
        for value in ("no", "No", "false", "OFF", "0"):
            self.assertIs(self.s3(f"bucket_snapshot = {value}\n").bucket_snapshot, False, value)
        message = self.refused_s3("bucket_snapshot", "maybe")
        self.assertIn("expected yes or no (or true/false, on/off, 1/0)", message)

    def test_backend_s3(self):
        """C{[storage] backend} accepts C{s3}, in any case."""
        config = load_config(self.write("[storage]\nbackend = S3\n[s3]\nbucket = pypid\n"))
        self.assertEqual(config.storage.backend, "s3")
        self.assertEqual(config.stores["s3"].bucket, "pypid")


class S3CrossKeyTests(ConfigFiles, SynchronousTestCase):
    """Tests for the checks between C{[s3]} keys, blamed on the file or on C{--set}."""

    def set_refused(self, overrides, path=None):
        """Assert C{overrides} are refused; return the one-line message."""
        e = self.assertRaises(ConfigError, load_config, path, overrides)
        self.assertNotIn("\n", str(e))
        return str(e)

    def test_bucket_required(self):
        """With backend = s3, an empty bucket is refused, naming [s3] bucket."""
        message = self.refused("[storage]\nbackend = s3\n")
        self.assertIn(": [s3] bucket: required for backend = s3", message)
        message = self.refused("[storage]\nbackend = s3\n[s3]\nbucket =\n")
        self.assertIn(": [s3] bucket: required for backend = s3", message)

    def test_bucket_required_blames_set(self):
        """The missing bucket is blamed on the C{--set} that chose the backend, or emptied it."""
        message = self.set_refused([("storage", "backend", "s3")])
        self.assertTrue(message.startswith(
            "--set storage.backend: [s3] bucket: required for backend = s3"), message)
        path = self.write("[storage]\nbackend = s3\n[s3]\nbucket = pypid\n")
        message = self.set_refused([("s3", "bucket", "")], path)
        self.assertTrue(message.startswith("--set s3.bucket: [s3] bucket: required"), message)
        path = self.write("[storage]\nbackend = s3\n")
        message = self.set_refused([("s3", "region", "eu-west-3")], path)
        self.assertTrue(message.startswith(f"{path}: [s3] bucket: required"), message)

    def test_bucket_optional_locally(self):
        """With the local backend the bucket may stay empty."""
        self.assertEqual(load_config(self.write("[s3]\nregion = eu-west-3\n")).stores["s3"].bucket, "")

    def test_key_pairs(self):
        """An access key without a secret key, or the reverse, names the missing one."""
        message = self.refused("[s3]\naccess_key = AKID\n")
        self.assertIn(": [s3] secret_key: required when access_key is set", message)
        message = self.refused("[s3]\nsecret_key = hidden-secret\n")
        self.assertIn(": [s3] access_key: required when secret_key is set", message)
        self.assertNotIn("hidden-secret", message)
        message = self.refused("[s3]\nsession_token = token\n")
        self.assertIn(": [s3] session_token: only allowed with access_key and secret_key",
                      message)
        message = self.refused("[s3]\naccess_key = AKID\nsession_token = token\n")
        self.assertIn(": [s3] secret_key: required when access_key is set", message)

    def test_key_pairs_blame_set(self):
        """A key given with C{--set} without its partner is blamed on that C{--set}."""
        message = self.set_refused([("s3", "access_key", "AKID")])
        self.assertEqual(message, "--set s3.access_key: [s3] secret_key: required when "
                                  "access_key is set; or leave both empty for the standard "
                                  "credentials (environment, shared files, instance role)")
        message = self.set_refused([("s3", "session_token", "t")])
        self.assertTrue(message.startswith("--set s3.session_token: [s3] session_token:"),
                        message)

    def test_buffer_time_below_expire_after(self):
        """buffer_time must be less than expire_after; the error names buffer_time."""
        message = self.refused("[s3]\nexpire_after = 5m\n")
        self.assertIn(": [s3] buffer_time: must be less than expire_after (300 seconds)",
                      message)
        message = self.refused("[s3]\nexpire_after = 1h\nbuffer_time = 2h\n")
        self.assertIn(": [s3] buffer_time: must be less than expire_after (3600 seconds)",
                      message)
        s3 = load_config(self.write("[s3]\nexpire_after = 10m\nbuffer_time = 599\n")).stores["s3"]
        self.assertEqual((s3.expire_after, s3.buffer_time), (600.0, 599.0))

    def test_buffer_time_blames_set(self):
        """A C{--set} of either duration that breaks the order is named."""
        message = self.set_refused([("s3", "expire_after", "5m")])
        self.assertTrue(message.startswith("--set s3.expire_after: [s3] buffer_time: must be "
                                           "less than expire_after"), message)
        message = self.set_refused([("s3", "buffer_time", "2d")])
        self.assertTrue(message.startswith("--set s3.buffer_time: [s3] buffer_time:"), message)

    def test_virtual_dotted_https_refused(self):
        """Virtual addressing, a bucket with dots and https are refused together."""
        message = self.refused("""
            [s3]
            bucket = pypid.packages
            endpoint_url = https://s3.internal.example
            addressing = virtual
            """)
        self.assertIn(": [s3] addressing: addressing = virtual puts the bucket name in the "
                      "host name", message)
        self.assertIn("fails TLS certificate checks over https: set addressing = path", message)
        message = self.refused("[s3]\nbucket = pypid.packages\n")
        self.assertIn(": [s3] addressing: addressing is virtual (the automatic choice without "
                      "an endpoint_url)", message)
        message = self.set_refused([("s3", "bucket", "a.b.c")])
        self.assertTrue(message.startswith("--set s3.bucket: [s3] addressing:"), message)

    def test_dotted_bucket_allowed(self):
        """A dotted bucket works with path addressing, or virtual addressing over http."""
        s3 = load_config(self.write("[s3]\nbucket = pypid.packages\naddressing = path\n")).stores["s3"]
        self.assertEqual(s3.addressing, "path")
        s3 = load_config(self.write("""
            [s3]
            bucket = pypid.packages
            endpoint_url = https://s3.internal.example
            """)).stores["s3"]
        self.assertEqual(s3.addressing, "path")
        s3 = load_config(self.write("""
            [s3]
            bucket = pypid.packages
            endpoint_url = http://s3.internal.example
            addressing = virtual
            """)).stores["s3"]
        self.assertEqual(s3.addressing, "virtual")

    def test_virtual_ip_endpoint_refused(self):
        """Virtual addressing cannot put a bucket in front of an IP address endpoint."""
        for endpoint in ("http://127.0.0.1:9000", "https://[::1]:9000"):
            message = self.refused(f"[s3]\nbucket = pypid\nendpoint_url = {endpoint}\n"
                                   "addressing = virtual\n")
            self.assertIn(": [s3] addressing: addressing = virtual puts the bucket name in the "
                          "host name, which an endpoint_url with an IP address cannot have",
                          message)

    def test_multipart_threshold_parts(self):
        """With backend = s3 the threshold must allow max_upload_size in 10000 parts."""
        message = self.refused("[pypid]\nmax_upload_size = 1T\n[storage]\nbackend = s3\n"
                               "[s3]\nbucket = pypid\n")
        self.assertIn(": [s3] multipart_threshold: too small for [pypid] max_upload_size: S3 "
                      "allows at most 10000 parts, so it must be at least 109951163 bytes",
                      message)
        config = load_config(self.write("[pypid]\nmax_upload_size = 1T\n[storage]\n"
                                        "backend = s3\n[s3]\nbucket = pypid\n"
                                        "multipart_threshold = 105M\n"))
        self.assertEqual(config.stores["s3"].multipart_threshold, 105 << 20)
        config = load_config(self.write("[pypid]\nmax_upload_size = 1T\n"))
        self.assertEqual(config.stores["s3"].multipart_threshold, 64 << 20)
        message = self.set_refused([("storage", "backend", "s3"), ("s3", "bucket", "pypid"),
                                    ("pypid", "max_upload_size", "1T")])
        self.assertTrue(message.startswith(
            "--set pypid.max_upload_size: [s3] multipart_threshold:"), message)


class SecretReprTests(ConfigFiles, SynchronousTestCase):
    """The secret key and session token never show in a C{repr} or C{str}."""

    def test_hidden(self):
        """repr and str of the whole configuration and of its [s3] part hide both secrets."""
        config = load_config(self.write("""
            [s3]
            access_key = AKIDEXAMPLE
            secret_key = VerySecretKeyValue
            session_token = VerySecretTokenValue
            """))
        self.assertEqual(config.stores["s3"].secret_key, "VerySecretKeyValue")
        self.assertEqual(config.stores["s3"].session_token, "VerySecretTokenValue")
        for text in (repr(config), str(config), repr(config.stores["s3"]), str(config.stores["s3"])):
            self.assertNotIn("VerySecret", text)
            self.assertIn("secret_key='<hidden>'", text)
            self.assertIn("session_token='<hidden>'", text)
            self.assertIn("access_key='AKIDEXAMPLE'", text)

    def test_unset_shown_as_none(self):
        """An unset secret shows as None, so a repr still tells whether one is configured."""
        text = repr(load_config(None).stores["s3"])
        self.assertIn("secret_key=None", text)
        self.assertIn("session_token=None", text)


class UpstreamTests(ConfigFiles, SynchronousTestCase):
    """Tests for each key of the C{[upstream]} section on its own."""

    def upstream(self, text):
        """Load a file with an C{[upstream]} section of C{text}; return its L{UpstreamConfig}."""
        return load_config(self.write("[upstream]\n" + textwrap.dedent(text))).upstream

    def refused_upstream(self, key, value):
        """Assert C{key = value} in C{[upstream]} is refused naming file and key; return it."""
        message = self.refused(f"[upstream]\n{key} = {value}\n")
        self.assertIn(f": [upstream] {key}: ", message)
        return message

    def test_every_key(self):
        """Every key of the section is read and parsed."""
        upstream = self.upstream("""
            mode = Cache
            url = https://upstream.example/simple
            ttl = 1h
            offline = yes
            private = acme-* Corp.*
                internal_tool
            merge = shared-lib
            min_age = 7d
            min_age_exempt = acme-*
                security.fixes
            hosts = files.upstream.example mirror.upstream.example:8443
            timeout = 5s
            max_page_size = 5M
            """)
        self.assertEqual(upstream, UpstreamConfig(
            mode="cache",
            url="https://upstream.example/simple/",
            ttl=3600.0,
            offline=True,
            private=("acme-*", "corp-*", "internal-tool"),
            merge=("shared-lib",),
            min_age=604800.0,
            min_age_exempt=("acme-*", "security-fixes"),
            hosts=("upstream.example", "files.upstream.example", "mirror.upstream.example:8443"),
            timeout=5.0,
            max_page_size=5 << 20,
        ))

    def test_mode(self):
        """C{mode} is none, redirect or cache, in any case."""
        self.assertEqual(self.upstream("mode = NONE\n").mode, "none")
        config = self.upstream("mode = Redirect\nurl = https://upstream.example/simple/\n")
        self.assertEqual(config.mode, "redirect")
        config = self.upstream("mode = cache\nurl = https://upstream.example/simple/\n")
        self.assertEqual(config.mode, "cache")

    def test_bad_mode(self):
        """Another mode is refused, listing the allowed ones."""
        for value in ("proxy", "fallback", "", "yes"):
            message = self.refused_upstream("mode", value)
            self.assertIn("expected one of: none, redirect, cache", message)

    def test_url(self):
        """The URL keeps exactly one trailing slash; its scheme and host are lowercased."""
        cases = {
            "https://upstream.example/simple/": "https://upstream.example/simple/",
            "https://upstream.example/simple": "https://upstream.example/simple/",
            "https://upstream.example/simple///": "https://upstream.example/simple/",
            "https://upstream.example": "https://upstream.example/",
            "https://upstream.example/": "https://upstream.example/",
            "HTTPS://Upstream.EXAMPLE/Simple/": "https://upstream.example/Simple/",
            "http://127.0.0.1:8081/simple/": "http://127.0.0.1:8081/simple/",
            "http://localhost:8081/root/pypi/+simple/": "http://localhost:8081/root/pypi/+simple/",
            "https://upstream.example/simple/%7Eteam": "https://upstream.example/simple/%7Eteam/",
        }
        for value, url in cases.items():
            self.assertEqual(self.upstream(f"url = {value}\n").url, url, value)
        self.assertIsNone(self.upstream("url =\n").url)

    def test_bad_url(self):
        """Other schemes, no host, a query, a fragment or a bad host or port are refused."""
        for value in ("ftp://upstream.example/simple/", "upstream.example/simple/",
                      "https://", "https:///simple/", "https://upstream.example/?a=1",
                      "https://upstream.example/simple/?", "https://upstream.example/#x",
                      "https://upstream.example/simple/#", "https://upstream.example:0/",
                      "https://upstream.example:99999/", "https://upstream.example:port/",
                      "https://upstream.example:/", "https://[::1]:8081/simple/",
                      "https://upstream_example/", "https://-upstream.example/",
                      "https://upstream..example/", "https://999.1.1.1/",
                      "https://upstream.example/a b/", "https://upstream.example/\x7f"):
            message = self.refused_upstream("url", value)
            self.assertIn("expected the upstream's simple index root: an http:// or https:// "
                          "URL with a host and no query or fragment, such as "
                          "https://upstream.example/simple/", message)

    def test_url_credentials(self):
        """A user name or password in the URL is refused, saying why, without repeating it."""
        for value in ("https://alice:hunter2-secret@upstream.example/simple/",
                      "https://hunter2-secret@upstream.example/simple/",
                      "https://:hunter2-secret@upstream.example/"):
            message = self.refused_upstream("url", value)
            self.assertIn("a user name or password in the URL is not allowed: it would show "
                          "in logs and error messages", message)
            self.assertNotIn("hunter2-secret", message)
        e = self.assertRaises(ConfigError, load_config, None, [
            ("upstream", "url", "https://alice:hunter2-secret@upstream.example/")])
        self.assertTrue(str(e).startswith("--set upstream.url: [upstream] url: a user name "
                                          "or password"), str(e))
        self.assertNotIn("hunter2-secret", str(e))

    def test_durations(self):
        """ttl and timeout are durations."""
        upstream = self.upstream("ttl = 90\ntimeout = 1.5m\n")
        self.assertEqual((upstream.ttl, upstream.timeout), (90.0, 90.0))
        self.assertEqual(self.upstream("ttl = 1d\n").ttl, 86400.0)

    def test_bad_durations(self):
        """A bad ttl or timeout is refused with the allowed forms; zero is refused too."""
        for key in ("ttl", "timeout"):
            for value in ("soon", "-1", "5 minutes", "", "1h30m"):
                message = self.refused_upstream(key, value)
                self.assertIn("expected a duration such as 30 (seconds)", message)
            self.assertIn("expected a duration greater than 0", self.refused_upstream(key, "0"))

    def test_offline(self):
        """C{offline} is a yes/no switch, with the usual spellings, in any case."""
        for value in ("yes", "TRUE", "on", "1"):
            self.assertIs(self.upstream(f"offline = {value}\n").offline, True, value)
        for value in ("No", "false", "OFF", "0"):
            self.assertIs(self.upstream(f"offline = {value}\n").offline, False, value)
        message = self.refused_upstream("offline", "sometimes")
        self.assertIn("expected yes or no (or true/false, on/off, 1/0)", message)

    def test_patterns(self):
        """Names and globs are normalized like project names, keeping their glob characters."""
        cases = {
            "": (),
            "acme-*": ("acme-*",),
            "corp.*": ("corp-*",),
            "Corp_*  corp-*\n  CORP.*": ("corp-*",),
            "My__Project.Name": ("my-project-name",),
            "acme-?? lib[0-9] *._internal": ("acme-??", "lib[0-9]", "*-internal"),
            "[Aa]cme-tool": ("[aa]cme-tool",),
            "*": ("*",),
        }
        for key in ("private", "merge", "min_age_exempt"):
            for value, patterns in cases.items():
                upstream = self.upstream(f"{key} = {value}\n")
                self.assertEqual(getattr(upstream, key), patterns, (key, value))

    def test_patterns_on_lines(self):
        """Patterns may be given one per line, as a multi-line value."""
        upstream = self.upstream("""
            private =
                acme-*
                corp.*  internal-tool
            """)
        self.assertEqual(upstream.private, ("acme-*", "corp-*", "internal-tool"))

    def test_bad_patterns(self):
        """Other characters, unclosed brackets and separator-only patterns are refused, quoted."""
        for key in ("private", "merge", "min_age_exempt"):
            for value in ("acme,corp", "acme/*", "acme!", "[!a]cme", "café", "acme+1"):
                message = self.refused_upstream(key, value)
                self.assertIn(f"{value!r}: expected project names or patterns of letters, "
                              "digits, '-', '_', '.' and the glob characters", message)
            for value in ("acme[", "acme]", "a[]b", "[[a]]", "a[b[c]"):
                message = self.refused_upstream(key, value)
                self.assertIn(f"{value!r}: every '[' must be closed by a ']'", message)
            for value in ("-", "._-", "..."):
                message = self.refused_upstream(key, value)
                self.assertIn(f"{value!r}: not a project name or pattern", message)
            message = self.refused_upstream(key, "acme-* corp,*")
            self.assertIn("'corp,*'", message)

    def test_min_age(self):
        """C{min_age} is a duration, or 0 or empty for off (stored as 0.0)."""
        cases = {"": 0.0, "0": 0.0, "0s": 0.0, "0.0d": 0.0, "7d": 604800.0, "12h": 43200.0,
                 "90": 90.0}
        for value, seconds in cases.items():
            min_age = self.upstream(f"min_age = {value}\n").min_age
            self.assertEqual(min_age, seconds, value)
            self.assertIsInstance(min_age, float)

    def test_bad_min_age(self):
        """A min_age that is not a duration is refused, saying 0 turns it off."""
        for value in ("a week", "-1d", "1w", "7d12h", "off"):
            message = self.refused_upstream("min_age", value)
            self.assertIn("expected a duration such as 30 (seconds), 30s, 5m, 12h, 7d or 1.5h; "
                          "or 0 (or empty) for off", message)

    def test_hosts(self):
        """
        Hosts are lowercased and follow the URL's host, once each; a port is
        kept; C{*} (any host at a public address) is the default, and is
        left out when the hosts are named without it.
        """
        url = "url = https://upstream.example/simple/\n"
        self.assertEqual(self.upstream(url).hosts, ("upstream.example", "*"))
        self.assertEqual(self.upstream(url + "hosts =\n").hosts, ("upstream.example",))
        self.assertEqual(self.upstream(url + "hosts = * files.example *\n").hosts,
                         ("upstream.example", "*", "files.example"))
        upstream = self.upstream(url + "hosts = Files.Upstream.Example\n"
                                       "  10.0.0.7:8080 upstream.example files.upstream.example\n")
        self.assertEqual(upstream.hosts, ("upstream.example", "files.upstream.example",
                                          "10.0.0.7:8080"))
        upstream = self.upstream("url = http://127.0.0.1:8081/simple/\n"
                                 "hosts = 127.0.0.1:8082 localhost:08081\n")
        self.assertEqual(upstream.hosts, ("127.0.0.1:8081", "127.0.0.1:8082", "localhost:8081"))

    def test_hosts_without_url(self):
        """Without a URL (mode = none) the hosts are only the listed ones."""
        self.assertEqual(self.upstream("hosts =\n").hosts, ())
        self.assertEqual(self.upstream("hosts = files.upstream.example\n").hosts,
                         ("files.upstream.example",))

    def test_bad_hosts(self):
        """A host that is not a host name or IPv4 address, or a bad port, is refused, quoted."""
        for value in ("upstream_example", "-upstream.example", "upstream-.example",
                      "upstream..example", ".upstream.example", "upstream.example.",
                      "[::1]", "::1", "999.0.0.1", "10.0.0", "upstream.example:0",
                      "upstream.example:65536", "upstream.example:", "upstream.example:http",
                      "a" * 64 + ".example", "upstréam.example", "upstream.example:80:81"):
            message = self.refused_upstream("hosts", value)
            self.assertIn(f"{value!r}: expected a host name of letters, digits, '.' and '-', "
                          "or an IPv4 address, with an optional :port from 1 to 65535", message)
        for value in ("https://files.upstream.example/", "alice:secret@files.upstream.example"):
            message = self.refused_upstream("hosts", value)
            self.assertIn("expected host names (with an optional :port), not URLs", message)
            self.assertNotIn("secret", message)

    def test_max_page_size(self):
        """C{max_page_size} is a size, as for max_upload_size."""
        self.assertEqual(self.upstream("max_page_size = 512K\n").max_page_size, 512 << 10)
        self.assertEqual(self.upstream("max_page_size = 1G\n").max_page_size, 1 << 30)
        for value in ("huge", "0", "1.5M"):
            message = self.refused_upstream("max_page_size", value)
            self.assertIn("expected a size", message)

    def test_bounds(self):
        """The bounds a hostile upstream meets: their defaults, forms and refusals."""
        defaults = self.upstream("")
        self.assertEqual((defaults.max_page_files, defaults.page_cache_size,
                          defaults.max_file_size, defaults.max_downloads,
                          defaults.download_space, defaults.max_misses_per_address,
                          defaults.fetch_deadline),
                         (100_000, 256 << 20, 1 << 30, 4, 2 << 30, 600, 600.0))
        config = self.upstream("max_page_files = 5000\npage_cache_size = 64M\n"
                               "max_file_size = 100M\nmax_downloads = 2\n"
                               "download_space = 200M\nmax_misses_per_address = 30\n"
                               "fetch_deadline = 2m\n")
        self.assertEqual((config.max_page_files, config.page_cache_size, config.max_file_size,
                          config.max_downloads, config.download_space,
                          config.max_misses_per_address, config.fetch_deadline),
                         (5000, 64 << 20, 100 << 20, 2, 200 << 20, 30, 120.0))
        for key, value, expected in (
                ("max_page_files", "0", "expected a whole number from 1 to 10000000"),
                ("max_downloads", "many", "expected a whole number from 1 to 1000"),
                ("max_misses_per_address", "-1", "expected a whole number"),
                ("download_space", "lots", "expected a size"),
                ("fetch_deadline", "forever", "expected a duration")):
            self.assertIn(expected, self.refused_upstream(key, value))

    def test_bounds_against_each_other(self):
        """A file cap over the download space, or a deadline under the timeout, is refused."""
        message = self.refused("[upstream]\nmax_file_size = 2G\ndownload_space = 1G\n")
        self.assertIn("[upstream] download_space: smaller than [upstream] max_file_size", message)
        message = self.refused("[upstream]\ntimeout = 30s\nfetch_deadline = 10s\n")
        self.assertIn("[upstream] fetch_deadline: shorter than [upstream] timeout", message)


class UpstreamCrossKeyTests(ConfigFiles, SynchronousTestCase):
    """Tests for the checks between C{[upstream]} keys, blamed on the file or on C{--set}."""

    def set_refused(self, overrides, path=None):
        """Assert C{overrides} are refused; return the one-line message."""
        e = self.assertRaises(ConfigError, load_config, path, overrides)
        self.assertNotIn("\n", str(e))
        return str(e)

    def test_url_required(self):
        """With mode redirect or cache, a missing URL is refused, naming [upstream] url."""
        for mode in ("redirect", "cache"):
            message = self.refused(f"[upstream]\nmode = {mode}\n")
            self.assertIn(f": [upstream] url: required for mode = {mode}: set it to the "
                          "upstream's simple index root, such as "
                          "https://upstream.example/simple/, or set mode = none", message)
            message = self.refused(f"[upstream]\nmode = {mode}\nurl =\n")
            self.assertIn(": [upstream] url: required", message)

    def test_url_required_blames_set(self):
        """The missing URL is blamed on the C{--set} that chose the mode, or emptied the URL."""
        message = self.set_refused([("upstream", "mode", "cache")])
        self.assertEqual(message, "--set upstream.mode: [upstream] url: required for mode = "
                                  "cache: set it to the upstream's simple index root, such as "
                                  "https://upstream.example/simple/, or set mode = none")
        path = self.write("[upstream]\nmode = redirect\nurl = https://upstream.example/simple/\n")
        message = self.set_refused([("upstream", "url", "")], path)
        self.assertTrue(message.startswith("--set upstream.url: [upstream] url: required"),
                        message)
        path = self.write("[upstream]\nmode = cache\n")
        message = self.set_refused([("upstream", "ttl", "1h")], path)
        self.assertTrue(message.startswith(f"{path}: [upstream] url: required"), message)

    def test_url_optional_without_upstream(self):
        """With mode = none the URL may be empty, or set and kept for later."""
        self.assertIsNone(load_config(self.write("[upstream]\nmode = none\n")).upstream.url)
        upstream = load_config(self.write(
            "[upstream]\nurl = https://upstream.example/simple/\n")).upstream
        self.assertEqual((upstream.mode, upstream.url),
                         ("none", "https://upstream.example/simple/"))

    def test_patterns_without_upstream(self):
        """private, merge and min_age_exempt are accepted with mode = none."""
        upstream = load_config(self.write("""
            [upstream]
            mode = none
            private = acme-*
            merge = shared-lib
            min_age = 7d
            min_age_exempt = acme-*
            """)).upstream
        self.assertEqual((upstream.private, upstream.merge, upstream.min_age_exempt),
                         (("acme-*",), ("shared-lib",), ("acme-*",)))

    def test_private_and_merge(self):
        """A pattern in both private and merge is refused, naming both keys."""
        message = self.refused("""
            [upstream]
            private = acme-* corp.*
            merge = shared-lib Corp_*
            """)
        self.assertIn(": [upstream] merge: 'corp-*' is also in [upstream] private: a private "
                      "name never shows upstream files, so it cannot be merged; remove it "
                      "from one of the two", message)
        message = self.set_refused([("upstream", "private", "Shared.Lib")],
                                   self.write("[upstream]\nmerge = shared-lib\n"))
        self.assertTrue(message.startswith("--set upstream.private: [upstream] merge: "
                                           "'shared-lib' is also in [upstream] private"), message)
        message = self.set_refused([("upstream", "merge", "acme-*")],
                                   self.write("[upstream]\nprivate = acme-*\n"))
        self.assertTrue(message.startswith("--set upstream.merge: [upstream] merge:"), message)

    def test_private_and_merge_apart(self):
        """Different patterns in private and merge, and a private min_age exemption, are fine."""
        upstream = load_config(self.write("""
            [upstream]
            private = acme-*
            merge = acme
            min_age_exempt = acme-*
            """)).upstream
        self.assertEqual((upstream.private, upstream.merge), (("acme-*",), ("acme",)))

    def test_set_upstream(self):
        """The whole section can come from C{--set}, without a file."""
        upstream = load_config(None, [("upstream", "mode", "redirect"),
                                      ("upstream", "url", "http://127.0.0.1:8081/simple")]
                               ).upstream
        self.assertEqual((upstream.mode, upstream.url, upstream.hosts),
                         ("redirect", "http://127.0.0.1:8081/simple/", ("127.0.0.1:8081", "*")))


class AccessConfigTests(SynchronousTestCase):
    """[groups], [acl] and [auth] admins."""

    USERS = "[users]\nalice = {h}\nbob = {h}\n"

    def load(self, text):
        """Load a configuration holding two users and C{text}."""
        h = hash_password("pw", FAST)
        path = self.mktemp()
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.USERS.format(h=h) + text)
        return load_config(path)

    def test_parsed(self):
        """Groups, admins and rules are read, patterns normalized."""
        config = self.load("[groups]\ndev = alice bob\n[auth]\nadmins = alice\n"
                           "[acl]\nAcme.* = group:dev rw, everyone r\n")
        self.assertEqual(dict(config.groups), {"dev": frozenset({"alice", "bob"})})
        self.assertEqual(config.auth.admins, ("alice",))
        [rule] = config.acl
        self.assertEqual(rule.pattern, "acme-*")

    def test_unknown_names(self):
        """Unknown users and groups are errors naming the section and key."""
        for text, where in (("[groups]\ndev = carol\n", "[groups] dev"),
                            ("[auth]\nadmins = carol\n", "[auth] admins"),
                            ("[acl]\nx = user:carol r\n", "[acl] x"),
                            ("[acl]\nx = group:ops r\n", "[acl] x"),
                            ("[acl]\nx = nobody r\n", "[acl] x")):
            with self.assertRaises(ConfigError) as caught:
                self.load(text)
            self.assertIn(where, str(caught.exception))


class PageCacheSizeTests(ConfigFiles, SynchronousTestCase):
    """C{[pypid] page_cache_size}: the bytes of rendered project pages kept."""

    def test_default(self):
        """Without the key, 64 MiB, the index's own default."""
        from pypid.core.indexes.rendered_pages import PAGE_CACHE_SIZE
        self.assertEqual(load_config(None).server.page_cache_size, 64 << 20)
        self.assertEqual(load_config(None).server.page_cache_size, PAGE_CACHE_SIZE)

    def test_sizes(self):
        """Sizes read as the other size keys do, and C{0} (keep none) is allowed."""
        for value, size in (("256M", 256 << 20), ("1G", 1 << 30), ("512KiB", 512 << 10),
                            ("1048576", 1 << 20), (" 0 ", 0)):
            path = self.write(f"[pypid]\npage_cache_size = {value}\n")
            self.assertEqual(load_config(path).server.page_cache_size, size)

    def test_bad(self):
        """A bad value names the key and the forms allowed, 0 among them."""
        for value in ("lots", "-1", "64X", "1.5G", ""):
            message = self.refused(f"[pypid]\npage_cache_size = {value}\n")
            self.assertIn("[pypid] page_cache_size: expected a size such as 64M", message)
            self.assertIn("or 0 to keep none", message)

    def test_override_blamed(self):
        """A bad value from C{--set} is reported under that option."""
        e = self.assertRaises(ConfigError, load_config, None,
                              [("pypid", "page_cache_size", "big")])
        self.assertTrue(str(e).startswith("--set pypid.page_cache_size: "
                                          "[pypid] page_cache_size: expected"), str(e))


class ClientCountingKeysTests(ConfigFiles, SynchronousTestCase):
    """C{[pypid] trusted_proxies} and C{[auth] throttle_ipv6_prefix} (issue 25, 3 and 4)."""

    def test_defaults(self):
        """No proxy is trusted, and an IPv6 client is its /64."""
        config = load_config(None)
        self.assertEqual(config.server.trusted_proxies, ())
        self.assertEqual(config.auth.throttle_ipv6_prefix, 64)

    def test_read(self):
        """Addresses and networks of proxies, and a prefix from 1 to 128."""
        config = load_config(self.write("""
            [pypid]
            trusted_proxies = 127.0.0.1 ::1 10.0.0.0/24
            [auth]
            throttle_ipv6_prefix = 56
            """))
        self.assertEqual(config.server.trusted_proxies, tuple(
            ipaddress.ip_network(n) for n in ("127.0.0.1/32", "::1/128", "10.0.0.0/24")))
        self.assertEqual(config.auth.throttle_ipv6_prefix, 56)

    def test_ipv4_mapped(self):
        """
        A proxy written as an IPv4-mapped IPv6 address (as a dual-stack
        listener shows its peers) is its IPv4 address, as the peer is read
        (L{pypid.core.access.addresses.client_ip}), so its header is believed
        (before the fix: never, silently: every client behind it was one);
        the mapped network of every IPv4 address is refused as C{0.0.0.0/0}.
        """
        from pypid.core.access.forwarded import TrustedProxies

        config = load_config(self.write("""
            [pypid]
            trusted_proxies = ::ffff:10.0.0.1 ::ffff:192.0.2.0/120
            """))
        self.assertEqual(config.server.trusted_proxies, (
            ipaddress.ip_network("10.0.0.1/32"), ipaddress.ip_network("192.0.2.0/24")))
        proxies = TrustedProxies(config.server.trusted_proxies)
        self.assertEqual(proxies.client("::ffff:10.0.0.1", [b"203.0.113.9"]),
                         ("203.0.113.9", False))
        message = self.refused("[pypid]\ntrusted_proxies = ::ffff:0:0/96\n")
        self.assertIn("[pypid] trusted_proxies: 0.0.0.0/0: would trust every client's",
                      message)

    def test_refused(self):
        """A name, every address, or a prefix out of range stops start-up, naming the key."""
        message = self.refused("[pypid]\ntrusted_proxies = proxy.internal\n")
        self.assertIn("[pypid] trusted_proxies: 'proxy.internal' is not an IP address", message)
        for every in ("0.0.0.0/0", "::/0"):
            message = self.refused(f"[pypid]\ntrusted_proxies = 127.0.0.1 {every}\n")
            self.assertIn(f"[pypid] trusted_proxies: {every}: would trust every client's", message)
        for value in ("0", "129", "64.5", "/64"):
            message = self.refused(f"[auth]\nthrottle_ipv6_prefix = {value}\n")
            self.assertIn("[auth] throttle_ipv6_prefix: expected a whole number from 1 to 128",
                          message)


#: The fields of L{Config} and L{UpstreamConfig} before issue 26 (the
#: single-index configuration): what today's files must still give, with
#: the new fields at their defaults.
_CONFIG_FIELDS_BEFORE_26 = (
    "source", "server", "storage", "stores", "auth", "upstream", "users", "tls", "groups", "acl",
    "metrics", "ldap", "oidc", "publishers")
_UPSTREAM_FIELDS_BEFORE_26 = (
    "mode", "url", "ttl", "offline", "private", "merge", "min_age", "min_age_exempt", "hosts",
    "timeout", "max_page_size", "max_page_files", "page_cache_size", "max_file_size",
    "max_downloads", "download_space", "max_misses_per_address", "fetch_deadline")


class SingleIndexUnchangedTests(ConfigFiles, SynchronousTestCase):
    """Today's configurations give the L{Config} they gave before named indexes existed."""

    def assertUnchanged(self, config):
        """C{config} equals the one built from the fields of before, the new ones defaulted."""
        upstream = UpstreamConfig(**{name: getattr(config.upstream, name)
                                     for name in _UPSTREAM_FIELDS_BEFORE_26})
        before = {name: getattr(config, name) for name in _CONFIG_FIELDS_BEFORE_26}
        before["upstream"] = upstream
        self.assertEqual(Config(**before), config)
        self.assertEqual(config.indexes, {})
        self.assertEqual(config.upstreams, {})
        self.assertIsNone(config.upstream.credentials)

    def test_defaults(self):
        """The embedded defaults are unchanged."""
        self.assertUnchanged(load_config(None))

    def test_shipped_example(self):
        """C{etc/pypid.ini}, and with its [upstream] and [s3] examples uncommented, is unchanged."""
        text = _shipped_example()
        if text is None:
            self.skipTest("no etc/pypid.ini in this checkout")
        for variant in (text, _uncomment_section(text, "upstream"),
                        _uncomment_section(text, "s3")):
            self.assertUnchanged(load_config(self.write(variant)))

    def test_every_fixed_key(self):
        """A file that sets keys of every fixed section is unchanged too."""
        self.assertUnchanged(load_config(self.write(f"""
            [auth]
            read = authenticated
            admins = alice
            [users]
            alice = {ALICE_HASH}
            [groups]
            dev = alice
            [acl]
            acme-* = group:dev rw
            [upstream]
            mode = cache
            url = https://upstream.example/simple/
            private = acme-*
            """)))


class IndexSectionTests(ConfigFiles, SynchronousTestCase):
    """C{[index:NAME]} sections parsed into L{IndexConfig}s (issue 26, stage 1)."""

    def test_hosted_and_view(self):
        """A hosted index, an index based on it and a view with every filter, in file order."""
        config = load_config(self.write(f"""
            [users]
            alice = {ALICE_HASH}
            [groups]
            release-managers = alice
            [upstream]
            mode = cache
            url = https://upstream.example/simple/
            [upstream:vendor]
            mode = cache
            url = https://upstream.example/vendor/
            [index:release]
            bases = upstream:vendor, upstream:default
            upload = group:release-managers user:alice
            [index:staging]
            bases = release
            [index:prod]
            view = yes
            bases = release staging
            read = authenticated
            min_age = 7d
            as_of = 2026-06-01T02:00:00+02:00
            include = Acme.* widget
            exclude = acme_experimental-*
            prereleases = Hide
            yanked = hide
            """))
        self.assertEqual(list(config.indexes), ["release", "staging", "prod"])
        self.assertEqual(config.indexes["release"], IndexConfig(
            name="release", view=False,
            bases=(BaseRef(True, "vendor"), BaseRef(True, "default")),
            read=("everyone",), upload=("group:release-managers", "user:alice")))
        self.assertEqual(config.indexes["staging"], IndexConfig(
            name="staging", view=False, bases=(BaseRef(False, "release"),),
            read=("everyone",), upload=("authenticated",)))
        self.assertEqual(config.indexes["prod"], IndexConfig(
            name="prod", view=True,
            bases=(BaseRef(False, "release"), BaseRef(False, "staging")),
            read=("authenticated",), upload=(), min_age=604800.0,
            as_of=datetime(2026, 6, 1, 0, 0, tzinfo=UTC),
            include=("acme-*", "widget"), exclude=("acme-experimental-*",),
            prereleases="hide", yanked="hide"))
        self.assertEqual([str(base) for base in config.indexes["release"].bases],
                         ["upstream:vendor", "upstream:default"])
        self.assertEqual(list(config.upstreams), ["vendor"])
        self.assertEqual(config.upstreams["vendor"].url, "https://upstream.example/vendor/")
        self.assertEqual(config.upstreams["vendor"].hosts, ("upstream.example", "*"))
        self.assertEqual(config.upstream.url, "https://upstream.example/simple/")

    def test_read_follows_auth(self):
        """Without read, an index is read as [auth] read says; an empty read is admins only."""
        config = load_config(self.write("""
            [auth]
            read = authenticated
            [index:a]
            [index:b]
            read =
            upload =
            """))
        self.assertEqual(config.indexes["a"].read, ("authenticated",))
        self.assertEqual(config.indexes["a"].upload, ("authenticated",))
        self.assertEqual(config.indexes["b"].read, ())
        self.assertEqual(config.indexes["b"].upload, ())

    def test_default_index(self):
        """[index:default] takes read and upload; its base is [upstream] when that is on."""
        config = load_config(self.write("""
            [upstream]
            mode = redirect
            url = https://upstream.example/simple/
            [index:default]
            read = authenticated
            """))
        self.assertEqual(config.indexes["default"], IndexConfig(
            name="default", view=False, bases=(BaseRef(True, "default"),),
            read=("authenticated",), upload=("authenticated",)))
        self.assertEqual(load_config(self.write("[index:default]\n")).indexes["default"].bases,
                         ())

    def test_based_on_default(self):
        """A named index may inherit the default index."""
        config = load_config(self.write("[index:staging]\nbases = default\n"))
        self.assertEqual(config.indexes["staging"].bases, (BaseRef(False, "default"),))

    def test_as_of_forms(self):
        """as_of takes Z or an offset, in either case of T and Z, with fractions; kept in UTC."""
        for text, expected in [
                ("2026-06-01T00:00:00Z", datetime(2026, 6, 1, tzinfo=UTC)),
                ("2026-06-01t00:00:00z", datetime(2026, 6, 1, tzinfo=UTC)),
                ("2026-05-31T20:30:00.5-03:30",
                 datetime(2026, 6, 1, 0, 0, 0, 500000, tzinfo=UTC))]:
            config = load_config(self.write(
                f"[index:a]\n[index:v]\nview = yes\nbases = a\nas_of = {text}\n"))
            self.assertEqual(config.indexes["v"].as_of, expected, text)

    def test_set_names_a_section(self):
        """--set spells a named section's key as index:NAME.key, and is blamed for it."""
        config = load_config(None, [("index:prod", "view", "yes"),
                                    ("index:prod", "bases", "default")])
        self.assertTrue(config.indexes["prod"].view)
        e = self.assertRaises(ConfigError, load_config, None,
                              [("index:prod", "view", "yes"), ("index:prod", "upload", "")])
        self.assertEqual(str(e), "--set index:prod.upload: [index:prod] upload: a view takes "
                         "no uploads: remove the key, or set view = no for a hosted index")


#: C{(file text, the error line after "<path>: ")}: every way the named
#: sections are refused, each with its exact line.
_REFUSED = [
    ("[index:simple]\n",
     "[index:simple]: simple is a path of the server (/simple/); choose another name for "
     "the index"),
    ("[index:api]\n",
     "[index:api]: api is a path of the server (/api/); choose another name for the index"),
    ("[index:Prod]\n",
     "[index:Prod]: 'Prod' cannot name an index: a name is 1 to 63 lower-case letters, digits "
     "and '-', starting with a letter or a digit (one URL segment)"),
    ("[index:a.b]\n",
     "[index:a.b]: 'a.b' cannot name an index: a name is 1 to 63 lower-case letters, digits "
     "and '-', starting with a letter or a digit (one URL segment)"),
    ("[index:]\n",
     "[index:]: '' cannot name an index: a name is 1 to 63 lower-case letters, digits "
     "and '-', starting with a letter or a digit (one URL segment)"),
    ("[upstream:-x]\n",
     "[upstream:-x]: '-x' cannot name an upstream: a name is 1 to 63 lower-case letters, "
     "digits and '-', starting with a letter or a digit (one URL segment)"),
    ("[upstream:default]\nmode = cache\nurl = https://upstream.example/simple/\n",
     "[upstream:default]: [upstream] is the default upstream (upstream:default): configure "
     "it there"),
    ("[index:release]\n[acl]\nrelase/acme-* = everyone r\n",
     "[acl] relase/acme-*: 'relase' is not an index of this server (the indexes are default, "
     "release)"),
    ("[acl]\nRe_lease/acme-* = everyone r\n",
     "[acl] Re_lease/acme-*: 'Re_lease' is not an index name: a name is 1 to 63 lower-case "
     "letters, digits and '-', starting with a letter or a digit (one URL segment)"),
    ("[index:release]\n[index:staging]\nbases = relase\n",
     "[index:staging] bases: no index or upstream 'relase'; the indexes are default, release, "
     "staging, the upstreams upstream:NAME"),
    ("[index:a]\nbases = upstream:vendor\n",
     "[index:a] bases: upstream:vendor: there is no [upstream:vendor] section; no upstream "
     "is configured"),
    ("[upstream]\nmode = cache\nurl = https://upstream.example/simple/\n"
     "[upstream:v]\nmode = cache\nurl = https://upstream.example/v/\n"
     "[index:a]\nbases = upstream:vendor\n",
     "[index:a] bases: upstream:vendor: there is no [upstream:vendor] section; the upstreams "
     "are upstream:default, upstream:v"),
    ("[index:a]\nbases = upstream:default\n",
     "[index:a] bases: upstream:default: [upstream] has mode = none; give it a mode and url, "
     "or name another upstream"),
    ("[index:a]\nbases = b\n[index:b]\nbases = a\n",
     "[index:a] bases: a cycle: a -> b -> a"),
    ("[index:x]\n[index:a]\nbases = x b\n[index:b]\nbases = c\n[index:c]\nbases = b\n",
     "[index:b] bases: a cycle: b -> c -> b"),
    ("[index:a]\nbases = a\n",
     "[index:a] bases: a cycle: a -> a"),
    ("[index:a]\nbases = b b\n[index:b]\n",
     "[index:a] bases: 'b' is named twice"),
    ("[index:a]\nbases = upstream:\n",
     "[index:a] bases: 'upstream:': expected an index name or upstream:NAME; a name is 1 to "
     "63 lower-case letters, digits and '-', starting with a letter or a digit (one URL "
     "segment)"),
    ("[index:a]\n[index:prod]\nview = yes\nbases = a\nupload = authenticated\n",
     "[index:prod] upload: a view takes no uploads: remove the key, or set view = no for a "
     "hosted index"),
    ("[index:prod]\nview = yes\n",
     "[index:prod] bases: a view needs bases: the indexes and upstreams it shows"),
    ("[index:a]\nmin_age = 7d\n",
     "[index:a] min_age: only a view (view = yes) takes this key; make a view whose bases "
     "name this index"),
    ("[index:a]\nyanked = show\n",
     "[index:a] yanked: only a view (view = yes) takes this key; make a view whose bases "
     "name this index"),
    ("[index:default]\nbases = upstream:default\n",
     "[index:default] bases: the default index takes only read and upload: it is the index "
     "of today's URLs, with [upstream] as its base"),
    ("[index:default]\nview = no\n",
     "[index:default] view: the default index takes only read and upload: it is the index "
     "of today's URLs, with [upstream] as its base"),
    ("[index:a]\nupload = user:bob\n",
     "[index:a] upload: user:bob: 'bob' is not a user of [users]"),
    ("[index:a]\nread = group:dev\n",
     "[index:a] read: group:dev: 'dev' is not a group of [groups]"),
    ("[index:a]\nread = nobody\n",
     "[index:a] read: 'nobody': a principal is everyone, authenticated, user:NAME or "
     "group:NAME, a name being 1 to 64 letters, digits, '.', '_', '@' or '-'"),
    ("[index:a]\nflavour = vanilla\n",
     "[index:a] flavour: unknown key; the keys are view, bases, read, upload, min_age, as_of, "
     "include, exclude, prereleases, yanked, advisories, advisory_severity, "
     "advisory_waive, recycle_bin, keep_releases, remove_prereleases_after, keep_downloaded, "
     "protect, allow_tag_mismatch"),
    ("[index:a]\n[index:v]\nview = yes\nbases = a\nas_of = 2026-06-01\n",
     "[index:v] as_of: expected an RFC 3339 date and time with its offset, such as "
     "2026-06-01T00:00:00Z; or empty for none"),
    ("[index:a]\n[index:v]\nview = yes\nbases = a\nas_of = 2026-06-01T00:00:00\n",
     "[index:v] as_of: expected an RFC 3339 date and time with its offset, such as "
     "2026-06-01T00:00:00Z; or empty for none"),
    ("[index:a]\n[index:v]\nview = yes\nbases = a\nas_of = 2026-02-30T00:00:00Z\n",
     "[index:v] as_of: expected an RFC 3339 date and time with its offset, such as "
     "2026-06-01T00:00:00Z; or empty for none"),
    ("[index:a]\n[index:v]\nview = yes\nbases = a\nexclude = a/b\n",
     "[index:v] exclude: 'a/b' is not a project name or glob: expected project names or "
     "globs of letters, digits, '-', '_', '.', '*', '?' and '[...]'"),
    ("[index:a]\n[index:v]\nview = yes\nbases = a\nprereleases = maybe\n",
     "[index:v] prereleases: expected one of: show, hide"),
    ("[upstream:vendor]\nurl = https://upstream.example/simple/\n",
     "[upstream:vendor] mode: a named upstream is one pypid reads: set mode = redirect or "
     "cache (mode = none is for [upstream] alone), or remove the section"),
    ("[upstream:vendor]\nmode = cache\n",
     "[upstream:vendor] url: required for mode = cache: set it to the upstream's simple "
     "index root, such as https://upstream.example/simple/, or set mode = none"),
    ("[upstream:vendor]\nmode = cache\nurl = https://upstream.example/simple/\n"
     "max_file_size = 3G\n",
     "[upstream:vendor] download_space: smaller than [upstream:vendor] max_file_size: a file "
     "of that size could never be fetched; raise it or lower max_file_size"),
    ("[upstream:vendor]\nmode = cache\nurl = https://upstream.example/simple/\n"
     "username = svc\n",
     "[upstream:vendor] username: needs a password: set password_file or password_env (or "
     "remove username and give a token)"),
    ("[upstream]\nmode = cache\nurl = https://upstream.example/simple/\n"
     "password_env = HOME\n",
     "[upstream] password_env: a password needs a username: set username"),
    ("[upstream]\nusername = a:b\n",
     "[upstream] username: expected a user name of at most 256 characters, without ':' or "
     "control characters; or empty for none"),
    ("[upstream]\ntoken_env = 1TOKEN\n",
     "[upstream] token_env: expected the name of an environment variable (letters, digits "
     "and '_', not starting with a digit); or empty for none"),
    ("[foo]\n",
     "[foo]: unknown section; the sections are [pypid], [storage], [s3], [azure], [gcs], "
     "[auth], [upstream], [tls], [metrics], [ldap], [oidc], [sso], [advisories], "
     "[attestations], [retention], [acl], [groups], "
     "[namespaces], [publishers], "
     "[users], "
     "[index:NAME], [upstream:NAME] and [webhook:NAME]"),
]


class IndexRefusedTests(ConfigFiles, SynchronousTestCase):
    """Every bad named section is refused with one exact line naming file, section and key."""

    def test_table(self):
        """Each entry of the table is refused with its line."""
        for text, line in _REFUSED:
            path = self.write(text)
            message = self.refused(path=path)
            self.assertEqual(message, f"{path}: {line}", text)

    def test_qualified_rules(self):
        """
        C{[acl]} rules may name the index they are for (C{release/acme-*});
        each index's C{read} and C{upload} become its grants.
        """
        from pypid.core.access.access_rules import IndexGrants
        config = load_config(self.write("""
            [users]
            bob = $argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA
            [index:release]
            upload = user:bob
            [acl]
            release/acme-* = user:bob rw, everyone r
            default/acme-* = everyone r
            acme-* = user:bob r
            """))
        self.assertEqual([(rule.index, rule.pattern) for rule in config.acl],
                         [("release", "acme-*"), ("default", "acme-*"), (None, "acme-*")])
        self.assertEqual(config.index_grants, {"release": IndexGrants(
            frozenset({"everyone"}), frozenset({"user:bob"}))})

    def test_every_reserved_name(self):
        """Every first segment of the server's routes is refused as an index name."""
        for name in sorted(ROUTE_SEGMENTS):
            if not NAME.match(name):
                continue  # (requirements.txt: refused as a name already)
            message = self.refused(f"[index:{name}]\n")
            self.assertIn(f"[index:{name}]: {name} is a path of the server", message)


_SECRET = "s3cr3t-Pa55word-value"


class UpstreamCredentialsTests(ConfigFiles, SynchronousTestCase):
    """Credentials for an upstream: read at load, never shown."""

    def secret_file(self, text=_SECRET + "\n"):
        """A file holding C{text}; its absolute path."""
        path = os.path.abspath(self.mktemp())
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def assertHidden(self, config):
        """The secret is nowhere in the configuration's repr or str."""
        for text in (repr(config), str(config), repr(config.upstream),
                     repr(config.upstreams), repr(config.upstream.credentials)):
            self.assertNotIn(_SECRET, text)

    def test_password_file(self):
        """A username with a password from a file; the final line break is not part of it."""
        config = load_config(self.write(f"""
            [upstream]
            mode = cache
            url = https://upstream.example/simple/
            username = svc
            password_file = {self.secret_file()}
            """))
        self.assertEqual(config.upstream.credentials, UpstreamCredentials("svc", _SECRET))
        self.assertEqual(config.upstream.credentials.secret, _SECRET)
        self.assertIn("UpstreamCredentials(username='svc')", repr(config))
        self.assertHidden(config)

    def test_token_env(self):
        """A token from the environment, for a named upstream."""
        config = load_config(self.write("""
            [upstream:vendor]
            mode = cache
            url = https://upstream.example/simple/
            token_env = VENDOR_TOKEN
            """), environ={"VENDOR_TOKEN": _SECRET})
        self.assertEqual(config.upstreams["vendor"].credentials,
                         UpstreamCredentials(None, _SECRET))
        self.assertIsNone(config.upstream.credentials)
        self.assertHidden(config)

    def test_loopback_http(self):
        """Credentials over plain http:// are allowed to this machine."""
        for host in ("127.0.0.1:8081", "localhost", "127.1.2.3"):
            config = load_config(self.write(f"""
                [upstream]
                mode = cache
                url = http://{host}/simple/
                token_file = {self.secret_file()}
                """))
            self.assertEqual(config.upstream.credentials.secret, _SECRET)

    def test_refused(self):
        """Each refusal names the key and the file or variable, never the secret."""
        missing = os.path.abspath(self.mktemp())
        https = "[upstream]\nmode = cache\nurl = https://upstream.example/simple/\n"
        cases = [
            (https + f"username = svc\npassword_file = {missing}\n", {},
             f"[upstream] password_file: cannot read {missing}: No such file or directory"),
            (https + "username = svc\npassword_env = NOPE\n", {"NOPEX": _SECRET},
             "[upstream] password_env: the environment has no variable NOPE"),
            (https + f"token_file = {self.secret_file('')}\n", {},
             "[upstream] token_file: {path} is empty: it must hold the token"),
            (https + "token_env = T\n", {"T": f"{_SECRET}\nX-Injected: 1"},
             "[upstream] token_env: the variable T holds a line break or another control "
             "character: it must hold the token alone, on one line"),
            (https + "username = svc\npassword_env = P\ntoken_env = P\n", {"P": _SECRET},
             "[upstream] token_env: give a username and password, or a token, not both"),
            (https + f"token_env = P\ntoken_file = {self.secret_file()}\n", {"P": _SECRET},
             "[upstream] token_env: give the token once: token_file or token_env, not both"),
            ("[upstream:vendor]\nmode = cache\nurl = http://upstream.example/simple/\n"
             "username = svc\npassword_env = P\n", {"P": _SECRET},
             "[upstream:vendor] url: is plain http:// and [upstream:vendor] password_env "
             "gives credentials: they would cross the network in clear; use https:// (plain "
             "http:// is allowed only to this machine)"),
        ]
        for text, environ, line in cases:
            path = self.write(text)
            message = self.refused(path=path, environ=environ)
            if "{path}" in line:
                line = line.format(path=text.rsplit("token_file = ", 1)[1].strip())
            self.assertEqual(message, f"{path}: {line}")
            self.assertNotIn(_SECRET, message)

    def test_unreadable_file(self):
        """A secret file that is not text is refused without its bytes."""
        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as f:
            f.write(b"\xff\xfe" + _SECRET.encode())
        message = self.refused(f"[upstream]\ntoken_file = {path}\n")
        self.assertTrue(message.endswith(f"[upstream] token_file: {path} is not UTF-8 text"))
        self.assertNotIn(_SECRET, message)


class ShippedIndexExamplesTests(ConfigFiles, SynchronousTestCase):
    """The commented-out [index:*] and [upstream:*] examples of C{etc/pypid.ini} load."""

    def test_uncommented(self):
        """Uncommented (with the group they name), they give the indexes they describe."""
        text = _shipped_example()
        if text is None:
            self.skipTest("no etc/pypid.ini in this checkout")
        text = _uncomment_section(text, "upstream").replace("\nmode = none\n",
                                                            "\nmode = cache\n")
        for section in ("index:release", "index:staging", "index:prod", "upstream:vendor"):
            text = _uncomment_section(text, section)
        text += "\n[groups]\nrelease-managers = admin\n"
        config = load_config(self.write(text), environ={"PYPID_VENDOR_PASSWORD": _SECRET})
        self.assertEqual(list(config.indexes), ["release", "staging", "prod"])
        self.assertTrue(config.indexes["prod"].view)
        self.assertEqual(config.indexes["prod"].exclude, ("experimental-*",))
        self.assertEqual(config.upstreams["vendor"].credentials,
                         UpstreamCredentials("pypid", _SECRET))


class AdvisoryRuleSettingsTests(ConfigFiles, SynchronousTestCase):
    """C{advisories}, C{advisory_severity} and C{advisory_waive}, per index (issue 27)."""

    def test_default_off(self):
        """Without the keys, no index acts on advisories."""
        from pypid.core.security.advisories import AdvisoryRules
        config = load_config(self.write("[index:a]\n"))
        self.assertEqual(config.server.advisory_rules, AdvisoryRules())
        self.assertEqual(config.indexes["a"].advisory_rules, AdvisoryRules())

    def test_named_index_takes_pypid_values(self):
        """A named index takes C{[pypid]}'s value of each key it does not set itself."""
        config = load_config(self.write("""
            [pypid]
            advisories = hide
            advisory_waive = Widget==1.0, ghsa-abcd-1234-wxyz
            [index:prod]
            advisories = deny
            advisory_severity = Moderate
            [index:dev]
            """))
        default = config.server.advisory_rules
        self.assertEqual((default.mode, default.severity), ("hide", None))
        self.assertEqual(default.waive, {("widget", "1")})
        self.assertEqual(default.waive_ids, {"GHSA-ABCD-1234-WXYZ"})
        prod = config.indexes["prod"].advisory_rules
        self.assertEqual((prod.mode, prod.severity, prod.waive), ("deny", "medium", default.waive))
        self.assertEqual(config.indexes["dev"].advisory_rules, default)

    def test_refused(self):
        """Each bad value is refused naming its section and key."""
        for text, line in [
            ("[pypid]\nadvisories = block\n",
             "[pypid] advisories: expected one of: off, warn, hide, deny"),
            ("[index:a]\nadvisory_severity = urgent\n",
             "[index:a] advisory_severity: expected one of: low, medium, high, critical; or "
             "empty for every advisory, those of unknown severity too"),
            ("[pypid]\nadvisory_waive = widget>=1\n",
             "[pypid] advisory_waive: 'widget>=1' is neither project==version nor an "
             "advisory identifier"),
            ("[pypid]\nadvisory_waive = ==1.0\n",
             "[pypid] advisory_waive: '==1.0' is not project==version"),
            ("[index:default]\nadvisories = deny\n",
             "[index:default] advisories: the default index's advisories is set in [pypid]"),
        ]:
            path = self.write(text)
            self.assertEqual(self.refused(path=path), f"{path}: {line}", text)


class DescriptionBudgetTests(ConfigFiles, SynchronousTestCase):
    """C{[pypid] description_budget}: how long a README may render (issue 41)."""

    def test_default_and_set(self):
        self.assertEqual(load_config(None).server.description_budget, 5.0)
        path = self.write("[pypid]\ndescription_budget = 0.5s\n")
        self.assertEqual(load_config(path).server.description_budget, 0.5)

    def test_none_refused(self):
        message = self.refused("[pypid]\ndescription_budget = 0\n")
        self.assertIn("[pypid] description_budget: expected a duration greater than 0", message)


class ReadThroughTests(ConfigFiles, SynchronousTestCase):
    """
    An index may read a hosted index only if whoever reads it may read that
    index too (issue 41, defect 6): else the configuration is refused with
    one line naming both.
    """

    GROUPS = "[groups]\nteam = alice carol\n[users]\nalice = {h}\ncarol = {h}\n"

    def config(self, text):
        h = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$2mJE8Ag0uUk6YVQS9tLfPQ"
        return self.write(self.GROUPS.format(h=h) + text)

    def test_hidden_base_refused(self):
        path = self.config("[index:secret]\nread = user:carol\n"
                           "[index:team]\nbases = secret\n")
        message = self.refused(path=path)
        self.assertIn("[index:team] bases: secret may be read by user:carol alone, and team "
                      "would show its files to everyone, who may read team", message)

    def test_through_a_view_refused(self):
        path = self.config("[index:secret]\nread = user:carol\n"
                           "[index:view]\nview = yes\nbases = secret\nread = user:carol\n"
                           "[index:wide]\nview = yes\nbases = view\nread = authenticated\n")
        self.assertIn("[index:wide] bases: view may be read by user:carol alone",
                      self.refused(path=path))

    def test_scoped_rule_refused(self):
        path = self.config("[index:release]\n[index:staging]\nbases = release\n"
                           "[acl]\nrelease/acme-* = user:alice r\n")
        self.assertIn("[acl] release/acme-*: this rule restricts acme-* in release, which "
                      "staging reads through its bases", self.refused(path=path))

    def test_covered_allowed(self):
        """A base read by a group holding every reader of the index, or by everyone, is fine."""
        for text in ("[index:secret]\nread = group:team\n"
                     "[index:team]\nbases = secret\nread = user:alice, user:carol\n",
                     "[index:release]\n[index:staging]\nbases = release\nread = authenticated\n",
                     "[index:secret]\nread = authenticated\n"
                     "[index:team]\nbases = secret\nread = group:team\n",
                     "[index:release]\n[index:staging]\nbases = release\n"
                     "[acl]\nrelease/acme-* = user:alice r\nstaging/acme-* = user:alice r\n"):
            config = load_config(self.config(text))
            self.assertTrue(config.indexes, text)
