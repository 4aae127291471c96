"""
End-to-end tests of wheel variants (PEP 825, issue 46, part 1) with the
real daemon and today's pip and uv: a release of a plain wheel and two
variant wheels, each saying which it is in its module. The PEP relies on
installers that do not know variants to skip a variant wheel by its
filename (six or seven parts, the sixth not a build tag) and the
index-level file by its name (no distribution's); these tests show that
they install the plain wheel, never a variant one, and never trip on the
index-level file the pages link.
"""

import json
import os

from tests.distributions import make_wheel
from tests.e2e import DaemonTestCase, http, installed, sha256, upload

PROJECT = "e2e-variant"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
MODULE = os.path.join("e2e_variant", "__init__.py")


def release():
    """The plain wheel and two variant wheels of the release, each naming itself."""
    return [make_wheel(PROJECT, "1.0", module_text=f"BUILT = {label!r}\n", variant=label)
            for label in (None, "x86_64_v3", "x86_64_v4")]


class VariantInstallTests(DaemonTestCase):
    """pip and uv against a release with variant wheels."""

    def prepare(self, daemon):
        for filename, data in release():
            response = upload(daemon, filename, data,
                              fields={"name": PROJECT, "version": "1.0"})
            assert response.status == 200, (filename, response.status, response.body)

    def test_page(self):
        """The page lists the three wheels and the index-level file, which serves its hash."""
        page = http("GET", f"{self.daemon.index_url}{PROJECT}/",
                    {"Accept": JSON_TYPE}).json()
        names = [f["filename"] for f in page["files"]]
        self.assertEqual(sorted(names), sorted([f for f, _ in release()]
                                               + ["e2e_variant-1.0-variants.json"]))
        (entry,) = [f for f in page["files"] if f["filename"].endswith("-variants.json")]
        served = http("GET", f"{self.daemon.url}files/{PROJECT}/{entry['filename']}")
        self.assertEqual(served.status, 200)
        self.assertEqual(sha256(served.body), entry["hashes"]["sha256"])
        self.assertEqual(sorted(json.loads(served.body)["variants"]),
                         ["x86_64_v3", "x86_64_v4"])

    def built(self, target):
        self.assertEqual(installed(target), {PROJECT: "1.0"})
        with open(os.path.join(target, MODULE), encoding="utf-8") as f:
            return f.read()

    def test_pip(self):
        """pip installs the plain wheel."""
        target = os.path.abspath(self.mktemp())
        self.clients.pip_install(target, self.daemon.index_url, PROJECT)
        self.assertEqual(self.built(target), "BUILT = None\n")

    def test_uv(self):
        """uv installs the plain wheel."""
        target = os.path.abspath(self.mktemp())
        self.clients.uv_install(target, self.daemon.index_url, PROJECT)
        self.assertEqual(self.built(target), "BUILT = None\n")
