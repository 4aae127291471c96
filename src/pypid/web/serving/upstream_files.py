"""
One upstream file (or its metadata) that an index lists, sent: the copy kept here, else
fetched now, the client that asked fed while its bytes are checked (L{_ClientTee}) and the
answer broken off if they prove wrong. L{pypid.web.serving.upstream_pages} decides what an
index lists; this is the transfer itself.

The upstream's own modules are imported by the functions given an upstream (which loaded them
already), not with this module, which the hot path imports.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from twisted.web.server import NOT_DONE_YET, Request

from pypid.core.util.http_errors import BadGateway, NotFound, Unavailable
from pypid.storage.base.interface import StorageError
from pypid.web.server.respond import RETRY_AFTER, Answer, connected, storage_unavailable
from pypid.web.serving.stored_objects import (
    FILE_CACHE_CONTROL,
    FILE_CONTENT_TYPE,
    send_bytes,
    send_stored,
)

if TYPE_CHECKING:
    # (types only: the upstream's modules load with a configured upstream)
    from pypid.upstream.downloads import UpstreamFiles
    from pypid.upstream.fetch import UpstreamError
    from pypid.upstream.page_model import UpstreamFile
    from pypid.upstream.transfer import ToFile


def file_of(filename: str) -> tuple[str, bool]:
    """C{(name of the distribution, whether its .metadata is asked for)}."""
    name = filename.removesuffix(".metadata")
    return name, name != filename


async def answer_file(request: Request, files: UpstreamFiles, listed: UpstreamFile,
                      project: str, filename: str) -> Answer:
    """L{_file_answer}, the upstream's and the storage's failures answered."""
    from pypid.upstream.cache import Offline
    from pypid.upstream.downloads import DownloadsBusy
    from pypid.upstream.fetch import UpstreamNotFound
    try:
        return await _file_answer(request, files, listed, project, filename)
    except DownloadsBusy as e:
        raise Unavailable(str(e), [(b"retry-after", RETRY_AFTER)])
    except UpstreamNotFound:
        raise NotFound("no such file upstream")
    except Offline:
        raise NotFound("no such file in the cache (the server is offline)")
    except StorageError as e:
        raise storage_unavailable(e)


async def _file_answer(request: Request, files: UpstreamFiles, listed: UpstreamFile,
                       project: str, filename: str) -> Answer:
    """
    Send the upstream file C{listed} (the index lists it), or its metadata: the copy kept here,
    else fetched now (the client fed while its bytes are checked).
    """
    from pypid.upstream.downloads import check_variant_data
    from pypid.upstream.fetch import UpstreamError
    name, metadata = file_of(filename)
    stored = files.kept(name)
    if stored is not None and stored.project != project:
        stored = None
    # (a file kept already is a hit; one fetched now was counted by the fetch)
    hit = stored is not None
    try:
        if metadata:
            data = await files.metadata(listed)
            if data is None:
                raise NotFound("no such file")
            return send_bytes(request, data, b'"%s"' % hashlib.sha256(data).hexdigest().encode())
        if stored is None:
            tee = (_ClientTee(request, listed)
                   if _plain_get(request) and _sees_cut_short(request, listed) else None)
            try:
                stored = await files.fetch(listed, tee)
            except UpstreamError:
                if tee is not None and tee.started:
                    return NOT_DONE_YET  # the answer was broken off already
                raise
            if tee is not None and tee.started:
                return NOT_DONE_YET
        if listed.variant is not None:
            # (kept, or fetched for another request, under a page's data then: held to this one's)
            check_variant_data(name, stored.variant, listed.variant)
    except UpstreamError as e:
        raise upstream_failed(e)
    files.served_kept(stored, hit)
    return send_stored(request, stored, files.locate(stored),
                       b'"%s"' % stored.sha256.encode("ascii"))

def _sees_cut_short(request: Request, listed: UpstreamFile) -> bool:
    """
    Whether the client can tell a body broken off from a whole one, so that it may be fed
    while the file is fetched: HTTP/1.1 (chunked, or a length), or a length from the page. An
    HTTP/1.0 client without a length takes the end of the connection for the end of the file:
    it is answered once the bytes are checked.
    """
    return listed.size is not None or request.clientproto == b"HTTP/1.1"


def _plain_get(request: Request) -> bool:
    """A whole-file GET (ranges and conditions are answered once the file is kept)."""
    headers = request.requestHeaders
    return (request.method == b"GET" and not headers.hasHeader(b"range")
            and not headers.hasHeader(b"if-none-match"))


class _ClientTee:
    """
    Feeds the client that started a download while the file is fetched and checked. The
    answer is finished only when the bytes matched the page's sha256; otherwise the connection
    is closed before the end: a broken download, never a wrong file. A slow client holds the
    transfer back; a client that leaves does not stop it (the file is still kept).
    """

    #: the transfer being fed from (set as the bytes start)
    _transfer: ToFile

    def __init__(self, request: Request, upstream_file: UpstreamFile) -> None:
        self._request = request
        self._file = upstream_file
        self._held: bytes | None = None
        self._registered = self._registered_once = False
        self.started = False

    def start(self, transfer: ToFile) -> None:
        """The first bytes are coming: set the headers, follow the client's pace."""
        self._transfer = transfer
        request = self._request
        if not connected(request):
            return
        headers = request.responseHeaders
        headers.setRawHeaders(b"content-type", [FILE_CONTENT_TYPE])
        headers.setRawHeaders(b"etag", [b'"%s"' % self._file.sha256.encode("ascii")])
        headers.setRawHeaders(b"cache-control", [FILE_CACHE_CONTROL])
        if self._file.size is not None:
            headers.setRawHeaders(b"content-length", [b"%d" % self._file.size])
        request.registerProducer(self, True)
        self._registered = self._registered_once = True

    def write(self, data: bytes) -> None:
        """
        Pass bytes on to the client, if still there, always holding the latest piece back until
        the whole file matched its hash: a client never receives every byte of a wrong file.
        """
        held, self._held = self._held, data
        if held is not None and connected(self._request) and not self._request.finished:
            self.started = True
            self._request.write(held)

    def pauseProducing(self) -> None:
        """The client reads slowly: hold the transfer."""
        self._transfer.hold("client")

    def resumeProducing(self) -> None:
        """The client caught up."""
        self._transfer.release("client")

    def stopProducing(self) -> None:
        """The client left: the transfer goes on for the cache."""
        self._transfer.release("client")

    def finish(self) -> None:
        """The bytes were right: send the last piece and end the answer."""
        request = self._request
        held, self._held = self._held, None
        self._unregister()
        if not self._registered_once:
            return  # never fed: the caller answers from the kept file
        if connected(request) and not request.finished:
            if held is not None:
                request.write(held)
            self.started = True
            request.finish()
        else:
            self.started = True  # nothing more to answer

    def abort(self) -> None:
        """
        The bytes were wrong or cut short: break the answer off (before any byte went out,
        the caller answers 502).
        """
        request = self._request
        self._held = None
        self._unregister()
        if connected(request) and not request.finished:
            if self.started:
                request.loseConnection()
            else:
                for name in (b"content-length", b"etag", b"cache-control"):
                    request.responseHeaders.removeHeader(name)

    def _unregister(self) -> None:
        if self._registered:
            self._registered = False
            if connected(self._request) and not self._request.finished:
                self._request.unregisterProducer()


def upstream_failed(error: UpstreamError) -> BadGateway:
    """
    The 502 of an upstream that failed; a host refused keeps its advice (the line of C{hosts}
    to write) as the remedy, whole in the status line however long the reason before it.
    """
    from pypid.upstream.fetch import HostRefused
    if isinstance(error, HostRefused):
        return BadGateway(f"the upstream index failed: {error.why}", remedy=error.advice)
    return BadGateway(f"the upstream index failed: {error}")
