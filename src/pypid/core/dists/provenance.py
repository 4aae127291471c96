"""
Provenance (PEP 740): the shapes of attestations and provenance objects,
and the checks that need no cryptography.

An attestation is a Sigstore-signed in-toto statement that one CI job made
one file; twine and C{uv publish} send them in the upload form's
C{attestations} field, a JSON array. The index verifies them
(L{pypid.auth.attestations}) and keeps them as the file's I{provenance
object}, grouped by publisher, served at
C{/integrity/<project>/<version>/<filename>/provenance}. This module reads
the form field (L{parse_attestations}), checks what a statement says of
the file (L{check_statement}), and builds (L{provenance_document}) or reads
(L{read_provenance}) a provenance object, where the statements' subjects
are the whole check: a provenance naming another sha256 than the file's
is never served.

The public index takes at most two attestations a file, one per predicate
type; real ones are 5 to 10 KB (a certificate of about 2.5 KB, one
transparency-log entry).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

import attrs

from pypid.core.dists.names import filename_key

#: The two predicate types PEP 740 allows are not spelled here: the upload
#: verifier passes them to L{check_statement} from the library that defines
#: the format (C{pypi_attestations}' C{AttestationType}).

#: The in-toto statement type, and the DSSE payload type it travels as.
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"

#: The Integrity API's media type (its JSON is also served as C{application/json}).
INTEGRITY_MEDIA_TYPE = "application/vnd.pypi.integrity.v1+json"

#: The most attestations one file may come with: one per predicate type.
MAX_ATTESTATIONS = 2
#: The largest provenance object read (real ones: 5 to 20 KB).
MAX_PROVENANCE_SIZE = 256 << 10
#: The most publishers (bundles) and attestations per publisher of one
#: provenance object read.
MAX_BUNDLES = 8
MAX_BUNDLE_ATTESTATIONS = 4
#: The largest base64 certificate, statement and signature of one
#: attestation (a Fulcio certificate is about 3.5 KB in base64).
MAX_CERTIFICATE = 16 << 10
MAX_STATEMENT = 64 << 10
MAX_SIGNATURE = 1 << 10
#: The most transparency-log entries of one attestation (Sigstore writes one).
MAX_LOG_ENTRIES = 4

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ProvenanceInvalid(ValueError):
    """An attestation or provenance is malformed or not for this file; the message says which."""


def _b64(value: object, limit: int, what: str) -> bytes:
    """Standard base64 text of at most C{limit} characters, decoded."""
    if not isinstance(value, str) or not value:
        raise ProvenanceInvalid(f"{what} is not a base64 text")
    if len(value) > limit:
        raise ProvenanceInvalid(f"{what} is larger than {limit} characters")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ProvenanceInvalid(f"{what} is not valid base64")


def check_attestation(attestation: object, what: str = "attestation") -> dict[str, Any]:
    """
    The shape of one attestation object (PEP 740), given back as it was;
    the signature is L{pypid.auth.attestations}' to check.

    @raise ProvenanceInvalid: naming the part that is wrong.
    """
    if not isinstance(attestation, dict):
        raise ProvenanceInvalid(f"{what} is not a JSON object")
    if attestation.get("version") != 1 or isinstance(attestation.get("version"), bool):
        raise ProvenanceInvalid(f"{what}: version must be 1")
    material = attestation.get("verification_material")
    if not isinstance(material, dict):
        raise ProvenanceInvalid(f"{what}: verification_material is not a JSON object")
    _b64(material.get("certificate"), MAX_CERTIFICATE, f"{what}: the certificate")
    entries = material.get("transparency_entries")
    if not isinstance(entries, list) or not entries \
            or not all(isinstance(entry, dict) for entry in entries):
        raise ProvenanceInvalid(f"{what}: transparency_entries must be a list of objects, "
                                "at least one")
    if len(entries) > MAX_LOG_ENTRIES:
        raise ProvenanceInvalid(f"{what}: more than {MAX_LOG_ENTRIES} transparency_entries")
    envelope = attestation.get("envelope")
    if not isinstance(envelope, dict):
        raise ProvenanceInvalid(f"{what}: envelope is not a JSON object")
    _b64(envelope.get("statement"), MAX_STATEMENT, f"{what}: the statement")
    _b64(envelope.get("signature"), MAX_SIGNATURE, f"{what}: the signature")
    return attestation


def parse_attestations(field: str) -> tuple[dict[str, Any], ...]:
    """
    Read an upload's C{attestations} form field: a JSON array of up to
    L{MAX_ATTESTATIONS} attestation objects (L{check_attestation}). An
    empty array claims nothing, and is taken as no field (the public index
    refuses it; twine and uv send no field when they have none).

    @raise ProvenanceInvalid: saying what is wrong ("attestations: ...").
    """
    try:
        value = json.loads(field)
    except (ValueError, RecursionError):
        raise ProvenanceInvalid("attestations: not JSON (expected a JSON array of "
                                "attestation objects)")
    if not isinstance(value, list):
        raise ProvenanceInvalid("attestations: expected a JSON array of attestation objects")
    if len(value) > MAX_ATTESTATIONS:
        raise ProvenanceInvalid(f"attestations: at most {MAX_ATTESTATIONS} a file (one per "
                                "predicate type)")
    count = len(value)
    return tuple(check_attestation(item, _which(i, count)) for i, item in enumerate(value))


def _which(i: int, count: int) -> str:
    return "attestation" if count == 1 else f"attestation {i + 1} of {count}"


def statement_bytes(attestation: Mapping[str, Any]) -> bytes:
    """The signed statement of a checked attestation (L{check_attestation}), as bytes."""
    return base64.b64decode(attestation["envelope"]["statement"])


def check_statement(statement: bytes, filename: str, sha256: str,
                    predicate_types: Collection[str] | None) -> str:
    """
    What an in-toto statement must say to be an attestation of the file
    C{filename} whose digest is C{sha256}: the statement type, exactly one
    subject, named as the file (any spelling of the same distribution, as
    PEP 740 allows) with that sha256, and a predicate type of
    C{predicate_types}; with L{None} (provenance judged where it was
    verified), any https URI.

    @return: the predicate type.
    @raise ProvenanceInvalid: saying what does not match.
    """
    try:
        data = json.loads(statement)
    except (ValueError, RecursionError):
        raise ProvenanceInvalid("the statement is not JSON")
    if not isinstance(data, dict) or data.get("_type") != STATEMENT_TYPE:
        raise ProvenanceInvalid(f"the statement is not an in-toto statement ({STATEMENT_TYPE})")
    subjects = data.get("subject")
    if not isinstance(subjects, list) or len(subjects) != 1 or not isinstance(subjects[0], dict):
        raise ProvenanceInvalid("the statement must name exactly one subject, the file")
    subject = subjects[0]
    name = subject.get("name")
    if not isinstance(name, str) or (name != filename and (
            filename_key(name) is None or filename_key(name) != filename_key(filename))):
        raise ProvenanceInvalid(f"the statement is for another file ({_short(name)}), "
                                f"not {filename}")
    digest = subject.get("digest")
    found = digest.get("sha256") if isinstance(digest, dict) else None
    if not isinstance(found, str) or found.lower() != sha256.lower():
        raise ProvenanceInvalid(f"the statement names another sha256 ({_short(found)}) than "
                                f"the file's ({sha256})")
    predicate_type = data.get("predicateType")
    if not isinstance(predicate_type, str) or len(predicate_type) > 200 \
            or not predicate_type.isprintable() or urlsplit(predicate_type).scheme != "https":
        raise ProvenanceInvalid(f"the predicate type {_short(predicate_type)} is not an "
                                "https URI")
    if predicate_types is not None and predicate_type not in predicate_types:
        raise ProvenanceInvalid(f"the predicate type {_short(predicate_type)} is not one "
                                f"PEP 740 allows ({', '.join(sorted(predicate_types))})")
    return predicate_type


def check_predicate_types(types: Sequence[str]) -> None:
    """Refuse two attestations of one predicate type, as the public index does."""
    for i, kind in enumerate(types):
        if kind in types[:i]:
            raise ProvenanceInvalid(f"attestations: two are of the predicate type {kind}; "
                                    "one of each is accepted")


def _short(value: object, limit: int = 80) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


# -- the provenance object --------------------------------------------------------------


@attrs.frozen
class Publisher:
    """
    Who made a file's attestations, as the provenance object names it.

    @ivar kind: the CI system: C{GitHub}, C{GitLab}, C{Google}, C{CircleCI}
        (the names the public index and pypi-attestations use) or the name
        of another issuer.
    @ivar fields: C{((key, value), ...)}: the publisher's identity as
        pypi-attestations reads it (C{repository}, C{workflow}, ...), flat
        in the object, as the public index writes it.
    @ivar claims: C{((claim, value), ...)}: the configured publisher's
        claims, under C{claims} as PEP 740 writes it.
    """

    kind: str
    fields: tuple[tuple[str, str | None], ...] = ()
    claims: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The C{publisher} object."""
        data: dict[str, Any] = {"kind": self.kind}
        data.update(self.fields)
        if self.claims:
            data["claims"] = dict(self.claims)
        return data


def publisher_summary(publisher: Mapping[str, Any]) -> str:
    """
    A provenance object's C{publisher} as one short line for the pages for
    people: its kind and the values that say where it ran (repository,
    workflow, environment, or an email), never more than 200 characters.
    """
    kind = publisher.get("kind")
    words = [kind if isinstance(kind, str) and kind else "publisher"]
    for key in ("repository", "workflow", "workflow_filepath", "email", "project_id",
                "environment"):
        value = publisher.get(key)
        if isinstance(value, str) and value:
            words.append(value if key != "environment" else f"(environment {value})")
    if len(words) == 1:
        claims = publisher.get("claims")
        if isinstance(claims, dict):
            words.extend(str(value) for value in list(claims.values())[:3]
                         if isinstance(value, str | int))
    text = " ".join(word for word in words if word.isprintable())
    return text[:200]


def provenance_document(bundles: Iterable[tuple[Publisher, Sequence[Mapping[str, Any]]]]
                        ) -> bytes:
    """
    The provenance object of a file: version 1, one bundle per publisher,
    each with the attestations it made, as compact JSON (keys sorted, so
    the same attestations make the same bytes and digest).
    """
    document = {"version": 1, "attestation_bundles": [
        {"publisher": publisher.to_json(), "attestations": list(attestations)}
        for publisher, attestations in bundles]}
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")


def read_provenance(data: bytes, filename: str, sha256: str) -> dict[str, Any]:
    """
    Read a provenance object for the file C{filename} of digest C{sha256}
    (the upstream's, or a bundle's): its shape, and every statement for this
    very file (L{check_statement}); not the signatures.

    @raise ProvenanceInvalid: saying what is wrong.
    """
    if len(data) > MAX_PROVENANCE_SIZE:
        raise ProvenanceInvalid(f"the provenance is larger than {MAX_PROVENANCE_SIZE} bytes")
    if not _SHA256.match(sha256):
        raise ProvenanceInvalid("the file's sha256 is not known")
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        raise ProvenanceInvalid("the provenance is not JSON")
    if not isinstance(document, dict) or document.get("version") != 1 \
            or isinstance(document.get("version"), bool):
        raise ProvenanceInvalid("the provenance is not a version 1 provenance object")
    bundles = document.get("attestation_bundles")
    if not isinstance(bundles, list) or not bundles or len(bundles) > MAX_BUNDLES:
        raise ProvenanceInvalid(f"the provenance must hold 1 to {MAX_BUNDLES} "
                                "attestation_bundles")
    for b, bundle in enumerate(bundles):
        where = f"bundle {b + 1}"
        if not isinstance(bundle, dict):
            raise ProvenanceInvalid(f"{where} is not a JSON object")
        publisher = bundle.get("publisher")
        if not isinstance(publisher, dict) or not isinstance(publisher.get("kind"), str) \
                or not publisher["kind"]:
            raise ProvenanceInvalid(f"{where}: the publisher has no kind")
        attestations = bundle.get("attestations")
        if not isinstance(attestations, list) or not attestations \
                or len(attestations) > MAX_BUNDLE_ATTESTATIONS:
            raise ProvenanceInvalid(f"{where} must hold 1 to {MAX_BUNDLE_ATTESTATIONS} "
                                    "attestations")
        for a, attestation in enumerate(attestations):
            what = f"{where}, attestation {a + 1}"
            check_attestation(attestation, what)
            try:
                check_statement(statement_bytes(attestation), filename, sha256, None)
            except ProvenanceInvalid as e:
                raise ProvenanceInvalid(f"{what}: {e}")
    return document


def publishers_of(document: Mapping[str, Any]) -> tuple[str, ...]:
    """The one-line summaries of a read provenance object's publishers (L{read_provenance})."""
    return tuple(publisher_summary(bundle["publisher"])
                 for bundle in document["attestation_bundles"])


def integrity_path(project: str, version: str, filename: str) -> str:
    """
    The path of a file's provenance in the Integrity API, below the
    index's prefix: C{integrity/<project>/<version>/<filename>/provenance}
    (no leading slash), each segment quoted.
    """
    return "integrity/{}/{}/{}/provenance".format(
        quote(project, safe=""), quote(version, safe=""), quote(filename, safe=""))
