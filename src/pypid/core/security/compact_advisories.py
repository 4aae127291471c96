"""
The compact form of an L{AdvisoryDB}: what pypid keeps of the OSV export,
written once per export and read back at each start instead of it.

Reading the export record by record (L{pypid.core.security.osv}) took
seconds of CPU and tens of MiB at start-up (docs/performance.rst), mostly
on what is thrown away; reading the compact form parses no record and
evaluates no range.

JSON lines, one advisory a line (L{encode}), read by the standard
library's JSON parser (no pickle or marshal: a file that is not what it
should be may say anything, and only data comes of it). Reading trusts
nothing: every field is checked for what reading the records guarantees of
it, counted against L{pypid.core.security.osv.MAX_ITEMS}; anything else
raises L{CompactError}, and the caller reads the export again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from pypid.core.dists.names import normalize
from pypid.core.security.advisories import SEVERITIES, Advisory, AdvisoryDB
from pypid.core.security.affected_releases import Affected, Span, parsed_version
from pypid.core.security.osv import IDENTIFIER, MAX_DETAILS, MAX_ITEMS, MAX_LINK, MAX_SUMMARY

#: The most characters of a version, and of a project's name (as osv reads them).
MAX_VERSION = 100
MAX_PROJECT = 200


class CompactError(ValueError):
    """The compact form cannot be read; the message says where, briefly."""


def encode(db: AdvisoryDB) -> Iterator[bytes]:
    """
    The lines of C{db}'s advisories, each C{[id, aliases, summary, details,
    severity, score, fixed_in, link, affected]}, C{affected} a list of
    C{[project, spans, versions]}, a span C{[introduced, end, end_included]}.
    """
    seen: set[str] = set()
    for advisories in db.by_project.values():
        for advisory in advisories:
            if advisory.id in seen:
                continue
            seen.add(advisory.id)
            yield json.dumps([
                advisory.id, list(advisory.aliases), advisory.summary, advisory.details,
                advisory.severity, advisory.score, list(advisory.fixed_in), advisory.link,
                [[a.project,
                  [[_text_of(s.introduced), _text_of(s.end), s.end_included] for s in a.spans],
                  list(a.versions)] for a in advisory.affected],
            ], ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


def _text_of(version: object) -> str | None:
    return None if version is None else str(version)


def decode(lines: Iterable[bytes], source: str = "", digest: str = "") -> AdvisoryDB:
    """The database of L{encode}'s lines; L{CompactError} when a line is not one."""
    reader = _CompactReader()
    advisories = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            advisories.append(reader.advisory(json.loads(line)))
        except CompactError as e:
            raise CompactError(f"line {number}: {e}") from None
        except RecursionError:
            raise CompactError(f"line {number}: nested too deep") from None
        except (ValueError, UnicodeDecodeError):
            raise CompactError(f"line {number}: not JSON") from None
    return AdvisoryDB.of(advisories, source, digest)


class _CompactReader:
    """Checks and builds the values of one reading, sharing equal texts and spans."""

    def __init__(self) -> None:
        self._texts: dict[str, str] = {}
        # (a span by its three values as written: parsed once)
        self._spans: dict[tuple[str | None, str | None, bool], Span] = {}
        self._items = 0
        self._ids: set[str] = set()

    def advisory(self, row: Any) -> Advisory:
        if not isinstance(row, list) or len(row) != 9:
            raise CompactError("not an advisory")
        ident, aliases, summary, details, severity, score, fixed_in, link, affected = row
        ident = self._identifier(ident)
        if ident in self._ids:
            raise CompactError(f"{ident} twice")
        self._ids.add(ident)
        if severity is not None and severity not in SEVERITIES:
            raise CompactError("a severity that is none")
        if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))
                                  or not 0 <= score <= 10):
            raise CompactError("a score that is none")
        if link is not None and not (_text(link, MAX_LINK, "")
                                     and link.startswith(("https://", "http://"))):
            raise CompactError("a link that is none")
        if not isinstance(affected, list) or not affected:
            raise CompactError("no affected project")
        return Advisory(
            ident, tuple(self._identifier(a) for a in _list(aliases)),
            _text(summary, MAX_SUMMARY, ""), _text(details, MAX_DETAILS, "\n\t"),
            severity, float(score) if score is not None else None,
            tuple(self._version(v) for v in _list(fixed_in)), link,
            tuple(self._affected(a) for a in affected))

    def _identifier(self, value: object) -> str:
        if not isinstance(value, str) or not IDENTIFIER.match(value):
            raise CompactError("an identifier that is none")
        return value

    def _affected(self, row: object) -> Affected:
        if not isinstance(row, list) or len(row) != 3:
            raise CompactError("an affected project that is none")
        project, spans, versions = row
        if not isinstance(project, str) or not project or len(project) > MAX_PROJECT \
                or normalize(project) != project:
            raise CompactError("a project name that is none")
        found = tuple(self._span(s) for s in _list(spans))
        listed = _list(versions)
        if not all(type(v) is str and len(v) <= MAX_VERSION for v in listed):
            raise CompactError("a version that is none")
        texts = self._texts
        listed = [texts.setdefault(v, v) for v in listed]
        self._items += len(found) + len(listed)
        if self._items > MAX_ITEMS:
            raise CompactError(f"more than {MAX_ITEMS} versions and ranges")
        return Affected(self._shared(project), found, listed)

    def _span(self, row: object) -> Span:
        if not isinstance(row, list) or len(row) != 3 or not isinstance(row[2], bool):
            raise CompactError("a span that is none")
        key = (row[0], row[1], row[2])
        span = self._spans.get(key)
        if span is not None:
            return span
        introduced, end = (None if text is None else parsed_version(self._version(text))
                           for text in row[:2])
        if (row[0] is not None and introduced is None) or (row[1] is not None and end is None):
            raise CompactError("a span's version that is no PEP 440 one")
        span = self._spans[key] = Span(introduced, end, row[2])
        return span

    def _version(self, value: object) -> str:
        # (as the records spell them, within bounds: PEP 440 allows white
        # space around a fixed version)
        if not isinstance(value, str) or len(value) > MAX_VERSION:
            raise CompactError("a version that is none")
        return self._shared(value)

    def _shared(self, text: str) -> str:
        return self._texts.setdefault(text, text)


def _list(value: object) -> list[Any]:
    if not isinstance(value, list):
        raise CompactError("a list that is none")
    return value


def _text(value: object, limit: int, allowed: str) -> str:
    """C{value}, a string of at most C{limit} printable characters (or C{allowed})."""
    if not isinstance(value, str) or len(value) > limit \
            or not (value.isprintable() or all(c.isprintable() or c in allowed for c in value)):
        raise CompactError("a text that is none")
    return value
