"""
Downloads an index refuses because of security advisories: a file of a release the index
denies (C{advisories = deny}) answers 403, its body naming the advisories, on every path a file
is served from (C{/files/...}, C{/NAME/files/...}, the upstream's files, their C{.metadata});
each refusal is counted for C{/metrics} and written in the audit log.

Why it costs nothing on the hot path: L{DeniedDownloads.check} first asks the policy whether
the advisories name the project at all, a dict lookup (and nothing when the index's rules are
C{off}); only a project they name has its filename read and the release's verdict looked up
(memoized by the policy per database): with C{timeit}, 0.19 us a check (the call included) for
a project no advisory names, the same as with C{advisories = off}, and 0.48 us for a clean
release of a named one, of the some 50 us a download takes. One client's refusals of one file
(an installer retrying, a CI loop) are audited once a minute, so they cannot flood the log;
the counter counts every one.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IRequest
from zope.interface import implementer

from pypid.core.dists.names import InvalidName, parse_filename
from pypid.core.indexes.index_names import DEFAULT
from pypid.core.indexes.rendered_pages import deny_reason
from pypid.core.parts import IMetricsSource
from pypid.core.records.audit_chain import REFUSED
from pypid.core.records.change_kinds import ChangeKind
from pypid.core.records.metrics import Family, by_label, counter
from pypid.core.security.advisories import AdvisoryPolicy
from pypid.core.util.bounded import put_newest
from pypid.core.util.http_errors import Forbidden
from pypid.web.identity.request_auth import client_address, identity_of
from pypid.web.server.audit_trail import AuditTrail

#: The audit event of a refused download.
EVENT = ChangeKind.ADVISORY_DENIED

#: Seconds during which one client's refusals of one file are one entry.
AUDIT_WINDOW = 60.0

#: The most (index, address, filename) whose last entry is remembered.
MAX_REMEMBERED = 4096


def release_of(filename: str) -> str | None:
    """The version a distribution's filename (or its C{.metadata}'s) names, or L{None}."""
    try:
        return parse_filename(filename.removesuffix(".metadata"), legacy=True).version
    except InvalidName:
        return None


@implementer(IMetricsSource)
@attrs.define(eq=False)
class DeniedDownloads:
    """
    The refusal of the downloads advisories deny, for every index: counted by index, audited.

    @ivar labelled: whether C{/metrics} labels the count by C{index} (named indexes are served).
    """

    _audit: AuditTrail
    _clock: IReactorTime
    labelled: bool = False
    # index -> refusals since the start
    _counts: dict[str, int] = attrs.field(factory=dict, init=False)
    # (index, address, filename) -> when its last entry was written
    _audited: dict[tuple[str, str | None, str], float] = attrs.field(factory=dict, init=False)

    def check(self, request: IRequest, policy: AdvisoryPolicy, index: str, project: str,
              filename: str, version: str | None = None) -> None:
        """
        Refuse (L{Forbidden}, naming the advisories) the download of C{filename} (or its
        C{.metadata}) of the normalized C{project} when index C{index}'s C{policy} denies its
        release (C{version}, else read from the filename).
        """
        if not policy.affects(project):
            return
        if version is None:
            version = release_of(filename)
            if version is None:
                return
        verdict = policy.denied(project, version)
        if verdict is None:
            return
        self._counts[index] = self._counts.get(index, 0) + 1
        reason = f"{filename}: {deny_reason(verdict)}"
        address = client_address(request)
        key = (index, address, filename)
        now = self._clock.seconds()
        last = self._audited.get(key)
        if last is None or now - last >= AUDIT_WINDOW:
            put_newest(self._audited, key, now, MAX_REMEMBERED)
            # (nobody waits for it: a refusal is answered at once)
            self._audit.record(request, identity_of(request), EVENT, REFUSED,
                               index=None if index == DEFAULT else index, project=project,
                               version=version, filename=filename,
                               detail=", ".join(verdict.ids))
        raise Forbidden(reason)

    def metric_families(self) -> Iterator[Family]:
        """
        C{pypid_advisory_denied_total}, by C{index} when L{labelled}; from the first refusal on,
        so that C{/metrics} of a server that refused none is as it was before advisories.
        """
        if not self._counts:
            return
        name = "pypid_advisory_denied"
        what = "Downloads refused because an advisory denies their release."
        if self.labelled:
            yield by_label(name, what, "index", self._counts)
        else:
            yield counter(name, what, self._counts.get(DEFAULT, 0))
