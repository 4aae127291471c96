"""
C{GET /api/advisories} (admins): what the server's security advisories do
to each index now, or would do under another mode (a dry run); what
C{pypid-admin advisories check} prints.

A dry run asks the running server rather than being a tool of its own:
what an index would hide depends on its hosted files, the upstream pages
it has cached and the advisories loaded, all in the server's memory. It
costs one verdict per known release of each project the advisories name
(each worked out once per database:
L{pypid.core.security.advisories.AdvisoryPolicy}).

C{index} keeps one index; C{mode} (C{warn}, C{hide} or C{deny}) answers
what each index would do in that mode, its severity and waivers kept.

The waivers admins keep (L{pypid.core.security.advisory_waivers}) are
listed, added and removed at C{/api/advisories/waivers}, each change
audited; C{GET /api/advisories/project/<p>} says, for an admin or whoever
may change the project, each advisory affecting a release it has in an
index and where the index stands on it (the console's project page).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import attrs
from klein import Klein
from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IRequest

from pypid.auth.reader import Reader
from pypid.core.dists.names import is_valid_name, normalize
from pypid.core.dists.version_order import version_key
from pypid.core.formats.admin_answers import AdvisoryCheck, ProjectAdvisories
from pypid.core.indexes.index_names import DEFAULT
from pypid.core.records.change_kinds import ChangeKind
from pypid.core.security.advisories import (
    MODES,
    OFF,
    AdvisoriesUnread,
    Advisory,
    AdvisoryBoard,
    AdvisoryDB,
    AdvisoryPolicy,
    Verdict,
)
from pypid.core.security.advisory_waivers import (
    InvalidWaiver,
    TooManyWaivers,
    Waiver,
    Waivers,
    parse_waiver,
)
from pypid.core.util.http_errors import BadRequest, Conflict, NotFound, Unavailable
from pypid.state.waiver_keeper import WaiverKeeper
from pypid.storage.base.interface import StorageError
from pypid.web.identity.gates import Gates
from pypid.web.server.audit_trail import AuditTrail
from pypid.web.server.respond import storage_unavailable
from pypid.web.server.routes import answer_errors, form_field, is_form, json_object, send_json

#: What C{GET /api/advisories} answers without credentials.
ADVISORIES_LOGIN = "authentication is required to read what advisories do"
#: What the waivers' routes answer without credentials.
WAIVERS_LOGIN = "authentication is required to manage advisory waivers"
#: The audit events of a waiver kept and removed.
WAIVE, UNWAIVE = ChangeKind.ADVISORY_WAIVE, ChangeKind.ADVISORY_UNWAIVE
#: The largest body a waiver's request may have.
MAX_WAIVER_BODY = 4096

_Edit = Callable[[Waivers], tuple[Waivers, Waiver | None]]


class AdvisedIndexes(Protocol):
    """What the dry run reads of the server's indexes (L{pypid.state.indexes.IndexRegistry})."""

    @property
    def board(self) -> AdvisoryBoard: ...

    @property
    def policies(self) -> Mapping[str, AdvisoryPolicy]: ...

    def releases_of(self, name: str) -> Callable[[str], set[str]]:
        """C{releases(project)}: the versions of a project index C{name} knows."""

    def hosted_sources(self, name: str) -> Sequence[str]:
        """The hosted indexes whose projects index C{name} lists, itself left out."""

    @property
    def waivers(self) -> WaiverKeeper | None: ...


def _advisory_json(a: Advisory) -> dict[str, Any]:
    return {"id": a.id, "aliases": list(a.aliases), "severity": a.severity,
            "summary": a.summary or None}


def verdict_json(project: str, version: str, verdict: Verdict) -> dict[str, Any]:
    """One release an index acts on, as the answer lists it."""
    return {"project": project, "version": version, "action": verdict.action,
            "advisories": [_advisory_json(a) for a in verdict.advisories]}


def stricter_sources(name: str, policies: Mapping[str, AdvisoryPolicy],
                     sources: Sequence[str]) -> list[dict[str, str]]:
    """
    The hosted C{sources} of index C{name} whose mode is stricter than its
    own (C{deny} over C{hide} over C{warn} over C{off}): by design, what
    such a base denies or hides at its own URLs, index C{name} serves as
    its own mode says, which an operator may not expect.
    """
    mode = policies[name].rules.mode
    return [{"index": source, "mode": policies[source].rules.mode} for source in sources
            if source in policies
            and MODES.index(policies[source].rules.mode) > MODES.index(mode)]


def index_report(name: str, policy: AdvisoryPolicy, releases: Callable[[str], set[str]],
                 projects: frozenset[str]) -> dict[str, Any]:
    """What index C{name}'s C{policy} does to the C{releases} of C{projects} it knows."""
    acted = [verdict_json(project, version, verdict) for project in sorted(projects)
             for version in sorted(releases(project), key=version_key)
             if (verdict := policy.verdict(project, version)) is not None
             ] if policy.active else []
    rules = policy.rules
    return {"index": name, "mode": rules.mode, "severity": rules.severity,
            "releases": acted}


def project_report(policy: AdvisoryPolicy, db: AdvisoryDB, project: str,
                   versions: set[str]) -> list[dict[str, Any]]:
    """
    Each of C{versions} of the normalized C{project} that advisories
    affect, newest first: its verdict's action (L{None}: none) and each
    advisory with where the index stands on it (L{AdvisoryPolicy.standing}).
    """
    found = []
    for version in sorted(versions, key=version_key, reverse=True):
        affecting = db.affecting(project, version)
        if not affecting:
            continue
        verdict = policy.verdict(project, version)
        found.append({
            "version": version, "action": verdict.action if verdict is not None else None,
            "advisories": [dict(_advisory_json(a), link=a.link,
                                standing=policy.standing(project, version, a))
                           for a in affecting]})
    return found


@attrs.define(slots=False)
class AdvisoryAdmin:
    """C{/api/advisories}: what they do, and the waivers admins keep."""

    _access: Gates
    _indexes: AdvisedIndexes
    _audit: AuditTrail = attrs.field(kw_only=True)
    _clock: IReactorTime = attrs.field(kw_only=True)

    app = Klein()
    answer_errors(app)

    @app.route("/api/advisories", methods=["GET", "HEAD"])
    async def check(self, request: IRequest) -> bytes:
        """What each index does (or, with C{mode}, would do) about the advisories in force."""
        await self._access.admin(request, ADVISORIES_LOGIN)
        return send_json(request, self.report(form_field(request, "index") or None,
                                              form_field(request, "mode")))

    def report(self, wanted: str | None, mode_asked: str) -> AdvisoryCheck:
        """
        What each index (or the one C{wanted}) does about the advisories
        in force, or would do in the mode C{mode_asked} (empty: its own).
        """
        mode = mode_asked.strip().lower() or None
        if mode is not None and (mode not in MODES or mode == OFF):
            raise BadRequest("mode: one of warn, hide, deny (or none for each index's own)")
        policies = self._indexes.policies
        if wanted is not None and wanted not in policies:
            raise NotFound(f"index: no index {wanted!r}")
        board = self._indexes.board
        if board.unread is not None:
            # (what they do is not known yet: not "nothing")
            raise AdvisoriesUnread(board.unread)
        projects = board.db.projects()
        reports = []
        for name, policy in policies.items():
            if wanted is not None and name != wanted:
                continue
            if mode is not None:
                policy = AdvisoryPolicy(attrs.evolve(policy.rules, mode=mode), board,
                                        waived=policy.waived)
            report = index_report(name, policy, self._indexes.releases_of(name), projects)
            report["stricter_bases"] = [] if mode is not None else stricter_sources(
                name, policies, self._indexes.hosted_sources(name))
            reports.append(report)
        db = board.db
        return {"database": {"advisories": len(db), "projects": len(projects),
                             "source": db.source or None},
                "dry_run": mode, "indexes": reports}

    # -- one project's advisories --------------------------------------------------------

    @app.route("/api/advisories/project/<string:project>", methods=["GET", "HEAD"])
    async def project(self, request: IRequest, project: str) -> bytes:
        """
        Each release of the project the index knows that advisories affect,
        with where the index stands on each, and the waivers kept for it
        there; for an admin or whoever may change the project (to others,
        as if it did not exist).
        """
        await self._access.person(request, ADVISORIES_LOGIN, "reads a project's advisories")
        return send_json(request, self.of_project(
            self._access.reader(request), form_field(request, "index") or DEFAULT, project))

    def of_project(self, reader: Reader, name: str, project: str) -> ProjectAdvisories:
        """The advisories of C{project} in the index C{name}, as L{project} answers them."""
        normalized = normalize(project) if is_valid_name(project) else None
        policy = self._indexes.policies.get(name)
        allowed = normalized is not None and policy is not None and (
            reader.is_admin or reader.owns(normalized, name))
        versions = self._indexes.releases_of(name)(normalized) if allowed and normalized else set()
        if not allowed or policy is None or normalized is None or not versions:
            raise NotFound(f"no such project in {name}: {project}")
        board = self._indexes.board
        if board.unread is not None:
            raise AdvisoriesUnread(board.unread)
        keeper = self._indexes.waivers
        kept = keeper.current.find(name, normalized) if keeper is not None else []
        return {"index": name, "project": normalized, "mode": policy.rules.mode,
                "severity": policy.rules.severity,
                "releases": project_report(policy, board.db, normalized, versions),
                "waivers": [w.to_json() for w in kept]}

    # -- the waivers admins keep ---------------------------------------------------------

    @app.route("/api/advisories/waivers", methods=["GET", "HEAD"])
    async def waivers(self, request: IRequest) -> bytes:
        """The waivers kept, oldest first (C{index} and C{project} keep those of one); admins."""
        await self._access.admin(request, WAIVERS_LOGIN)
        keeper = self._keeper()
        index = form_field(request, "index") or None
        project = form_field(request, "project") or None
        if project is not None:
            project = normalize(project) if is_valid_name(project) else "\0"
        return send_json(request, {
            "waivers": [w.to_json() for w in keeper.current.find(index, project)],
            "read": keeper.read_ok is True})

    @app.route("/api/advisories/waivers", methods=["POST"])
    async def waive(self, request: IRequest) -> bytes:
        """
        Keep a waiver (admins): a JSON object, or a urlencoded form, of
        C{index}, C{project}, one of C{advisory} and C{version}, and an
        optional C{reason}; 201 with the waiver (replacing one of the same
        index, project and advisory or release).
        """
        waiver = await self.waive_as(request, lambda: _waiver_fields(request))
        request.setResponseCode(201)
        return send_json(request, {"waiver": waiver.to_json()})

    def waive_as(self, request: IRequest,
                 fields: Callable[[], Mapping[str, str]]) -> Awaitable[Waiver]:
        """
        Keep the waiver C{fields()} names, for the admin of C{request}
        (each refusal audited, that of the fields too); the waiver kept.
        """
        def add(asked: Waiver, identity: Any) -> _Edit:
            waiver = attrs.evolve(asked, by=identity.name, at=self._clock.seconds())
            return lambda waivers: (waivers.adding(waiver), waiver)
        return self._change(request, WAIVE, fields, add)

    @app.route("/api/advisories/waivers", methods=["DELETE"])
    async def unwaive(self, request: IRequest) -> bytes:
        """
        Remove a waiver (admins), named by C{index}, C{project} and one of
        C{advisory} and C{version} in the query (or the console's form);
        404 when none is kept.
        """
        removed = await self.unwaive_as(request, lambda: _form_fields(
            request, ("index", "project", "advisory", "version")))
        return send_json(request, {"removed": removed.to_json()})

    def unwaive_as(self, request: IRequest,
                   fields: Callable[[], Mapping[str, str]]) -> Awaitable[Waiver]:
        """
        Remove the waiver C{fields()} names, for the admin of C{request}
        (each refusal audited, that of the fields too); the waiver removed.
        """
        # (any index's name: a waiver of an index removed since is removed too)
        return self._change(request, UNWAIVE, fields,
                            lambda asked, _: lambda waivers: waivers.removing(asked.key),
                            any_index=True)

    def _change(self, request: IRequest, event: ChangeKind,
                fields: Callable[[], Mapping[str, str]],
                edit: Callable[[Waiver, Any], _Edit], any_index: bool = False
                ) -> Awaitable[Waiver]:
        """
        Change the waivers by C{edit(asked, identity)} for the admin of
        C{request}, audited as C{event}; the waiver kept or removed.
        """
        async def work() -> Waiver:
            identity = await self._access.admin(request, WAIVERS_LOGIN)
            keeper = self._keeper()
            asked = self._asked(fields(), any_index)
            try:
                changed = await keeper.change(edit(asked, identity))
            except TooManyWaivers as e:
                raise Conflict(str(e))
            except InvalidWaiver as e:
                raise Unavailable(f"the advisory waivers kept are unreadable: {e}")
            except StorageError as e:
                raise storage_unavailable(e)
            if changed is None:
                raise NotFound("no such waiver")
            self._record(request, identity, event, changed)
            return changed
        return self._audit.recorded(request, event, work())

    def _keeper(self) -> WaiverKeeper:
        keeper = self._indexes.waivers
        if keeper is None:
            raise NotFound("this server's storage keeps no advisory waivers")
        return keeper

    def _asked(self, fields: Mapping[str, str], any_index: bool = False) -> Waiver:
        """
        The waiver C{fields} name, of one of the server's indexes (or, with
        C{any_index}, of any name); 400 naming the field.
        """
        try:
            return parse_waiver(fields, None if any_index else self._indexes.policies)
        except InvalidWaiver as e:
            raise BadRequest(str(e))

    def _record(self, request: IRequest, identity: Any, event: ChangeKind, waiver: Waiver) -> None:
        what = waiver.advisory or f"every advisory of {waiver.version}"
        detail = what + (f": {waiver.reason}" if waiver.reason else "")
        self._audit.record(request, identity, event,
                           index=None if waiver.index == DEFAULT else waiver.index,
                           project=waiver.project, version=waiver.version,
                           detail=detail[:300])


def _waiver_fields(request: IRequest) -> dict[str, str]:
    """The fields of a waiver's JSON object, or of a urlencoded form; 400 when unreadable."""
    if is_form(request):
        return _form_fields(request, ("index", "project", "advisory", "version", "reason"))
    data = json_object(request, MAX_WAIVER_BODY)
    for key, value in data.items():
        if not isinstance(value, str) and value is not None:
            raise BadRequest(f"{key}: text is required")
    return {k: v for k, v in data.items() if v is not None}


def _form_fields(request: IRequest, keys: Sequence[str]) -> dict[str, str]:
    """The C{keys} of C{request}'s query or form that are not empty."""
    return {key: value for key in keys if (value := form_field(request, key))}
