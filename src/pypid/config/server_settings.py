"""
The C{[pypid]} section: what the server listens on, where it keeps its
snapshot and log, and the limits it puts on clients.

Twisted's TLS endpoints (and txacme's) are refused in C{listen}: they serve
TLS settings pypid does not choose (Twisted's default ciphers accept
C{AES128-SHA}) and are not reloaded on C{SIGHUP}.
"""

from __future__ import annotations

import ipaddress
import os

import attrs

from pypid.config.advisory_settings import (
    ADVISORY_RULE_KEYS,
    UPLOAD_RULE_KEYS,
    AdvisoryKeys,
    UploadKeys,
)
from pypid.config.metrics_settings import Network, parse_networks
from pypid.config.values import (
    Keys,
    is_ip_address,
    is_loopback_host,
    optional_url,
    parse_optional_path,
    parse_path,
    parse_positive_number,
    whole_number,
)
from pypid.core.indexes.rendered_pages import PAGE_CACHE_SIZE
from pypid.core.util.units import parse_duration, parse_size


@attrs.frozen
class ServerConfig(AdvisoryKeys, UploadKeys):
    """The C{[pypid]} section; its advisory and upload keys are every index's defaults."""

    listen: tuple[str, ...]
    base_url: str | None
    snapshot: str
    snapshot_interval: float
    max_upload_size: int
    threads: int
    access_log: str | None
    #: seconds a request's line and headers have to arrive
    header_timeout: float = 30.0
    #: seconds an answer may wait with none of it taken by the client
    send_timeout: float = 60.0
    #: seconds a description may take to render in the sandbox before it is
    #: shown as plain text (L{pypid.sandbox.readme_sandbox.ReadmeSandbox.budget})
    description_budget: float = 5.0
    #: bytes a second a request body must arrive at, at least
    min_upload_rate: int = 1024
    max_connections_per_address: int = 128
    #: PEM CA certificates trusted for outbound HTTPS instead of the
    #: system's (a private CA); L{None} for the system's
    ca_bundle: str | None = None
    #: bytes of rendered project pages kept
    #: (L{pypid.core.indexes.rendered_pages.RenderedPages.max_bytes})
    page_cache_size: int = PAGE_CACHE_SIZE
    #: the reverse proxies whose C{X-Forwarded-For} names the client
    #: (L{pypid.core.access.forwarded})
    trusted_proxies: tuple[Network, ...] = ()
    #: the worker processes of the server (L{pypid.daemon.machine})
    workers: int = 1
    #: seconds a ready worker may go without a heartbeat before the
    #: supervisor kills it (L{pypid.daemon.workers.Supervisor})
    worker_timeout: float = 30.0


#: The C{[pypid] listen} forms pypid reads itself; any other line is a
#: Twisted endpoint string.
HTTPS = "https"
HTTP_REDIRECT = "http-redirect"


@attrs.frozen
class ListenAddress:
    """
    One line of C{[pypid] listen}.

    @ivar kind: C{"endpoint"} (a Twisted endpoint string, in C{description}),
        L{HTTPS} or L{HTTP_REDIRECT} (plain HTTP that only redirects to HTTPS).
    @ivar interface: the address to listen on; C{""} for every IPv4 address.
    """

    kind: str
    description: str
    port: int | None = None
    interface: str = ""
    backlog: int = 50


_TWISTED_DEFAULTS = "Twisted's TLS endpoint, with its default ciphers (AES128-SHA among them)"
_TXACME = "txacme's TLS endpoint, with TLS settings pypid does not choose"

#: Endpoint types (in lower case, as Twisted matches plugins) that serve TLS
#: with settings other than pypid's, and what they are. C{haproxy:} wraps
#: another endpoint string, which is checked in turn.
TWISTED_TLS_ENDPOINTS = {"ssl": _TWISTED_DEFAULTS, "tls": _TWISTED_DEFAULTS,
                         "le": _TXACME, "lets": _TXACME}
_WRAPPING_ENDPOINTS = frozenset(["haproxy"])


def _endpoint_type(description: str) -> str:
    """
    The endpoint type Twisted's C{serverFromString} reads in C{description},
    in lower case, through wrapping types (C{haproxy:ssl:...} is C{ssl}):
    the first field that is not C{key=value}, its escapes resolved (Twisted
    reads C{s\\sl:443} and C{a=b:ssl:443} as C{ssl}).
    """
    types = [part.strip().lower() for part in _split_escaped(description) if "=" not in part]
    while len(types) > 1 and types[0] in _WRAPPING_ENDPOINTS:
        types = types[1:]
    return types[0] if types else ""


def _split_escaped(text: str) -> list[str]:
    """Split on C{:} as Twisted endpoint strings do: C{\\:} is a literal colon."""
    parts: list[str] = []
    current: list[str] = []
    chars = iter(text)
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


def parse_listen_address(description: str) -> ListenAddress:
    """
    Read one line of C{[pypid] listen}: C{https:PORT} or C{http-redirect:PORT},
    with optional C{:interface=ADDRESS} and C{:backlog=N}, or else a Twisted
    endpoint string other than Twisted's TLS ones.
    """
    kind, colon, rest = description.partition(":")
    if kind not in (HTTPS, HTTP_REDIRECT):
        what = TWISTED_TLS_ENDPOINTS.get(_endpoint_type(description))
        if what is not None:
            raise ValueError(f"{description!r} is {what}: serve HTTPS with an https:PORT "
                             "listener and [tls] certificate and key")
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
    if interface and not is_ip_address(interface):
        raise ValueError(f"{description!r}: the interface must be an IP address, such as "
                         "0.0.0.0, 127.0.0.1 or \\:\\: (escape each colon of an IPv6 address)")
    backlog = options.get("backlog", "50")
    if not (backlog.isascii() and backlog.isdigit() and 1 <= int(backlog) <= 65535):
        raise ValueError(f"{description!r}: the backlog must be a number from 1 to 65535")
    return ListenAddress(kind, description, int(port), interface, int(backlog))


#: The Twisted TCP endpoint types: the place of C{interface} among their
#: positional arguments (after the port), and its default.
_TCP_INTERFACES = {"tcp": (1, "0.0.0.0"), "tcp6": (2, "::")}


def listen_interface(description: str) -> str | None:
    """
    The address a line of C{[pypid] listen} listens on, as Twisted reads
    it (C{0.0.0.0}: every IPv4 address, C{::} every address); L{None} for a
    line on no address it tells (C{unix:}, C{systemd:}, another plugin's).
    """
    address = parse_listen_address(description)
    if address.kind != "endpoint":
        return address.interface or "0.0.0.0"
    parts = [part.strip() for part in _split_escaped(description)]
    while parts and parts[0].lower() in _WRAPPING_ENDPOINTS:
        parts = parts[1:]
    if not parts or parts[0].lower() not in _TCP_INTERFACES:
        return None
    at, default = _TCP_INTERFACES[parts[0].lower()]
    positional = [part for part in parts[1:] if "=" not in part]
    named = dict(part.split("=", 1) for part in parts[1:] if "=" in part)
    return named.get("interface", positional[at] if len(positional) > at else "") or default


def on_network(description: str) -> bool:
    """Whether a C{listen} line listens where other machines may reach it (L{False}: unknown)."""
    interface = listen_interface(description)
    return interface is not None and not is_loopback_host(interface)


def _listen(value: str) -> tuple[str, ...]:
    lines = tuple(line.strip() for line in value.splitlines() if line.strip())
    if not lines:
        raise ValueError("expected one or more Twisted endpoint strings, one per line, "
                         "such as tcp:8080:interface=127.0.0.1, or pypid's https:PORT and "
                         "http-redirect:PORT")
    for line in lines:
        parse_listen_address(line)
    return lines


def parse_page_cache_size(value: str) -> int:
    """A size such as C{64M}, or C{0} to keep no project page rendered."""
    try:
        return parse_size(value)
    except ValueError:
        if value.strip() == "0":
            return 0
        raise ValueError("expected a size such as 64M, 256M or 1G (bytes of rendered "
                         "project pages kept), or 0 to keep none") from None


def parse_trusted_proxies(value: str) -> tuple[Network, ...]:
    """
    The reverse proxies in front of pypid. Every address (C{0.0.0.0/0}) is
    refused: any client could then write its own address in
    C{X-Forwarded-For}. An IPv4-mapped IPv6 one is taken as the IPv4 one, as
    a peer is read (L{pypid.core.access.addresses.client_ip}).
    """
    networks = tuple(_unmapped(network) for network in parse_networks(value))
    for network in networks:
        if network.prefixlen == 0:
            raise ValueError(f"{network}: would trust every client's X-Forwarded-For; list "
                             "the proxies' own addresses (such as 127.0.0.1 or 10.0.0.0/24)")
    return networks


def _unmapped(network: Network) -> Network:
    """An IPv4-mapped IPv6 network (within C{::ffff:0:0/96}) as its IPv4 network."""
    if (isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96
            and network.network_address.ipv4_mapped is not None):
        mapped = network.network_address.ipv4_mapped
        return ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network


def _positive_duration(value: str) -> float:
    """A duration greater than 0 (a budget or a timeout of none would end everything at once)."""
    seconds = parse_duration(value)
    if not seconds > 0:
        raise ValueError("expected a duration greater than 0, such as 5s")
    return seconds


def _worker_timeout(value: str) -> float:
    """A duration of at least 3 s: a worker beats every 0.25 s, and a busy one may skip some."""
    seconds = parse_duration(value)
    if not seconds >= 3:
        raise ValueError("expected a duration of at least 3s, such as 30s")
    return seconds


#: The most workers a machine runs (one per core of the largest machines).
MAX_WORKERS = 256


def parse_workers(value: str) -> int:
    """A number of worker processes, or C{auto}: one per core this process may run on."""
    if value.strip().lower() == "auto":
        return max(1, min(MAX_WORKERS, len(os.sched_getaffinity(0))))
    try:
        return whole_number(1, MAX_WORKERS)(value)
    except ValueError:
        raise ValueError(f"expected a whole number from 1 to {MAX_WORKERS}, or auto")


#: key -> (default, parser)
SERVER_KEYS: Keys = {
    "listen": ("tcp:8080:interface=127.0.0.1", _listen),
    "base_url": ("", optional_url("https://pypi.internal.example/")),
    "snapshot": ("var/index.json", parse_path),
    "snapshot_interval": ("30", parse_positive_number),
    "max_upload_size": ("100M", parse_size),
    "threads": ("4", whole_number(1, 64)),
    "access_log": ("", parse_optional_path),
    "header_timeout": ("30s", parse_duration),
    "send_timeout": ("60s", _positive_duration),
    "description_budget": ("5s", _positive_duration),
    "min_upload_rate": ("1K", parse_size),
    "max_connections_per_address": ("128", whole_number(1, 100_000)),
    "ca_bundle": ("", parse_optional_path),
    "page_cache_size": ("64M", parse_page_cache_size),
    "trusted_proxies": ("", parse_trusted_proxies),
    "workers": ("1", parse_workers),
    "worker_timeout": ("30s", _worker_timeout),
    **ADVISORY_RULE_KEYS,
    **UPLOAD_RULE_KEYS,
}
