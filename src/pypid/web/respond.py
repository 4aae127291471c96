"""
Writing answers: pre-rendered pages, stored files, and errors.

These run on every request, so they only set headers and pick bytes that
were prepared earlier. Conditional requests (C{If-None-Match}), compression
(pre-compressed pages) and byte ranges are handled here, once.
"""

import os
import re

from twisted.web.server import NOT_DONE_YET
from twisted.web.static import NoRangeStaticProducer, SingleRangeStaticProducer

from pypid.auth import www_authenticate_header
from pypid.errors import Unauthorized, reason_phrase
from pypid.negotiate import accepts_gzip

PAGE_CACHE_CONTROL = b"max-age=0, must-revalidate"
FILE_CACHE_CONTROL = b"max-age=365000000, immutable"
FILE_CONTENT_TYPE = b"application/octet-stream"
TEXT = b"text/plain; charset=utf-8"

#: Files up to this size are read and written in one piece; larger ones are
#: streamed by a producer that follows the client's pace.
_SMALL_FILE = 256 << 10

_RANGE = re.compile(rb"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


def etag_matches(header_values, etag):
    """
    Whether an C{If-None-Match} header matches C{etag} (weak comparison, as
    RFC 9110 asks for C{If-None-Match}).
    """
    for value in header_values:
        for candidate in value.split(b","):
            candidate = candidate.strip()
            if candidate.startswith((b"W/", b"w/")):
                candidate = candidate[2:]
            if candidate == etag or candidate == b"*":
                return True
    return False


def send_page(request, page):
    """
    Answer with a pre-rendered L{pypid.index.Page}: gzip when the client takes
    it, 304 when it has this version already.

    @return: the body to return from C{render}.
    """
    headers = request.responseHeaders
    gz = page.gzipped is not None and accepts_gzip(
        request.requestHeaders.getRawHeaders(b"accept-encoding", (None,))[0])
    etag = page.gzip_etag if gz else page.etag
    headers.setRawHeaders(b"content-type", [page.content_type])
    headers.setRawHeaders(b"etag", [etag])
    headers.setRawHeaders(b"cache-control", [PAGE_CACHE_CONTROL])
    headers.setRawHeaders(b"vary", [b"Accept, Accept-Encoding"])
    inm = request.requestHeaders.getRawHeaders(b"if-none-match")
    if inm and etag_matches(inm, etag):
        request.setResponseCode(304)
        return b""
    if gz:
        headers.setRawHeaders(b"content-encoding", [b"gzip"])
        return page.gzipped
    return page.body


def send_text(request, code, message, headers=()):
    """Answer with a short plain-text message."""
    request.setResponseCode(code, reason_phrase(message) if code >= 400 else None)
    request.responseHeaders.setRawHeaders(b"content-type", [TEXT])
    request.responseHeaders.setRawHeaders(b"cache-control", [b"no-store"])
    for name, value in headers:
        request.responseHeaders.setRawHeaders(name, [value])
    return message.encode("utf-8") + b"\n"


def send_error(request, error):
    """Answer with an L{HTTPError}: its status, reason phrase and message."""
    headers = list(error.headers)
    if isinstance(error, Unauthorized):
        headers.append((b"www-authenticate", www_authenticate_header()))
    return send_text(request, error.code, error.message, headers)


def parse_range(header, size):
    """
    Parse a single C{Range: bytes=...} header against a file of C{size}.

    @return: C{(start, end)} inclusive, L{None} to send the whole file
        (no range, several ranges or a malformed one), or C{"unsatisfiable"}.
    """
    match = _RANGE.match(header)
    if not match:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0:
            return "unsatisfiable"
        return (max(size - suffix, 0), size - 1) if size else "unsatisfiable"
    start = int(first)
    if start >= size:
        return "unsatisfiable"
    end = int(last) if last else size - 1
    if end < start:
        return None
    return start, min(end, size - 1)


def _plan(request, size, etag, content_type):
    """
    Set the headers of a stored object's answer and decide what to send.

    @return: C{(start, length)} of the bytes to send, or C{(body, None)} when
        the answer is complete already (304, 416).
    """
    headers = request.responseHeaders
    headers.setRawHeaders(b"content-type", [content_type])
    headers.setRawHeaders(b"etag", [etag])
    headers.setRawHeaders(b"cache-control", [FILE_CACHE_CONTROL])
    headers.setRawHeaders(b"accept-ranges", [b"bytes"])
    reqheaders = request.requestHeaders
    inm = reqheaders.getRawHeaders(b"if-none-match")
    if inm and etag_matches(inm, etag):
        request.setResponseCode(304)
        return b"", None
    byte_range = None
    range_header = reqheaders.getRawHeaders(b"range")
    if range_header:
        if_range = reqheaders.getRawHeaders(b"if-range")
        if not if_range or if_range[0].strip() == etag:
            byte_range = parse_range(range_header[0], size)
    if byte_range == "unsatisfiable":
        request.setResponseCode(416)
        headers.setRawHeaders(b"content-range", [b"bytes */%d" % size])
        headers.setRawHeaders(b"content-type", [TEXT])
        return b"Requested range not satisfiable\n", None
    if byte_range is not None:
        start, end = byte_range
        request.setResponseCode(206)
        headers.setRawHeaders(b"content-range", [b"bytes %d-%d/%d" % (start, end, size)])
        return start, end - start + 1
    return 0, size


def send_bytes(request, data, etag, content_type=FILE_CONTENT_TYPE):
    """Send a stored object held in memory, like L{send_file}."""
    start, length = _plan(request, len(data), etag, content_type)
    if length is None:
        return start
    request.responseHeaders.setRawHeaders(b"content-length", [b"%d" % length])
    if request.method == b"HEAD":
        return b""
    return data[start:start + length]


def send_file(request, path, etag, content_type=FILE_CONTENT_TYPE):
    """
    Send a stored file with its validators, honouring C{If-None-Match},
    C{Range} and C{If-Range}. Immutable: a file URL never changes content.
    Small files go out in one write; larger ones through a producer that
    reads as fast as the client takes them, so a slow reader costs no memory.

    @raise FileNotFoundError: when the file is gone.
    """
    f = open(path, "rb")
    try:
        size = os.fstat(f.fileno()).st_size
        start, length = _plan(request, size, etag, content_type)
        if length is None:
            f.close()
            return start
        request.responseHeaders.setRawHeaders(b"content-length", [b"%d" % length])
        if request.method == b"HEAD":
            f.close()
            return b""
        if length <= _SMALL_FILE:
            f.seek(start)
            data = f.read(length)
            f.close()
            return data
        if length != size:
            SingleRangeStaticProducer(request, f, start, length).start()
        else:
            NoRangeStaticProducer(request, f).start()
        return NOT_DONE_YET
    except BaseException:
        f.close()
        raise
