"""
OSV records (the public advisory databases' format) read into the
L{pypid.core.security.advisories.Advisory}s an index acts on:

  - only the C{PyPI} ecosystem (names normalized), as C{ECOSYSTEM} ranges
    and version lists: a C{GIT} range says nothing an index can match (the
    version list beside it does), and C{SEMVER} is no PyPI ordering;
  - a range's events are sorted by PEP 440 version, as the OSV schema says;
    a range with an event PEP 440 cannot read is left out, and counted;
  - a withdrawn record is no advisory;
  - records that share an identifier, transitively, are one advisory: its
    C{id} a PYSEC one if any, else a GHSA one, else the smallest; what they
    affect is the union, its severity the highest;
  - the severity is the highest CVSS base score of its vectors (computed by
    the C{cvss} library), else the database's own word (GitHub's
    C{database_specific.severity}), else unknown.

A record that cannot be read is skipped and counted: one bad record never
fails a load. Each text is bounded, so a hostile record stays small.
"""

from __future__ import annotations

import functools
import json
import re
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
from packaging.version import Version

from pypid.core.dists.names import normalize
from pypid.core.dists.version_order import release_key, version_key
from pypid.core.security.advisories import (
    SEVERITIES,
    Advisory,
    AdvisoryDB,
    severity_rank,
    severity_word,
)
from pypid.core.security.affected_releases import Affected, Span, parsed_version

ECOSYSTEM = "PyPI"

#: An identifier as the databases spell them (C{PYSEC-2024-12},
#: C{GHSA-xxxx-xxxx-xxxx}): what may go in a page, a yank reason and a status line.
IDENTIFIER = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._:-]{0,99}\Z")

#: The most characters kept of a summary, of details, and of a link.
MAX_SUMMARY = 300
MAX_DETAILS = 2000
MAX_LINK = 500

#: The most aliases read of one record (an alias only merges records: the
#: rest are left out).
MAX_ALIASES = 50

#: The most affected entries, ranges of an entry, events of a range and
#: versions of an entry one record may have. Never cut (a range or version
#: past a cut would allow its release): a record past one is refused whole
#: and named in the load's warning. No record of the PyPI export comes near.
MAX_AFFECTED = 200
MAX_RANGES = 50
MAX_EVENTS = 1000
MAX_VERSIONS = 20000


#: The most versions and ranges a load's records may name together: what
#: bounds its memory (bytes do not: 400,000 versions are 4 MB, a sixth of
#: that zipped). The whole PyPI export names a few hundred thousand.
MAX_ITEMS = 3_000_000


class TooManyItems(ValueError):
    """The records name more than L{MAX_ITEMS}: the whole load is refused."""


class BadRecord(ValueError):
    """A record that cannot be read; the message says why, briefly."""


@attrs.frozen
class _Record:
    """What one record says, before records that share an identifier are merged."""

    id: str
    aliases: tuple[str, ...]
    summary: str
    details: str
    score: float | None
    severity: str | None
    fixed_in: tuple[str, ...]
    link: str | None
    affected: tuple[Affected, ...]


@attrs.define
class ReadResult:
    """
    What L{read_records} made of a load: the database, and for one log
    line the records skipped by reason, the withdrawn ones and the events
    left out.
    """

    db: AdvisoryDB
    records: int = 0
    withdrawn: int = 0
    skipped: dict[str, int] = attrs.field(factory=dict)
    bad_events: int = 0

    def summary(self) -> str:
        """A short line: what was skipped and why, or C{""}."""
        parts = [f"{count} {reason}" for reason, count in sorted(self.skipped.items())]
        if self.bad_events:
            parts.append(f"{self.bad_events} ranges with an event of no PEP 440 version")
        return "; ".join(parts)


def _text(value: object, limit: int) -> str:
    """A bounded single-spaced text of C{value} (L{BadRecord} if it is no string)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRecord("a text field that is not a string")
    if len(value) > limit:
        value = value[: limit - 3] + "..."
    if not value.isprintable():
        # (a summary reaches yank reasons that installers print, and
        # terminals: no escape sequence, bell or direction override)
        value = "".join(c if c.isprintable() or c in "\n\t" else " " for c in value)
    return value


def _list(value: object, what: str, limit: int) -> list[Any]:
    """The first C{limit} items of a list that only informs (aliases, links, scores)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRecord(f"{what} is not a list")
    return value[:limit]


class TooLong(BadRecord):
    """A list that decides what is affected is over its bound: the record is refused."""


def _whole(value: object, field: str, limit: int, what: str) -> list[Any]:
    """The list C{field}, which decides what is affected, whole (C{what}: its items)."""
    found = _list(value, field, limit + 1)
    if len(found) > limit:
        raise TooLong(f"more than {limit} {what}")
    return found


@functools.lru_cache(maxsize=1 << 14)
def cvss_score(kind: str, vector: str) -> float | None:
    """
    The base score of a CVSS vector of the schema's C{type}, or L{None}
    when unreadable. Remembered: an export repeats a few thousand vectors,
    and the library takes 90 to 220 us a vector (3.5 s of a 40,000-record
    load before).
    """
    import cvss  # (loaded with the first advisory)
    makers = {"CVSS_V2": cvss.CVSS2, "CVSS_V3": cvss.CVSS3, "CVSS_V4": cvss.CVSS4}
    maker = makers.get(kind)
    if maker is None:
        return None
    try:
        score = maker(vector).base_score
    except (cvss.CVSSError, ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None
    return float(score)


def severity_of(score: float) -> str:
    """The severity of a CVSS base score (the CVSS v3 bands; 0 is counted low)."""
    return SEVERITIES[bisect_right((4.0, 7.0, 9.0), score)]


def _severity(record: Mapping[str, Any], affected: list[Any]) -> tuple[float | None, str | None]:
    """C{(score, severity)} of a record: its highest CVSS score, else its database's word."""
    scores = []
    entries = _list(record.get("severity"), "severity", 10)
    for entry in affected:
        if isinstance(entry, dict):
            entries += _list(entry.get("severity"), "severity", 10)
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("score"), str) \
                and isinstance(entry.get("type"), str) and len(entry["score"]) <= 200:
            score = cvss_score(entry["type"], entry["score"])
            if score is not None:
                scores.append(score)
    if scores:
        best = max(scores)
        return best, severity_of(best)
    words = []
    for holder in [record, *affected]:   # (said of the record, or of an affected package)
        specific = holder.get("database_specific") if isinstance(holder, dict) else None
        word = specific.get("severity") if isinstance(specific, dict) else None
        level = severity_word(word) if isinstance(word, str) else None
        if level is not None:
            words.append(level)
    return None, max(words, key=severity_rank) if words else None


def _version(text: object) -> Version | None:
    """An event's version, or L{None} when it is not a PEP 440 one."""
    if isinstance(text, str) and len(text) <= 100:
        return parsed_version(text)
    return None


def _spans(events: list[Any], result: ReadResult) -> tuple[list[Span], list[str]]:
    """The spans of one C{ECOSYSTEM} range's events, and its C{fixed} versions."""
    ordered: list[tuple[Version | None, int, str, str]] = []
    for event in events:
        if not isinstance(event, dict) or len(event) != 1:
            raise BadRecord("a range event is not one key")
        [(kind, value)] = event.items()
        if kind not in ("introduced", "fixed", "last_affected", "limit"):
            raise BadRecord(f"an unknown range event {str(kind)[:20]!r}")
        if kind == "introduced" and value == "0":
            ordered.append((None, 0, kind, "0"))
            continue
        version = _version(value)
        if version is None:
            # (the whole range is left out: without its end, it would
            # affect every later release; without its start, every earlier)
            result.bad_events += 1
            return [], []
        # (at one version an end comes before a new start)
        ordered.append((version, 1 if kind == "introduced" else 0, kind, str(value)))
    ordered.sort(key=lambda e: (e[0] is not None, e[0] or Version("0"), e[1]))
    spans: list[Span] = []
    fixed: list[str] = []
    start: Version | None = None
    open_ = False
    for version, _, kind, text in ordered:
        if kind == "introduced":
            if not open_:
                start, open_ = version, True
        elif open_:
            spans.append(Span(start, version, kind == "last_affected"))
            open_ = False
        if kind == "fixed":
            fixed.append(text)
    if open_:
        spans.append(Span(start, None))
    return spans, fixed


def _affected(entries: list[Any], result: ReadResult) -> tuple[tuple[Affected, ...], list[str]]:
    found: list[Affected] = []
    fixed: list[str] = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise BadRecord("an affected entry is not an object")
        package = entry.get("package")
        if not isinstance(package, dict) or package.get("ecosystem") != ECOSYSTEM:
            continue
        name = package.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise BadRecord("an affected package has no name")
        spans: list[Span] = []
        for range_ in _whole(entry.get("ranges"), "ranges", MAX_RANGES,
                             "ranges in an affected entry"):
            if not isinstance(range_, dict):
                raise BadRecord("a range is not an object")
            if range_.get("type") != "ECOSYSTEM":
                continue
            more, ends = _spans(_whole(range_.get("events"), "events", MAX_EVENTS,
                                              "events in a range"), result)
            spans += more
            fixed += ends
        versions = frozenset(release_key(v) for v in
                             _whole(entry.get("versions"), "versions", MAX_VERSIONS,
                                    "versions in an affected entry")
                             if isinstance(v, str) and len(v) <= 100)
        if spans or versions:
            found.append(Affected(normalize(name.strip()), tuple(spans), versions))
    return tuple(found), fixed


def _link(record: Mapping[str, Any]) -> str | None:
    """The record's C{ADVISORY} reference, else its C{WEB} one, else its first (http or https)."""
    links: dict[str, str] = {}
    for reference in _list(record.get("references"), "references", 200):
        if isinstance(reference, dict):
            url, kind = reference.get("url"), reference.get("type")
            if isinstance(url, str) and len(url) <= MAX_LINK \
                    and url.startswith(("https://", "http://")) and url.isprintable():
                links.setdefault(kind if isinstance(kind, str) else "", url)
                links.setdefault("*", url)
    return links.get("ADVISORY") or links.get("WEB") or links.get("*")


def parse_record(data: object, result: ReadResult) -> _Record | None:
    """
    One record's advisory about PyPI projects; L{None} for a withdrawn one
    or one that names none.

    @raise BadRecord: for a record that cannot be read.
    """
    if not isinstance(data, dict):
        raise BadRecord("not a JSON object")
    ident = data.get("id")
    if not isinstance(ident, str) or not IDENTIFIER.match(ident):
        raise BadRecord("no usable id")
    if data.get("withdrawn"):
        result.withdrawn += 1
        return None
    try:
        entries = _whole(data.get("affected"), "affected", MAX_AFFECTED, "affected entries")
        affected, fixed = _affected(entries, result)
    except TooLong as e:
        # (named, so the operator can find it: one warning line of its own)
        raise TooLong(f"{ident}: {e}") from None
    if not affected:
        return None
    aliases = tuple(a for a in _list(data.get("aliases"), "aliases", MAX_ALIASES)
                    if isinstance(a, str) and IDENTIFIER.match(a) and a != ident)
    score, severity = _severity(data, entries)
    return _Record(ident, aliases, " ".join(_text(data.get("summary"), MAX_SUMMARY).split()),
                   _text(data.get("details"), MAX_DETAILS), score, severity,
                   tuple(fixed), _link(data), affected)


def _rank(ident: str) -> tuple[int, str]:
    """The order in which merged records' identifiers are preferred as the advisory's own."""
    upper = ident.upper()
    return (0 if upper.startswith("PYSEC-") else 1 if upper.startswith("GHSA-") else 2, ident)


def merge(records: Iterable[_Record]) -> list[Advisory]:
    """The advisories of C{records}, those sharing an identifier merged into one."""
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        root = key
        while parent.setdefault(root, root) != root:
            root = parent[root]
        while parent[key] != root:
            parent[key], key = root, parent[key]
        return root

    listed = list(records)
    for record in listed:
        for alias in record.aliases:
            a, b = find(record.id), find(alias)
            if a != b:
                parent[max(a, b)] = min(a, b)
    groups: dict[str, list[_Record]] = {}
    for record in listed:
        groups.setdefault(find(record.id), []).append(record)
    advisories = []
    for group in groups.values():
        group.sort(key=lambda r: _rank(r.id))
        first = group[0]
        ids = {r.id for r in group} | {a for r in group for a in r.aliases}
        aliases = tuple(sorted(ids - {first.id}))
        severities = [r.severity for r in group if r.severity in SEVERITIES]
        severity = max(severities, key=severity_rank) if severities else None
        scores = [r.score for r in group if r.score is not None]
        # (spans as a dict's keys: in order, each once, in linear time)
        by_project: dict[str, tuple[dict[Span, None], set[str]]] = {}
        for record in group:
            for affected in record.affected:
                spans, versions = by_project.setdefault(affected.project, ({}, set()))
                spans.update(dict.fromkeys(affected.spans))
                versions.update(affected.versions)
        fixed = sorted({v for r in group for v in r.fixed_in}, key=version_key)
        advisories.append(Advisory(
            first.id, aliases,
            next((r.summary for r in group if r.summary), ""),
            next((r.details for r in group if r.details), ""),
            severity, max(scores) if scores else None, tuple(fixed),
            next((r.link for r in group if r.link), None),
            tuple(Affected(project, tuple(spans), frozenset(versions))
                  for project, (spans, versions) in by_project.items())))
    return advisories


def read_records(documents: Iterable[bytes], source: str = "") -> ReadResult:
    """The L{AdvisoryDB} of the OSV records in C{documents} (JSON), with what was skipped."""
    result = ReadResult(AdvisoryDB())
    parsed: list[_Record] = []
    items = 0
    for document in documents:
        result.records += 1
        try:
            try:
                data = json.loads(document)
            except RecursionError:
                raise BadRecord("nested too deep")
            except (ValueError, UnicodeDecodeError):
                raise BadRecord("not JSON")
            record = parse_record(data, result)
        except BadRecord as e:
            reason = str(e)
            result.skipped[reason] = result.skipped.get(reason, 0) + 1
            continue
        if record is not None:
            items += sum(len(a.spans) + len(a.versions) for a in record.affected)
            if items > MAX_ITEMS:
                raise TooManyItems(f"the records name more than {MAX_ITEMS} versions and ranges")
            parsed.append(record)
    result.db = AdvisoryDB.of(merge(parsed), source)
    return result
