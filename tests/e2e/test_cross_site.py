"""
Cross-site request forgery in real Chromium (issue 31): once a person has
logged in to pypid, a page of another site must not be able to upload,
delete or yank with the credentials the browser keeps. The foreign page is
served from another loopback address (another site to the browser), and
its forms and scripts target the daemon as the issue's report did; the
same requests from pypid's own origin, and from twine-like clients, are
still taken.
"""

import base64
import hashlib
import http.server
import json
import threading

from tests.harness.browser import BrowserTestCase
from tests.harness.distributions import make_wheel
from tests.harness.e2e import PASSWORD, USER, DaemonTestCase, project_json, upload
from tests.harness.e2e import http as request

#: Where the foreign site is served (another site than the daemon's
#: 127.0.0.1 to the browser; both loopback, so no network rule applies).
FOREIGN_HOST = "127.0.0.2"

NEW = make_wheel("internal-pkg", "3.0")
TO_YANK = make_wheel("internal-pkg", "1.0")
TO_DELETE = make_wheel("internal-pkg", "2.0")

#: The foreign pages, one per change, each a form that submits itself to
#: the daemon as the page loads, as a person's visit to a hostile site
#: would: a multipart upload (its file put in the form by script), a
#: pypiserver C{remove_pkg}, and a yank.
ATTACK = {
    "upload": """<!doctype html>
<form method="post" enctype="multipart/form-data" action="{base}">
  <input name=":action" value="file_upload"><input name="protocol_version" value="1">
  <input name="metadata_version" value="2.1"><input name="name" value="internal-pkg">
  <input name="version" value="3.0"><input name="filetype" value="bdist_wheel">
  <input name="pyversion" value="py3"><input name="sha256_digest" value="{sha256}">
  <input type="file" name="content">
</form>
<script>
const bytes = Uint8Array.from(atob("{wheel}"), c => c.charCodeAt(0));
const files = new DataTransfer();
files.items.add(new File([bytes], "{filename}"));
document.querySelector("input[type=file]").files = files.files;
document.forms[0].submit();
</script>""",
    "remove": """<!doctype html>
<form method="post" enctype="multipart/form-data" action="{base}">
  <input name=":action" value="remove_pkg"><input name="name" value="internal-pkg">
  <input name="version" value="2.0">
</form>
<script>document.forms[0].submit();</script>""",
    "yank": """<!doctype html>
<form method="post" action="{base}api/files/{yank}/yank">
  <input name="reason" value="owned">
</form>
<script>document.forms[0].submit();</script>""",
}


class _Foreign(http.server.BaseHTTPRequestHandler):
    """Serves the foreign page, whatever the path."""

    pages = {}

    def do_GET(self):
        page = self.pages.get(self.path.strip("/"), b"")
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, *args):
        pass


class CrossSiteTests(BrowserTestCase, DaemonTestCase):
    """A logged-in browser visits another site."""

    def prepare(self, daemon):
        for filename, data in (TO_YANK, TO_DELETE):
            self.assertEqual(upload(daemon, filename, data).status, 200)

    def foreign_site(self):
        """Serve the attacks on L{FOREIGN_HOST}; the site's URL."""
        values = {"base": self.daemon.url, "yank": TO_YANK[0], "filename": NEW[0],
                  "wheel": base64.b64encode(NEW[1]).decode("ascii"),
                  "sha256": hashlib.sha256(NEW[1]).hexdigest()}
        pages = {name: page.format(**values).encode("utf-8") for name, page in ATTACK.items()}
        handler = type("Handler", (_Foreign,), {"pages": pages})
        server = http.server.ThreadingHTTPServer((FOREIGN_HOST, 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        return f"http://{FOREIGN_HOST}:{server.server_address[1]}/"

    def files(self):
        """C{{filename: yanked}} of internal-pkg, as the JSON API says."""
        doc = project_json(self.daemon, "internal-pkg")
        return {f["filename"]: f.get("yanked", False) for f in doc["files"]}

    def logged_in_page(self):
        """
        A browser that gave pypid the admin's HTTP Basic credentials (kept,
        and sent with every later request): a route that asks for them
        challenged it. (C{/login} asks through a form now, issue 44, and
        its session never stands for anyone on the JSON API.)
        """
        page = self.open_page(http_credentials={"username": USER, "password": PASSWORD})
        page.goto(self.daemon.url + "api/tokens")
        page.page.wait_for_url(self.daemon.url + "api/tokens")
        page.goto(self.daemon.url)
        return page

    def test_foreign_site_changes_nothing(self):
        """Upload, remove_pkg and yank sent from another site are refused; nothing changes."""
        before = self.files()
        self.assertEqual(before, {TO_YANK[0]: False, TO_DELETE[0]: False})
        page = self.logged_in_page()
        site = self.foreign_site()
        answers = {}
        for attack in ATTACK:
            with page.page.expect_response(
                    lambda r: r.url.startswith(self.daemon.url) and r.request.method == "POST",
            ) as answer:
                page.goto(site + attack)
            answers[attack] = answer.value.status
        self.assertEqual(answers, {"upload": 403, "remove": 403, "yank": 403})
        self.assertEqual(self.files(), before)
        self.assertNotIn("uploaded " + NEW[0], self.daemon.log_text())

    def test_own_origin_and_clients_still_work(self):
        """The same changes from pypid's own origin, and from a client, are taken."""
        page = self.logged_in_page()
        status = page.page.evaluate(
            """async (url) => (await fetch(url, {method: "POST", credentials: "include",
                body: new URLSearchParams({reason: "own page"})})).status""",
            f"{self.daemon.url}api/files/{TO_YANK[0]}/yank")
        self.assertEqual(status, 200)
        self.assertEqual(self.files()[TO_YANK[0]], "own page")
        answer = request("POST", f"{self.daemon.url}api/files/{TO_YANK[0]}/unyank",
                         auth=(USER, PASSWORD))
        self.assertEqual(answer.status, 200, answer.body)
        self.assertEqual(json.loads(request("GET", self.daemon.url + "pypi/internal-pkg/json")
                                    .body)["info"]["name"], "internal-pkg")
