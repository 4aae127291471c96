"""
The events pypid sends to webhooks, made of the audit entries of the
changes they report (docs/operations.rst, "Webhooks"): an event's type is
its entry's event and its id the entry's C{id}; the entries of one
promoted release share one id and make one event.

The signature is Standard Webhooks' (HMAC-SHA256 over
C{id.timestamp.body}, base64, C{v1,} first); the tests check every
delivery with C{standardwebhooks}, its reference implementation, so a
receiver in any language checks it with a library.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import hmac
import json
from collections.abc import Iterable, Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

import attrs

from pypid.core.records.audit_chain import OK, Entry
from pypid.core.records.change_kinds import EVENT_KINDS, PROJECT_EVENT_KINDS

#: The types of event, each the kind of journal entry it reports (and the
#: admin's test), and what it says.
EVENT_TYPES: Mapping[str, str] = {
    **{str(kind): said for kind, said in EVENT_KINDS.items()},
    "test": "a test event an admin sent (pypid-admin webhooks test)",
}

#: The index of today's URLs, as an event names it (an entry names none).
DEFAULT_INDEX = "default"

#: Where a change that no person made came from (the recycle bin's purge,
#: a retention rule's schedule, an upstream): the actor's source.
SERVER = "server"


@attrs.frozen
class Filter:
    """
    Which events a subscription wants, by type, index and project; each
    empty for all, and then the events of no index or project too.

    @ivar projects: project names or globs, normalized as C{[acl]}'s.
    """

    events: frozenset[str] = frozenset()
    indexes: frozenset[str] = frozenset()
    projects: tuple[str, ...] = ()

    def wants(self, type: str, index: str | None, project: str | None) -> bool:
        """Whether an event of C{type}, of C{index} and C{project} (L{None}: of none), is wanted."""
        return ((not self.events or type in self.events)
                and (not self.indexes or index in self.indexes)
                and (not self.projects or (project is not None and any(
                    fnmatchcase(project, pattern) for pattern in self.projects))))


def index_of(entry: Entry) -> str | None:
    """The index an entry's event names: L{DEFAULT_INDEX} for the default's, L{None} for none."""
    if entry.index is not None:
        return entry.index
    return DEFAULT_INDEX if entry.event in PROJECT_EVENT_KINDS else None


@attrs.frozen
class WebhookEvent:
    """
    One event, as it is sent (and kept by the ledger, given up or to send again).

    @ivar id: the C{webhook-id}, and the audit entries' C{id}.
    @ivar data: what it says (L{data_of}), JSON-ready.
    """

    id: str
    type: str
    time: str
    data: Mapping[str, Any]

    def body(self) -> bytes:
        """The bytes sent: Standard Webhooks' payload shape, one line of sorted JSON."""
        return json.dumps({"type": self.type, "timestamp": self.time, "data": self.data},
                          sort_keys=True, separators=(",", ":")).encode("utf-8")

    def to_json(self) -> dict[str, Any]:
        """The event as the ledger keeps it."""
        return {"id": self.id, "type": self.type, "time": self.time, "data": dict(self.data)}

    @classmethod
    def from_json(cls, value: object) -> WebhookEvent:
        """The event the ledger kept; L{ValueError} when C{value} is not one."""
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
        try:
            id, type, time, data = value["id"], value["type"], value["time"], value["data"]
        except KeyError as e:
            raise ValueError(f"no {e.args[0]!r}") from None
        if not all(isinstance(v, str) for v in (id, type, time)) or not isinstance(data, dict):
            raise ValueError("not an event")
        return cls(id, type, time, data)


def data_of(entries: Sequence[Entry]) -> dict[str, Any]:
    """What the event of C{entries} (one, or a promoted release's files, of one id) says."""
    first = entries[0]
    files = [{"filename": e.filename, "sha256": e.sha256} for e in entries
             if e.filename is not None]
    actor: dict[str, str | None] = (
        {"name": first.user, "source": first.login, "token": first.token}
        if first.user is not None else {"name": None, "source": SERVER, "token": None})
    return {"id": first.id, "index": index_of(first), "project": first.project,
            "version": first.version, "files": files, "actor": actor,
            "detail": first.detail, "target": first.target, "outcome": first.outcome}


def events_of(entries: Iterable[Entry]) -> list[WebhookEvent]:
    """The events of C{entries} (each with an C{id}), in order: one per id."""
    grouped: dict[str, list[Entry]] = {}
    for entry in entries:
        if entry.id is None:
            raise ValueError("an entry sent as an event has an id")
        grouped.setdefault(entry.id, []).append(entry)
    return [WebhookEvent(id, group[0].event, group[0].time, data_of(group))
            for id, group in grouped.items()]


def make_test_event(id: str, time: str, subscription: str, user: str | None) -> WebhookEvent:
    """The test event an admin sends to a subscription (L{EVENT_TYPES}'s C{test})."""
    return WebhookEvent(id, "test", time, {
        "id": id, "index": None, "project": None, "version": None, "files": [],
        "actor": {"name": user, "source": None, "token": None},
        "detail": f"a test of the webhook {subscription}", "target": subscription,
        "outcome": OK})


#: What a secret is written as: Standard Webhooks' form.
SECRET_PREFIX = "whsec_"
#: The bytes a secret has (the specification's range).
SECRET_BYTES = (24, 64)


def parse_secret(text: str) -> bytes:
    """
    The key of a secret written C{whsec_<base64>} (the prefix may be left out), of 24 to
    64 bytes.

    @raise ValueError: saying what a secret is, never echoing it.
    """
    text = text.strip().removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    low, high = SECRET_BYTES
    if not low <= len(key) <= high:
        raise ValueError(f"expected whsec_ then the base64 of {low} to {high} random bytes "
                         "(make one with: pypid-admin webhooks secret)")
    return key


def new_secret(random: bytes) -> str:
    """The text of a new secret of the bytes C{random} (32 of them, say)."""
    return SECRET_PREFIX + base64.b64encode(random).decode("ascii")


def signature(key: bytes, id: str, timestamp: int, body: bytes) -> str:
    """
    The C{webhook-signature} of a delivery: C{v1,} and the base64 of
    HMAC-SHA256 over C{<id>.<timestamp>.<body>} (Standard Webhooks).
    """
    # (hmac.digest: one C call where hmac.new is six Python ones)
    mac = hmac.digest(key, f"{id}.{timestamp}.".encode() + body, "sha256")
    return "v1," + base64.b64encode(mac).decode("ascii")


#: The longest wait between two tries (s), whatever the back-off says;
#: a receiver's C{Retry-After} may ask for up to L{MAX_RETRY_AFTER}.
MAX_DELAY = 3600.0
MAX_RETRY_AFTER = 6 * 3600.0


def next_try(failures: int, now: float, created: float, retry_for: float,
             first_delay: float, jitter: float, retry_after: float | None = None,
             ) -> float | None:
    """
    When to try a delivery again after its C{failures}-th failure at
    C{now}, or L{None} to give it up: C{first_delay} doubled at each
    failure, up to L{MAX_DELAY}, each wait cut by up to half at random
    (C{jitter}, 0 to 1), so receivers that came back are not hit by every
    sender at once; never sooner than a C{Retry-After} asked (up to
    L{MAX_RETRY_AFTER}); the last try at C{created + retry_for}.
    """
    end = created + retry_for
    if now >= end:
        return None
    delay = min(MAX_DELAY, first_delay * 2 ** min(failures - 1, 40)) * (1 - jitter / 2)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return min(now + delay, end)


def parse_retry_after(value: str, now: float) -> float | None:
    """
    The seconds a C{Retry-After} asks to wait (RFC 9110: a number of
    seconds, or an HTTP date, from C{now}); L{None} when it says neither.
    """
    value = value.strip()
    if value.isascii() and value.isdigit():
        # (a number of any length: what is past the bound is the bound)
        return float(int(value)) if len(value) <= 9 else MAX_RETRY_AFTER
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)
