"""
Tests for the namespace grants (PEP 752, issue 46): their parsing, the
rules PEP 752 sets a repository, and which projects they cover.
"""

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from pypid.core.namespaces import (
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
        import os

        from pypid.config import load_config
        from tests.fakes import write_file
        path = write_file(os.path.join(self.mktemp(), "c.ini"), text.encode())
        return load_config(path)

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
