"""
The start log, as an operator reads it (issue 69): nothing that reads as if
the port were closed, counts in the singular where there is one, a
pypiserver folder's counts that add up and its hint that names what is
served, and, on a server of several indexes and upstreams, lines that name
which one they are about.
"""

import os
import re

from tests.harness.distributions import (
    make_sdist,
    make_sdist_zip,
    make_tarball,
    make_wheel,
    metadata_text,
)
from tests.harness.e2e import DaemonTestCase, anchors, file_url, files_by_name, http, sha256
from tests.harness.upstream_server import UpstreamProcess


def legacy_sdist(name, version, ext, mode):
    """C{(filename, bytes)} of an old sdist a pypiserver folder may hold (C{.tar.bz2}, C{.tgz})."""
    top = f"{name}-{version}"
    return top + ext, make_tarball([(f"{top}/PKG-INFO", metadata_text(name, version).encode()),
                                    (f"{top}/setup.py", b"from setuptools import setup\n"
                                                        b"setup()\n")], mode=mode)


class StartLogTests(DaemonTestCase):
    """What a start logs, read from the real daemon's log."""

    def test_port_check_and_singular(self):
        """
        The check of the port before start-up logs nothing (it logged
        Twisted's C{(TCP Port N Closed)}); one file of one project is said
        so, not "1 files in 1 projects".
        """
        daemon = self.new_daemon()
        log = daemon.log_since_start().decode()
        self.assertNotIn("Closed)", log)
        self.assertNotIn("Checking the port", log)
        self.assertIn("Index loaded: 0 files in 0 projects (from storage)", log)
        self.clients.twine_upload(daemon, self.dist_dir(make_wheel("one-thing", "1.0")))
        daemon.restart()
        log = daemon.log_since_start().decode()
        self.assertIn("Index loaded: 1 file in 1 project (from the snapshot;", log)
        self.assertIn("Storage checked against the snapshot in ",
                      daemon.wait_for_log(b"Storage checked").decode())

    def test_base_url_to_open(self):
        """
        With C{[pypid] base_url} set, the listener's line gives it as the URL
        to open (the name a certificate or proxy answers to), not the bound
        address.
        """
        daemon = self.new_daemon(settings={"pypid.base_url": "https://pypi.internal.example/"})
        log = daemon.log_since_start().decode()
        self.assertIn(": open https://pypi.internal.example/", log)
        self.assertNotIn(f"open http://127.0.0.1:{daemon.port}/", log)

    def test_pypiserver_folder(self):
        """
        A pypiserver folder: every file is counted once, the projects the
        same in each line (the files a name tells no project of apart: they
        were one more project, "5 projects, then 4"); every sdist form the
        README lists is served, and a file skipped is told those forms.
        """
        daemon = self.new_daemon(start=False)
        served = [make_wheel("alpha", "1.0"), make_sdist_zip("gamma", "1.0"),
                  legacy_sdist("delta", "1.0", ".tar.bz2", "w:bz2"),
                  legacy_sdist("epsilon", "1.0", ".tgz", "w:gz")]
        os.makedirs(os.path.join(daemon.storage, "nested"))
        for filename, data in served:
            with open(os.path.join(daemon.storage, filename), "wb") as f:
                f.write(data)
        beta = make_sdist("beta", "1.0")
        with open(os.path.join(daemon.storage, "nested", beta[0]), "wb") as f:
            f.write(beta[1])
        for junk in ("notes.txt", "eta-1.0-py2.7.egg"):
            with open(os.path.join(daemon.storage, junk), "wb") as f:
                f.write(b"not a distribution\n")
        daemon.start()
        log = daemon.wait_for_log(b"Described ").decode()
        self.assertIn("Describing 7 files (5 of 5 projects, 2 not named as distributions) "
                      "found without a record", log)
        self.assertRegex(log, r"Index loaded: 0 files in 5 projects \(from storage\) in [0-9.]+ s, "
                              r"7 files still to describe")
        self.assertRegex(log, r"Described 7 files in [0-9.]+ s: 5 distributions, 2 not served")
        hint = ("invalid file extension: pypid serves .whl, .tar.gz, .zip, .tar.bz2 and .tgz "
                "files")
        self.assertIn(f"Not serving notes.txt: {hint}", log)
        self.assertIn(f"Not serving eta-1.0-py2.7.egg: {hint}", log)
        self.assertEqual(sorted(anchors(http("GET", daemon.index_url).body)),
                         ["alpha", "beta", "delta", "epsilon", "gamma"])
        for project, (filename, data) in (("delta", served[2]), ("epsilon", served[3])):
            entry = files_by_name(daemon, project)[filename]
            self.assertEqual(entry["hashes"]["sha256"], sha256(data))
            self.assertEqual(http("GET", file_url(daemon, project, filename)).body, data)

    def test_several_indexes(self):
        """
        With named indexes and upstreams, each index's and each upstream's
        lines name it (they were the same lines, once for each).
        """
        upstream = UpstreamProcess(os.path.abspath(self.mktemp()))
        upstream.add_wheel("up-lib", "2.0")
        upstream.start()
        self.addCleanup(upstream.kill)
        daemon = self.new_daemon(start=False)
        with open(daemon.config_path, "a", encoding="utf-8") as f:
            f.write(f"""
[upstream]
mode = cache
url = {upstream.url}

[upstream:public]
mode = cache
url = {upstream.url}

[index:release]
bases = upstream:public

[index:staging]
bases = release
""")
        daemon.start()
        log = daemon.log_since_start().decode()
        for name in ("default", "release", "staging"):
            self.assertIn(f"Index {name} loaded: 0 files in 0 projects (from storage)", log)
        self.assertNotIn("Index loaded", log)
        self.assertEqual(sorted(re.findall(r"Upstream cache[^:]*: 0 files kept", log)),
                         ["Upstream cache of default: 0 files kept",
                          "Upstream cache of public: 0 files kept"])
        self.clients.twine_upload(daemon, self.dist_dir(make_wheel("staged", "1.0")),
                                  "--repository-url", daemon.url + "staging/")
        daemon.restart()
        log = daemon.wait_for_log(b"of index staging in").decode()
        self.assertIn("Index staging loaded: 1 file in 1 project (from the snapshot;", log)
        for name in ("default", "release", "staging"):
            daemon.wait_for_log(f"Storage checked against the snapshot of index {name} in "
                                .encode())
