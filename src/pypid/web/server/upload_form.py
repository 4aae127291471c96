"""
An upload form as the multipart parser (L{pypid.web.server.multipart}) fills it: the L{Form}
it hands out, the parts on their way into it (a file part hashed and spooled, L{DiskPart}; a
text field or small file kept in memory, L{MemoryPart}, under a shared L{Budget}), and the
errors a body is refused with: what the upload's consumers see, not how the body is split.
"""

from __future__ import annotations

import hashlib
import os
import tempfile

import attrs

from pypid.storage.base.disk import remove_file


class MultipartError(ValueError):
    """
    A malformed or over-limit body; C{str()} of it is a short message naming the field or the
    limit, meant for the body of a 400 answer (never for the status line).
    """


class UploadTooLarge(MultipartError):
    """The file part passed the size limit: the server answers 413."""


# The temporary files' buffer: small chunks make few system calls, big ones go straight through.
_FILE_BUFFER_SIZE = 1 << 18


def quote(name: str) -> str:
    """A client's name for an error message: quoted, control characters escaped, cut short."""
    if len(name) > 80:
        name = name[:80] + "..."
    return repr(name)


@attrs.frozen
class FilePart:
    """
    A file part written to a temporary file, with its size and hex digests (md5 for the legacy
    JSON API).

    @ivar filename: as the client sent it, quoting undone but not otherwise checked: it may
        hold C{/}, C{..} or control characters, so validate it and never build a path of it.
    @ivar path: the temporary file; it belongs to whoever received the L{Form} (move it away
        or call L{Form.discard}).
    """

    field: str
    filename: str
    content_type: str | None
    path: str
    size: int
    sha256: str
    blake2_256: str
    md5: str


@attrs.frozen
class InlineFile:
    """A small file part not spooled (the legacy C{gpg_signature}), kept in memory as sent."""

    field: str
    filename: str
    content_type: str | None
    data: bytes = attrs.field(repr=lambda data: f"<{len(data)} bytes>")


@attrs.frozen
class Form:
    """
    A parsed upload form.

    @ivar fields: text fields by name, the values of a repeated name in the order sent.
    @ivar files: the file parts written to disk, by field name (one each).
    @ivar inline_files: the other, small, file parts by field name, in the order sent.
    """

    # (the repr names the fields without their values: logging a form never logs its text)
    fields: dict[str, list[str]] = attrs.field(factory=dict, repr=lambda f: repr(sorted(f)))
    files: dict[str, FilePart] = attrs.field(factory=dict)
    inline_files: dict[str, list[InlineFile]] = attrs.field(factory=dict,
                                                            repr=lambda f: repr(sorted(f)))

    def get(self, name: str) -> str | None:
        """Return the first value of text field C{name}, or L{None} if it was not sent."""
        values = self.fields.get(name)
        return values[0] if values else None

    def discard(self) -> None:
        """
        Remove the temporary files still where the parser put them, so a refused upload leaves
        nothing behind; safe to call repeatedly and after a file was moved away.
        """
        for part in self.files.values():
            remove_file(part.path)


class DiskPart:
    """A file part on its way to a temporary file: hashed and written, its limit checked first."""

    def __init__(self, field: str, filename: str, content_type: str | None, tmpdir: str,
                 max_size: int) -> None:
        self._field = field
        self._filename = filename
        self._content_type = content_type
        self._max_size = max_size
        self._size = 0
        self._sha256 = hashlib.sha256()
        self._blake2 = hashlib.blake2b(digest_size=32)
        self._md5 = hashlib.md5(usedforsecurity=False)
        fd, self.path = tempfile.mkstemp(dir=tmpdir, prefix="upload-", suffix=".part")
        try:
            self._file = os.fdopen(fd, "wb", buffering=_FILE_BUFFER_SIZE)
        except BaseException:
            os.close(fd)
            remove_file(self.path)
            raise

    def write(self, data: bytes | memoryview) -> None:
        """Add C{data}, refusing it with L{UploadTooLarge} if the file would pass its limit."""
        if self._size + len(data) > self._max_size:
            raise UploadTooLarge(f"the {quote(self._field)} file is larger than "
                                 f"{self._max_size} bytes")
        self._size += len(data)
        self._sha256.update(data)
        self._blake2.update(data)
        self._md5.update(data)
        self._file.write(data)

    def abandon(self) -> None:
        """Close the file without reporting anything (its path is removed by the caller)."""
        self._file.close()

    def end(self, form: Form) -> None:
        """Close the file (not fsynced: the caller does that off the reactor) and record it."""
        self._file.close()
        form.files[self._field] = FilePart(
            self._field, self._filename, self._content_type, self.path, self._size,
            self._sha256.hexdigest(), self._blake2.hexdigest(), self._md5.hexdigest())


class MemoryPart:
    """A text field or small file part kept in memory, within its limit and the shared C{budget}."""

    def __init__(self, field: str, filename: str | None, content_type: str | None,
                 max_size: int, budget: Budget) -> None:
        self._field = field
        self._filename = filename
        self._content_type = content_type
        self._max_size = max_size
        self._budget = budget
        self._pieces: list[bytes] = []
        self._size = 0

    def write(self, data: bytes | memoryview) -> None:
        """Keep a copy of C{data}, or raise L{MultipartError} if a limit is passed."""
        self._size += len(data)
        if self._size > self._max_size:
            kind = "field" if self._filename is None else "file part"
            raise MultipartError(f"{kind} {quote(self._field)} is larger than "
                                 f"{self._max_size} bytes")
        self._budget.spend(len(data))
        # A copy, so the pieces do not pin whole chunks of the body.
        self._pieces.append(bytes(data))

    def abandon(self) -> None:
        """Drop what was kept."""
        self._pieces = []

    def end(self, form: Form) -> None:
        """Add the finished part to C{form}: text is decoded as UTF-8, files stay bytes."""
        data = b"".join(self._pieces)
        self._pieces = []
        if self._filename is None:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                raise MultipartError(f"field {quote(self._field)} is not valid UTF-8") from None
            form.fields.setdefault(self._field, []).append(text)
        else:
            form.inline_files.setdefault(self._field, []).append(
                InlineFile(self._field, self._filename, self._content_type, data))


@attrs.define
class Budget:
    """The bytes left for all in-memory parts together."""

    limit: int
    used: int = 0

    def spend(self, size: int) -> None:
        """Account for C{size} more bytes, or raise L{MultipartError} past the limit."""
        self.used += size
        if self.used > self.limit:
            raise MultipartError(f"the fields together are larger than {self.limit} bytes")
