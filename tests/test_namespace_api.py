"""
Tests for what the JSON API says of the namespace grants (PEP 752, API
1.5, issue 46): when each grant came into force (the ledger and its
keeper), each project page's C{namespaces}, and the C{/namespaces} and
C{/namespace/<name>} routes, hidden grants included, over the whole
server in memory.
"""

import json
import time

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import fail
from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.hashes import hash_password
from pypid.core.grant_ledger import MAX_BYTES, GrantLedger, InvalidLedger, ledger_key
from pypid.core.namespace_api import IndexNamespaces, creation
from pypid.core.namespaces import NamespaceGrants, parse_grant
from pypid.state.grant_keeper import GrantKeeper
from pypid.storage.interface import GRANT_LEDGER, StorageError
from pypid.storage.memory import MemoryStorage
from tests.distributions import make_wheel
from tests.fakes import FAST, multipart_body, twine_fields
from tests.harness_indexes import _ServerMixin
from tests.harness_tap import ThreadedReactor

PASSWORD = "correct horse"
JSON = "application/vnd.pypi.simple.v1+json"


def grants(*lines):
    return NamespaceGrants.of(parse_grant(key, value) for key, value in lines)


class LedgerTests(SynchronousTestCase):
    """When each grant came into force, as the ledger keeps it."""

    def test_brought_up(self):
        """
        A new grant is in force from now; one recorded with the same owners
        keeps its time; other owners make it new; one removed is forgotten.
        """
        first = GrantLedger().brought_up(grants(("acme", "group:a"), ("old", "user:x")), 10.0)
        self.assertEqual(first.since(parse_grant("acme", "group:a")), 10.0)
        later = first.brought_up(grants(("acme", "group:a"), ("tools", "user:y")), 20.0)
        self.assertEqual(later.since(parse_grant("acme", "group:a")), 10.0)
        self.assertEqual(later.since(parse_grant("tools", "user:y")), 20.0)
        self.assertNotIn("*/old", later.entries)
        moved = later.brought_up(grants(("acme", "group:b"), ("tools", "user:y")), 30.0)
        self.assertEqual(moved.since(parse_grant("acme", "group:b")), 30.0)
        # (a grant asked with other owners than recorded: no word of it)
        self.assertIsNone(later.since(parse_grant("acme", "group:b")))
        self.assertEqual(ledger_key(parse_grant("release/acme", "user:x")), "release/acme")

    @given(st.dictionaries(st.from_regex(r"\A(\*|[a-z]{1,5})/[a-z]{1,8}\Z"),
                           st.tuples(st.floats(0, 4e9),
                                     st.frozensets(st.from_regex(r"\Auser:[a-z]{1,6}\Z"),
                                                   min_size=1, max_size=3)),
                           max_size=8))
    def test_round_trip(self, found):
        from pypid.core.grant_ledger import GrantEntry
        ledger = GrantLedger({key: GrantEntry(since, owners) for key, (since, owners) in found.items()})
        data = ledger.to_bytes()
        self.assertEqual(GrantLedger.from_bytes(data), ledger)
        self.assertEqual(GrantLedger.from_bytes(data).to_bytes(), data)

    def test_refused(self):
        for data, said in (
                (b"{", "not JSON"),
                (b"\xff", "not JSON"),
                (b"[]", 'no "grants"'),
                (b'{"grants": []}', 'no "grants"'),
                (b'{"grants": {"*/a": {"since": true, "owners": []}}}', "*/a"),
                (b'{"grants": {"*/a": {"since": 1, "owners": [1]}}}', "*/a"),
                (b'{"grants": {"*/a": {"since": 1e999, "owners": []}}}', "*/a"),
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
        self.ledger = GrantLedger().brought_up(self.grants, 100.0)
        self.spaces = IndexNamespaces("default", self.grants, self.ledger,
                                      {"platform": frozenset({"alice"})})

    def test_creation(self):
        self.assertEqual(creation([_File(5.0, "bob"), _File(None), _File(3.0, "eve")]),
                         (3.0, "eve"))
        self.assertEqual(creation([_File(None)]), (None, None))

    def test_entries(self):
        """
        C{owned} is true for a project made after the grant, or by an owner
        (a C{[groups]} member), false for one a stranger made before; a
        project in no namespace has L{None}; the hidden grant only in full.
        """
        entries = self.spaces.entries
        self.assertIsNone(entries("acmetools", [_File(1.0, "bob")]))
        self.assertEqual(entries("acme-tools", [_File(150.0, "bob")]),
                         [{"name": "acme", "owned": True}])
        self.assertEqual(entries("acme-tools", [_File(50.0, "bob")]),
                         [{"name": "acme", "owned": False}])
        self.assertEqual(entries("acme-tools", [_File(50.0, "alice")]),
                         [{"name": "acme", "owned": True}])
        self.assertEqual(entries("acme-tools", [_File(50.0)]),
                         [{"name": "acme", "owned": False}])
        self.assertEqual(entries("acme-cli-x", [_File(150.0, "bob"), _File(50.0, "bob")]),
                         [{"name": "acme", "owned": False}, {"name": "acme-cli", "owned": False}])
        self.assertEqual(entries("acme-internal-x", [_File(150.0)]),
                         [{"name": "acme", "owned": True}])
        self.assertEqual(entries("acme-internal-x", [_File(150.0)], full=True),
                         [{"name": "acme", "owned": True},
                          {"name": "acme-internal", "owned": True}])
        self.assertTrue(self.spaces.hides("acme-internal-x"))
        self.assertFalse(self.spaces.hides("acme-cli"))
        # (another index: its own grant, and those of every index)
        release = self.spaces.like("release")
        self.assertEqual(release.entries("tools-x", [_File(150.0)]),
                         [{"name": "tools", "owned": True}])
        self.assertIsNone(self.spaces.entries("tools-x", [_File(150.0)]))
        # (grants with no word of when they came into force: their owners' only)
        unknown = IndexNamespaces("default", self.grants, GrantLedger(), {})
        self.assertEqual(unknown.entries("acme-x", [_File(150.0, "bob")]),
                         [{"name": "acme", "owned": False}])

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
        self.assertFalse(self.spaces.take(self.grants, self.ledger,
                                          {"platform": frozenset({"alice"})}))
        self.assertEqual(self.spaces.serial, serial)
        self.assertTrue(self.spaces.take(self.grants, self.ledger, {}))
        self.assertTrue(self.spaces.take(self.grants, self.ledger.brought_up(
            self.grants, 0.0).brought_up(grants(), 0.0).brought_up(self.grants, 7.0), {}))
        self.assertEqual(self.spaces.serial, serial + 2)
        view = IndexNamespaces("view")
        self.assertTrue(view.follow(self.spaces))
        self.assertEqual(view.listed(lambda grant: False), [{"name": "acme"},
                                                            {"name": "acme-cli"}])


class _Settings:
    def __init__(self, namespaces, groups=None):
        self.namespaces, self.groups = namespaces, groups or {}


class KeeperTests(SynchronousTestCase):
    """The keeper over a storage two servers share."""

    def setUp(self):
        from twisted.internet.task import Clock
        self.clock = Clock()
        self.clock.advance(1000)
        self.storage = MemoryStorage(self.mktemp(), self.clock)
        self.taken = []

    def keeper(self, settings, storage=None):
        keeper = GrantKeeper(storage or self.storage, self.clock,
                             lambda *args: self.taken.append(args), settings)
        self.successResultOf(keeper.startService())
        return keeper

    def test_first_server_says_since_when(self):
        """The first server to run with a grant writes its time; a later one keeps it."""
        self.keeper(_Settings(grants(("acme", "user:a"))))
        self.assertEqual(self.taken[-1][1].since(parse_grant("acme", "user:a")), 1000.0)
        self.clock.advance(50)
        other = self.keeper(_Settings(grants(("acme", "user:a"))))
        self.assertEqual(other.ledger.since(parse_grant("acme", "user:a")), 1000.0)
        self.assertTrue(other.kept)

    def test_reload(self):
        """A reload that changes the grants takes them at once, and keeps their times."""
        keeper = self.keeper(_Settings(grants(("acme", "user:a"))))
        self.assertIsNone(keeper.prepare_reload(_Settings(grants(("acme", "user:a")))))
        self.assertIsNone(keeper.prepare_reload(None))
        self.clock.advance(10)
        commit = keeper.prepare_reload(_Settings(grants(("acme", "user:a"), ("b", "user:a"))))
        self.assertEqual(commit(), "namespace grants")
        self.assertEqual(keeper.ledger.since(parse_grant("b", "user:a")), 1010.0)
        self.assertEqual(keeper.ledger.since(parse_grant("acme", "user:a")), 1000.0)
        kept = GrantLedger.from_bytes(self.successResultOf(self.storage.document(GRANT_LEDGER)))
        self.assertEqual(kept, keeper.ledger)

    def test_unreadable(self):
        """
        A broken document, or a storage that fails, is logged and not
        written; the grants are served from now.
        """
        self.successResultOf(self.storage.keep_document(GRANT_LEDGER, b"{broken"))
        keeper = self.keeper(_Settings(grants(("acme", "user:a"))))
        self.assertFalse(keeper.kept)
        self.assertEqual(keeper.ledger.since(parse_grant("acme", "user:a")), 1000.0)
        self.assertEqual(self.successResultOf(self.storage.document(GRANT_LEDGER)), b"{broken")
        self.assertEqual(len(self.flushLoggedErrors()), 0)

        class Failing:
            def document(self, name):
                return fail(StorageError("the disk is gone"))
        keeper = self.keeper(_Settings(grants(("acme", "user:a"))), Failing())
        self.assertFalse(keeper.kept)
        self.assertEqual(self.taken[-1][1].since(parse_grant("acme", "user:a")), 1000.0)


class ServerTests(_ServerMixin, SynchronousTestCase):
    """The JSON API 1.5 of the whole server, in memory, across reloads and a restart."""

    def setUp(self):
        super().setUp()
        self.reactor = ThreadedReactor()
        self.reactor.advance(time.time() - self.reactor.seconds())
        self.users = "".join(f"{name} = {hash_password(PASSWORD, FAST)}\n"
                             for name in ("admin", "alice", "bob"))
        self.grants = ""
        self.service = self.start()

    def text(self):
        return self.config("[auth]\nadmins = admin\n[users]\n" + self.users
                           + "[groups]\nplatform = alice\n[index:release]\n"
                           + "[index:stable]\nview = yes\nbases = release\n"
                           + ("[namespaces]\n" + self.grants if self.grants else ""))

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
        """Every JSON page is at 1.5 with its C{namespaces}; the HTML stays at 1.4 without."""
        self.assertEqual(self.upload("bob", "widget", "1.0")[0], 200)
        page = self.page("/simple/widget/")
        self.assertEqual(page["meta"], {"api-version": "1.5"})
        self.assertIsNone(page["namespaces"])
        self.assertEqual(self.page("/simple/")["meta"], {"api-version": "1.5"})
        self.assertEqual(self.page("/stable/simple/")["meta"], {"api-version": "1.5"})
        self.assertEqual(self.page("/simple/namespaces"), [])
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
        # (the grant removed: in no namespace; given again, from now)
        self.reload("")
        self.assertIsNone(self.page("/simple/acme-cli/")["namespaces"])
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
            entries = self.page("/simple/acme-secret-x/", user)["namespaces"]
            self.assertEqual([e["name"] for e in entries],
                             ["acme", "acme-secret"] if seen else ["acme"], user)
            response, _ = self.get("/simple/acme-secret-x/", user)
            if seen:
                self.assertEqual(response.headers.getRawHeaders("cache-control"),
                                 ["private, no-store"])

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
