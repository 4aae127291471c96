"""
The audit log, as the web layer writes it (its reading, C{GET /api/audit}, is
L{pypid.web.admin.audit_admin}).

L{AuditTrail} turns what a request did into L{Entry}s: who (the user, and the token used),
from where (the address the login throttle counts), what, and with which outcome. A change's
entry is written before the request is answered (L{AuditTrail.recorded}): an acknowledged
change is in the log even if the server is killed the moment after. Failed and throttled
logins are folded (L{LoginFailures}), so a flood of them writes a bounded number of entries
nobody waits for; so are the token exchange's refusals (L{AuditTrail.fold_refused}), apart from
the logins: a flood of junk ID tokens cannot push this minute's failed logins past the bound of
distinct keys, where their users and addresses would be folded away.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Sequence
from typing import Any, TypedDict, TypeVar, Unpack

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.components import registerAdapter
from twisted.web.iweb import IRequest
from twisted.web.server import Request
from zope.interface import Attribute, Interface, implementer

from pypid.auth.tokens import Token
from pypid.auth.verifier import Identity
from pypid.core.dists.model import FileRecord
from pypid.core.dists.names import InvalidName, is_valid_name, normalize, parse_filename
from pypid.core.parts import IMetricsSource
from pypid.core.records.audit_chain import FAILED, OK, REFUSED, Entry, format_time
from pypid.core.records.change_kinds import ChangeKind
from pypid.core.records.login_failures import LoginFailures
from pypid.core.records.metrics import Family
from pypid.core.util.http_errors import HTTPError
from pypid.storage.base.journal import IJournal, journal_families
from pypid.web.identity.request_auth import client_address, identity_of

#: (the namespace these lines always had, before the module moved: log filters keep matching)
log = Logger(namespace="pypid.web.admin.audit_trail")

_T = TypeVar("_T")


class Named(TypedDict, total=False):
    """What a request named, as far as it applies (a refusal's entry says it)."""

    index: str | None
    project: str | None
    version: str | None
    filename: str | None
    target: str | None


class FileFacts(TypedDict):
    """What an entry says of a file."""

    project: str
    version: str
    filename: str
    sha256: str


class Facts(Named, total=False):
    """What an entry says a change was about, as far as it applies."""

    sha256: str | None
    detail: str | None


def outcome_of(error: HTTPError) -> str:
    """The outcome an L{HTTPError} stands for: refused (4xx) or failed."""
    return REFUSED if error.code < 500 else FAILED


def facts_of(record: FileRecord) -> FileFacts:
    """What an entry says of a file: its project, version, filename and sha256."""
    return {"project": record.project, "version": record.version,
            "filename": record.filename, "sha256": record.sha256}


def named(facts: Named) -> Named:
    """
    The facts a request named, with the project and version its filename names (else those it
    gave, a valid project name normalized), so that C{?project=} finds a refused change too.
    """
    facts = Named(**facts)
    filename = facts.get("filename")
    if filename:
        try:
            parsed = parse_filename(filename, legacy=True)
        except InvalidName:
            pass
        else:
            facts["project"], facts["version"] = parsed.project, parsed.version
    project = facts.get("project")
    if project and is_valid_name(project):
        facts["project"] = normalize(project)
    return facts


class IAuditWrites(Interface):
    """The writes of the audit entries a request recorded: its L{AuditWrites} component."""

    waiting = Attribute("The L{Deferred}s of the writes not yet awaited.")


@attrs.define
class AuditWrites:
    """The writes of the entries a request recorded, which it awaits before it answers."""

    waiting: list[Deferred[int | None]] = attrs.field(factory=list)


registerAdapter(lambda request: AuditWrites(), Request, IAuditWrites)


@attrs.define
class AuditTrail:
    """
    Records changes and failed logins into an audit log.

    @ivar _clock: provides C{seconds()} (wall-clock time) and C{callLater}.
    """

    log: IJournal
    _clock: IReactorTime
    _logins: LoginFailures = attrs.field(factory=LoginFailures)
    #: the token exchange's refusals (L{fold_refused})
    _refusals: LoginFailures = attrs.field(factory=LoginFailures)
    _window_end: IDelayedCall | None = None

    def record(self, request: IRequest, identity: Identity | None, event: ChangeKind,
               outcome: str = OK, **facts: Unpack[Facts]) -> Deferred[int | None]:
        """
        Record that C{identity} did C{event} through C{request}: the entry's write starts now,
        and L{written} waits for it.

        @return: a L{Deferred} firing, once the entry's first write attempt ended, with its
            serial (L{None}: not written yet); it never fails.
        """
        return self.record_all(request, identity, event, [facts], outcome)

    def record_all(self, request: IRequest, identity: Identity | None, event: ChangeKind,
                   each: Sequence[Facts], outcome: str = OK) -> Deferred[int | None]:
        """L{record} of one entry for each of C{each}, written together (a promoted release)."""
        token: Token | None = identity.token if identity is not None else None
        now = format_time(self._clock.seconds())
        writing = self.log.append([Entry(
            time=now, event=event, outcome=outcome,
            user=identity.name if identity is not None else None,
            login=identity.login.source if identity is not None else None,
            token=token.id if token is not None else None,
            address=client_address(request), **facts) for facts in each])
        IAuditWrites(request).waiting.append(writing)
        return writing

    def refused(self, request: IRequest, identity: Identity | None, event: ChangeKind,
                error: HTTPError, **facts: Unpack[Named]) -> Deferred[int | None]:
        """Record that C{event} was refused, or failed, with C{error} (an C{HTTPError})."""
        return self.record(request, identity, event, outcome_of(error), detail=error.message,
                           **named(facts))

    async def written(self, request: IRequest) -> None:
        """
        Wait until the first write attempt of every entry C{request} recorded has ended (one
        that failed is logged, and tried again without anyone waiting).
        """
        writes = IAuditWrites(request)
        while writes.waiting:
            await writes.waiting.pop(0)

    async def recorded(self, request: IRequest, event: ChangeKind, work: Awaitable[_T],
                       identity: Identity | None = None, **facts: Unpack[Named]) -> _T:
        """
        Await C{work}, a change C{event}, then its entries' writes, so the answer comes once
        they are on disk. A refusal (or failure) is recorded, then answers as before; only one
        to someone who logged in (C{identity}, or the request's): the others are failed logins,
        recorded as such, or anonymous. C{facts}: what the request named, for a refusal's entry.
        """
        try:
            result = await work
        except HTTPError as e:
            who = identity if identity is not None else identity_of(request)
            if who is not None:
                self.refused(request, who, event, e, **facts)
            await self.written(request)
            raise
        await self.written(request)
        return result

    def login_failed(self, user: str | None, address: str | None, token: str | None = None,
                     throttled: bool = False) -> None:
        """
        Record a failed (or throttled) login of C{user} (L{None}: a name that is no user's)
        from C{address}, folded per minute; nobody waits for its write.
        """
        event = ChangeKind.LOGIN_THROTTLED if throttled else ChangeKind.LOGIN_FAILED
        self._append(self._logins.add(self._clock.seconds(), event, user, address, token))

    def fold_refused(self, address: str | None, user: str | None, event: ChangeKind,
                     error: HTTPError) -> None:
        """
        Record that C{event}, asked without credentials from C{address}, was refused (or
        failed) with C{error}, naming C{user} when the request proved who it is: folded per
        minute like failed logins, with their own bound, so such a flood neither fills the disk
        nor folds away the failed logins' addresses; nobody waits for its write.
        """
        self._append(self._refusals.add(self._clock.seconds(), event, user, address,
                                        outcome=outcome_of(error), detail=error.message))

    def _append(self, entries: list[Entry]) -> None:
        """Queue folded entries, and make sure the window's end writes the rest."""
        for entry in entries:
            self.log.queue(entry)
        ends = [end for end in (self._logins.ends_at(), self._refusals.ends_at())
                if end is not None]
        if ends and (self._window_end is None or not self._window_end.active()):
            self._window_end = self._clock.callLater(
                max(min(ends) - self._clock.seconds(), 0.0), self._window_ended)

    def _window_ended(self) -> None:
        self._window_end = None
        now = self._clock.seconds()
        self._append(self._logins.due(now) + self._refusals.due(now))

    def close(self) -> Deferred[Any]:
        """
        Write everything, this minute's failed logins too (the server stops); the journal is
        closed after the storages that tell their changes in it (L{JournalPart}).
        """
        if self._window_end is not None and self._window_end.active():
            self._window_end.cancel()
        self._window_end = None
        now = self._clock.seconds()
        for entry in self._logins.drain(now) + self._refusals.drain(now):
            self.log.queue(entry)
        return self.log.flush()


@implementer(IMetricsSource)
class AuditPart(Service):
    """
    The audit trail as a part of the daemon: written out as the server stops, after the requests
    in flight (whose changes it records), before the storage and thread pools (which write it).
    """

    def __init__(self, trail: AuditTrail) -> None:
        self.trail = trail

    def stopService(self) -> Deferred[Any]:
        """Write everything still waiting; a failure is logged, never raised."""
        Service.stopService(self)
        closing = maybeDeferred(self.trail.close)
        closing.addErrback(lambda f: log.failure("Cannot write the audit log", f))
        return closing

    def metric_families(self) -> Iterable[Family]:
        """The log's entries waiting, written, failed and lost."""
        return journal_families(self.trail.log)
