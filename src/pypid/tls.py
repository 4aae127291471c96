"""
Native HTTPS: the certificate material and TLS policy of the C{https:}
listeners.

L{ServerTLS} reads the C{[tls]} files, checks them against each other and
builds the pyOpenSSL context each new connection uses: TLS 1.2 at least,
forward-secret AEAD ciphers only, no renegotiation or compression, the
whole chain sent; Twisted's TLS layer asks it for each new connection (one
TLS stack, the one Twisted tests, for the server and the outbound calls).
L{ServerTLS.reload} (at C{SIGHUP}) builds a new context in the I/O pool; a
connection keeps the context it started with, and files that cannot be
used leave the old one in service.

Only regular files of at most L{MAX_FILE_SIZE} are read: a FIFO would block
the read, and a device or a huge file would fill the memory. A certificate
out of date is refused unless C{[tls] allow_expired}: every client refuses
it, so taking it would only replace a certificate that works. A machine's
workers build theirs from the texts its supervisor took (L{held_texts}), so
a worker started again serves what the others serve.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping

import attrs
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
    PrivateKeyTypes,
    PublicKeyTypes,
)
from OpenSSL import SSL
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from pypid.jobs.run import Run

log = Logger()

#: The TLS 1.2 cipher suites, in the server's order of preference: ECDHE key
#: exchange (forward secrecy) with an AEAD cipher. Set explicitly: Twisted's
#: defaults still allow CBC suites such as C{AES128-SHA}. DHE suites are left
#: out: they need DH parameters, and every client pypid serves speaks ECDHE.
CIPHERS = ":".join([
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
])

#: The TLS 1.3 cipher suites: all of TLS 1.3's are AEAD with forward secrecy.
TLS13_CIPHERSUITES = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"


#: The private keys a server certificate may have, those pyOpenSSL takes.
ServerKey = (rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | dsa.DSAPrivateKey
             | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey)

#: The largest TLS file read: a certificate with its chain is a few KiB, so
#: a bigger file is a mistake (a whole CA bundle, a disk image), not one
#: to hold in memory.
MAX_FILE_SIZE = 1 << 20

#: What a path that is not a regular file is, for the message.
_NOT_REGULAR = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                (stat.S_ISSOCK, "a socket"))


class TLSError(Exception):
    """The TLS files cannot be used; the message is one line naming the file."""


def read_file(path: str, what: str) -> bytes:
    """
    The bytes of one of the TLS files (C{what}: C{"certificate"}, ...): a
    regular file of at most L{MAX_FILE_SIZE} bytes. It is opened without
    blocking and checked before it is read, so a FIFO is refused at once.
    """
    def refused(reason: str) -> TLSError:
        return TLSError(f"cannot read the TLS {what} {path}: {reason}")

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        raise refused(e.strerror or str(e)) from None
    data = b""
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((kind for test, kind in _NOT_REGULAR if test(mode)), "a special file")
            raise refused(f"it is {kind}, not a regular file")
        # (one byte more than allowed, to tell a file over it: it may grow after fstat)
        while len(data) <= MAX_FILE_SIZE:
            chunk = os.read(fd, MAX_FILE_SIZE + 1 - len(data))
            if not chunk:
                break
            data += chunk
    except OSError as e:
        raise refused(e.strerror or str(e)) from None
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_SIZE:
        raise refused(f"it is larger than {MAX_FILE_SIZE >> 20} MiB, which no certificate, "
                      "chain or key is")
    return data


@attrs.frozen
class TLSMaterial:
    """A certificate, the chain sent after it, and its private key, checked to match."""

    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    key: ServerKey = attrs.field(repr=False)


def _certificates(path: str, data: bytes, what: str) -> list[x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        certificates = []
    if not certificates:
        hint = (" (it holds a private key: are certificate and key swapped?)"
                if b"PRIVATE KEY-----" in data else "")
        raise TLSError(f"cannot use the TLS {what} {path}: it holds no PEM certificate{hint}")
    return certificates


def _private_key(path: str, data: bytes) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise TLSError(f"cannot use the TLS key {path}: it is encrypted with a passphrase; "
                       "pypid needs the key without one") from None
    except UnsupportedAlgorithm:
        raise TLSError(f"cannot use the TLS key {path}: its key type is not supported") from None
    except ValueError:
        hint = (" (it holds a certificate: are certificate and key swapped?)"
                if b"CERTIFICATE-----" in data else "")
        raise TLSError(f"cannot use the TLS key {path}: it holds no PEM private key{hint}") \
            from None


def _public_bytes(public_key: PublicKeyTypes | CertificatePublicKeyTypes) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


#: C{read(path, what) -> bytes}: how the TLS files are read (L{read_file},
#: or, in a machine's worker, the machine's texts of them: L{held_reader}).
Read = Callable[[str, str], bytes]

#: C{held() -> texts}: the TLS files' texts a machine holds, by path
#: (L{held_texts}); none in a server of one process, which reads the files.
Held = Callable[[], Mapping[str, str]]


def read_material(certificate_path: str, key_path: str,
                  chain_path: str | None = None, read: Read = read_file) -> TLSMaterial:
    """
    Read and check the TLS files. The certificate file may hold the chain
    after the certificate (certbot's C{fullchain.pem}); the chain file, if
    any, is sent after that. A key pyOpenSSL cannot serve with (ML-DSA, say)
    is refused.
    """
    certificates = _certificates(certificate_path, read(certificate_path, "certificate"),
                                 "certificate")
    certificate, chain = certificates[0], certificates[1:]
    if chain_path is not None:
        chain += _certificates(chain_path, read(chain_path, "chain"), "chain")
    key = _private_key(key_path, read(key_path, "key"))
    try:
        matches = _public_bytes(key.public_key()) == _public_bytes(certificate.public_key())
    except (ValueError, UnsupportedAlgorithm):
        matches = False
    if not matches:
        raise TLSError(f"the TLS key {key_path} does not match the certificate "
                       f"{certificate_path}")
    if not isinstance(key, ServerKey):
        # pyOpenSSL raises TypeError for these, not SSL.Error, in make_context.
        raise TLSError(f"cannot use the TLS key {key_path}: its key type is not supported")
    return TLSMaterial(certificate, tuple(chain), key)


def _openssl_reason(error: SSL.Error) -> str:
    """The reasons in a pyOpenSSL error, such as C{ee key too small}."""
    entries = error.args[0] if error.args and isinstance(error.args[0], list) else []
    return "; ".join(str(entry[-1]) for entry in entries if entry) or str(error)


def make_context(material: TLSMaterial,
                 certificate_path: str = "the certificate") -> SSL.Context:
    """
    The server context for L{TLSMaterial}, as the module says; L{TLSError}
    when OpenSSL refuses the certificate or key (too weak a key, say).
    """
    try:
        context = SSL.Context(SSL.TLS_SERVER_METHOD)
        context.set_min_proto_version(SSL.TLS1_2_VERSION)
        context.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_CIPHER_SERVER_PREFERENCE
                            | SSL.OP_NO_RENEGOTIATION)
        context.set_cipher_list(CIPHERS.encode("ascii"))
        # Older pyOpenSSL lacks this; OpenSSL's TLS 1.3 defaults are the same suites.
        set_tls13 = getattr(context, "set_tls13_ciphersuites", None)
        if set_tls13 is not None:
            set_tls13(TLS13_CIPHERSUITES.encode("ascii"))
        context.use_certificate(material.certificate)
        for certificate in material.chain:
            context.add_extra_chain_cert(certificate)
        context.use_privatekey(material.key)
        context.check_privatekey()
    except SSL.Error as e:
        raise TLSError(f"cannot use the TLS certificate {certificate_path}: "
                       f"{_openssl_reason(e)}") from None
    return context


def describe(certificate: x509.Certificate) -> str:
    """A short description of a certificate for the log: its names, serial and expiry."""
    try:
        names = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value
        hosts = [str(n) for n in names.get_values_for_type(x509.DNSName)]
        hosts += [str(n) for n in names.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        hosts = [str(a.value) for a in certificate.subject.get_attributes_for_oid(
            x509.NameOID.COMMON_NAME)]
    return (f"for {', '.join(hosts) or 'no host name'}, serial {certificate.serial_number:x}, "
            f"valid until {certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")


def out_of_date(certificate: x509.Certificate, path: str, now: float) -> str | None:
    """Why no client takes C{certificate} at C{now}, naming C{path}; L{None} when it is valid."""
    start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    if end.timestamp() < now:
        problem = "has expired"
    elif start.timestamp() > now:
        problem = "is not valid yet"
    else:
        return None
    return (f"the TLS certificate {path} {problem}: it is valid from {start:%Y-%m-%d %H:%M} "
            f"to {end:%Y-%m-%d %H:%M} UTC, and clients refuse it")


def servable(certificate: str, key: str, chain: str | None, allow_expired: bool, now: float,
             read: Read = read_file) -> tuple[TLSMaterial, SSL.Context]:
    """
    The TLS files' material and context; out of date at C{now}, refused unless C{allow_expired}.
    """
    material = read_material(certificate, key, chain, read)
    problem = out_of_date(material.certificate, certificate, now)
    if problem is not None and not allow_expired:
        raise TLSError(f"{problem} (renew it, or set [tls] allow_expired = yes to serve "
                       "it anyway)")
    return material, make_context(material, certificate)


def held_texts(certificate: str, key: str, chain: str | None, allow_expired: bool,
               now: float, before: Mapping[str, str]) -> tuple[dict[str, str], str | None]:
    """
    The texts a machine's workers build their TLS context from, by path
    (Latin-1, which keeps every byte): the files as they are now when they can
    be served, else those C{before} held, with the line that says why not.
    """
    taken: dict[str, bytes] = {}

    def read(path: str, what: str) -> bytes:
        taken[path] = read_file(path, what)
        return taken[path]
    try:
        servable(certificate, key, chain, allow_expired, now, read)
    except TLSError as e:
        paths = [certificate, key] + ([chain] if chain is not None else [])
        return {path: before[path] for path in paths if path in before}, str(e)
    return {path: data.decode("latin-1") for path, data in taken.items()}, None


def held_reader(texts: Mapping[str, str]) -> Read:
    """
    The L{Read} of one build in a machine's worker: the machine's text of a
    file (C{texts} taken once a build, so that a certificate and its key are
    of one C{SIGHUP}'s), else the file as it is.
    """
    def read(path: str, what: str) -> bytes:
        text = texts.get(path)
        return read_file(path, what) if text is None else text.encode("latin-1")
    return read


@implementer(IOpenSSLServerConnectionCreator)
class ServerTLS:
    """
    The TLS side of every C{https:} listener: one context built from the
    C{[tls]} files, replaced as a whole on reload; C{material} in use.
    """

    def __init__(self, certificate: str, key: str, chain: str | None, clock: IReactorTime,
                 run: Run, allow_expired: bool = False, held: Held = dict) -> None:
        """
        @param run: runs the reload's reads off the reactor's thread.
        @param held: the files' texts a machine's worker builds from (asked once
            a build: L{held_reader}); none, the files as they are.
        """
        self.certificate_path = certificate
        self.key_path = key
        self.chain_path = chain
        self._clock = clock
        self._run = run
        self._allow_expired = allow_expired
        self._held = held
        self._context: SSL.Context | None = None
        self._reloads = 0
        self.material: TLSMaterial | None = None

    @property
    def context(self) -> SSL.Context | None:
        """The pyOpenSSL context new connections get, or L{None} before L{load}."""
        return self._context

    def _build(self, now: float) -> tuple[TLSMaterial, SSL.Context]:
        """Read the files and build their context (blocking: the pool's work at a reload)."""
        return servable(self.certificate_path, self.key_path, self.chain_path,
                        self._allow_expired, now, held_reader(self._held()))

    def _install(self, built: tuple[TLSMaterial, SSL.Context], how: str) -> None:
        material, self._context = built
        self.material = material
        log.info("{how} the TLS certificate {path}: {description}", how=how,
                 path=self.certificate_path, description=describe(material.certificate))
        problem = out_of_date(material.certificate, self.certificate_path,
                              self._clock.seconds())
        if problem is not None and self._allow_expired:
            log.warn("Serving it anyway ([tls] allow_expired = yes): {problem}",
                     problem=problem)

    def load(self) -> None:
        """
        Read the files and build the context, unless done: as the first C{https:} listener opens.
        """
        if self._context is None:
            self._install(self._build(self._clock.seconds()), "Using")

    def reload(self) -> Deferred[bool]:
        """
        Build a new context from the files as they are now, in the pool, and
        install it on the reactor's thread unless a later reload began meanwhile;
        files that cannot be used are logged in one line and the old context
        stays. The L{Deferred} fires with whether the new files are in use.
        """
        if self._context is None:
            # (not listening yet: the listener loads them when it starts)
            return succeed(False)
        self._reloads += 1
        this = self._reloads
        built = self._run(self._build, self._clock.seconds())

        def install(built: tuple[TLSMaterial, SSL.Context]) -> bool:
            if this != self._reloads:
                return False
            self._install(built, "Reloaded")
            return True

        def refuse(failure: Failure) -> bool:
            if this != self._reloads:
                return False
            if failure.check(TLSError):
                log.warn("Cannot reload TLS, still using the certificate loaded before: "
                         "{error}", error=str(failure.value))
            else:
                log.failure("Cannot reload TLS, still using the certificate loaded before",
                            failure)
            return False
        return built.addCallbacks(install, refuse)

    def serverConnectionForTLS(self, tlsProtocol: Protocol) -> SSL.Connection:
        """A new server-side connection on the current context."""
        # The listener loads the files before it opens (pyOpenSSL would raise TypeError too).
        assert self._context is not None, "ServerTLS.load() not called"
        return SSL.Connection(self._context, None)
