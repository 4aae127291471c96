"""
Where two features meet (issue 41): the recycle bin and the upstream,
grants and named indexes, bases and the bin, counts and HEAD, dated views
and promotion, hidden bases. Each test here failed before its fix; the
state machine of L{tests.unit.core.indexes.test_model} checks the same properties on
random sequences.
"""

import json

from treq.testing import RequestTraversalAgent
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.policy import AccessModel
from pypid.auth.tokens import TokenBook
from pypid.auth.verifier import PasswordVerifier
from pypid.core.indexes.composition import ChainSource, Filters, compose
from pypid.core.indexes.index import Index
from pypid.core.indexes.links import file_url_for
from pypid.core.indexes.promotion import Promotion
from pypid.upstream.proxy import UpstreamProxy
from pypid.web.app import build_web
from pypid.web.identity.gates import Gates
from pypid.web.web_inputs import SiteServices, SiteSettings
from tests.harness.fakes import one_index, run_in_pool_now, run_now, site_treq
from tests.harness.indexes import START, Server, basic
from tests.harness.memory_storage import MemoryStorage
from tests.harness.records import make_record
from tests.harness.upstream import INDEX_A, ORIGIN_A, Origins, drain, make_source, page

JSON = "application/vnd.pypi.simple.v1+json"

#: What the public index offers under a private name (a dependency confusion).
PUBLIC = "corp_lib-9.9-py3-none-any.whl"
PUBLIC_URL = f"http://{ORIGIN_A}/f/{PUBLIC}"


class _Served:
    """The default index over an upstream that offers C{corp-lib 9.9}, in memory."""

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1767225600)
        self.origins = Origins()
        self.agent = RequestTraversalAgent(self.origins)
        self.origins.route(INDEX_A + "corp-lib/",
                           page("corp-lib", [(PUBLIC, PUBLIC_URL, b"public bytes")]))
        self.origins.route(PUBLIC_URL, b"public bytes")
        self.storage = MemoryStorage(self.mktemp(), self.clock)
        self.successResultOf(self.storage.prepare())
        kept = MemoryStorage(self.mktemp(), self.clock)
        self.successResultOf(kept.prepare())
        source = make_source(self.agent, self.clock, INDEX_A, kept)
        self.index = Index(file_url_for(None))
        proxy = UpstreamProxy.create(source, self.index, self.index.file_url)
        verifier = PasswordVerifier({}, self.clock, None, run_in_pool=run_in_pool_now)
        access = Gates(AccessModel(read="everyone"), verifier, None, TokenBook(self.clock))
        web = build_web(one_index(self.index, self.storage, self.clock, upstream=proxy), access,
                        run_now, self.clock,
                        SiteSettings(max_upload_size=1 << 20),
                        SiteServices(upstream=proxy))
        self.treq = site_treq(web.site)

    def get(self, path, accept=JSON):
        d = self.treq.get("http://pypi.test" + path, headers={"accept": accept})
        drain(self.agent, d)
        response = self.successResultOf(d)
        return response.code, self.successResultOf(drain(self.agent, response.content()))

    def upstream_asked(self):
        return [seen for seen in self.origins.seen if "corp" in seen[1]]


class BinnedNameStaysHostedTests(_Served, SynchronousTestCase):
    """
    Defect 1 (high): a hosted project whose every file is in the recycle
    bin keeps its name hosted; the upstream is never asked for it, and
    none of the upstream's files of that name is served.
    """

    def setUp(self):
        super().setUp()
        self.record = make_record("corp-lib", "1.0")
        self.index.add(self.record)

    def test_binned_project_not_asked_upstream(self):
        """With its only file binned, the page lists nothing and the upstream is not asked."""
        self.index.add(self.record.replace(binned=self.clock.seconds()))
        code, body = self.get("/simple/corp-lib/")
        self.assertEqual(code, 200)
        self.assertNotIn(PUBLIC.encode(), body)
        code, _ = self.get(f"/files/corp-lib/{PUBLIC}")
        self.assertEqual(code, 404)
        self.assertEqual(self.upstream_asked(), [])

    def test_binned_at_load(self):
        """A start that finds the project's only file in the bin keeps the name hosted too."""
        self.index.load([self.record.replace(binned=self.clock.seconds())])
        self.assertIsNotNone(self.index.project("corp-lib"))
        code, body = self.get("/simple/corp-lib/")
        self.assertEqual(code, 200)
        self.assertNotIn(PUBLIC.encode(), body)
        self.assertEqual(self.upstream_asked(), [])

    def test_restored_then_purged(self):
        """Restored, the file is listed again; purged, a tombstone keeps the name."""
        self.index.add(self.record.replace(binned=self.clock.seconds()))
        self.index.add(self.record)
        self.assertIn(self.record.filename.encode(), self.get("/simple/corp-lib/")[1])
        self.index.add(self.record.replace(binned=self.clock.seconds()))
        self.index.remove(self.record.filename)
        code, body = self.get("/simple/corp-lib/")
        self.assertEqual(code, 200)
        self.assertNotIn(PUBLIC.encode(), body)
        self.assertEqual(self.upstream_asked(), [])

    def test_discarded_binned_file_frees_the_name(self):
        """A binned file another server rolled back (discarded, no tombstone) frees the name."""
        self.index.add(self.record.replace(binned=self.clock.seconds()))
        self.index.discard(self.record.filename)
        self.assertIsNone(self.index.project("corp-lib"))


class EachIndexItsOwnGrantTests(SynchronousTestCase):
    """
    Defect 2: C{[index:default] upload} decides for the default index
    alone; a named index's changes are decided by its own grant.
    """

    def setUp(self):
        # (alice alone may upload to the default index; carol to secret)
        self.server = Server(self, default_upload=("user:alice",))

    def test_named_index_upload_by_its_own_grant(self):
        """Carol, without the default's grant, uploads to secret by secret's grant."""
        code, _, body = self.server.upload("/secret/", "hidden-lib", "1.0",
                                           auth=basic("carol"))
        self.assertEqual((code, body), (200, b"OK\n"))

    def test_named_index_changes_by_its_own_grant(self):
        """Carol yanks and deletes in secret, and promotes into it, by secret's grant."""
        self.server.upload("/secret/", "hidden-lib", "1.0", auth=basic("carol"))
        code, _, body = self.server.request(
            "POST", "/secret/api/projects/hidden-lib/1.0/yank", basic("carol"))
        self.assertEqual(code, 200, body)
        code, _, body = self.server.request(
            "DELETE", "/secret/api/projects/hidden-lib/1.0", basic("carol"))
        self.assertEqual(code, 200, body)

    def test_default_grant_still_decides_the_default(self):
        """Carol may not upload to the default index; alice may."""
        code, _, _ = self.server.upload("/", "open-lib", "1.0", auth=basic("carol"))
        self.assertEqual(code, 401)
        code, _, _ = self.server.upload("/", "open-lib", "1.0")
        self.assertEqual(code, 200)

    def test_named_grant_refuses_there(self):
        """Alice, with the default's grant, may not upload to secret (its grant is carol's)."""
        code, _, _ = self.server.upload("/secret/", "hidden-lib", "1.0")
        self.assertEqual(code, 404)  # (secret is hidden from alice: as a missing index)


class ChainedFilesTests(SynchronousTestCase):
    """
    Defects 3 and 5, as the model of L{tests.unit.core.indexes.test_model} found them: what
    an index lists, it serves, and what it serves, it lists; a dated view
    is what its sources held at its date.
    """

    def setUp(self):
        self.server = Server(self)

    def served(self, path):
        return self.server.request("GET", path)[0]

    def test_binned_in_an_earlier_base(self):
        """
        In staging (based on release), with the same wheel in both and
        staging's copy in the bin, release's is listed, and served.
        """
        self.server.upload("/release/", "widget", "1.0")
        self.server.upload("/staging/", "widget", "1.0")
        filename = "widget-1.0-py3-none-any.whl"
        s = self.server.stacks["staging"]
        record = s.index.get_file(filename)
        s.index.add(record.replace(binned=self.server.clock.seconds()))
        code, _, body = self.server.request("GET", "/staging/simple/widget/",
                                            headers={"Accept": JSON})
        self.assertEqual(code, 200)
        self.assertIn(filename.encode(), body)
        self.assertEqual(self.served(f"/staging/files/widget/{filename}"), 200)

    def test_dated_view_ignores_later_uploads(self):
        """
        An upload after a dated view's date to an earlier base shadows
        nothing in the view: the file its later base held at the date is
        listed (the page is the view's own, not a source's).
        """
        release, staging = Index(file_url_for(None)), Index(file_url_for(None))
        filename = "holy_grail-1.0-py3-none-any.whl"
        release.add(make_record(upload_time=START))
        staging.add(make_record(upload_time=START + 2000, sha256="2" * 64))
        order = (ChainSource("staging", hosted=staging), ChainSource("release", hosted=release))
        composition = compose(order, "holy-grail", Filters(as_of=START + 1000), START + 3000,
                              file_url_for(None))
        self.assertEqual([(f.filename, source.name) for f, source in composition.files],
                         [(filename, "release")])
        self.assertIsNone(composition.delegate)

    def test_dated_view_judges_arrival(self):
        """A file promoted after the date is not in the view, whatever its upload time."""
        release, staging = Index(file_url_for(None)), Index(file_url_for(None))
        staging.add(make_record(upload_time=START))
        release.add_promoted(make_record(upload_time=START),
                             Promotion("staging", "root", START + 2000))
        order = (ChainSource("release", hosted=release),)
        composition = compose(order, "holy-grail", Filters(as_of=START + 1000), START + 3000)
        self.assertEqual(composition.files, ())


class LowDefectTests(SynchronousTestCase):
    """Defect 7: the small answers that said too much, or the wrong thing."""

    def test_admin_token_on_admin_route(self):
        """An admin's token on an admin route is told tokens never act as admins."""
        server = Server(self)
        text, token = server.tokens.make("root", {"read", "upload"})
        server.tokens.tokens[token.id] = token
        code, _, body = server.request("GET", "/api/audit", basic("__token__", text))
        self.assertEqual(code, 403)
        self.assertEqual(body, b"a token never acts as an admin: log in with a password\n")

    def test_credentials_without_read_on_default(self):
        """
        Good credentials without the default index's read grant find it
        missing (404), as a named index hidden from them answers; no
        credentials get the challenge.
        """
        server = Server(self, read="authenticated", default_read=("user:alice",))
        self.assertEqual(server.request("GET", "/simple/")[0], 401)
        self.assertEqual(server.request("GET", "/simple/", basic("alice"))[0], 200)
        code, headers, body = server.request("GET", "/simple/", basic("carol"))
        self.assertEqual((code, body), (404, b"no such page\n"))
        self.assertFalse(headers.hasHeader(b"www-authenticate"))

    def test_token_kept_to_other_indexes(self):
        """A token kept to release finds the (closed) default index missing, not empty."""
        server = Server(self, read="authenticated")
        self.assertEqual(server.request("GET", "/simple/", server.scoped)[0], 404)
        self.assertEqual(server.request("GET", "/release/simple/", server.scoped)[0], 200)

    def test_legacy_json_of_the_composition(self):
        """
        C{/NAME/pypi/<p>/json} describes what the index's pages list: in
        staging (based on release), release's versions too, and each
        file's metadata from the source that holds it.
        """
        server = Server(self)
        server.upload("/release/", "widget", "1.0")
        server.upload("/staging/", "widget", "2.0")
        code, _, body = server.request("GET", "/staging/pypi/widget/json")
        self.assertEqual(code, 200, body)
        answer = json.loads(body)
        self.assertEqual(sorted(answer["releases"]), ["1.0", "2.0"])
        self.assertEqual(answer["info"]["version"], "2.0")
        code, _, body = server.request("GET", "/staging/pypi/widget/1.0/json")
        self.assertEqual(code, 200, body)
        self.assertEqual(json.loads(body)["info"]["version"], "1.0")
