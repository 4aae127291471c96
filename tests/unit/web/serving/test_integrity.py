"""
Tests for provenance (PEP 740) on the web side: an upload's attestations
handed to the checker and its provenance stored with the file; the
Integrity API (C{/integrity/<project>/<version>/<filename>/provenance}:
media types, 404, 406, ETag, the files' read gate); the simple pages'
links (JSON C{provenance}, HTML C{data-provenance}).

The checker here is a double that returns a provenance object made of an
attestation of the test Sigstore instance (L{tests.harness.sigstore_root}); the
Sigstore verification has its own tests, L{tests.unit.auth.test_attestations}, and
the real clients theirs, L{tests.e2e.test_attestations}.
"""

import hashlib
import json

import attrs
from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.attestations import AttestationRefused
from pypid.core.dists.provenance import INTEGRITY_MEDIA_TYPE, Publisher, provenance_document
from pypid.core.formats.negotiate import choose_integrity
from tests.harness.distributions import make_sdist, make_wheel
from tests.harness.fakes import twine_fields
from tests.harness.sigstore_root import TestSigstore, github_claims
from tests.harness.web import JSON_TYPE, _ServerMixin

DIST, DIST_BYTES = make_sdist("pypi-attestations", "0.0.19")
SHA256 = hashlib.sha256(DIST_BYTES).hexdigest()
SIGSTORE = TestSigstore()
ATTESTATION = SIGSTORE.attest(DIST, SHA256, claims=github_claims(
    repository="trailofbits/pypi-attestations"))
#: what the checker double gives: a provenance object as the public index
#: writes it (the Sigstore checks are L{tests.unit.auth.test_attestations}')
PROVENANCE = provenance_document([(Publisher("GitHub", (
    ("repository", "trailofbits/pypi-attestations"), ("workflow", "release.yml"),
    ("environment", None))), [ATTESTATION])])


def field(*attestations):
    """The C{attestations} field, as twine and uv make it (compact JSON)."""
    return json.dumps(list(attestations))


INTEGRITY = f"/integrity/pypi-attestations/0.0.19/{DIST}/provenance"


@attrs.define
class CheckerDouble:
    """
    Stands for L{pypid.auth.attestations.AttestationChecker}: records its
    calls, refuses with C{refusal} when set, requires attestations of
    C{required} projects, and otherwise gives L{PROVENANCE}.
    """

    calls: list = attrs.field(factory=list)
    refusal: str | None = None
    required_projects: tuple = ()

    def required(self, project):
        return project in self.required_projects

    async def check(self, *, filename, sha256, project, field, reader):
        self.calls.append((filename, sha256, project, field, reader.identity.name))
        if field is None:
            if project in self.required_projects:
                raise AttestationRefused(f"attestations: {project} requires attestations")
            return None
        if self.refusal is not None:
            raise AttestationRefused(self.refusal)
        return PROVENANCE


class _Attested(_ServerMixin):
    base_url = "https://pypi.internal.example/"

    def attestation_check(self):
        self.checker = CheckerDouble()
        return self.checker

    def upload_dist(self, attestations=None, data=DIST_BYTES):
        """Upload the real sdist the way twine does, with C{attestations} (a JSON text)."""
        extra = {"attestations": attestations} if attestations is not None else {}
        fields = twine_fields("pypi-attestations", "0.0.19", data, filetype="sdist",
                              pyversion="source", **extra)
        return self.upload(DIST, data, fields=fields)

    def attested(self):
        """Upload the sdist with its real attestation; it must be stored."""
        response, body = self.upload_dist(field(ATTESTATION))
        self.assertEqual(response.code, 200, body)
        return self.index.get_file(DIST)


class UploadTests(_Attested, SynchronousTestCase):
    """The upload path hands the attestations over and keeps what comes back."""

    def test_stored_with_provenance(self):
        """The checker gets the file's name, sha256, project and the field; the record its digest."""
        record = self.attested()
        [(filename, sha256, project, sent, user)] = self.checker.calls
        self.assertEqual((filename, sha256, project, user),
                         (DIST, SHA256, "pypi-attestations", "alice"))
        self.assertEqual(sent, field(ATTESTATION))
        self.assertEqual(record.provenance_sha256, hashlib.sha256(PROVENANCE).hexdigest())
        self.assertEqual(self.successResultOf(self.storage.read_provenance(record)), PROVENANCE)

    def test_without_attestations(self):
        """
        An upload without the field, or with an empty list, is stored without
        provenance (the checker said none).
        """
        response, body = self.upload_dist()
        self.assertEqual(response.code, 200, body)
        self.assertIsNone(self.index.get_file(DIST).provenance_sha256)
        self.assertIsNone(self.checker.calls[0][3])

    def test_empty_list(self):
        """An empty list claims nothing: it is no attestations at all."""
        response, body = self.upload_dist("[]")
        self.assertEqual(response.code, 200, body)
        self.assertIsNone(self.checker.calls[0][3])

    def test_refused(self):
        """A refusal is a 400 with the checker's reason, and nothing is stored."""
        self.checker.refusal = "attestation: the statement is for another file"
        response, body = self.upload_dist(field(ATTESTATION))
        self.assertEqual(response.code, 400)
        self.assertIn(b"the statement is for another file", body)
        self.assertNothingStored()

    def test_required(self):
        """A project that requires attestations refuses an upload without them."""
        self.checker.required_projects = ("pypi-attestations",)
        response, body = self.upload_dist()
        self.assertEqual(response.code, 400)
        self.assertIn(b"requires attestations", body)
        self.assertNothingStored()

    def test_malformed_before_the_file_is_read(self):
        """A field that is not an array of attestations is refused by its shape, unchecked."""
        for sent, reason in (("not json", b"attestations: not JSON"),
                             ('[{"version": 2}]', b"version must be 1"),
                             ("[1, 2, 3]", b"at most 2")):
            response, body = self.upload_dist(sent)
            self.assertEqual(response.code, 400, sent)
            self.assertIn(reason, body)
        self.assertEqual(self.checker.calls, [])
        self.assertNothingStored()


class NoCheckerTests(_ServerMixin, SynchronousTestCase):
    """An index built without a checker refuses attestations (PEP 740: cannot verify, reject)."""

    def test_refused(self):
        """A 400 whose reason gives the way out."""
        fields = twine_fields("pypi-attestations", "0.0.19", DIST_BYTES, filetype="sdist",
                              pyversion="source",
                              attestations=field(ATTESTATION))
        response, body = self.upload(DIST, DIST_BYTES, fields=fields)
        self.assertEqual(response.code, 400)
        self.assertIn(b"cannot verify attestations", body)
        self.assertIn(b"--no-attestations", body)
        self.assertNothingStored()


class IntegrityTests(_Attested, SynchronousTestCase):
    """C{GET /integrity/<project>/<version>/<filename>/provenance}."""

    def test_served(self):
        """The provenance, as the public index's media type, Vary: Accept, its digest the ETag."""
        self.attested()
        response, body = self.get(INTEGRITY)
        self.assertEqual(response.code, 200, body)
        self.assertEqual(body, PROVENANCE)
        self.assertEqual(self.header(response, "content-type"), INTEGRITY_MEDIA_TYPE.encode())
        self.assertEqual(self.header(response, "vary"), b"Accept")
        etag = self.header(response, "etag")
        self.assertEqual(etag, b'"%s"' % hashlib.sha256(PROVENANCE).hexdigest().encode())
        again, body = self.get(INTEGRITY, headers={"If-None-Match": etag.decode()})
        self.assertEqual((again.code, body), (304, b""))

    def test_media_types(self):
        """C{application/json} when preferred; 406 when neither is acceptable."""
        self.attested()
        response, _ = self.get(INTEGRITY, headers={"Accept": "application/json"})
        self.assertEqual(self.header(response, "content-type"), b"application/json")
        response, body = self.get(INTEGRITY, headers={"Accept": "text/html"})
        self.assertEqual(response.code, 406, body)
        response, _ = self.get(INTEGRITY, headers={
            "Accept": "application/vnd.pypi.integrity.v1+json;q=0, */*;q=0.1"})
        self.assertEqual(self.header(response, "content-type"), b"application/json")

    def test_other_spelling_of_version(self):
        """The path's version may be any PEP 440 spelling of the file's."""
        self.attested()
        response, _ = self.get(INTEGRITY.replace("/0.0.19/", "/0.0.19.0/"))
        self.assertEqual(response.code, 200)

    def test_not_found(self):
        """404 for a file without provenance, another version, another project, or no file."""
        response, body = self.upload_dist()
        self.assertEqual(response.code, 200, body)
        for path in (INTEGRITY, INTEGRITY.replace("/0.0.19/", "/0.0.20/"),
                     INTEGRITY.replace("/pypi-attestations/", "/other/"),
                     "/integrity/pypi-attestations/0.0.19/nothing-0.0.19.tar.gz/provenance",
                     "/integrity/pypi-attestations/0.0.19/" + DIST,
                     "/integrity/pypi-attestations/0.0.19/" + DIST + "/provenance/more"):
            response, body = self.get(path)
            self.assertEqual(response.code, 404, path)
            self.assertTrue(body.endswith(b"\n"))

    def test_checked_as_served(self):
        """
        A kept provenance whose statement names another sha256 than the
        file's (storage written by hand, say) is not served: 404.
        """
        record = self.attested()
        stale = provenance_document([(Publisher("GitHub", (
            ("repository", "trailofbits/pypi-attestations"),)), [SIGSTORE.attest(
                DIST, "0" * 64, claims=github_claims(
                    repository="trailofbits/pypi-attestations"))])])
        self.index.add(self.successResultOf(self.storage.keep_provenance(record, stale)))
        response, body = self.get(INTEGRITY)
        self.assertEqual(response.code, 404, body)
        self.assertIn(b"no provenance available for " + DIST.encode(), body)

    def test_no_provenance_message(self):
        """A file without provenance says so, by name."""
        self.upload_dist()
        response, body = self.get(INTEGRITY)
        self.assertEqual(response.code, 404)
        self.assertIn(b"no provenance available for " + DIST.encode(), body)


class PrivateTests(_Attested, SynchronousTestCase):
    """The files' read gate decides who sees a provenance."""

    read = "authenticated"

    def test_gated(self):
        """Anonymous readers are asked to log in; a reader sees it."""
        self.attested()
        response, _ = self.get(INTEGRITY)
        self.assertEqual(response.code, 401)
        response, body = self.get(INTEGRITY, auth=True)
        self.assertEqual((response.code, body), (200, PROVENANCE))


class PageLinkTests(_Attested, SynchronousTestCase):
    """The simple pages link the provenance, absolutely, in both forms."""

    def test_links(self):
        self.attested()
        url = "https://pypi.internal.example" + INTEGRITY
        response, body = self.get("/simple/pypi-attestations/", headers={"Accept": JSON_TYPE})
        [entry] = json.loads(body)["files"]
        self.assertEqual(entry["provenance"], url)
        response, body = self.get("/simple/pypi-attestations/",
                                  headers={"Accept": "text/html"})
        self.assertIn(b'data-provenance="' + url.encode() + b'"', body)


class NegotiationTests(SynchronousTestCase):
    """L{choose_integrity}: the public index's order, q-values, 406."""

    def test_choices(self):
        for accept, chosen in ((None, INTEGRITY_MEDIA_TYPE), (b"", INTEGRITY_MEDIA_TYPE),
                               (b"*/*", INTEGRITY_MEDIA_TYPE),
                               (b"application/*", INTEGRITY_MEDIA_TYPE),
                               (b"application/json", "application/json"),
                               (b"application/json, " + INTEGRITY_MEDIA_TYPE.encode()
                                + b";q=0.5", "application/json"),
                               (b"text/html", None),
                               (INTEGRITY_MEDIA_TYPE.encode() + b";q=0", None)):
            self.assertEqual(choose_integrity(accept), chosen, accept)


class PeoplePageTests(_Attested, SynchronousTestCase):
    """The page for people names each file's verified publisher and links its provenance."""

    def test_publisher_shown(self):
        self.attested()
        response, body = self.get("/project/pypi-attestations/")
        self.assertEqual(response.code, 200, body)
        self.assertIn(b'<a class="provenance" href="../../integrity/pypi-attestations/0.0.19/'
                      + DIST.encode() + b'/provenance"', body)
        self.assertIn(b"published by GitHub trailofbits/pypi-attestations release.yml", body)

    def test_no_publisher_without_provenance(self):
        self.upload_dist()
        response, body = self.get("/project/pypi-attestations/")
        self.assertEqual(response.code, 200, body)
        self.assertNotIn(b"published by", body)


class NamedIndexTests(SynchronousTestCase):
    """C{/NAME/integrity/...}: a named index serves its files' provenance, its bases' too."""

    def test_named(self):
        from tests.harness.indexes import Server
        server = Server(self)
        code, _, body = server.upload("/release/", "widget", "1.0")
        self.assertEqual(code, 200, body)
        filename = make_wheel("widget", "1.0")[0]
        source = server.stacks["release"]
        record = source.index.get_file(filename)
        # (a provenance of this very file: one of another is never served)
        attestation = SIGSTORE.attest(filename, record.sha256,
                                      claims=github_claims(repository="acme/widget"))
        provenance = provenance_document(
            [(Publisher("GitHub", (("repository", "acme/widget"),)), [attestation])])
        source.index.add(self.successResultOf(
            source.storage.keep_provenance(record, provenance)))
        path = f"/integrity/widget/1.0/{filename}/provenance"
        for index in ("release", "staging", "prod"):
            code, _, body = server.request("GET", f"/{index}{path}")
            self.assertEqual((code, body), (200, provenance), index)
        # (the default index does not hold it)
        self.assertEqual(server.request("GET", path)[0], 404)
        code, _, body = server.request("GET", f"/release{path}", headers={"Accept": "text/html"})
        self.assertEqual(code, 406, body)
