"""
End to end: a static export served by nginx, without the daemon in the way.

A real daemon stores a few projects (uploaded over HTTP, one release
yanked, one project depending on another, one with an sdist and a wheel);
the real C{pypid-export} command writes its storage out while it runs; a
real nginx serves the tree with the configuration the documentation shows
(C{etc/nginx-export.conf}, only its two marked lines changed); pip and uv
install from it with every hash checked. Then a delete and a yank through
the daemon, an export again, and nginx serves the change: the deleted
file is a 404. A project quarantined through the daemon (issue 45) is
exported as the daemon serves it to anyone: its pages carry the status and
list no file, its files are gone from the tree, and pip cannot install it.
"""

import json
import os
import re
import signal
import stat
import subprocess

from tests import CHECKOUT
from tests.harness import e2e
from tests.harness.browser import BrowserTestCase, screenshot
from tests.harness.distributions import make_sdist, make_wheel
from tests.harness.system import require

EXPORT = os.path.join(e2e.VENV_BIN, "pypid-export")
NGINX_CONF = os.path.join(CHECKOUT, "etc", "nginx-export.conf")
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
PIP_ACCEPT = ("application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; "
              "q=0.1, text/html; q=0.01")

ALPHA = make_wheel("alpha", "1.0")
ALPHA_SDIST = make_sdist("alpha", "1.0")
ALPHA_YANKED = make_wheel("alpha", "1.1")
BETA = make_wheel("beta", "2.0", requires_dist=["alpha>=1.0"])
GAMMA = make_wheel("gamma", "1.0")


def site_config(dest, port):
    """
    The shipped server block, listening on C{port} and serving C{dest}: the
    two lines it marks with C{<-} are the only ones changed.
    """
    with open(NGINX_CONF, encoding="utf-8") as f:
        text = f.read()
    text, listens = re.subn(r"^(\s*)listen\s+\S+;(\s*#\s*<-.*)$",
                            lambda m: f"{m[1]}listen {e2e.HOST}:{port};{m[2]}", text,
                            flags=re.M)
    text, roots = re.subn(r"^(\s*)root\s+\S+;(\s*#\s*<-.*)$",
                          lambda m: f"{m[1]}root {dest};{m[2]}", text, flags=re.M)
    if (listens, roots) != (1, 1):
        raise e2e.E2EFailure(f"{NGINX_CONF} no longer marks one listen and one root line")
    return text


def readable_by_others(path):
    """Whether every folder down to C{path} lets any user through (nginx's workers)."""
    path = os.path.abspath(path)
    while True:
        if not os.stat(path).st_mode & stat.S_IXOTH:
            return False
        parent = os.path.dirname(path)
        if parent == path:
            return True
        path = parent


class Nginx(e2e.ChildProcess):
    """nginx in the foreground, with everything it writes in C{directory}."""

    what = "nginx"

    def __init__(self, directory, dest):
        self.directory = os.path.abspath(directory)
        self.dest = dest
        self.program = require({"nginx": "nginx"})["nginx"]
        self.port = None
        for name in ("tmp", "logs"):
            os.makedirs(os.path.join(self.directory, name), exist_ok=True)

    @property
    def url(self):
        return f"http://{e2e.HOST}:{self.port}/"

    def write_config(self, port):
        d = self.directory
        # As root, nginx's workers run as nobody, who must be able to read
        # the export; a "user" line only when it could not.
        user = ("user root;\n" if os.geteuid() == 0 and not readable_by_others(self.dest)
                else "")
        temps = "".join(f"    {kind}_temp_path {d}/tmp/{kind};\n"
                        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        path = os.path.join(d, "nginx.conf")
        with open(path, "w", encoding="utf-8") as f:
            f.write(f"daemon off;\n{user}worker_processes 1;\npid {d}/nginx.pid;\n"
                    f"error_log {d}/logs/error.log info;\n"
                    "events { worker_connections 64; }\n"
                    "http {\n    include /etc/nginx/mime.types;\n"
                    f"    access_log {d}/logs/access.log;\n{temps}"
                    + site_config(self.dest, port) + "}\n")
        return path

    def start(self):
        def launch(port):
            config = self.write_config(port)
            return subprocess.Popen(
                [self.program, "-p", self.directory + "/", "-c", config,
                 "-e", os.path.join(self.directory, "logs", "error.log")],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=e2e._die_with_parent)

        def ready():
            e2e.http("GET", self.url + "simple/", timeout=1)
            return True

        return e2e.start_on_free_port(self, launch, ready, self.error_log, timeout=10)

    def kill(self):
        """
        Stop nginx and its workers: SIGTERM (its fast shutdown, in which the
        master stops its workers), then SIGKILL to the whole process group.
        A SIGKILL to the master alone would leave its workers running.
        """
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                pass
        if process is not None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            process.wait(e2e.STOP_TIMEOUT)
        e2e._live.discard(self)

    stop = kill

    def error_log(self):
        try:
            with open(os.path.join(self.directory, "logs", "error.log"),
                      encoding="utf-8", errors="replace") as f:
                return f.read()[-4000:]
        except FileNotFoundError:
            return "(no error log)"

    def get(self, path, headers=None):
        return e2e.http("GET", self.url + path, headers)


class ExportServedByNginxTests(BrowserTestCase):
    """
    The daemon's storage, exported, served by nginx, installed from by pip
    and uv, and read in a browser.
    """

    failureException = e2e.E2EFailure

    def setUp(self):
        super().setUp()
        e2e._forget_watched()
        self.addCleanup(e2e._forget_watched)
        require({"nginx": "nginx"})
        self.directory = os.path.abspath(self.mktemp())
        # (its user an admin: a project's status is set by one)
        self.daemon = e2e.Daemon(os.path.join(self.directory, "daemon"),
                                 settings={"auth.admins": e2e.USER})
        self.addCleanup(self.daemon.kill)
        self.daemon.start()
        for filename, data in (ALPHA, ALPHA_SDIST, ALPHA_YANKED, BETA, GAMMA):
            response = e2e.upload(self.daemon, filename, data)
            self.assertEqual(response.status, 200, response.body)
        self.api("POST", f"api/files/{ALPHA_YANKED[0]}/yank", reason="not for use")
        self.dest = os.path.join(self.directory, "site")
        self.export()
        self.nginx = Nginx(os.path.join(self.directory, "nginx"), self.dest).start()
        self.addCleanup(self.nginx.kill)
        self.clients = e2e.Clients(os.path.join(self.directory, "clients"))

    def api(self, method, path, **fields):
        headers, body = e2e.form(**fields) if fields else ({}, None)
        response = e2e.http(method, self.daemon.url + path, headers, body,
                            auth=(e2e.USER, e2e.PASSWORD))
        self.assertEqual(response.status, 200, response.body)

    def export(self):
        """Run the real command on the running daemon's configuration; its output."""
        done = e2e.run([EXPORT, self.dest, "--config", self.daemon.config_path],
                       cwd=self.directory, env=e2e.clean_env(self.daemon.home),
                       what="pypid-export")
        self.assertIn("Exported", done.output)
        return done.output

    def daemon_page(self, path, accept):
        """
        The daemon's page, as an export writes it: a JSON page at API 1.4,
        without PEP 752's namespaces (a static copy refuses no upload), and
        without the journal's serials (a static copy keeps no journal).
        """
        response = e2e.http("GET", self.daemon.url + path, {"Accept": accept})
        self.assertEqual(response.status, 200)
        if response.header("Content-Type") != SIMPLE_JSON:
            return response.body
        page = json.loads(response.body)
        for project in page.get("projects", []):
            self.assertGreaterEqual(project.pop("_last-serial"), 1)
        self.assertGreaterEqual(page["meta"].pop("_last-serial"), 1)
        # (no namespace is reserved here: the daemon's pages are at 1.4 too)
        self.assertEqual(page.pop("meta"), {"api-version": "1.4"})
        self.assertNotIn("namespaces", page)
        return json.dumps({"meta": {"api-version": "1.4"}, **page},
                          separators=(",", ":"), ensure_ascii=False).encode()

    def requirements(self):
        path = os.path.join(self.directory, "requirements.txt")
        with open(path, "w") as f:
            f.write(f"beta==2.0 --hash=sha256:{e2e.sha256(BETA[1])}\n"
                    f"alpha==1.0 --hash=sha256:{e2e.sha256(ALPHA[1])} "
                    f"--hash=sha256:{e2e.sha256(ALPHA_SDIST[1])}\n")
        return path

    def test_pip_and_uv_install_with_hashes(self):
        """pip and uv install a project and its dependency, hashes checked, from nginx."""
        index = self.nginx.url + "simple/"
        requirements = self.requirements()
        target = os.path.join(self.directory, "pip-target")
        self.clients.pip_install(target, index, "--require-hashes", "-r", requirements)
        self.assertEqual(e2e.installed(target), {"alpha": "1.0", "beta": "2.0"})
        target = os.path.join(self.directory, "uv-target")
        self.clients.uv_install(target, index, "--require-hashes", "-r", requirements)
        self.assertEqual(e2e.installed(target), {"alpha": "1.0", "beta": "2.0"})

    def test_yanked_release_skipped(self):
        """pip and uv pass over the yanked latest release, as with the daemon."""
        index = self.nginx.url + "simple/"
        target = os.path.join(self.directory, "pip-target")
        self.clients.pip_install(target, index, "alpha")
        self.assertEqual(e2e.installed(target), {"alpha": "1.0"})
        target = os.path.join(self.directory, "uv-target")
        self.clients.uv_install(target, index, "alpha")
        self.assertEqual(e2e.installed(target), {"alpha": "1.0"})

    def test_pages_as_the_daemon_serves_them(self):
        """The simple pages in both forms, chosen by Accept, are the daemon's bytes and types."""
        for path in ("simple/", "simple/alpha/", "simple/beta/", "simple/gamma/"):
            for accept, content_type in ((PIP_ACCEPT, SIMPLE_JSON), (SIMPLE_JSON, SIMPLE_JSON),
                                         ("text/html", "text/html; charset=utf-8"),
                                         ("*/*", "text/html; charset=utf-8")):
                response = self.nginx.get(path, {"Accept": accept})
                self.assertEqual(response.status, 200, (path, accept))
                self.assertEqual(response.header("Content-Type"), content_type, (path, accept))
                self.assertEqual(response.body, self.daemon_page(path, accept), (path, accept))
                self.assertEqual(response.header("Vary"), "Accept")
        self.assertEqual(self.nginx.get("simple/delta/").status, 404)
        self.assertEqual(self.nginx.get(".pypid-export.json").status, 404)

    def test_files_metadata_and_json_api(self):
        """Files and .metadata are binary, byte for byte; the legacy JSON is JSON."""
        response = self.nginx.get(f"files/alpha/{ALPHA[0]}")
        self.assertEqual((response.status, response.header("Content-Type"), response.body),
                         (200, "application/octet-stream", ALPHA[1]))
        self.assertIn("immutable", response.header("Cache-Control"))
        response = self.nginx.get(f"files/alpha/{ALPHA[0]}.metadata")
        self.assertEqual((response.status, response.header("Content-Type")),
                         (200, "application/octet-stream"))
        self.assertEqual(response.body,
                         self.daemon_page(f"files/alpha/{ALPHA[0]}.metadata", "*/*"))
        response = self.nginx.get("pypi/alpha/json")
        self.assertEqual(response.header("Content-Type"), "application/json")
        legacy = response.json()
        self.assertEqual(legacy["info"]["version"], "1.0")
        self.assertEqual({f["filename"] for f in legacy["urls"]}, {ALPHA[0], ALPHA_SDIST[0]})
        self.assertTrue(all(f["yanked"] for f in legacy["releases"]["1.1"]))
        packages = self.nginx.get("packages.json")
        self.assertEqual(packages.header("Content-Type"), "application/json")
        self.assertEqual([(p["name"], p["version"]) for p in packages.json()],
                         [("alpha", "1.0"), ("beta", "2.0"), ("gamma", "1.0")])

    def test_pages_for_people_served(self):
        """The landing, search and project pages and their assets, with the daemon's policy."""
        for path, content_type in (("", "text/html; charset=utf-8"),
                                   ("search/", "text/html; charset=utf-8"),
                                   ("project/alpha/", "text/html; charset=utf-8"),
                                   ("project/alpha/1.0/", "text/html; charset=utf-8"),
                                   ("project/alpha/1.1/", "text/html; charset=utf-8")):
            response = self.nginx.get(path)
            self.assertEqual(response.status, 200, path)
            self.assertEqual(response.header("Content-Type"), content_type, path)
            self.assertIn("script-src 'self'", response.header("Content-Security-Policy"))
        landing = self.nginx.get("").body
        self.assertIn(b"3 projects, 5 files", landing)
        self.assertNotIn(b"login", landing)
        for asset in re.findall(rb'(?:href|src)="(static/[^"]+)"', landing):
            response = self.nginx.get(asset.decode())
            self.assertEqual(response.status, 200, asset)
            self.assertIn("immutable", response.header("Cache-Control"))
        page = self.nginx.get("project/alpha/").body
        self.assertIn(b'<h1>alpha <span class="version">1.0</span></h1>', page)
        self.assertIn(f'href="../../files/alpha/{ALPHA[0]}"'.encode(), page)
        self.assertIn(b"yanked: not for use", page)
        self.assertEqual(self.nginx.get("project/delta/").status, 404)

    def test_search_in_the_browser(self):
        """The export's search runs in the browser over packages.json: by name and summary."""
        page = self.open_page(self.nginx.url)
        page.page.locator("#q").press_sequentially("lph", delay=20)
        page.page.wait_for_selector("#suggestions ul")
        self.assertEqual(page.page.locator("#suggestions li a").all_inner_texts(), ["alpha"])
        page.page.locator("#q").press("Enter")
        page.page.wait_for_url("**/search/?q=lph")
        page.page.wait_for_selector("ol.results")
        self.assertEqual(page.page.locator("ol.results li > a").all_inner_texts(), ["alpha"])
        page.goto(self.nginx.url + "search/?q=test+project+gamma")
        page.page.wait_for_selector("ol.results")
        self.assertEqual(page.page.locator("ol.results li > a").all_inner_texts(), ["gamma"])
        page.page.locator("ol.results li > a").click()
        page.page.wait_for_url("**/project/gamma/")
        self.assertIn("A test project.", page.page.locator("article.description").inner_text())
        screenshot(page, "export-project")
        self.assert_clean(page)

    def test_incremental_export(self):
        """After a delete and a yank, an export rewrites two projects and nginx serves them."""
        kept = os.stat(os.path.join(self.dest, "files", "alpha", ALPHA[0])).st_ino
        self.api("DELETE", f"api/files/{GAMMA[0]}")
        self.api("POST", f"api/files/{BETA[0]}/yank", reason="recalled")
        output = self.export()
        self.assertIn("(2 changed, 0 removed)", output)
        self.assertEqual(self.nginx.get(f"files/gamma/{GAMMA[0]}").status, 404)
        self.assertEqual(self.nginx.get(f"files/gamma/{GAMMA[0]}.metadata").status, 404)
        for path in ("simple/", "simple/beta/", "simple/gamma/"):
            response = self.nginx.get(path, {"Accept": SIMPLE_JSON})
            self.assertEqual(response.body, self.daemon_page(path, SIMPLE_JSON), path)
        self.assertEqual(self.nginx.get("simple/gamma/", {"Accept": SIMPLE_JSON})
                         .json()["files"], [])
        [beta] = self.nginx.get("simple/beta/", {"Accept": SIMPLE_JSON}).json()["files"]
        self.assertEqual(beta["yanked"], "recalled")
        self.assertEqual([p["name"] for p in self.nginx.get("packages.json").json()],
                         ["alpha", "beta"])
        self.assertEqual(os.stat(os.path.join(self.dest, "files", "alpha", ALPHA[0])).st_ino,
                         kept)
        # The yank shows to installers: pinned, beta still installs, hash checked.
        target = os.path.join(self.directory, "pip-target")
        self.clients.pip_install(target, self.nginx.url + "simple/", "--require-hashes", "-r",
                                 self.requirements())
        self.assertEqual(e2e.installed(target), {"alpha": "1.0", "beta": "2.0"})

    def test_quarantined_project(self):
        """
        A project quarantined through the daemon, exported again: its pages
        are the daemon's (the PEP 792 marker, no file), its files, metadata
        and legacy JSON are 404s, and pip does not find it; the others are
        served as before.
        """
        self.api("POST", "api/projects/gamma/status", status="quarantined",
                 reason="under review")
        self.export()
        for accept in (SIMPLE_JSON, "text/html"):
            response = self.nginx.get("simple/gamma/", {"Accept": accept})
            self.assertEqual(response.status, 200)
            self.assertEqual(response.body, self.daemon_page("simple/gamma/", accept), accept)
        page = self.nginx.get("simple/gamma/", {"Accept": SIMPLE_JSON}).json()
        self.assertEqual((page["files"], page["project-status"]),
                         ([], {"status": "quarantined", "reason": "under review"}))
        for path in (f"files/gamma/{GAMMA[0]}", f"files/gamma/{GAMMA[0]}.metadata",
                     "pypi/gamma/json", "project/gamma/1.0/"):
            self.assertEqual(self.nginx.get(path).status, 404, path)
        self.assertIn(b"This project is quarantined", self.nginx.get("project/gamma/").body)
        done = self.clients.pip_install(os.path.join(self.directory, "pip-target"),
                                        self.nginx.url + "simple/", "gamma", check=False)
        self.assertNotEqual(done.returncode, 0, done.output)
        self.assertEqual(self.nginx.get(f"files/alpha/{ALPHA[0]}").body, ALPHA[1])
