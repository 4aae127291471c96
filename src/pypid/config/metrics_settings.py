"""
The C{[metrics]} section: who may scrape C{/metrics}.

By default only this machine: the metrics tell how busy the server is, what
it holds and how its storage behaves, which is for its operators. C{allow}
replaces that list of addresses or networks, and C{group} lets the users of
a group in with their credentials.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

import attrs

from pypid.config.auth_settings import NAME_CHARACTERS, groups_from_outside
from pypid.config.values import Fail, Keys, Values
from pypid.core.access.addresses import client_ip
from pypid.core.access.credential_syntax import USER_NAME

#: An address or network of C{[metrics] allow}.
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(value: str) -> tuple[Network, ...]:
    """Whitespace-separated IP addresses or networks (C{10.0.0.0/8}, C{2001:db8::/32})."""
    networks: list[Network] = []
    for word in value.split():
        try:
            networks.append(ipaddress.ip_network(word, strict=False))
        except ValueError:
            raise ValueError(f"{word!r} is not an IP address or network (such as 10.0.0.0/8 "
                             "or 2001:db8::/32)")
    return tuple(networks)


#: Who may scrape by default: this machine.
DEFAULT_ALLOW = "127.0.0.0/8 ::1"


@attrs.frozen
class MetricsConfig:
    """The C{[metrics]} section."""

    #: the networks whose clients may scrape without credentials
    allow: tuple[Network, ...] = parse_networks(DEFAULT_ALLOW)
    #: a group of C{[groups]} whose users may scrape with credentials, or L{None}
    group: str | None = None


def _group(value: str) -> str | None:
    value = value.strip()
    if not value:
        return None
    if not USER_NAME.match(value):
        raise ValueError(f"{value!r}: a group name is {NAME_CHARACTERS}")
    return value


#: key -> (default, parser)
METRICS_KEYS: Keys = {
    "allow": (DEFAULT_ALLOW, parse_networks),
    "group": ("", _group),
}


def check_metrics(values: Values, groups: Mapping[str, frozenset[str]], fail: Fail) -> None:
    """C{[metrics] group} must be a group of C{[groups]}, or one from outside."""
    group = values["metrics", "group"]
    if group is not None and group not in groups and not groups_from_outside(values):
        known = ", ".join(sorted(groups)) or "none"
        fail("metrics", "group", f"{group!r} is not a group of [groups] (the groups: {known})")


def address_allowed(networks: Iterable[Network], host: str | None) -> bool:
    """
    Whether the client address C{host} (text) is in one of C{networks}; an
    IPv4 client seen through an IPv6 socket (C{::ffff:127.0.0.1}) counts as
    its IPv4 address.
    """
    address = None if host is None else client_ip(host)
    return address is not None and any(
        address.version == network.version and address in network for network in networks)
