"""Tests of L{pypid.auth.policy}: users, groups, admins and per-project rules."""

from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.policy import AccessModel
from pypid.core.access.access_rules import RuleError, normalize_pattern, parse_rule


def model(**kwargs):
    """The model of the issue's example configuration, with overrides."""
    options = dict(
        read="everyone", upload="authenticated",
        groups={"dev": frozenset({"alice", "bob"}), "ops": frozenset({"carol"})},
        admins=frozenset({"root"}),
        rules=(parse_rule("acme-*", "group:dev rw, user:ci r", 0),
               parse_rule("acme-public", "everyone r, group:dev rw", 1),
               parse_rule("Secret_Thing", "user:carol rw", 2)),
    )
    options.update(kwargs)
    return AccessModel(**options)


class ParseTests(SynchronousTestCase):
    """Reading rules."""

    def test_rule(self):
        """Grants are read in order; permissions in either order."""
        rule = parse_rule("Acme.*", "group:dev rw, user:ci r ,everyone  wr")
        self.assertEqual(rule.pattern, "acme-*")
        self.assertEqual(rule.grants, (("group:dev", frozenset("rw")),
                                       ("user:ci", frozenset("r")),
                                       ("everyone", frozenset("rw"))))

    def test_errors(self):
        """Bad grants and patterns are refused with what is wrong."""
        for pattern, text, words in (("acme", "group:dev x", "'group:dev x'"),
                                     ("acme", "dev rw", "expected a principal"),
                                     ("acme", " , ", "at least one grant"),
                                     ("a b", "everyone r", "not a project name")):
            with self.assertRaises(RuleError) as caught:
                parse_rule(pattern, text)
            self.assertIn(words, str(caught.exception))

    def test_pattern(self):
        """Patterns are normalized like project names, globs kept."""
        self.assertEqual(normalize_pattern("Corp_.*"), "corp-*")
        self.assertEqual(normalize_pattern("x[ab]?"), "x[ab]?")


class ModelTests(SynchronousTestCase):
    """Who may read and write what."""

    def test_defaults(self):
        """A project no rule covers: everyone reads, authenticated users write."""
        m = model()
        self.assertTrue(m.may_read(None, "holy-grail"))
        self.assertFalse(m.may_write(None, "holy-grail"))
        self.assertTrue(m.may_write("dave", "holy-grail"))
        closed = model(read="authenticated")
        self.assertFalse(closed.may_read(None, "holy-grail"))
        self.assertTrue(closed.may_read("dave", "holy-grail"))

    def test_glob_rule(self):
        """A glob rule opens its projects to its principals only."""
        m = model()
        self.assertTrue(m.may_write("alice", "acme-tools"))
        self.assertTrue(m.may_read("ci", "acme-tools"))
        self.assertFalse(m.may_write("ci", "acme-tools"))
        self.assertFalse(m.may_read("dave", "acme-tools"))
        self.assertFalse(m.may_read(None, "Acme_Tools"))

    def test_most_exact_rule(self):
        """An exact name beats a glob: acme-public is readable by everyone."""
        m = model()
        self.assertTrue(m.may_read(None, "acme-public"))
        self.assertFalse(m.may_write("dave", "acme-public"), "the glob's grants do not apply")
        self.assertTrue(m.may_write("bob", "acme.public"))

    def test_longer_glob_wins(self):
        """Between globs, the one with more literal characters decides."""
        m = model(rules=(parse_rule("a*", "everyone r", 0),
                         parse_rule("acme-*", "user:ci r", 1)))
        self.assertFalse(m.may_read(None, "acme-x"))
        self.assertTrue(m.may_read(None, "abc"))

    def test_admins(self):
        """Admins may do everything."""
        m = model()
        for project in ("acme-tools", "secret-thing", "anything"):
            self.assertTrue(m.may_read("root", project))
            self.assertTrue(m.may_write("root", project))

    def test_user_rule(self):
        """A user grant on an exact name (any spelling)."""
        m = model()
        self.assertTrue(m.may_write("carol", "secret.thing"))
        self.assertFalse(m.may_read("alice", "secret-thing"))

    def test_builtin_groups(self):
        """C{authenticated} covers every known user, not anonymous clients."""
        m = model(rules=(parse_rule("x", "authenticated r", 0),))
        self.assertTrue(m.may_read("dave", "x"))
        self.assertFalse(m.may_read(None, "x"))

    def test_reads_everything(self):
        """Whether pages need filtering for a user."""
        m = model()
        self.assertTrue(m.reads_everything("root"))
        self.assertFalse(m.reads_everything("dave"))
        self.assertFalse(m.reads_everything(None))
        open_model = model(rules=(parse_rule("x-*", "everyone r", 0),))
        self.assertTrue(open_model.reads_everything(None))
        self.assertFalse(model(read="authenticated", rules=()).reads_everything(None))


class IndexAccessTests(SynchronousTestCase):
    """
    Access per index (issue 26): an index's own grants, rules qualified by
    index, and the default index unchanged.
    """

    def model(self, read="everyone", **extra):
        from pypid.core.access.access_rules import IndexGrants
        indexes = {
            "release": IndexGrants(frozenset({"everyone"}), frozenset({"group:rm"})),
            "staging": IndexGrants(frozenset({"group:dev", "group:rm"}),
                                   frozenset({"group:dev"})),
            "prod": IndexGrants(frozenset({"authenticated"}), frozenset()),
        }
        rules = (parse_rule("acme-*", "group:dev rw", 0),
                 parse_rule("release/acme-*", "group:rm rw, everyone r", 1),
                 parse_rule("secret", "user:carol rw", 2))
        return AccessModel(read=read, groups={"dev": frozenset({"alice"}),
                                              "rm": frozenset({"bob"})},
                           admins=frozenset({"root"}), rules=rules, indexes=indexes, **extra)

    def test_qualified_rule_parsed(self):
        """C{NAME/pattern} names the index; a bad index name is refused naming it."""
        rule = parse_rule("release/Acme_*", "group:rm rw")
        self.assertEqual((rule.index, rule.pattern), ("release", "acme-*"))
        self.assertIsNone(parse_rule("acme-*", "group:rm rw").index)
        for bad in ("rel_ease", "Release", ""):
            e = self.assertRaises(RuleError, parse_rule, f"{bad}/acme", "everyone r")
            self.assertIn(f"{bad!r} is not an index name", str(e))

    def test_default_index_unchanged(self):
        """Without grants of its own, the default index answers as before indexes existed."""
        model = self.model()
        self.assertTrue(model.may_read(None, "anything"))
        self.assertFalse(model.may_write(None, "anything"))
        self.assertTrue(model.may_write("carol", "anything"))
        self.assertTrue(model.may_write("alice", "acme-tools"))
        self.assertFalse(model.may_write("bob", "acme-tools"))
        self.assertFalse(model.may_read(None, "secret"))
        self.assertTrue(model.may_enter(None, "r"))
        self.assertFalse(model.may_enter(None, "w"))

    def test_index_grants(self):
        """An index's grants decide who enters it, and who writes the projects no rule covers."""
        model = self.model()
        self.assertTrue(model.may_read(None, "widget", index="release"))
        self.assertFalse(model.may_write("alice", "widget", index="release"))
        self.assertTrue(model.may_write("bob", "widget", index="release"))
        self.assertFalse(model.may_read(None, "widget", index="staging"))
        self.assertFalse(model.may_read("carol", "widget", index="staging"))
        self.assertTrue(model.may_read("bob", "widget", index="staging"))
        self.assertTrue(model.may_write("alice", "widget", index="staging"))
        self.assertFalse(model.may_write("bob", "widget", index="staging"))
        self.assertTrue(model.index_admits("root", "prod", "w"))
        self.assertFalse(model.may_write("alice", "widget", index="prod"))
        self.assertFalse(model.may_read(None, "widget", index="prod"))
        self.assertTrue(model.may_read("carol", "widget", index="prod"))

    def test_rules_within_an_index(self):
        """
        A rule qualified by an index decides there before any rule for all
        indexes; elsewhere the unqualified rules apply; the index's grants
        are needed first.
        """
        model = self.model()
        # release/acme-*: bob writes, everyone reads; alice (group:dev) may not write
        self.assertTrue(model.may_write("bob", "acme-tools", index="release"))
        self.assertFalse(model.may_write("alice", "acme-tools", index="release"))
        self.assertTrue(model.may_read(None, "acme-tools", index="release"))
        # staging: acme-* (group:dev rw) applies, and only dev and rm enter
        self.assertTrue(model.may_write("alice", "acme-tools", index="staging"))
        self.assertFalse(model.may_read("bob", "acme-tools", index="staging"))
        # an unqualified rule still hides a project in every index
        self.assertFalse(model.may_read("bob", "secret", index="release"))
        self.assertTrue(model.may_read("carol", "secret", index="release"))
        self.assertEqual(model.rule_for("acme-x", "release").index, "release")
        self.assertIsNone(model.rule_for("acme-x", "staging").index)
        self.assertIsNone(model.rule_for("acme-x").index)

    def test_reads_everything(self):
        """Whether pages need filtering is answered per index."""
        model = self.model()
        self.assertFalse(model.reads_everything(None))  # (secret)
        self.assertFalse(model.reads_everything(None, index="staging"))
        self.assertTrue(model.reads_everything("root", index="staging"))
        open_model = AccessModel(indexes=self.model().indexes)
        self.assertTrue(open_model.reads_everything(None))
        self.assertTrue(open_model.reads_everything(None, index="release"))
        self.assertFalse(open_model.reads_everything(None, index="prod"))
        self.assertTrue(open_model.reads_everything("carol", index="prod"))

    def test_enter(self):
        """C{may_enter} per index: its read and upload grants."""
        from pypid.auth.verifier import Identity
        model = self.model()
        self.assertFalse(model.may_enter(None, "r", "staging"))
        self.assertTrue(model.may_enter(Identity("alice"), "r", "staging"))
        self.assertFalse(model.may_enter(Identity("carol"), "w", "release"))
        self.assertTrue(model.may_enter(Identity("bob"), "w", "release"))
        self.assertFalse(model.may_enter(Identity("bob"), "w", "prod"))
        self.assertTrue(model.may_enter(Identity("root"), "w", "prod"))
