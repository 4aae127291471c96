"""
Tests for L{pypid.core.dists.provenance}: the attestations field's shape, what a
statement must say of its file, the provenance object made and read back
(one shaped as the public index writes them among them), and hostile ones refused by shape and size.
"""

import base64
import copy
import hashlib
import json

from twisted.trial.unittest import SynchronousTestCase

from pypid.core.dists.provenance import (
    MAX_PROVENANCE_SIZE,
    ProvenanceInvalid,
    Publisher,
    check_predicate_types,
    check_statement,
    integrity_path,
    parse_attestations,
    provenance_document,
    publisher_summary,
    publishers_of,
    read_provenance,
    statement_bytes,
)
from tests.harness.sigstore_root import (
    PREDICATE_TYPES,
    PUBLISH_V1,
    SLSA_PROVENANCE_V1,
    TestSigstore,
    github_claims,
)

FILE_BYTES = b"the bytes of pypi_attestations 0.0.19's sdist"
DIST = "pypi_attestations-0.0.19.tar.gz"
SHA256 = hashlib.sha256(FILE_BYTES).hexdigest()
SIGSTORE = TestSigstore()
PUBLISH = SIGSTORE.attest(DIST, SHA256, claims=github_claims(
    repository="trailofbits/pypi-attestations"))
SLSA = SIGSTORE.attest(DIST, SHA256, claims=github_claims(
    repository="trailofbits/pypi-attestations"), predicate_type=SLSA_PROVENANCE_V1)
#: a provenance object as the public index writes it (its publisher flat, no claims)
REAL_PROVENANCE = json.dumps({"version": 1, "attestation_bundles": [{
    "publisher": {"kind": "GitHub", "repository": "trailofbits/pypi-attestations",
                  "workflow": "release.yml", "environment": None},
    "attestations": [PUBLISH]}]}).encode()


def statement(subjects=None, predicate_type=PUBLISH_V1, kind="https://in-toto.io/Statement/v1"):
    """A statement's bytes, for this file by default."""
    if subjects is None:
        subjects = [{"name": DIST, "digest": {"sha256": SHA256}}]
    return json.dumps({"_type": kind, "subject": subjects, "predicateType": predicate_type,
                       "predicate": None}).encode()


def with_statement(attestation, data):
    """C{attestation} whose envelope holds the statement C{data} instead."""
    changed = copy.deepcopy(attestation)
    changed["envelope"]["statement"] = base64.b64encode(data).decode()
    return changed


class ParseAttestationsTests(SynchronousTestCase):
    """L{parse_attestations}: the form field as twine and uv send it."""

    def test_real(self):
        """The real publish and SLSA attestations of one file are read as they are."""
        self.assertEqual(parse_attestations(json.dumps([PUBLISH, SLSA])), (PUBLISH, SLSA))

    def test_empty(self):
        """An empty list is no attestations."""
        self.assertEqual(parse_attestations("[]"), ())

    def test_refused(self):
        """Each malformed field is refused naming what is wrong."""
        no_entries = copy.deepcopy(PUBLISH)
        no_entries["verification_material"]["transparency_entries"] = []
        bad_base64 = copy.deepcopy(PUBLISH)
        bad_base64["envelope"]["signature"] = "not base64!"
        huge = copy.deepcopy(PUBLISH)
        huge["verification_material"]["certificate"] = "A" * (64 << 10)
        for field, reason in (
                ("{", "not JSON"), ("{}", "a JSON array"), ("[1]", "not a JSON object"),
                (json.dumps([PUBLISH] * 3), "at most 2"),
                (json.dumps([{**PUBLISH, "version": 2}]), "version must be 1"),
                (json.dumps([{**PUBLISH, "version": True}]), "version must be 1"),
                (json.dumps([{**PUBLISH, "envelope": []}]), "envelope"),
                (json.dumps([no_entries]), "transparency_entries"),
                (json.dumps([bad_base64]), "the signature is not valid base64"),
                (json.dumps([huge]), "the certificate is larger"),
                (json.dumps([PUBLISH, bad_base64]), "attestation 2 of 2"),
                ("[" * 100_000, "not JSON")):
            e = self.assertRaises(ProvenanceInvalid, parse_attestations, field)
            self.assertIn(reason, str(e), field[:60])


class StatementTests(SynchronousTestCase):
    """L{check_statement}: exactly this file, an allowed predicate type."""

    def test_real(self):
        self.assertEqual(check_statement(statement_bytes(PUBLISH), DIST, SHA256,
                                         PREDICATE_TYPES), PUBLISH_V1)
        self.assertEqual(check_statement(statement_bytes(SLSA), DIST, SHA256, PREDICATE_TYPES),
                         SLSA_PROVENANCE_V1)

    def test_other_spelling(self):
        """The subject may spell the file's name another way (PEP 740 allows a normalized one)."""
        self.assertEqual(check_statement(statement(), "pypi-attestations-0.0.19.tar.gz",
                                         SHA256, PREDICATE_TYPES), PUBLISH_V1)

    def test_read_without_types(self):
        """Reading kept provenance: any https predicate type; anything else refused."""
        self.assertEqual(check_statement(statement(predicate_type="https://example.invalid/x"),
                                         DIST, SHA256, None), "https://example.invalid/x")
        for kind in (None, 7, "http://example.invalid/x", "x" * 300, "https://a\nb"):
            e = self.assertRaises(ProvenanceInvalid, check_statement,
                                  statement(predicate_type=kind), DIST, SHA256, None)
            self.assertIn("not an https URI", str(e))

    def test_refused(self):
        other = {"name": "other-1.0.tar.gz", "digest": {"sha256": SHA256}}
        mine = {"name": DIST, "digest": {"sha256": SHA256}}
        for data, reason in (
                (b"nope", "not JSON"),
                (statement(kind="https://in-toto.io/Statement/v0.1"), "not an in-toto"),
                (statement([]), "exactly one subject"),
                (statement([mine, other]), "exactly one subject"),
                (statement([other]), "another file"),
                (statement([{"name": DIST, "digest": {"sha256": "0" * 64}}]), "another sha256"),
                (statement([{"name": DIST, "digest": {}}]), "another sha256"),
                (statement([{"name": DIST}]), "another sha256"),
                (statement(predicate_type="https://example.invalid/x"), "predicate type")):
            e = self.assertRaises(ProvenanceInvalid, check_statement, data, DIST, SHA256,
                                  PREDICATE_TYPES)
            self.assertIn(reason, str(e))

    def test_one_per_type(self):
        check_predicate_types([PUBLISH_V1, SLSA_PROVENANCE_V1])
        self.assertRaises(ProvenanceInvalid, check_predicate_types, [PUBLISH_V1, PUBLISH_V1])


class DocumentTests(SynchronousTestCase):
    """The provenance object made at upload, and read back or from elsewhere."""

    def test_round_trip(self):
        """Made from a publisher and its attestations; read back; the same bytes each time."""
        publisher = Publisher("GitHub", (("repository", "acme/widgets"),
                                         ("workflow", "release.yml"), ("environment", None)),
                              (("repository", "acme/widgets"),))
        data = provenance_document([(publisher, [PUBLISH, SLSA])])
        self.assertEqual(data, provenance_document([(publisher, [PUBLISH, SLSA])]))
        document = read_provenance(data, DIST, SHA256)
        [bundle] = document["attestation_bundles"]
        self.assertEqual(bundle["publisher"], {
            "kind": "GitHub", "repository": "acme/widgets", "workflow": "release.yml",
            "environment": None, "claims": {"repository": "acme/widgets"}})
        self.assertEqual(bundle["attestations"], [PUBLISH, SLSA])
        self.assertEqual(publishers_of(document), ("GitHub acme/widgets release.yml",))

    def test_real(self):
        """A provenance shaped as the public index's (flat publisher) is read, and names it."""
        document = read_provenance(REAL_PROVENANCE, DIST, SHA256)
        self.assertEqual(publishers_of(document),
                         ("GitHub trailofbits/pypi-attestations release.yml",))

    def test_other_file(self):
        """A provenance of the file is refused for another sha256 or another file."""
        e = self.assertRaises(ProvenanceInvalid, read_provenance, REAL_PROVENANCE, DIST,
                              "0" * 64)
        self.assertIn("bundle 1, attestation 1: the statement names another sha256", str(e))
        e = self.assertRaises(ProvenanceInvalid, read_provenance, REAL_PROVENANCE,
                              "other-0.0.19.tar.gz", SHA256)
        self.assertIn("another file", str(e))

    def test_hostile(self):
        """Huge, not JSON, wrong shapes: refused before anything is trusted."""
        good = json.loads(REAL_PROVENANCE)
        tampered = copy.deepcopy(good)
        tampered["attestation_bundles"][0]["attestations"][0] = with_statement(
            PUBLISH, statement([{"name": DIST, "digest": {"sha256": "1" * 64}}]))
        for data, reason in (
                (b" " * (MAX_PROVENANCE_SIZE + 1), "larger than"),
                (b"\xff\xfe", "not JSON"), (b"[]", "version 1"),
                (json.dumps({**good, "version": 2}).encode(), "version 1"),
                (json.dumps({"version": 1, "attestation_bundles": []}).encode(), "1 to 8"),
                (json.dumps({"version": 1, "attestation_bundles": [{}] * 9}).encode(),
                 "1 to 8"),
                (json.dumps({"version": 1, "attestation_bundles": [
                    {"publisher": {}, "attestations": [PUBLISH]}]}).encode(), "no kind"),
                (json.dumps({"version": 1, "attestation_bundles": [
                    {"publisher": {"kind": "GitHub"}, "attestations": [PUBLISH] * 5}]}).encode(),
                 "1 to 4"),
                (json.dumps(tampered).encode(), "another sha256")):
            e = self.assertRaises(ProvenanceInvalid, read_provenance, data, DIST, SHA256)
            self.assertIn(reason, str(e))


class SummaryTests(SynchronousTestCase):
    """What the pages for people say of a publisher."""

    def test_kinds(self):
        self.assertEqual(publisher_summary({"kind": "GitLab", "repository": "g/p",
                                            "workflow_filepath": ".gitlab-ci.yml",
                                            "environment": "prod"}),
                         "GitLab g/p .gitlab-ci.yml (environment prod)")
        self.assertEqual(publisher_summary({"kind": "Google", "email": "ci@x.example"}),
                         "Google ci@x.example")
        self.assertEqual(publisher_summary({"kind": "ci", "claims": {"sub": "repo:a/b"}}),
                         "ci repo:a/b")
        self.assertEqual(publisher_summary({}), "publisher")
        self.assertLessEqual(len(publisher_summary({"kind": "x" * 1000})), 200)

    def test_unprintable_dropped(self):
        self.assertEqual(publisher_summary({"kind": "GitHub", "repository": "a\x1b[2Jb"}),
                         "GitHub")


class PathTests(SynchronousTestCase):
    def test_quoted(self):
        """Each segment is quoted: a local version's + too."""
        self.assertEqual(integrity_path("demo", "1.0+local", "demo-1.0+local.tar.gz"),
                         "integrity/demo/1.0%2Blocal/demo-1.0%2Blocal.tar.gz/provenance")
