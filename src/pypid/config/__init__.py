"""
The configuration file: an INI file parsed once into frozen attrs values.

Every section and key is declared here, with its default and its parser, so
that an unknown key, a misspelt section or a bad value stops start-up with a
single line naming the file, the section and the key, and saying what is
allowed.  C{etc/pypid.ini} documents every key for people.

Relative paths are made absolute against the directory the server is started
in, so C{etc/pypid.ini} works from a checkout with C{./var/}.
"""

import configparser
import ipaddress
import math
import os
import re
from collections.abc import Mapping
from types import MappingProxyType
from urllib.parse import urlsplit

import attrs

from pypid.auth.credentials import USER_NAME
from pypid.auth.hashes import check_hash_format


class ConfigError(Exception):
    """The configuration cannot be used; the message is one line for a person."""


@attrs.frozen
class ServerConfig:
    """The C{[pypid]} section."""

    listen: tuple[str, ...]
    base_url: str | None
    snapshot: str
    snapshot_interval: float
    max_upload_size: int
    threads: int
    access_log: str | None
    #: seconds a request's line and headers have to arrive
    header_timeout: float = 30.0
    #: bytes a second a request body must arrive at, at least
    min_upload_rate: int = 1024
    max_connections_per_address: int = 128
    #: PEM CA certificates trusted for outbound HTTPS (S3, upstream) instead
    #: of the system's (a private CA); L{None} for the system's
    ca_bundle: str | None = None


@attrs.frozen
class StorageConfig:
    """The C{[storage]} section."""

    backend: str
    path: str


def _redacted(value):
    """Show whether a secret is set, never the secret itself."""
    return "None" if value is None else "'<hidden>'"


@attrs.frozen
class S3Config:
    """
    The C{[s3]} section: where and how the S3 backend keeps packages.

    Always present, holding the defaults when C{[storage] backend} is not
    C{s3}.  C{secret_key} and C{session_token} never appear in its C{repr}.
    """

    bucket: str
    prefix: str
    region: str
    endpoint_url: str | None
    addressing: str
    access_key: str | None
    secret_key: str | None = attrs.field(repr=_redacted)
    session_token: str | None = attrs.field(repr=_redacted)
    expire_after: float
    buffer_time: float
    download: str
    public_url: str | None
    sync_interval: float
    multipart_threshold: int
    timeout: float
    bucket_snapshot: bool


@attrs.frozen
class AuthConfig:
    """The C{[auth]} section: who may read and who may upload, and the admins."""

    read: str
    upload: str
    admins: tuple[str, ...] = ()
    #: where API tokens are kept (their digests; mode 0600)
    tokens: str = "var/tokens.json"
    #: an htpasswd file of more users (bcrypt or argon2id), or L{None}
    htpasswd: str | None = None


@attrs.frozen
class UpstreamConfig:
    """
    The C{[upstream]} section: the index pypid falls back on for projects it
    does not host, and the rules that keep hosted names safe from it.

    Always present, holding the defaults (C{mode} C{"none"}) when the section
    is absent.  Durations are seconds, sizes bytes.  Project patterns
    (C{private}, C{merge}, C{min_age_exempt}) are L{fnmatch} globs already
    normalized like project names (PEP 503), so they are matched against
    normalized names with C{fnmatch.fnmatchcase}.
    """

    #: C{"none"}, C{"redirect"} or C{"cache"}.
    mode: str
    #: The upstream's simple index root, with exactly one trailing slash;
    #: L{None} only when C{mode} is C{"none"}.
    url: str | None
    ttl: float
    offline: bool
    private: tuple[str, ...]
    merge: tuple[str, ...]
    #: 0.0 when off.
    min_age: float
    min_age_exempt: tuple[str, ...]
    #: Lowercase C{host} or C{host:port} entries files may be fetched from;
    #: the host (and port, if the URL names one) of C{url} comes first.  An
    #: entry without a port stands for the default port of the file URL's
    #: scheme (443 for https, 80 for http).
    hosts: tuple[str, ...]
    timeout: float
    max_page_size: int


@attrs.frozen
class TLSConfig:
    """
    The C{[tls]} section: the PEM files of the C{https:} listeners.

    Every path is L{None} when the section is absent; when an C{https:}
    listener is configured, C{certificate} and C{key} are set.
    """

    #: the certificate, possibly followed by its chain (certbot's fullchain.pem)
    certificate: str | None
    #: its private key, unencrypted
    key: str | None
    #: intermediate certificates sent after the certificate, or L{None}
    chain: str | None


def _no_tls():
    return TLSConfig(certificate=None, key=None, chain=None)


@attrs.frozen
class Config:
    """The whole configuration, as the services are built from it."""

    source: str
    server: ServerConfig
    storage: StorageConfig
    s3: S3Config
    auth: AuthConfig
    upstream: UpstreamConfig
    users: Mapping[str, str] = attrs.field(factory=dict, converter=MappingProxyType)
    tls: TLSConfig = attrs.field(factory=_no_tls)
    #: C{[groups]}: group name -> frozenset of user names
    groups: Mapping[str, frozenset] = attrs.field(factory=dict, converter=MappingProxyType)
    #: C{[acl]}: L{pypid.auth.policy.Rule}s in file order
    acl: tuple = ()


_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)
_SIZE_FACTORS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(value):
    """
    Parse a size such as C{100M}, C{1G}, C{512KiB} or C{1048576} (binary units).

    @raise ValueError: with the allowed forms.
    """
    match = _SIZE.match(value)
    if not match:
        raise ValueError("expected a size such as 100M, 1G or 524288 (bytes)")
    number, unit, _ = match.groups()
    size = int(number) * _SIZE_FACTORS[unit.lower()]
    if size <= 0:
        raise ValueError("expected a size greater than 0")
    return size


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*([smhd]?)\s*$", re.IGNORECASE)
_DURATION_FACTORS = {"": 1, "s": 1, "m": 60, "h": 60 * 60, "d": 24 * 60 * 60}
_DURATION_FORMS = "expected a duration such as 30 (seconds), 30s, 5m, 12h, 7d or 1.5h"


def parse_duration(value):
    """
    Parse a duration such as C{30}, C{30s}, C{5m}, C{12h}, C{7d} or C{1.5h}
    into a number of seconds.

    @rtype: L{float}
    @raise ValueError: with the allowed forms.
    """
    match = _DURATION.match(value)
    if not match:
        raise ValueError(_DURATION_FORMS)
    number, unit = match.groups()
    seconds = float(number) * _DURATION_FACTORS[unit.lower()]
    if not seconds < math.inf:
        raise ValueError(_DURATION_FORMS)
    if not seconds > 0:
        raise ValueError("expected a duration greater than 0")
    return seconds


#: The C{[pypid] listen} forms pypid reads itself; any other line is a
#: Twisted endpoint string, handed to Twisted as it is.
HTTPS = "https"
HTTP_REDIRECT = "http-redirect"


@attrs.frozen
class ListenAddress:
    """
    One line of C{[pypid] listen}, as pypid reads it.

    @ivar kind: C{"endpoint"} (a Twisted endpoint string, in C{description}),
        L{HTTPS} (TLS with the C{[tls]} files) or L{HTTP_REDIRECT} (plain HTTP
        that only redirects to HTTPS).
    @ivar port: the TCP port of an L{HTTPS} or L{HTTP_REDIRECT} line.
    @ivar interface: the address to listen on; C{""} for every IPv4 address.
    """

    kind: str
    description: str
    port: int | None = None
    interface: str = ""
    backlog: int = 50


def _split_escaped(text):
    """Split on C{:} as Twisted endpoint strings do: C{\\:} is a literal colon."""
    parts, current, chars = [], [], iter(text)
    for char in chars:
        if char == "\\":
            current.append(next(chars, "\\"))
        elif char == ":":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def parse_listen_address(description):
    """
    Read one line of C{[pypid] listen}: C{https:PORT} or
    C{http-redirect:PORT}, each with optional C{:interface=ADDRESS} and
    C{:backlog=N}, or else a Twisted endpoint string (checked by Twisted when
    the server is built).

    @rtype: L{ListenAddress}
    @raise ValueError: a bad C{https:} or C{http-redirect:} line, with the forms.
    """
    kind, colon, rest = description.partition(":")
    if kind not in (HTTPS, HTTP_REDIRECT):
        return ListenAddress("endpoint", description)
    example = "https:8443" if kind == HTTPS else "http-redirect:8080"
    forms = (f"expected {kind}:PORT with optional :interface=ADDRESS and :backlog=N, "
             f"such as {example} or {example}:interface=0.0.0.0")
    port, options = None, {}
    for part in _split_escaped(rest) if colon else []:
        name, equals, value = part.partition("=")
        if not equals and port is None:
            port = part
        elif name in ("interface", "backlog") and name not in options:
            options[name] = value
        elif not equals:
            raise ValueError(f"{description!r}: {forms} (to write an IPv6 address, "
                             "escape each of its colons: interface=\\:\\:)")
        else:
            raise ValueError(f"{description!r}: unknown or repeated option {name!r}; {forms}")
    if port is None or not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise ValueError(f"{description!r}: {forms}; PORT is a number from 1 to 65535")
    interface = options.get("interface", "")
    if interface and not _is_ip_address(interface):
        raise ValueError(f"{description!r}: the interface must be an IP address, such as "
                         "0.0.0.0, 127.0.0.1 or \\:\\: (escape each colon of an IPv6 address)")
    backlog = options.get("backlog", "50")
    if not (backlog.isascii() and backlog.isdigit() and 1 <= int(backlog) <= 65535):
        raise ValueError(f"{description!r}: the backlog must be a number from 1 to 65535")
    return ListenAddress(kind, description, int(port), interface, int(backlog))


def _listen(value):
    lines = tuple(line.strip() for line in value.splitlines() if line.strip())
    if not lines:
        raise ValueError("expected one or more Twisted endpoint strings, one per line, "
                         "such as tcp:8080:interface=127.0.0.1, or pypid's https:PORT and "
                         "http-redirect:PORT")
    for line in lines:
        parse_listen_address(line)
    return lines


def _optional_url(example):
    def parse(value):
        value = value.strip()
        if not value:
            return None
        parts = urlsplit(value)
        if (parts.scheme not in ("http", "https") or not parts.netloc or parts.query
                or parts.fragment):
            raise ValueError("expected an http:// or https:// URL with no query, "
                             f"such as {example}")
        return value.rstrip("/") + "/"
    return parse


_base_url = _optional_url("https://pypi.internal.example/")


def _path(value):
    value = value.strip()
    if not value:
        raise ValueError("expected a path")
    return os.path.abspath(os.path.expanduser(value))


def _optional_path(value):
    value = value.strip()
    return _path(value) if value else None


def _positive_number(value):
    try:
        number = float(value)
    except ValueError:
        number = -1
    if not number > 0:
        raise ValueError("expected a number of seconds greater than 0")
    return number


def _threads(value):
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not 1 <= number <= 64:
        raise ValueError("expected a whole number from 1 to 64")
    return number


def _boolean(value):
    value = value.strip().lower()
    if value in ("yes", "true", "on", "1"):
        return True
    if value in ("no", "false", "off", "0"):
        return False
    raise ValueError("expected yes or no (or true/false, on/off, 1/0)")


def _has_control_characters(value):
    return any(ord(c) < 0x20 or 0x7f <= ord(c) < 0xa0 for c in value)


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def _is_ip_address(text):
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _bucket(value):
    value = value.strip()
    if not value:
        return ""
    if not _BUCKET.match(value) or ".." in value:
        raise ValueError("expected an S3 bucket name: 3 to 63 lowercase letters, digits, "
                         "'.' and '-', starting and ending with a letter or digit, "
                         "without two '.' in a row")
    if _is_ip_address(value):
        raise ValueError("a bucket name cannot be an IP address")
    return value


def _prefix(value):
    value = value.strip()
    if _has_control_characters(value):
        raise ValueError("control characters (and line breaks) are not allowed in a key prefix")
    value = value.removeprefix("/").removesuffix("/")
    if not value:
        return ""
    segments = value.split("/")
    if "" in segments:
        raise ValueError("empty segments (a//b) are not allowed in a key prefix")
    if "." in segments or ".." in segments:
        raise ValueError("'.' and '..' segments are not allowed in a key prefix")
    return value + "/"


def _region(value):
    value = value.strip()
    if not re.match(r"^[a-z0-9-]+$", value):
        raise ValueError("expected a region name such as us-east-1: "
                         "lowercase letters, digits and '-'")
    return value


def _endpoint_url(value):
    value = value.strip()
    if not value:
        return None
    message = ("expected an http:// or https:// URL with a host and no query, fragment, "
               "user name or password, such as http://127.0.0.1:9000")
    if _has_control_characters(value) or " " in value or "?" in value or "#" in value:
        raise ValueError(message)
    try:
        parts = urlsplit(value)
        parts.port
    except ValueError:  # a bad port or a bad [IPv6] host
        raise ValueError(message) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        raise ValueError(message)
    return value.rstrip("/")


def _optional_choice(*allowed):
    parse_choice = _choice(*allowed)

    def parse(value):
        if not value.strip():
            return None
        try:
            return parse_choice(value)
        except ValueError as e:
            raise ValueError(f"{e}; or empty for automatic") from None
    return parse


def _credential(value):
    value = value.strip()
    if not value:
        return None
    if _has_control_characters(value) or any(c.isspace() for c in value):
        # The value may be a secret: never repeat it.
        raise ValueError("spaces and control characters are not allowed")
    return value


#: The longest validity SigV4 allows for a presigned URL: 7 days.
MAX_PRESIGN_SECONDS = 7 * 24 * 60 * 60


def _expire_after(value):
    seconds = parse_duration(value)
    if seconds > MAX_PRESIGN_SECONDS:
        raise ValueError(f"expected at most 7d ({MAX_PRESIGN_SECONDS} seconds), "
                         "the longest a presigned URL can be valid")
    if seconds < 1:
        raise ValueError("expected at least 1 second")
    return seconds


#: S3's smallest part of a multipart upload (but the last), and its largest
#: part (and single PUT).
MIN_PART_SIZE = 5 << 20
MAX_PART_SIZE = 5 << 30
#: S3's largest number of parts in one multipart upload.
MAX_PARTS = 10000


def _multipart_threshold(value):
    size = parse_size(value)
    if not MIN_PART_SIZE <= size <= MAX_PART_SIZE:
        raise ValueError("expected a size from 5M (S3's smallest part) to 5G (its largest)")
    return size


_HOST_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_HOST_FORMS = ("expected a host name of letters, digits, '.' and '-', or an IPv4 address, "
               "with an optional :port from 1 to 65535")


def _host_port(text):
    """
    Check one C{host} or C{host:port} (a host name or an IPv4 address) and
    return it lowercased.

    @raise ValueError: naming what is allowed.
    """
    text = text.lower()
    host, colon, port = text.partition(":")
    if colon and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise ValueError(_HOST_FORMS)
    labels = host.split(".")
    if len(host) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        raise ValueError(_HOST_FORMS)
    if labels[-1].isdigit():
        # A name whose last part is a number is read as an IPv4 address.
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(_HOST_FORMS) from None
    return f"{host}:{int(port)}" if colon else host


def _hosts(value):
    hosts = []
    for entry in value.split():
        if "@" in entry or "/" in entry:
            raise ValueError("expected host names (with an optional :port), not URLs; "
                             "user names and passwords are not allowed")
        try:
            host = _host_port(entry)
        except ValueError as e:
            raise ValueError(f"{entry!r}: {e}") from None
        if host not in hosts:
            hosts.append(host)
    return tuple(hosts)


_UPSTREAM_URL_FORMS = ("expected the upstream's simple index root: an http:// or https:// URL "
                       "with a host and no query or fragment, such as "
                       "https://upstream.example/simple/")


def _upstream_url(value):
    value = value.strip()
    if not value:
        return None
    if _has_control_characters(value) or any(c.isspace() for c in value):
        raise ValueError(_UPSTREAM_URL_FORMS)
    parts = urlsplit(value)
    if "@" in parts.netloc:
        # The value holds a secret: never repeat it.
        raise ValueError("a user name or password in the URL is not allowed: it would "
                         "show in logs and error messages; give the URL without it")
    if (parts.scheme not in ("http", "https") or not parts.netloc or "?" in value
            or "#" in value):
        raise ValueError(_UPSTREAM_URL_FORMS)
    try:
        netloc = _host_port(parts.netloc)
    except ValueError as e:
        raise ValueError(f"{_UPSTREAM_URL_FORMS}; its host: {e}") from None
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}/"


_PATTERN_CHARACTERS = re.compile(r"^[A-Za-z0-9._*?\[\]-]+$")
_PATTERN = re.compile(r"^(?:[a-z0-9*?-]|\[[^\[\]]+\])+$")


def _patterns(value):
    """
    Parse whitespace-separated project names or globs into a tuple of
    patterns normalized like project names (PEP 503), without repeats.

    C{corp.*}, C{Corp_*} and C{corp-*} all become C{corp-*}.
    """
    patterns = []
    for entry in value.split():
        if not _PATTERN_CHARACTERS.match(entry):
            raise ValueError(f"{entry!r}: expected project names or patterns of letters, "
                             "digits, '-', '_', '.' and the glob characters '*', '?' and "
                             "'[...]', separated by spaces or lines")
        pattern = re.sub(r"[-_.]+", "-", entry).lower()
        if not _PATTERN.match(pattern):
            raise ValueError(f"{entry!r}: every '[' must be closed by a ']', "
                             "with at least one character between them")
        if not re.search(r"[a-z0-9*?[]", pattern):
            raise ValueError(f"{entry!r}: not a project name or pattern: only '-', '_' "
                             "and '.', which are nothing once normalized")
        if pattern not in patterns:
            patterns.append(pattern)
    return tuple(patterns)


def _min_age(value):
    match = _DURATION.match(value)
    if not value.strip() or (match and float(match.group(1)) == 0):
        return 0.0
    try:
        return parse_duration(value)
    except ValueError:
        raise ValueError(f"{_DURATION_FORMS}; or 0 (or empty) for off") from None


def _choice(*allowed):
    def parse(value):
        value = value.strip().lower()
        if value not in allowed:
            raise ValueError("expected one of: " + ", ".join(allowed))
        return value
    return parse


def _names(value):
    """Whitespace-separated user (or group) names."""
    names = tuple(value.split())
    for name in names:
        if not USER_NAME.match(name):
            raise ValueError(f"{name!r}: a name is 1 to 64 letters, digits, '.', '_', '@' or '-'")
    return names



def _connections(value):
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not 1 <= number <= 100_000:
        raise ValueError("expected a whole number from 1 to 100000")
    return number


# section -> key -> (default, parser).  A default of None means "no default".
SCHEMA = {
    "pypid": {
        "listen": ("tcp:8080:interface=127.0.0.1", _listen),
        "base_url": ("", _base_url),
        "snapshot": ("var/index.json", _path),
        "snapshot_interval": ("30", _positive_number),
        "max_upload_size": ("100M", parse_size),
        "threads": ("4", _threads),
        "access_log": ("", _optional_path),
        "header_timeout": ("30s", parse_duration),
        "min_upload_rate": ("1K", parse_size),
        "max_connections_per_address": ("128", _connections),
        "ca_bundle": ("", _optional_path),
    },
    "storage": {
        "backend": ("local", _choice("local", "s3")),
        "path": ("var/packages", _path),
    },
    "s3": {
        "bucket": ("", _bucket),
        "prefix": ("", _prefix),
        "region": ("us-east-1", _region),
        "endpoint_url": ("", _endpoint_url),
        "addressing": ("", _optional_choice("path", "virtual")),
        "access_key": ("", _credential),
        "secret_key": ("", _credential),
        "session_token": ("", _credential),
        "expire_after": ("1d", _expire_after),
        "buffer_time": ("10m", parse_duration),
        "download": ("redirect", _choice("redirect", "stream")),
        "public_url": ("", _optional_url("https://downloads.internal.example/pypid/")),
        "sync_interval": ("30s", parse_duration),
        "multipart_threshold": ("64M", _multipart_threshold),
        "timeout": ("30s", parse_duration),
        "bucket_snapshot": ("yes", _boolean),
    },
    "auth": {
        "read": ("everyone", _choice("everyone", "authenticated")),
        "upload": ("authenticated", _choice("authenticated")),
        "admins": ("", _names),
        "tokens": ("var/tokens.json", _path),
        "htpasswd": ("", _optional_path),
    },
    "upstream": {
        "mode": ("none", _choice("none", "redirect", "cache")),
        "url": ("", _upstream_url),
        "ttl": ("10m", parse_duration),
        "offline": ("no", _boolean),
        "private": ("", _patterns),
        "merge": ("", _patterns),
        "min_age": ("0", _min_age),
        "min_age_exempt": ("", _patterns),
        "hosts": ("", _hosts),
        "timeout": ("10s", parse_duration),
        "max_page_size": ("20M", parse_size),
    },
    "tls": {
        "certificate": ("", _optional_path),
        "key": ("", _optional_path),
        "chain": ("", _optional_path),
    },
}

#: Sections whose keys are names chosen by the administrator.
FREE_SECTIONS = {"users", "groups", "acl"}



def _user(name, value):
    if not USER_NAME.match(name):
        raise ValueError("a user name is 1 to 64 letters, digits, '.', '_', '@' or '-'")
    check_hash_format(value.strip())
    return value.strip()


def parse_override(text):
    """
    Parse a C{--set section.key=value} argument into C{(section, key, value)}.

    @raise ValueError: when it is not of that form.
    """
    name, sep, value = text.partition("=")
    section, dot, key = name.strip().partition(".")
    if not sep or not dot or not section or not key:
        raise ValueError(f"--set {text!r}: expected section.key=value")
    return section.lower(), key.strip(), value


def load_config(path, overrides=(), listen=()):
    """
    Read, validate and freeze the configuration.

    @param path: the INI file, or L{None} for the embedded defaults.
    @param overrides: C{(section, key, value)} triples from C{--set}; they
        win over the file.
    @param listen: endpoint strings from C{--listen}; when given they replace
        C{[pypid] listen}.
    @rtype: L{Config}
    @raise ConfigError: naming the file, section and key of the first problem.
    """
    source = path or "<defaults>"
    parser = configparser.ConfigParser(interpolation=None, strict=True,
                                       empty_lines_in_values=False)
    parser.optionxform = str
    if path is not None:
        try:
            with open(path, encoding="utf-8") as f:
                parser.read_file(f, source=path)
        except OSError as e:
            raise ConfigError(f"{path}: cannot read the configuration file: {e.strerror}")
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: the configuration file is not UTF-8 text")
        except configparser.Error as e:
            message = " ".join(str(e).split())
            raise ConfigError(f"{path}: not a valid INI file: {message}")
    file_sections = set(parser.sections())
    for section, key, value in overrides:
        if not parser.has_section(section):
            parser.add_section(section)
        parser.set(section, key, value)
    if listen:
        if not parser.has_section("pypid"):
            parser.add_section("pypid")
        parser.set("pypid", "listen", "\n".join(listen))

    from_command_line = {(section, key) for section, key, _ in overrides}
    if listen:
        from_command_line.add(("pypid", "listen"))

    def fail(section, key, message, causes=()):
        """
        Raise the error for C{[section] key}, blamed on the first of that key
        and C{causes} (other C{(section, key)} pairs the problem involves) that
        came from the command line, or else on the file.
        """
        where = f"[{section}] {key}" if key else f"[{section}]"
        for blamed in [(section, key), *causes]:
            if blamed in from_command_line:
                option = "--listen" if blamed == ("pypid", "listen") and listen else "--set"
                raise ConfigError(f"{option} {blamed[0]}.{blamed[1]}: {where}: {message}")
        raise ConfigError(f"{source}: {where}: {message}")

    for section in parser.sections():
        if section not in SCHEMA and section not in FREE_SECTIONS:
            allowed = ", ".join(f"[{s}]" for s in [*SCHEMA, *sorted(FREE_SECTIONS)])
            causes = () if section in file_sections else [
                (s, k) for s, k, _ in overrides if s == section]
            fail(section, None, f"unknown section; the sections are {allowed}", causes)
    values = {}
    for section, keys in SCHEMA.items():
        present = dict(parser.items(section)) if parser.has_section(section) else {}
        for key in present:
            if key not in keys:
                fail(section, key, "unknown key; the keys are " + ", ".join(keys))
        for key, (default, parse) in keys.items():
            try:
                values[section, key] = parse(present.get(key, default))
            except ValueError as e:
                fail(section, key, str(e))
    users = {}
    if parser.has_section("users"):
        for name, value in parser.items("users"):
            try:
                users[name] = _user(name, value)
            except ValueError as e:
                fail("users", name, str(e))

    htpasswd = values["auth", "htpasswd"]
    if htpasswd is not None:
        from pypid.auth.htpasswd import parse_htpasswd
        try:
            with open(htpasswd, encoding="utf-8") as f:
                more = parse_htpasswd(f.read(), htpasswd)
        except OSError as e:
            fail("auth", "htpasswd", f"cannot read {htpasswd}: {e.strerror}")
        except UnicodeDecodeError:
            fail("auth", "htpasswd", f"{htpasswd} is not UTF-8 text")
        except ValueError as e:
            fail("auth", "htpasswd", str(e))
        for name in more:
            if name in users:
                fail("auth", "htpasswd", f"user {name!r} is both in [users] and in {htpasswd}")
        users.update(more)
    groups = {}
    if parser.has_section("groups"):
        for name, value in parser.items("groups"):
            try:
                if not USER_NAME.match(name):
                    raise ValueError("a group name is 1 to 64 letters, digits, '.', '_', "
                                     "'@' or '-'")
                members = _names(value)
                for member in members:
                    if member not in users:
                        raise ValueError(f"{member!r} is not a user of [users]")
                groups[name] = frozenset(members)
            except ValueError as e:
                fail("groups", name, str(e))
    for admin in values["auth", "admins"]:
        if admin not in users:
            fail("auth", "admins", f"{admin!r} is not a user of [users]")
    rules = []
    if parser.has_section("acl"):
        from pypid.auth.policy import RuleError, parse_rule
        for order, (pattern, value) in enumerate(parser.items("acl")):
            try:
                rule = parse_rule(pattern, value, order)
                for principal, _ in rule.grants:
                    kind, _, who = principal.partition(":")
                    if kind == "user" and who not in users:
                        raise ValueError(f"{principal}: {who!r} is not a user of [users]")
                    if kind == "group" and who not in groups:
                        raise ValueError(f"{principal}: {who!r} is not a group of [groups]")
            except (RuleError, ValueError) as e:
                fail("acl", pattern, str(e))
            rules.append(rule)

    _check_s3(values, fail)
    _check_upstream(values, fail)
    _check_tls(values, fail)

    def section(name, cls):
        return cls(**{key: values[name, key] for key in SCHEMA[name]})

    return Config(
        source=source,
        server=section("pypid", ServerConfig),
        storage=section("storage", StorageConfig),
        s3=section("s3", S3Config),
        auth=section("auth", AuthConfig),
        upstream=section("upstream", UpstreamConfig),
        users=users,
        tls=section("tls", TLSConfig),
        groups=groups,
        acl=tuple(rules),
    )


def _check_s3(values, fail):
    """
    Check the C{[s3]} keys against each other (and C{[storage] backend}), and
    resolve an automatic C{addressing} in C{values}.
    """
    def s3(key):
        return values["s3", key]

    backend = ("storage", "backend")
    using_s3 = values[backend] == "s3"
    if using_s3 and not s3("bucket"):
        fail("s3", "bucket", "required for backend = s3 ([storage] backend): "
             "set it to the name of the bucket that holds the packages", [backend])

    keys = [("s3", "access_key"), ("s3", "secret_key"), ("s3", "session_token")]
    if s3("access_key") and not s3("secret_key"):
        fail("s3", "secret_key", "required when access_key is set; or leave both empty "
             "for the standard credentials (environment, shared files, instance role)", keys)
    if s3("secret_key") and not s3("access_key"):
        fail("s3", "access_key", "required when secret_key is set; or leave both empty "
             "for the standard credentials (environment, shared files, instance role)", keys)
    if s3("session_token") and not s3("access_key"):
        fail("s3", "session_token", "only allowed with access_key and secret_key", keys)

    if s3("buffer_time") >= s3("expire_after"):
        fail("s3", "buffer_time", f"must be less than expire_after "
             f"({s3('expire_after'):g} seconds)", [("s3", "expire_after")])

    threshold = s3("multipart_threshold")
    largest = values["pypid", "max_upload_size"]
    if using_s3 and threshold * MAX_PARTS < largest:
        fail("s3", "multipart_threshold", f"too small for [pypid] max_upload_size: S3 allows "
             f"at most {MAX_PARTS} parts, so it must be at least "
             f"{-(-largest // MAX_PARTS)} bytes", [("pypid", "max_upload_size"), backend])

    endpoint = s3("endpoint_url")
    automatic = s3("addressing") is None
    addressing = ("path" if endpoint else "virtual") if automatic else s3("addressing")
    values["s3", "addressing"] = addressing
    if addressing == "virtual":
        how = ("addressing is virtual (the automatic choice without an endpoint_url)"
               if automatic else "addressing = virtual")
        causes = [("s3", "bucket"), ("s3", "endpoint_url")]
        host = urlsplit(endpoint).hostname if endpoint else None
        https = endpoint is None or endpoint.startswith("https:")
        if "." in s3("bucket") and https:
            fail("s3", "addressing", f"{how} puts the bucket name in the host name, and a "
                 "bucket with '.' in its name then fails TLS certificate checks over https: "
                 "set addressing = path, or use a bucket without '.'", causes)
        if host is not None and _is_ip_address(host):
            fail("s3", "addressing", f"{how} puts the bucket name in the host name, which "
                 "an endpoint_url with an IP address cannot have: set addressing = path",
                 causes)


def _check_upstream(values, fail):
    """
    Check the C{[upstream]} keys against each other, and resolve C{hosts} in
    C{values} to include the host of C{url}.
    """
    def upstream(key):
        return values["upstream", key]

    mode = upstream("mode")
    url = upstream("url")
    if mode != "none" and url is None:
        fail("upstream", "url", f"required for mode = {mode}: set it to the upstream's simple "
             "index root, such as https://upstream.example/simple/, or set mode = none",
             [("upstream", "mode")])

    merged = set(upstream("merge"))
    for pattern in upstream("private"):
        if pattern in merged:
            fail("upstream", "merge", f"{pattern!r} is also in [upstream] private: a private "
                 "name never shows upstream files, so it cannot be merged; remove it from "
                 "one of the two", [("upstream", "private")])

    if url is not None:
        own = urlsplit(url).netloc
        values["upstream", "hosts"] = (own, *(h for h in upstream("hosts") if h != own))


def _check_tls(values, fail):
    """
    Check C{[tls]} against the listeners: an C{https:} listener needs a
    certificate and key, and is the only kind of listener beside
    C{http-redirect:} ones, so credentials never go over plain HTTP; C{[tls]}
    without an C{https:} listener, and a redirect with nowhere to go, are
    mistakes.
    """
    listen = ("pypid", "listen")
    addresses = [parse_listen_address(line) for line in values[listen]]
    https = [address for address in addresses if address.kind == HTTPS]
    if not https:
        for key in SCHEMA["tls"]:
            if values["tls", key] is not None:
                fail("tls", key, "set, but no https: listener in [pypid] listen uses it: add "
                     "one such as https:8443, or leave [tls] out", [listen])
        for address in addresses:
            if address.kind == HTTP_REDIRECT:
                fail("pypid", "listen", f"{address.description!r} redirects to an https: "
                     "listener, and there is none: add one such as https:8443")
        return
    first = https[0].description
    for key in ("certificate", "key"):
        if values["tls", key] is None:
            fail("tls", key, f"required by the https listener {first!r} in [pypid] listen: "
                 "set [tls] certificate and [tls] key to the PEM files of its certificate "
                 "and private key", [listen])
    for address in addresses:
        if address.kind != "endpoint":
            continue
        if address.description.startswith("ssl:"):
            fail("pypid", "listen", f"{address.description!r} is a Twisted TLS endpoint, "
                 f"with Twisted's default ciphers and no reload on SIGHUP, beside the https "
                 f"listener {first!r}: serve HTTPS with https: listeners only")
        fail("pypid", "listen", f"{address.description!r} would serve plain HTTP beside the "
             f"https listener {first!r}, and passwords sent to it would cross the network "
             "unencrypted: use http-redirect:PORT for plain HTTP (it only redirects to HTTPS)")
    base_url = values["pypid", "base_url"]
    if base_url is not None and not base_url.startswith("https://"):
        fail("pypid", "base_url", f"must be an https:// URL when pypid serves HTTPS ({first!r} "
             "in [pypid] listen): http:// links would send clients, and their passwords, to "
             "plain HTTP", [listen])
