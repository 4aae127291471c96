"""
Security advisories (OSV) as an index acts on them: which releases of a
project an advisory affects, and what an index does about it.

An index serves thousands of requests a second, and an advisory changes a
few times a day, so nothing here is worked out per request: an
L{AdvisoryDB} is built once per load, indexed by normalized project name,
and an L{AdvisoryPolicy} (one per index) keeps each verdict until the
database changes (L{AdvisoryBoard.generation}). A project no advisory
names (nearly all) costs one failed dict lookup.

Until the advisories are read at start-up (in the background), the board
holds an I{unread} database (L{AdvisoryDB.unread_yet}) that names every
project, so an index that hides or denies answers L{AdvisoriesUnread}, a
503 (it fails closed), and one that warns serves everything. This costs
nothing once they are read: it is checked only when a verdict is worked
out, not when one is found kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

import attrs

from pypid.core.dists.names import normalize
from pypid.core.dists.version_order import release_key
from pypid.core.security.affected_releases import Affected
from pypid.core.util.bounded import put_newest
from pypid.core.util.http_errors import Unavailable

OFF, WARN, HIDE, DENY = "off", "warn", "hide", "deny"

#: The most verdicts an index remembers: every release of the projects
#: advisories name, many times over, while a client asking for made-up
#: versions cannot grow the table past it (200,000 such requests kept 59 MiB).
MAX_VERDICTS = 50_000

#: What an index may do about advisories, the least first.
MODES = (OFF, WARN, HIDE, DENY)

#: Severities, the lowest first (GitHub's C{moderate} is C{medium}).
SEVERITIES = ("low", "medium", "high", "critical")


def severity_word(word: str) -> str | None:
    """A severity as spelled in any case, as one of L{SEVERITIES}, or L{None}."""
    level = word.strip().lower()
    if level == "moderate":
        level = "medium"
    return level if level in SEVERITIES else None


def severity_rank(severity: str | None) -> int:
    """
    The order of a severity (0 for C{low} ... 3 for C{critical}); -1 for
    an unknown one, which only a rule with no minimum acts on.
    """
    return SEVERITIES.index(severity) if severity in SEVERITIES else -1


@attrs.frozen
class Advisory:
    """
    One advisory, its aliases merged into it (the same vulnerability under
    a PYSEC, a GHSA and a CVE identifier is one advisory).

    @ivar aliases: every other identifier it is known by, sorted.
    @ivar severity: one of L{SEVERITIES}, or L{None} when unknown.
    @ivar score: the CVSS base score it was derived from, when there was one.
    @ivar link: a page about it (the first C{ADVISORY} or C{WEB} reference).
    @ivar affected: what it says of each PyPI project.
    """

    id: str
    aliases: tuple[str, ...] = ()
    summary: str = ""
    details: str = ""
    severity: str | None = None
    score: float | None = None
    fixed_in: tuple[str, ...] = ()
    link: str | None = None
    affected: tuple[Affected, ...] = ()

    @property
    def ids(self) -> tuple[str, ...]:
        """Its identifier and its aliases."""
        return (self.id, *self.aliases)

    def affects(self, project: str, version: str) -> bool:
        """Whether it affects the release C{version} of the normalized C{project}."""
        return any(a.project == project and a.affects(version) for a in self.affected)


#: What an unread database says of the advisories (L{AdvisoryDB.unread}):
#: still being read, or the first read failed.
READING, FAILED = "reading", "failed"


class _EveryProject(Mapping[str, tuple[Advisory, ...]]):
    """The C{by_project} of an unread database: it holds every project, none listed."""

    def __contains__(self, project: object) -> bool:
        return True

    def __getitem__(self, project: str) -> tuple[Advisory, ...]:
        return ()

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


class AdvisoriesUnread(Unavailable):
    """
    A release of an index that hides or denies was asked for before the
    advisories were read (just started, or the first read failed): 503.
    """

    def __init__(self, state: str) -> None:
        failed = state == FAILED
        Unavailable.__init__(
            self, ("the security advisories could not be read (see the server's log): this "
                   "index serves no release they might cover until they are") if failed else
            ("the security advisories are still being read: this index serves no release "
             "they might cover until then; try again in a few seconds"),
            [(b"retry-after", b"60" if failed else b"5")])
        self.state = state


@attrs.frozen
class AdvisoryDB:
    """
    The advisories in force, by the normalized name of each project they
    affect. Built whole and never changed: a refresh builds another.

    @ivar source: where they came from (a path or URL), for the logs.
    @ivar digest: equal for equal records (a refresh that finds the same
        records changes nothing).
    @ivar unread: L{None} for advisories read; L{READING} or L{FAILED} for
        the stand-in of L{unread_yet}.
    """

    by_project: Mapping[str, tuple[Advisory, ...]] = attrs.field(factory=dict)
    source: str = ""
    digest: str = ""
    unread: str | None = None

    @classmethod
    def unread_yet(cls, state: str = READING, source: str = "") -> AdvisoryDB:
        """
        The database in force until the advisories are read (see the
        module), put in force only before the server answers anything: a
        page kept before, composed without it, would still be served.
        """
        return cls(_EveryProject(), source, "", state)

    @classmethod
    def of(cls, advisories: Iterable[Advisory], source: str = "",
           digest: str = "") -> AdvisoryDB:
        """Index C{advisories} by the projects they name."""
        table: dict[str, list[Advisory]] = {}
        for advisory in advisories:
            for project in dict.fromkeys(a.project for a in advisory.affected):
                table.setdefault(project, []).append(advisory)
        return cls({p: tuple(found) for p, found in table.items()}, source, digest)

    def __len__(self) -> int:
        return len({a.id for found in self.by_project.values() for a in found})

    def projects(self) -> frozenset[str]:
        """The normalized names of the projects some advisory names."""
        return frozenset(self.by_project)

    def affecting(self, project: str, version: str) -> tuple[Advisory, ...]:
        """The advisories that affect the release C{version} of the normalized C{project}."""
        found = self.by_project.get(project)
        if not found:
            return ()
        return tuple(a for a in found if a.affects(project, version))


#: Where an index stands on one advisory of a release (L{AdvisoryPolicy.standing}).
ACTED, CONFIGURED, WAIVED, BELOW = "acted", "configured", "waived", "below-severity"


class InvalidRules(ValueError):
    """Advisory settings that cannot be used; the message names the key."""


@attrs.frozen
class AdvisoryRules:
    """
    What one index does about advisories (C{advisories},
    C{advisory_severity}, C{advisory_waive}).

    @ivar severity: the lowest severity acted on, or L{None} for every
        advisory, those of unknown severity too.
    @ivar waive: the releases let through whatever their advisories,
        as C{(normalized project, canonical version)}.
    @ivar waive_ids: advisory identifiers (any alias, upper case) waived
        for every release.
    """

    mode: str = OFF
    severity: str | None = None
    waive: frozenset[tuple[str, str]] = frozenset()
    waive_ids: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, mode: str, severity: str = "", waive: Iterable[str] = ()) -> AdvisoryRules:
        """
        Read the settings' values; C{waive} entries are C{project==version}
        or advisory identifiers.

        @raise InvalidRules: naming the setting that is wrong.
        """
        mode = mode.strip().lower()
        if mode not in MODES:
            raise InvalidRules(f"advisories: one of {', '.join(MODES)} is required, not {mode!r}")
        level = severity_word(severity)
        if severity.strip() and level is None:
            raise InvalidRules(f"advisory_severity: one of {', '.join(SEVERITIES)} "
                               f"is required, not {severity!r}")
        releases: set[tuple[str, str]] = set()
        ids: set[str] = set()
        for entry in waive:
            entry = entry.strip()
            if not entry:
                continue
            if "==" in entry:
                name, _, version = entry.partition("==")
                if not name.strip() or not version.strip():
                    raise InvalidRules(f"advisory_waive: {entry!r} is not project==version")
                releases.add((normalize(name.strip()), release_key(version.strip())))
            elif any(c.isspace() for c in entry) or any(c in entry for c in "<>=!~"):
                raise InvalidRules(f"advisory_waive: {entry!r} is neither project==version "
                                   "nor an advisory identifier")
            else:
                ids.add(entry.upper())
        return cls(mode, level, frozenset(releases), frozenset(ids))

    def acts_on(self, advisory: Advisory) -> bool:
        """Whether this index acts on C{advisory} (its severity, the waived identifiers)."""
        if self.waive_ids and any(i.upper() in self.waive_ids for i in advisory.ids):
            return False
        if self.severity is None:
            return True
        return severity_rank(advisory.severity) >= severity_rank(self.severity)


@attrs.frozen
class IndexWaivers:
    """
    What one index's stored waivers (L{pypid.core.security.advisory_waivers})
    let through: C{releases}, C{(project, release key)}s, every advisory;
    C{advisories}, C{(project, identifier)}s.
    """

    releases: frozenset[tuple[str, str]] = frozenset()
    advisories: frozenset[tuple[str, str]] = frozenset()

    @property
    def projects(self) -> frozenset[str]:
        """The projects some waiver names."""
        return frozenset(p for p, _ in self.releases) | frozenset(p for p, _ in self.advisories)


@attrs.frozen
class Verdict:
    """
    What an index does about one release: C{action} is L{WARN}, L{HIDE} or
    L{DENY}, because of C{advisories} (those acted on, in the database's order).
    """

    action: str
    advisories: tuple[Advisory, ...]

    @property
    def ids(self) -> tuple[str, ...]:
        """The identifiers of the advisories, each advisory's own first."""
        return tuple(a.id for a in self.advisories)

    @property
    def hides(self) -> bool:
        """Whether the release's files are left off the pages."""
        return self.action in (HIDE, DENY)

    @property
    def denies(self) -> bool:
        """Whether the release's files are refused (403) when asked for by name."""
        return self.action == DENY


#: C{listener(before, after)}: told when the database in force changed.
Listener = Callable[[AdvisoryDB, AdvisoryDB], object]


@attrs.define(eq=False)
class AdvisoryBoard:
    """
    The advisory database in force for the whole server, and who must hear
    when it changes: the loader (L{pypid.advisories}) replaces it, the
    indexes read it.

    @ivar generation: counts the replacements, so that what was worked out
        from an older database is known to be stale.
    """

    db: AdvisoryDB = attrs.field(factory=AdvisoryDB)
    generation: int = 0
    _listeners: list[Listener] = attrs.field(factory=list, init=False)

    @property
    def unread(self) -> str | None:
        """L{None} once the advisories are read; else L{READING} or L{FAILED}."""
        return self.db.unread

    def listen(self, listener: Listener) -> None:
        """Call C{listener(before, after)} after each L{replace}."""
        self._listeners.append(listener)

    def replace(self, db: AdvisoryDB) -> None:
        """Put C{db} in force and tell every listener."""
        before, self.db = self.db, db
        self.generation += 1
        for listener in list(self._listeners):
            listener(before, db)


@attrs.define(eq=False)
class AdvisoryPolicy:
    """One index's rules over the L{AdvisoryBoard}: each release's verdict, kept per database."""

    rules: AdvisoryRules
    _board: AdvisoryBoard
    # (project, version) -> the verdict, for the generation in _seen
    _verdicts: dict[tuple[str, str], Verdict | None] = attrs.field(factory=dict, init=False)
    _seen: int = attrs.field(default=-1, init=False)
    # counts the rules and waivers taken (take_rules, take_waivers), for stamp
    _taken: int = attrs.field(default=0, init=False)
    #: the waivers admins keep for the index (L{take_waivers}), beside the rules'
    _waived: IndexWaivers = attrs.field(factory=IndexWaivers, kw_only=True)

    @property
    def waived(self) -> IndexWaivers:
        """The stored waivers in force (L{pypid.core.security.advisory_waivers})."""
        return self._waived

    @property
    def stamp(self) -> tuple[int, int]:
        """
        What moves whenever a verdict may have: the board's generation and
        the rules taken. A page worked out from verdicts is kept with it.
        """
        return (self._board.generation, self._taken)

    def take_rules(self, rules: AdvisoryRules) -> bool:
        """Act by C{rules} from now on (a reload); whether they differ (as L{take_waivers})."""
        if rules == self.rules:
            return False
        self.rules = rules
        return self._retake()

    def take_waivers(self, waived: IndexWaivers) -> bool:
        """
        Let through what C{waived} says from now on (an admin's waiver, or
        another server's, read from storage); whether it differs from those
        in force (then every verdict is worked out again).
        """
        if waived == self._waived:
            return False
        self._waived = waived
        return self._retake()

    def _retake(self) -> bool:
        self._taken += 1
        self._verdicts.clear()
        return True

    @property
    def active(self) -> bool:
        """Whether the index acts on advisories at all."""
        return self.rules.mode != OFF

    @property
    def generation(self) -> int:
        """The board's generation (what a page worked out from a verdict keeps as its stamp)."""
        return self._board.generation

    def affects(self, project: str) -> bool:
        """
        Whether some release of the normalized C{project} may get a
        verdict: a dict lookup, for the paths that must not pay more.
        """
        return self.rules.mode != OFF and project in self._board.db.by_project

    def verdict(self, project: str, version: str) -> Verdict | None:
        """
        What the index does about the release C{version} of the normalized
        C{project}, or L{None} when nothing.

        @raise AdvisoriesUnread: before the advisories are read, when the
            index hides or denies.
        """
        if self.rules.mode == OFF:
            return None
        db = self._board.db
        if project not in db.by_project:
            return None
        if self._seen != self._board.generation:
            self._verdicts.clear()
            self._seen = self._board.generation
        key = (project, version)
        try:
            return self._verdicts[key]
        except KeyError:
            pass
        if db.unread is not None:
            # (nothing known yet: an index that hides or denies fails
            # closed, one that warns has nothing to say; nothing kept)
            if self.rules.mode in (HIDE, DENY):
                raise AdvisoriesUnread(db.unread)
            return None
        found: Verdict | None = None
        release = (project, release_key(version))
        if release not in self.rules.waive and release not in self._waived.releases:
            waived = self._waived.advisories
            acted = tuple(a for a in db.affecting(project, version)
                          if self.rules.acts_on(a)
                          and not (waived and any((project, i.upper()) in waived
                                                  for i in a.ids)))
            if acted:
                found = Verdict(self.rules.mode, acted)
        # (bounded: a client may ask for files of made-up versions)
        put_newest(self._verdicts, key, found, MAX_VERDICTS)
        return found

    def standing(self, project: str, version: str, advisory: Advisory) -> str:
        """
        Why the index acts or not on C{advisory} of one release of the
        normalized C{project}: L{ACTED}; L{CONFIGURED} (a waiver of the
        configuration: the release's or the identifier's); L{WAIVED} (a
        waiver kept through the API); L{BELOW} (under the index's
        severity); or L{OFF} (the index acts on none).
        """
        if self.rules.mode == OFF:
            return OFF
        release = (project, release_key(version))
        ids = [i.upper() for i in advisory.ids]
        if release in self.rules.waive or any(i in self.rules.waive_ids for i in ids):
            return CONFIGURED
        if release in self._waived.releases or any((project, i) in self._waived.advisories
                                                   for i in ids):
            return WAIVED
        return ACTED if self.rules.acts_on(advisory) else BELOW

    def hidden(self, project: str, version: str) -> bool:
        """Whether the release's files are left off the pages (C{hide} or C{deny})."""
        found = self.verdict(project, version)
        return found is not None and found.hides

    def denied(self, project: str, version: str) -> Verdict | None:
        """The verdict when the release's files are refused (C{deny}), else L{None}."""
        found = self.verdict(project, version)
        return found if found is not None and found.denies else None


def vulnerability_json(advisory: Advisory) -> dict[str, object]:
    """An advisory as the legacy JSON API lists it in a release's C{vulnerabilities}."""
    return {
        "aliases": list(advisory.aliases),
        "details": advisory.details or advisory.summary,
        "summary": advisory.summary or None,
        "fixed_in": list(advisory.fixed_in),
        "id": advisory.id,
        "link": advisory.link,
        "source": "osv",
        "withdrawn": None,
    }


def no_advisories() -> AdvisoryPolicy:
    """A policy that gives no verdict (C{advisories = off}, no database)."""
    return AdvisoryPolicy(AdvisoryRules(), AdvisoryBoard())
