"""
The kinds of entry the journal holds (L{ChangeKind}), named once (strings
listed in several places drift apart): what the audit log shows, what a
query may ask for, and which kinds are the events a webhook may be told of.

A kind is a C{str}: the JSON keeps the plain value, and a value read back
becomes its member, so an unknown kind is refused where it is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class ChangeKind(StrEnum):
    """The kind of one journal entry (those a webhook is told of: L{EVENT_KINDS})."""

    UPLOAD = "upload"
    YANK = "yank"
    UNYANK = "unyank"
    DELETE = "delete"
    TOKEN_ISSUED = "token-issued"
    TOKEN_REVOKED = "token-revoked"
    #: an upstream page fetched again on request
    REFRESH = "refresh"
    #: upstream files pinned by a requirements file
    PRECACHE = "precache"
    #: a file or a tombstone brought in by C{pypid-admin import}
    IMPORT = "import"
    PROMOTE = "promote"
    #: logins that failed, or were throttled (folded per minute)
    LOGIN_FAILED = "login-failed"
    LOGIN_THROTTLED = "login-throttled"
    #: a project's status (PEP 792) changed
    STATUS = "status"
    #: a download refused for an advisory
    ADVISORY_DENIED = "advisory-denied"
    RESTORE = "restore"
    PURGE = "purge"
    RETENTION = "retention"
    #: a quarantine of a project the upstream removed, released by an admin
    UPSTREAM_RELEASE = "upstream-release"
    #: a person logged in through the pages' form, and out
    SESSION_OPENED = "session-opened"
    SESSION_CLOSED = "session-closed"
    #: a waiver admins keep, added and taken back
    ADVISORY_WAIVE = "advisory-waive"
    ADVISORY_UNWAIVE = "advisory-unwaive"
    #: a kept file an upstream stopped listing, or lists again
    UPSTREAM_TAKEDOWN = "upstream-takedown"
    UPSTREAM_RELISTED = "upstream-relisted"
    ADVISORY = "advisory"
    RELOAD = "reload"
    #: an admin sent a webhook's given-up events again, or a test event
    WEBHOOK_REDELIVER = "webhook-redeliver"
    WEBHOOK_TEST = "webhook-test"
    #: a shared storage holds a change of a file or of a project's status,
    #: which the other servers read again (L{pypid.storage.base.store_changes})
    STORED = "stored"


#: The kinds a webhook may be told of, each with what its event says.
EVENT_KINDS: Mapping[ChangeKind, str] = {
    ChangeKind.UPLOAD: "a file was uploaded (one event per file)",
    ChangeKind.YANK: "a file was yanked (detail: the reason)",
    ChangeKind.UNYANK: "a file's yank was taken back",
    ChangeKind.DELETE: "a file was deleted through the API (to the recycle bin when there "
                       "is one)",
    ChangeKind.RESTORE: "a file was taken out of the recycle bin",
    ChangeKind.PURGE: "a file was removed for good from the recycle bin (detail: how long "
                      "it was kept)",
    ChangeKind.RETENTION: "a retention rule removed a file (detail: the rule)",
    ChangeKind.PROMOTE: "a release was promoted into the index (target: the index it came "
                        "from)",
    ChangeKind.STATUS: "a project's status changed (detail: the status, and its reason)",
    ChangeKind.UPSTREAM_TAKEDOWN: "a kept file of an upstream is no longer listed there",
    ChangeKind.ADVISORY: "an advisory newly concerns a release (target: the advisory's id)",
    ChangeKind.TOKEN_ISSUED: "an API token was issued (target: its id; detail: its scope)",
    ChangeKind.TOKEN_REVOKED: "an API token was revoked (target: its id)",
    ChangeKind.RELOAD: "the configuration was read again (outcome ok: applied; refused: "
                       "kept as it was, detail naming the sections and keys at fault)",
}

#: The event kinds that concern no project of an index (tokens, the configuration).
SERVER_EVENT_KINDS = frozenset({ChangeKind.TOKEN_ISSUED, ChangeKind.TOKEN_REVOKED,
                                ChangeKind.RELOAD})

#: The event kinds about a project of an index.
PROJECT_EVENT_KINDS = frozenset(EVENT_KINDS) - SERVER_EVENT_KINDS


#: The kinds the audit log's pages show only when asked for by name: the
#: storage's own bookkeeping, beside the entry of the action that made it.
UNSHOWN_KINDS = frozenset({ChangeKind.STORED})


def kind_of(value: str) -> ChangeKind:
    """The kind C{value} names; L{ValueError} naming it when it names none."""
    try:
        return ChangeKind(value)
    except ValueError:
        raise ValueError(f"unknown kind {value!r}") from None
