"""
What pypid keeps in a bucket, and under which keys: pure functions.
C{docs/operations.rst}, "In a bucket", lists every key under the prefix
C{P}: C{P<filename>} is the file, its user metadata holding the record's
fixed facts; C{P<filename>.metadata} its core metadata (a sibling, so a
public URL works for it too); under C{P.pypid/} the rest (the provenance
named by its digest, so it never replaces another's).

Distribution objects never change once written, so a presigned URL or a
CDN copy is never stale; the mutable state lives in small marker objects.
Keys other tools wrote (pypicloud's C{<name>/<filename>}) are read too:
any key outside C{.pypid/} whose last segment is a distribution filename.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from urllib.parse import quote, unquote

import attrs

from pypid.core.dists.model import FileRecord, cut_reason, format_upload_time
from pypid.core.dists.names import InvalidName, normalize, parse_filename
from pypid.core.util.s3_limits import MAX_USER_METADATA
from pypid.storage.base.capabilities import document_name
from pypid.storage.base.interface import RecordRefused

_INTERNAL = ".pypid/"
METADATA_SUFFIX = ".metadata"

@attrs.frozen
class Layout:
    """Key names under one prefix."""

    prefix: str = ""

    def file_key(self, path: str) -> str:
        """The key of a file stored at C{path} (relative to the prefix)."""
        return self.prefix + path

    def metadata_key(self, path: str) -> str:
        """The key of a file's PEP 658 core metadata."""
        return self.prefix + path + METADATA_SUFFIX

    @property
    def yanked_prefix(self) -> str:
        """Where yank markers are."""
        return self.prefix + _INTERNAL + "yanked/"

    @property
    def binned_prefix(self) -> str:
        """Where the recycle bin's markers are."""
        return self.prefix + _INTERNAL + "binned/"

    @property
    def deleted_prefix(self) -> str:
        """Where tombstones are."""
        return self.prefix + _INTERNAL + "deleted/"

    @property
    def promoted_prefix(self) -> str:
        """Where the promotions of promoted files are."""
        return self.prefix + _INTERNAL + "promoted/"

    def promoted_key(self, filename: str) -> str:
        """The promotion of C{filename}."""
        return self.promoted_prefix + filename

    @property
    def changes_prefix(self) -> str:
        """Where change markers are."""
        return self.prefix + _INTERNAL + "changes/"

    @property
    def snapshot_key(self) -> str:
        """The snapshot kept in the bucket."""
        return self.prefix + _INTERNAL + "snapshot.json.gz"

    def details_key(self, filename: str) -> str:
        """The details of C{filename}, for the pages for people."""
        return self.prefix + _INTERNAL + "details/" + filename

    def provenance_key(self, filename: str, digest: str) -> str:
        """The provenance object of C{filename} whose sha256 is C{digest}."""
        return self.prefix + _INTERNAL + "provenance/" + filename + "." + digest

    def provenance_keys(self, record: FileRecord) -> tuple[str, ...]:
        """The provenance object C{record} names, as a key to remove with its file (or none)."""
        digest = record.provenance_sha256
        return () if digest is None else (self.provenance_key(record.filename, digest),)

    @property
    def usage_prefix(self) -> str:
        """Where the usage records are (L{pypid.storage.bucket.storage.BucketStorage.add_usage})."""
        return self.prefix + _INTERNAL + "usage/"

    @property
    def statuses_prefix(self) -> str:
        """Where the projects' statuses are (L{pypid.storage.bucket.status_objects})."""
        return self.prefix + _INTERNAL + "projects/"

    def document_key(self, name: str) -> str:
        """
        Where the server document C{name} is (L{pypid.storage.base.capabilities.DOCUMENTS}:
        the advisory waivers', C{waivers.json}, and the namespace grants', C{namespaces.json}).
        """
        return self.prefix + _INTERNAL + document_name(name) + ".json"

    def journal_key(self, name: str) -> str:
        """Where the journal C{name} of a promotion under way is kept."""
        return self.prefix + _INTERNAL + "promotions/" + name

    def probe_key(self, name: str) -> str:
        """An object written and removed at once, to learn how the store behaves."""
        return self.prefix + _INTERNAL + "probe/" + name

    def yanked_key(self, filename: str) -> str:
        """The yank marker of C{filename}."""
        return self.yanked_prefix + filename

    def binned_key(self, filename: str) -> str:
        """The recycle bin's marker of C{filename}."""
        return self.binned_prefix + filename

    def deleted_key(self, filename: str) -> str:
        """The tombstone of C{filename}."""
        return self.deleted_prefix + filename

    @property
    def files_start_after(self) -> str:
        """
        Where a listing of files starts: after every C{.pypid/} key.
        Distribution filenames start with a letter or digit, which sort
        after C{.pypid0}; everything under C{.pypid/} sorts before it.
        """
        return self.prefix + ".pypid0"

    def path_of(self, key: str) -> str | None:
        """
        The path (relative to the prefix) of a listed key that may be a
        distribution file, or L{None} for keys pypid does not serve.
        """
        if not key.startswith(self.prefix):
            return None
        path = key[len(self.prefix):]
        if not path or path.startswith(".") or path.endswith(METADATA_SUFFIX):
            return None
        if any(not part or part.startswith(".") for part in path.split("/")):
            return None
        return path


def user_metadata(record: FileRecord) -> dict[str, str]:
    """
    The user metadata that lets a file object describe itself: every field
    of its record but its key, size and yank state, in ASCII, within S3's
    2 KB (L{_fit}).
    """
    headers = {
        "sha256": record.sha256,
        "name": quote(record.name, safe=""),
        "version": quote(record.version, safe=""),
        "upload-time": repr(float(record.upload_time)),
    }
    optional = {
        "blake2-256": record.blake2_256,
        "md5": record.md5,
        "metadata-sha256": record.metadata_sha256,
        "provenance-sha256": record.provenance_sha256,
        "requires-python": (quote(record.requires_python, safe="")
                            if record.requires_python is not None else None),
        # (a variant wheel's variant.json, at most VARIANT_BYTES: in
        # base64url, letters, digits, - and _ as every value here, 4/3 of
        # it where quoting its JSON punctuation would be 5/3)
        "variant": (_b64(record.variant) if record.variant is not None else None),
        "summary": quote(record.summary, safe="") if record.summary is not None else None,
        "uploader": quote(record.uploader, safe="") if record.uploader is not None else None,
    }
    headers.update({name: value for name, value in optional.items() if value is not None})
    return _fit(headers, record)


def _b64(text: str) -> str:
    """C{text} (ASCII) in base64url without padding."""
    return base64.urlsafe_b64encode(text.encode("ascii")).decode("ascii").rstrip("=")


def _unb64(value: str) -> str:
    """L{_b64}'s text again (L{ValueError} for what it could not have made)."""
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError) as e:
        raise ValueError(f"an unreadable variant: {e}") from None


def _fit(headers: dict[str, str], record: FileRecord) -> dict[str, str]:
    """
    C{headers} within S3's 2 KB of user metadata (the least of the clouds'):
    the summary, then the uploader, cut in the header only (quoted, up to 3
    bytes a byte; a record rebuilt from the object has them shorter). Only
    a record near every cap at once needs it.

    @raise RecordRefused: still over (a name, a version and a
        Requires-Python near their caps of 200, 200 and 2,048 characters; a
        variant's 683 bytes in base64): the file is not stored.
    """
    def size() -> int:
        return sum(len(k) + len(v) for k, v in headers.items())

    for field, value in (("summary", record.summary), ("uploader", record.uploader)):
        over = size() - MAX_USER_METADATA
        if over <= 0 or value is None:
            continue
        key = field
        room = len(headers[key]) - over
        kept = ""
        for char in value:
            quoted = quote(char, safe="")
            if len(kept) + len(quoted) > room:
                break
            kept += quoted
        if kept:
            headers[key] = kept
        else:
            del headers[key]
    if size() > MAX_USER_METADATA:
        raise RecordRefused(
            f"its record needs {size()} bytes of S3 user metadata, over the {MAX_USER_METADATA} "
            "S3 keeps (its name, version, Requires-Python and variant.json are too long)")
    return headers


def record_from_metadata(path: str, size: int,
                         metadata: Mapping[str, str]) -> FileRecord | None:
    """
    A file's record (not yanked) from its object's user metadata, or
    L{None} when that is not pypid's, or unusable.
    """
    sha256 = metadata.get("sha256")
    if not sha256:
        return None
    filename = path.rpartition("/")[2]
    try:
        parsed = parse_filename(filename, legacy=True)
        name = unquote(metadata["name"])
        requires, summary, uploader, variant = (
            metadata.get(name) for name in
            ("requires-python", "summary", "uploader", "variant"))
        upload_time = float(metadata["upload-time"])
        format_upload_time(upload_time)  # refuses nan, inf and times out of range
        return FileRecord.from_json({
            "filename": filename,
            "project": normalize(name),
            "name": name,
            "version": unquote(metadata["version"]),
            "packagetype": parsed.packagetype,
            "path": path,
            "size": size,
            "sha256": sha256,
            "upload_time": upload_time,
            "blake2_256": metadata.get("blake2-256"),
            "md5": metadata.get("md5"),
            "requires_python": unquote(requires) if requires is not None else None,
            "metadata_sha256": metadata.get("metadata-sha256"),
            "provenance_sha256": metadata.get("provenance-sha256"),
            "summary": unquote(summary) if summary is not None else None,
            "uploader": unquote(uploader) if uploader is not None else None,
            "variant": _unb64(variant) if variant is not None else None,
        })
    except (InvalidName, KeyError, ValueError, OverflowError, OSError):
        return None


def yank_body(reason: str) -> bytes:
    """The body of a yank marker."""
    return json.dumps({"reason": reason}).encode("utf-8")


def yank_reason(body: bytes) -> str:
    """The reason in a yank marker's body (an unreadable one counts as no reason)."""
    try:
        reason = json.loads(body).get("reason", "")
    except (ValueError, AttributeError, RecursionError):
        return ""
    return (cut_reason(reason) or "") if isinstance(reason, str) else ""


def binned_body(when: float) -> bytes:
    """The body of a recycle bin's marker: when the file was binned."""
    return json.dumps({"binned": when}).encode("utf-8")


def binned_time(body: bytes, otherwise: float) -> float:
    """
    When a recycle bin's marker says its file was binned; C{otherwise} (now)
    for an unreadable one: kept its full time rather than purged at once.
    """
    try:
        when = json.loads(body).get("binned")
    except (ValueError, AttributeError, RecursionError):
        return otherwise
    if isinstance(when, (int, float)) and not isinstance(when, bool):
        return float(when)
    return otherwise


#: The first character of an intent marker's subject: a change of the file
#: named after it is under way. Never a filename's first character: a server
#: from before intents finds no such file, and changes nothing.
INTENT_MARK = "?"


def intent_subject(filename: str) -> str:
    """The subject of the marker a server leaves before it changes C{filename}."""
    return INTENT_MARK + filename


@attrs.frozen
class Change:
    """
    A marker, all in its name: what (its C{subject}), C{when} (ms, by the
    writer's clock) and by which instance. Only intent markers are written
    now; older servers' change markers are read as of no intent, and
    removed with the others after a day.
    """

    when: int
    instance: str
    number: int
    subject: str

    @property
    def intended(self) -> str | None:
        """The file whose change is under way (an intent marker), or L{None}."""
        if self.subject.startswith(INTENT_MARK):
            return self.subject[len(INTENT_MARK):]
        return None

    def key(self, layout: Layout) -> str:
        """The marker's key."""
        return (f"{layout.changes_prefix}{self.when:014d}.{self.instance}.{self.number}."
                f"{self.subject}")

    @classmethod
    def parse(cls, layout: Layout, key: str) -> Change | None:
        """The change a marker key names, or L{None} for another key."""
        if not key.startswith(layout.changes_prefix):
            return None
        parts = key[len(layout.changes_prefix):].split(".", 3)
        if (len(parts) != 4 or not _is_number(parts[0]) or not _is_number(parts[2])
                or parts[3] in ("", INTENT_MARK)):
            return None
        return cls(int(parts[0]), parts[1], int(parts[2]), parts[3])


def _is_number(text: str) -> bool:
    """Whether C{text} is ASCII digits only (C{str.isdigit} also takes C{'²'})."""
    return text.isascii() and text.isdigit()


def changes_start_after(layout: Layout, when: int) -> str:
    """Where to list change markers written at or after C{when} (ms)."""
    if when > 0:
        return f"{layout.changes_prefix}{when - 1:014d}.~"
    return layout.changes_prefix
