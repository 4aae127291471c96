"""
C{GET /api/advisories} (admins): what the server's security advisories do
to each index now, or would do under another mode (a dry run); what
C{pypid-admin advisories check} prints (issue 27).

Why a dry run is a question to the running server rather than a tool of
its own: what an index would hide depends on what it knows, its hosted
files and the upstream pages it has cached, and on the advisories the
server loaded; the server has both in memory. Answering costs one verdict
per known release of each project the advisories name (each worked out
once per database: L{pypid.core.advisories.AdvisoryPolicy}), nothing for
the others.

The answer: C{database} (the advisories in force: how many, of how many
projects, from where), and per index its C{mode}, C{severity} and the
C{releases} it acts on, each with its C{action} and advisories. C{index}
keeps one index; C{mode} (C{warn}, C{hide} or C{deny}) answers what each
index would do in that mode, its severity and waivers kept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import attrs
from klein import Klein
from twisted.web.iweb import IRequest

from pypid.core.advisories import (
    MODES,
    OFF,
    AdvisoriesUnread,
    AdvisoryBoard,
    AdvisoryPolicy,
    Verdict,
)
from pypid.core.http_errors import BadRequest, NotFound
from pypid.core.version_order import version_key
from pypid.web.access import Access
from pypid.web.routes import answer_errors, form_field, send_json

#: What C{GET /api/advisories} answers without credentials.
ADVISORIES_LOGIN = "authentication is required to read what advisories do"


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


def verdict_json(project: str, version: str, verdict: Verdict) -> dict[str, Any]:
    """One release an index acts on, as the answer lists it."""
    return {"project": project, "version": version, "action": verdict.action,
            "advisories": [{"id": a.id, "aliases": list(a.aliases), "severity": a.severity,
                            "summary": a.summary or None} for a in verdict.advisories]}


def stricter_sources(name: str, policies: Mapping[str, AdvisoryPolicy],
                     sources: Sequence[str]) -> list[dict[str, str]]:
    """
    The hosted C{sources} of index C{name} whose own mode is stricter than
    its own (C{deny} over C{hide} over C{warn} over C{off}): each index
    acts by its own C{advisories} key, so what such a base denies or hides
    at its own URLs, index C{name} serves as its own mode says (issue 45:
    an operator reads this as the base's mode reaching every index built
    on it; it does not, by design).
    """
    mode = policies[name].rules.mode
    return [{"index": source, "mode": policies[source].rules.mode} for source in sources
            if source in policies
            and MODES.index(policies[source].rules.mode) > MODES.index(mode)]


def index_report(name: str, policy: AdvisoryPolicy, releases: Callable[[str], set[str]],
                 projects: frozenset[str]) -> dict[str, Any]:
    """What index C{name}'s C{policy} does to the C{releases} of C{projects} it knows."""
    acted = []
    if policy.active:
        for project in sorted(projects):
            for version in sorted(releases(project), key=version_key):
                verdict = policy.verdict(project, version)
                if verdict is not None:
                    acted.append(verdict_json(project, version, verdict))
    rules = policy.rules
    return {"index": name, "mode": rules.mode, "severity": rules.severity,
            "releases": acted}


@attrs.define(slots=False)
class AdvisoryAdmin:
    """
    @ivar _access: the L{pypid.web.access.Access} gate.
    @ivar _indexes: the server's indexes and advisories.
    """

    _access: Access
    _indexes: AdvisedIndexes

    app = Klein()
    answer_errors(app)

    @app.route("/api/advisories", methods=["GET", "HEAD"])
    async def check(self, request: IRequest) -> bytes:
        """What each index does (or, with C{mode}, would do) about the advisories in force."""
        await self._access.admin(request, ADVISORIES_LOGIN)
        wanted = form_field(request, "index") or None
        mode = (form_field(request, "mode") or "").strip().lower() or None
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
                policy = AdvisoryPolicy(attrs.evolve(policy.rules, mode=mode), board)
            report = index_report(name, policy, self._indexes.releases_of(name), projects)
            report["stricter_bases"] = [] if mode is not None else stricter_sources(
                name, policies, self._indexes.hosted_sources(name))
            reports.append(report)
        db = board.db
        return send_json(request, {
            "database": {"advisories": len(db), "projects": len(projects),
                         "source": db.source or None},
            "dry_run": mode,
            "indexes": reports,
        })
