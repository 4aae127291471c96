"""
Verifying an upload's attestations (PEP 740): that each is a Sigstore signature
over an in-toto statement naming exactly this file, made by a CI job this index
trusts to publish the project.

What is checked, in this order (junk first, before any cryptography):

  1. the form field's shape (L{pypid.core.dists.provenance.parse_attestations});
  2. that some publisher may sign for the project: the trusted publisher
     whose minted token made the upload, or a C{[publishers]} rule covering
     the project;
  3. in the thread pool (about 2 ms an attestation), with sigstore's own
     verifier over the configured trust root: the certificate chain, SCT,
     log inclusion proof and DSSE signature; then that the payload is an
     in-toto statement of this file, of a type PEP 740 allows, one per type;
  4. who signed, from the certificate's Fulcio extensions
     (L{SignerIdentity}): for an upload with a minted token, that very CI
     job (its issuer and every claim the token proved, the run included);
     else a C{[publishers]} rule covering the project must match, claim by
     claim (L{_COMPARED}); a claim with no counterpart in a certificate
     (C{sub}, C{actor}) makes the rule fail closed.

The Sigstore libraries (0.6 s and 560 modules) are imported in the pool the
first time an upload sends attestations, or at start-up when publishers are
configured. Nothing here uses the network: the trust root is read from its
file, and sigstore's C{Attestation.verify}, which would fetch it, is not called.
"""

from __future__ import annotations

import importlib.resources
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs
from twisted.logger import Logger

from pypid.auth.oidc import TrustedPublishing
from pypid.auth.publisher_tokens import minted_proof
from pypid.config.values import held_bytes
from pypid.core.access.publishers import PublisherRule
from pypid.core.dists.names import normalize
from pypid.core.dists.provenance import (
    PAYLOAD_TYPE,
    ProvenanceInvalid,
    Publisher,
    check_predicate_types,
    check_statement,
    parse_attestations,
    provenance_document,
)
from pypid.jobs.run import Run

if TYPE_CHECKING:
    from cryptography.x509 import Certificate

    from pypid.auth.reader import Reader

log = Logger()

#: The Fulcio certificate extensions' arc.
FULCIO_ARC = "1.3.6.1.4.1.57264.1."
#: The legacy issuer extension (raw text, not DER), and its successor.
LEGACY_ISSUER = 1
ISSUER = 8

#: What every refusal of attestations that verify but are not the
#: publisher's ends with: the way out.
WAY_OUT = ("configure a [publishers] rule for it, or upload without attestations "
           "(uv publish --no-attestations; twine without --attestations)")


class AttestationRefused(Exception):
    """Why an upload's attestations are refused: C{str(e)} is the plain-text reason (ASCII)."""


class TrustRootError(ValueError):
    """A trust root file cannot be used; the message says why."""


# -- the trust root ---------------------------------------------------------------


def default_trust_root() -> str:
    """
    The public-good Sigstore instance's trust root, as the installed sigstore
    package ships it (the folder of its TUF store that is not staging's).

    @raise TrustRootError: the package has none where it used to.
    """
    try:
        store = importlib.resources.files("sigstore") / "_store"
        found = [entry / "trusted_root.json" for entry in store.iterdir()
                 if entry.is_dir() and "stage" not in entry.name
                 and (entry / "trusted_root.json").is_file()]
    except (ModuleNotFoundError, OSError) as e:
        raise TrustRootError(f"the sigstore package's trust root cannot be found ({e}); "
                             "name a trust root file in [attestations] trust_root")
    if len(found) != 1:
        raise TrustRootError("the sigstore package's public-good trust root cannot be "
                             f"told apart ({len(found)} candidates); name a trust root file "
                             "in [attestations] trust_root")
    return str(found[0])


# -- what a certificate says ----------------------------------------------------------


def _der_utf8(data: bytes) -> str | None:
    """The text of a DER UTF8String (tag 12), or L{None}."""
    if len(data) < 2 or data[0] != 0x0C:
        return None
    length, at = data[1], 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 3 or len(data) < 2 + count:
            return None
        length, at = int.from_bytes(data[2:2 + count], "big"), 2 + count
    if len(data) != at + length:
        return None
    try:
        return data[at:].decode("utf-8")
    except UnicodeDecodeError:
        return None


@attrs.frozen
class SignerIdentity:
    """
    Who a Fulcio certificate was issued to: its extensions by their OID's
    last number (C{8}: the issuer, ...) and its subject alternative name.
    """

    extensions: Mapping[int, str]
    san: str | None = None

    @classmethod
    def of(cls, certificate: Certificate) -> SignerIdentity:
        """Read C{certificate}'s Fulcio extensions and SAN."""
        from cryptography import x509

        found: dict[int, str] = {}
        for extension in certificate.extensions:
            oid = extension.oid.dotted_string
            if not oid.startswith(FULCIO_ARC) or not isinstance(
                    extension.value, x509.UnrecognizedExtension):
                continue
            try:
                number = int(oid[len(FULCIO_ARC):])
            except ValueError:
                continue
            raw = extension.value.value
            text = (raw.decode("utf-8", "replace") if number < ISSUER
                    else _der_utf8(raw))
            if text is not None:
                found[number] = text
        san: str | None = None
        try:
            names = certificate.extensions.get_extension_for_class(
                x509.SubjectAlternativeName).value
            found_names = (names.get_values_for_type(x509.UniformResourceIdentifier)
                           or names.get_values_for_type(x509.RFC822Name))
            san = found_names[0] if found_names else None
        except x509.ExtensionNotFound:
            pass
        return cls(found, san)

    @property
    def issuer(self) -> str | None:
        """The OIDC issuer that vouched for the signer (.8, or the legacy .1)."""
        return self.extensions.get(ISSUER) or self.extensions.get(LEGACY_ISSUER)

    def path(self, number: int) -> str | None:
        """The path (without its first C{/}) of the URI extension C{number}."""
        value = self.extensions.get(number)
        return urlsplit(value).path.lstrip("/") if value else None

    def describe(self) -> str:
        """The certificate's identity in a few words (its repository and workflow)."""
        words = [self.path(12) or self.san or "an unknown signer"]
        workflow = self.path(18) or self.path(9)
        if workflow:
            words.append(f"workflow {workflow}")
        return " ".join(words)


def _without_scheme(value: str | None) -> str | None:
    return value.partition("://")[2] if value and "://" in value else value


def _ref_matches(claim: str, identity: SignerIdentity) -> bool:
    ref = identity.extensions.get(14)
    return ref is not None and ref in (claim, "refs/heads/" + claim, "refs/tags/" + claim)


#: claim -> C{matches(value, identity)}. The claims, as the CI systems name
#: them in their ID tokens, and the Fulcio extension (OID
#: C{1.3.6.1.4.1.57264.1.N}) compared with each. The host of a URI is not
#: compared: the issuer (.8) already says whose CI it is.
#:
#:   ===========================  ======  ==========================================
#:   claim                        OID .N  compared with
#:   ===========================  ======  ==========================================
#:   repository, project_path     12      the path of the Source Repository URI
#:   repository_id, project_id    15      Source Repository Identifier
#:   repository_owner_id,         17      Source Repository Owner Identifier
#:   namespace_id
#:   workflow_ref                 18      the path of the Build Config URI
#:   ci_config_ref_uri            18      the Build Config URI without its scheme
#:   job_workflow_ref             9       the path of the Build Signer URI
#:   sha                          13      Source Repository Digest
#:   ref                          14      Source Repository Ref (GitLab's bare
#:                                        name: with refs/heads/ or refs/tags/)
#:   environment                  23      Deployment Environment
#:   event_name, pipeline_source  20      Build Trigger
#:   run_id + run_attempt         21      the Run Invocation URI's path ends in
#:                                        /actions/runs/<id>/attempts/<attempt>
#:   job_id                       21      the Run Invocation URI's path ends in
#:                                        /-/jobs/<id>
#:   email                        SAN     the certificate's email (Google)
#:   ===========================  ======  ==========================================
_COMPARED: dict[str, Callable[[str, SignerIdentity], bool]] = {
    "repository": lambda v, c: c.path(12) == v,
    "project_path": lambda v, c: c.path(12) == v,
    "repository_id": lambda v, c: c.extensions.get(15) == v,
    "project_id": lambda v, c: c.extensions.get(15) == v,
    "repository_owner_id": lambda v, c: c.extensions.get(17) == v,
    "namespace_id": lambda v, c: c.extensions.get(17) == v,
    "workflow_ref": lambda v, c: c.path(18) == v,
    "ci_config_ref_uri": lambda v, c: _without_scheme(c.extensions.get(18)) == v,
    "job_workflow_ref": lambda v, c: c.path(9) == v,
    "sha": lambda v, c: c.extensions.get(13) == v,
    "ref": _ref_matches,
    "environment": lambda v, c: c.extensions.get(23) == v,
    "event_name": lambda v, c: c.extensions.get(20) == v,
    "pipeline_source": lambda v, c: c.extensions.get(20) == v,
    "email": lambda v, c: c.san == v,
}

#: The claims that say where a job ran (one must agree for a minted token's
#: upload to be its job's): the repository, or a Google account.
_WHERE = ("repository", "project_path", "email")


def claim_mismatch(name: str, value: str, identity: SignerIdentity) -> str | None:
    """Why the certificate does not say the claim C{name} is C{value}, or L{None}."""
    compare = _COMPARED.get(name)
    if compare is None:
        return f"the claim {name} has no counterpart in a Sigstore certificate"
    if name == "environment" and 23 not in identity.extensions:
        return "the certificate names no deployment environment"
    if not compare(value, identity):
        return f"its {name} is not the one wanted"
    return None


def _run_mismatch(proof: Mapping[str, str], identity: SignerIdentity) -> str | None:
    """Why the certificate is not of the run a minted token's ID token came from, if it is not."""
    run = identity.path(21)
    if "run_id" in proof:
        wanted = f"/actions/runs/{proof['run_id']}/attempts/{proof.get('run_attempt', '1')}"
    elif "job_id" in proof:
        wanted = f"/-/jobs/{proof['job_id']}"
    else:
        return None
    if run is None or not ("/" + run).endswith(wanted):
        return "it was made by another run of the workflow than the one that asked for the token"
    return None


def token_mismatch(proof: Mapping[str, str], identity: SignerIdentity) -> str | None:
    """Why the certificate is not the CI job's whose ID token minted the upload's token."""
    if identity.issuer is None or identity.issuer != proof.get("iss"):
        return "its issuer is not the one of the token's CI system"
    where = [name for name in _WHERE if name in proof]
    if not where:
        return "the token says nothing a certificate can be checked against"
    for name in (*where, "workflow_ref", "ci_config_ref_uri", "sha"):
        if name in proof:
            reason = claim_mismatch(name, proof[name], identity)
            if reason is not None:
                return reason
    return _run_mismatch(proof, identity)


def rule_mismatch(rule: PublisherRule, issuer_url: str | None,
                  identity: SignerIdentity) -> str | None:
    """Why C{rule} (its issuer's URL C{issuer_url}) does not match the certificate, or L{None}."""
    if issuer_url is None or identity.issuer != issuer_url:
        return f"its issuer is not {rule.issuer}'s"
    for name, value in rule.claims:
        reason = claim_mismatch(name, value, identity)
        if reason is not None:
            return reason
    return None


def publisher_of(identity: SignerIdentity, issuer: str,
                 claims: Iterable[tuple[str, str]]) -> Publisher:
    """
    The provenance's publisher of a certificate: its kind and the fields
    pypi-attestations reads (told by the certificate's shape, not a host
    name), and the claims of the rule or token it was checked against.
    """
    environment = identity.extensions.get(23)
    repository = identity.path(12)
    config = (identity.path(18) or "").partition("@")[0]
    signer = identity.path(9) or ""
    if repository and "/.github/workflows/" in signer:
        return Publisher("GitHub", (("repository", repository),
                                    ("workflow", config.rpartition("/")[2]),
                                    ("environment", environment)), tuple(claims))
    if repository and "//" in config:
        return Publisher("GitLab", (("repository", repository),
                                    ("workflow_filepath", config.partition("//")[2]),
                                    ("environment", environment)), tuple(claims))
    if not repository and identity.san and "@" in identity.san:
        return Publisher("Google", (("email", identity.san),), tuple(claims))
    fields: tuple[tuple[str, str | None], ...] = (("repository", repository),) \
        if repository else ()
    return Publisher(issuer, fields, tuple(claims))


#: The claims of a minted token's proof the provenance names (no run ids).
_SHOWN_PROOF = ("repository", "workflow_ref", "environment", "project_path",
                "ci_config_ref_uri", "email")


# -- the checker ---------------------------------------------------------------------


class _Capture:
    """A Sigstore verification policy that keeps the certificate it is shown (checked after)."""

    certificate: Any = None

    def verify(self, certificate: Any) -> None:
        self.certificate = certificate


@attrs.define
class AttestationChecker:
    """
    Verifies uploads' attestations; see the module docstring.

    @ivar _publishing: whose C{[oidc] issuers} and C{[publishers]} rules are
        read at each check (a C{SIGHUP} changes them).
    @ivar require: the projects (normalized names or globs) that refuse
        unsigned uploads.
    """

    _trust_root: str
    _publishing: TrustedPublishing | None
    _run: Run
    require: tuple[str, ...] = ()
    _held: Mapping[str, str] = attrs.field(factory=dict)
    _verifier: Any = attrs.field(default=None, init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)

    def required(self, project: str) -> bool:
        """Whether uploads to C{project} must come with attestations."""
        name = normalize(project)
        return any(fnmatchcase(name, pattern) for pattern in self.require)

    def load(self) -> Any:
        """
        The Sigstore verifier of the trust root, made once, the libraries
        imported here (blocking: in the pool, or at start-up).

        @raise TrustRootError: the file is not a trust root sigstore can use.
        """
        with self._lock:
            if self._verifier is None:
                from sigstore.models import TrustedRoot
                from sigstore.verify import Verifier
                try:
                    # (sigstore reads a trust root only from a file)
                    with tempfile.NamedTemporaryFile(suffix=".json") as copy:
                        copy.write(held_bytes(self._trust_root, self._held))
                        copy.flush()
                        root = TrustedRoot.from_file(copy.name)
                except Exception as e:
                    raise TrustRootError(f"{self._trust_root} cannot be used as a Sigstore "
                                         f"trust root: {e}")
                self._verifier = Verifier(trusted_root=root)
            return self._verifier

    async def check(self, *, filename: str, sha256: str, project: str, field: str | None,
                    reader: Reader) -> bytes | None:
        """
        The provenance object of the verified attestations C{field}, or L{None}
        when none were sent (and the project needs none).

        @raise AttestationRefused: why they are refused.
        """
        if field is None:
            if self.required(project):
                raise AttestationRefused(
                    f"attestations: {project} requires attestations (PEP 740) made by its "
                    "trusted publisher; upload from its CI job with them (uv publish sends "
                    "<file>.publish.attestation; twine upload --attestations)")
            return None
        try:
            attestations = parse_attestations(field)
        except ProvenanceInvalid as e:
            raise AttestationRefused(str(e))
        if not attestations:
            return await self.check(filename=filename, sha256=sha256, project=project,
                                    field=None, reader=reader)
        signers = self._signers(project, reader)
        verified = await self._run(self._verify_all, attestations, filename, sha256)
        try:
            check_predicate_types([kind for kind, _ in verified])
        except ProvenanceInvalid as e:
            raise AttestationRefused(str(e))
        publisher = self._who(signers, [signer for _, signer in verified], project)
        return provenance_document([(publisher, attestations)])

    # -- who may sign -------------------------------------------------------------

    def _signers(self, project: str, reader: Reader
                 ) -> tuple[Mapping[str, str], str] | list[tuple[PublisherRule, str | None]]:
        """
        Who may sign for C{project} on this upload: a minted token's proof and
        its issuer's name (L{Reader.minted}), or the C{[publishers]} rules
        covering the project with their issuers' URLs.

        @raise AttestationRefused: nobody may.
        """
        minted = minted_proof(reader.identity) if reader.minted else None
        if minted is not None:
            return minted
        settings = self._publishing.settings if self._publishing is not None else None
        rules = [rule for rule in (settings.rules if settings else ()) if rule.covers(project)]
        if not rules:
            raise AttestationRefused(
                f"attestations: no publisher may sign for {project}: no [publishers] rule "
                f"names it; {WAY_OUT}")
        urls = dict(settings.issuers) if settings else {}
        return [(rule, urls.get(rule.issuer)) for rule in rules]

    def _who(self, signers: tuple[Mapping[str, str], str]
             | list[tuple[PublisherRule, str | None]],
             identities: Sequence[SignerIdentity], project: str) -> Publisher:
        """
        The publisher every attestation's certificate is, among C{signers}.

        @raise AttestationRefused: naming why the closest one is not.
        """
        count = len(identities)
        if isinstance(signers, tuple):
            proof, issuer = signers
            for i, identity in enumerate(identities):
                reason = token_mismatch(proof, identity)
                if reason is not None:
                    raise AttestationRefused(
                        f"{_which(i, count)}: signed by {_short(identity.describe())}, not by "
                        f"the CI job whose token made this upload: {reason}")
            shown = tuple((k, v) for k, v in proof.items() if k in _SHOWN_PROOF)
            return publisher_of(identities[0], issuer, shown)
        closest: tuple[int, str] | None = None
        for rule, url in signers:
            reasons = [rule_mismatch(rule, url, identity) for identity in identities]
            failed = [(i, r) for i, r in enumerate(reasons) if r is not None]
            if not failed:
                return publisher_of(identities[0], rule.issuer, rule.claims)
            if closest is None:
                closest = failed[0]
        assert closest is not None
        i, reason = closest
        raise AttestationRefused(
            f"{_which(i, count)}: signed by {_short(identities[i].describe())}, which no "
            f"[publishers] rule for {project} names ({reason}); {WAY_OUT}")

    # -- in the pool --------------------------------------------------------------------

    def _verify_all(self, attestations: Sequence[Mapping[str, Any]], filename: str,
                    sha256: str) -> list[tuple[str, SignerIdentity]]:
        """Verify each attestation (blocking); C{(predicate type, signer)} of each."""
        verifier = self.load()
        count = len(attestations)
        return [self._verify_one(verifier, attestation, filename, sha256, _which(i, count))
                for i, attestation in enumerate(attestations)]

    @staticmethod
    def _verify_one(verifier: Any, attestation: Mapping[str, Any], filename: str,
                    sha256: str, which: str) -> tuple[str, SignerIdentity]:
        from pydantic import ValidationError
        from pypi_attestations import Attestation, AttestationError, AttestationType
        from sigstore.errors import Error as SigstoreError

        capture = _Capture()
        try:
            bundle = Attestation.model_validate(attestation).to_bundle()
            payload_type, payload = verifier.verify_dsse(bundle, capture)
        except ValidationError as e:
            errors = e.errors()
            where = ".".join(str(part) for part in errors[0]["loc"]) if errors else ""
            message = errors[0]["msg"] if errors else str(e)
            raise AttestationRefused(f"{which}: malformed ({where}: {_short(message)})")
        except (AttestationError, SigstoreError, ValueError) as e:
            raise AttestationRefused(f"{which}: does not verify: {_short(str(e), 300)}")
        except Exception as e:
            # (hostile input the libraries did not foresee: a refusal, never a 500)
            log.info("An attestation of {filename} broke the verifier: {error!r}",
                     filename=filename, error=e)
            raise AttestationRefused(f"{which}: cannot be read ({type(e).__name__})")
        if payload_type != PAYLOAD_TYPE:
            raise AttestationRefused(f"{which}: the signed payload is not an in-toto "
                                     f"statement ({_short(payload_type)})")
        try:
            # (the predicate types PEP 740 allows, as the library of its format names them)
            kind = check_statement(payload, filename, sha256,
                                   frozenset(t.value for t in AttestationType))
        except ProvenanceInvalid as e:
            raise AttestationRefused(f"{which}: {e}")
        return kind, SignerIdentity.of(capture.certificate)


def _which(i: int, count: int) -> str:
    return "attestation" if count == 1 else f"attestation {i + 1} of {count}"


def _short(text: str, limit: int = 160) -> str:
    """C{text} as one printable ASCII line of at most C{limit} characters."""
    line = " ".join(text.split()).encode("ascii", "replace").decode("ascii")
    return line if len(line) <= limit else line[: limit - 3] + "..."

