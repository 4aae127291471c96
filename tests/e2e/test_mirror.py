"""
bandersnatch, the public index's mirroring tool (release 8.2, from the
package registry), mirrors a pypid index end to end: it reads the JSON
C{/simple/} with each project's serial, fetches C{/pypi/<project>/json}
(refusing a page whose C{X-PyPI-Last-Serial} is below the listing's) and
the files at their C{/packages/...} URLs; after uploads, a yank and
deletions it fetches only what moved since its serial, and the mirror
then lists what the index does. A private index is mirrored only with
credentials that may read it.
"""

import hashlib
import os

from twisted.trial.unittest import SkipTest

from tests.harness.distributions import make_sdist, make_wheel
from tests.harness.e2e import DaemonTestCase, E2EFailure, http, upload
from tests.harness.mirror import Mirror, bandersnatch

#: The mirror's user, with an ASCII password (bandersnatch sends a URL's
#: credentials as Latin-1).
MIRROR_USER, MIRROR_PASSWORD = "mirror", "mirror-password"
UPLOADER, UPLOADER_PASSWORD = "uploader", "uploader-password"


class MirrorTests(DaemonTestCase):
    """bandersnatch keeps a mirror of a pypid index, and of a private one with credentials."""

    def setUp(self):
        DaemonTestCase.setUp(self)
        command = bandersnatch()
        if command is None:
            raise SkipTest("bandersnatch 8.2 needs a Python of 3.12 or later (python3.12), "
                           "which this machine does not have")
        self.command = command

    def start(self):
        daemon = self.new_daemon(start=False, users={UPLOADER: UPLOADER_PASSWORD,
                                                     MIRROR_USER: MIRROR_PASSWORD})
        with open(daemon.config_path, "a", encoding="utf-8") as f:
            f.write(f"\n[index:private]\nread = user:{UPLOADER} user:{MIRROR_USER}\n"
                    f"upload = user:{UPLOADER}\n")
        daemon.start()
        return daemon

    def upload(self, daemon, made, path=""):
        filename, data = made
        answer = upload(daemon, filename, data, auth=(UPLOADER, UPLOADER_PASSWORD), path=path)
        self.assertEqual(answer.status, 200, answer.body)

    def change(self, daemon, method, path):
        answer = http(method, daemon.url + path, auth=(UPLOADER, UPLOADER_PASSWORD),
                      headers={"Content-Type": "application/x-www-form-urlencoded"},
                      body=b"reason=broken" if path.endswith("/yank") else None)
        self.assertEqual(answer.status, 200, answer.body)

    def index_files(self, daemon, project, index="", auth=None):
        """What the index's JSON page of C{project} lists: C{{filename: (sha256, yanked)}}."""
        answer = http("GET", f"{daemon.url}{index}simple/{project}/", auth=auth,
                      headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        if answer.status == 404:
            return {}
        self.assertEqual(answer.status, 200, answer.body)
        return {f["filename"]: (f["hashes"]["sha256"], bool(f.get("yanked")))
                for f in answer.json()["files"]}

    def listing(self, daemon, index="", auth=None):
        """The index's JSON C{/simple/}."""
        answer = http("GET", f"{daemon.url}{index}simple/", auth=auth,
                      headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        self.assertEqual(answer.status, 200, answer.body)
        return answer.json()

    def mirrored(self, mirror, project):
        """What the mirror lists of C{project}, checked against the files it keeps."""
        page = mirror.page(project)
        if page is None:
            return {}
        found = {}
        for f in page["files"]:
            path = os.path.normpath(os.path.join(mirror.web, "simple", project, f["url"]))
            with open(path, "rb") as kept:
                self.assertEqual(hashlib.sha256(kept.read()).hexdigest(), f["hashes"]["sha256"])
            found[f["filename"]] = (f["hashes"]["sha256"], bool(f.get("yanked")))
        return found

    def assert_mirror_equals_index(self, daemon, mirror, index="", auth=None):
        listing = self.listing(daemon, index, auth)
        live = [p["name"] for p in listing["projects"]
                if self.index_files(daemon, p["name"], index, auth)]
        # (a mirror reaches the last serial of the projects it lists; the
        # listing's own is the journal's, which other indexes move too)
        self.assertEqual(mirror.serial(), max(p["_last-serial"] for p in listing["projects"]))
        self.assertGreaterEqual(listing["meta"]["_last-serial"], mirror.serial())
        self.assertEqual(mirror.projects(), sorted(live))
        for project in live:
            self.assertEqual(self.mirrored(mirror, project),
                             self.index_files(daemon, project, index, auth), project)

    def test_mirrored_and_caught_up(self):
        """
        A first sync takes every project; after uploads, a yank and a
        project's deletion, the next fetches only what moved, and the
        mirror lists what the index does.
        """
        daemon = self.start()
        for made in (make_wheel("alpha", "1.0"), make_sdist("alpha", "1.0"),
                     make_wheel("alpha", "1.1"), make_wheel("beta-pkg", "0.9"),
                     make_wheel("steady", "2.0")):
            self.upload(daemon, made)
        mirror = Mirror(self.command, os.path.abspath(self.mktemp()), daemon.url.rstrip("/"))
        mirror.sync()
        self.assert_mirror_equals_index(daemon, mirror)
        # (every page names the serial the listing gives its project)
        listing = self.listing(daemon)
        for project in listing["projects"]:
            answer = http("GET", f"{daemon.url}pypi/{project['name']}/json")
            self.assertEqual(int(answer.header("X-PyPI-Last-Serial")), project["_last-serial"])
            self.assertEqual(answer.json()["last_serial"], project["_last-serial"])
        self.change(daemon, "POST", "api/files/alpha-1.0-py3-none-any.whl/yank")
        self.change(daemon, "DELETE", "api/files/beta_pkg-0.9-py3-none-any.whl")
        self.upload(daemon, make_wheel("alpha", "1.2"))
        self.upload(daemon, make_wheel("gamma", "0.1"))
        said = mirror.sync()
        self.assertIn("Syncing based on changelog", said)
        self.assertIn("3 packages to sync", said)
        self.assertNotIn("Fetching metadata for package: steady", said)
        self.assert_mirror_equals_index(daemon, mirror)

    def test_private_index(self):
        """
        A private index is mirrored with credentials that may read it; without,
        bandersnatch is refused and mirrors nothing.
        """
        daemon = self.start()
        self.upload(daemon, make_wheel("private-lib", "1.0"), path="private/")
        self.upload(daemon, make_wheel("public-lib", "1.0"))
        host = daemon.url[len("http://"):].rstrip("/")
        credentials = f"http://{MIRROR_USER}:{MIRROR_PASSWORD}@{host}"
        # (the files' absolute URLs carry no credentials: bandersnatch
        # fetches them through its download mirror, which does)
        mirror = Mirror(self.command, os.path.abspath(self.mktemp()), credentials + "/private",
                        **{"download-mirror": credentials,
                           "download-mirror-no-fallback": "true"})
        mirror.sync()
        auth = (MIRROR_USER, MIRROR_PASSWORD)
        self.assertEqual(mirror.projects(), ["private-lib"])
        self.assert_mirror_equals_index(daemon, mirror, "private/", auth)
        anonymous = Mirror(self.command, os.path.abspath(self.mktemp()),
                           f"http://{host}/private")
        with self.assertRaises(E2EFailure) as refused:
            anonymous.sync()
        self.assertIn("401", str(refused.exception))
        self.assertIsNone(anonymous.serial())
        self.assertFalse(os.path.exists(os.path.join(anonymous.web, "packages", "private")))


