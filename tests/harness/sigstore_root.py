"""
A Sigstore instance made by the tests: its own Fulcio-like certificate
authority, certificate-transparency log key and Rekor key, its trust root
file in Sigstore's format, and PEP 740 attestations signed through it that
sigstore's own verifier (C{sigstore.verify.Verifier.verify_dsse}, 4.5)
accepts offline, as it accepts the public-good instance's: a leaf
certificate with the Fulcio extensions the test asks for and an embedded
SCT (RFC 6962, signed over the precertificate), a DSSE envelope over an
in-toto statement, and a Rekor v1 C{dsse 0.0.1} entry with its signed
entry timestamp and a one-leaf inclusion proof under a signed checkpoint.

So pypid's tests need no network and no attestation made elsewhere (those
name the real instance's hosts in their signed checkpoints); every name
here is a C{.test} one. Making an attestation takes about 2 ms (a leaf
key, two certificate signatures, four ECDSA signatures).
"""

import base64
import datetime
import hashlib
import json
import os
import struct

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier
from pypi_attestations import AttestationType

#: PEP 740's predicate types, as the library of the format names them.
PUBLISH_V1 = AttestationType.PYPI_PUBLISH_V1.value
SLSA_PROVENANCE_V1 = AttestationType.SLSA_PROVENANCE_V1.value
#: Both, as the upload verifier passes them to check_statement.
PREDICATE_TYPES = frozenset(t.value for t in AttestationType)

PAYLOAD_TYPE = "application/vnd.in-toto+json"
FULCIO_ARC = "1.3.6.1.4.1.57264.1."
SCT_OID = ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
EPOCH = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
P256 = "PKIX_ECDSA_P256_SHA_256"


def _b64(data):
    return base64.b64encode(data).decode("ascii")


def _spki(key):
    return key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def _sign(key, data):
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


def _der_length(n):
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def der_utf8(text):
    """A DER UTF8String, as Fulcio writes its extensions (.8 on)."""
    data = text.encode("utf-8")
    return b"\x0c" + _der_length(len(data)) + data


def _der_octets(data):
    return b"\x04" + _der_length(len(data)) + data


def _pae(payload_type, payload):
    return b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type.encode(), len(payload),
                                     payload)


def _time(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class TestSigstore:
    """
    One test Sigstore instance (its keys made at construction: make one
    per test module). L{untrusted} gives another, whose attestations this
    one's trust root refuses.
    """

    def __init__(self, origin="rekor.sigstore.test"):
        self.origin = origin
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ct_key = ec.generate_private_key(ec.SECP256R1())
        self.rekor_key = ec.generate_private_key(ec.SECP256R1())
        self.ct_id = hashlib.sha256(_spki(self.ct_key)).digest()
        self.rekor_id = hashlib.sha256(_spki(self.rekor_key)).digest()
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pypid tests"),
                          x509.NameAttribute(NameOID.COMMON_NAME, f"fulcio of {origin}")])
        self.ca_cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(self.ca_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(EPOCH).not_valid_after(EPOCH + datetime.timedelta(days=365 * 30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.ca_key.public_key()),
                           critical=False)
            .sign(self.ca_key, hashes.SHA256()))
        self.index = 0

    def untrusted(self):
        """Another instance: its attestations do not chain to this one's root."""
        return TestSigstore(self.origin)

    # -- the trust root --------------------------------------------------------------

    def trusted_root(self):
        """This instance's C{trusted_root.json} (Sigstore's trust root format)."""
        start = {"start": _time(EPOCH)}

        def log(url, key, key_id):
            return {"baseUrl": url, "hashAlgorithm": "SHA2_256",
                    "publicKey": {"rawBytes": _b64(_spki(key)), "keyDetails": P256,
                                  "validFor": start},
                    "logId": {"keyId": _b64(key_id)}}
        root = {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [log(f"https://{self.origin}", self.rekor_key, self.rekor_id)],
            "certificateAuthorities": [{
                "subject": {"organization": "pypid tests", "commonName": "fulcio"},
                "uri": "https://fulcio.sigstore.test",
                "certChain": {"certificates": [{"rawBytes": _b64(
                    self.ca_cert.public_bytes(serialization.Encoding.DER))}]},
                "validFor": start}],
            "ctlogs": [log("https://ct.sigstore.test", self.ct_key, self.ct_id)],
            "timestampAuthorities": [],
        }
        return json.dumps(root, indent=1).encode()

    def write_trusted_root(self, path):
        """Write L{trusted_root} to C{path}; return C{path}."""
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "wb") as f:
            f.write(self.trusted_root())
        return path

    # -- attestations -----------------------------------------------------------------

    def attest(self, filename, sha256, *, claims, predicate_type=PUBLISH_V1, subjects=None,
               san=None, when=None):
        """
        A PEP 740 attestation of C{filename} (C{sha256}), its certificate
        carrying C{claims} (Fulcio extension values by their OID's last
        number, as text: C{{"8": issuer, "12": repository URI, ...}}).

        @param subjects: the statement's subjects instead of the file.
        @param san: the certificate's subject alternative name (an email
            when it holds C{@}), by default C{claims["9"]}.
        @param when: the signing time (an aware datetime), by default now.
        """
        when = when or datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        statement = json.dumps({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": subjects if subjects is not None else [
                {"name": filename, "digest": {"sha256": sha256}}],
            "predicateType": predicate_type, "predicate": None,
        }, separators=(",", ":")).encode()
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._leaf(key, claims, san or claims.get("9", "https://ci.sigstore.test/"),
                          when)
        signature = _sign(key, _pae(PAYLOAD_TYPE, statement))
        entry = self._log_entry(cert, statement, signature, int(when.timestamp()))
        return {
            "version": 1,
            "verification_material": {
                "certificate": _b64(cert.public_bytes(serialization.Encoding.DER)),
                "transparency_entries": [entry],
            },
            "envelope": {"statement": _b64(statement), "signature": _b64(signature)},
        }

    def _leaf(self, key, claims, san, when):
        """The signing certificate, with an SCT of this instance's CT log embedded."""
        if "@" in san:
            names = [x509.RFC822Name(san)]
        else:
            names = [x509.UniformResourceIdentifier(san)]
        builder = (
            x509.CertificateBuilder().subject_name(x509.Name([]))
            .issuer_name(self.ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(when - datetime.timedelta(seconds=30))
            .not_valid_after(when + datetime.timedelta(minutes=10))
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                         False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self.ca_key.public_key()), critical=False)
            .add_extension(x509.SubjectAlternativeName(names), critical=True))
        for number, value in sorted(claims.items(), key=lambda item: int(item[0])):
            raw = value.encode() if int(number) < 8 else der_utf8(value)
            builder = builder.add_extension(
                x509.UnrecognizedExtension(ObjectIdentifier(FULCIO_ARC + str(number)), raw),
                critical=False)
        timestamp = int(when.timestamp() * 1000)
        # The SCT signs the precertificate (the certificate without its SCT
        # list): made once with a placeholder to read that, then for good.
        placeholder = builder.add_extension(
            x509.UnrecognizedExtension(SCT_OID, _der_octets(self._sct_list(timestamp, b"\0"))),
            critical=False).sign(self.ca_key, hashes.SHA256())
        issuer_id = hashlib.sha256(_spki(self.ca_key)).digest()
        tbs = placeholder.tbs_precertificate_bytes
        signed_entry = issuer_id + struct.pack("!I", len(tbs))[1:] + tbs
        signed = struct.pack("!BBQH", 0, 0, timestamp, 1) + signed_entry + struct.pack("!H", 0)
        sct_list = self._sct_list(timestamp, _sign(self.ct_key, signed))
        return builder.add_extension(x509.UnrecognizedExtension(SCT_OID, _der_octets(sct_list)),
                                     critical=False).sign(self.ca_key, hashes.SHA256())

    def _sct_list(self, timestamp, signature):
        """An RFC 6962 SignedCertificateTimestampList of one SCT (ECDSA with SHA-256)."""
        sct = (b"\0" + self.ct_id + struct.pack("!Q", timestamp) + struct.pack("!H", 0)
               + bytes([4, 3]) + struct.pack("!H", len(signature)) + signature)
        item = struct.pack("!H", len(sct)) + sct
        return struct.pack("!H", len(item)) + item

    def _log_entry(self, cert, statement, signature, integrated_time):
        """The Rekor v1 C{dsse 0.0.1} entry of an envelope, promised and proven included."""
        pem = cert.public_bytes(serialization.Encoding.PEM)
        envelope = json.dumps({"payload": _b64(statement), "payloadType": PAYLOAD_TYPE,
                               "signatures": [{"sig": _b64(signature)}]}).encode()
        body = json.dumps({
            "apiVersion": "0.0.1", "kind": "dsse",
            "spec": {
                "envelopeHash": {"algorithm": "sha256",
                                 "value": hashlib.sha256(envelope).hexdigest()},
                "payloadHash": {"algorithm": "sha256",
                                "value": hashlib.sha256(statement).hexdigest()},
                "signatures": [{"signature": _b64(signature), "verifier": _b64(pem)}],
            },
        }, sort_keys=True, separators=(",", ":")).encode()
        index = self.index
        self.index += 1
        promise = json.dumps({"body": _b64(body), "integratedTime": integrated_time,
                              "logID": self.rekor_id.hex(), "logIndex": index},
                             sort_keys=True, separators=(",", ":")).encode()
        root = hashlib.sha256(b"\0" + body).digest()
        note = f"{self.origin} - 1\n1\n{_b64(root)}\n"
        note_signature = _b64(self.rekor_id[:4] + _sign(self.rekor_key, note.encode()))
        return {
            "logIndex": str(index),
            "logId": {"keyId": _b64(self.rekor_id)},
            "kindVersion": {"kind": "dsse", "version": "0.0.1"},
            "integratedTime": str(integrated_time),
            "inclusionPromise": {"signedEntryTimestamp": _b64(_sign(self.rekor_key, promise))},
            "inclusionProof": {
                "logIndex": "0", "rootHash": _b64(root), "treeSize": "1", "hashes": [],
                "checkpoint": {"envelope": note + f"\n\u2014 {self.origin} {note_signature}\n"},
            },
            "canonicalizedBody": _b64(body),
        }


def github_claims(repository="acme/widgets", workflow="release.yml", ref="refs/tags/v1.0",
                  sha="a" * 40, run="1", attempt="1", environment=None,
                  issuer="https://token.ci.test", host="https://git.ci.test"):
    """
    The Fulcio extensions of a GitHub-Actions-like job (the shapes GitHub's
    certificates have; every host a C{.test} one).
    """
    workflow_uri = f"{host}/{repository}/.github/workflows/{workflow}@{ref}"
    claims = {"8": issuer, "9": workflow_uri, "10": sha, "12": f"{host}/{repository}",
              "13": sha, "14": ref, "18": workflow_uri, "19": sha, "20": "push",
              "21": f"{host}/{repository}/actions/runs/{run}/attempts/{attempt}"}
    if environment is not None:
        claims["23"] = environment
    return claims


def gitlab_claims(project="group/project", config=".gitlab-ci.yml", ref="refs/heads/main",
                  sha="b" * 40, job="7", issuer="https://gitlab.ci.test",
                  host="https://gitlab.ci.test"):
    """The Fulcio extensions of a GitLab-CI-like job."""
    config_uri = f"{host}/{project}//{config}@{ref}"
    return {"8": issuer, "9": config_uri, "12": f"{host}/{project}", "13": sha, "14": ref,
            "18": config_uri, "20": "push", "21": f"{host}/{project}/-/jobs/{job}"}
