"""
C{pypid-admin tls}: a private CA and a server certificate that every
client accepts.

A certificate made the usual way for a test (C{openssl req -x509}) is
accepted by curl and pip but refused by uv (rustls, through webpki): one
self-signed certificate is both a CA and the server's (C{CaUsedAsEndEntity}).
What every client takes is two certificates: a CA (C{ca.pem}, which
clients are given; kept, so a server certificate issued again is still
trusted), and the server's (C{server.pem}), its names in
C{subjectAltName} (no client reads the common name any more).

The C{listen} lines it prints keep the address of the lines they replace:
a server on this machine only is not opened to the network by the recipe.
Both keys are ECDSA P-256: small and fast, and accepted by every client
pypid is tested with.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pypid.cli.server_client import CliError
from pypid.config.server_settings import (
    HTTPS,
    SERVER_KEYS,
    listen_interface,
    on_network,
    parse_listen_address,
)

if TYPE_CHECKING:
    from pypid.config import Config

#: The port of the printed C{https:} lines.
HTTPS_PORT = 8443
#: How long the CA is valid.
CA_DAYS = 3650
#: How long a server certificate is valid: 397 days, the most Apple's
#: clients and browsers accept of a certificate.
SERVER_DAYS = 397

CA, CA_KEY, SERVER, SERVER_KEY = "ca.pem", "ca-key.pem", "server.pem", "server-key.pem"


@attrs.frozen
class Made:
    """What L{make} wrote."""

    folder: str
    #: whether the CA was made now (otherwise the one in the folder was used)
    new_ca: bool
    hosts: tuple[str, ...]
    not_after: datetime.datetime

    def path(self, name: str) -> str:
        """The path of one of the files."""
        return os.path.join(self.folder, name)


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _alt_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _check_host(host: str) -> str:
    """A host name or IP address for the certificate, lowercased; L{CliError} otherwise."""
    host = host.strip().lower()
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    labels = host.split(".")
    if not host or len(host) > 253 or not all(
            label and len(label) <= 63 and label.isascii()
            and all(c.isalnum() or c == "-" for c in label.removeprefix("*"))
            for label in labels):
        raise CliError(f"--host {host!r}: expected a host name or an IP address")
    return host


def _write(path: str, data: bytes, private: bool) -> None:
    """Write C{data} at C{path} whole (a private key readable by its owner only)."""
    temporary = path + ".new"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(temporary, path)


def _builder(subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey,
             now: datetime.datetime, not_after: datetime.datetime,
             ca: bool) -> x509.CertificateBuilder:
    """What a CA's certificate and a server's share: a CA signs certificates only."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None),
                       critical=True)
        .add_extension(x509.KeyUsage(digital_signature=not ca, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                                     encipher_only=False, decipher_only=False), critical=True))


def _new_ca(now: datetime.datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name("pypid private CA")
    certificate = (
        _builder(subject, subject, key, now, now + datetime.timedelta(days=CA_DAYS), ca=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256()))
    return key, certificate


def _write_pair(folder: str, name: str, key_name: str, certificate: x509.Certificate,
                key: ec.EllipticCurvePrivateKey) -> None:
    """Write a key (readable by its owner only), then its certificate."""
    _write(os.path.join(folder, key_name), key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()), private=True)
    _write(os.path.join(folder, name), certificate.public_bytes(serialization.Encoding.PEM),
           private=False)


def _read_ca(folder: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None:
    """The CA kept in C{folder}, or L{None} when there is none."""
    paths = os.path.join(folder, CA), os.path.join(folder, CA_KEY)
    present = [os.path.exists(p) for p in paths]
    if not any(present):
        return None
    if not all(present):
        raise CliError(f"{folder} holds one of {CA} and {CA_KEY} without the other: "
                       "remove it, or give another --out")
    try:
        with open(paths[0], "rb") as f:
            certificate = x509.load_pem_x509_certificate(f.read())
        with open(paths[1], "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise CliError(f"cannot read the CA in {folder}: {e}")
    public = certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(
            public, ec.EllipticCurvePublicKey) or \
            key.public_key().public_numbers() != public.public_numbers():
        raise CliError(f"{paths[1]} is not the key of {paths[0]}")
    return key, certificate


def make(folder: str, hosts: Sequence[str], now: datetime.datetime | None = None) -> Made:
    """
    Write a server certificate for C{hosts} into C{folder}, issued by the CA kept there or new.
    """
    if not hosts:
        raise CliError("give the server's names: --host pypi.internal.example (and its "
                       "IP addresses, if clients use them)")
    names = tuple(dict.fromkeys(_check_host(h) for h in hosts))
    now = now or datetime.datetime.now(datetime.UTC)
    os.makedirs(folder, exist_ok=True)
    kept = _read_ca(folder)
    if kept is None:
        ca_key, ca = _new_ca(now)
        _write_pair(folder, CA, CA_KEY, ca, ca_key)
    else:
        ca_key, ca = kept
    key = ec.generate_private_key(ec.SECP256R1())
    not_after = min(now + datetime.timedelta(days=SERVER_DAYS), ca.not_valid_after_utc)
    certificate = (
        _builder(_name(names[0]), ca.subject, key, now, not_after, ca=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([_alt_name(h) for h in names]),
                       critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256()))
    _write_pair(folder, SERVER, SERVER_KEY, certificate, key)
    return Made(os.path.abspath(folder), kept is None, names, not_after)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The C{tls} sub-command."""
    tls = commands.add_parser(
        "tls", help="make a private CA and a server certificate that pip, uv and twine accept")
    tls.add_argument("--out", default="tls", metavar="DIR",
                     help="the folder to write them in (tls); a CA already there is kept")
    tls.add_argument("--host", action="append", default=[], metavar="NAME",
                     help="a name or IP address clients reach the server by (repeat for more)")


def https_lines(listen: Sequence[str]) -> list[str]:
    """
    The C{https:} lines that replace the C{[pypid] listen} lines C{listen},
    each on the interface of a line it replaces (so a server on this machine
    only stays so; loopback for lines on no address), on port L{HTTPS_PORT}.
    An address of every IPv4 (or IPv6) address takes the place of the others.
    """
    found = [listen_interface(line) for line in listen]
    interfaces = list(dict.fromkeys(i for i in found if i is not None)) or ["127.0.0.1"]
    for every in ("0.0.0.0", "::"):
        if every in interfaces:
            interfaces = [i for i in interfaces if i == every or (":" in i) != (":" in every)]
    return [f"https:{HTTPS_PORT}:interface=" + interface.replace(":", "\\:")
            for interface in interfaces]


def _reach(lines: Sequence[str]) -> str:
    """What the C{https:} C{lines} open, said plainly: the network, or this machine only."""
    network = [line for line in lines if on_network(line)]
    if network:
        return (f"{' and '.join(network)} opens the server to the network: every machine that "
                "reaches this one reaches it. Give admin a new password first (pypid-passwd) "
                "if it still has the shipped one.\n")
    return ("Only this machine reaches it. To serve other machines, write interface=0.0.0.0 "
            "(every IPv4 address): that opens the server to the network, so give admin a new "
            "password first (pypid-passwd).\n")


def _served_over_https(listen: Sequence[str]) -> bool:
    """Whether the C{[pypid] listen} lines C{listen} serve HTTPS already (an C{https:} line)."""
    return any(parse_listen_address(line).kind == HTTPS for line in listen)


def _https_url(host: str, port: int) -> str:
    """The server's https URL on C{host}, an IPv6 address in brackets."""
    shown = f"[{host}]" if ":" in host else host
    return f"https://{shown}:{port}/"


def _same_file(a: str | None, b: str) -> bool:
    """Whether C{a} names the file C{b} (through links too: C{/etc/pypid/tls} may be one)."""
    return a is not None and os.path.realpath(a) == os.path.realpath(b)


def _serve_new(made: Made, listen: Sequence[str], source: str | None) -> tuple[str, str]:
    """How to serve the files on a server of plain HTTP, and the URL clients use."""
    url = _https_url(made.hosts[0], HTTPS_PORT)
    lines = https_lines(listen)
    replaced = " ".join(listen)
    where = (f"Serve it ({source}): in place of listen = {replaced}" if source is not None
             else f"Serve it: in place of the embedded default listen = {replaced} (no "
                  "--config given)")
    text = (
        f"{where}, the same interface over HTTPS, on port {HTTPS_PORT}:\n\n"
        "  [pypid]\n"
        + "".join(f"  listen = {line}\n" if at == 0 else f"      {line}\n"
                  for at, line in enumerate(lines)) +
        f"  base_url = {url}\n"
        "  [tls]\n"
        f"  certificate = {made.path(SERVER)}\n"
        f"  key = {made.path(SERVER_KEY)}\n\n"
        + _reach(lines))
    return text, url


def _serve_renewed(made: Made, config: Config) -> tuple[str, str]:
    """How to serve the files on a server of HTTPS already, and the URL clients use."""
    listen = config.server.listen
    port = next(address.port for address in map(parse_listen_address, listen)
                if address.kind == HTTPS and address.port is not None)
    url = config.server.base_url or _https_url(made.hosts[0], port)
    url = url.rstrip("/") + "/"
    https = " and ".join(line for line in listen if parse_listen_address(line).kind == HTTPS)
    served = f"{config.source} serves HTTPS already ({https}): keep its listen lines"
    tls = config.tls
    if _same_file(tls.certificate, made.path(SERVER)) and \
            _same_file(tls.key, made.path(SERVER_KEY)):
        return (f"{served}. Load the new certificate: send the server SIGHUP (kill -HUP, "
                "or systemctl kill -s HUP pypid), or restart it.\n"), url
    return (f"{served}, and serve the new files in place of [tls] certificate = "
            f"{tls.certificate}:\n\n"
            "  [tls]\n"
            f"  certificate = {made.path(SERVER)}\n"
            f"  key = {made.path(SERVER_KEY)}\n"
            + ("  chain =\n" if tls.chain else "") +
            "\nthen restart the server (a reload refuses new [tls] paths).\n"), url


def run(options: argparse.Namespace, out: TextIO, config: Config | None = None) -> int:
    """Make the files, and say how to use them on the server of C{config} (or the default)."""
    made = make(options.out, options.host)
    ca = made.path(CA)
    if config is None:
        serve, url = _serve_new(made, (SERVER_KEYS["listen"][0],), None)
    elif _served_over_https(config.server.listen):
        serve, url = _serve_renewed(made, config)
    else:
        serve, url = _serve_new(made, config.server.listen, config.source)
    out.write(
        ("made a new CA: " if made.new_ca else "kept the CA: ") + ca + "\n"
        f"made a certificate for {', '.join(made.hosts)}, valid until "
        f"{made.not_after:%Y-%m-%d}: {made.path(SERVER)}\n\n"
        + serve + "\n"
        f"Give clients {ca} (never {made.path(CA_KEY)}):\n\n"
        f"  pip install --cert {ca} --index-url {url}simple/ PROJECT\n"
        f"  SSL_CERT_FILE={ca} uv pip install --index-url {url}simple/ PROJECT\n"
        f"  twine upload --cert {ca} --repository-url {url} dist/*\n"
        f"  pypid-token --cert {ca} --server {url} ...\n\n"
        "Where REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE is set (a company's CA bundle), pip "
        f"and twine ignore --cert: run them as REQUESTS_CA_BUNDLE={ca} pip ... (or twine "
        "...) instead.\n\n"
        "Before the certificate ends, run this again with --config FILE: the CA is kept, so "
        "clients need nothing new.\n")
    return 0
