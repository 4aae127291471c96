"""
When each namespace grant came into force (PEP 752, issue 46), kept so
that the JSON API can tell the projects of a namespace that its owners
made from those that were there before it was reserved.

Why it is kept, and kept apart from the configuration: PEP 752's C{owned}
is false only for a project that existed before the namespace was
reserved (and keeps taking uploads). The configuration says which grants
are in force, not since when; a restart must not make every project of a
namespace look older than its grant, nor a new project look older. So the
first server to run with a grant writes down the time it came into force,
in one small document of the default index's storage
(L{pypid.storage.interface.GRANT_LEDGER}), which every later start, reload
and server on the same storage reads and keeps. A grant whose owners
change is a new grant: from then on, only its new owners' projects are
theirs. A grant removed is forgotten, so that reserving the namespace
again later starts anew.

The document is JSON: C{{"grants": {"<index or *>/<namespace>": {"since":
<seconds>, "owners": [<principal>, ...]}}}}, bounded (L{MAX_ENTRIES},
L{MAX_BYTES}). Pure: no I/O.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

import attrs

from pypid.core.namespaces import Grant, NamespaceGrants

#: The most grants a ledger keeps, and the most bytes its document takes:
#: far above any company's namespaces, and small enough to read at each start.
MAX_ENTRIES = 10_000
MAX_BYTES = 2 << 20


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
    @ivar owners: its owners then: other owners make it another grant.
    """

    since: float
    owners: frozenset[str]


@attrs.frozen
class GrantLedger:
    """Each grant in force's L{GrantEntry}, by L{ledger_key}."""

    entries: Mapping[str, GrantEntry] = attrs.field(factory=dict)

    def since(self, grant: Grant) -> float | None:
        """When C{grant} came into force, or L{None} when the ledger has no word of it."""
        entry = self.entries.get(ledger_key(grant))
        if entry is None or entry.owners != grant.owners:
            return None
        return entry.since

    def brought_up(self, grants: NamespaceGrants, now: float) -> GrantLedger:
        """
        The ledger of C{grants}: each one it records with the same owners
        kept as it was, each other one in force from C{now}; a grant no
        longer configured left out.
        """
        entries: dict[str, GrantEntry] = {}
        for grant in grants.grants:
            key = ledger_key(grant)
            kept = self.entries.get(key)
            entries[key] = (kept if kept is not None and kept.owners == grant.owners
                            else GrantEntry(now, grant.owners))
        return GrantLedger(entries)

    def to_bytes(self) -> bytes:
        """The document, in a stable order (the same ledger, the same bytes)."""
        return json.dumps({"grants": {
            key: {"since": entry.since, "owners": sorted(entry.owners)}
            for key, entry in sorted(self.entries.items())}},
            separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> GrantLedger:
        """
        The ledger of a document L{to_bytes} wrote.

        @raise InvalidLedger: naming what is wrong.
        """
        if len(data) > MAX_BYTES:
            raise InvalidLedger(f"over {MAX_BYTES} bytes")
        try:
            found = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise InvalidLedger(f"not JSON: {e}") from None
        grants = found.get("grants") if isinstance(found, dict) else None
        if not isinstance(grants, dict):
            raise InvalidLedger('no "grants" object')
        if len(grants) > MAX_ENTRIES:
            raise InvalidLedger(f"over {MAX_ENTRIES} grants")
        entries: dict[str, GrantEntry] = {}
        for key, value in grants.items():
            since = value.get("since") if isinstance(value, dict) else None
            owners = value.get("owners") if isinstance(value, dict) else None
            if (not isinstance(since, (int, float)) or isinstance(since, bool)
                    or not math.isfinite(since) or not isinstance(owners, list)
                    or not all(isinstance(o, str) for o in owners)):
                raise InvalidLedger(f"{key}: needs a number since and a list of owners")
            entries[key] = GrantEntry(float(since), frozenset(owners))
        return cls(entries)
