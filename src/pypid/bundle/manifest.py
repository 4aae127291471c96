"""
What a bundle is made of, and its manifest: pure functions over names and
bytes, so that the whole format is tested without a disk.

A bundle is a folder, or a tar file of the same members (gzipped when its
name ends in C{.tar.gz} or C{.tgz}); C{docs/migration.rst}, "What a bundle
holds", lists them. A bundle of named indexes adds the same layout per
index under C{indexes/NAME/} (each index has its own filenames) and
C{indexes.json}, naming the indexes and their bases; the top-level members
are the default index's. A project's status travels with its files: the
import keeps it before any file, so a quarantined project's files arrive
quarantined.

C{indexes.json} and C{statuses.json} are written only when needed, so a
bundle without named indexes or statuses is byte for byte what it always
was; an older pypid refuses one with them as a layout it does not know,
rather than flatten the indexes or import quarantined files as active.

The manifest, written last (a folder without one is an export that did not
finish), names every other member: distribution files under C{files}, the
others under C{members}. A reader refuses a member it does not name, a name
outside this layout, and bytes other than those it names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

import attrs

from pypid.core.dists.model import FileRecord, cut_text
from pypid.core.dists.names import (
    InvalidName,
    check_filename_characters,
    is_valid_name,
    normalize,
    parse_filename,
)
from pypid.core.dists.provenance import MAX_PROVENANCE_SIZE
from pypid.core.indexes.index_names import DEFAULT, NAME, NAME_FORMS
from pypid.core.indexes.project_status import InvalidStatus, ProjectStatus, parse_status

#: The format's name and version in the manifest; a reader refuses other
#: names, and versions it does not know.
FORMAT = "pypid-bundle"
VERSION = 1

MANIFEST = "manifest.json"
RECORDS = "records.json"
TOMBSTONES = "tombstones.json"
STATUSES = "statuses.json"
_FILES = "files/"
_METADATA = "metadata/"
_PROVENANCE = "provenance/"
_DETAILS = "details/"
#: Where the audit log's files go in a bundle (kept as they are stored).
AUDIT = "audit/"
#: Where a named index's members go (C{indexes/NAME/files/...}).
INDEXES = "indexes/"
#: Which named indexes a bundle holds, and their bases.
INDEXES_JSON = "indexes.json"

#: The most bytes a JSON member (manifest, records, tombstones) may have:
#: 20,000 records make about 10 MB.
JSON_LIMIT = 256 << 20
#: The most bytes of a core metadata member (the storage reads no more).
METADATA_LIMIT = 16 << 20
#: The most bytes of a details member (the storage reads no more).
DETAILS_LIMIT = 32 << 20
#: The most bytes of one audit log file.
AUDIT_LIMIT = 1 << 30
#: The most members a bundle may have (four per file, and the audit log),
#: its folders counted too.
MAX_MEMBERS = 1 << 22
#: The most bytes of all the JSON members together, which are read whole
#: before any file is taken (a 262 kB bundle of compressed JSON
#: reached 5.7 GB).
MAX_KEPT = 512 << 20
#: The fewest bytes per JSON value a JSON member of more than
#: L{_DENSE_FROM} bytes may have: pypid writes 36 (a record's fields);
#: a list of empty objects has 3, and takes 25 times its size in memory
#: once parsed, where pypid's own take 4.
MIN_BYTES_PER_VALUE = 12
_DENSE_FROM = 64 << 10
#: The most deleted filenames an index's tombstones may name (each is a
#: marker written to storage as it is imported).
MAX_TOMBSTONES = 1 << 20

#: The members of fixed names, and their kinds.
_FIXED = {MANIFEST: "manifest", RECORDS: "records", TOMBSTONES: "tombstones",
          STATUSES: "statuses", INDEXES_JSON: "indexes"}
#: C{(prefix, suffix, kind)} of the members that belong to a distribution file.
_OF_A_FILE = ((_FILES, "", "file"), (_METADATA, ".metadata", "metadata"),
              (_DETAILS, ".details", "details"), (_PROVENANCE, ".provenance", "provenance"))

SHA256_HEX = re.compile(r"[0-9a-f]{64}\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")


class BundleError(Exception):
    """A bundle that cannot be read or written; the message is one line."""


def index_prefix(index: str) -> str:
    """Where the members of the index C{index} go: C{""} for the default index."""
    return "" if index == DEFAULT else f"{INDEXES}{index}/"


def file_member(filename: str, index: str = DEFAULT) -> str:
    """The member holding the distribution file C{filename} (of the index C{index})."""
    return index_prefix(index) + _FILES + filename


def metadata_member(filename: str, index: str = DEFAULT) -> str:
    """The member holding C{filename}'s core metadata."""
    return index_prefix(index) + _METADATA + filename + ".metadata"


def provenance_member(filename: str, index: str = DEFAULT) -> str:
    """The member holding C{filename}'s provenance object."""
    return index_prefix(index) + _PROVENANCE + filename + ".provenance"


def details_member(filename: str, index: str = DEFAULT) -> str:
    """The member holding C{filename}'s details."""
    return index_prefix(index) + _DETAILS + filename + ".details"


def records_member(index: str = DEFAULT) -> str:
    """The member holding the records of the index C{index}."""
    return index_prefix(index) + RECORDS


def tombstones_member(index: str = DEFAULT) -> str:
    """The member holding the deleted filenames of the index C{index}."""
    return index_prefix(index) + TOMBSTONES


def statuses_member(index: str = DEFAULT) -> str:
    """The member holding the projects' statuses of the index C{index}."""
    return index_prefix(index) + STATUSES


@attrs.frozen
class Member:
    """
    What a member's name says it is.

    @ivar kind: C{"manifest"}, C{"records"}, C{"tombstones"}, C{"statuses"}, C{"file"},
        C{"metadata"}, C{"details"}, C{"provenance"} or C{"audit"}.
    @ivar filename: the distribution file it belongs to (file, metadata and
        details), else L{None}.
    @ivar index: the named index it belongs to (under C{indexes/NAME/}),
        or L{None} for the default index's and the bundle's own.
    """

    name: str
    kind: str
    filename: str | None = None
    index: str | None = None


def _filename_in(name: str, prefix: str, suffix: str = "") -> str:
    filename = name[len(prefix): len(name) - len(suffix)]
    try:
        check_filename_characters(filename)
    except InvalidName as e:
        raise BundleError(f"the member {name!r} is not a file of a bundle: {e}")
    return filename


def classify(name: str) -> Member:
    """
    What the member C{name} is.

    @raise BundleError: for a name outside the layout (an absolute path,
        C{..}, a folder a bundle does not have, a name that is no filename).
    """
    if name in _FIXED:
        return Member(name, _FIXED[name])
    if name.startswith(INDEXES):
        index, _, rest = name[len(INDEXES):].partition("/")
        if NAME.match(index) and index != DEFAULT and rest:
            inner = classify(rest)
            if inner.index is None and inner.kind not in ("manifest", "indexes", "audit"):
                return Member(name, inner.kind, inner.filename, index)
        raise BundleError(f"the member {name!r} is not a file of a bundle")
    for prefix, suffix, kind in _OF_A_FILE:
        if name.startswith(prefix) and name.endswith(suffix):
            return Member(name, kind, _filename_in(name, prefix, suffix))
    if name.startswith(AUDIT) and _audit_path(name, 4):
        return Member(name, "audit")
    raise BundleError(f"the member {name!r} is not a file of a bundle")


def _audit_path(name: str, most: int) -> bool:
    """Whether C{name} under C{audit/} has at most C{most} parts, none empty or hidden."""
    parts = name[len(AUDIT):].split("/")
    return (len(parts) <= most and all(parts) and not _CONTROL.search(name)
            and not any(part.startswith(".") for part in parts))


def is_folder(name: str) -> bool:
    """Whether C{name} (without a trailing slash) is a folder a bundle may have."""
    name = name.rstrip("/")
    if name in ("files", "metadata", "details", "provenance", "audit", "indexes"):
        return True
    if name.startswith(INDEXES):
        index, _, rest = name[len(INDEXES):].partition("/")
        return (bool(NAME.match(index)) and index != DEFAULT
                and rest in ("", "files", "metadata", "details", "provenance"))
    return name.startswith(AUDIT) and _audit_path(name, 3)


def limit_of(member: Member) -> int | None:
    """
    The most bytes the member may have, or L{None} for a distribution file,
    which the import bounds by C{[pypid] max_upload_size} file by file.
    """
    return {"manifest": JSON_LIMIT, "records": JSON_LIMIT, "tombstones": JSON_LIMIT,
            "statuses": JSON_LIMIT, "indexes": JSON_LIMIT, "file": None, "metadata": METADATA_LIMIT,
            "details": DETAILS_LIMIT, "provenance": MAX_PROVENANCE_SIZE,
            "audit": AUDIT_LIMIT}[member.kind]


@attrs.frozen
class Digest:
    """A member's sha256 (hex) and size in bytes."""

    sha256: str
    size: int

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready form kept in the manifest."""
        return {"sha256": self.sha256, "size": self.size}

    @classmethod
    def from_json(cls, data: Any, where: str) -> Digest:
        """
        @raise BundleError: naming C{where} when C{data} is not a digest.
        """
        if not isinstance(data, dict):
            raise BundleError(f"{where}: not an object with sha256 and size")
        sha256, size = data.get("sha256"), data.get("size")
        if not isinstance(sha256, str) or not SHA256_HEX.match(sha256):
            raise BundleError(f"{where}: sha256 is not 64 lowercase hex digits")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BundleError(f"{where}: size is not a number of bytes")
        return cls(sha256, size)


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    if len(data) > JSON_LIMIT:
        raise BundleError(f"{what}: more than {JSON_LIMIT} bytes")
    if len(data) > _DENSE_FROM:
        # (counted before parsing, in C: the parse is what costs memory)
        values = data.count(b",") + data.count(b"{") + data.count(b"[") + 1
        if len(data) < values * MIN_BYTES_PER_VALUE:
            raise BundleError(f"{what}: {values} JSON values in {len(data)} bytes, fewer "
                              f"than {MIN_BYTES_PER_VALUE} bytes each: not a member pypid writes")
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise BundleError(f"{what}: not JSON: {e}")
    if not isinstance(value, dict):
        raise BundleError(f"{what}: not a JSON object")
    return value


def _json_field(data: bytes, what: str, key: str, kind: type[Any]) -> Any:
    """The field C{key} of the JSON object C{data}, which must be a C{kind}."""
    value = _json_object(data, what).get(key)
    if not isinstance(value, kind):
        raise BundleError(f"{what}: {key} must be "
                          f"{'a list' if kind is list else 'a JSON object'}")
    return value


def _json_bytes(data: dict[str, Any], indent: int) -> bytes:
    """A member's JSON, keys sorted (the same contents give the same bytes)."""
    return json.dumps(data, indent=indent, sort_keys=True).encode("utf-8") + b"\n"


@attrs.frozen
class BundleManifest:
    """
    The manifest of a bundle.

    @ivar files: L{Digest}s of the default index's distribution files, by filename.
    @ivar members: L{Digest}s of every other member (but the manifest), by
        name: a named index's files are there, by their member's name.
    @ivar created: when the bundle was written (PEP 700's format), for people.
    @ivar source: the storage it was written from (C{local:/srv/...},
        C{s3://bucket/prefix}), for people.
    """

    files: dict[str, Digest]
    members: dict[str, Digest]
    created: str = ""
    source: str | None = None

    def to_bytes(self) -> bytes:
        """The manifest's bytes, keys sorted (the same bundle gives the same bytes)."""
        data = {
            "format": FORMAT,
            "version": VERSION,
            "created": self.created,
            "source": self.source,
            "files": {name: digest.to_json() for name, digest in sorted(self.files.items())},
            "members": {name: digest.to_json()
                        for name, digest in sorted(self.members.items())},
        }
        return _json_bytes(data, 1)

    @classmethod
    def parse(cls, data: bytes) -> BundleManifest:
        """
        Read a manifest.

        @raise BundleError: naming what is wrong (not a bundle, a version
            this pypid does not read, a bad entry).
        """
        value = _json_object(data, MANIFEST)
        if value.get("format") != FORMAT:
            raise BundleError(f"{MANIFEST}: not a pypid bundle (format is "
                              f"{value.get('format')!r}, not {FORMAT!r})")
        version = value.get("version")
        if version != VERSION:
            raise BundleError(f"{MANIFEST}: bundle format version {version!r}; this pypid "
                              f"reads version {VERSION}")
        files, members = value.get("files"), value.get("members")
        if not isinstance(files, dict) or not isinstance(members, dict):
            raise BundleError(f"{MANIFEST}: files and members must be JSON objects")
        parsed_files: dict[str, Digest] = {}
        for filename, digest in files.items():
            member = classify(file_member(filename))
            assert member.filename is not None  # (a file's member names its file)
            parsed_files[member.filename] = Digest.from_json(digest, f"{MANIFEST}: files: "
                                                                     f"{filename!r}")
        parsed_members: dict[str, Digest] = {}
        for name, digest in members.items():
            member = classify(name)
            if member.kind == "manifest" or (member.kind == "file" and member.index is None):
                raise BundleError(f"{MANIFEST}: members: {name!r} belongs under files")
            parsed_members[name] = Digest.from_json(digest, f"{MANIFEST}: members: {name!r}")
        created, source = value.get("created", ""), value.get("source")
        return cls(parsed_files, parsed_members,
                   created if isinstance(created, str) else "",
                   source if isinstance(source, str) else None)


def records_bytes(records: Iterable[FileRecord]) -> bytes:
    """The bytes of C{records.json} for an iterable of L{FileRecord}s."""
    return _json_bytes({"records": [record.to_json()
                                    for record in sorted(records, key=lambda r: r.filename)]}, 0)


def parse_records(data: bytes) -> dict[str, FileRecord]:
    """
    The records of C{records.json}, by filename.

    @raise BundleError: naming the record that is not valid.
    """
    value = _json_field(data, RECORDS, "records", list)
    records: dict[str, FileRecord] = {}
    for number, item in enumerate(value, 1):
        where = f"{RECORDS}: record {number}"
        if not isinstance(item, dict):
            raise BundleError(f"{where}: not a JSON object")
        try:
            record = FileRecord.from_json(item)
            parse_filename(record.filename, legacy=True)
        except (ValueError, TypeError) as e:
            raise BundleError(f"{where}: {e}")
        if record.filename in records:
            raise BundleError(f"{where}: a second record of {record.filename}")
        records[record.filename] = record
    return records


def tombstones_bytes(filenames: Iterable[str]) -> bytes:
    """The bytes of C{tombstones.json} for an iterable of deleted filenames."""
    return _json_bytes({"tombstones": sorted(filenames)}, 0)


def parse_tombstones(data: bytes) -> frozenset[str]:
    """
    The deleted filenames of C{tombstones.json}.

    @raise BundleError: naming an entry that is not a filename.
    """
    value = _json_field(data, TOMBSTONES, "tombstones", list)
    if len(value) > MAX_TOMBSTONES:
        raise BundleError(f"{TOMBSTONES}: more than {MAX_TOMBSTONES} tombstones")
    names: set[str] = set()
    for number, name in enumerate(value, 1):
        if not isinstance(name, str):
            raise BundleError(f"{TOMBSTONES}: entry {number} is not a filename")
        try:
            check_filename_characters(name)
        except InvalidName as e:
            raise BundleError(f"{TOMBSTONES}: entry {number}: {e}")
        names.add(name)
    return frozenset(names)


#: The most projects a bundle's statuses may name (each is an object
#: written to storage as it is imported).
MAX_STATUSES = 1 << 20

#: The most bytes of who set a status and when, as a bundle carries them.
_WHO_BYTES = 300


@attrs.frozen
class BundledStatus:
    """
    A project's status as a bundle carries it: the status and
    its reason, as storage keeps them, and who set it and when, as the
    source's audit log says (L{None} when it does not).

    @ivar set_at: the time of the audit entry that set it
        (L{pypid.core.records.audit_chain.format_time}'s form).
    """

    status: ProjectStatus
    set_by: str | None = None
    set_at: str | None = None

    def to_json(self) -> dict[str, str]:
        """The JSON object of C{statuses.json}: the status's fields, and who and when."""
        data = {"status": self.status.status, "reason": self.status.reason,
                "set_by": self.set_by, "set_at": self.set_at}
        return {key: value for key, value in data.items() if value is not None}


def statuses_bytes(statuses: dict[str, BundledStatus]) -> bytes:
    """The bytes of C{statuses.json}: each project's L{BundledStatus}, by normalized name."""
    return _json_bytes({"statuses": {name: statuses[name].to_json() for name in statuses}}, 1)


def parse_statuses(data: bytes, what: str = STATUSES) -> dict[str, BundledStatus]:
    """
    The statuses of C{statuses.json}, by normalized project name (an
    C{active} entry, which pypid never writes, is no status).

    @raise BundleError: naming the entry that is not valid.
    """
    value = _json_field(data, what, "statuses", dict)
    if len(value) > MAX_STATUSES:
        raise BundleError(f"{what}: more than {MAX_STATUSES} statuses")
    found: dict[str, BundledStatus] = {}
    for name, entry in sorted(value.items()):
        where = f"{what}: {name!r}"
        if not is_valid_name(name) or normalize(name) != name:
            raise BundleError(f"{where}: not a normalized project name")
        if not isinstance(entry, dict):
            raise BundleError(f"{where}: not a JSON object")
        fields = {k: v for k, v in entry.items() if k not in ("set_by", "set_at")}
        try:
            status = parse_status(fields)
        except InvalidStatus as e:
            raise BundleError(f"{where}: {e}")
        who, when = entry.get("set_by"), entry.get("set_at")
        for key, text in (("set_by", who), ("set_at", when)):
            if text is not None and (not isinstance(text, str) or not text.isprintable()):
                raise BundleError(f"{where}: {key}: a single line of text is required")
        if status is not None:
            found[name] = BundledStatus(status, cut_text(who, _WHO_BYTES),
                                        cut_text(when, _WHO_BYTES))
    return found


@attrs.frozen
class BundledIndex:
    """
    One named index of a bundle, as C{indexes.json} describes it.

    @ivar bases: its bases as the configuration spells them (C{release},
        C{upstream:default}), for the C{[index:NAME]} section it needs.
    """

    name: str
    bases: tuple[str, ...] = ()
    view: bool = False


def indexes_bytes(indexes: Iterable[BundledIndex]) -> bytes:
    """The bytes of C{indexes.json}."""
    return _json_bytes({"indexes": {index.name: {"bases": list(index.bases), "view": index.view}
                                    for index in indexes}}, 1)


def parse_indexes(data: bytes) -> tuple[BundledIndex, ...]:
    """
    The named indexes of C{indexes.json}, by name.

    @raise BundleError: naming the entry that is not valid.
    """
    value = _json_field(data, INDEXES_JSON, "indexes", dict)
    found: list[BundledIndex] = []
    for name, entry in sorted(value.items()):
        where = f"{INDEXES_JSON}: {name!r}"
        if not NAME.match(name) or name == DEFAULT:
            raise BundleError(f"{where}: not the name of a named index; {NAME_FORMS}")
        if not isinstance(entry, dict):
            raise BundleError(f"{where}: not a JSON object")
        bases, view = entry.get("bases", []), entry.get("view", False)
        if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
            raise BundleError(f"{where}: bases must be a list of names")
        if not isinstance(view, bool):
            raise BundleError(f"{where}: view must be true or false")
        if view:
            raise BundleError(f"{where}: a view holds no files; a bundle holds none")
        found.append(BundledIndex(name, tuple(bases), view))
    return tuple(found)
