"""
Tests for what the JSON API says of the namespace grants (PEP 752, API
1.5, issue 46): when each grant came into force (the ledger and its
keeper), each project page's C{namespaces}, and the C{/namespaces} and
C{/namespace/<name>} routes, hidden grants included, over the whole
server in memory.
"""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.defer import fail, succeed
from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.hashes import hash_password
from pypid.core.indexes.grant_ledger import (
    MAX_BYTES,
    GrantEntry,
    GrantLedger,
    InvalidLedger,
    ledger_key,
)
from pypid.core.indexes.namespace_api import IndexNamespaces, creation, foreign_projects
from pypid.core.indexes.namespaces import NamespaceGrants, parse_grant
from pypid.state.grant_keeper import GrantKeeper
from pypid.storage.base.capabilities import GRANT_LEDGER
from pypid.storage.base.interface import StorageError
from tests.harness.distributions import make_wheel
from tests.harness.fakes import FAST, multipart_body, twine_fields
from tests.harness.indexes import _ServerMixin
from tests.harness.memory_storage import MemoryStorage

PASSWORD = "correct horse"
JSON = "application/vnd.pypi.simple.v1+json"


def grants(*lines):
    return NamespaceGrants.of(parse_grant(key, value) for key, value in lines)


def nothing(grant):
    return ()


class LedgerTests(SynchronousTestCase):
    """When each grant came into force and over what, as the ledger keeps it."""

    def test_brought_up(self):
        """
        A new grant is in force from now over what is found then; one
        recorded keeps its word, whatever its owners now; one removed is
        forgotten.
        """
        first = GrantLedger().brought_up(grants(("acme", "group:a"), ("old", "user:x")), 10.0,
                                         lambda grant: {grant.name + "-legacy"})
        self.assertEqual(first.entry(parse_grant("acme", "group:a")).since, 10.0)
        self.assertEqual(first.before(parse_grant("acme", "group:a")), {"acme-legacy"})
        later = first.brought_up(grants(("acme", "group:b"), ("tools", "user:y")), 20.0,
                                 nothing)
        self.assertEqual(later.entry(parse_grant("acme", "group:b")).since, 10.0)
        self.assertEqual(later.before(parse_grant("acme", "group:b")), {"acme-legacy"})
        self.assertEqual(later.before(parse_grant("tools", "user:y")), frozenset())
        self.assertNotIn("*/old", later.entries)
        self.assertIsNone(later.before(parse_grant("old", "user:x")))
        self.assertEqual(ledger_key(parse_grant("release/acme", "user:x")), "release/acme")

    @given(st.dictionaries(st.from_regex(r"\A(\*|[a-z]{1,5})/[a-z]{1,8}\Z"),
                           st.tuples(st.floats(0, 4e9),
                                     st.frozensets(st.from_regex(r"\A[a-z]{1,6}\Z"),
                                                   max_size=3)),
                           max_size=8))
    @settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
    def test_round_trip(self, found):
        ledger = GrantLedger({key: GrantEntry(since, before)
                              for key, (since, before) in found.items()})
        data = ledger.to_bytes()
        self.assertEqual(GrantLedger.from_bytes(data), ledger)
        self.assertEqual(GrantLedger.from_bytes(data).to_bytes(), data)

    def test_refused(self):
        for data, said in (
                (b"{", "not JSON"),
                (b"\xff", "not JSON"),
                (b'{"grants":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "not JSON"),
                (b"[]", 'no "grants"'),
                (b'{"grants": []}', 'no "grants"'),
                (b'{"grants": {"*/a": {"since": true, "before": []}}}', "*/a"),
                (b'{"grants": {"*/a": {"since": 1, "before": [1]}}}', "*/a"),
                (b'{"grants": {"*/a": {"since": 1, "owners": []}}}', "*/a"),
                (b'{"grants": {"*/a": {"since": 1e999, "before": []}}}', "not a finite"),
                (b'{"grants": {"*/a": {"since": 1' + b"0" * 400 + b', "before": []}}}',
                 "not a finite"),
                (b'{"grants": {"*/a": 1}}', "*/a"),
                (b" " * (MAX_BYTES + 1), "over")):
            with self.assertRaises(InvalidLedger) as caught:
                GrantLedger.from_bytes(data)
            self.assertIn(said, str(caught.exception), data[:40])


class _File:
    def __init__(self, upload_time, uploader=None):
        self.upload_time, self.uploader = upload_time, uploader


class IndexNamespacesTests(SynchronousTestCase):
    """What one index shows of its grants."""

    def setUp(self):
        self.grants = grants(("acme", "group:platform"), ("acme-internal", "group:platform hidden"),
                             ("acme-cli", "group:platform"), ("release/tools", "user:bob"))
        self.ledger = GrantLedger().brought_up(
            self.grants, 100.0, lambda grant: {"default/acme-legacy", "default/acme-cli-legacy",
                                               "release/acme-old"} if grant.index is None
            else set())
        self.spaces = IndexNamespaces("default", self.grants, self.ledger)

    def test_creation(self):
        self.assertEqual(creation([_File(5.0, "bob"), _File(None), _File(3.0, "eve")]),
                         (3.0, "eve"))
        self.assertEqual(creation([_File(None)]), (None, None))

    def test_foreign_projects(self):
        """The projects of a namespace whose first file is not its owners' (a group's member's)."""
        grant = parse_grant("acme", "group:platform user:carol")

        def unread():
            raise AssertionError("the files of a project outside the namespace were read")
        projects = [
            ("acme-a", lambda: [_File(5.0, "bob"), _File(1.0, "alice")]),
            ("acme-b", lambda: [_File(5.0, "alice"), _File(1.0, "bob")]),
            ("acme-c", lambda: [_File(1.0, "carol")]),
            ("acme-d", lambda: [_File(1.0)]),
            ("acme-e", lambda: [_File(1.0, "root")]),
            ("acme", lambda: [_File(1.0, "bob")]),
            ("acmeish", unread)]
        groups = {"platform": frozenset({"alice"}), "ops": frozenset({"root"})}
        self.assertEqual(foreign_projects(grant, projects, groups),
                         {"acme-b", "acme-d", "acme-e", "acme"})
        # (an admin owns every namespace)
        self.assertEqual(foreign_projects(grant, projects, groups, frozenset({"group:ops"})),
                         {"acme-b", "acme-d", "acme"})

    def test_entries(self):
        """
        C{owned} is false for the projects the grant found made by others,
        true for every other; a project in no namespace has L{None}; the
        hidden grant only in full.
        """
        entries = self.spaces.entries
        self.assertIsNone(entries("acmetools"))
        self.assertEqual(entries("acme-tools"), [{"name": "acme", "owned": True}])
        self.assertEqual(entries("acme-legacy", own=True), [{"name": "acme", "owned": False}])
        self.assertEqual(entries("acme-cli-legacy", own=True),
                         [{"name": "acme", "owned": False}, {"name": "acme-cli", "owned": False}])
        # (another index's project found so: not this index's own; a page
        # composed of several indexes' says what any of them found)
        self.assertEqual(entries("acme-old", own=True), [{"name": "acme", "owned": True}])
        self.assertEqual(entries("acme-old"), [{"name": "acme", "owned": False}])
        self.assertEqual(entries("acme-internal-x"), [{"name": "acme", "owned": True}])
        self.assertEqual(entries("acme-internal-x", full=True),
                         [{"name": "acme", "owned": True},
                          {"name": "acme-internal", "owned": True}])
        self.assertTrue(self.spaces.hides("acme-internal-x"))
        self.assertFalse(self.spaces.hides("acme-cli"))
        # (another index: its own grant, and those of every index)
        release = self.spaces.like("release")
        self.assertEqual(release.entries("tools-x"), [{"name": "tools", "owned": True}])
        self.assertIsNone(self.spaces.entries("tools-x"))
        # (grants the ledger has no word of yet: nothing served is owned)
        unknown = IndexNamespaces("default", self.grants, GrantLedger())
        self.assertEqual(unknown.entries("acme-x"), [{"name": "acme", "owned": False}])

    def test_routes(self):
        """The list and the details leave out a hidden grant for whoever does not see it."""
        nobody, everybody = (lambda grant: False), (lambda grant: True)
        self.assertEqual(self.spaces.listed(nobody), [{"name": "acme"}, {"name": "acme-cli"}])
        self.assertEqual(self.spaces.listed(everybody),
                         [{"name": "acme"}, {"name": "acme-cli"}, {"name": "acme-internal"}])
        self.assertEqual(self.spaces.detail("acme", nobody, nobody),
                         {"name": "acme", "parent": None, "children": ["acme-cli"]})
        self.assertEqual(self.spaces.detail("acme", everybody, everybody),
                         {"name": "acme", "parent": None,
                          "children": ["acme-cli", "acme-internal"],
                          "owner": ["group:platform"]})
        self.assertEqual(self.spaces.detail("acme-cli", nobody, nobody),
                         {"name": "acme-cli", "parent": "acme", "children": []})
        self.assertIsNone(self.spaces.detail("acme-internal", nobody, nobody))
        self.assertIsNone(self.spaces.detail("tools", everybody, everybody))
        self.assertEqual(self.spaces.like("release").detail("tools", nobody, nobody),
                         {"name": "tools", "parent": None, "children": []})

    def test_take(self):
        """The serial moves when what the index shows changes, and only then."""
        serial = self.spaces.serial
        self.assertFalse(self.spaces.take(self.grants, self.ledger))
        self.assertEqual(self.spaces.serial, serial)
        self.assertTrue(self.spaces.take(self.grants, GrantLedger().brought_up(
            self.grants, 7.0, nothing)))
        self.assertTrue(self.spaces.take(grants(("acme", "group:platform")), self.ledger))
        self.assertEqual(self.spaces.serial, serial + 2)
        view = IndexNamespaces("view")
        self.assertTrue(view.follow(self.spaces))
        self.assertEqual(view.listed(lambda grant: False), [{"name": "acme"}])


class _Auth:
    admins = ()


class _Settings:
    auth = _Auth()

    def __init__(self, namespaces, groups=None):
        self.namespaces, self.groups = namespaces, groups or {}


def found_legacy(grant, settings):
    return {grant.name + "-legacy"}


class KeeperTests(SynchronousTestCase):
    """The keeper over a storage two servers share."""

    def setUp(self):
        from twisted.internet.task import Clock
        self.clock = Clock()
        self.clock.advance(1000)
        self.storage = MemoryStorage(self.mktemp(), self.clock)
        self.taken = []

    def keeper(self, settings, storage=None, found=found_legacy):
        keeper = GrantKeeper(storage or self.storage, self.clock,
                             lambda *args: self.taken.append(args), found, settings)
        self.successResultOf(keeper.startService())
        return keeper

    def test_first_server_says_since_when(self):
        """The first server to run with a grant writes its word; a later one keeps it."""
        self.keeper(_Settings(grants(("acme", "user:a"))))
        self.assertEqual(self.taken[-1][1].entry(parse_grant("acme", "user:a")).since, 1000.0)
        self.clock.advance(50)
        other = self.keeper(_Settings(grants(("acme", "user:a"))), found=lambda g, groups: {"x"})
        self.assertEqual(other.ledger.entry(parse_grant("acme", "user:a")).since, 1000.0)
        self.assertEqual(other.ledger.before(parse_grant("acme", "user:a")), {"acme-legacy"})
        self.assertTrue(other.kept)

    def test_reload(self):
        """A reload that changes the grants takes them at once, and keeps their word."""
        keeper = self.keeper(_Settings(grants(("acme", "user:a"))))
        self.assertIsNone(keeper.prepare_reload(_Settings(grants(("acme", "user:a")))))
        self.assertIsNone(keeper.prepare_reload(None))
        self.clock.advance(10)
        commit = keeper.prepare_reload(_Settings(grants(("acme", "user:a"), ("b", "user:a"))))
        self.assertEqual(commit(), "namespace grants")
        self.assertEqual(keeper.ledger.entry(parse_grant("b", "user:a")).since, 1010.0)
        self.assertEqual(keeper.ledger.entry(parse_grant("acme", "user:a")).since, 1000.0)
        kept = GrantLedger.from_bytes(self.successResultOf(self.storage.document(GRANT_LEDGER)))
        self.assertEqual(kept, keeper.ledger)

    def test_unreadable(self):
        """
        A broken document, or a storage that fails, is logged and not
        written; the grants are served from now. A write that fails keeps
        what was read.
        """
        self.successResultOf(self.storage.keep_document(GRANT_LEDGER, b"{broken"))
        keeper = self.keeper(_Settings(grants(("acme", "user:a"))))
        self.assertFalse(keeper.kept)
        self.assertEqual(keeper.ledger.entry(parse_grant("acme", "user:a")).since, 1000.0)
        self.assertEqual(self.successResultOf(self.storage.document(GRANT_LEDGER)), b"{broken")

        class Failing:
            def document(self, name):
                return fail(StorageError("the disk is gone"))
        keeper = self.keeper(_Settings(grants(("acme", "user:a"))), Failing())
        self.assertFalse(keeper.kept)
        self.assertEqual(self.taken[-1][1].entry(parse_grant("acme", "user:a")).since, 1000.0)

        kept = GrantLedger().brought_up(grants(("acme", "user:a")), 100.0, nothing).to_bytes()

        class ReadOnly:
            def document(self, name):
                return succeed(kept)

            def keep_document(self, name, data):
                return fail(StorageError("a read-only bucket"))
        keeper = self.keeper(_Settings(grants(("acme", "user:a"), ("new", "user:b"))),
                             ReadOnly())
        self.assertFalse(keeper.kept)
        self.assertEqual(keeper.ledger.entry(parse_grant("acme", "user:a")).since, 100.0)
        self.assertEqual(keeper.ledger.entry(parse_grant("new", "user:b")).since, 1000.0)


class ServerTests(_ServerMixin, SynchronousTestCase):
    """The JSON API 1.5 of the whole server, in memory, across reloads and a restart."""

    def setUp(self):
        super().setUp()
        self.at_wall_time()
        self.users = "".join(f"{name} = {hash_password(PASSWORD, FAST)}\n"
                             for name in ("admin", "alice", "bob"))
        self.grants = ""
        self.read = "everyone"
        self.extra = "[index:noprerel]\nview = yes\nbases = default\nprereleases = hide\n"
        self.service = self.start()

    def text(self):
        return self.config(f"[auth]\nadmins = admin\nread = {self.read}\n[users]\n" + self.users
                           + "[groups]\nplatform = alice\n[index:release]\n"
                           + "[index:stable]\nview = yes\nbases = release\n" + self.extra
                           + ("[namespaces]\n" + self.grants if self.grants else ""))

    def call(self, method, path, user, **kwargs):
        response = self.successResultOf(getattr(self.treq, method)(
            "http://127.0.0.1" + path, auth=(user, PASSWORD), **kwargs))
        return response.code, self.successResultOf(self.treq.content(response))

    def start(self):
        service, self.treq = self.served(self.text)
        return service

    def reload(self, grants):
        self.grants = grants
        self.service.reload()

    def upload(self, user, name, version, path="/"):
        filename, data = make_wheel(name, version)
        ctype, body = multipart_body(twine_fields(name, version, data),
                                     [("content", filename, data)])
        response = self.successResultOf(self.treq.post(
            "http://127.0.0.1" + path, data=body, auth=(user, PASSWORD),
            headers={"Content-Type": ctype}))
        self.reactor.advance(5)
        return response.code, self.successResultOf(self.treq.content(response))

    def get(self, path, user=None, accept=JSON):
        response = self.successResultOf(self.treq.get(
            "http://127.0.0.1" + path, auth=(user, PASSWORD) if user else None,
            headers={"Accept": accept}, allow_redirects=False))
        return response, self.successResultOf(self.treq.content(response))

    def page(self, path, user=None):
        response, body = self.get(path, user)
        self.assertEqual(response.code, 200, body)
        self.assertEqual(response.headers.getRawHeaders("content-type"), [JSON])
        return json.loads(body)

    def test_api_version(self):
        """
        With a namespace in force, every JSON page is at 1.5 with its
        C{namespaces}; without, at 1.4 without the key (issue 60: clients
        that know 1.4 warn of a 1.5 page, as PEP 629 asks); the HTML stays
        at 1.4 without.
        """
        self.assertEqual(self.upload("bob", "widget", "1.0")[0], 200)
        page = self.page("/simple/widget/")
        self.assertEqual(page["meta"]["api-version"], "1.4")
        self.assertNotIn("namespaces", page)
        self.assertEqual(self.page("/simple/")["meta"]["api-version"], "1.4")
        self.assertEqual(self.page("/stable/simple/")["meta"]["api-version"], "1.4")
        self.reload("acme = group:platform\n")
        page = self.page("/simple/widget/")
        self.assertEqual(page["meta"]["api-version"], "1.5")
        self.assertIsNone(page["namespaces"])
        self.assertEqual(self.page("/simple/")["meta"]["api-version"], "1.5")
        self.assertEqual(self.page("/stable/simple/")["meta"]["api-version"], "1.5")
        self.assertEqual(self.page("/simple/namespaces"), [{"name": "acme"}])
        response, body = self.get("/simple/widget/", accept="text/html")
        self.assertIn(b'<meta name="pypi:repository-version" content="1.4">', body)
        self.assertNotIn(b"namespace", body)

    def test_owned_across_reload_and_restart(self):
        """
        A project made before its namespace was reserved is C{owned: false}
        and keeps taking uploads; one its owners made since is C{owned:
        true}; both stay so after a restart (the ledger is kept).
        """
        self.assertEqual(self.upload("bob", "acme-legacy", "1.0")[0], 200)
        self.reload("acme = group:platform\n")
        self.reactor.advance(5)
        self.assertEqual(self.upload("bob", "acme-new", "1.0")[0], 409)
        self.assertEqual(self.upload("alice", "acme-cli", "1.0")[0], 200)
        self.assertEqual(self.upload("bob", "acme-legacy", "2.0")[0], 200)
        expected = {"acme-legacy": False, "acme-cli": True}
        for name, owned in expected.items():
            self.assertEqual(self.page(f"/simple/{name}/")["namespaces"],
                             [{"name": "acme", "owned": owned}], name)
        self.assertEqual(self.page("/simple/namespaces"), [{"name": "acme"}])
        self.assertEqual(self.page("/simple/namespace/acme"),
                         {"name": "acme", "parent": None, "children": []})
        self.successResultOf(self.service.stopService())
        self.reactor.advance(60)
        self.service = self.start()
        for name, owned in expected.items():
            self.assertEqual(self.page(f"/simple/{name}/")["namespaces"],
                             [{"name": "acme", "owned": owned}], name)
        # (the grant removed: no namespace in use, the pages at 1.4; given
        # again, from now)
        self.reload("")
        self.assertNotIn("namespaces", self.page("/simple/acme-cli/"))
        self.assertEqual(self.page("/simple/acme-cli/")["meta"]["api-version"], "1.4")
        self.assertEqual(self.page("/simple/namespaces"), [])
        self.assertEqual(self.get("/simple/namespace/acme")[0].code, 404)

    def test_hidden(self):
        """A hidden grant: listed, detailed and on the project page for its owners and admins only."""
        self.reload("acme = group:platform\nacme-secret = group:platform hidden\n")
        self.reactor.advance(5)
        self.assertEqual(self.upload("alice", "acme-secret-x", "1.0")[0], 200)
        for user, seen in ((None, False), ("bob", False), ("alice", True), ("admin", True)):
            listed = [{"name": "acme"}] + ([{"name": "acme-secret"}] if seen else [])
            self.assertEqual(self.page("/simple/namespaces", user), listed, user)
            detail = self.page("/simple/namespace/acme", user)
            self.assertEqual(detail["children"], ["acme-secret"] if seen else [], user)
            self.assertEqual("owner" in detail, seen, user)
            response, _ = self.get("/simple/namespace/acme-secret", user)
            self.assertEqual(response.code, 200 if seen else 404, user)
            # (credentials sent are checked where anyone reads: their reader's page)
            entries = self.page("/simple/acme-secret-x/", user)["namespaces"]
            self.assertEqual([e["name"] for e in entries],
                             ["acme", "acme-secret"] if seen else ["acme"], user)
        # (where reading needs a login, the owners and the admins get theirs)
        self.read = "authenticated"
        self.service.reload()
        for user, seen in (("bob", False), ("alice", True), ("admin", True)):
            for path in ("/simple/acme-secret-x/", "/noprerel/simple/acme-secret-x/"):
                entries = self.page(path, user)["namespaces"]
                self.assertEqual([e["name"] for e in entries],
                                 ["acme", "acme-secret"] if seen else ["acme"], (path, user))
                response, _ = self.get(path, user)
                self.assertEqual(response.headers.getRawHeaders("cache-control"),
                                 ["private, no-store"] if seen else ["max-age=0, must-revalidate"],
                                 (path, user))
            # (the HTML, which shows no namespace, is the same for all)
            response, _ = self.get("/simple/acme-secret-x/", user, accept="text/html")
            self.assertEqual(response.headers.getRawHeaders("cache-control"),
                             ["max-age=0, must-revalidate"], user)

    def test_named_indexes(self):
        """
        A grant for one index is that index's; a view shows the grants for
        every hosted index, its composed pages too.
        """
        self.reload("acme = user:alice\nrelease/tools = user:bob\n")
        self.reactor.advance(5)
        self.assertEqual(self.upload("bob", "tools-x", "1.0", "/release/")[0], 200)
        self.assertEqual(self.upload("alice", "tools-x", "1.0")[0], 200)
        self.assertEqual(self.upload("alice", "acme-x", "1.0", "/release/")[0], 200)
        self.assertEqual(self.page("/release/simple/namespaces"),
                         [{"name": "acme"}, {"name": "tools"}])
        self.assertEqual(self.page("/simple/namespaces"), [{"name": "acme"}])
        self.assertEqual(self.page("/stable/simple/namespaces"), [{"name": "acme"}])
        self.assertEqual(self.page("/release/simple/tools-x/")["namespaces"],
                         [{"name": "tools", "owned": True}])
        self.assertIsNone(self.page("/simple/tools-x/")["namespaces"])
        self.assertIsNone(self.page("/stable/simple/tools-x/")["namespaces"])
        self.assertEqual(self.page("/stable/simple/acme-x/")["namespaces"],
                         [{"name": "acme", "owned": True}])

    def test_routes(self):
        """Names are normalized (a redirect), an unknown one is a 404 naming what is missing."""
        self.reload("acme-cli = user:alice\n")
        response, _ = self.get("/simple/namespace/ACME.cli")
        self.assertEqual(response.code, 301)
        self.assertEqual(response.headers.getRawHeaders("location"),
                         ["/simple/namespace/acme-cli"])
        for path in ("/simple/namespace/nope", "/simple/namespace/-"):
            response, body = self.get(path)
            self.assertEqual(response.code, 404, path)
            self.assertIn(b"no such namespace", body, path)
        # (a path that is no UTF-8: refused as on any other path)
        self.assertEqual(self.get("/simple/namespace/%ff")[0].code, 400)
        self.assertEqual(self.page("/simple/namespace/acme-cli"),
                         {"name": "acme-cli", "parent": None, "children": []})

    # -- what a hostile review found (issue 46) ----------------------------------------

    def test_owned_stays(self):
        """
        C{owned} is the grant's word on the project: deleting a project's
        first files, a view's filters, or new owners of the grant leave it.
        """
        self.assertEqual(self.upload("bob", "acme-legacy", "1.0a1")[0], 200)
        self.reload("acme = group:platform\n")
        self.reactor.advance(5)
        self.assertEqual(self.upload("bob", "acme-legacy", "2.0")[0], 200)
        self.assertEqual(self.upload("alice", "acme-x", "1.0")[0], 200)
        self.assertEqual(self.upload("admin", "acme-admin", "1.0")[0], 200)
        expected = {"acme-legacy": False, "acme-x": True, "acme-admin": True}
        for name, owned in expected.items():
            for path in (f"/simple/{name}/", f"/noprerel/simple/{name}/"):
                self.assertEqual(self.page(path)["namespaces"],
                                 [{"name": "acme", "owned": owned}], path)
        for filename in ("acme_legacy-1.0a1-py3-none-any.whl", "acme_x-1.0-py3-none-any.whl"):
            self.assertEqual(self.call("delete", f"/api/files/{filename}", "admin")[0], 200)
        self.reload("acme = group:platform user:bob\n")
        for name, owned in expected.items():
            self.assertEqual(self.page(f"/simple/{name}/")["namespaces"],
                             [{"name": "acme", "owned": owned}], name)

    def test_promotion(self):
        """A promotion making a project in a namespace of the target is its owners' (409)."""
        self.reload("release/acme = user:alice\n")
        self.assertEqual(self.upload("bob", "acme-x", "1.0")[0], 200)
        code, body = self.call("post", "/api/promote", "bob", json={
            "from": "default", "to": "release", "project": "acme-x", "version": "1.0"})
        self.assertEqual(code, 409, body)
        self.assertIn(b"acme-x is in the namespace acme, reserved in release", body)
        code, body = self.call("post", "/api/promote", "alice", json={
            "from": "default", "to": "release", "project": "acme-x", "version": "1.0"})
        self.assertEqual(code, 200, body)

    def test_hidden_refusal_names_no_grant(self):
        """The upload's 409 does not name a hidden grant to whom it refuses."""
        self.reload("secret = group:platform hidden\n")
        code, body = self.upload("bob", "secret-tool", "1.0")
        self.assertEqual(code, 409)
        self.assertIn(b"secret-tool is in a namespace, reserved in default", body)
        self.assertNotIn(b"namespace secret", body)

    def test_wrong_credentials_no_oracle(self):
        """
        Wrong credentials get a hidden grant's project as any other's (401,
        though anyone may read), in an index and in a view; the owner, and
        the owner of a quarantined project, get theirs.
        """
        self.reload("secret = group:platform hidden\nacme = group:platform\n")
        for name in ("secret-x", "acme-x", "plain-x"):
            self.assertEqual(self.upload("alice", name, "1.0")[0], 200)
            self.assertEqual(self.upload("alice", name, "1.0", "/release/")[0], 200)
        for name in ("secret-x", "acme-x", "plain-x"):
            for index in ("", "/stable"):
                response = self.successResultOf(self.treq.get(
                    f"http://127.0.0.1{index}/simple/{name}/", auth=("nobody", "wrong"),
                    headers={"Accept": JSON}))
                self.assertEqual(response.code, 401, (index, name))
        code, body = self.call("post", "/api/projects/secret-x/status", "admin",
                               json={"status": "quarantined"})
        self.assertEqual(code, 200, body)
        self.read = "authenticated"
        self.service.reload()
        full = [{"name": "secret", "owned": True}]
        self.assertEqual(self.page("/simple/secret-x/", "alice")["namespaces"], full)
        self.assertEqual(self.page("/simple/secret-x/", "admin")["namespaces"], full)
        self.assertIsNone(self.page("/simple/secret-x/", "bob")["namespaces"])

    def test_view_follows_its_base(self):
        """A view's page kept from its base's follows a grant only the base takes."""
        self.reload("acme = group:platform\n")
        self.assertEqual(self.upload("alice", "acme-tools", "1.0", "/release/")[0], 200)
        acme = [{"name": "acme", "owned": True}]
        self.assertEqual(self.page("/stable/simple/acme-tools/")["namespaces"], acme)
        self.reload("acme = group:platform\nrelease/acme-tools = group:platform\n")
        self.assertEqual(self.page("/release/simple/acme-tools/")["namespaces"],
                         acme + [{"name": "acme-tools", "owned": True}])
        self.assertEqual(self.page("/stable/simple/acme-tools/")["namespaces"], acme)
        self.reload("release/acme = group:platform hidden\nacme = group:platform\n")
        self.assertIsNone(self.page("/release/simple/acme-tools/")["namespaces"])
        self.assertEqual(self.page("/stable/simple/acme-tools/")["namespaces"], acme)

    def test_root_of_a_reader_rules_hide_from(self):
        """The project list made for one reader is at 1.5 too."""
        self.extra += "[acl]\nprivate-* = user:alice rw\n"
        self.reload("acme = group:platform\n")
        for user in ("alice", "bob", "admin"):
            self.assertEqual(self.page("/simple/", user)["meta"]["api-version"], "1.5", user)

    # -- what a second hostile review found (issue 46) ---------------------------------

    def test_owned_in_each_index(self):
        """
        What a grant found in one index is that index's: the owners' own
        project of that name in another is theirs; a page composed of both
        says what either found.
        """
        self.assertEqual(self.upload("bob", "acme-legacy", "1.0", "/release/")[0], 200)
        self.reload("acme = group:platform\n")
        self.assertEqual(self.upload("bob", "acme-legacy", "1.0")[0], 409)
        self.assertEqual(self.upload("alice", "acme-legacy", "1.0")[0], 200)
        self.assertEqual(self.page("/simple/acme-legacy/")["namespaces"],
                         [{"name": "acme", "owned": True}])
        self.assertEqual(self.page("/release/simple/acme-legacy/")["namespaces"],
                         [{"name": "acme", "owned": False}])
        self.assertEqual(self.page("/stable/simple/acme-legacy/")["namespaces"],
                         [{"name": "acme", "owned": False}])

    def test_the_bin_and_the_admins(self):
        """
        The first file of a project counts from the recycle bin too; an
        admin's project is the owners' (an admin owns every namespace).
        """
        self.assertEqual(self.upload("alice", "acme-x", "1.0")[0], 200)
        self.assertEqual(self.upload("bob", "acme-y", "1.0")[0], 200)
        self.assertEqual(self.upload("alice", "acme-y", "2.0")[0], 200)
        self.assertEqual(self.upload("admin", "acme-admin", "1.0")[0], 200)
        self.assertEqual(self.upload("alice", "acme-x", "2.0")[0], 200)
        for filename in ("acme_x-1.0-py3-none-any.whl", "acme_y-1.0-py3-none-any.whl"):
            self.assertEqual(self.call("delete", f"/api/files/{filename}", "admin")[0], 200)
        self.reload("acme = group:platform\n")
        for name, owned in (("acme-x", True), ("acme-y", False), ("acme-admin", True)):
            self.assertEqual(self.page(f"/simple/{name}/")["namespaces"],
                             [{"name": "acme", "owned": owned}], name)

    def test_a_reload_looks_once(self):
        """A reload that adds a grant looks for its projects once, and only in its namespace."""
        from pypid.core.indexes import namespace_api
        looked = []
        real = namespace_api.foreign_projects

        def counting(grant, projects, *args):
            looked.append(grant.name)
            return real(grant, projects, *args)
        import pypid.state.grant_keeper as serving
        self.patch(serving, "foreign_projects", counting)
        self.reload("acme = group:platform\n")
        # (one call an index it is granted in: default and release)
        self.assertEqual(looked, ["acme", "acme"])

