"""
Tests for the namespace grants (PEP 752, issue 46): their parsing, the
rules PEP 752 sets a repository, and which projects they cover.
"""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from pypid.core.indexes.namespaces import (
    InvalidGrant,
    NamespaceGrants,
    parse_grant,
    refusal,
)


class ParseTests(SynchronousTestCase):
    def test_grant(self):
        grant = parse_grant("Acme.Tools", "group:platform, user:bob hidden")
        self.assertEqual((grant.name, grant.owners, grant.hidden, grant.index),
                         ("acme-tools", frozenset({"group:platform", "user:bob"}), True, None))
        self.assertEqual(parse_grant("release/acme", "user:bob").index, "release")

    def test_refused(self):
        for key, value, said in (("-bad", "user:bob", "not a project name"),
                                 ("a-b-c-d", "user:bob", "at most 3 parts"),
                                 ("acme", "hidden", "name its owners"),
                                 ("acme", "bob", "an owner is user:NAME or group:NAME")):
            with self.assertRaises(InvalidGrant) as caught:
                parse_grant(key, value)
            self.assertIn(said, str(caught.exception))

    def test_inside_a_hidden_grant(self):
        """A grant inside a hidden one is hidden too (listing it would name the other)."""
        with self.assertRaises(InvalidGrant) as caught:
            NamespaceGrants.of([parse_grant("secret", "user:a hidden"),
                                parse_grant("secret-tools", "user:a")])
        self.assertIn("secret-tools is inside secret, which is hidden", str(caught.exception))
        NamespaceGrants.of([parse_grant("secret", "user:a hidden"),
                            parse_grant("secret-tools", "user:a hidden")])

    def test_no_overlapping_ownership(self):
        with self.assertRaises(InvalidGrant) as caught:
            NamespaceGrants.of([parse_grant("acme", "user:bob"),
                                parse_grant("acme-cli", "user:eve")])
        self.assertIn("acme-cli is inside acme", str(caught.exception))
        NamespaceGrants.of([parse_grant("acme", "user:bob"), parse_grant("acme-cli", "user:bob")])
        # (another index's grant is apart)
        NamespaceGrants.of([parse_grant("release/acme", "user:bob"),
                            parse_grant("staging/acme-cli", "user:eve")])


class CoverageTests(SynchronousTestCase):
    def setUp(self):
        self.grants = NamespaceGrants.of([
            parse_grant("acme", "group:platform"), parse_grant("acme-cli", "group:platform"),
            parse_grant("release/other", "user:bob")])

    def test_matching(self):
        self.assertEqual([g.name for g in self.grants.matching("acme-cli-extra", "default")],
                         ["acme", "acme-cli"])
        self.assertEqual(self.grants.matching("acmecli", "default"), [])
        self.assertEqual([g.name for g in self.grants.matching("other-x", "release")],
                         ["other"])
        self.assertEqual(self.grants.matching("other-x", "default"), [])

    def test_tree(self):
        self.assertEqual(self.grants.parent("acme-cli", "default"), "acme")
        self.assertIsNone(self.grants.parent("acme", "default"))
        self.assertEqual(self.grants.children("acme", "default"), ["acme-cli"])

    def test_refusal(self):
        grants = self.grants.matching("acme-cli-x", "default")
        self.assertIsNone(refusal(grants, {"group:platform"}, False))
        self.assertEqual(refusal(grants, {"user:eve"}, False).name, "acme")
        self.assertIsNone(refusal(grants, {"user:eve"}, True))

    @settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.text(max_size=20), st.text(max_size=40))
    def test_any_line(self, key, value):
        """Any line gives a grant or L{InvalidGrant}, never another error."""
        try:
            parse_grant(key, value)
        except InvalidGrant:
            pass


class ConfigTests(SynchronousTestCase):
    """C{[namespaces]} read with the rest of the configuration."""

    def load(self, text):
        from tests.harness.fakes import config_of
        return config_of(self, text)

    def test_read(self):
        config = self.load("[users]\nbob = $argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA\n[groups]\nplatform = bob\n[index:release]\n"
                           "[namespaces]\nacme = group:platform\nrelease/tools = user:bob hidden\n")
        self.assertEqual([(g.name, g.index, g.hidden) for g in config.namespaces.grants],
                         [("acme", None, False), ("tools", "release", True)])

    def test_refused(self):
        from pypid.config import ConfigError
        for text, said in (
                ("[namespaces]\nacme = user:nobody\n", "[namespaces] acme"),
                ("[index:a]\n[index:v]\nview = yes\nbases = a\n[namespaces]\nv/acme = user:bob\n"
                 "[users]\nbob = $argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA\n", "'v' is not a hosted index"),
                ("[users]\nbob = $argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA\neve = $argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA\n[namespaces]\nacme = user:bob\n"
                 "acme-cli = user:eve\n", "acme-cli is inside acme")):
            with self.assertRaises(ConfigError) as caught:
                self.load(text)
            self.assertIn(said, str(caught.exception), text)


    def test_through_bases(self):
        """
        Issue 59, finding 3: a grant in force in an index whose bases lead
        to a hosted index where the same owners do not hold it is refused,
        naming both (a stranger's C{acme-evil} in the base was served
        through it as owned); reserved alike in the base, it is taken.
        """
        from pypid.config import ConfigError
        users = ("[users]\nbob = $argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA\n"
                 "eve = $argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA\n"
                 "[groups]\nplatform = bob\n")
        staging = "[index:staging]\nbases = default\n"
        for grants, said in (
                ("staging/acme = group:platform\n", "where it is not reserved"),
                ("staging/acme = group:platform\ndefault/acme = user:eve\n",
                 "where other owners hold it"),
                ("acme = user:eve\nstaging/acme = group:platform\n", "other owners hold it")):
            with self.assertRaises(ConfigError) as caught:
                self.load(users + staging + "[namespaces]\n" + grants)
            message = str(caught.exception)
            self.assertIn("[namespaces] staging/acme: acme is reserved in staging, which reads "
                          "default through its bases", message)
            self.assertIn(said, message)
        # (a view through staging: the grant for every hosted index only)
        for grants in ("acme = group:platform\n",
                       "staging/acme = group:platform\ndefault/acme = group:platform\n"):
            config = self.load(users + staging + "[index:prod]\nview = yes\nbases = staging\n"
                               "[namespaces]\n" + grants)
            self.assertTrue(config.namespaces.granted("acme", "staging"))
        # (an index of no bases says nothing of it)
        self.load(users + "[index:staging]\n[namespaces]\nstaging/acme = group:platform\n")
        # (a base's own grant, not held by the index that reads it: a
        # stranger's project there would join the owners' in that index)
        with self.assertRaises(ConfigError) as caught:
            self.load(users + staging + "[namespaces]\ndefault/acme = group:platform\n")
        self.assertIn("acme is reserved in default, which staging reads through its bases, "
                      "where in staging it is not reserved", str(caught.exception))
        # (a view over two hosted indexes, one holding a grant the other
        # does not: a review found it open)
        with self.assertRaises(ConfigError) as caught:
            self.load(users + "[index:staging]\n[index:prod]\nview = yes\n"
                      "bases = staging default\n[namespaces]\nstaging/acme = group:platform\n")
        self.assertIn("acme is reserved in staging, and prod reads default too, where it is "
                      "not reserved", str(caught.exception))


class UploadTests(SynchronousTestCase):
    """A new project in a namespace is its owners' to create (409 for others, PEP 752)."""

    def setUp(self):
        import os
        import time

        from pypid.auth.hashes import hash_password
        from pypid.config import load_config
        from pypid.daemon.server import build_service
        from tests.harness.fakes import FAST, site_treq, write_file
        from tests.harness.tap import ThreadedReactor, checking_pools
        self.password = "correct horse"
        folder = os.path.abspath(self.mktemp())
        users = "".join(f"{name} = {hash_password(self.password, FAST)}\n"
                        for name in ("alice", "bob"))
        path = write_file(os.path.join(folder, "pypid.ini"), (
            f"[pypid]\nsnapshot = {folder}/index.json\nlisten = tcp:0:interface=127.0.0.1\n"
            f"[storage]\npath = {folder}/packages\n[users]\n{users}[groups]\nplatform = alice\n"
            "[namespaces]\nacme = group:platform\n").encode())
        reactor = ThreadedReactor()
        reactor.advance(time.time() - reactor.seconds())
        service = build_service(load_config(path), reactor, pools=checking_pools())
        self.addCleanup(lambda: service.stopService() if service.running else None)
        service.startService()
        self.successResultOf(service.ready)
        self.treq = site_treq(service.getServiceNamed("web").web.site)

    def upload(self, user, name, version):
        from tests.harness.distributions import make_wheel
        from tests.harness.fakes import multipart_body, twine_fields
        filename, data = make_wheel(name, version)
        ctype, body = multipart_body(twine_fields(name, version, data),
                                     [("content", filename, data)])
        response = self.successResultOf(self.treq.post(
            "http://127.0.0.1/", data=body, auth=(user, self.password),
            headers={"Content-Type": ctype}))
        return response.code, self.successResultOf(self.treq.content(response))

    def test_foreign_upload_refused(self):
        code, body = self.upload("bob", "acme-tools", "1.0")
        self.assertEqual(code, 409, body)
        self.assertIn(b"acme-tools is in the namespace acme, reserved in default", body)
        self.assertEqual(self.upload("bob", "acmetools", "1.0")[0], 200)
        self.assertEqual(self.upload("alice", "acme-tools", "1.0")[0], 200)
        # (the project exists: uploads by whoever the rules let write it go on)
        self.assertEqual(self.upload("bob", "acme-tools", "2.0")[0], 200)


class UpstreamPrivacyTests(SynchronousTestCase):
    """A reserved namespace is never asked upstream (issue 46)."""

    def test_private_globs(self):
        from pypid.core.indexes.namespaces import private_globs
        grants = NamespaceGrants.of([parse_grant("acme", "user:bob"),
                                     parse_grant("release/acme", "user:bob"),
                                     parse_grant("tools", "user:bob")])
        self.assertEqual(private_globs(grants), ("acme", "acme-*", "tools", "tools-*"))

    def test_the_daemons_upstream(self):
        import os
        import time

        from pypid.config import load_config
        from pypid.core.util.startup import StartupError
        from pypid.daemon.server import build_service
        from tests.harness.fakes import write_file
        from tests.harness.tap import ThreadedReactor, checking_pools
        folder = os.path.abspath(self.mktemp())
        h = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA"
        text = (f"[pypid]\nsnapshot = {folder}/index.json\nlisten = tcp:0:interface=127.0.0.1\n"
                f"[storage]\npath = {folder}/packages\n[users]\nbob = {h}\n"
                "[upstream]\nmode = cache\nurl = https://upstream.example/simple/\n"
                "[namespaces]\nacme = user:bob\n")
        path = write_file(os.path.join(folder, "pypid.ini"), text.encode())
        reactor = ThreadedReactor()
        reactor.advance(time.time() - reactor.seconds())
        service = build_service(load_config(path), reactor, pools=checking_pools(),
                                load_config=lambda: load_config(path))
        registry = service.getServiceNamed("web")._indexes._registry
        policy = registry.default.upstream_part.source.policy
        for name, private in (("acme", True), ("acme-cli", True), ("acmecli", False)):
            self.assertEqual(not policy.decide(name, False).allowed, private, name)
        # (a change of the grants needs a restart, as the upstream's private names do)
        from pypid.state.index_reload import reload_indexes
        started = load_config(path)
        write_file(path, text.replace("acme = user:bob", "tools = user:bob").encode())
        with self.assertRaises(StartupError) as caught:
            reload_indexes(registry, started, load_config(path))
        self.assertIn("[namespaces]", str(caught.exception))
