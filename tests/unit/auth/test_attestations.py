"""
Tests for L{pypid.auth.attestations}: uploads' attestations verified with
sigstore's verifier against a trust root file, offline, then who signed
them, against a C{[publishers]} rule or the CI job whose ID token minted
the upload's token; and the C{[attestations]} configuration.

The attestations come from a Sigstore instance the tests make
(L{tests.harness.sigstore_root}): its own CA, CT log and Rekor keys, and every
name a C{.test} one.
"""

import base64
import copy
import hashlib
import json
import os

import attrs
from twisted.internet.defer import ensureDeferred, maybeDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.attestations import (
    AttestationChecker,
    AttestationRefused,
    SignerIdentity,
    default_trust_root,
)
from pypid.auth.oidc import TrustedPublishing, proof_of
from pypid.auth.policy import AccessModel
from pypid.auth.reader import Rules
from pypid.auth.tokens import Token
from pypid.auth.verifier import Identity
from pypid.config import ConfigError, load_config
from pypid.config.attestation_settings import check_trust_root
from pypid.core.access.publishers import PublishingSettings, parse_publishers
from pypid.core.dists.provenance import read_provenance
from tests.harness.fakes import write_file
from tests.harness.sigstore_root import (
    SLSA_PROVENANCE_V1,
    TestSigstore,
    github_claims,
    gitlab_claims,
)

FILE = "widgets-1.0.tar.gz"
SHA = hashlib.sha256(b"the widgets sdist").hexdigest()
ISSUER = "https://token.ci.test"
WORKFLOW_REF = "acme/widgets/.github/workflows/release.yml@refs/tags/v1.0"
RULE = f"issuer:ci repository:acme/widgets workflow_ref:{WORKFLOW_REF}"

SIGSTORE = TestSigstore()
ELSEWHERE = SIGSTORE.untrusted()


def run_now(f, *args):
    """The pool, at once (the verification is the same work)."""
    return maybeDeferred(f, *args)


def refuse_run(f, *args):
    raise AssertionError("the verification ran for attestations refused before it")


class _Checker:
    def setUp(self):
        self.root = SIGSTORE.write_trusted_root(os.path.join(self.mktemp(), "root.json"))

    def checker(self, rules="widgets = " + RULE, require=(), run=run_now):
        found = []
        for line in rules.splitlines():
            if line.strip():
                pattern, _, text = line.partition("=")
                found += parse_publishers(pattern.strip(), text)
        publishing = TrustedPublishing(
            PublishingSettings(issuers=(("ci", ISSUER), ("lab", "https://gitlab.ci.test")),
                     rules=tuple(found)), object(), Clock())
        return AttestationChecker(self.root, publishing, run, require)

    def check(self, checker, attestations, identity=None, filename=FILE, sha256=SHA,
              project="widgets"):
        """The provenance (bytes or None), or the refusal's text."""
        field = attestations if isinstance(attestations, str) or attestations is None \
            else json.dumps(attestations)
        reader = Rules(AccessModel()).reader(identity or Identity("alice"))
        d = ensureDeferred(checker.check(filename=filename, sha256=sha256, project=project,
                                         field=field, reader=reader))
        results = []
        d.addBoth(results.append)
        [result] = results
        if hasattr(result, "value"):
            if not isinstance(result.value, AttestationRefused):
                result.raiseException()
            return str(result.value)
        return result

    def refused(self, checker, attestations, *reasons, **kwargs):
        result = self.check(checker, attestations, **kwargs)
        self.assertIsInstance(result, str, "accepted")
        for reason in reasons:
            self.assertIn(reason, result)
        self.assertTrue(result.isascii())
        return result


def attest(**kwargs):
    kwargs.setdefault("claims", github_claims())
    return SIGSTORE.attest(FILE, SHA, **kwargs)


class RuleTests(_Checker, SynchronousTestCase):
    """Uploads with a password or user token: a [publishers] rule must name the signer."""

    def test_verified(self):
        """
        The provenance holds the attestations under their publisher:
        GitHub's kind and fields (as pypi-attestations reads them) and the
        rule's claims; its statements name the file.
        """
        publish, slsa = attest(), attest(predicate_type=SLSA_PROVENANCE_V1)
        data = self.check(self.checker(), [publish, slsa])
        document = read_provenance(data, FILE, SHA)
        [bundle] = document["attestation_bundles"]
        self.assertEqual(bundle["attestations"], [publish, slsa])
        self.assertEqual(bundle["publisher"], {
            "kind": "GitHub", "repository": "acme/widgets", "workflow": "release.yml",
            "environment": None,
            "claims": {"repository": "acme/widgets", "workflow_ref": WORKFLOW_REF}})

    def test_gitlab(self):
        """A GitLab job's certificate: its kind and workflow file."""
        checker = self.checker("widgets = issuer:lab project_path:group/project "
                               "ci_config_ref_uri:gitlab.ci.test/group/project//"
                               ".gitlab-ci.yml@refs/heads/main")
        data = self.check(checker, [attest(claims=gitlab_claims())])
        publisher = read_provenance(data, FILE, SHA)["attestation_bundles"][0]["publisher"]
        self.assertEqual((publisher["kind"], publisher["repository"],
                          publisher["workflow_filepath"]),
                         ("GitLab", "group/project", ".gitlab-ci.yml"))

    def test_environment(self):
        """A rule naming an environment matches a certificate of it, and no other."""
        checker = self.checker(f"widgets = {RULE} environment:release")
        self.assertIsInstance(
            self.check(checker, [attest(claims=github_claims(environment="release"))]), bytes)
        self.refused(checker, [attest(claims=github_claims(environment="staging"))],
                     "its environment is not the one wanted")
        self.refused(checker, [attest()], "names no deployment environment")

    def test_wrong_workflow(self):
        """The right signature from another workflow: refused, with the way out."""
        self.refused(self.checker(), [attest(claims=github_claims(workflow="nightly.yml"))],
                     "signed by acme/widgets workflow acme/widgets/.github/workflows/"
                     "nightly.yml@refs/tags/v1.0", "its workflow_ref is not the one wanted",
                     "uv publish --no-attestations")

    def test_wrong_repository_and_issuer(self):
        self.refused(self.checker(), [attest(claims=github_claims(repository="evil/widgets"))],
                     "repository is not the one wanted")
        self.refused(self.checker(), [attest(claims=github_claims(issuer="https://x.test"))],
                     "its issuer is not ci's")

    def test_claim_without_counterpart(self):
        """A rule naming a claim no certificate carries never matches (fail closed)."""
        self.refused(self.checker(f"widgets = {RULE} actor:alice"), [attest()],
                     "the claim actor has no counterpart in a Sigstore certificate")

    def test_no_rule(self):
        """No rule names the project: refused before any verification."""
        self.refused(self.checker("other = " + RULE, run=refuse_run), [attest()],
                     "no publisher may sign for widgets", "--no-attestations")

    def test_glob_rule(self):
        self.assertIsInstance(self.check(self.checker("widget* = " + RULE), [attest()]), bytes)


class VerificationTests(_Checker, SynchronousTestCase):
    """What sigstore's verifier and the statement's checks refuse."""

    def test_another_file(self):
        self.refused(self.checker(), [SIGSTORE.attest("other-1.0.tar.gz", SHA,
                                                      claims=github_claims())],
                     "attestation: the statement is for another file (other-1.0.tar.gz)")

    def test_another_hash(self):
        self.refused(self.checker(), [SIGSTORE.attest(FILE, "0" * 64, claims=github_claims())],
                     "the statement names another sha256")

    def test_tampered_signature(self):
        attestation = attest()
        signature = bytearray(base64.b64decode(attestation["envelope"]["signature"]))
        signature[-3] ^= 1
        attestation["envelope"]["signature"] = base64.b64encode(bytes(signature)).decode()
        self.refused(self.checker(), [attestation], "does not verify")

    def test_edited_statement(self):
        """A statement changed after signing (to name this file) does not verify."""
        attestation = SIGSTORE.attest("other-1.0.tar.gz", SHA, claims=github_claims())
        statement = json.loads(base64.b64decode(attestation["envelope"]["statement"]))
        statement["subject"][0]["name"] = FILE
        attestation["envelope"]["statement"] = base64.b64encode(
            json.dumps(statement).encode()).decode()
        self.refused(self.checker(), [attestation], "does not verify")

    def test_untrusted_certificate(self):
        """Signed through another Sigstore instance: its certificate chains to no trusted CA."""
        self.refused(self.checker(), [ELSEWHERE.attest(FILE, SHA, claims=github_claims())],
                     "does not verify")

    def test_log_entry_of_another(self):
        """The transparency-log entry of another signature: refused."""
        mine, other = attest(), attest()
        mine["verification_material"]["transparency_entries"] = \
            other["verification_material"]["transparency_entries"]
        self.refused(self.checker(), [mine], "does not verify")

    def test_one_per_type(self):
        self.refused(self.checker(), [attest(), attest()], "two are of the predicate type")

    def test_malformed(self):
        """Junk is refused by its shape, before any verification."""
        checker = self.checker(run=refuse_run)
        self.refused(checker, "{", "attestations: not JSON")
        self.refused(checker, [{**attest(), "version": 2}], "version must be 1")
        self.refused(checker, [attest()] * 3, "at most 2")

    def test_garbage_inside(self):
        """Well-shaped garbage reaches the libraries and is refused, never an exception."""
        for change in ("certificate", "entry", "body", "proof"):
            attestation = attest()
            material = attestation["verification_material"]
            entry = material["transparency_entries"][0]
            if change == "certificate":
                material["certificate"] = base64.b64encode(b"not a certificate").decode()
            elif change == "entry":
                entry["logIndex"] = "not a number"
            elif change == "body":
                entry["canonicalizedBody"] = base64.b64encode(b"{}").decode()
            else:
                entry["inclusionProof"]["hashes"] = ["AAAA"]
            self.refused(self.checker(), [attestation], "attestation")

    def test_empty(self):
        """An empty list is no attestations."""
        self.assertIsNone(self.check(self.checker(), "[]"))

    def test_required(self):
        """A project that requires attestations refuses an upload without them."""
        checker = self.checker(require=("widg*",))
        self.refused(checker, None, "widgets requires attestations")
        self.assertIsNone(self.check(self.checker(), None))
        self.assertTrue(checker.required("Widgets"))
        self.assertFalse(checker.required("other"))

    def test_no_network_no_home(self):
        """Verifying writes nothing under HOME (no TUF cache) and has no HTTP client to use."""
        home = self.mktemp()
        os.makedirs(home)
        self.patch(os, "environ", {**os.environ, "HOME": home, "XDG_CACHE_HOME": home})
        self.assertIsInstance(self.check(self.checker(), [attest()]), bytes)
        self.assertEqual(os.listdir(home), [])


class MintedTokenTests(_Checker, SynchronousTestCase):
    """An upload with a token trusted publishing minted: the signer must be that CI job."""

    def identity(self, **claims):
        token_claims = {"iss": ISSUER, "sub": "repo:acme/widgets", "repository": "acme/widgets",
                        "workflow_ref": WORKFLOW_REF, "sha": "a" * 40, "run_id": "1",
                        "run_attempt": "1", "ref": "refs/tags/v1.0"}
        token_claims.update(claims)
        token = Token(id="x", digest="", user="publisher:ci:repo:acme/widgets",
                      actions=frozenset({"upload"}), proof=proof_of(token_claims))
        return Identity(token.user, token)

    def test_same_job(self):
        """No [publishers] rule is needed: the token proved the job."""
        data = self.check(self.checker(rules=""), [attest()], identity=self.identity())
        publisher = read_provenance(data, FILE, SHA)["attestation_bundles"][0]["publisher"]
        self.assertEqual((publisher["kind"], publisher["claims"]["repository"]),
                         ("GitHub", "acme/widgets"))

    def test_other_job(self):
        """Another repository, workflow, commit or run than the token's: refused."""
        checker = self.checker(rules="")
        for claims, reason in (({"repository": "evil/widgets"}, "repository"),
                               ({"workflow_ref": WORKFLOW_REF.replace("release", "x")},
                                "workflow_ref"),
                               ({"sha": "f" * 40}, "sha"),
                               ({"run_id": "2"}, "another run"),
                               ({"iss": "https://other.test"}, "its issuer")):
            self.refused(checker, [attest()], "not by the CI job whose token made this upload",
                         reason, identity=self.identity(**claims))

    def test_proof_of_another(self):
        """
        A token carrying a proof that is not a trusted publisher's (its
        reader says it is not minted) proves no job: the C{[publishers]}
        rules decide, and with none the attestations are refused.
        """
        token = attrs.evolve(self.identity().token, user="alice")
        self.refused(self.checker(rules=""), [attest()], "no publisher may sign for widgets",
                     identity=Identity("alice", token))


class CertificateTests(SynchronousTestCase):
    """L{SignerIdentity}: the Fulcio extensions read from a certificate."""

    def test_read(self):
        from cryptography import x509
        attestation = SIGSTORE.attest(FILE, SHA, claims={**github_claims(), "1": ISSUER})
        certificate = x509.load_der_x509_certificate(
            base64.b64decode(attestation["verification_material"]["certificate"]))
        identity = SignerIdentity.of(certificate)
        self.assertEqual(identity.issuer, ISSUER)
        self.assertEqual(identity.path(12), "acme/widgets")
        self.assertEqual(identity.san, github_claims()["9"])
        self.assertEqual(identity.extensions[21],
                         "https://git.ci.test/acme/widgets/actions/runs/1/attempts/1")


class TrustRootTests(SynchronousTestCase):
    """The trust root file: the default one, and the checks at start-up."""

    def test_default(self):
        """The sigstore package ships the public-good root where pypid finds it (upgrades move it)."""
        path = default_trust_root()
        check_trust_root(path)
        self.assertTrue(path.endswith("trusted_root.json"))

    def test_refused(self):
        folder = self.mktemp()
        os.makedirs(folder)
        for name, data, reason in (("missing", None, "cannot read"),
                                   ("junk", b"nope", "is not JSON"),
                                   ("other", b'{"mediaType": "x"}', "is not a Sigstore trust"),
                                   ("empty", b'{"mediaType": "application/vnd.dev.sigstore.'
                                    b'trustedroot+json;version=0.1"}', "names no certificate")):
            path = os.path.join(folder, name)
            if data is not None:
                write_file(path, data)
            e = self.assertRaises(ValueError, check_trust_root, path)
            self.assertIn(reason, str(e))

    def test_config(self):
        """[attestations] trust_root and require, and a bad trust root as one line."""
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        root = SIGSTORE.write_trusted_root(os.path.join(folder, "root.json"))
        path = write_file(os.path.join(folder, "pypid.ini"), (
            f"[storage]\npath = {folder}/p\n[attestations]\ntrust_root = {root}\n"
            "require = Acme.*, widgets\n").encode())
        config = load_config(path)
        self.assertEqual(config.attestations.trust_root, root)
        self.assertEqual(config.attestations.require, ("acme-*", "widgets"))
        write_file(path, (f"[storage]\npath = {folder}/p\n[attestations]\n"
                          f"trust_root = {folder}/nothing.json\n").encode())
        e = self.assertRaises(ConfigError, load_config, path)
        self.assertIn("[attestations] trust_root: cannot read", str(e))
        self.assertEqual(len(str(e).splitlines()), 1)
        write_file(path, (f"[storage]\npath = {folder}/p\n[attestations]\n"
                          "require = not/a/name\n").encode())
        e = self.assertRaises(ConfigError, load_config, path)
        self.assertIn("[attestations] require:", str(e))


class ProvenanceContentTests(_Checker, SynchronousTestCase):
    def test_attestations_as_sent(self):
        """The attestations in the provenance are the uploaded ones, byte for byte in JSON."""
        attestation = attest()
        data = self.check(self.checker(), [copy.deepcopy(attestation)])
        self.assertEqual(json.loads(data)["attestation_bundles"][0]["attestations"],
                         [attestation])
