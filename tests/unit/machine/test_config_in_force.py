"""Tests for L{pypid.machine.config_in_force}: the text a machine's workers read."""

import os

from twisted.trial.unittest import SynchronousTestCase

from pypid.config import ConfigError, load_config
from pypid.machine.config_in_force import ConfigInForce, HeldTexts


class ConfigInForceTests(SynchronousTestCase):
    """The supervisor writes, a worker (its own file of the memory) reads."""

    def test_written_and_read(self):
        """A worker reads what the supervisor wrote last, shorter or longer, whole."""
        supervisor = ConfigInForce.create("[pypid]\nthreads = 4\n" * 3000)
        self.addCleanup(supervisor.close)
        worker = ConfigInForce.attach(supervisor.fileno())
        self.addCleanup(worker.close)
        self.assertEqual(worker.read(), HeldTexts("[pypid]\nthreads = 4\n" * 3000, {}))
        supervisor.write("[pypid]\n# é\n", {"/etc/pypid/users": "alice:$2y$...\n"})
        self.assertEqual(worker.read(), HeldTexts("[pypid]\n# é\n",
                                                {"/etc/pypid/users": "alice:$2y$...\n"}))
        supervisor.write("")
        self.assertEqual(worker.read(), HeldTexts("", {}))

    def test_own_file(self):
        """A worker's descriptor is a file of its own (so that C{flock} excludes the writer)."""
        supervisor = ConfigInForce.create("x")
        self.addCleanup(supervisor.close)
        worker = ConfigInForce.attach(supervisor.fileno())
        self.addCleanup(worker.close)
        self.assertNotEqual(worker.fileno(), supervisor.fileno())
        self.assertEqual(os.fstat(worker.fileno()).st_ino, os.fstat(supervisor.fileno()).st_ino)

    def test_loaded_as_the_file(self):
        """
        The text read is loaded as the file would be: its relative paths
        beside the file, not beside the text's reader; C{Config.text} is it.
        """
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        path = os.path.join(folder, "pypid.ini")
        with open(path, "w", encoding="utf-8") as f:
            f.write("[storage]\npath = on-disk\n")
        text = "[storage]\npath = in-force\n"
        config = load_config(path, text=text)
        self.assertEqual(config.storage.path, os.path.join(folder, "in-force"))
        self.assertEqual(config.text, text)
        self.assertEqual(load_config(path).text, "[storage]\npath = on-disk\n")
        self.assertEqual(load_config(None).text, "")

    def test_users_held(self):
        """
        The htpasswd file is held as the configuration read it: loaded with
        what was held, a configuration has the users of then, whatever the
        file holds now (an edit not reloaded, an empty file).
        """
        from pypid.core.access.credential_syntax import parse_htpasswd
        from tests.harness.e2e import password_hash
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        users = os.path.join(folder, "users")
        hashed = password_hash("secret")
        with open(users, "w", encoding="utf-8") as f:
            f.write(f"alice:{hashed}\n")
        path = os.path.join(folder, "pypid.ini")
        text = f"[auth]\nhtpasswd = {users}\n"
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        taken = load_config(path)
        self.assertEqual(taken.held, {users: f"alice:{hashed}\n"})
        self.assertEqual(set(taken.users), {"alice"})
        held = ConfigInForce.create(taken.text, taken.held)
        self.addCleanup(held.close)
        with open(users, "w", encoding="utf-8") as f:
            f.write("")  # (mid-edit)
        in_force = held.read()
        again = load_config(path, text=in_force.text, held=in_force.held)
        self.assertEqual(again.users, taken.users)
        # (the file as it is now is refused, not taken as nobody)
        self.assertIn("names no user", str(self.assertRaises(ConfigError, load_config, path)))
        self.assertEqual(parse_htpasswd(in_force.held[users], users), dict(taken.users))

    def test_secrets_held(self):
        """
        Every secret's file the configuration names (an upstream's
        password, a webhook's secret, the provider's client secret) is held
        as the users' file is: a worker started again signs, logs in and
        asks with the secrets the machine took, not a file edited since.
        """
        from pypid.config.sso_settings import sso_secret
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)

        def put(name, text):
            path = os.path.join(folder, name)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            return path
        secrets = {"password": "pass-1\n", "webhook": "whsec_" + "A" * 32 + "\n",
                   "sso": "client-1\n"}
        paths = {name: put(name, text) for name, text in secrets.items()}
        path = put("pypid.ini", (
            "[upstream]\nurl = https://upstream.example/simple/\nusername = ci\n"
            f"password_file = {paths['password']}\n"
            "[webhook:builds]\nurl = https://hooks.example/pypid\n"
            f"secret_file = {paths['webhook']}\n"
            "[sso]\nissuer = https://login.example/realms/acme\nclient_id = pypid\n"
            f"client_secret_file = {paths['sso']}\n"))
        taken = load_config(path)
        self.assertEqual(taken.held, {paths[name]: text for name, text in secrets.items()})
        for name, text in secrets.items():
            put(name, text.replace("1", "2").replace("A", "B"))
        in_force = ConfigInForce.create(taken.text, taken.held)
        self.addCleanup(in_force.close)
        held = in_force.read()
        again = load_config(path, text=held.text, held=held.held)
        self.assertEqual(again.upstream.credentials, taken.upstream.credentials)
        self.assertEqual(again.upstream.credentials.secret, "pass-1")
        self.assertEqual(again.webhooks["builds"].key, taken.webhooks["builds"].key)
        self.assertEqual(sso_secret(again.sso, again.held), "client-1")
        # (read as it is now, at the next SIGHUP's check)
        now = load_config(path)
        self.assertEqual(now.upstream.credentials.secret, "pass-2")
        self.assertNotEqual(now.webhooks["builds"].key, taken.webhooks["builds"].key)
        self.assertEqual(sso_secret(now.sso, now.held), "client-2")

    def named_files(self):
        """A folder with a CA bundle, a GCS key file and a trust root, and their paths."""
        from tests.harness.fake_gcs import key_file
        from tests.harness.sigstore_root import TestSigstore
        from tests.harness.tlsca import TestCA
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        credentials, _ = key_file(folder, "http://127.0.0.1:1/token")
        return (folder, TestCA(os.path.join(folder, "ca")).root_path, credentials,
                TestSigstore().write_trusted_root(os.path.join(folder, "root.json")))

    def test_named_files_held(self):
        """
        Every other file the configuration names that a worker reads as it
        starts (each section's CA bundle, C{[gcs] credentials_file},
        C{[attestations] trust_root}) is held too: loaded with what was
        held, each is used as the machine took it, whatever the disk holds
        now; one that could not be read is not held, and its user names
        its key when it is used.
        """
        from pypid.auth.attestations import AttestationChecker
        from pypid.core.util.startup import StartupError
        from pypid.http.client import https_policy, outbound_policy
        from pypid.storage.gcs.gcs_auth import key_file_credentials
        folder, bundle, credentials, root = self.named_files()
        path = os.path.join(folder, "pypid.ini")
        with open(path, "w", encoding="utf-8") as f:
            f.write(f"[pypid]\nca_bundle = {bundle}\n"
                    f"[ldap]\nurl = ldaps://127.0.0.1\nuser_base = ou=people,dc=corp,dc=example\n"
                    f"ca_bundle = {bundle}\n"
                    f"[webhook:builds]\nurl = https://hooks.example/pypid\n"
                    f"secret = whsec_{'A' * 32}\nca_bundle = {bundle}\n"
                    f"[oidc]\nca_bundle = {bundle}\n"
                    f"[sso]\nissuer = https://login.example/realms/acme\nclient_id = pypid\n"
                    f"client_secret = s\nca_bundle = {bundle}\n"
                    f"[storage]\nbackend = gcs\n"
                    f"[gcs]\nbucket = packages\ncredentials_file = {credentials}\n"
                    f"[attestations]\ntrust_root = {root}\n")
        taken = load_config(path)
        originals = {name: open(name, encoding="utf-8").read()
                     for name in (bundle, credentials, root)}
        self.assertEqual(dict(taken.held), originals)
        for name in originals:
            with open(name, "w", encoding="utf-8") as f:
                f.write("{mid-edit")
        self.assertIn("[attestations] trust_root",
                      str(self.assertRaises(ConfigError, load_config, path)))
        in_force = ConfigInForce.create(taken.text, taken.held)
        self.addCleanup(in_force.close)
        held = in_force.read()
        again = load_config(path, text=held.text, held=held.held)
        # (each part that reads one, as it is made: from the disk, each
        # would refuse the file as it is now)
        from twisted.internet.task import Clock
        from twisted.web.client import URI

        from pypid.auth.factory import make_gate_materials, make_oidc_http, make_sso_http
        from pypid.webhooks.part import check_bundles
        from pypid.webhooks.sender import Sender
        outbound_policy(again)
        self.assertIsNotNone(make_oidc_http(again, Clock()))
        self.assertIsNotNone(make_sso_http(again, Clock()))
        make_gate_materials(again, Clock(), None)  # ([ldap] ca_bundle: "holds no PEM" from disk)
        check_bundles(again.webhooks.values(), again)
        hook = again.webhooks["builds"]
        Sender(Clock(), again.server.ca_bundle, again.held)._receiver(
            hook, URI.fromBytes(hook.url.encode()), "https://hooks.example")
        self.assertIn("holds no PEM", str(self.assertRaises(ValueError, https_policy, bundle)))
        self.assertEqual(key_file_credentials(credentials, again.held).service_account_email,
                         "pypid-tests@pypid.iam.gserviceaccount.com")
        checker = AttestationChecker(root, None, None, (), again.held)
        self.assertIsNotNone(checker.load())
        # (a file that cannot be read is no error of the configuration's)
        os.remove(bundle)
        gone = load_config(path, text=held.text, held={root: held.held[root]})
        self.assertNotIn(bundle, gone.held)
        self.assertIn("[pypid] ca_bundle: cannot read",
                      str(self.assertRaises(StartupError, outbound_policy, gone)))

    def test_start_files_kept_at_reload(self):
        """
        A C{SIGHUP} after the files of keys only a start takes were
        written (C{[pypid] ca_bundle}, C{[gcs] credentials_file},
        C{[attestations] trust_root}) keeps them as the start read them,
        for the workers running and those started again; a file a key a
        reload takes names (a webhook's bundle, C{[ldap] ca_bundle}) is
        taken as it is now. A bundle's bytes are held as they are, UTF-8
        or not.
        """
        import json

        from pypid.config.reloading import held_as_started
        from pypid.config.values import held_bytes
        from pypid.daemon import reload_check
        from tests.harness.fake_gcs import key_file
        from tests.harness.sigstore_root import TestSigstore
        from tests.harness.tlsca import TestCA
        folder, bundle, credentials, root = self.named_files()
        with open(bundle, "ab") as f:
            f.write(b"# Issuer: Gro\xdfe Firma (Latin-1)\n")
        hooks = TestCA(os.path.join(folder, "hooks")).root_path
        path = os.path.join(folder, "pypid.ini")
        with open(path, "w", encoding="utf-8") as f:
            f.write(f"[pypid]\nca_bundle = {bundle}\n"
                    f"[webhook:builds]\nurl = https://hooks.example/pypid\n"
                    f"secret = whsec_{'A' * 32}\nca_bundle = {hooks}\n"
                    f"[storage]\nbackend = gcs\n"
                    f"[gcs]\nbucket = packages\ncredentials_file = {credentials}\n"
                    f"[attestations]\ntrust_root = {root}\n")
        started = load_config(path)
        before = {name: held_bytes(name, started.held) for name in (bundle, hooks, credentials,
                                                                    root)}
        self.assertTrue(before[bundle].endswith(b"Gro\xdfe Firma (Latin-1)\n"))
        in_force = ConfigInForce.create(started.text, started.held)
        self.addCleanup(in_force.close)
        with open(TestCA(os.path.join(folder, "ca2")).root_path, "rb") as f:
            other = f.read()  # (another CA)
        for name in (bundle, hooks):
            with open(name, "wb") as out:
                out.write(other)
        key_file(folder, "http://127.0.0.1:2/token")  # (written over credentials)
        TestSigstore().write_trusted_root(root)
        argv = [json.dumps({"config": path, "listen": [], "set": []})]
        self.assertEqual(reload_check.main(argv, in_force.fileno()), 0)
        held = in_force.read().held
        for name in (bundle, credentials, root):
            self.assertEqual(held_bytes(name, held), before[name], name)
        self.assertNotEqual(held_bytes(hooks, held), before[hooks])
        self.assertEqual(held_bytes(hooks, held), open(hooks, "rb").read())
        # (a server of one process, which reads the file at a reload, alike)
        from twisted.application.service import Service
        from twisted.internet.testing import MemoryReactorClock
        from zope.interface import implementer

        from pypid.core.parts import IReloadable
        from pypid.daemon.container import Parts
        offered = []

        @implementer(IReloadable)
        class Taker(Service):
            def prepare_reload(self, config):
                offered.append(config)
                return None
        Parts([("taker", Taker())], MemoryReactorClock(), load_config=lambda: load_config(path),
              config=started).reload()
        self.assertEqual([held_bytes(name, offered[0].held) for name in (bundle, root, hooks)],
                         [before[bundle], before[root], open(hooks, "rb").read()])
        # (named by a key a reload takes too: taken as it is now)
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"[ldap]\nurl = ldaps://127.0.0.1\nuser_base = dc=corp,dc=example\n"
                    f"ca_bundle = {bundle}\n")
        both = held_as_started(started, load_config(path))
        self.assertEqual(held_bytes(bundle, both.held), open(bundle, "rb").read())
        self.assertEqual(held_bytes(root, both.held), before[root])
