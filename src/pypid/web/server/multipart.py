"""
A streaming, bounded C{multipart/form-data} parser for uploads (RFC 7578).

twine and C{uv publish} send a distribution as one multipart POST: many small text fields and
one C{content} file part as large as the index allows. The server feeds it to a L{FormSink}
chunk by chunk as it arrives (through L{SpooledForm}): the file part goes straight to a
temporary file while its digests are computed, the text fields stay in memory under explicit
limits. Memory stays flat whatever the file size, and a client that breaks a limit is refused
at once, not at the end of the body. Nothing here imports Twisted.

Not python-multipart: measured behind this interface, it is no faster and less strict
(docs/performance.rst, "The upload parser").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from contextlib import suppress
from urllib.parse import unquote_to_bytes

from pypid.storage.base.disk import remove_file
from pypid.web.server.upload_form import (
    Budget,
    DiskPart,
    Form,
    MemoryPart,
    MultipartError,
    quote,
)

# RFC 2046 section 5.1.1: 1 to 70 bchars, the last one not a space.
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]\Z")

# One header value: a token, then "; name=value" parameters, each value a token or a quoted
# string. Empty parameters (";;", a trailing ";") are tolerated: some clients send them.
_VALUE = re.compile(r'[ \t]*([^ \t;"]+)[ \t]*')
_PARAMETER = re.compile(
    r'[ \t]*;[ \t]*(?:([^ \t;="]+)[ \t]*=[ \t]*("(?:[^"\\]|\\.)*"|[^ \t;"]*))?[ \t]*'
)
_QUOTED_PAIR = re.compile(r"\\(.)")
# RFC 5987 ext-value: charset'language'percent-encoded.
_EXT_VALUE = re.compile(r"([^']*)'[^']*'(.*)\Z")

# The end of a part's header block. The block is kept with the line break of
# the boundary line in front, so an empty block is found the same way.
_HEADERS_END = re.compile(rb"\n\r?\n")
_LINE_BREAK = re.compile(r"\r?\n")
_PADDING = re.compile(rb"[ \t]*")

# Transport padding tolerated after a boundary before its line break.
_MAX_PADDING = 256

# Transfer encodings that leave the bytes as they are.
_IDENTITY_ENCODINGS = frozenset({"7bit", "8bit", "binary"})


def _parse_header_value(text: str) -> tuple[str, dict[str, str]]:
    """
    Split a header value into its lower-cased leading token and its parameters:
    C{(token, {name: value})}, names lower-cased, quoted values unquoted. An RFC 5987
    C{name*=charset'lang'value} parameter replaces the plain C{name} one, as RFC 6266 says; a
    parameter given twice is refused, since two parsers could pick different copies.

    @raise ValueError: if the value does not follow the grammar.
    """
    match = _VALUE.match(text)
    if match is None:
        raise ValueError("no value")
    token = match.group(1).lower()
    plain: dict[str, str] = {}
    extended: dict[str, str] = {}
    pos = match.end()
    while pos < len(text):
        match = _PARAMETER.match(text, pos)
        if match is None or match.end() == pos:
            raise ValueError("malformed parameters")
        pos = match.end()
        name, value = match.group(1, 2)
        if name is None:
            continue
        name = name.lower()
        if value.startswith('"'):
            value = _QUOTED_PAIR.sub(r"\1", value[1:-1])
        if name.endswith("*"):
            target, name = extended, name[:-1]
            value = _decode_ext_value(value)
        else:
            target = plain
        if name in target:
            raise ValueError(f"parameter {name!r} given twice")
        target[name] = value
    plain.update(extended)
    return token, plain


def _decode_ext_value(value: str) -> str:
    """
    Decode an RFC 5987 C{charset'language'percent-encoded} value; only UTF-8 and ISO-8859-1,
    the two charsets that RFC requires, are accepted.
    """
    match = _EXT_VALUE.match(value)
    if match is None:
        raise ValueError("malformed extended parameter")
    charset, encoded = match.groups()
    charset = charset.lower()
    if charset not in ("utf-8", "iso-8859-1"):
        raise ValueError(f"unsupported charset {charset!r}")
    return unquote_to_bytes(encoded).decode(charset)


def boundary_from_content_type(value: bytes) -> bytes:
    """
    The boundary of a C{multipart/form-data} C{Content-Type} header value (quoted or not, its
    name in any case; 1 to 70 of the characters RFC 2046 allows), so the caller can refuse any
    other upload body before reading it.

    @raise MultipartError: if the type is not C{multipart/form-data} or the boundary is
        missing or invalid.
    """
    try:
        media_type, params = _parse_header_value(value.decode("latin-1"))
    except ValueError:
        raise MultipartError("malformed Content-Type header") from None
    if media_type != "multipart/form-data":
        raise MultipartError("the body is not multipart/form-data")
    boundary = params.get("boundary")
    if boundary is None:
        raise MultipartError("the multipart/form-data Content-Type has no boundary")
    if not _BOUNDARY.match(boundary):
        raise MultipartError("the multipart boundary is not a valid RFC 2046 boundary")
    return boundary.encode("latin-1")


# Parser states.
_PREAMBLE = "preamble"
_AFTER_BOUNDARY = "after boundary"
_HEADERS = "headers"
_BODY = "body"
_EPILOGUE = "epilogue"
_FAILED = "failed"
_FINISHED = "finished"
_CLOSED = "closed"


class FormSink:
    """
    A parser of a C{multipart/form-data} body written chunk by chunk (split anywhere), in a
    worker thread. L{finish} then gives the L{Form}, and L{close} removes what the form did not
    hand out. L{write} never raises: the first problem is kept in L{error}, the temporary files
    are removed at once, the rest of the body is ignored, and L{finish} raises the problem.

    The body is scanned with C{bytes.find} for the delimiter (C{CRLF--boundary}); only a
    possible partial delimiter is carried from one chunk to the next, so the work is linear in
    the body size and memory stays flat. A line that starts with C{--boundary} is a delimiter
    wherever it appears (RFC 2046 5.1.1): if junk follows it, the body is refused, as the
    client chose a boundary that occurs in its data.

    @ivar error: the first problem met: a L{MultipartError} for a bad body (L{UploadTooLarge}
        for a file part too large), or the L{OSError} of a failed temporary file; L{None}
        while all is well.
    """

    def __init__(self, boundary: bytes, tmpdir: str, *, max_file_size: int,
                 file_fields: Iterable[str] = ("content",), max_parts: int = 1000,
                 max_part_header_size: int = 8192, max_field_size: int = 1 << 20,
                 max_fields_total: int = 8 << 20, max_preamble_size: int = 64 << 10,
                 max_epilogue_size: int = 64 << 10) -> None:
        """
        @param tmpdir: the existing directory for the temporary files: on the file system the
            uploads are stored on, so they can be renamed into place.
        @param file_fields: the field names whose file parts go to disk, one part each, with a
            filename; other file parts are kept in memory (L{InlineFile}s) under the field limits.
        @param max_field_size: the largest text field (or in-memory file part), in bytes;
            C{max_fields_total}, all of them together.
        @param max_preamble_size: the most bytes ignored before the first boundary, so a body
            that is not multipart is refused early; C{max_epilogue_size}, after the last.
        @raise MultipartError: if C{boundary} is not a valid RFC 2046 boundary.
        """
        if not _BOUNDARY.match(boundary.decode("latin-1")):
            raise MultipartError("the multipart boundary is not a valid RFC 2046 boundary")
        self._delimiter = b"\r\n--" + boundary
        self._tmpdir = tmpdir
        self._max_file_size = max_file_size
        self._file_fields = frozenset(file_fields)
        self._max_parts = max_parts
        self._max_part_header_size = max_part_header_size
        self._max_field_size = max_field_size
        self._budget = Budget(max_fields_total)
        self._max_preamble_size = max_preamble_size
        self._max_epilogue_size = max_epilogue_size

        self.error: Exception | None = None
        self._state = _PREAMBLE
        self._received = 0
        # The preamble may be empty: pretend a line break came before the first delimiter.
        self._pending = b"\r\n"
        self._ignored = 0
        self._header_pieces: list[bytes] = []
        self._header_size = 0
        self._parts = 0
        self._disk_fields: set[str] = set()
        self._part: DiskPart | MemoryPart | None = None
        self._paths: list[str] = []
        self._form = Form()

    def tell(self) -> int:
        """The number of body bytes written so far."""
        return self._received

    def seek(self, offset: int, whence: int = 0) -> None:
        """Do nothing: the body is parsed, not kept."""

    def write(self, data: bytes) -> None:
        """Parse the next chunk of the body; never raises (see L{error})."""
        self._received += len(data)
        if self._state in (_FAILED, _FINISHED, _CLOSED):
            return
        try:
            self._feed(data)
        except Exception as e:
            self._fail(e)

    def close(self) -> None:
        """Remove the temporary files unless L{finish} handed them out."""
        if self._state != _FINISHED:
            self._discard()
            self._state = _CLOSED

    def finish(self) -> Form:
        """
        The parsed L{Form} once the whole body was written; the caller then owns its files.

        @raise MultipartError: the recorded error, or one saying the body ended before the
            closing boundary.
        @raise OSError: if a temporary file could not be written.
        """
        if self.error is not None:
            raise self.error
        if self._state == _FINISHED:
            return self._form
        if self._state == _CLOSED:
            raise MultipartError("the upload was closed before it was finished")
        if self._state != _EPILOGUE:
            error = MultipartError("the body holds no multipart boundary"
                                   if self._state == _PREAMBLE
                                   else "the body ended before the closing boundary")
            self._fail(error)
            raise error
        self._state = _FINISHED
        return self._form

    # The parser.

    def _fail(self, error: Exception) -> None:
        """Record C{error}, remove the temporary files and ignore the rest of the body."""
        self.error = error
        self._state = _FAILED
        self._discard()

    def _discard(self) -> None:
        """Close the open part and remove every temporary file made so far."""
        self._pending = b""
        self._header_pieces = []
        # (best effort: write and close must not raise)
        if self._part is not None:
            part, self._part = self._part, None
            with suppress(OSError):
                part.abandon()
        for path in self._paths:
            with suppress(OSError):
                remove_file(path)
        self._paths = []
        self._form = Form()

    def _feed(self, data: bytes) -> None:
        """Advance the state machine through C{data} and what was pending."""
        buf = self._pending + data if self._pending else bytes(data)
        self._pending = b""
        view = memoryview(buf)
        delimiter = self._delimiter
        pos = 0
        while True:
            state = self._state
            # (in the body state, a part is open: _part is not None)
            if state == _BODY:
                found = buf.find(delimiter, pos)
                if found < 0:
                    keep = self._partial_delimiter_at(buf, pos)
                    if keep > pos:
                        self._part.write(view[pos:keep])  # type: ignore[union-attr]
                    self._pending = buf[keep:]
                    return
                if found > pos:
                    self._part.write(view[pos:found])  # type: ignore[union-attr]
                self._end_part()
                pos = found + len(delimiter)
                self._state = _AFTER_BOUNDARY
            elif state == _AFTER_BOUNDARY:
                after = self._after_boundary(buf, pos)
                if after is None:
                    return
                pos = after
            elif state == _HEADERS:
                body = self._headers(buf, pos)
                if body is None:
                    return
                pos = body
            elif state == _PREAMBLE:
                found = buf.find(delimiter, pos)
                end = found if found >= 0 else self._partial_delimiter_at(buf, pos)
                # The two made-up bytes in front are not the client's.
                self._ignored += end - pos
                if self._ignored > self._max_preamble_size + 2:
                    raise MultipartError("no multipart boundary in the first "
                                         f"{self._max_preamble_size} bytes")
                if found < 0:
                    self._pending = buf[end:]
                    return
                pos = found + len(delimiter)
                self._state = _AFTER_BOUNDARY
            elif state == _EPILOGUE:
                self._ignored += len(buf) - pos
                if self._ignored > self._max_epilogue_size:
                    raise MultipartError(f"more than {self._max_epilogue_size} bytes after the "
                                         "closing boundary")
                return
            else:  # pragma: no cover
                raise AssertionError(state)

    def _partial_delimiter_at(self, buf: bytes, pos: int) -> int:
        """Where, from C{pos}, the end of C{buf} may start a delimiter a chunk cut; else its end."""
        delimiter = self._delimiter
        start = max(pos, len(buf) - len(delimiter) + 1)
        while True:
            start = buf.find(b"\r", start)
            if start < 0:
                return len(buf)
            if delimiter.startswith(buf[start:]):
                return start
            start += 1

    def _after_boundary(self, buf: bytes, pos: int) -> int | None:
        """
        Read what follows a delimiter: C{--} closes the body, optional padding and a line break
        start a part. The new position, or L{None} (the rest pending) if more bytes are needed.
        """
        rest = len(buf) - pos
        if rest == 0:
            return None
        if buf[pos] == 0x2D:  # "-"
            if rest < 2:
                self._pending = buf[pos:]
                return None
            if buf[pos + 1] != 0x2D:
                raise MultipartError("malformed multipart boundary line")
            self._state = _EPILOGUE
            self._ignored = 0
            return pos + 2
        end = _PADDING.match(buf, pos).end()  # type: ignore[union-attr]  # (matches always)
        if end - pos > _MAX_PADDING:
            raise MultipartError("malformed multipart boundary line")
        if end == len(buf) or (buf[end] == 0x0D and end + 1 == len(buf)):
            self._pending = buf[pos:]
            return None
        if buf.startswith(b"\r\n", end) or buf[end] == 0x0A:
            self._parts += 1
            if self._parts > self._max_parts:
                raise MultipartError(f"more than {self._max_parts} parts")
            self._state = _HEADERS
            self._header_pieces = []
            # The line break is not part of the header block's size.
            self._header_size = -1 if buf[end] == 0x0A else -2
            # The line break stays: it lets an empty header block be found.
            return end
        raise MultipartError("malformed multipart boundary line")

    def _headers(self, buf: bytes, pos: int) -> int | None:
        """
        Collect a part's header block (its size: its lines with their breaks, not the blank
        line that ends it); once complete, start the part. Its body's position, or L{None} if
        more bytes are needed.
        """
        # The end of the block may straddle chunks: the last two bytes of
        # each chunk were kept pending, so searching from pos finds it.
        match = _HEADERS_END.search(buf, pos)
        end = len(buf) - 2 if match is None else match.start()
        end = max(pos, end)
        # The final "\n" of the last line is in the match, not before it.
        self._header_size += end - pos + (0 if match is None else 1)
        if self._header_size > self._max_part_header_size:
            raise MultipartError(f"a part's headers are larger than {self._max_part_header_size}"
                                 " bytes")
        self._header_pieces.append(buf[pos:end])
        if match is None:
            self._pending = buf[end:]
            return None
        block = b"".join(self._header_pieces)
        self._header_pieces = []
        self._begin_part(block)
        self._state = _BODY
        return match.end()

    def _begin_part(self, block: bytes) -> None:
        """Parse a part's header block and open the place its body goes."""
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError:
            raise MultipartError("a part's headers are not valid UTF-8") from None
        headers: dict[str, str] = {}
        last = None
        for line in _LINE_BREAK.split(text):
            line = line.rstrip("\r")
            if not line:
                continue
            if line[0] in " \t" and last is not None:
                headers[last] += " " + line.strip()
                continue
            name, colon, value = line.partition(":")
            name = name.strip().lower()
            if not colon or not name:
                raise MultipartError("malformed part header line")
            if name in headers:
                raise MultipartError(f"a part has two {name} headers")
            headers[name] = value.strip()
            last = name

        disposition = headers.get("content-disposition")
        if disposition is None:
            raise MultipartError("a part has no Content-Disposition header")
        try:
            kind, params = _parse_header_value(disposition)
        except ValueError as e:
            raise MultipartError(f"malformed Content-Disposition header: {e}") from None
        if kind != "form-data":
            raise MultipartError("a part's Content-Disposition is not form-data")
        field = params.get("name")
        if not field:
            raise MultipartError("a part has no name")
        encoding = headers.get("content-transfer-encoding")
        if encoding is not None and encoding.lower() not in _IDENTITY_ENCODINGS:
            raise MultipartError(f"part {quote(field)} has an unsupported "
                                 "Content-Transfer-Encoding")
        filename = params.get("filename")
        content_type = headers.get("content-type")
        if field in self._file_fields:
            if filename is None:
                raise MultipartError(f"the {quote(field)} part has no filename")
            if field in self._disk_fields:
                raise MultipartError(f"more than one {quote(field)} file part")
            self._disk_fields.add(field)
            self._part = DiskPart(field, filename, content_type, self._tmpdir, self._max_file_size)
            self._paths.append(self._part.path)
        else:
            self._part = MemoryPart(field, filename, content_type, self._max_field_size,
                                    self._budget)

    def _end_part(self) -> None:
        """Record the part that just ended in the form."""
        part, self._part = self._part, None
        part.end(self._form)  # type: ignore[union-attr]  # (called in the body state only)
