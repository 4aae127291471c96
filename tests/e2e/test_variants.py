"""
End-to-end tests of wheel variants (PEP 825, issue 46, part 1) with the
real daemon and today's pip and uv: a release of a plain wheel and two
variant wheels, each saying which it is in its module. The PEP relies on
installers that do not know variants to skip a variant wheel by its
filename (six or seven parts, the sixth not a build tag) and the
index-level file by its name (no distribution's); these tests show that
they install the plain wheel, never a variant one, and never trip on the
index-level file the pages link: from a release hosted here, and from one
a local upstream (L{tests.harness.upstream_server}, as a process) serves with its
own index-level file, through pypid's cache.
"""

import json
import os

from tests.harness.distributions import make_wheel
from tests.harness.e2e import DaemonTestCase, http, installed, sha256, upload
from tests.harness.upstream_server import V1_JSON, UpstreamProcess

PROJECT = "e2e-variant"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"


def release(project=PROJECT):
    """The plain wheel and two variant wheels of the release, each naming itself."""
    return [make_wheel(project, "1.0", module_text=f"BUILT = {label!r}\n", variant=label)
            for label in (None, "x86_64_v3", "x86_64_v4")]


class _InstallsPlain:
    """
    pip and uv install C{project}, whose release has variant wheels, from
    the class's daemon: the plain wheel (its module says C{BUILT = None}).
    """

    project = PROJECT

    def built(self, target):
        self.assertEqual(installed(target), {self.project: "1.0"})
        module = os.path.join(self.project.replace("-", "_"), "__init__.py")
        with open(os.path.join(target, module), encoding="utf-8") as f:
            return f.read()

    def test_pip(self):
        """pip installs the plain wheel."""
        target = os.path.abspath(self.mktemp())
        self.clients.pip_install(target, self.daemon.index_url, self.project)
        self.assertEqual(self.built(target), "BUILT = None\n")

    def test_uv(self):
        """uv installs the plain wheel."""
        target = os.path.abspath(self.mktemp())
        self.clients.uv_install(target, self.daemon.index_url, self.project)
        self.assertEqual(self.built(target), "BUILT = None\n")


class VariantInstallTests(_InstallsPlain, DaemonTestCase):
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


PROXIED = "e2e-variant-up"
PROXIED_INDEX_LEVEL = "e2e_variant_up-1.0-variants.json"
#: (made once: a wheel's zip holds the minute it was made in)
PROXIED_RELEASE = release(PROXIED)


def index_level():
    """The upstream's index-level file of L{PROXIED}'s release: its two variants."""
    return json.dumps({
        "$schema": "https://variants-schema.wheelnext.example/peps/825/v0.1.1.json",
        "default-priorities": {"namespace": ["x86_64"]},
        "variants": {label: {"x86_64": {"level": [label]}}
                     for label in ("x86_64_v3", "x86_64_v4")}}, indent=2).encode()


class ProxiedVariantTests(_InstallsPlain, DaemonTestCase):
    """
    pip and uv through pypid's cache of an upstream whose release has a
    plain wheel, two variant wheels and its index-level file.
    """

    project = PROXIED

    @property
    def upstream(self):
        """The class's upstream, its page and files answered as given, started on first use."""
        return self.shared("upstream", self._filled_upstream, UpstreamProcess.stop)

    def _filled_upstream(self):
        upstream = UpstreamProcess(self.shared_folder("-upstream")).start()
        files = [*PROXIED_RELEASE, (PROXIED_INDEX_LEVEL, index_level())]
        for filename, data in files:
            upstream.raw(f"/files/{filename}", data,
                         headers=[(b"Content-Type", b"application/octet-stream")])
        page = {"meta": {"api-version": "1.1"}, "name": PROXIED, "files": [
            {"filename": filename, "url": f"{upstream.base}files/{filename}",
             "hashes": {"sha256": sha256(data)}, "size": len(data)}
            for filename, data in files]}
        upstream.raw(f"/simple/{PROXIED}/", json.dumps(page).encode(),
                     headers=[(b"Content-Type", V1_JSON.encode())])
        return upstream

    @property
    def settings(self):
        return {"upstream.mode": "cache", "upstream.url": self.upstream.url,
                "upstream.ttl": "1h", "upstream.timeout": "5"}

    def test_page(self):
        """
        pypid's page lists the three wheels and its own index-level file,
        which serves its hash and the upstream's two variants; a variant
        wheel downloads as the upstream has it.
        """
        page = http("GET", f"{self.daemon.index_url}{PROXIED}/", {"Accept": JSON_TYPE}).json()
        self.assertEqual(sorted(f["filename"] for f in page["files"]),
                         sorted([f for f, _ in PROXIED_RELEASE] + [PROXIED_INDEX_LEVEL]))
        (entry,) = [f for f in page["files"] if f["filename"] == PROXIED_INDEX_LEVEL]
        served = http("GET", f"{self.daemon.url}files/{PROXIED}/{PROXIED_INDEX_LEVEL}")
        self.assertEqual(served.status, 200)
        self.assertEqual(sha256(served.body), entry["hashes"]["sha256"])
        self.assertEqual(json.loads(served.body), json.loads(index_level()))
        variant_name, variant_bytes = PROXIED_RELEASE[1]
        wheel = http("GET", f"{self.daemon.url}files/{PROXIED}/{variant_name}")
        self.assertEqual((wheel.status, wheel.body), (200, variant_bytes))
