"""
End-to-end tests of installing with pip and uv from the daemon, and of
yanking and deleting files as installers see them.
"""

import os

from tests.harness.distributions import make_sdist, make_wheel
from tests.harness.e2e import (
    PASSWORD,
    USER,
    DaemonTestCase,
    anchors,
    files_by_name,
    form,
    http,
    installed,
    sha256,
    upload,
)

APP = make_wheel("e2e-app", "1.0", requires_dist=["e2e-lib>=1"])
LIB_OLD = make_wheel("e2e-lib", "0.5")
LIB = make_wheel("e2e-lib", "1.0")


class InstallTests(DaemonTestCase):
    """pip and uv install a project and its hosted dependency."""

    def prepare(self, daemon):
        for dist in (APP, LIB_OLD, LIB):
            resp = upload(daemon, *dist)
            self.assertEqual(resp.status, 200, resp.body)

    def target(self):
        """A new folder to install into."""
        return os.path.abspath(self.mktemp())

    def test_pip_installs_project_and_dependency(self):
        """pip installs a project and the hosted version of its dependency that satisfies it."""
        target = self.target()
        self.clients.pip_install(target, self.daemon.index_url, "e2e-app")
        self.assertEqual(installed(target), {"e2e-app": "1.0", "e2e-lib": "1.0"})
        self.assertTrue(os.path.exists(os.path.join(target, "e2e_app", "__init__.py")))

    def hashed_requirements(self):
        """Write a requirements file pinning both projects with their sha256s."""
        requirements = os.path.abspath(self.mktemp())
        with open(requirements, "w") as f:
            f.write(f"e2e-app==1.0 --hash=sha256:{sha256(APP[1])}\n"
                    f"e2e-lib==1.0 --hash=sha256:{sha256(LIB[1])}\n")
        return requirements

    def test_pip_installs_with_required_hashes(self):
        """pip installs with C{--require-hashes} from a requirements file holding both sha256s."""
        requirements = self.hashed_requirements()
        target = self.target()
        self.clients.pip_install(target, self.daemon.index_url, "--require-hashes",
                                 "-r", requirements)
        self.assertEqual(installed(target), {"e2e-app": "1.0", "e2e-lib": "1.0"})

    def test_pip_refuses_wrong_hash(self):
        """pip refuses a file whose bytes do not match the hash it was told, so the hashes it checks are real."""
        requirements = os.path.abspath(self.mktemp())
        with open(requirements, "w") as f:
            f.write(f"e2e-lib==1.0 --hash=sha256:{'0' * 64}\n")
        done = self.clients.pip_install(self.target(), self.daemon.index_url, "--require-hashes",
                                        "-r", requirements, check=False)
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("DO NOT MATCH THE HASHES", done.output)

    def test_uv_installs_project_and_dependency(self):
        """uv installs a project and the hosted version of its dependency that satisfies it."""
        target = self.target()
        self.clients.uv_install(target, self.daemon.index_url, "e2e-app")
        self.assertEqual(installed(target), {"e2e-app": "1.0", "e2e-lib": "1.0"})

    def test_uv_installs_with_required_hashes(self):
        """uv installs with C{--require-hashes} from a requirements file holding both sha256s."""
        requirements = self.hashed_requirements()
        target = self.target()
        self.clients.uv_install(target, self.daemon.index_url, "--require-hashes",
                                "-r", requirements)
        self.assertEqual(installed(target), {"e2e-app": "1.0", "e2e-lib": "1.0"})


class YankDeleteTests(DaemonTestCase):
    """Yank, unyank and delete through the API; each test on its own project."""

    AUTH = (USER, PASSWORD)

    def api(self, method, path, **fields):
        """Call the admin API as the uploader; fail unless it answers 200."""
        headers, body = form(**fields) if fields else ({}, None)
        resp = http(method, self.daemon.url + path, headers, body, auth=self.AUTH)
        self.assertEqual(resp.status, 200, f"{method} {path}: {resp.status} {resp.body!r}")
        return resp

    def html_links(self, project):
        """The anchors of a project's HTML page."""
        resp = http("GET", f"{self.daemon.index_url}{project}/")
        self.assertEqual(resp.status, 200)
        return anchors(resp.body)

    def put(self, *distributions):
        """Upload distributions, failing unless each is accepted."""
        for dist in distributions:
            resp = upload(self.daemon, *dist)
            self.assertEqual(resp.status, 200, resp.body)

    def test_yank_hides_version_and_unyank_restores(self):
        """A yanked file carries its reason in both forms, pip skips it for an unpinned request, and unyank undoes it."""
        old, new = make_wheel("yank-me", "1.0"), make_wheel("yank-me", "2.0")
        self.put(old, new)
        self.api("POST", f"api/files/{new[0]}/yank", reason="broken <build> & \"more\"")
        self.assertEqual(files_by_name(self.daemon, "yank-me")[new[0]]["yanked"],
                         'broken <build> & "more"')
        self.assertIs(files_by_name(self.daemon, "yank-me")[old[0]]["yanked"], False)
        links = self.html_links("yank-me")
        self.assertEqual(links[new[0]]["data-yanked"], 'broken <build> & "more"')
        self.assertNotIn("data-yanked", links[old[0]])
        raw = http("GET", f"{self.daemon.index_url}yank-me/").body
        self.assertIn(b'data-yanked="broken &lt;build&gt; &amp; &quot;more&quot;"', raw)

        legacy = http("GET", f"{self.daemon.url}pypi/yank-me/json").json()
        self.assertEqual(legacy["info"]["version"], "1.0")
        self.assertTrue(legacy["releases"]["2.0"][0]["yanked"])

        target = os.path.abspath(self.mktemp())
        self.clients.pip_install(target, self.daemon.index_url, "yank-me")
        self.assertEqual(installed(target), {"yank-me": "1.0"})
        pinned = os.path.abspath(self.mktemp())
        self.clients.pip_install(pinned, self.daemon.index_url, "yank-me==2.0")
        self.assertEqual(installed(pinned), {"yank-me": "2.0"})

        self.api("POST", f"api/files/{new[0]}/unyank")
        self.assertIs(files_by_name(self.daemon, "yank-me")[new[0]]["yanked"], False)
        self.assertNotIn("data-yanked", self.html_links("yank-me")[new[0]])
        target = os.path.abspath(self.mktemp())
        self.clients.pip_install(target, self.daemon.index_url, "yank-me")
        self.assertEqual(installed(target), {"yank-me": "2.0"})

    def test_uv_skips_yanked_version(self):
        """uv does not pick a yanked version for an unpinned request."""
        old, new = make_wheel("uv-yank", "1.0"), make_wheel("uv-yank", "2.0")
        self.put(old, new)
        self.api("POST", f"api/files/{new[0]}/yank", reason="bad")
        target = os.path.abspath(self.mktemp())
        self.clients.uv_install(target, self.daemon.index_url, "uv-yank")
        self.assertEqual(installed(target), {"uv-yank": "1.0"})

    def test_yank_without_reason(self):
        """A yank without a reason is C{yanked: true} in JSON and an empty C{data-yanked} in HTML."""
        wheel = make_wheel("yank-no-reason", "1.0")
        self.put(wheel)
        self.api("POST", f"api/files/{wheel[0]}/yank")
        self.assertIs(files_by_name(self.daemon, "yank-no-reason")[wheel[0]]["yanked"], True)
        self.assertEqual(self.html_links("yank-no-reason")[wheel[0]]["data-yanked"], "")

    def test_release_yank(self):
        """Yanking a release yanks each of its files, and only those; unyank restores them."""
        files = [make_wheel("release-yank", "1.0"), make_sdist("release-yank", "1.0"),
                 make_wheel("release-yank", "1.1")]
        self.put(*files)
        self.api("POST", "api/projects/release-yank/1.0/yank", reason="security")
        entries = files_by_name(self.daemon, "release-yank")
        self.assertEqual(entries[files[0][0]]["yanked"], "security")
        self.assertEqual(entries[files[1][0]]["yanked"], "security")
        self.assertIs(entries[files[2][0]]["yanked"], False)
        legacy = http("GET", f"{self.daemon.url}pypi/release-yank/1.0/json").json()
        self.assertTrue(legacy["info"]["yanked"])
        self.assertEqual(legacy["info"]["yanked_reason"], "security")
        self.api("POST", "api/projects/release-yank/1.0/unyank")
        entries = files_by_name(self.daemon, "release-yank")
        self.assertEqual({e["yanked"] for e in entries.values()}, {False})

    def test_delete_file(self):
        """A deleted file leaves the pages, its URLs answer 410, and its name can never be uploaded again."""
        keep, gone = make_wheel("delete-me", "1.0"), make_wheel("delete-me", "2.0")
        self.put(keep, gone)
        self.api("DELETE", f"api/files/{gone[0]}")
        self.assertEqual(sorted(files_by_name(self.daemon, "delete-me")), [keep[0]])
        self.assertEqual(sorted(self.html_links("delete-me")), [keep[0]])
        self.assertEqual(files_by_name(self.daemon, "delete-me").keys(), {keep[0]})
        self.assertEqual(http("GET", f"{self.daemon.url}files/delete-me/{gone[0]}").status, 410)
        self.assertNotIn(gone[0], self.daemon.stored_names())

        again = upload(self.daemon, *gone)
        self.assertEqual(again.status, 400)
        self.assertIn(b"File already exists", again.body)
        done = self.clients.twine_upload(self.daemon, self.dist_dir(gone), check=False)
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("400", done.output)
        self.assertNotIn(gone[0], files_by_name(self.daemon, "delete-me"))
        self.assertEqual(http("GET", f"{self.daemon.url}files/delete-me/{gone[0]}").status, 410)

        target = os.path.abspath(self.mktemp())
        self.clients.pip_install(target, self.daemon.index_url, "delete-me")
        self.assertEqual(installed(target), {"delete-me": "1.0"})

    def test_delete_release(self):
        """Deleting a release removes each of its files and keeps the project."""
        files = [make_wheel("delete-release", "1.0"), make_sdist("delete-release", "1.0")]
        self.put(*files)
        self.api("DELETE", "api/projects/delete-release/1.0")
        self.assertEqual(files_by_name(self.daemon, "delete-release"), {})
        for filename, _ in files:
            resp = http("GET", f"{self.daemon.url}files/delete-release/{filename}")
            self.assertEqual(resp.status, 410, filename)

    def test_unknown_file_is_404(self):
        """Yank and delete of a file that is not there answer 404."""
        resp = http("POST", f"{self.daemon.url}api/files/nothing-1.0-py3-none-any.whl/yank",
                    auth=self.AUTH)
        self.assertEqual(resp.status, 404)
        resp = http("DELETE", f"{self.daemon.url}api/files/nothing-1.0-py3-none-any.whl",
                    auth=self.AUTH)
        self.assertEqual(resp.status, 404)
