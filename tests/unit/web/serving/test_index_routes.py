"""
Named indexes served under C{/NAME/} (issue 26, stage 4), in memory: a
hosted C{release}; C{staging}, hosted, based on it; C{prod}, a view of
C{release} with a date (C{as_of}); C{secret}, hosted, that only carol
reads. Inheritance through the web (a project uploaded to C{release} is
listed in C{staging}, C{staging}'s own file shadows C{release}'s), the
view's date and its 405s, hidden indexes answering as missing ones byte
for byte, uploads into each index's own stack and audit entries naming
the index, and the C{index} label of C{/metrics}.
"""

import hashlib
import json
import re
from urllib.parse import urljoin

from twisted.trial.unittest import SynchronousTestCase

from pypid.core.access.access_rules import parse_rule
from tests.harness.distributions import make_wheel
from tests.harness.fakes import (
    multipart_body,
    twine_fields,
)
from tests.harness.indexes import ORIGIN, Server, basic, entries, same


class IndexRouteTests(SynchronousTestCase):
    """Everything under C{/NAME/}, through the real site in memory."""

    def setUp(self):
        self.server = Server(self)

    def page(self, path, auth=None):
        code, _, body = self.server.request("GET", path, auth,
                                            headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        self.assertEqual(code, 200, (path, body))
        return json.loads(body)

    def test_upload_goes_to_its_index(self):
        """An upload to C{/release/} lands in release's own index and storage, not the default's."""
        code, _, body = self.server.upload("/release/legacy/", "widget", "1.0")
        self.assertEqual(code, 200, body)
        self.assertIsNotNone(self.server.stacks["release"].index.project("widget"))
        self.assertIsNone(self.server.stacks["default"].index.project("widget"))
        self.assertEqual(self.server.request("GET", "/simple/widget/")[0], 404)

    def test_inherited_and_shadowed(self):
        """staging lists release's files after its own; its own file of a name wins."""
        s = self.server
        self.assertEqual(s.upload("/release/", "widget", "1.0")[0], 200)
        self.assertEqual(s.upload("/staging/", "widget", "2.0")[0], 200)
        self.assertEqual(s.upload("/release/", "gadget", "1.0")[0], 200)
        files = [f["filename"] for f in self.page("/staging/simple/widget/")["files"]]
        self.assertEqual(files, ["widget-1.0-py3-none-any.whl", "widget-2.0-py3-none-any.whl"])
        root = [p["name"] for p in self.page("/staging/simple/")["projects"]]
        self.assertEqual(root, ["gadget", "widget"])
        self.assertEqual([f["filename"] for f in self.page("/release/simple/widget/")["files"]],
                         ["widget-1.0-py3-none-any.whl"])
        # the inherited file downloads through staging, from release's storage
        code, _, data = s.request("GET", "/staging/files/widget/widget-1.0-py3-none-any.whl")
        self.assertEqual(code, 200)
        self.assertEqual(data[:2], b"PK")
        # a second 1.0 in staging with other bytes shadows release's
        s.clock.advance(10)
        self.assertEqual(s.upload("/staging/", "gadget", "1.0")[0], 200)
        shown = self.page("/staging/simple/gadget/")["files"]
        own = s.stacks["staging"].index.get_file("gadget-1.0-py3-none-any.whl")
        self.assertEqual([f["hashes"]["sha256"] for f in shown], [own.sha256])

    def test_view_as_of(self):
        """A view with C{as_of} lists and serves only files uploaded before it."""
        s = self.server
        self.assertEqual(s.upload("/release/", "widget", "1.0")[0], 200)
        s.clock.advance(2000)
        self.assertEqual(s.upload("/release/", "widget", "2.0")[0], 200)
        files = [f["filename"] for f in self.page("/prod/simple/widget/")["files"]]
        self.assertEqual(files, ["widget-1.0-py3-none-any.whl"])
        self.assertEqual(
            s.request("GET", "/prod/files/widget/widget-2.0-py3-none-any.whl")[0], 404)
        self.assertEqual(
            s.request("GET", "/prod/files/widget/widget-1.0-py3-none-any.whl")[0], 200)

    def test_view_refuses_changes(self):
        """Uploads, yanks and deletes to a view are 405s with the reason."""
        s = self.server
        self.assertEqual(s.upload("/release/", "widget", "1.0")[0], 200)
        for answer in (
                s.upload("/prod/", "widget", "3.0"),
                s.upload("/prod/legacy/", "widget", "3.0"),
                s.request("POST", "/prod/api/files/widget-1.0-py3-none-any.whl/yank",
                          basic("alice")),
                s.request("DELETE", "/prod/api/projects/widget/1.0", basic("alice"))):
            code, headers, body = answer
            self.assertEqual(code, 405, body)
            self.assertIn(b"prod is a view", body)
        self.assertIsNone(s.stacks["release"].index.get_file("widget-3.0-py3-none-any.whl"))

    def test_view_names_where_to_upload(self):
        """
        A view's 405 ends with where to go instead: the hosted index it
        reads (its base), to upload to or to change files in.
        """
        s = self.server
        code, _, body = s.upload("/prod/", "widget", "3.0")
        self.assertEqual((code, body), (405, b"prod is a view: it takes no uploads, yanks or "
                                             b"deletes; upload to release, the hosted index "
                                             b"it reads\n"))
        code, _, body = s.request("POST", "/prod/api/files/widget-1.0-py3-none-any.whl/yank",
                                  basic("alice"))
        self.assertEqual(code, 405, body)
        self.assertTrue(body.endswith(b"; change its files in release, the hosted index "
                                      b"it reads\n"), body)

    def test_view_names_only_indexes_seen(self):
        """
        The hosted indexes a view's 405 names are those the caller may
        enter: one hidden from them is not named (it answers as a missing
        one everywhere else); with none left, no remedy.
        """
        from twisted.web.server import Request
        from twisted.web.test.requesthelper import DummyChannel

        from pypid.web.serving.index_root import ReadOnlyPublish
        s = Server(self, through=True)
        code, _, body = s.upload("/vault/", "widget", "3.0", auth=basic("carol"))
        self.assertEqual(code, 405, body)
        self.assertTrue(body.endswith(b"; upload to secret, the hosted index it reads\n"), body)
        gates = s.access
        request = Request(DummyChannel())
        refusal = ReadOnlyPublish("mix", gates, ("release", "secret", "staging"))._refusal(
            request, "upload to")
        self.assertEqual(refusal.remedy,
                         "upload to one of the hosted indexes it reads: release, staging")
        refusal = ReadOnlyPublish("vault", gates, ("secret",))._refusal(request, "upload to")
        self.assertIsNone(refusal.remedy)

    def test_yank_and_delete_in_index(self):
        """Yank and delete under C{/NAME/api/} change that index, with its name in the audit."""
        s = self.server
        self.assertEqual(s.upload("/staging/", "widget", "1.0")[0], 200)
        code, _, body = s.request("POST",
                                  "/staging/api/files/widget-1.0-py3-none-any.whl/yank",
                                  basic("alice"))
        self.assertEqual(code, 200, body)
        self.assertIsNotNone(
            s.stacks["staging"].index.get_file("widget-1.0-py3-none-any.whl").yanked)
        code, _, body = s.request("DELETE", "/staging/api/projects/widget/1.0", basic("alice"))
        self.assertEqual(code, 200, body)
        self.assertIsNone(s.stacks["staging"].index.get_file("widget-1.0-py3-none-any.whl"))
        found = entries(s.log)
        self.assertEqual([(e["event"], e.get("index")) for e in found],
                         [("upload", "staging"), ("yank", "staging"), ("delete", "staging")])

    def test_default_audit_has_no_index(self):
        """The default index's entries stay as they were: no C{index} field."""
        s = self.server
        self.assertEqual(s.upload("/", "widget", "1.0")[0], 200)
        found = entries(s.log)
        self.assertNotIn("index", found[0])

    def test_legacy_json(self):
        """C{/NAME/pypi/<p>/json} answers from the first source holding the project."""
        s = self.server
        self.assertEqual(s.upload("/release/", "widget", "1.0")[0], 200)
        code, _, body = s.request("GET", "/staging/pypi/widget/json")
        self.assertEqual(code, 200, body)
        self.assertEqual(json.loads(body)["info"]["version"], "1.0")
        self.assertEqual(s.request("GET", "/staging/pypi/nothing/json")[0], 404)

    def test_redirects_stay_in_index(self):
        """C{/NAME}, C{/NAME/simple} and an unnormalized name redirect under C{/NAME/}."""
        s = self.server
        self.assertEqual(s.upload("/release/", "widget", "1.0")[0], 200)
        for path, target in (("/staging", b"/staging/"), ("/staging/simple", b"/staging/simple/"),
                             ("/staging/simple/Widget/", b"/staging/simple/widget/")):
            code, headers, _ = s.request("GET", path)
            self.assertEqual((code, headers.getRawHeaders(b"location")), (301, [target]), path)

    def test_etag_and_304(self):
        """A named index's pages carry ETags and answer 304 to a matching If-None-Match."""
        s = self.server
        self.assertEqual(s.upload("/release/", "widget", "1.0")[0], 200)
        code, headers, _ = s.request("GET", "/staging/simple/widget/")
        etag = headers.getRawHeaders(b"etag")[0]
        self.assertEqual(s.request("GET", "/staging/simple/widget/",
                                   headers={"If-None-Match": etag})[0], 304)

    def test_hidden_is_missing(self):
        """
        To whoever may not read it, a hidden index answers byte for byte as
        a missing one: pages, files, uploads (anonymous included) and changes.
        """
        s = self.server
        self.assertEqual(s.upload("/secret/", "widget", "1.0", basic("carol"))[0], 200)
        for method, template in (("GET", "/{}/simple/"), ("GET", "/{}/simple/widget/"),
                                 ("GET", "/{}/files/widget/widget-1.0-py3-none-any.whl"),
                                 ("GET", "/{}/pypi/widget/json"), ("GET", "/{}"),
                                 ("POST", "/{}/api/files/widget-1.0-py3-none-any.whl/yank")):
            for auth in (None, basic("alice"), basic("alice", "wrong"), s.scoped):
                hidden = s.request(method, template.format("secret"), auth)
                missing = s.request(method, template.format("nosuch"), auth)
                self.assertEqual(same(hidden), same(missing), (method, template, auth))
            self.assertNotEqual(s.request(method, template.format("secret"), basic("carol"))[0],
                                404)
        # (anonymous clients are asked to log in, others told it is not there)
        self.assertEqual(s.request("GET", "/secret/simple/")[0], 401)
        self.assertEqual(s.request("GET", "/secret/simple/", basic("alice"))[0], 404)
        self.assertEqual(s.request("GET", "/secret/simple/", basic("carol"))[0], 200)
        self.assertEqual(s.request("GET", "/staging/simple/")[0], 200)
        for auth in (None, basic("alice"), basic("alice", "wrong")):
            hidden = s.upload("/secret/", "widget", "2.0", auth)
            missing = s.upload("/nosuch/", "widget", "2.0", auth)
            self.assertEqual(same(hidden), same(missing), auth)

    def test_no_such_index(self):
        """
        An upload to a C{/NAME/} that names no index, or a read of its
        simple pages, is told it is the index that is not there (a hidden
        one alike); another path under it is no page, as before; anonymous
        clients are still asked to log in first (an index is hidden from
        them).
        """
        s = self.server
        for name in ("nosuch", "secret"):
            for path in (f"/{name}/", f"/{name}/legacy/"):
                self.assertEqual(s.upload(path, "widget", "1.0")[::2], (404, b"no such index\n"))
            for method in ("GET", "HEAD"):
                code, headers, body = s.request(method, f"/{name}/simple/widget/", basic("alice"))
                self.assertEqual(code, 404)
                self.assertIn(body, (b"no such index\n", b""))
            self.assertEqual(s.request("GET", f"/{name}/pypi/widget/json", basic("alice"))[::2],
                             (404, b"no such page\n"))
            self.assertEqual(s.request("GET", f"/{name}/simple/")[0], 401)

    def test_no_such_index_of_one(self):
        """A server without named indexes tells an upload to C{/NAME/} there is no such index."""
        s = Server(self, named=False)
        self.assertEqual(s.upload("/nosuch/", "widget", "1.0")[::2], (404, b"no such index\n"))
        self.assertEqual(s.request("GET", "/nosuch/simple/")[::2], (404, b"no such index\n"))
        self.assertEqual(s.request("GET", "/nosuch/other")[::2], (404, b"no such page\n"))

    def test_upload_to_simple(self):
        """
        An upload sent to an index's simple pages is a 405 naming the URL
        uploads go to: the index's root, as the client reached the server
        (or under C{base_url}).
        """
        s = self.server
        for path, root in (("/simple/", b"http://pypi.test/"),
                           ("/release/simple/", b"http://pypi.test/release/"),
                           ("/release/simple/widget/", b"http://pypi.test/release/")):
            code, headers, body = s.upload(path, "widget", "1.0")
            self.assertEqual(code, 405, body)
            self.assertEqual(body, b"this URL does not take POST; it takes GET, HEAD; uploads "
                                   b"go to the index's root URL, " + root + b"\n")
            self.assertEqual(headers.getRawHeaders(b"allow"), [b"GET, HEAD"])
        s = Server(self, base_url="https://pypi.internal/")
        self.assertTrue(s.upload("/release/simple/", "widget", "1.0")[2].endswith(
            b"root URL, https://pypi.internal/release/\n"))

    def test_anonymous_upload_asks_credentials_first(self):
        """An anonymous upload to a named index is a 401 before its body, as at C{/}."""
        s = self.server
        filename, data = make_wheel("widget", "1.0")
        ctype, body = multipart_body(twine_fields("widget", "1.0", data),
                                     [("content", filename, data)])
        for path in ("/staging/", "/nosuch/legacy/", "/"):
            code, headers, _ = s.request("POST", path, None, body, {"Content-Type": ctype})
            self.assertEqual(code, 401, path)
            self.assertTrue(headers.getRawHeaders(b"www-authenticate"), path)

    def test_token_kept_to_another_index(self):
        """A token kept to C{release} uploads there, and not to C{staging}."""
        s = self.server
        self.assertEqual(s.upload("/release/", "widget", "1.0", s.scoped)[0], 200)
        code, _, body = s.upload("/staging/", "widget", "2.0", s.scoped)
        self.assertEqual(code, 403, body)
        self.assertIsNone(s.stacks["staging"].index.project("widget"))

    def test_metrics_index_label(self):
        """With named indexes, request families carry an C{index} label, bounded by the names."""
        s = self.server
        self.assertEqual(s.upload("/release/", "widget", "1.0")[0], 200)
        s.request("GET", "/staging/simple/widget/")
        s.request("GET", "/simple/")
        s.request("GET", "/nosuch/simple/")
        code, _, body = s.request("GET", "/metrics")
        self.assertEqual(code, 200)
        text = body.decode()
        self.assertIn('pypid_http_requests_total{code="200",index="staging",method="GET",'
                      'route="simple"} 1.0', text)
        self.assertIn('index="default",method="GET",route="simple"', text)
        self.assertNotIn('index="nosuch"', text)

    def test_no_label_without_named_indexes(self):
        """Without named indexes the families have no C{index} label."""
        s = Server(self, named=False)
        s.request("GET", "/simple/")
        text = s.request("GET", "/metrics")[2].decode()
        self.assertIn("pypid_http_requests_total{", text)
        self.assertNotIn("index=", text)


#: The sha256 of the default index's pages for people of
#: L{IndexPeoplePagesTests.default_pages}, measured at f6cd0be (before the
#: pages knew of indexes): without named indexes they are still these bytes.
#: (A deliberate change to the pages changes them: measure them again then.
#: Measured again after issue 27's advisories: the stylesheet gained their
#: styles, so its hashed link in every page changed, and only that: the
#: pages with f6cd0be's stylesheet still give f6cd0be's sums. Measured
#: again for issue 60: the landing and project pages' install snippets name
#: the request's origin, filled in on the server.)
DEFAULT_PAGES = {
    "/": "c2ea0f532d7554f291153e7e6455bdfd2eb232573c1515aff469fa9b26caec4e",
    "/search?q=widget": "fe7c1680b03ad02fc446fe175cd9ea91325f28077a05000db0a802bee0253afc",
    "/search?q=nothing": "337a7a2af3b43fe0f64fafbed6be3f3f892b82c21e74a7f2779c9073028c35f2",
    "/api/search?q=wid": "257ce2b08254a0ec2dd513f6e7c21e3cb26c138d64d33761d6f1e139536027ce",
    "/project/widget/": "3cff9d5d067f8256dee72bf5dccc616417dd26f7f833d4d4ca2179546dcbaae3",
    "/project/widget/1.0/": "cc451eae2fc5bec0c8452e32bcbc9900baad8e4f3bd81adcb2e26e7a924383a8",
}


def links(body):
    """The C{href} and C{src} attributes of a page, in order."""
    return re.findall(rb'(?:href|src)="([^"]*)"', body)


def switcher(body):
    """The index switcher of a page: C{[(name, current, view)]}, or L{None} without one."""
    found = re.search(rb'<nav class="indexes" aria-label="Indexes">(.*?)</nav>', body)
    if found is None:
        return None
    return [(name.decode(), bool(current), bool(view)) for current, name, view in re.findall(
        rb'<a href="[^"]*"( aria-current="page")?>([^<]*)</a>( <span class="badge">view)?',
        found.group(1))]


class IndexPeoplePagesTests(SynchronousTestCase):
    """
    The pages for people under C{/NAME/} (issue 26): landing page, search
    and project pages of each named index from its composition, links kept
    inside the index, the same access rules as its simple pages, and the
    index switcher in every page's chrome.
    """

    def setUp(self):
        self.server = Server(self, rules=(parse_rule("release/hidden-*", "user:carol rw"),))

    def get(self, path, auth=None, code=200):
        answer = self.server.request("GET", path, auth)
        self.assertEqual(answer[0], code, (path, answer[2][:300]))
        return answer[2]

    def test_landing_per_index(self):
        """C{/NAME/} counts and lists what that index lists: its own and its bases' uploads."""
        s = self.server
        self.assertEqual(s.upload("/release/", "widget", "1.0")[0], 200)
        s.clock.advance(60)
        self.assertEqual(s.upload("/staging/", "gadget", "1.0")[0], 200)
        self.assertIn(b"2 projects, 2 files ", self.get("/staging/"))
        body = self.get("/release/")
        self.assertIn(b"1 project, 1 file ", body)
        self.assertNotIn(b"gadget", body)
        self.assertIn(b"0 projects, 0 files ", self.get("/"))
        body = self.get("/staging/")
        self.assertLess(body.index(b'href="project/gadget/1.0/"'),
                        body.index(b'href="project/widget/1.0/"'))

    def test_search_within_index(self):
        """C{/NAME/search} and C{/NAME/api/search} find that index's projects, not the default's."""
        s = self.server
        self.assertEqual(s.upload("/release/", "widget", "1.0")[0], 200)
        self.assertEqual(s.upload("/staging/", "gadget", "1.0")[0], 200)
        self.assertEqual(s.upload("/", "doohickey", "1.0")[0], 200)
        self.assertIn(b'href="project/widget/"', self.get("/staging/search?q=widget"))
        self.assertIn(b"0 projects match", self.get("/release/search?q=gadget"))
        self.assertIn(b"0 projects match", self.get("/staging/search?q=doohickey"))
        self.assertIn(b"0 projects match", self.get("/search?q=widget"))
        found = json.loads(self.get("/staging/api/search?q=gadget"))
        self.assertEqual([(h["name"], h["version"], h["url"]) for h in found["hits"]],
                         [("gadget", "1.0", "project/gadget/")])
        self.assertEqual(json.loads(self.get("/api/search?q=doohickey"))["total"], 1)

    def test_view_shows_what_it_lists(self):
        """A view's pages show only what its simple pages list (here: files before its date)."""
        s = self.server
        self.assertEqual(s.upload("/release/", "widget", "1.0")[0], 200)
        s.clock.advance(2000)
        self.assertEqual(s.upload("/release/", "widget", "2.0")[0], 200)
        self.assertEqual(s.upload("/release/", "newer", "1.0")[0], 200)
        body = self.get("/prod/project/widget/")
        self.assertIn(b'<span class="version">1.0</span></h1>', body)
        self.assertNotIn(b"widget-2.0", body)
        self.assertNotIn(b"2.0", re.sub(rb"static/[^\"]*", b"", body))
        self.get("/prod/project/widget/2.0/", code=404)
        self.get("/prod/project/newer/", code=404)
        # (a project the view lists no file of answers as a missing one)
        for path in ("/prod/project/newer/1.0/", "/prod/project/Newer/"):
            self.assertEqual(same(s.request("GET", path)),
                             same(s.request("GET", path.replace("ewer", "owhere"))), path)
        self.assertIn(b"1 project, 1 file ", self.get("/prod/"))
        found = json.loads(self.get("/prod/api/search?q=widget"))
        self.assertEqual([(h["name"], h["version"]) for h in found["hits"]], [("widget", "1.0")])
        self.assertEqual(json.loads(self.get("/prod/api/search?q=newer"))["total"], 0)
        # (release itself shows both)
        self.assertIn(b'<span class="version">2.0</span></h1>', self.get("/release/project/widget/"))

    def test_inherited_project_page(self):
        """C{/staging/project/<p>/} shows staging's and release's files, each linked in staging."""
        s = self.server
        self.assertEqual(s.upload("/release/", "widget", "1.0")[0], 200)
        s.clock.advance(60)
        self.assertEqual(s.upload("/staging/", "widget", "2.0")[0], 200)
        page = "/staging/project/widget/1.0/"
        body = self.get(page)
        self.assertIn(b"widget-1.0-py3-none-any.whl", body)
        # (the switcher's links lead to the other indexes)
        inside = re.sub(rb'<nav class="indexes".*?</nav>', b"", body)
        for href in links(inside):
            target = urljoin(ORIGIN + page, href.decode())
            if target.startswith(ORIGIN) and "/static/" not in target and "/login" not in target:
                self.assertTrue(target.startswith(ORIGIN + "/staging/"), (href, target))
        files = [urljoin(ORIGIN + page, h.decode()) for h in links(body) if b"files/" in h]
        self.assertEqual(files, [ORIGIN + "/staging/files/widget/widget-1.0-py3-none-any.whl"])
        code, _, data = s.request("GET", files[0][len(ORIGIN):])
        self.assertEqual((code, data[:2]), (200, b"PK"))
        for href in links(body):
            target = urljoin(ORIGIN + page, href.decode())
            if "/static/" in target:
                self.assertEqual(s.request("GET", target[len(ORIGIN):])[0], 200, target)
        # the version list has both; the latest is 2.0, staging's own
        self.assertIn(b'href="../../../project/widget/2.0/"', body)
        self.assertIn(b'the latest version is <a href="../../../project/widget/">2.0</a>', body)
        # the install hint is the index's own simple URL, at the request's origin
        self.assertIn(b'data-root="../../../"', body)
        self.assertIn(f"pip install --index-url {ORIGIN}/staging/simple/ widget==1.0".encode(),
                      body)
        # an unnormalized name redirects inside the index
        code, headers, _ = s.request("GET", "/staging/project/Widget/")
        self.assertEqual((code, headers.getRawHeaders(b"location")),
                         (301, [b"/staging/project/widget/"]))

    def test_hidden_project_is_missing(self):
        """A project hidden from the reader answers on every page as a missing one does."""
        s = self.server
        self.assertEqual(s.upload("/release/", "hidden-thing", "1.0", basic("carol"))[0], 200)
        for path in ("/release/project/hidden-thing/", "/release/project/hidden-thing/1.0/",
                     "/release/project/Hidden.Thing/"):
            hidden = s.request("GET", path, basic("alice"))
            missing = s.request("GET", path.replace("hidden", "absent").replace(
                "Hidden", "Absent"), basic("alice"))
            self.assertEqual(same(hidden), same(missing), path)
            self.assertEqual(hidden[0], 404)
            self.assertEqual(s.request("GET", path, basic("carol"))[0],
                             301 if "Hidden" in path else 200, path)
        self.assertIn(b"0 projects match", self.get("/release/search?q=hidden", basic("alice")))
        self.assertIn(b"1 project matches", self.get("/release/search?q=hidden", basic("carol")))
        self.assertNotIn(b"hidden-thing", self.get("/release/", basic("alice")))
        self.assertIn(b"hidden-thing", self.get("/release/", basic("carol")))

    def test_hidden_index_pages_are_missing(self):
        """The pages for people of a hidden index answer byte for byte as a missing index's."""
        s = self.server
        self.assertEqual(s.upload("/secret/", "widget", "1.0", basic("carol"))[0], 200)
        for template in ("/{}/", "/{}/search?q=widget", "/{}/api/search?q=widget",
                         "/{}/project/widget/", "/{}/project/widget/1.0/"):
            for auth in (None, basic("alice"), basic("alice", "wrong"), s.scoped):
                hidden = s.request("GET", template.format("secret"), auth)
                missing = s.request("GET", template.format("nosuch"), auth)
                self.assertEqual(same(hidden), same(missing), (template, auth))
            self.assertEqual(s.request("GET", template.format("secret"), basic("carol"))[0],
                             200, template)

    def test_switcher(self):
        """Every page lists the indexes the reader may read, the current one and the views marked."""
        s = self.server
        self.assertEqual(s.upload("/release/", "widget", "1.0")[0], 200)
        everyone = [("default", False, False), ("release", False, False),
                    ("staging", False, False), ("prod", False, True)]
        self.assertEqual(switcher(self.get("/")), [("default", True, False), *everyone[1:]])
        with_secret = [*everyone, ("secret", False, False)]
        self.assertEqual(switcher(self.get("/", basic("carol"))),
                         [("default", True, False), *with_secret[1:]])
        self.assertEqual(switcher(self.get("/", basic("alice"))), switcher(self.get("/")))
        for page in ("/staging/", "/staging/search?q=w", "/staging/project/widget/",
                     "/staging/project/widget/1.0/"):
            self.assertEqual(switcher(self.get(page)),
                             [(n, n == "staging", v) for n, _, v in everyone], page)
            self.assertEqual(switcher(self.get(page, basic("carol"))),
                             [(n, n == "staging", v) for n, _, v in with_secret], page)
        # the links go to each index's landing page
        body = self.get("/staging/project/widget/1.0/")
        nav = re.search(rb'<nav class="indexes".*?</nav>', body).group(0)
        self.assertEqual([urljoin(ORIGIN + "/staging/project/widget/1.0/", h.decode())
                          for h in links(nav)],
                         [ORIGIN + "/", ORIGIN + "/release/", ORIGIN + "/staging/",
                          ORIGIN + "/prod/"])
        # (a view's landing page offers no publishing)
        self.assertNotIn(b"twine upload", self.get("/prod/"))
        self.assertIn(b"twine upload", self.get("/staging/"))

    def test_base_url(self):
        """With C{[pypid] base_url}, a named index's commands and file links are its own URLs."""
        s = Server(self, base_url="http://127.0.0.1:3141/")
        self.assertEqual(s.upload("/staging/", "widget", "1.0")[0], 200)
        body = s.request("GET", "/staging/")[2]
        self.assertIn(b"pip install --index-url http://127.0.0.1:3141/staging/simple/ ", body)
        self.assertIn(b"twine upload --repository-url http://127.0.0.1:3141/staging/ ", body)
        body = s.request("GET", "/staging/project/widget/")[2]
        self.assertIn(b'href="http://127.0.0.1:3141/staging/files/widget/'
                      b'widget-1.0-py3-none-any.whl"', body)
        self.assertIn(b"uv add --index http://127.0.0.1:3141/staging/simple/ ", body)
        self.assertIn(b'href="../../../static/', body)

    def test_no_switcher_without_named_indexes(self):
        """Without named indexes the default's pages are today's, byte for byte."""
        s = Server(self, named=False)
        bodies = self.default_pages(s)
        for path, body in bodies.items():
            self.assertIsNone(switcher(body), path)
        found = {path: hashlib.sha256(body).hexdigest() for path, body in bodies.items()}
        self.assertEqual(found, DEFAULT_PAGES)

    def default_pages(self, s):
        """The default index's pages for people, after two uploads."""
        self.assertEqual(s.upload("/", "widget", "1.0")[0], 200)
        s.clock.advance(60)
        self.assertEqual(s.upload("/", "widget", "2.0")[0], 200)
        bodies = {}
        for path in ("/", "/search?q=widget", "/search?q=nothing", "/api/search?q=wid",
                     "/project/widget/", "/project/widget/1.0/"):
            code, _, body = s.request("GET", path)
            self.assertEqual(code, 200, path)
            # (a wheel's bytes, and so its hash, change with the time it is built at)
            bodies[path] = re.sub(rb"[0-9a-f]{64}", b"SHA256", body)
        return bodies


class OwnReadRuleTests(SynchronousTestCase):
    """
    A named index's paths are read under its own C{read} grant: an index
    anyone may read on a server whose default index wants credentials.
    """

    def test_open_index_of_a_closed_server(self):
        """Every page of an open index answers anonymous readers, its project pages too."""
        server = Server(self, read="authenticated", release_read="everyone")
        self.assertEqual(server.upload("/release/", "widget", "1.0")[0], 200)
        for path in ("/release/", "/release/simple/widget/", "/release/search?q=widget",
                     "/release/pypi/widget/json", "/release/project/widget/",
                     "/release/project/widget/1.0/"):
            self.assertEqual(server.request("GET", path)[0], 200, path)
        self.assertEqual(server.request("GET", "/release/project/nothing/")[0], 404)
        self.assertEqual(server.request("GET", "/project/widget/")[0], 401)


class ViewLegacyJSONTests(SynchronousTestCase):
    """A view's C{/NAME/pypi/<p>/json} lists what its pages list, and nothing else."""

    def test_as_of(self):
        """A release uploaded after the view's date is not in its JSON; one before is."""
        server = Server(self)
        self.assertEqual(server.upload("/release/", "widget", "0.9")[0], 200)
        server.clock.advance(2000)
        self.assertEqual(server.upload("/release/", "widget", "1.0")[0], 200)
        self.assertEqual(server.upload("/release/", "gadget", "1.0")[0], 200)
        code, _, body = server.request("GET", "/prod/pypi/widget/json")
        self.assertEqual(code, 200, body)
        data = json.loads(body)
        self.assertEqual((data["info"]["version"], sorted(data["releases"])), ("0.9", ["0.9"]))
        self.assertNotIn(b"widget-1.0", body)
        self.assertEqual(server.request("GET", "/prod/pypi/widget/1.0/json")[0], 404)
        self.assertEqual(server.request("GET", "/prod/pypi/gadget/json")[0], 404)
        # (the base's own JSON, kept beside the view's, still lists both)
        data = json.loads(server.request("GET", "/release/pypi/widget/json")[2])
        self.assertEqual(sorted(data["releases"]), ["0.9", "1.0"])
        data = json.loads(server.request("GET", "/prod/pypi/widget/json")[2])
        self.assertEqual(sorted(data["releases"]), ["0.9"])
