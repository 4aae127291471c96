"""
What one read of an index decides, as values: the decider of each read path returns one, and
two deliverers act on it: the resource on every kind, the express lane only on what it can
send as it is. One decision, so the two cannot drift apart. A page to send as it is, and
cache, is the L{Page} itself; a refusal is the L{HTTPError} to answer; the others are below.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from pypid.core.indexes.render import Page
from pypid.core.util.http_errors import HTTPError
from pypid.state.usage_log import UsageLog
from pypid.storage.base.interface import Location

if TYPE_CHECKING:
    from pypid.core.dists.model import FileRecord
    from pypid.upstream.source import SourceSide


@attrs.frozen
class Private:
    """A page only this reader may see (an admin's): sent, never kept by a cache."""

    page: Page


@attrs.frozen
class Moved:
    """A permanent redirect to the site's C{base} + C{path} (a name not normalized, say)."""

    path: str


@attrs.frozen
class AdminOnly:
    """A quarantined project (PEP 792): C{admin()} decides for an admin, C{reader()} for others."""

    admin: Callable[[], PageDecision | FileDecision]
    reader: Callable[[], PageDecision | FileDecision]


@attrs.frozen
class ReaderPage:
    """
    A project of a hidden namespace grant: C{hidden()} (its JSON page with the grant's files)
    to a reader who sees the grant, C{public} to others.
    """

    project: str
    hidden: Callable[[], Page]
    public: Page


@attrs.frozen
class ReaderRoot:
    """The project list as this reader may see it (rules hide some projects)."""

    kind: str


@attrs.frozen
class NamespacesAsked:
    """PEP 752's C{namespaces} list or C{namespace/<name>} detail: what a reader sees of them."""

    post: tuple[bytes, ...]


@attrs.frozen
class AskUpstream:
    """A project the index's upstreams hold: their page, fresh or fetched now."""

    sides: list[SourceSide]
    project: str
    kind: str


@attrs.define
class PlainFile:
    """
    A file (or its metadata) kept here, that the express lane may send as it is. Not frozen
    (no decision is changed once made): a frozen class's C{__init__} sets each field through
    C{object.__setattr__}, about 1 us more a download on the hot path.

    @ivar etag: its ETag, quotes included.
    @ivar usage: counts its downloads (a file's, not its metadata's), or L{None}.
    """

    location: Location
    etag: bytes
    usage: UsageLog | None
    filename: str


@attrs.define
class StoredFile(PlainFile):
    """
    A stored file (or its metadata) of a hosted source, to send; its C{version} for the
    advisories' check, which must run when C{advised} (an advisory names its project).
    """

    record: FileRecord
    version: str
    advised: bool


@attrs.frozen
class FromUpstream:
    """A file the index's upstreams hold, not the hosted ones (C{deleted}: one of them did)."""

    project: str
    filename: str
    deleted: bool
    advised: bool


#: What a read of C{simple/...} decides.
PageDecision = (Page | Private | Moved | AdminOnly | ReaderPage | ReaderRoot | NamespacesAsked
                | AskUpstream | HTTPError)

#: What a read of C{files/...} decides (a variants file is the L{Page} its page links).
FileDecision = StoredFile | FromUpstream | Page | AdminOnly | HTTPError
