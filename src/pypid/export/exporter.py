"""
One export, from the storage to a target: the orchestration of
L{pypid.export.plan} (what to write) with L{pypid.storage.base.reading} (the
storage) and L{pypid.export.target} (where).

The order is what keeps a served export consistent at every moment: the
projects that changed are written a batch at a time, each batch's files and
metadata before its pages; then the project list, C{packages.json} and the
site's pages for people; then what is gone is removed (after no page links
to it any more); and the manifest last. Before each batch is written, the
paths it writes are kept in L{plan.PENDING}, so that an export cut short is
mended by the next one: those paths are written again, or removed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TypeVar

import attrs
from twisted.internet.defer import Deferred, DeferredSemaphore, ensureDeferred, maybeDeferred
from twisted.logger import Logger

from pypid.core.dists.model import FileRecord
from pypid.core.indexes.composition import Filters
from pypid.core.indexes.index import Index
from pypid.core.indexes.project_status import ProjectStatus
from pypid.core.security.advisories import AdvisoryPolicy
from pypid.core.util.units import counted
from pypid.export import plan as plans
from pypid.export.outputs import (
    JSON_TYPE,
    announced,
    file_of,
    file_outputs,
    has_legacy_json,
    legacy_info,
    legacy_info_sources,
    package_entry,
    people_outputs,
    project_outputs,
    root_outputs,
)
from pypid.export.plan import (
    Entry,
    ExportError,
    ExportManifest,
    ExportSettings,
    Output,
    People,
    Plan,
    ProjectState,
)
from pypid.export.target import ITarget
from pypid.jobs.gather import gather
from pypid.jobs.run import Run
from pypid.storage.base import reading
from pypid.storage.base.interface import IStorage, ScanResult

log = Logger()

#: Projects rendered, then written, together: the pages of a batch are held
#: in memory until they are written.
BATCH = 250

T = TypeVar("T")

#: What L{Exporter._files} gives for each project: its metadata by
#: filename, a line per file left out, and its provenance by filename.
Taken = dict[str, tuple[dict[str, bytes], list[str], dict[str, bytes]]]


@attrs.define
class ExportReport:
    """
    What an export did: its projects, those C{changed} (rendered again) and
    C{removed}; the paths C{written}, C{kept} (rendered again to the bytes
    already there) and C{deleted}.

    @ivar problems: one line per file left out (its project is rendered
        again at the next export).
    @ivar rebuilt: whether every project was rendered.
    """

    projects: int = 0
    changed: int = 0
    removed: int = 0
    written: int = 0
    kept: int = 0
    deleted: int = 0
    problems: list[str] = attrs.field(factory=list)
    rebuilt: bool = False
    seconds: float = 0.0

    def summary(self, target: str) -> str:
        """One line for a person."""
        how = "every project rendered" if self.rebuilt else f"{self.changed} changed"
        return (f"Exported {counted(self.projects, 'project')} to {target} ({how}, "
                f"{self.removed} removed): {counted(self.written, 'path')} written, "
                f"{self.deleted} removed, in {self.seconds:.2f} s")


@attrs.frozen
class IndexChain:
    """
    A named index to export (C{pypid-export --index NAME}): its hosted
    sources in order, its filters (a view's), and the time they are read at.
    """

    parts: tuple[reading.StoredSource, ...]
    filters: Filters = Filters()
    now: float = 0.0


@attrs.define
class Exporter:
    """
    Writes the static export of a storage to a target, once.

    @ivar _snapshot: the daemon's snapshot file, or L{None}.
    @ivar _people: the pages for people, or L{None}.
    @ivar _full: render and write everything, whatever the manifest says.
    @ivar _clock: for the report's duration.
    @ivar _chain: a named index's hosted sources and filters: what it lists
        is exported, each file from the storage that holds it, instead of
        C{_storage} as it is.
    @ivar _advisories: the exported index's advisory policy over the
        advisories in force (L{pypid.advisories.feed.read_in_force}), which
        the export applies as the daemon does; L{None} when it acts on none.
    """

    _storage: IStorage
    _target: ITarget
    _settings: ExportSettings
    _run: Run
    _snapshot: str | None = None
    _people: People | None = None
    _full: bool = False
    _clock: Callable[[], float] = time.monotonic
    _chain: IndexChain | None = None
    _advisories: AdvisoryPolicy | None = None
    _holders: reading.IndexRecords | None = attrs.field(default=None, init=False)
    _previous: ExportManifest | None = attrs.field(default=None, init=False)
    _suspect: frozenset[str] = attrs.field(default=frozenset(), init=False)
    _pending: set[str] = attrs.field(factory=set, init=False)
    _had_pending: bool = attrs.field(default=False, init=False)
    _claimed: dict[str, str | None] = attrs.field(factory=dict, init=False)
    _report: ExportReport = attrs.field(factory=ExportReport, init=False)

    def export(self) -> Deferred[ExportReport]:
        """
        Export once: fire with an L{ExportReport}, or fail with L{ExportError}
        or L{pypid.storage.base.interface.StorageError}.
        """
        return ensureDeferred(self._export())

    async def _export(self) -> ExportReport:
        started = self._clock()
        people = self._people
        self._settings = attrs.evolve(self._settings,
                                      people=people.version if people is not None else None)
        target = self._target
        try:
            await target.open()
            await self._read_previous()
            result, statuses = await self._load()
            records, unsafe = plans.safe_records(result.records.values())
            for record, reason in unsafe:
                log.warn("Not exporting {filename}: {reason}", filename=record.filename,
                         reason=reason)
                self._report.problems.append(f"{record.filename}: {reason}")
            index = plans.build_index(records, result.tombstones, self._settings.page_file_url(),
                                      statuses, self._advisories)
            plan = plans.plan(index, self._previous, self._settings, self._full)
            changed = await self._described_since(index, plan, self._with_suspects(plan))
            log.info("Read {files} of {projects} from the storage; rendering "
                     "{changed} into {target}", files=counted(len(result.records), "file"),
                     projects=counted(len(plan.fingerprints), "project"),
                     changed=counted(len(changed), "project"),
                     target=target.describe())
            report = self._report
            report.projects = len(plan.fingerprints)
            report.changed, report.removed = len(changed), len(plan.removed)
            report.rebuilt = plan.rebuild
            if self._people is not None:
                self._claim_unchanged(changed)
            states: dict[str, ProjectState] = {}
            for start in range(0, len(changed), BATCH):
                batch = changed[start:start + BATCH]
                taken = await self._files(index, batch)
                states.update(await self._pages(index, plan, batch, taken))
            current = self._manifest(plan, states)
            current.root = await self._root(index, current)
            stale = plans.stale_paths(self._previous, current, self._suspect)
            # (noted first: cut short, the next export knows what it was
            # removing, and writes again what is still wanted)
            await self._journal(stale)
            await self._each(stale, self._target.remove)
            report.deleted = len(stale)
            if report.written or stale or changed or plan.removed or self._previous is None:
                await target.write(plans.MANIFEST, current.to_bytes(), JSON_TYPE)
            if self._pending or self._had_pending:
                await target.remove(plans.PENDING)
        finally:
            await maybeDeferred(target.close)
        report.seconds = self._clock() - started
        return report

    async def _load(self) -> tuple[ScanResult, dict[str, ProjectStatus]]:
        """
        The records to export, the storage's or what the named index lists,
        and the projects' statuses (those the storage keeps, or the chain's).
        """
        chain = self._chain
        if chain is None:
            result = await reading.load_records(self._storage, self._snapshot, self._run)
            return result, await reading.read_statuses(self._storage)
        self._holders = await reading.load_index(chain.parts, chain.filters, chain.now, self._run)
        return self._holders.result, self._holders.statuses

    def _from(self, record: FileRecord) -> IStorage:
        """The storage that holds C{record}'s file."""
        return self._holders.storage_of(record) if self._holders is not None else self._storage

    # -- what the last export left ----------------------------------------------------------

    async def _read_previous(self) -> None:
        where = f"{self._target.describe().rstrip('/')}/{plans.MANIFEST}"
        data = await self._target.read(plans.MANIFEST)
        if data is None and not self._full and (
                await self._target.read("simple/index.html")) is not None:
            raise ExportError(
                f"{where} is missing, but an export is there: export again with --full "
                "(paths only the old export wrote are then left in place)")
        if data is not None:
            try:
                self._previous = ExportManifest.from_bytes(data)
            except ExportError as e:
                if not self._full:
                    raise ExportError(
                        f"cannot use {where}: {e}; export again with --full (paths only "
                        "the old export wrote are then left in place)")
                log.warn("Not using {where}: {error}", where=where, error=str(e))
        pending = await self._target.read(plans.PENDING)
        if pending is not None:
            self._had_pending = True
            try:
                paths = json.loads(pending)
                self._suspect = frozenset(p for p in paths if _allowed(p))
            except (ValueError, TypeError):
                self._suspect = frozenset()
            # Still suspect until this export is done: cut short in turn, it
            # must hand them on to the next one with its own.
            self._pending = set(self._suspect)
            log.warn("The last export to {target} was cut short: rewriting or removing the "
                     "{paths} it was writing", target=self._target.describe(),
                     paths=counted(len(self._suspect), "path"))

    def _with_suspects(self, plan: Plan) -> list[str]:
        """The projects to render: the plan's, and any a cut-short export was writing."""
        if not self._suspect or plan.rebuild:
            return list(plan.changed)
        changed = set(plan.changed)
        for name, state in self._previous.projects.items() if self._previous else ():
            if name in plan.fingerprints and not self._suspect.isdisjoint(state.paths):
                changed.add(name)
        for path in self._suspect:
            parts = path.split("/")
            if (len(parts) > 2 and parts[0] in ("simple", "files", "pypi")
                    and parts[1] in plan.fingerprints):
                changed.add(parts[1])
        return sorted(changed)

    async def _described_since(self, index: Index, plan: Plan,
                               changed: list[str]) -> list[str]:
        """
        C{changed}, and the projects whose pages for people lack a
        description the storage has now (the daemon describes a file on its
        first view): a window of them is looked at per export.
        """
        if self._people is None or plan.rebuild:
            return changed
        found = set(changed)
        for name, filename in plans.undescribed_files(self._previous, found, plan.serial):
            record = index.get_file(filename)
            if (name not in found and record is not None and record.project == name
                    and await self._from(record).read_details(record) is not None):
                found.add(name)
        return sorted(found)

    def _claim_unchanged(self, changed: Iterable[str]) -> None:
        """Note the paths for people of the projects not rendered now (see L{_claim})."""
        self._claimed = {}
        if self._previous is None:
            return
        rendering = set(changed)
        for name, state in self._previous.projects.items():
            if name not in rendering:
                for path in state.paths:
                    if not path.startswith(("simple/", "files/", "pypi/")):
                        self._claimed[path] = name

    def _claim(self, owner: str | None, outputs: Iterable[Output]) -> None:
        """Refuse a page for people that another project (or the site) writes."""
        for output in outputs:
            other = self._claimed.setdefault(output.path, owner)
            if other != owner:
                raise ExportError(f"the pages for people write {output.path!r} for "
                                  f"{owner or 'the site'} and for {other or 'the site'}")

    # -- writing --------------------------------------------------------------------------------

    def _needed(self, owner: str | None, output: Output) -> bool:
        """Whether C{output} must be written: it is not known to be there already."""
        if self._full or output.path in self._suspect or self._previous is None:
            return True
        return self._previous.written_sha256(owner, output.path) != output.sha256

    async def _journal(self, outputs: Iterable[Output | str]) -> None:
        """Keep the paths (or L{Output}s) about to be written or removed in L{plans.PENDING}."""
        fresh = {o if isinstance(o, str) else o.path for o in outputs} - self._pending
        if fresh:
            self._pending |= fresh
            await self._target.write(plans.PENDING, json.dumps(sorted(self._pending)).encode(),
                                     JSON_TYPE)

    async def _write_pages(self, owned: Sequence[tuple[str | None, Output]]) -> None:
        """Write the C{(owner, output)} pages not there already, noted first in L{plans.PENDING}."""
        todo = [(owner, output) for owner, output in owned if self._needed(owner, output)]
        await self._journal([output for _, output in todo])
        await self._each(todo, lambda item: self._target.write(
            item[1].path, item[1].body, item[1].content_type))
        self._report.written += len(todo)
        self._report.kept += len(owned) - len(todo)

    async def _files(self, index: Index, names: Iterable[str]) -> Taken:
        """
        Put the files of the projects C{names} and their metadata in place;
        leave out of the index the files that cannot be taken, and announce
        metadata only where it is written.
        """
        taken: Taken = {}
        planned: dict[str, list[Output]] = {}

        async def read(name: str) -> None:
            project = index.project(name)
            metadata: dict[str, bytes] = {}
            provenance: dict[str, bytes] = {}
            if self._settings.writes_files and project is not None:
                left_out = plans.withheld(index, project)
                for record in project.sorted_files():
                    if record.filename in left_out:
                        continue
                    data = await reading.read_metadata(self._from(record), record)
                    if data is not None:
                        metadata[record.filename] = data
                    if record.provenance_sha256 is not None:
                        kept = await self._from(record).read_provenance(record)
                        if kept is not None:
                            provenance[record.filename] = kept
                planned[name] = [o for o in file_outputs(project, metadata, provenance, left_out)
                                 if self._needed(name, o)]
            taken[name] = (metadata, [], provenance)
        await self._each(list(names), read)
        await self._journal([o for outputs in planned.values() for o in outputs])

        async def put(name: str) -> None:
            project = index.project(name)
            metadata, problems, provenance = taken[name]
            failed: set[str] = set()
            for output in planned.get(name, ()):
                filename = output.path.rpartition("/")[2]
                if output.record is None:
                    if file_of(output.path) in failed:
                        # (a file left out leaves out its metadata and provenance)
                        continue
                    await self._target.write(output.path, output.body, output.content_type)
                else:
                    try:
                        await reading.put_file(self._from(output.record), output.record,
                                               self._target, output.path)
                    except reading.FileUnavailable as e:
                        failed.add(filename)
                        problems.append(f"{filename}: {e}")
                        continue
                self._report.written += 1
            for filename in failed:
                # Left out as a deleted file is: its project keeps its name
                # in the list (uv then never looks for it on another index).
                index.remove(filename)
                metadata.pop(filename, None)
                provenance.pop(filename, None)
            if self._settings.writes_files and project is not None:
                left_out = plans.withheld(index, project)
                for record in list(project.files.values()):
                    if record.filename in left_out:
                        # (listed as the daemon lists it, or not at all)
                        continue
                    shown = announced(record, metadata)
                    if shown is not record:
                        index.add(shown)
            self._report.problems.extend(problems)
        await self._each(list(names), put)
        return taken

    async def _pages(self, index: Index, plan: Plan, names: Iterable[str],
                     taken: Taken) -> dict[str, ProjectState]:
        """Render and write the pages of the projects C{names}; return their states."""
        owned: list[tuple[str | None, Output]] = []
        states: dict[str, ProjectState] = {}

        async def render(name: str) -> None:
            project = index.project(name)
            if project is None:
                return
            metadata, problems, provenance = taken[name]
            latest = project.latest_version()
            left_out = plans.withheld(index, project)
            raw = None
            info = None
            if has_legacy_json(index, project):
                for record in legacy_info_sources(project, latest):
                    # (a denied release's metadata is not written, but its
                    # JSON is the daemon's, read from its stored metadata)
                    raw = (metadata.get(record.filename)
                           if self._settings.writes_files and record.filename not in left_out
                           else await reading.read_metadata(self._from(record), record))
                    if raw is not None:
                        break
                info = legacy_info(project, latest, raw) if latest is not None else None
            outputs = project_outputs(index, project, self._settings, plan.serial, latest, info)
            undescribed: tuple[str, ...] = ()
            if self._people is not None:
                details: dict[str, bytes | None] = {}
                if not index.statuses.quarantined(name):
                    # (a quarantined project's page for people shows no file)
                    for record in project.sorted_files():
                        details[record.filename] = await self._from(record).read_details(record)
                people = people_outputs(self._people.project(index, project, details))
                self._claim(name, people)
                outputs += people
                undescribed = tuple(sorted(f for f, d in details.items() if d is None))
            # (every path written for it, its provenance too: one no longer
            # written is removed with what is gone)
            files = (file_outputs(project, metadata, provenance, left_out)
                     if self._settings.writes_files else [])
            paths = {output.path: output.sha256 for output in [*files, *outputs]}
            owned.extend((name, output) for output in outputs)
            states[name] = ProjectState("" if problems else plan.fingerprints[name], plan.serial,
                                        package_entry(project, latest), paths, undescribed)
        await self._each(list(names), render)
        await self._write_pages(owned)
        return states

    def _manifest(self, plan: Plan, states: dict[str, ProjectState]) -> ExportManifest:
        """This export's manifest, but for its root (see L{_root})."""
        previous = self._previous
        projects: dict[str, ProjectState] = {}
        for name in plan.fingerprints:
            if name in states:
                projects[name] = states[name]
            elif previous is not None and name in previous.projects:
                # Not rendered: unchanged (or gone from the index after its
                # every file failed, when it is rendered but has no state).
                state = previous.projects[name]
                if plan.fingerprints[name] == state.fingerprint:
                    projects[name] = state
        serial = plan.serial if states or plan.removed else (previous.serial if previous else 0)
        return ExportManifest(self._settings.key(), serial, projects)

    async def _root(self, index: Index, current: ExportManifest) -> dict[str, str]:
        """Write the project list, C{packages.json} and the site's pages; return their paths."""
        entries: dict[str, Entry | None] = {n: s.entry for n, s in current.projects.items()}
        outputs = root_outputs(index, entries)
        if self._people is not None:
            site = people_outputs(self._people.site(index))
            self._claim(None, site)
            outputs += site
        await self._write_pages([(None, output) for output in outputs])
        return {output.path: output.sha256 for output in outputs}

    async def _each(self, items: Iterable[T], work: Callable[[T], Awaitable[None]]) -> None:
        """Run C{work(item)} for each item, up to the target's parallelism at once."""
        parallel = self._target.parallel
        if parallel <= 1:
            for item in items:
                await work(item)
            return
        limit = DeferredSemaphore(parallel)
        await gather([limit.run(_deferred, work, item) for item in items])


def _deferred(work: Callable[[T], Awaitable[None]], item: T) -> Deferred[None]:
    async def one() -> None:
        await work(item)
    return ensureDeferred(one())


def _allowed(path: str) -> bool:
    try:
        plans.check_path(path)
    except ExportError:
        return False
    return True

