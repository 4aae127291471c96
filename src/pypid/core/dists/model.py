"""
The values the index is made of: a L{FileRecord} is everything the index
knows about one stored distribution file, what the storage keeps beside the
file (so the index can be rebuilt from storage alone), what the snapshot
holds, and what the pages are rendered from.
"""

from __future__ import annotations

import datetime
import operator
from typing import TYPE_CHECKING, Any

from pypid.core.dists.names import SDIST, WHEEL
from pypid.core.dists.wheel_variants import InvalidVariant, read_variant_json, split_label


def format_upload_time(when: float) -> str:
    """A POSIX timestamp as PEP 700 asks: C{yyyy-mm-ddThh:mm:ss.ffffffZ}, in UTC."""
    dt = datetime.datetime.fromtimestamp(when, tz=datetime.UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)


#: The most UTF-8 bytes of a summary or an uploader's name a record keeps:
#: records are held in memory for every file, kept in the snapshot and, on
#: S3, in an object's user metadata, which is 2 KB in all.
SUMMARY_BYTES = 300
UPLOADER_BYTES = 100
#: The most UTF-8 bytes of a yank reason, a line on a page (unbounded, they
#: made every page, snapshot and export carry megabytes): refused from a
#: yank, cut from the upstream, an import or a bucket.
YANK_REASON_BYTES = 300


def cut_text(text: str | None, limit: int) -> str | None:
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


def cut_reason(reason: str | None) -> str | None:
    """A yank reason cut to L{YANK_REASON_BYTES}; L{None} and C{""} as they are."""
    return reason if not reason else cut_text(reason, YANK_REASON_BYTES)


#: The most bytes of a variant wheel's C{variant.json} a record keeps, as
#: compact JSON (a real one is 100 to 300): S3's user metadata is 2 KB in
#: all, 1.4 KB with every other field at its longest but the Requires-Python
#: (L{pypid.storage.bucket.layout.user_metadata} makes room for it).
VARIANT_BYTES = 512


#: The fields of a L{FileRecord}, in the order its tuple holds them.
FIELDS = ("filename", "project", "name", "version", "packagetype", "path", "size",
          "sha256", "upload_time", "blake2_256", "md5", "requires_python", "yanked",
          "metadata_sha256", "summary", "uploader", "provenance_sha256", "binned", "variant")
#: The fields kept as raw bytes and given out as hex, with their sizes.
DIGESTS = {"sha256": 32, "blake2_256": 32, "md5": 16, "metadata_sha256": 32,
           "provenance_sha256": 32}
_OPTIONAL_TEXT = ("requires_python", "yanked", "summary", "uploader", "variant")
_SLOT = {name: i for i, name in enumerate(FIELDS)}
_FIELD_SET = frozenset(FIELDS)


def raw_digest(value: str | None, size: int, name: str) -> bytes | None:
    """
    The raw bytes of the hex digest C{value} of C{size} bytes (L{None}
    stays L{None}).

    @raise ValueError: naming C{name}, for anything else.
    """
    if value is None:
        return None
    try:
        raw = bytes.fromhex(value)
    except (ValueError, TypeError):
        raise ValueError(f"a file record's {name} must be a hex digest")
    if len(raw) != size:
        raise ValueError(f"a file record's {name} must be {size * 2} hex digits")
    return raw


def _hex(slot: int) -> property:
    def get(self: tuple[Any, ...]) -> str | None:
        raw = tuple.__getitem__(self, slot)
        return None if raw is None else raw.hex()
    return property(get)


def _plain(slot: int) -> property:
    return property(operator.itemgetter(slot))


class FileRecord(tuple[Any, ...]):
    """
    One distribution file in the index; immutable: a change (a yank, say)
    makes a new record (L{replace}). Digests are given out as hex, L{None}
    where a field is optional and absent.

    @ivar filename: the file's name, also the last segment of its URL.
    @ivar project: the normalized project name.
    @ivar name: the project name as the file's metadata spells it.
    @ivar version: the normalized version.
    @ivar packagetype: C{"bdist_wheel"} or C{"sdist"}.
    @ivar path: where the storage keeps the file, relative to its root.
    @ivar upload_time: POSIX time.
    @ivar md5: for the legacy JSON API only.
    @ivar yanked: the reason (possibly empty) when yanked (PEP 592).
    @ivar metadata_sha256: the digest of the core metadata served at
        C{<file URL>.metadata}.
    @ivar summary: the metadata's C{Summary}, cut to L{SUMMARY_BYTES}.
    @ivar uploader: who uploaded the file (cut to L{UPLOADER_BYTES}); L{None}
        for a file imported from a folder or another server.
    @ivar provenance_sha256: the digest of the file's provenance object
        (PEP 740, L{pypid.core.dists.provenance}), kept beside it.
    @ivar binned: when the file was put in the recycle bin (POSIX time): it
        is kept, but neither listed nor served
        (L{pypid.core.indexes.index.Index.binned}) until restored or purged.
    @ivar variant: a variant wheel's C{variant.json} (PEP 825) as compact
        JSON of at most L{VARIANT_BYTES}
        (L{pypid.core.dists.wheel_variants.VariantMetadata.to_text}).

    A tuple, not an attrs class: an index holds one for every file (a
    million for a cache of the public index), and start-up makes them all.
    Measured on CPython 3.11: 0.18 us to make one against 1.7 us for a
    frozen attrs class, at the same 168 bytes. Digests are kept as raw bytes
    (saving 176 bytes a file for the four) and given out as hex at 0.1 us an
    access; the path only when it is not the filename.
    """

    __slots__ = ()

    def __new__(cls, filename: str, project: str, name: str, version: str, packagetype: str,
                path: str | None, size: int, sha256: str, upload_time: float,
                blake2_256: str | None = None, md5: str | None = None,
                requires_python: str | None = None, yanked: str | None = None,
                metadata_sha256: str | None = None, summary: str | None = None,
                uploader: str | None = None, provenance_sha256: str | None = None,
                binned: float | None = None, variant: str | None = None) -> FileRecord:
        return tuple.__new__(cls, (
            filename, project, name, version, packagetype,
            None if path == filename else path, size,
            raw_digest(sha256, 32, "sha256"), upload_time,
            raw_digest(blake2_256, 32, "blake2_256"), raw_digest(md5, 16, "md5"),
            _optional_str(requires_python), _optional_str(yanked),
            raw_digest(metadata_sha256, 32, "metadata_sha256"),
            _optional_str(summary), _optional_str(uploader),
            raw_digest(provenance_sha256, 32, "provenance_sha256"), binned,
            _optional_str(variant),
        ))

    def __getnewargs__(self) -> tuple[Any, ...]:
        # (for pickle and copy: the arguments of __new__, in the public form)
        return tuple(getattr(self, name) for name in FIELDS)

    def values(self) -> tuple[Any, ...]:
        """The values in L{FIELDS} order as a snapshot keeps them (digests raw, path or L{None})."""
        return tuple(self)

    # (the fields are properties made by _plain and _hex below the class,
    # C-level reads of the tuple: mypy is told their types instead)
    if TYPE_CHECKING:
        filename: str
        project: str
        name: str
        version: str
        packagetype: str
        size: int
        sha256: str
        upload_time: float
        blake2_256: str | None
        md5: str | None
        requires_python: str | None
        yanked: str | None
        metadata_sha256: str | None
        summary: str | None
        uploader: str | None
        provenance_sha256: str | None
        binned: float | None
        variant: str | None

    @property
    def path(self) -> str:
        return tuple.__getitem__(self, 5) or tuple.__getitem__(self, 0)

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in FIELDS)
        return f"FileRecord({shown})"

    def replace(self, **changes: Any) -> FileRecord:
        """This record with some fields changed (as C{attrs.evolve} would)."""
        values = list(self)
        for name, value in changes.items():
            slot = _SLOT.get(name)
            if slot is None:
                raise TypeError(f"a file record has no field {name!r}")
            if name in DIGESTS:
                value = raw_digest(value, DIGESTS[name], name)
            elif name in _OPTIONAL_TEXT:
                value = _optional_str(value)
            values[slot] = value
        if values[5] == values[0]:
            values[5] = None
        return tuple.__new__(FileRecord, values)

    @property
    def has_provenance(self) -> bool:
        """Whether a provenance object (PEP 740) is kept beside the file."""
        return tuple.__getitem__(self, 16) is not None

    @property
    def is_wheel(self) -> bool:
        """Whether this file is a wheel."""
        return tuple.__getitem__(self, 4) == WHEEL

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of this record, keys only for values that are set."""
        return {name: value for name in FIELDS if (value := getattr(self, name)) is not None}

    @classmethod
    def from_json(cls, data: Any) -> FileRecord:
        """
        Build a record from the dict that L{to_json} made.

        (Read for every file of a start without a snapshot: built straight
        from the dict rather than through keywords, 6 rather than 10 us.)

        @raise ValueError: if the dict does not describe a valid record.
        """
        if not isinstance(data, dict):
            raise ValueError("not a file record: not an object")
        if not _FIELD_SET.issuperset(data):
            raise ValueError(f"not a file record: unknown fields {sorted(set(data) - _FIELD_SET)}")
        try:
            filename, path = data["filename"], data["path"]
            values = (
                filename, data["project"], data["name"], data["version"], data["packagetype"],
                None if path == filename else path, data["size"],
                raw_digest(data["sha256"], 32, "sha256"), data["upload_time"],
            )
        except KeyError as e:
            raise ValueError(f"not a file record: no {e.args[0]}")
        get = data.get
        record = tuple.__new__(cls, values + (
            raw_digest(get("blake2_256"), 32, "blake2_256"), raw_digest(get("md5"), 16, "md5"),
            _optional_str(get("requires_python")), _optional_str(get("yanked")),
            raw_digest(get("metadata_sha256"), 32, "metadata_sha256"),
            _optional_str(get("summary")), _optional_str(get("uploader")),
            raw_digest(get("provenance_sha256"), 32, "provenance_sha256"), get("binned"),
            get("variant"),
        ))
        check(record)
        return record


for _slot, _field in enumerate(FIELDS):
    if _field != "path":
        setattr(FileRecord, _field, (_hex if _field in DIGESTS else _plain)(_slot))
del _slot, _field


def check(record: FileRecord) -> None:
    """Raise L{ValueError} unless C{record}'s values have a record's types (read, not trusted)."""
    (filename, project, name, version, kind, path, size, sha256,
     when) = tuple.__getitem__(record, slice(0, 9))
    if kind not in (WHEEL, SDIST):
        raise ValueError(f"unknown package type {kind!r}")
    for field, value in (("filename", filename), ("project", project), ("name", name),
                         ("version", version), ("path", filename if path is None else path)):
        if not isinstance(value, str):
            raise ValueError(f"a file record's {field} must be a string")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValueError("a file record needs a whole, positive size")
    if sha256 is None:
        raise ValueError("a file record needs a sha256")
    if not isinstance(when, (int, float)) or isinstance(when, bool):
        raise ValueError("a file record's upload_time must be a number")
    binned = tuple.__getitem__(record, 17)
    if binned is not None and (not isinstance(binned, (int, float)) or isinstance(binned, bool)):
        raise ValueError("a file record's binned must be a number")
    variant = tuple.__getitem__(record, 18)
    if variant is not None:
        check_variant(filename, variant)


def check_variant(filename: str, variant: object) -> None:
    """
    Raise L{ValueError} unless C{variant} is what a record of C{filename}
    may keep: the compact C{variant.json} of a variant wheel named with its
    label, at most L{VARIANT_BYTES}, following PEP 825's rules.
    """
    if not isinstance(variant, str) or len(variant) > VARIANT_BYTES:
        raise ValueError(f"a file record's variant must be text of at most {VARIANT_BYTES} "
                         "bytes")
    try:
        _plain_name, label = split_label(filename)
        if label is None:
            raise InvalidVariant("only a variant wheel's record has a variant")
        read_variant_json(variant.encode("utf-8"), label)
    except InvalidVariant as e:
        raise ValueError(f"a file record's variant: {e}") from None
