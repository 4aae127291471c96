"""
End to end: named indexes of one real daemon (issue 26, stage 4), with
the real clients. twine uploads to C{/staging/}; pip and uv install from
C{/staging/simple/} a project whose dependency is hosted in C{release},
C{staging}'s base; the project promoted to C{release} installs from there
(its file a hard link to staging's); a view of C{release} with a date (C{as_of}) hides a
release uploaded after it, for pip and uv alike. A view added by C{SIGHUP}
installs with pip at once; a hosted index added by it is refused.
"""

import json
import os
import signal
import sys
import time
from datetime import UTC, datetime

from tests.harness.distributions import make_wheel
from tests.harness.e2e import PASSWORD, USER, DaemonTestCase, http, installed, upload
from tests.harness.upstream_server import UpstreamProcess

APP = make_wheel("e2e-app", "1.0", requires_dist=["e2e-lib>=1"])
LIB = make_wheel("e2e-lib", "1.0")
LIB_NEWER = make_wheel("e2e-lib", "2.0")

SECTIONS = """
[index:release]

[index:staging]
bases = release
"""


class NamedIndexTests(DaemonTestCase):
    """Uploads to and installs from named indexes of one server."""

    def test_staging_release_and_a_dated_view(self):
        """
        twine uploads to staging; pip and uv install its project with the
        dependency release holds; a view dated between two releases of
        that dependency gives both clients the older one.
        """
        daemon = self.new_daemon(start=False)
        with open(daemon.config_path, "a", encoding="utf-8") as f:
            f.write(SECTIONS)
        daemon.start()
        resp = upload(daemon, *LIB, path="release/")
        self.assertEqual(resp.status, 200, resp.body)
        self.assertEqual(upload(daemon, *LIB, path="nosuch/").status, 404)
        self.clients.twine_upload(daemon, self.dist_dir(APP), "--repository-url",
                                  daemon.url + "staging/legacy/")
        staging = daemon.url + "staging/simple/"
        for install in (self.clients.pip_install, self.clients.uv_install):
            target = os.path.abspath(self.mktemp())
            install(target, staging, "e2e-app")
            self.assertEqual(installed(target), {"e2e-app": "1.0", "e2e-lib": "1.0"})
        # twine's upload went to staging alone: neither the default index
        # nor release holds it
        self.assertEqual(http("GET", daemon.url + "simple/e2e-app/").status, 404)
        target = os.path.abspath(self.mktemp())
        done = self.clients.pip_install(target, daemon.url + "release/simple/", "e2e-app",
                                        check=False)
        self.assertNotEqual(done.returncode, 0)

        # Promoted from staging to release: pip and uv install it from
        # release, and on disk release's file is staging's (a hard link)
        body = json.dumps({"from": "staging", "to": "release", "project": "e2e-app",
                           "version": "1.0"}).encode()
        answer = http("POST", daemon.url + "api/promote",
                      {"Content-Type": "application/json"}, body, auth=(USER, PASSWORD))
        self.assertEqual(answer.status, 200, answer.body)
        self.assertEqual(answer.json()["promoted"], [APP[0]])
        for install in (self.clients.pip_install, self.clients.uv_install):
            target = os.path.abspath(self.mktemp())
            install(target, daemon.url + "release/simple/", "e2e-app")
            self.assertEqual(installed(target), {"e2e-app": "1.0", "e2e-lib": "1.0"})
        promoted = os.path.join(daemon.storage, ".indexes", "release", APP[0])
        self.assertEqual(os.stat(promoted).st_nlink, 2)
        again = http("POST", daemon.url + "api/promote", {"Content-Type": "application/json"},
                     body, auth=(USER, PASSWORD))
        self.assertEqual((again.status, again.json()["skipped"]), (200, [APP[0]]))

        # A view dated after lib 1.0 and before lib 2.0 (read at start-up).
        as_of = int(time.time()) + 1
        while time.time() < as_of + 0.5:
            time.sleep(0.1)
        stamp = datetime.fromtimestamp(as_of, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        with open(daemon.config_path, "a", encoding="utf-8") as f:
            f.write(f"\n[index:prod]\nview = yes\nbases = release\nas_of = {stamp}\n")
        daemon.restart()
        resp = upload(daemon, *LIB_NEWER, path="release/")
        self.assertEqual(resp.status, 200, resp.body)
        self.assertEqual(upload(daemon, *LIB_NEWER, path="prod/").status, 405)
        for install in (self.clients.pip_install, self.clients.uv_install):
            for index, version in (("prod", "1.0"), ("release", "2.0")):
                target = os.path.abspath(self.mktemp())
                install(target, f"{daemon.url}{index}/simple/", "e2e-lib")
                self.assertEqual(installed(target), {"e2e-lib": version}, (install, index))


class UpstreamBasesTests(DaemonTestCase):
    """
    Named indexes whose bases are named upstreams (issue 26): C{release}
    reads C{upstream:public} and C{upstream:vendor} (which wants
    credentials); C{staging} is based on C{release}; C{cool} is a view of
    C{release} with a cooldown of a week.
    """

    def test_two_upstreams_and_a_cooldown(self):
        """
        pip and uv install from staging a project whose dependencies come
        from both upstreams (the vendor's with its credentials, the public
        one's without); the cooldown view gives both clients the older
        release of a dependency; after a restart with the upstreams gone,
        the pages cached are served from the state each upstream saved.
        """
        secret = "vendor-secret-" + "y" * 10
        public = UpstreamProcess(os.path.abspath(self.mktemp()))
        public.add_wheel("up-lib", "1.0")
        public.add_wheel("up-lib", "2.0", upload_time=time.time() - 3600)
        vendor = UpstreamProcess(os.path.abspath(self.mktemp()),
                                 credentials=("--basic", f"svc:{secret}"))
        vendor.add_wheel("vendor-tool", "1.0", requires_dist=["up-lib"])
        for upstream in (public, vendor):
            upstream.start()
            self.addCleanup(upstream.kill)
        password_file = os.path.abspath(self.mktemp())
        with open(password_file, "w", encoding="utf-8") as f:
            f.write(secret + "\n")
        daemon = self.new_daemon(start=False)
        with open(daemon.config_path, "a", encoding="utf-8") as f:
            f.write(f"""
[upstream:public]
mode = cache
url = {public.url}

[upstream:vendor]
mode = cache
url = {vendor.url}
username = svc
password_file = {password_file}

[index:release]
bases = upstream:public, upstream:vendor

[index:staging]
bases = release

[index:cool]
view = yes
bases = release
min_age = 7d
""")
        daemon.start()
        app = make_wheel("chain-app", "1.0", requires_dist=["vendor-tool"])
        self.clients.twine_upload(daemon, self.dist_dir(app), "--repository-url",
                                  daemon.url + "staging/")
        staging = daemon.url + "staging/simple/"
        for install in (self.clients.pip_install, self.clients.uv_install):
            target = os.path.abspath(self.mktemp())
            install(target, staging, "chain-app")
            self.assertEqual(installed(target),
                             {"chain-app": "1.0", "vendor-tool": "1.0", "up-lib": "2.0"})
        self.assertNotIn("unauthorized", [entry["fault"] for entry in vendor.requests()])
        # (the public upstream was never asked for the vendor's project)
        self.assertNotIn("/simple/chain-app/", [e["path"] for e in public.requests()])
        self.assertEqual(http("GET", staging + "chain-app/").status, 200)
        self.assertNotIn(secret, daemon.log_text())

        cool = daemon.url + "cool/simple/"
        target = os.path.abspath(self.mktemp())
        self.clients.pip_install(target, cool, "up-lib")
        self.assertEqual(installed(target), {"up-lib": "1.0"})
        requirements = os.path.abspath(self.mktemp())
        with open(requirements, "w", encoding="utf-8") as f:
            f.write("up-lib\n")
        compiled = self.clients.uv("pip", "compile", "--python", sys.executable,
                                   "--index-url", cool, requirements)
        self.assertIn("up-lib==1.0", compiled.output)
        files = http("GET", cool + "up-lib/", {"Accept": "application/vnd.pypi.simple.v1+json"})
        self.assertEqual([f["filename"] for f in files.json()["files"]],
                         ["up_lib-1.0-py3-none-any.whl"])

        # The upstreams gone, a restart serves what each one cached, from
        # its own saved state.
        public.kill()
        vendor.kill()
        daemon.restart()
        for name in (".upstream-public.json", ".upstream-vendor.json"):
            self.assertTrue(os.path.exists(daemon.snapshot + ".d/" + name), name)
        for project in ("up-lib", "vendor-tool"):
            self.assertEqual(http("GET", staging + project + "/").status, 200, project)


class ReloadedViewTests(DaemonTestCase):
    """C{SIGHUP} adds a view to a running server; a hosted index added is refused."""

    def test_view_added_by_sighup(self):
        """
        A view added to the file and signalled with SIGHUP is served at
        once, pip installing from it; then a hosted index added is refused
        with one line, the view still serving.
        """
        daemon = self.new_daemon(start=False)
        with open(daemon.config_path, "a", encoding="utf-8") as f:
            f.write("\n[index:release]\n")
        daemon.start()
        resp = upload(daemon, *LIB, path="release/")
        self.assertEqual(resp.status, 200, resp.body)
        self.assertEqual(http("GET", daemon.url + "prod/simple/e2e-lib/").status, 404)
        with open(daemon.config_path, "a", encoding="utf-8") as f:
            f.write("\n[index:prod]\nview = yes\nbases = release\n")
        os.kill(daemon.pid, signal.SIGHUP)
        daemon.wait_for_log(b"views prod added")
        target = os.path.abspath(self.mktemp())
        self.clients.pip_install(target, daemon.url + "prod/simple/", "e2e-lib")
        self.assertEqual(installed(target), {"e2e-lib": "1.0"})

        with open(daemon.config_path, "a", encoding="utf-8") as f:
            f.write("\n[index:staging]\nbases = release\n")
        os.kill(daemon.pid, signal.SIGHUP)
        text = daemon.wait_for_log(b"Not reloading the configuration")
        self.assertIn(b"[index:staging]: adding a hosted index needs a restart", text)
        self.assertEqual(http("GET", daemon.url + "prod/simple/e2e-lib/").status, 200)
        self.assertEqual(http("GET", daemon.url + "staging/simple/e2e-lib/").status, 404)


class MisdirectedUploadTests(DaemonTestCase):
    """
    twine pointed at the wrong URL, or given a bad filename, as a new user
    does in the first hour: each refusal twine prints says what is wrong
    and where to go (a view's hosted index, an index's root URL, that the
    index is not there, that the filename is at fault).
    """

    def refused(self, daemon, distribution, url):
        """Run twine to C{url}; assert it failed; return its output, spaces squeezed out."""
        done = self.clients.twine_upload(daemon, self.dist_dir(distribution),
                                         "--repository-url", url, check=False)
        self.assertNotEqual(done.returncode, 0, done.output)
        return "".join(done.output.split())

    def test_misdirected_uploads(self):
        """Twine prints where to upload, for a view, a simple URL and a misspelled index."""
        daemon = self.new_daemon(start=False)
        with open(daemon.config_path, "a", encoding="utf-8") as f:
            f.write("\n[index:release]\n\n[index:prod]\nview = yes\nbases = release\n")
        daemon.start()
        small = make_wheel("lost-app", "1.0")
        said = self.refused(daemon, small, daemon.url + "prod/")
        self.assertIn("405", said)
        self.assertIn("prodisaview:ittakesnouploads,yanksordeletes;uploadtorelease,thehosted"
                      "indexitreads", said)
        # (a wheel over 1 MiB is told before its body, as a small one after it)
        large = make_wheel("lost-app", "1.1", extra_files=[("lost_app/blob.bin",
                                                           os.urandom(3 << 20))])
        for wheel in (small, large):
            for path, root in (("simple/", ""), ("release/simple/", "release/")):
                said = self.refused(daemon, wheel, daemon.url + path)
                self.assertIn("405", said)
                self.assertIn("".join(f"uploads go to the index's root URL, {daemon.url}"
                                      f"{root}".split()), said)
        said = self.refused(daemon, small, daemon.url + "nosuch/")
        self.assertIn("404", said)
        self.assertIn("nosuchindex", said)

    def test_bad_filename(self):
        """A filename twine sends that is not valid is blamed, not the metadata's name."""
        daemon = self.new_daemon()
        _, data = make_wheel("example", "1.1")
        said = self.refused(daemon, ("bad name-1.1-py3-none-any.whl", data), daemon.url)
        self.assertIn("thefilename'badname-1.1-py3-none-any.whl'isnotvalid:itsprojectname"
                      "'badname'mayholdonlyASCIIletters,digitsand._-", said)
