"""
The values the index is made of.

A L{FileRecord} is everything the index knows about one stored distribution
file; it is what the storage keeps beside the file (so the index can be
rebuilt from storage alone), what the snapshot holds, and what the pages are
rendered from. Records are frozen: a change (a yank, say) makes a new record.
"""

import datetime

import attrs

from pypid.core.names import SDIST, WHEEL


def format_upload_time(when):
    """
    Format a POSIX timestamp the way PEP 700 requires:
    C{yyyy-mm-ddThh:mm:ss.ffffffZ} in UTC.
    """
    dt = datetime.datetime.fromtimestamp(when, tz=datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _optional_str(value):
    return None if value is None else str(value)


#: The most UTF-8 bytes of a summary or an uploader's name a record keeps:
#: records are held in memory for every file, kept in the snapshot and, on
#: S3, in an object's user metadata, which is 2 KB in all.
SUMMARY_BYTES = 300
UPLOADER_BYTES = 100


def cut_text(text, limit):
    """
    C{text} cut to at most C{limit} UTF-8 bytes on a character boundary,
    ending in an ellipsis when cut; L{None} and "" stay L{None}.
    """
    if not text:
        return None
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    ellipsis = "\N{HORIZONTAL ELLIPSIS}"
    return data[: limit - len(ellipsis.encode("utf-8"))].decode("utf-8", "ignore") + ellipsis


@attrs.frozen
class FileRecord:
    """
    One distribution file in the index.

    @ivar filename: the file's name, also the last segment of its URL.
    @ivar project: the normalized project name.
    @ivar name: the project name as the file's metadata spells it.
    @ivar version: the normalized version.
    @ivar packagetype: C{"bdist_wheel"} or C{"sdist"}.
    @ivar path: where the storage keeps the file, relative to its root.
    @ivar size: the file's size in bytes.
    @ivar sha256: hex digest of the file.
    @ivar blake2_256: hex blake2b-256 digest of the file, or L{None}.
    @ivar md5: hex md5 digest (legacy JSON API only), or L{None}.
    @ivar upload_time: POSIX timestamp of the upload.
    @ivar requires_python: the file's C{Requires-Python}, or L{None}.
    @ivar yanked: L{None} when not yanked, otherwise the reason (possibly
        empty), as PEP 592 defines it.
    @ivar metadata_sha256: hex digest of the core metadata served at
        C{<file URL>.metadata}, or L{None} when none is served.
    @ivar summary: the metadata's C{Summary}, cut to L{SUMMARY_BYTES}
        (for search and lists; the project page shows it whole), or L{None}.
    @ivar uploader: who uploaded the file (cut to L{UPLOADER_BYTES}), or
        L{None} for a file imported from a folder or another server.
    """

    filename: str
    project: str
    name: str
    version: str
    packagetype: str
    path: str
    size: int
    sha256: str
    upload_time: float
    blake2_256: str | None = None
    md5: str | None = None
    requires_python: str | None = attrs.field(default=None, converter=_optional_str)
    yanked: str | None = attrs.field(default=None, converter=_optional_str)
    metadata_sha256: str | None = None
    summary: str | None = attrs.field(default=None, converter=_optional_str)
    uploader: str | None = attrs.field(default=None, converter=_optional_str)

    @property
    def is_wheel(self):
        """Whether this file is a wheel."""
        return self.packagetype == WHEEL

    @property
    def upload_time_iso(self):
        """The upload time in PEP 700's format."""
        return format_upload_time(self.upload_time)

    def to_json(self):
        """
        Return a JSON-ready dict of this record, with keys only for values
        that are set, so that snapshots and sidecars stay small.
        """
        out = {}
        for field in attrs.fields(FileRecord):
            value = getattr(self, field.name)
            if value is not None:
                out[field.name] = value
        return out

    @classmethod
    def from_json(cls, data):
        """
        Build a record from the dict that L{to_json} made.

        @raise ValueError: if the dict does not describe a valid record.
        """
        try:
            record = cls(**data)
        except TypeError as e:
            raise ValueError(f"not a file record: {e}")
        if record.packagetype not in (WHEEL, SDIST):
            raise ValueError(f"unknown package type {record.packagetype!r}")
        for name in ("filename", "project", "name", "version", "path"):
            if not isinstance(getattr(record, name), str):
                raise ValueError(f"a file record's {name} must be a string")
        if (not isinstance(record.size, int) or isinstance(record.size, bool)
                or not isinstance(record.sha256, str) or len(record.sha256) != 64):
            raise ValueError("a file record needs an integer size and a sha256")
        if (not isinstance(record.upload_time, (int, float))
                or isinstance(record.upload_time, bool)):
            raise ValueError("a file record's upload_time must be a number")
        return record
