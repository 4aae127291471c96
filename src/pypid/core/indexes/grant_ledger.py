"""
When each namespace grant came into force (PEP 752), and which projects of
its namespace others than its owners had made by then: the JSON API's
C{owned: false}.

Why kept apart from the configuration: C{owned} is false only for a
project that existed before the namespace was reserved, and the
configuration says which grants are in force, not since when nor over
what; a restart must not make projects look older than their grant, nor
deleting a project's first files make it younger. So the first server to
run with a grant writes it down in one small document of the default
index's storage (L{pypid.storage.base.capabilities.GRANT_LEDGER}), which
every later start, reload and server on that storage reads and keeps. A
grant whose owners change stays the same grant; one removed is forgotten,
so reserving the namespace again starts anew.

The document is JSON: C{{"grants": {"<index or *>/<namespace>": {"since":
<seconds>, "before": [<index>/<project>, ...]}}}}, bounded (L{MAX_BYTES}).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping

import attrs

from pypid.core.indexes.namespaces import Grant, NamespaceGrants

#: The most bytes a ledger's document takes: far above any company's
#: namespaces (100,000 projects made before their grants take 3 MiB), and
#: small enough to read at each start.
MAX_BYTES = 8 << 20


class InvalidLedger(ValueError):
    """A ledger's document that cannot be read; the message says why."""


def ledger_key(grant: Grant) -> str:
    """A grant's name in the ledger: its index (C{*}: every hosted one) and namespace."""
    return f"{grant.index or '*'}/{grant.name}"


@attrs.frozen
class GrantEntry:
    """
    One grant's record.

    @ivar since: when it came into force (seconds since the epoch).
    @ivar before: the projects others than its owners had made in its
        namespace by then, as C{index/project} (normalized).
    """

    since: float
    before: frozenset[str]
    #: the projects of L{before} whatever their index (for composed pages)
    projects: frozenset[str] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "projects",
                           frozenset(key.partition("/")[2] for key in self.before))


@attrs.frozen
class GrantLedger:
    """Each grant in force's L{GrantEntry}, by L{ledger_key}."""

    entries: Mapping[str, GrantEntry] = attrs.field(factory=dict)

    def before(self, grant: Grant) -> frozenset[str] | None:
        """C{grant}'s L{GrantEntry.before}, or L{None} when the ledger has no word of it."""
        entry = self.entry(grant)
        return entry.before if entry is not None else None

    def entry(self, grant: Grant) -> GrantEntry | None:
        """C{grant}'s record, or L{None} when the ledger has no word of it."""
        return self.entries.get(ledger_key(grant))

    def brought_up(self, grants: NamespaceGrants, now: float,
                   found: Callable[[Grant], Iterable[str]]) -> GrantLedger:
        """
        The ledger of C{grants}: each one recorded kept as it was, each
        other in force from C{now} over the projects C{found(grant)} (those
        its owners did not make); a grant no longer configured left out.
        """
        entries: dict[str, GrantEntry] = {}
        for grant in grants.grants:
            key = ledger_key(grant)
            kept = self.entries.get(key)
            entries[key] = kept if kept is not None else GrantEntry(
                now, frozenset(found(grant)))
        return GrantLedger(entries)

    def to_bytes(self) -> bytes:
        """The document, in a stable order (the same ledger, the same bytes)."""
        return json.dumps({"grants": {
            key: {"since": entry.since, "before": sorted(entry.before)}
            for key, entry in sorted(self.entries.items())}},
            separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> GrantLedger:
        """The ledger of a document L{to_bytes} wrote, else L{InvalidLedger}."""
        if len(data) > MAX_BYTES:
            raise InvalidLedger(f"over {MAX_BYTES} bytes")
        try:
            found = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise InvalidLedger(f"not JSON: {e}") from None
        grants = found.get("grants") if isinstance(found, dict) else None
        if not isinstance(grants, dict):
            raise InvalidLedger('no "grants" object')
        entries: dict[str, GrantEntry] = {}
        for key, value in grants.items():
            since = value.get("since") if isinstance(value, dict) else None
            before = value.get("before") if isinstance(value, dict) else None
            if (not isinstance(since, (int, float)) or isinstance(since, bool)
                    or not isinstance(before, list)
                    or not all(isinstance(p, str) for p in before)):
                raise InvalidLedger(f"{key}: needs a number since and a list before")
            try:
                when = float(since)
            except OverflowError:
                when = math.inf
            if not math.isfinite(when):
                raise InvalidLedger(f"{key}: since is not a finite number")
            entries[key] = GrantEntry(when, frozenset(before))
        return cls(entries)
