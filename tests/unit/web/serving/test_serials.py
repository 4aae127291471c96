"""
The journal's serials on the pages, as the public index serves them
(L{pypid.core.records.serials}, the whole server built by
C{pypid.daemon.server.build_service} over memory): C{_last-serial} beside each
project of the JSON C{/simple/} and in each JSON page's C{meta}, the
C{X-PyPI-Last-Serial} header of every page and of C{/pypi/<project>/json},
each moving with the project's changes only; the files at their
C{/packages/<blake2>/<filename>} URLs; a restart from the snapshot going on
from the serial it kept.
"""

import hashlib
import json

from twisted.trial.unittest import SynchronousTestCase

from pypid.core.records.audit_chain import BEGINNING
from tests.harness.distributions import make_wheel
from tests.harness.fakes import multipart_body, twine_fields
from tests.harness.indexes import _ServerMixin
from tests.harness.web import basic

JSON = "application/vnd.pypi.simple.v1+json"
ORIGIN = "http://pypi.test"


class SerialsTests(_ServerMixin, SynchronousTestCase):
    """A server with a private named index: its pages' serials, and its files by digest."""

    def setUp(self):
        super().setUp()
        self.at_wall_time()
        from pypid.auth.hashes import hash_password
        from tests.harness.fakes import FAST
        self.users = f"[users]\nalice = {hash_password('pw', FAST)}\n"
        self.text = lambda: self.config(
            self.users + "[auth]\nupload = authenticated\n"
            "[index:private]\nread = user:alice\nupload = user:alice\n")
        self.service, self.client = self.served(self.text)

    def request(self, method, path, auth=None, headers=None, data=None):
        headers = dict(headers or {})
        if auth:
            headers["Authorization"] = basic("alice", "pw")
        response = self.successResultOf(self.client.request(
            method, ORIGIN + path, headers=headers, data=data, allow_redirects=False))
        return response, self.successResultOf(response.content())

    def upload(self, name, version, path="/"):
        filename, data = make_wheel(name, version)
        ctype, body = multipart_body(twine_fields(name, version, data),
                                     [("content", filename, data)])
        response, text = self.request("POST", path, True, {"Content-Type": ctype}, body)
        self.assertEqual(response.code, 200, text)
        return filename, data

    def page(self, path, auth=None):
        response, body = self.request("GET", path, auth, {"Accept": JSON})
        self.assertEqual(response.code, 200, body)
        return int(response.headers.getRawHeaders("X-PyPI-Last-Serial")[0]), json.loads(body)

    def test_serials_move_with_their_projects(self):
        """
        A project carries the serial of its last change, the listing the
        journal's last; a change of another project moves only that one's.
        """
        serial, listing = self.page("/simple/")
        self.assertEqual((serial, listing["meta"]["_last-serial"], listing["projects"]),
                         (BEGINNING, BEGINNING, []))
        self.upload("alpha", "1.0")
        self.upload("beta", "1.0")
        serial, listing = self.page("/simple/")
        serials = {p["name"]: p["_last-serial"] for p in listing["projects"]}
        self.assertEqual(serials, {"alpha": BEGINNING + 1, "beta": BEGINNING + 2})
        self.assertEqual(serial, BEGINNING + 2)
        self.assertEqual(self.page("/simple/alpha/")[0], BEGINNING + 1)
        self.assertEqual(self.page("/simple/alpha/")[1]["meta"]["_last-serial"], BEGINNING + 1)
        response, body = self.request("GET", "/simple/alpha/", headers={"Accept": "text/html"})
        self.assertEqual(response.headers.getRawHeaders("X-PyPI-Last-Serial"),
                         [str(BEGINNING + 1)])
        # (a page kept before a change is made again with the change's serial)
        response, body = self.request("POST", "/api/files/beta-1.0-py3-none-any.whl/yank",
                                      True, {"Content-Type": "application/x-www-form-urlencoded"},
                                      b"reason=broken")
        self.assertEqual(response.code, 200, body)
        self.assertEqual(self.page("/simple/beta/")[0], BEGINNING + 3)
        self.assertEqual(self.page("/simple/alpha/")[0], BEGINNING + 1)
        response, body = self.request("GET", "/pypi/beta/json")
        self.assertEqual((response.headers.getRawHeaders("X-PyPI-Last-Serial"),
                          json.loads(body)["last_serial"]), ([str(BEGINNING + 3)], BEGINNING + 3))

    def test_private_index_serials(self):
        """A named index's pages carry the serials of the one journal; only its readers see them."""
        self.upload("alpha", "1.0")
        self.upload("hidden", "1.0", "/private/")
        serial, listing = self.page("/private/simple/", auth=True)
        self.assertEqual([(p["name"], p["_last-serial"]) for p in listing["projects"]],
                         [("hidden", BEGINNING + 2)])
        self.assertEqual(self.request("GET", "/private/simple/")[0].code, 401)

    def test_no_serial_of_another_index(self):
        """The default index's last serial moves with its own projects, not the private's."""
        self.upload("alpha", "1.0")
        self.upload("hidden", "1.0", "/private/")
        self.upload("hidden", "2.0", "/private/")
        serial, listing = self.page("/simple/")
        self.assertEqual((serial, listing["meta"]["_last-serial"]),
                         (BEGINNING + 1, BEGINNING + 1))

    def test_index_with_bases(self):
        """
        An index with bases carries the last serial of its hosted sources'
        for each project, and it moves with a change in any of them.
        """
        self.successResultOf(self.service.stopService())
        self.service, self.client = self.served(lambda: self.config(
            self.users + "[auth]\nupload = authenticated\n"
            "[index:release]\nupload = user:alice\n"
            "[index:staging]\nbases = release\nupload = user:alice\n"))
        self.upload("widget", "1.0", "/staging/")
        self.upload("widget", "2.0", "/release/")
        serial, listing = self.page("/staging/simple/")
        self.assertEqual(([(p["name"], p["_last-serial"]) for p in listing["projects"]],
                          listing["meta"]["_last-serial"], serial),
                         ([("widget", BEGINNING + 2)], BEGINNING + 2, BEGINNING + 2))
        self.assertEqual(self.page("/staging/simple/widget/")[0], BEGINNING + 2)
        self.upload("widget", "3.0", "/release/")
        response, body = self.request("GET", "/staging/pypi/widget/json")
        self.assertEqual((json.loads(body)["info"]["version"], json.loads(body)["last_serial"]),
                         ("3.0", BEGINNING + 3))
        self.assertEqual(self.page("/staging/simple/widget/")[0], BEGINNING + 3)

    def test_packages(self):
        """
        A file at its digest's URL, its metadata beside it; a wrong digest,
        a malformed path, another method, or a private file without
        credentials: no file.
        """
        filename, data = self.upload("alpha", "1.0")
        _, legacy = self.request("GET", "/pypi/alpha/json")
        [url] = [u["url"] for u in json.loads(legacy)["urls"]]
        blake = hashlib.blake2b(data, digest_size=32).hexdigest()
        self.assertEqual(url, f"{ORIGIN}/packages/{blake[:2]}/{blake[2:4]}/{blake[4:]}/{filename}")
        path = url[len(ORIGIN):]
        response, body = self.request("GET", path)
        self.assertEqual((response.code, body), (200, data))
        response, body = self.request("GET", path + ".metadata")
        self.assertEqual(response.code, 200)
        self.assertIn(b"Name: alpha", body)
        wrong = "/packages/00/00/" + "0" * 60 + "/" + filename
        for bad in (wrong, f"/packages/{blake[:2]}/{filename}", "/packages/",
                    f"/packages/{blake[:2]}/{blake[2:4]}/{blake[4:]}/not-a-dist.txt"):
            self.assertEqual(self.request("GET", bad)[0].code, 404, bad)
        self.assertEqual(self.request("POST", path)[0].code, 405)
        hidden, data = self.upload("hidden", "1.0", "/private/")
        blake = hashlib.blake2b(data, digest_size=32).hexdigest()
        path = f"/packages/{blake[:2]}/{blake[2:4]}/{blake[4:]}/{hidden}"
        self.assertEqual(self.request("GET", path)[0].code, 404)
        response, body = self.request("GET", path, auth=True)
        self.assertEqual((response.code, body), (200, data))
        # (a token kept to the private index reads it there: the default
        # index's rules are not asked of a file of another index)
        response, body = self.request("POST", "/api/tokens", True,
                                      {"Content-Type": "application/x-www-form-urlencoded"},
                                      b"actions=read&indexes=private")
        self.assertEqual(response.code, 200, body)
        token = json.loads(body)["token"]
        response, body = self.request("GET", path, headers={
            "Authorization": basic("__token__", token)})
        self.assertEqual((response.code, body), (200, data))

    def test_packages_of_an_open_index(self):
        """
        A named index anyone reads, beside a default that needs credentials:
        its files by digest without any, as at its own C{/files/}.
        """
        self.successResultOf(self.service.stopService())
        self.service, self.client = self.served(lambda: self.config(
            self.users + "[auth]\nread = authenticated\nupload = authenticated\n"
            "[index:pub]\nread = everyone\nupload = user:alice\n"))
        filename, data = self.upload("open", "1.0", "/pub/")
        blake = hashlib.blake2b(data, digest_size=32).hexdigest()
        response, body = self.request(
            "GET", f"/packages/{blake[:2]}/{blake[2:4]}/{blake[4:]}/{filename}")
        self.assertEqual((response.code, body), (200, data))

    def test_restart_goes_on_from_the_snapshot(self):
        """A clean restart serves the serials the snapshot kept, and the next change follows."""
        self.upload("alpha", "1.0")
        self.upload("beta", "1.0")
        self.successResultOf(self.service.stopService())
        self.service, self.client = self.served(self.text)
        serial, listing = self.page("/simple/")
        self.assertEqual({p["name"]: p["_last-serial"] for p in listing["projects"]},
                         {"alpha": BEGINNING + 1, "beta": BEGINNING + 2})
        self.upload("alpha", "1.1")
        self.assertEqual(self.page("/simple/alpha/")[0], BEGINNING + 3)
