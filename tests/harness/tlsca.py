"""
A throwaway certificate authority for the TLS tests, made with C{cryptography}.

L{TestCA} makes a root and an intermediate CA in a folder, and issues server
certificates for C{127.0.0.1} and C{localhost} signed by the intermediate, so
a client that trusts only the root can verify the server only when the
server sends the whole chain.  Everything is written as PEM files; nothing
here is fit for anything but tests.
"""

import datetime
import ipaddress
import os

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: Hosts every server certificate is valid for.
HOSTS = ("localhost", "127.0.0.1")


def new_key(kind="rsa"):
    """A new private key: C{"rsa"} (2048 bits) or C{"ec"} (P-256)."""
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"unknown key kind {kind!r}")


def key_pem(key):
    """A private key as unencrypted PKCS#8 PEM bytes."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def certificate_pem(certificate):
    """A certificate as PEM bytes."""
    return certificate.public_bytes(serialization.Encoding.PEM)


def write(path, data, mode=0o600):
    """Write bytes to C{path} (replacing it at once, as certbot does); return the path."""
    temporary = path + ".new"
    with open(temporary, "wb") as f:
        f.write(data)
    os.chmod(temporary, mode)
    os.replace(temporary, path)
    return path


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pypid tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(hosts):
    entries = []
    for host in hosts:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            entries.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(entries)


@attrs.frozen
class ServerFiles:
    """The PEM files of one issued server certificate."""

    certificate: str
    key: str
    chain: str
    serial: int
    #: the certificate file with the chain appended (certbot's fullchain.pem)
    fullchain: str


class TestCA:
    """
    A root CA and an intermediate CA, written into C{folder}.

    @ivar root_path: the root certificate, the one clients trust (C{--cert}).
    @ivar chain_path: the intermediate certificate, the chain a server sends.
    """

    def __init__(self, folder):
        self.folder = os.path.abspath(folder)
        os.makedirs(self.folder, exist_ok=True)
        self._now = datetime.datetime.now(datetime.UTC)
        self.root_key = new_key("ec")
        self.root = self._sign(_name("pypid test root CA"), self.root_key.public_key(),
                               _name("pypid test root CA"), self.root_key, ca=True)
        self.intermediate_key = new_key("ec")
        self.intermediate = self._sign(_name("pypid test intermediate CA"),
                                       self.intermediate_key.public_key(), self.root.subject,
                                       self.root_key, ca=True, path_length=0)
        self.root_path = write(os.path.join(self.folder, "root.pem"),
                               certificate_pem(self.root), 0o644)
        self.chain_path = write(os.path.join(self.folder, "intermediate.pem"),
                                certificate_pem(self.intermediate), 0o644)

    def _sign(self, subject, public_key, issuer, signing_key, ca=False, path_length=None,
              hosts=(), serial=None, valid=None):
        start, end = valid or (self._now - datetime.timedelta(hours=1),
                               self._now + datetime.timedelta(days=30))
        builder = (x509.CertificateBuilder()
                   .subject_name(subject)
                   .issuer_name(issuer)
                   .public_key(public_key)
                   .serial_number(serial or x509.random_serial_number())
                   .not_valid_before(start)
                   .not_valid_after(end)
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length),
                                  critical=True))
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(digital_signature=True, content_commitment=False,
                              key_encipherment=False, data_encipherment=False,
                              key_agreement=False, key_cert_sign=True, crl_sign=True,
                              encipher_only=False, decipher_only=False), critical=True)
        else:
            builder = (builder
                       .add_extension(_san(hosts), critical=False)
                       .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                                      critical=False))
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key),
                                        critical=False)
        return builder.sign(signing_key, hashes.SHA256())

    def issue(self, name="server", kind="rsa", hosts=HOSTS, serial=None, folder=None,
              valid=None):
        """
        Issue a server certificate signed by the intermediate and write
        C{<name>.crt}, C{<name>.key} and C{<name>.fullchain} into C{folder}
        (default: the CA's).

        @param kind: the key: C{"rsa"} (so that RSA key exchange would be
            possible if the server allowed it) or C{"ec"}.
        @param valid: C{(not_before, not_after)}, aware datetimes; by
            default from an hour ago for 30 days.
        @rtype: L{ServerFiles}
        """
        key = new_key(kind)
        certificate = self._sign(_name(hosts[0]), key.public_key(), self.intermediate.subject,
                                 self.intermediate_key, hosts=hosts, serial=serial,
                                 valid=valid)
        folder = os.path.abspath(folder or self.folder)
        os.makedirs(folder, exist_ok=True)
        base = os.path.join(folder, name)
        return ServerFiles(
            certificate=write(base + ".crt", certificate_pem(certificate), 0o644),
            key=write(base + ".key", key_pem(key)),
            chain=self.chain_path,
            serial=certificate.serial_number,
            fullchain=write(base + ".fullchain",
                            certificate_pem(certificate) + certificate_pem(self.intermediate),
                            0o644),
        )

    def stray_key(self, name="stray", kind="rsa", folder=None):
        """Write a private key that belongs to no certificate; return its path."""
        folder = os.path.abspath(folder or self.folder)
        os.makedirs(folder, exist_ok=True)
        return write(os.path.join(folder, name + ".key"), key_pem(new_key(kind)))


def serial_of(der_or_pem):
    """The serial number of a certificate given as DER or PEM bytes."""
    if der_or_pem.lstrip().startswith(b"-----"):
        return x509.load_pem_x509_certificate(der_or_pem).serial_number
    return x509.load_der_x509_certificate(der_or_pem).serial_number
