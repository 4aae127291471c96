"""
C{files/<project>/<filename>} (and its C{.metadata}) of one index: one decider,
L{IndexFiles.decide}, whose value (L{pypid.web.serving.read_decisions}) the resource delivers
whatever it is, and the express lane only when it is a file to send as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.web.server import Request

from pypid.auth.reader import Reader
from pypid.core.dists.model import FileRecord
from pypid.core.dists.names import is_valid_name, normalize
from pypid.core.dists.variant_files import is_variants_filename
from pypid.core.indexes.composed import ComposedIndex
from pypid.core.indexes.composition import Filters
from pypid.core.indexes.render import JSON, Page
from pypid.core.util.http_errors import Gone, HTTPError, NotFound
from pypid.state.backfill import Backfill
from pypid.state.hosted_source import HostedSource
from pypid.web.identity.gates import Gates
from pypid.web.identity.request_auth import client_address
from pypid.web.server.respond import Answer, send_page
from pypid.web.serving.denied_files import DeniedDownloads
from pypid.web.serving.index_pages import as_admin
from pypid.web.serving.integrity import send_stored_provenance
from pypid.web.serving.read_decisions import (
    AdminOnly,
    FileDecision,
    FromUpstream,
    PlainFile,
    StoredFile,
)
from pypid.web.serving.stored_objects import TAIL, send_stored, transfer_of
from pypid.web.serving.upstream_pages import (
    answer_chain_file,
    answer_chain_provenance,
    plain_chain_file,
)

if TYPE_CHECKING:
    from pypid.upstream.source import SourceSide

_METADATA_SUFFIX = ".metadata"


def _no_file() -> Answer:
    raise NotFound("no such file")


@attrs.frozen
class IndexFiles:
    """
    C{/NAME/files/<project>/<filename>} (and its C{.metadata}): from the first hosted source
    holding the file, if the index lists it (a view serves what it lists, else 404).
    """

    name: str
    composed: ComposedIndex
    sources: tuple[HostedSource, ...]
    access: Gates
    clock: IReactorTime
    upstreams: Mapping[str, SourceSide]
    #: refuses the files of the releases the index's advisories deny
    denied: DeniedDownloads
    #: the hosted sources' readings of files found without a record
    backfills: tuple[Backfill, ...] = attrs.field(init=False, default=attrs.Factory(
        lambda self: tuple(source.backfill for source in self.sources
                           if source.backfill is not None), takes_self=True))
    #: whether the index filters nothing (not a view): its own files need no composition
    _plain: bool = attrs.field(init=False, default=attrs.Factory(
        lambda self: self.composed.filters == Filters(), takes_self=True))

    def decide(self, reader: Reader, project: str, filename: str) -> FileDecision:
        """What a C{GET} of C{files/<project>/<filename>} gets, by who asks (C{reader})."""
        composed = self.composed
        if not reader.reads(project, self.name) \
                or not (self._plain or composed.admits(normalize(project))):
            return NotFound("no such file")
        if composed.quarantined(project):
            # (PEP 792: none of its files is offered, but to admins)
            return AdminOnly(lambda: self._file(project, filename, reveal=True),
                             lambda: NotFound("no such file"))
        return self._file(project, filename)

    def _file(self, project: str, filename: str, reveal: bool = False) -> FileDecision:
        """
        The file (or metadata) C{filename} of C{project} the index lists: from the first hosted
        source holding it live, if the composition lists it from there; else from the upstream
        that lists it. A file binned or deleted in a source hides nothing a later one holds.
        """
        if is_variants_filename(filename):
            variants = self._variants(project, filename)
            if variants is not None:
                return variants
        composed = self.composed
        advised = composed.advisories.affects(project)
        now = self.clock.seconds()
        metadata = filename.endswith(_METADATA_SUFFIX)
        deleted = False
        for i, source in enumerate(self.sources):
            record = source.index.get_file(filename, project)
            if record is not None and record.project == project and self._listed(
                    i, source, record, now, reveal):
                return StoredFile(source.storage.locate(record),
                                  b'"%s"' % record.sha256.encode("ascii"), source.usage,
                                  filename, record, record.version, advised)
            if metadata:
                record = source.index.get_file(filename[: -len(_METADATA_SUFFIX)], project)
                if (record is not None and record.project == project
                        and record.metadata_sha256 is not None
                        and self._listed(i, source, record, now, reveal)):
                    return StoredFile(source.storage.locate_metadata(record),
                                      b'"%s"' % record.metadata_sha256.encode("ascii"), None,
                                      filename, record, record.version, advised)
            deleted = deleted or source.index.deleted_from(filename) == project
        # (deleted everywhere it was, it is gone)
        if self.upstreams and is_valid_name(project) and normalize(project) == project \
                and composed.upstreams(project):
            return FromUpstream(project, filename, deleted, advised)
        if deleted:
            return Gone("this file was deleted")
        return NotFound("no such file")

    def answer(self, request: Request) -> Answer:
        """Send a file or its metadata; C{request.postpath} is what follows C{files}."""
        post: list[bytes] = request.postpath  # type: ignore[assignment]  # (set by process())
        if len(post) != 2:
            raise NotFound("no such file")
        project, filename = _text(post[0]), _text(post[1])
        return self.deliver(request, self.decide(self.access.reader(request), project, filename))

    def deliver(self, request: Request, decision: FileDecision) -> Answer:
        """Act on a decision of L{decide}, whatever it is."""
        if isinstance(decision, StoredFile):
            self._check(request, decision.record.project, decision.filename, decision.version)
            usage = decision.usage
            if usage is not None:
                # (a download is a whole body, or a range through its end, once a client)
                sent = transfer_of(request, decision.record.size, decision.etag)
                if sent is not None:
                    usage.count(decision.filename, client_address(request), sent == TAIL)
            return send_stored(request, decision.record, decision.location, decision.etag)
        if isinstance(decision, HTTPError):
            raise decision
        if isinstance(decision, Page):
            return send_page(request, decision)
        if isinstance(decision, FromUpstream):
            self._check(request, decision.project, decision.filename)
            return answer_chain_file(request, self.composed, self.upstreams, decision.project,
                                     decision.filename, self.clock, decision.deleted)
        admin = decision.admin
        return as_admin(self.access, request,
                        lambda: self.deliver(request, admin()),  # type: ignore[arg-type]
                        _no_file)

    def plain_file(self, rest: bytes) -> PlainFile | None:
        """
        For the express lane: what an anonymous whole C{GET} or C{HEAD} of C{files/<rest>} gets,
        when L{decide} says to send a stored file no advisory needs checking (a hosted source's,
        or an upstream's kept here); else L{None}. The caller counts the download.
        """
        if rest.count(b"/") != 1 or b"%" in rest:
            return None
        try:
            project, filename = rest.decode("utf-8").split("/")
        except UnicodeDecodeError:
            return None
        decision = self.decide(self.access.anonymous, project, filename)
        if isinstance(decision, StoredFile):
            return None if decision.advised else decision
        if isinstance(decision, FromUpstream) and not decision.advised:
            kept = plain_chain_file(self.composed, self.upstreams, project, filename, self.clock)
            return None if kept is None else PlainFile(*kept, None, "")
        return None

    def _variants(self, project: str, filename: str) -> Page | None:
        """
        The index-level file C{filename} (PEP 825) the index's page of C{project} links, as that
        page made it, so that it is what the page's hash names (the admins' page of a quarantined
        project, else everyone's); L{None} when the page links no such file.
        """
        composed, now = self.composed, self.clock.seconds()
        page = (composed.full_page(project, JSON, now) if composed.quarantined(project)
                else composed.page(project, JSON, now))
        return page.variants.get(filename) if page is not None else None

    def _listed(self, i: int, source: HostedSource, record: FileRecord, now: float,
                reveal: bool = False) -> bool:
        """
        Whether the index lists the live C{record} of its C{i}th source from there: its own
        files at once when it filters nothing; else as its composition says (a view's filters
        and date, an earlier source's file shadowing it). C{reveal}: as an admin's page of a
        quarantined project lists it.
        """
        if i == 0 and self._plain:
            return True
        listing = self.composed.listing(record.project, now, reveal=reveal)
        return listing is not None and any(
            f.filename == record.filename and chained.name == source.name
            for f, chained in listing.files)

    def provenance(self, request: Request, project: str, version: str, filename: str,
                   content_type: str) -> Answer:
        """
        The provenance of C{filename} (PEP 740), to whoever may download the file from this
        index (its rules, view filters and quarantine), from the first hosted source holding it.
        """
        filters = self.composed.filters
        if not self.access.reader(request).reads(project, self.name) \
                or not filters.admits_project(project):
            raise NotFound("no such file")
        if any(source.index.statuses.quarantined(project) for source in self.sources):
            return as_admin(self.access, request,
                            lambda: self._provenance(request, project, version, filename,
                                                     content_type, reveal=True), _no_file)
        return self._provenance(request, project, version, filename, content_type)

    def _provenance(self, request: Request, project: str, version: str, filename: str,
                    content_type: str, reveal: bool = False) -> Answer:
        for i, source in enumerate(self.sources):
            record = source.index.get_file(filename, project)
            if record is not None and record.project == project and self._listed(
                    i, source, record, self.clock.seconds(), reveal):
                return send_stored_provenance(request, source.storage, record, version,
                                              content_type)
        if self.upstreams and is_valid_name(project) and normalize(project) == project \
                and self.composed.upstreams(project):
            return answer_chain_provenance(request, self.composed, self.upstreams, project,
                                           version, filename, content_type, self.clock)
        raise NotFound("no such file")

    def _check(self, request: Request, project: str, filename: str,
               version: str | None = None) -> None:
        """Refuse (403) a file of a release the index's advisories deny."""
        self.denied.check(request, self.composed.advisories, self.name, project, filename,
                          version)


def _text(segment: bytes) -> str:
    try:
        return segment.decode("utf-8")
    except UnicodeDecodeError:
        raise NotFound("no such file")
