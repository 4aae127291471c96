"""
The web side of an index's upstreams: what C{simple/<project>/}, C{files/<project>/<filename>}
and C{integrity/...} answer, under C{/} as under C{/NAME/}, for a project one of its upstreams
is asked about.

Called only when the index's composition asks an upstream (L{ComposedIndex.upstreams}), so
hosted projects never pay for it; a hosted name is never looked up upstream unless the
upstream merges it (L{pypid.upstream.confusion}). An upstream file is served only while the
index lists it (the chain's rules, its quarantines and a view's filters applied). The
upstream's own modules are imported by the functions given an upstream, not with this module,
which the hot path imports: 24 ms of every start without C{[upstream]}.

A project the upstream quarantines (PEP 792, as its cached page says) serves no file, not even
one kept here before: 404, as the public index answers, naming the reason. The kept files stay
on disk, served again once a refreshed page lifts the quarantine; admins are refused too (the
upstream's files are not theirs to release). A quarantine outlives the project's removal
upstream (L{pypid.upstream.quarantines}); a kept file no page lists answers 404 saying so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from twisted.internet.defer import Deferred, DeferredList, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.web.server import Request

from pypid.core.dists.model import FileRecord
from pypid.core.dists.variant_files import is_variants_filename
from pypid.core.indexes.composed import ComposedIndex
from pypid.core.indexes.render import JSON, AgedPage, Page
from pypid.core.util.http_errors import Gone, NotFound, TooManyRequests
from pypid.storage.base.interface import Location
from pypid.web.identity.request_auth import client_address
from pypid.web.server.respond import Answer, finish_later, page_kind, send_page
from pypid.web.serving.integrity import no_provenance, same_version, send_provenance
from pypid.web.serving.stored_objects import send_stored
from pypid.web.serving.upstream_files import answer_file, file_of, upstream_failed

if TYPE_CHECKING:
    # (types only: the upstream's modules load with a configured upstream)
    from pypid.upstream.page_model import UpstreamFile
    from pypid.upstream.source import SourceSide, UpstreamSource

#: Offered by a page served stale (RFC 9111's Warning is obsolete, but
#: proxies and people still read it; Age says how stale).
_STALE_WARNING = b'110 pypid "Response is Stale"'


def answer_chain_provenance(request: Request, composed: ComposedIndex,
                            sides: Mapping[str, SourceSide], project: str, version: str,
                            filename: str, content_type: str, clock: IReactorTime) -> Answer:
    """
    The provenance of a file an index lists from one of its upstreams: pypid's copy of the
    upstream's, checked against the file's sha256 (fetched now if need be). 404 when the index
    does not list the file, or the upstream offers no provenance, or one that did not check.
    """
    found = _listed_in(composed, sides, project, filename, clock.seconds())
    if found is None:
        raise NotFound("no such file")
    listed, side = found
    if not same_version(listed.version, version):
        raise no_provenance(filename)
    files = side.source.files
    stored = files.kept(filename)
    # (the bytes served: the kept file's, whatever the page now says)
    served = stored.sha256 if stored is not None and stored.project == project \
        else listed.sha256
    return send_provenance(request, files.provenance(listed), filename, None, content_type,
                           served)


def refuse_quarantined() -> None:
    """404 for a file of a project the upstream quarantines (PEP 792), saying so."""
    raise NotFound("this project is quarantined upstream: none of its files is served")


def answer_chain_page(request: Request, composed: ComposedIndex, sides: Sequence[SourceSide],
                      project: str, clock: IReactorTime) -> int:
    """
    Answer C{simple/<project>/} of an index whose page reads upstreams (C{sides}): each one's
    cached page is brought up to date first (fresh; stale while a refresh runs; fetched while
    the client waits, charged to its address), then the page is composed. An upstream that
    fails leaves the page to the others (a C{Warning} says it may be stale); with nothing found
    anywhere, its failure is the answer (502, or 404 offline).
    """
    kind = page_kind(request)
    redirect, waits = bring_up_to_date(request, sides, project)

    def answer(results: list[tuple[bool, Any]]) -> bytes:
        from pypid.upstream.cache import Offline
        from pypid.upstream.fetch import UpstreamError
        stale = False
        fetched: float | None = None
        failed: list[BaseException] = []
        for ok, value in results:
            if ok:
                entry, late = value
                stale = stale or late
                if entry.page is not None:
                    fetched = min(fetched, entry.fetched_at) if fetched is not None \
                        else entry.fetched_at
            elif value.check(Offline, UpstreamError):
                failed.append(value.value)
            else:
                value.raiseException()
        page = composed.page(project, kind, clock.seconds())
        if page is None:
            if redirect is not None:
                return _send_found(request, f"{redirect.source.client.index_url}{project}/")
            upstream_failure(failed)
            raise NotFound("no such project")
        body = send_page(request, page)
        if fetched is not None:
            # (how long ago the oldest upstream page it was made of was fetched)
            age = max(clock.seconds() - fetched, 0.0)
            request.responseHeaders.setRawHeaders(b"age", [b"%d" % age])
        if stale or failed:
            request.responseHeaders.setRawHeaders(b"warning", [_STALE_WARNING])
        return body
    return finish_later(request, DeferredList(waits, consumeErrors=True).addCallback(answer))


def bring_up_to_date(request: Request, sides: Sequence[SourceSide], project: str,
                     ) -> tuple[SourceSide | None, list[Deferred[Any]]]:
    """
    Bring each caching upstream's page of C{project} up to date (a fetch charged to the
    client's address: 429 past its budget): C{(the first redirecting side or None, each
    cache's C{(entry, late)} to come)}.
    """
    redirect: SourceSide | None = None
    waits: list[Deferred[Any]] = []
    for side in sides:
        source = side.source
        if source.mode == "redirect":
            redirect = redirect or side
        elif source.mode == "cache":
            if source.pages.would_fetch(project):
                _charge_source(request, source)
            waits.append(ensureDeferred(source.pages.get(project)))
    return redirect, waits


def upstream_failure(failed: Sequence[Any]) -> None:
    """
    When an index found nothing of a project: raise the answer its upstreams' failures make
    (502 for an upstream that failed, 404 offline); nothing without one.
    """
    from pypid.upstream.cache import Offline
    from pypid.upstream.fetch import UpstreamError
    errors = [getattr(f, "value", f) for f in failed]
    for error in errors:
        if not isinstance(error, (Offline, UpstreamError)):
            raise error
    for error in errors:
        if isinstance(error, UpstreamError):
            raise upstream_failed(error)
    if any(isinstance(error, Offline) for error in errors):
        raise NotFound("no such project in the cache (the server is offline)")


def plain_chain_page(composed: ComposedIndex, sides: Sequence[SourceSide], project: str, kind: str,
                     clock: IReactorTime) -> Page | AgedPage | None:
    """
    For the express lane: the page L{answer_chain_page} would send as it is now, when every
    upstream of C{sides} is a cache whose page of C{project} is fresh (the hits counted alike)
    and the view lists the project, with its C{Age} when an upstream's page is part of it.
    L{None} for a page to fetch or refresh, a redirecting upstream, a quarantine, none to list.
    """
    fetched: float | None = None
    for side in sides:
        source = side.source
        if source.mode != "cache":
            return None
        entry = source.pages.hit(project)
        if entry is None:
            return None
        if entry.page is not None:
            fetched = entry.fetched_at if fetched is None else min(fetched, entry.fetched_at)
    if composed.quarantined(project):
        return None
    now = clock.seconds()
    page = composed.page(project, kind, now)
    if page is None:
        return None
    for side in sides:
        side.source.pages.count_hit()
    if fetched is None:
        return page
    return AgedPage(page, b"%d" % max(now - fetched, 0.0))


def plain_chain_file(composed: ComposedIndex, sides: Mapping[str, SourceSide], project: str,
                     filename: str, clock: IReactorTime) -> tuple[Location, bytes] | None:
    """
    For the express lane: where the upstream file (or metadata) L{answer_chain_file} would
    send now is kept, and its ETag, when the index lists it and no fetch is needed; else L{None}.
    """
    name, metadata = file_of(filename)
    found = _listed_in(composed, sides, project, name, clock.seconds())
    if found is None:
        return None
    listed, side = found
    files = side.source.files
    if metadata:
        kept = files.kept_metadata(listed)
        if kept is None:
            return None
        location, digest = kept
        return location, b'"%s"' % digest.encode("ascii")
    stored = files.kept(name)
    if stored is None or stored.project != project or listed.variant is not None:
        # (a variant wheel is held to its data first: L{answer_file})
        return None
    files.served_kept(stored)
    return files.locate(stored), b'"%s"' % stored.sha256.encode("ascii")


def answer_chain_file(request: Request, composed: ComposedIndex, sides: Mapping[str, SourceSide],
                      project: str, filename: str, clock: IReactorTime,
                      deleted: bool = False) -> int:
    """
    Answer C{files/<project>/<filename>} (or its C{.metadata}) from the upstream whose file the
    index lists under that name, fetched on its first download. C{deleted}: a hosted source
    deleted the file, 410 if no upstream lists it.
    """
    return finish_later(request, ensureDeferred(
        _chain_file(request, composed, sides, project, filename, clock, deleted)))


async def _chain_file(request: Request, composed: ComposedIndex, sides: Mapping[str, SourceSide],
                      project: str, filename: str, clock: IReactorTime,
                      deleted: bool) -> Answer:
    name, metadata = file_of(filename)
    if is_variants_filename(name):
        # (PEP 825: the file a page made of the variant wheels it lists, once cached)
        failed = await _look_again(request, composed, sides, project)
        page = None if metadata else composed.page(project, JSON, clock.seconds())
        variants = page.variants.get(filename) if page is not None else None
        if variants is not None:
            return send_page(request, variants)
        if page is None and not deleted:
            # (no page to make it of: answered as the page would be)
            upstream_failure(failed)
        # (no distribution has such a name: nothing to look for further)
        raise NotFound("no such file")
    found = _listed_in(composed, sides, project, name, clock.seconds())
    if found is None:
        # Not seen yet (a client with an old copy of a page): look again.
        await _look_again(request, composed, sides, project)
        found = _listed_in(composed, sides, project, name, clock.seconds())
    if found is None:
        if deleted:
            raise Gone("this file was deleted")
        if _quarantined_upstream(composed, project, clock.seconds()):
            refuse_quarantined()
        unlisted = _kept_unlisted(composed, sides, project, name)
        if unlisted is not None:
            record, source = unlisted
            if _still_served(composed, source, project, record, clock.seconds()) and not metadata:
                # (the operator keeps serving what the upstream took down)
                source.files.served_kept(record)
                return send_stored(request, record, source.files.locate(record),
                                   b'"%s"' % record.sha256.encode("ascii"))
            if _without_data(source, project, name):
                raise NotFound(WITHOUT_DATA)
            raise NotFound("this file was removed upstream: no page lists it now, and the "
                           "copy kept here is not served ([upstream] keep_removed is off)")
        raise NotFound("no such file")
    listed, side = found
    if side.source.files.would_fetch(project, name, metadata):
        _charge_source(request, side.source)
    return await answer_file(request, side.source.files, listed, project, filename)


async def _look_again(request: Request, composed: ComposedIndex, sides: Mapping[str, SourceSide],
                      project: str) -> list[Exception]:
    """
    Bring the pages of C{project} the index reads from its caching upstreams up to date (a
    client with an old copy of a page, or one the cache forgot), as a page's request does; the
    failures of the upstreams that could give none (L{upstream_failure} answers them).
    """
    from pypid.upstream.cache import Offline
    from pypid.upstream.fetch import UpstreamError
    failed: list[Exception] = []
    for asked in composed.upstreams(project):
        source = sides[asked.name].source
        if source.mode != "cache":
            continue
        if source.pages.would_fetch(project):
            _charge_source(request, source)
        try:
            await source.pages.get(project)
        except (Offline, UpstreamError) as e:
            failed.append(e)
    return failed


def _listed_in(composed: ComposedIndex, sides: Mapping[str, SourceSide], project: str,
               filename: str, now: float) -> tuple[UpstreamFile, SourceSide] | None:
    """The upstream file C{filename} as the index lists it now, and its upstream."""
    listing = composed.listing(project, now)
    if listing is None:
        return None
    for f, source in listing.files:
        if f.filename == filename:
            if source.upstream is None:
                return None  # (a hosted file, which the hosted sources did not hold)
            # (an upstream's files are UpstreamFiles: SourceSide.cached)
            return cast("UpstreamFile", f), sides[source.name]
    return None


def _quarantined_upstream(composed: ComposedIndex, project: str, now: float) -> bool:
    """Whether an upstream quarantines the index's page of C{project} (a hosted one: before)."""
    listing = composed.listing(project, now)
    return (listing is not None and listing.status is not None
            and listing.status.quarantined)


def _still_served(composed: ComposedIndex, source: UpstreamSource, project: str, record: FileRecord,
                  now: float) -> bool:
    """
    Whether the kept C{record}, which no page lists, is served all the same: its upstream keeps
    what it took down (C{keep_removed}), this file was taken down (not left out by the view,
    nor withheld by a remembered quarantine), and the view would list it.
    """
    return (source.settings.keep_removed and record.filename in source.takedowns
            and source.pages.quarantines.get(project) is None
            and composed.filters.admits_project(project)
            and composed.filters.admits(record, True, now))


#: why a kept variant wheel the upstream lists is not served
WITHOUT_DATA = ("the upstream lists this variant wheel, but pypid could not read its data "
                "(its release's index-level file, PEP 825): not served until it can")


def _without_data(source: UpstreamSource, project: str, filename: str) -> bool:
    """Whether C{source}'s page of C{project} lists variant wheel C{filename} without its data."""
    entry = source.pages.entries.get(project)
    return entry is not None and entry.page is not None and any(
        f.filename == filename for f in entry.page.variant_wheels)


def _kept_unlisted(composed: ComposedIndex, sides: Mapping[str, SourceSide], project: str,
                   filename: str) -> tuple[FileRecord, UpstreamSource] | None:
    """The kept file C{filename} of C{project} that no page lists, and its upstream, or L{None}."""
    for asked in composed.upstreams(project):
        source = sides[asked.name].source
        record = source.files.kept(filename)
        if record is not None and record.project == project:
            return record, source
    return None


def _charge_source(request: Request, source: UpstreamSource) -> None:
    """Refuse (429) a request that asks C{source} when its address used up its budget."""
    _refuse_after(source.charge(client_address(request)))


def _refuse_after(wait: float | None) -> None:
    """429, to try again after C{wait} seconds (L{None}: go on)."""
    if wait is not None:
        raise TooManyRequests(
            "too many requests for projects and files the cache does not hold from this "
            "address; try again later", [(b"retry-after", b"%d" % max(1, math.ceil(wait)))])


def _send_found(request: Request, target: str) -> bytes:
    """302 to the upstream's own page (C{redirect} mode)."""
    request.setResponseCode(302)
    request.responseHeaders.setRawHeaders(b"location", [target.encode("ascii")])
    request.responseHeaders.setRawHeaders(b"cache-control", [b"no-store"])
    request.responseHeaders.setRawHeaders(b"content-type", [b"text/plain; charset=utf-8"])
    return b"Found at the upstream index\n"
