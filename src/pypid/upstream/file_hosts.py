"""
Which hosts pypid fetches an upstream's pages and files from (C{[upstream]
hosts}): pure logic, no I/O.

An index commonly serves its files from another host than its pages (a
file host, a CDN), so pypid cannot know the hosts in advance. The entry
L{ANY_PUBLIC} (C{*}, the default) lets a URL the upstream's own pages list
lead to any host, which the connection then reaches only at public
addresses (L{pypid.http.public_only}, checked at connect time so that DNS
cannot move a name into the network pypid runs in). A host named in
C{hosts}, and the host of C{url}, is the operator's word and is reached at
whatever address it has: a file server on a private network is named there.
Without C{*}, only the named hosts are used.

pypid fetches only URLs the upstream's pages listed (the cache decides
that), and follows a few redirects under the same rule: it is never an open
proxy.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

import attrs

from pypid.config.upstream_settings import ANY_PUBLIC

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _names(entry: str, scheme: str, host: str, port: int) -> bool:
    """Whether one C{host} or C{host:port} entry names C{host} on C{port}."""
    name, sep, wanted = entry.lower().partition(":")
    return name == host and (wanted == str(port) if sep else port == _DEFAULT_PORTS[scheme])


@attrs.frozen
class FileHosts:
    """
    The hosts of one upstream: C{entries} as C{[upstream] hosts} resolves
    them (the host of C{url} first, then C{host}, C{host:port} or L{ANY_PUBLIC}).
    """

    entries: tuple[str, ...]

    @classmethod
    def of(cls, hosts: Iterable[str]) -> FileHosts:
        """The rule of C{hosts}."""
        return cls(tuple(hosts))

    @property
    def any_public(self) -> bool:
        """Whether hosts not named may be used at public addresses."""
        return ANY_PUBLIC in self.entries

    def allows(self, url: str) -> bool:
        """
        Whether C{url} may be fetched: an http(s) URL, without credentials,
        on a named host, or on any host when L{any_public} (whose address
        the connection checks).
        """
        try:
            parts = urlsplit(url)
            port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
        except ValueError:
            return False
        # (an empty user name, as in http://:pw@host/, is still credentials)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
            return False
        assert port is not None
        return self.any_public or self.names(parts.scheme, parts.hostname.lower(), port)

    def names(self, scheme: str, host: str, port: int) -> bool:
        """
        Whether C{host} on C{port} (of a C{scheme} URL) is named: reached
        at any address. A host that is not is reached only at public ones.
        """
        if scheme not in _DEFAULT_PORTS:
            return False
        host = host.lower().strip("[]")
        return any(_names(entry, scheme, host, port)
                   for entry in self.entries if entry != ANY_PUBLIC)


def host_allowed(url: str, hosts: Iterable[str]) -> bool:
    """Whether C{url} may be fetched under C{hosts} (see L{FileHosts.allows})."""
    return FileHosts.of(hosts).allows(url)
