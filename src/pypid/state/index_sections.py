"""
What the configuration says of each index: its upload and advisory rules,
retention keys, pages' base URL, sources in order and a view's filters.
Apart from L{pypid.state.indexes} because the daemon and the static export
(C{pypid-export --index}) read an index alike, and a reload reads it again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from pypid.config import Config
from pypid.config.index_settings import IndexConfig
from pypid.config.retention_settings import RetentionKeys
from pypid.config.server_settings import ServerConfig
from pypid.core.access.upload_rules import UploadRules
from pypid.core.indexes.composition import Filters
from pypid.core.indexes.index_names import DEFAULT, UPSTREAM_PREFIX, resolve_order
from pypid.core.security.advisories import AdvisoryRules


def retention(config: Config, name: str) -> RetentionKeys:
    """The retention keys of the hosted index C{name}: its section's, else C{[retention]}'s."""
    settings = config.indexes.get(name) if name != DEFAULT else None
    return settings if settings is not None else config.retention


_T = TypeVar("_T")


def _by_index(config: Config, pick: Callable[[ServerConfig | IndexConfig], _T]) -> dict[str, _T]:
    """C{pick(section)} of each index: the default's of C{[pypid]}, the others' of their own."""
    return {DEFAULT: pick(config.server), **{name: pick(settings) for name, settings
                                              in config.indexes.items() if name != DEFAULT}}


def upload_rules(config: Config) -> dict[str, UploadRules]:
    """Each index's L{UploadRules}."""
    return _by_index(config, lambda section: section.upload_rules)


def advisory_rules(config: Config) -> dict[str, AdvisoryRules]:
    """Each index's L{AdvisoryRules}."""
    return _by_index(config, lambda section: section.advisory_rules)


def index_base(base_url: str | None, name: str) -> str | None:
    """The base URL of the index C{name}'s pages (served under C{/NAME/}), if any."""
    if base_url is None or name == DEFAULT:
        return base_url
    return f"{base_url}{name}/"


def source_order(config: Config, name: str) -> tuple[str, ...]:
    """
    The sources index C{name} reads, in order (L{resolve_order}): indexes by
    name, upstreams as C{upstream:NAME} (the default's base is C{[upstream]}).
    """
    bases = {other: [str(base) for base in index.bases]
             for other, index in config.indexes.items() if other != DEFAULT}
    if config.upstream.mode != "none":
        bases[DEFAULT] = [UPSTREAM_PREFIX + DEFAULT]
    views = {other for other, index in config.indexes.items() if index.view}
    return resolve_order(name, bases, views)


def view_filters(settings: IndexConfig) -> Filters:
    """A view's filters, from its section (the daemon's, and the static export's)."""
    return Filters(
        min_age=settings.min_age,
        as_of=settings.as_of.timestamp() if settings.as_of is not None else None,
        include=settings.include or ("*",), exclude=settings.exclude,
        hide_prereleases=settings.prereleases == "hide",
        hide_yanked=settings.yanked == "hide")


def hosted_names(config: Config) -> list[str]:
    """The hosted indexes of C{config}: the default, then the named ones not views, bases first."""
    return [DEFAULT, *(name for name in bases_first(config.indexes)
                       if name != DEFAULT and not config.indexes[name].view)]


def bases_first(indexes: Mapping[str, IndexConfig]) -> Sequence[str]:
    """The index names, each after the indexes it is based on, else in file order."""
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order or name not in indexes:
            return
        # (cycles were refused with the configuration)
        for base in indexes[name].bases:
            if not base.upstream:
                visit(base.name)
        order.append(name)

    for name in indexes:
        visit(name)
    return order
