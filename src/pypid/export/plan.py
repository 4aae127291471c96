"""
What a static export writes and deletes: pure functions over records, so
that the whole of what makes an export incremental is tested without a
disk. What each path holds is made by L{pypid.export.outputs}.

What the daemon withholds from an anonymous reader, the export withholds
too, by the daemon's own rules: the L{Index} of an export carries the
projects' statuses (PEP 792) and the index's advisory policy, so its pages
are the daemon's bytes (a quarantined project's carry the marker and list
no file; a release its advisories deny is listed yanked, one they hide is
not listed); and L{withheld} names the files the daemon would not serve
(every file of a quarantined project, a denied release's), whose bytes,
core metadata and provenance are not written, as a quarantined project's
legacy JSON is not (the daemon answers 404).

The L{ExportManifest} remembers, per project, a fingerprint of its records
(and of its status and the advisories' verdicts on its releases) and the
paths written for it with their sha256, so the next export renders only the
projects whose fingerprint changed (L{plan}), skips writing what is already
there (L{ExportManifest.written_sha256}), and removes what no longer
belongs (L{stale_paths}). Fingerprinting 20,000 records takes about 50 ms;
rendering them all, seconds.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Container, Iterable
from typing import Any
from urllib.parse import quote

import attrs
import orjson

from pypid.core.dists.model import FileRecord
from pypid.core.dists.names import InvalidName, is_valid_name, normalize, parse_filename
from pypid.core.indexes.index import Index
from pypid.core.indexes.project import Project
from pypid.core.indexes.project_status import ProjectStatus
from pypid.core.security.advisories import AdvisoryPolicy, Verdict

#: The manifest's file name in DEST, and the format it is written in.
MANIFEST = ".pypid-export.json"
FORMAT = 1
#: The paths an export in progress is writing, kept until its manifest is
#: written: after a crash they are suspect (rewritten, or removed).
PENDING = ".pypid-export-pending.json"

#: Bumped whenever an export writes other bytes for the same records (a
#: change of the page markup, say): every project is then rendered again.
RENDER_VERSION = 1

#: Files rendered without details looked at again, at most, per export.
PROBES = 500

#: A relative path of segments none of which is empty, starts with C{.} or
#: holds a slash, a backslash or a control character (one match a path: a
#: manifest names tens of thousands).
_SEGMENT = r"[^\x00-\x1f\x7f/\\.][^\x00-\x1f\x7f/\\]*"
_PATH = re.compile(rf"(?:{_SEGMENT}/)*{_SEGMENT}")

#: C{file_url(record)}: the URL a page links a file by.
FileUrl = Callable[[FileRecord], str]
#: What a L{People} callable gives: C{(path, bytes)} pairs.
PeoplePairs = Iterable[tuple[str, bytes]]
#: A project's line in C{packages.json} (L{pypid.export.outputs.package_entry}), as JSON.
Entry = dict[str, Any]


class ExportError(Exception):
    """The export cannot go on; the message is one line for a person."""


@attrs.frozen
class People:
    """
    The seam for the pages for people (the landing page, the search page,
    a page per project, their assets).

    @ivar site: C{site(index)}: the C{(path, bytes)} of the whole site;
        called at every export.
    @ivar project: C{project(index, project, details)}: the C{(path,
        bytes)} of one project; called only for the projects whose records
        changed since the last export (every project on the first one, or
        when L{version} changes), with C{details}, each of its filenames to
        what C{storage.read_details} gave (bytes, or L{None}).
    @ivar version: names the pages' markup; an export with another version
        than the last one renders every project again.

    Paths are relative to DEST, C{/}-separated, without C{.} or C{..}
    segments and outside C{simple/}, C{files/} and C{pypi/}; a path a
    project gave and gives no more is removed, as are all of a project's
    paths when it goes. Links in the index are relative to a page two levels
    down (C{simple/<project>/}, so C{project/<project>/} too), or absolute
    under C{--files-url}.
    """

    site: Callable[[Index], PeoplePairs]
    project: Callable[[Index, Project, dict[str, bytes | None]], PeoplePairs]
    version: str = ""


@attrs.frozen
class ExportSettings:
    """
    How the export is made; a change renders every project again.

    @ivar files_url: the absolute URL the files are served under (as
        C{<files_url><project>/<filename>}, with C{.metadata} beside each),
        or L{None} to write the files into the export.
    @ivar base_url: the public URL of the export, for the legacy JSON's
        absolute links, or L{None} for links from the host's root.
    @ivar people: the L{People} version, or L{None} without pages for people.
    """

    files_url: str | None = None
    base_url: str | None = None
    people: str | None = None

    def key(self) -> dict[str, Any]:
        """What the manifest keeps of these settings, to tell a change."""
        return {"format": FORMAT, "render": RENDER_VERSION, "files_url": self.files_url,
                "base_url": self.base_url, "people": self.people}

    @property
    def writes_files(self) -> bool:
        """Whether the files and their metadata are written into the export."""
        return self.files_url is None

    def page_file_url(self) -> FileUrl:
        """
        C{file_url(record)} of the simple pages: relative to
        C{simple/<project>/} (the daemon's own links), or under L{files_url}.
        """
        return _under("../../files/" if self.files_url is None else self.files_url)

    def legacy_file_url(self) -> FileUrl:
        """
        C{file_url(record)} of the legacy JSON, whose links are absolute
        (tools do not resolve them): under L{files_url}, else under
        L{base_url}, else from the host's root, as the daemon's.
        """
        return _under(self.files_url if self.files_url is not None
                      else (self.base_url or "/") + "files/")


def _under(prefix: str) -> FileUrl:
    """C{file_url(record)} linking each file as C{<prefix><project>/<filename>}."""
    def file_url(record: FileRecord) -> str:
        return f"{prefix}{record.project}/{quote(record.filename)}"
    return file_url


@attrs.frozen
class Output:
    """
    One path to write: a page's bytes (C{data}), or a stored file (C{record}).

    @ivar sha256: hex sha256 of what the path holds once written.
    """

    path: str = attrs.field(validator=lambda _, __, path: check_path(path))
    content_type: str
    sha256: str
    data: bytes | None = None
    record: FileRecord | None = None

    @classmethod
    def page(cls, path: str, data: bytes, content_type: str) -> Output:
        """A path holding C{data}."""
        return cls(path, content_type, hashlib.sha256(data).hexdigest(), data)

    @property
    def body(self) -> bytes:
        """The bytes of a page (an output made by L{page}, which has no record)."""
        assert self.data is not None, f"{self.path} is a stored file, not a page"
        return self.data


# -- paths ------------------------------------------------------------------------------


def check_path(path: str) -> str:
    """
    Refuse a relative path that could leave DEST or hide in it.

    @raise ExportError: for an absolute path, an empty, C{.} or C{..}
        segment, a segment starting with C{.} or holding a backslash or a
        control character.
    """
    if not isinstance(path, str) or not path or path.startswith("/"):
        raise ExportError(f"not a relative path: {path!r}")
    if _PATH.fullmatch(path) is None:
        raise ExportError(f"not an allowed path: {path!r}")
    return path

# -- the index ---------------------------------------------------------------------------


def safe_records(records: Iterable[FileRecord]
                 ) -> tuple[list[FileRecord], list[tuple[FileRecord, str]]]:
    """
    C{(records, [(record, reason)])}: the records whose project and filename
    are a distribution's (a normalized name, a filename of that project),
    and those left out. Its fields become paths in DEST: a tampered record
    must not lead out of it.
    """
    kept: list[FileRecord] = []
    left: list[tuple[FileRecord, str]] = []
    for record in records:
        reason: str | None = None
        try:
            parsed = parse_filename(record.filename, legacy=True)
        except InvalidName as e:
            reason = f"not a distribution's filename: {e}"
        else:
            if not is_valid_name(record.project) or normalize(record.project) != record.project:
                reason = f"not a normalized project name: {record.project!r}"
            elif parsed.project != record.project:
                reason = f"a file of {parsed.project!r}, recorded as {record.project!r}'s"
        if reason is None:
            try:
                check_path(f"files/{record.project}/{record.filename}")
            except ExportError as e:
                reason = str(e)
        if reason is None:
            kept.append(record)
        else:
            left.append((record, reason))
    return kept, left


def build_index(records: Iterable[FileRecord], tombstones: Iterable[str],
                file_url: FileUrl, statuses: dict[str, ProjectStatus] | None = None,
                advisories: AdvisoryPolicy | None = None) -> Index:
    """
    The L{Index} of the export, filled in a fixed order (oldest upload
    first), so that a project's display name is the same at every export,
    with the projects' C{statuses} (as storage keeps them) and the index's
    C{advisories} (L{None}: none), which its pages apply as the daemon's do.
    """
    index = Index(file_url, advisories=advisories)
    index.load(sorted(records, key=lambda r: (r.upload_time, r.filename)), tombstones)
    index.statuses.take(statuses or {})
    return index


def verdicts(index: Index, project: Project) -> dict[str, Verdict]:
    """The index's verdicts on C{project}'s releases, by version (a lookup when none)."""
    policy = index.rendered.advisories
    if not policy.affects(project.name):
        return {}
    return {version: verdict for version in project.versions()
            if (verdict := policy.verdict(project.name, version)) is not None}


def withheld(index: Index, project: Project) -> frozenset[str]:
    """
    The filenames of C{project} whose bytes, core metadata and provenance
    the export does not write, because the daemon serves them to nobody
    but admins: every file of a quarantined project (PEP 792), and the
    files of the releases the index's advisories deny (C{advisories =
    deny}: the daemon answers 403). A release they hide is left off the
    pages, but its files are written: the daemon serves them by name.
    """
    status = index.status(project.name)
    if status is not None and status.quarantined:
        return frozenset(project.files)
    denied = {version for version, verdict in verdicts(index, project).items() if verdict.denies}
    if not denied:
        return frozenset()
    return frozenset(f.filename for f in project.files.values() if f.version in denied)


def _shown(verdict: Verdict) -> tuple[object, ...]:
    """What the pages and the legacy JSON show of a verdict (L{fingerprint})."""
    return (verdict.action, tuple((a.id, a.aliases, a.summary, a.details, a.severity,
                                   a.fixed_in, a.link) for a in verdict.advisories))


def fingerprint(project: Project, status: ProjectStatus | None = None,
                advised: dict[str, Verdict] | None = None) -> str:
    """
    A digest of everything of a project that its outputs show: its display
    name, each file's record but where storage keeps it, its C{status} and
    the verdicts (L{verdicts}) on its releases, so that a status set or an
    advisory come renders it again (a project with neither has the
    digest it had before they were counted).
    """
    digest = hashlib.blake2b(project.display_name.encode("utf-8"), digest_size=16)
    for filename in sorted(project.files):
        r = project.files[filename]
        digest.update(repr((
            r.filename, r.name, r.version, r.packagetype, r.size, r.sha256, r.upload_time,
            r.blake2_256, r.md5, r.requires_python, r.yanked, r.metadata_sha256, r.summary,
            r.uploader, r.provenance_sha256)).encode("utf-8", "replace"))
    if status is not None:
        digest.update(repr(("status", status.status, status.reason)).encode("utf-8", "replace"))
    for version, verdict in sorted((advised or {}).items()):
        digest.update(repr(("verdict", version, _shown(verdict))).encode("utf-8", "replace"))
    return digest.hexdigest()


# -- the manifest ---------------------------------------------------------------------


@attrs.define
class ProjectState:
    """
    What the manifest keeps of one project.

    @ivar fingerprint: L{fingerprint} of its records at the export that
        wrote it ("" to have it rendered again: a file could not be taken).
    @ivar serial: the export at which it last changed.
    @ivar entry: its L{pypid.export.outputs.package_entry}.
    @ivar paths: every path written for it -> sha256.
    @ivar undescribed: the filenames its pages for people were rendered
        without details for (the daemon describes them later: a later
        export looks again, see L{undescribed_files}).
    """

    fingerprint: str
    serial: int
    entry: Entry | None
    paths: dict[str, str]
    undescribed: tuple[str, ...] = ()


@attrs.define
class ExportManifest:
    """
    What an export wrote, kept in DEST as L{MANIFEST} for the next one.

    @ivar settings: L{ExportSettings.key} of the export.
    @ivar serial: counts the exports that changed something.
    @ivar projects: name -> L{ProjectState}.
    @ivar root: the site's own paths (L{pypid.export.outputs.root_outputs},
        L{People.site}) -> sha256.
    """

    settings: dict[str, Any]
    serial: int = 0
    projects: dict[str, ProjectState] = attrs.field(factory=dict)
    root: dict[str, str] = attrs.field(factory=dict)

    def to_bytes(self) -> bytes:
        """The manifest as compact JSON."""
        return orjson.dumps({
            "format": FORMAT,
            "settings": self.settings,
            "serial": self.serial,
            "root": self.root,
            "projects": {name: [s.fingerprint, s.serial, s.entry, s.paths,
                                *([list(s.undescribed)] if s.undescribed else [])]
                         for name, s in self.projects.items()},
        })

    @classmethod
    def from_bytes(cls, data: bytes) -> ExportManifest:
        """
        Read a manifest.

        @raise ExportError: when the bytes are not a manifest of this format.
        """
        try:
            obj = orjson.loads(data)
            if obj.get("format") != FORMAT:
                raise ExportError(f"it has format {obj.get('format')!r}, not {FORMAT}")
            projects: dict[str, ProjectState] = {}
            for name, (fp, serial, entry, paths, *rest) in obj["projects"].items():
                if not isinstance(paths, dict) or not isinstance(serial, int):
                    raise ValueError(f"bad entry for {name!r}")
                undescribed = tuple(str(f) for f in rest[0]) if rest else ()
                projects[name] = ProjectState(str(fp), serial, entry, paths, undescribed)
            root = obj["root"]
            if not isinstance(root, dict) or not isinstance(obj["serial"], int):
                raise ValueError("bad root")
            # (an edited manifest must not name a path outside DEST: the
            # next export removes what it lists)
            for paths in (root, *(state.paths for state in projects.values())):
                for path in paths:
                    check_path(path)
            return cls(obj["settings"], obj["serial"], projects, root)
        except ExportError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ExportError(f"it is not a valid manifest: {e}")

    def written_sha256(self, owner: str | None, path: str) -> str | None:
        """
        The sha256 the manifest says C{path} holds, L{None} when unknown.

        @param owner: the project's name, or L{None} for the site's paths.
        """
        if owner is None:
            return self.root.get(path)
        state = self.projects.get(owner)
        return state.paths.get(path) if state is not None else None


# -- the plan --------------------------------------------------------------------------


@attrs.frozen
class Plan:
    """
    What an export renders.

    @ivar changed: the names of the projects to render, sorted.
    @ivar removed: the names of the projects the last export wrote that are gone.
    @ivar fingerprints: name -> L{fingerprint}, of every project.
    @ivar serial: the serial of this export (the manifest's next one).
    @ivar rebuild: whether every project is rendered (no usable manifest,
        other settings, or asked for).
    """

    changed: tuple[str, ...]
    removed: tuple[str, ...]
    fingerprints: dict[str, str]
    serial: int
    rebuild: bool


def plan(index: Index, previous: ExportManifest | None, settings: ExportSettings,
         full: bool = False) -> Plan:
    """
    Which projects to render: those whose fingerprint differs from the last
    export's manifest (C{previous}), or all of them without one, with other
    settings, or when C{full}.
    """
    rebuild = full or previous is None or previous.settings != settings.key()
    known = previous.projects if previous is not None else {}
    fingerprints = {p.name: fingerprint(p, index.status(p.name), verdicts(index, p))
                    for p in index.projects()}
    if rebuild:
        changed = sorted(fingerprints)
    else:
        changed = sorted(name for name, fp in fingerprints.items()
                         if name not in known or known[name].fingerprint != fp)
    removed = sorted(name for name in known if name not in fingerprints)
    serial = (previous.serial if previous is not None else 0) + 1
    return Plan(tuple(changed), tuple(removed), fingerprints, serial, rebuild)


def stale_paths(previous: ExportManifest | None, current: ExportManifest,
                suspect: Iterable[str] = ()) -> list[str]:
    """
    The paths to remove: what the last export (C{previous}, or L{None})
    wrote, or an interrupted one may have written (C{suspect}), that this
    one did not write.
    """
    # A path may pass from one owner to another (a page for people), so
    # what stays is judged against every path written, not the owner's own.
    owned = set(current.root)
    for state in current.projects.values():
        owned.update(state.paths)
    stale = {path for path in suspect if path not in owned}
    if previous is not None:
        stale.update(path for path in previous.root if path not in owned)
        for name, state in previous.projects.items():
            if current.projects.get(name) is not state:
                stale.update(path for path in state.paths if path not in owned)
    # Pages first, files last: no page links a file already gone.
    return sorted(stale, key=lambda path: (path.startswith("files/"), path))


def undescribed_files(previous: ExportManifest | None, rendering: Container[str],
                      serial: int, limit: int | None = None) -> list[tuple[str, str]]:
    """
    C{(project, filename)} of files the last exports rendered pages for
    people without details, of projects not rendered now: at most
    C{limit} (L{PROBES}), a window that moves with C{serial}, so every file
    is looked at again within a few exports whatever their number.
    """
    limit = PROBES if limit is None else limit
    if previous is None:
        return []
    pairs = sorted((name, filename) for name, state in previous.projects.items()
                   if name not in rendering for filename in state.undescribed)
    if len(pairs) <= limit:
        return pairs
    start = (serial * limit) % len(pairs)
    return (pairs + pairs)[start:start + limit]


