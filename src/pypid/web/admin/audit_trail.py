"""
The audit log, as the web layer writes and shows it.

L{AuditTrail} turns what a request did into L{pypid.core.records.audit_chain.Entry}s: who
(the user, and the token when one was used), from where (the address the
login throttle counts), what and with which outcome. A change's entry is
written before the request is answered (L{AuditTrail.recorded}): an
acknowledged change is in the log even if the server is killed the moment
after. Failed and throttled logins go through
L{pypid.core.records.login_failures.LoginFailures}, so a flood of them writes a bounded
number of entries, and nobody waits for them to be written; so do the
token exchange's refusals (L{AuditTrail.fold_refused}), folded apart from
the logins: a flood of junk ID tokens cannot push the failed logins of
this minute past the bound of distinct keys, where their users and
addresses would be folded away.

L{AuditAdmin} is C{GET /api/audit}, for admins.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Mapping
from typing import Any, TypedDict, TypeVar, Unpack

import attrs
from klein import Klein
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
from pypid.core.formats.admin_answers import AuditCheck, AuditPage
from pypid.core.parts import IMetricsSource
from pypid.core.records.audit_chain import FAILED, OK, REFUSED, AuditError, Entry, format_time
from pypid.core.records.audit_query import Query, make_query
from pypid.core.records.login_failures import LoginFailures
from pypid.core.records.metrics import Family
from pypid.core.util.http_errors import BadRequest, Forbidden, HTTPError
from pypid.storage.audit_log import IAuditLog, audit_families
from pypid.storage.interface import StorageError
from pypid.web.identity.access import Access, not_an_admin
from pypid.web.identity.request_auth import client_address, identity_of
from pypid.web.server.routes import answer_errors, form_field, send_json
from pypid.web.serving.respond import storage_unavailable

log = Logger()

#: The fields of an entry a project's owner reads (not an admin): never
#: the addresses and tokens of others, nor the index a promotion came
#: from (one that may be hidden from them).
OWNER_FIELDS = frozenset({"time", "event", "outcome", "user", "index", "project", "version",
                          "filename", "sha256", "detail", "count"})

#: What C{GET /api/audit} answers without credentials.
AUDIT_LOGIN = "authentication is required to read the audit log"

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
    """
    The outcome an L{pypid.core.util.http_errors.HTTPError} stands for:
    refused (4xx) or failed.
    """
    return REFUSED if error.code < 500 else FAILED


def facts_of(record: FileRecord) -> FileFacts:
    """What an entry says of a file: its project, version, filename and sha256."""
    return {"project": record.project, "version": record.version,
            "filename": record.filename, "sha256": record.sha256}


def named(facts: Named) -> Named:
    """
    The facts a request named, with the project and version its filename
    names (else those it gave, the project normalized when it is a valid
    name), so that C{?project=} finds a refused change too.
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
    """
    The writes of the entries a request recorded (L{Deferred}s firing when
    each entry's first write attempt ended), which the request awaits
    before it answers.
    """

    waiting: list[Deferred[bool]] = attrs.field(factory=list)


registerAdapter(lambda request: AuditWrites(), Request, IAuditWrites)


@attrs.define
class AuditTrail:
    """
    Records changes and failed logins into an audit log.

    @ivar log: the L{pypid.storage.audit_log.IAuditLog}.
    @ivar _clock: provides C{seconds()} (wall-clock time) and C{callLater}.
    """

    log: IAuditLog
    _clock: IReactorTime
    _logins: LoginFailures = attrs.field(factory=LoginFailures)
    #: the token exchange's refusals (L{fold_refused})
    _refusals: LoginFailures = attrs.field(factory=LoginFailures)
    _window_end: IDelayedCall | None = None

    def record(self, request: IRequest, identity: Identity | None, event: str,
               outcome: str = OK, **facts: Unpack[Facts]) -> Deferred[bool]:
        """
        Record that C{identity} (an L{pypid.auth.verifier.Identity}) did
        C{event} through C{request}: the entry's write starts now, and
        L{written} (which L{recorded} calls) waits for it.

        @param facts: C{project}, C{version}, C{filename}, C{sha256},
            C{target}, C{detail}, as they apply.
        @return: a L{Deferred} firing, once the entry's first write attempt
            ended, with whether it was written; it never fails.
        """
        token: Token | None = identity.token if identity is not None else None
        writing = self.log.write(Entry(
            time=format_time(self._clock.seconds()), event=event, outcome=outcome,
            user=identity.name if identity is not None else None,
            token=token.id if token is not None else None,
            address=client_address(request), **facts))
        IAuditWrites(request).waiting.append(writing)
        return writing

    def refused(self, request: IRequest, identity: Identity | None, event: str,
                error: HTTPError, **facts: Unpack[Named]) -> Deferred[bool]:
        """Record that C{event} was refused, or failed, with C{error} (an C{HTTPError})."""
        return self.record(request, identity, event, outcome_of(error), detail=error.message,
                           **named(facts))

    async def written(self, request: IRequest) -> None:
        """
        Wait until the first write attempt of every entry C{request}
        recorded has ended (an entry that failed is logged, and tried again
        without anyone waiting).
        """
        writes = IAuditWrites(request)
        while writes.waiting:
            await writes.waiting.pop(0)

    async def recorded(self, request: IRequest, event: str, work: Awaitable[_T],
                       identity: Identity | None = None, **facts: Unpack[Named]) -> _T:
        """
        Await C{work}, a change C{event}, then its entries' writes (see
        L{written}), so the answer comes once they are on disk. When it is
        refused (or fails), record that, then let the error answer as
        before. Only refusals to someone who logged in (C{identity}, or the
        request's) are recorded: the others are failed logins, recorded as
        such, or anonymous.

        @param facts: what the request named (its filename, project,
            version, target), for a refusal's entry.
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
        Record a failed (or throttled) login of C{user} (L{None}: a name that
        is no user's) from C{address}, folded per minute; nobody waits for
        its write.
        """
        event = "login-throttled" if throttled else "login-failed"
        self._append(self._logins.add(self._clock.seconds(), event, user, address, token))

    def fold_refused(self, address: str | None, user: str | None, event: str,
                     error: HTTPError) -> None:
        """
        Record that C{event}, asked by a client without credentials from
        C{address}, was refused (or failed) with C{error} (an
        C{HTTPError}), naming C{user} when the request proved who it is:
        folded per minute like failed logins, with their own bound
        (L{pypid.core.records.login_failures.LoginFailures}), so such a flood neither
        fills the disk nor folds away the failed logins' addresses; nobody
        waits for its write.
        """
        self._append(self._refusals.add(self._clock.seconds(), event, user, address,
                                        outcome=outcome_of(error), detail=error.message))

    def _append(self, entries: list[Entry]) -> None:
        """Queue folded entries, and make sure the window's end writes the rest."""
        for entry in entries:
            self.log.append(entry)
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
        """Write everything, the failed logins of this minute too (the server stops)."""
        if self._window_end is not None and self._window_end.active():
            self._window_end.cancel()
        self._window_end = None
        now = self._clock.seconds()
        for entry in self._logins.drain(now) + self._refusals.drain(now):
            self.log.append(entry)
        return self.log.close()


@implementer(IMetricsSource)
class AuditPart(Service):
    """
    The audit trail as a part of the daemon: written out as the server
    stops, after the requests in flight (whose changes it records) and
    before the storage and the thread pools (which write it).

    @ivar trail: the L{AuditTrail}.
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
        return audit_families(self.trail.log)


@attrs.define(slots=False)
class AuditAdmin:
    """
    C{GET /api/audit} (admins only).

    @ivar _access: the L{pypid.web.identity.access.Access} gate.
    @ivar _trail: the L{AuditTrail}.
    """

    _access: Access
    _trail: AuditTrail

    app = Klein()
    answer_errors(app)

    @app.route("/api/audit", methods=["GET", "HEAD"])
    async def audit(self, request: IRequest) -> bytes:
        """
        The audit entries, oldest first, as JSON: C{since} (a date or time,
        ISO 8601, UTC unless it says otherwise) gives the entries from then
        on, at most C{limit} (default 1000, at most 10000), and C{next}, the
        C{since} of the following page; without C{since}, the newest
        C{limit} (before C{before}, if given), and C{before}, the C{before}
        of the page of older ones. C{project}, C{user}, C{event} and
        C{index} keep only the entries that name them (C{index=default}:
        those that name no index). One request reads at most
        L{pypid.core.records.audit_query.MAX_DAYS_READ} days: past them, it answers what
        it found, and the cursor of the rest.
        """
        identity = await self._access.gate_upload(request, needed=AUDIT_LOGIN, index=None)
        project, index = form_field(request, "project"), form_field(request, "index")
        # (refused before the query is read)
        shown = None if self._may_read_all(identity, project, index) else OWNER_FIELDS
        query = audit_query({name: form_field(request, name) or None
                             for name in ("since", "before", "project", "user", "event",
                                          "limit", "index")})
        return send_json(request, await self._page(query, shown))

    async def entries(self, identity: Identity, query: Query, project: str,
                      index: str) -> AuditPage:
        """
        The page of entries C{query} asks for, for C{identity}: an admin
        reads any; one who may change a project, that project's, when the
        query names the project and its index (C{index=default} for the
        default one), and only the fields an owner reads.

        @raise Forbidden: anyone else, and a token.
        """
        shown = None if self._may_read_all(identity, project, index) else OWNER_FIELDS
        return await self._page(query, shown)

    async def _page(self, query: Query, shown: frozenset[str] | None) -> AuditPage:
        """The page of entries C{query} asks for, each with the fields C{shown} (all: L{None})."""
        audit_log = self._trail.log
        # What was recorded a moment ago is shown too.
        await audit_log.flush()
        try:
            page = await audit_log.read(query)
        except (StorageError, OSError) as e:
            log.error("Cannot read the audit log: {error}", error=str(e))
            raise storage_unavailable(e)
        return {"entries": [e.public() if shown is None
                            else {k: v for k, v in e.public().items() if k in shown}
                            for e in page.entries],
                "next": page.next, "before": page.before}

    def _may_read_all(self, identity: Identity, project: str, index: str) -> bool:
        """
        True for an admin, False for whoever may change the C{project} of
        C{index} named (they read an owner's fields).

        @raise Forbidden: anyone else, and a token.
        """
        if self._access.is_admin(identity):
            return True
        # (an index that does not exist, or hidden from them, is refused
        # alike: the answer never tells a hidden index apart)
        if identity.token is None and project and is_valid_name(project) \
                and self._access.owns(identity, normalize(project), index):
            return False
        if identity.token is not None:
            raise Forbidden("a token never acts as an admin: log in with a password")
        raise Forbidden(not_an_admin(identity.name))

    @app.route("/api/audit/verify", methods=["GET", "HEAD"])
    async def verify(self, request: IRequest) -> bytes:
        """
        Check every chain of the log (what C{pypid-admin audit verify}
        does with the configuration): C{files}, C{entries}, C{intact}, the
        C{broken} links and the C{notes} (where a chain's kept part begins),
        as text. It reads the whole log: an admin's question, not a probe's.
        """
        await self._access.admin(request, AUDIT_LOGIN)
        return send_json(request, await self.check())

    async def check(self) -> AuditCheck:
        """What checking every chain of the log finds now (see L{verify})."""
        audit_log = self._trail.log
        await audit_log.flush()
        try:
            check = await audit_log.verify()
        except (StorageError, OSError) as e:
            log.error("Cannot read the audit log: {error}", error=str(e))
            raise storage_unavailable(e)
        return {"files": check.files, "entries": check.entries, "intact": check.intact,
                "broken": [str(b) for b in check.broken], "notes": [str(n) for n in check.notes]}


def audit_query(fields: Mapping[str, str | None]) -> Query:
    """The query of the audit log C{fields} ask for (L{make_query}'s); 400 saying why not."""
    try:
        return make_query(**fields)
    except AuditError as e:
        raise BadRequest(str(e))
