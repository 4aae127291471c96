"""
What the upstream package is given by the layers above it, as Protocols:
C{[upstream]}'s values as each part reads them
(L{pypid.config.upstream_settings.UpstreamConfig}, of the configuration's
layer). The run in the I/O thread pool is L{pypid.storage.interface.Run}.

Typing only, and light: the upstream's factory imports it with every start,
configured upstream or not, and the rest of the package loads only with
C{[upstream]}.
"""

from __future__ import annotations

from typing import Protocol


class DownloadLimits(Protocol):
    """
    What the files side reads of C{[upstream]}
    (L{pypid.config.upstream_settings.UpstreamConfig}, a layer above).
    """

    @property
    def offline(self) -> bool:
        """Nothing is fetched: only what is kept is served."""

    @property
    def max_file_size(self) -> int:
        """The largest file fetched, whatever its page claims."""

    @property
    def max_downloads(self) -> int:
        """Downloads at once."""

    @property
    def download_space(self) -> int:
        """Bytes reserved by the downloads under way, together."""

    @property
    def max_cache_size(self) -> int:
        """The most bytes of files kept (the least recently downloaded go first); 0: no cap."""

    @property
    def keep_precached(self) -> bool:
        """Whether the files pre-caching asked for are never evicted."""

    @property
    def timeout(self) -> float:
        """The longest the upstream may be silent."""

    @property
    def fetch_deadline(self) -> float:
        """The longest one download may take in all."""


class ProxySettings(DownloadLimits, Protocol):
    """
    What the upstream reads of C{[upstream]}
    (L{pypid.config.upstream_settings.UpstreamConfig}, a layer above).
    """

    @property
    def mode(self) -> str:
        """C{none}, C{redirect} or C{cache}."""

    @property
    def max_misses_per_address(self) -> int:
        """Requests that must ask the upstream, per client address and minute."""


class UpstreamIdentity(Protocol):
    """
    What pypid tells an upstream that wants to know who asks
    (L{pypid.config.upstream_settings.UpstreamCredentials}, a layer above).
    """

    @property
    def username(self) -> str | None:
        """The user name of Basic authentication; L{None} for a bearer token."""

    @property
    def secret(self) -> str:
        """The password, or the token."""


class UpstreamSettings(ProxySettings, Protocol):
    """
    C{[upstream]} as the factory reads it
    (L{pypid.config.upstream_settings.UpstreamConfig}, a layer above).
    """

    @property
    def url(self) -> str:
        """The upstream's simple index root."""

    @property
    def hosts(self) -> tuple[str, ...]:
        """Where files may come from."""

    @property
    def ttl(self) -> float:
        """How long a page is fresh."""

    @property
    def max_page_size(self) -> int:
        """The largest page read."""

    @property
    def max_page_files(self) -> int:
        """The most entries one page may list."""

    @property
    def page_cache_size(self) -> int:
        """The memory budget of the cached pages."""

    @property
    def private(self) -> tuple[str, ...]:
        """Names never asked upstream."""

    @property
    def merge(self) -> tuple[str, ...]:
        """Hosted projects that show upstream files too."""

    @property
    def min_age(self) -> float:
        """The cooldown of new upstream files."""

    @property
    def min_age_exempt(self) -> tuple[str, ...]:
        """Projects without the cooldown."""

    @property
    def credentials(self) -> UpstreamIdentity | None:
        """Who pypid says it is to the upstream, or L{None}."""
