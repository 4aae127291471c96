"""
End-to-end tests of PEP 740 attestations with the real daemon and the real
clients, unmodified: C{uv publish} (which sends a file's
C{<file>.publish.attestation} found beside it, by default) and C{twine
upload --attestations}. The daemon verifies them against the trust root of
a Sigstore instance the tests make (L{tests.harness.sigstore_root}), offline; its
C{[publishers]} rule names the repository and workflow the certificates
must carry.

Good attestations are stored and served through the Integrity API;
attestations of another file, of another hash, with a tampered signature,
from another (untrusted) Sigstore instance or from the right repository's
other workflow are refused: the client fails and prints pypid's reason,
and nothing is stored.
"""

import base64
import json
import os

from tests.harness.distributions import make_sdist, make_wheel
from tests.harness.e2e import DaemonTestCase, http, sha256
from tests.harness.sigstore_root import TestSigstore, github_claims

ISSUER = "https://token.ci.test"
WORKFLOW_REF = "acme/widgets/.github/workflows/release.yml@refs/tags/v1.0"
INTEGRITY_TYPE = "application/vnd.pypi.integrity.v1+json"

SIGSTORE = TestSigstore()


def attestation(filename, data, **kwargs):
    """The publish attestation of C{filename} (C{data}), made by acme/widgets' release workflow."""
    kwargs.setdefault("claims", github_claims())
    signer = kwargs.pop("sigstore", SIGSTORE)
    return signer.attest(filename, sha256(data), **kwargs)


class AttestationUploadTests(DaemonTestCase):
    """One daemon trusting the test Sigstore and acme/widgets' release workflow for C{widgets}."""

    @property
    def settings(self):
        root = SIGSTORE.write_trusted_root(os.path.abspath("e2e-sigstore/trusted_root.json"))
        return {"oidc.issuers": f"ci {ISSUER}",
                "publishers.widgets": f"issuer:ci repository:acme/widgets "
                                      f"workflow_ref:{WORKFLOW_REF}",
                "attestations.trust_root": root}

    def dist_with(self, dist, attestation_of=None, data=None, **kwargs):
        """
        A folder holding C{dist} and its C{.publish.attestation} (of
        C{attestation_of}, another file, when given; of C{data} when given).
        """
        filename, content = dist
        made = attestation(attestation_of or filename, data if data is not None else content,
                           **kwargs)
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        paths = []
        for name, body in ((filename, content),
                           (filename + ".publish.attestation", json.dumps(made).encode())):
            path = os.path.join(folder, name)
            with open(path, "wb") as f:
                f.write(body)
            paths.append(path)
        return paths, made

    def stored(self, filename, project="widgets"):
        return http("GET", f"{self.daemon.url}files/{project}/{filename}").status == 200

    def provenance(self, filename, version="1.0"):
        return http("GET", f"{self.daemon.url}integrity/widgets/{version}/{filename}/provenance",
                    {"Accept": INTEGRITY_TYPE})

    def assert_refused(self, done, filename, *reasons):
        self.assertNotEqual(done.returncode, 0, done.output)
        for reason in reasons:
            self.assertIn(reason, done.output)
        self.assertFalse(self.stored(filename))

    # -- uv -------------------------------------------------------------------------

    def test_uv_publishes_attested(self):
        """uv sends the attestation beside the file; pypid verifies, keeps and serves it."""
        dist = make_wheel("widgets", "1.0")
        paths, made = self.dist_with(dist)
        done = self.clients.uv_publish(self.daemon, paths, check=False)
        self.assertEqual(done.returncode, 0, done.output)
        resp = self.provenance(dist[0])
        self.assertEqual(resp.status, 200, resp.body)
        self.assertEqual(resp.header("content-type"), INTEGRITY_TYPE)
        [bundle] = resp.json()["attestation_bundles"]
        self.assertEqual(bundle["attestations"], [made])
        self.assertEqual((bundle["publisher"]["kind"], bundle["publisher"]["repository"],
                          bundle["publisher"]["workflow"]),
                         ("GitHub", "acme/widgets", "release.yml"))

    def test_uv_refusals(self):
        """Each bad attestation is refused with its reason, which uv prints; nothing is stored."""
        cases = (
            ("another file", dict(attestation_of="widgets-9.0-py3-none-any.whl"),
             "the statement is for another file"),
            ("another hash", dict(data=b"other bytes"), "the statement names another sha256"),
            ("untrusted", dict(sigstore=SIGSTORE.untrusted()), "does not verify"),
            ("wrong workflow", dict(claims=github_claims(workflow="nightly.yml")),
             "its workflow_ref is not the one wanted"),
        )
        for i, (label, kwargs, reason) in enumerate(cases):
            dist = make_wheel("widgets", f"2.{i}")
            paths, _ = self.dist_with(dist, **kwargs)
            done = self.clients.uv_publish(self.daemon, paths, check=False)
            with self.subTest(label):
                self.assert_refused(done, dist[0], reason)

    def test_uv_tampered_signature(self):
        dist = make_wheel("widgets", "3.0")
        paths, made = self.dist_with(dist)
        signature = bytearray(base64.b64decode(made["envelope"]["signature"]))
        signature[-3] ^= 1
        made["envelope"]["signature"] = base64.b64encode(bytes(signature)).decode()
        with open(paths[1], "w") as f:
            json.dump(made, f)
        done = self.clients.uv_publish(self.daemon, paths, check=False)
        self.assert_refused(done, dist[0], "does not verify")

    def test_uv_no_attestations_still_publishes(self):
        """The way out the refusals name: uv publish --no-attestations."""
        dist = make_wheel("widgets", "4.0")
        paths, _ = self.dist_with(dist, claims=github_claims(workflow="nightly.yml"))
        done = self.clients.uv_publish(self.daemon, paths, "--no-attestations", check=False)
        self.assertEqual(done.returncode, 0, done.output)
        self.assertTrue(self.stored(dist[0]))
        self.assertEqual(self.provenance(dist[0], "4.0").status, 404)

    # -- twine ----------------------------------------------------------------------

    def test_twine_publishes_attested(self):
        dist = make_sdist("widgets", "5.0")
        paths, made = self.dist_with(dist)
        done = self.clients.twine_upload(self.daemon, paths, "--attestations", check=False)
        self.assertEqual(done.returncode, 0, done.output)
        resp = self.provenance(dist[0], "5.0")
        self.assertEqual(resp.status, 200, resp.body)
        self.assertEqual(resp.json()["attestation_bundles"][0]["attestations"], [made])

    def test_twine_refused(self):
        """twine shows the reason pypid gives in its status line."""
        dist = make_sdist("widgets", "6.0")
        paths, _ = self.dist_with(dist, data=b"other bytes")
        done = self.clients.twine_upload(self.daemon, paths, "--attestations", check=False)
        self.assert_refused(done, dist[0], "the statement names another sha256")

    def test_no_publisher_for_project(self):
        """A project no [publishers] rule names: refused, with the way out."""
        dist = make_wheel("gadgets", "1.0")
        paths, _ = self.dist_with(dist)
        done = self.clients.uv_publish(self.daemon, paths, check=False)
        self.assertNotEqual(done.returncode, 0, done.output)
        self.assertIn("no publisher may sign for gadgets", done.output)
        self.assertFalse(self.stored(dist[0], "gadgets"))
