"""
What the legacy JSON API (C{/pypi/<project>/json} and
C{/pypi/<project>/<version>/json}) shows of a project, chosen from its
records. Pure, so that the server and the static export give the same
answer; they read the metadata of L{info_sources} in order from storage
and hand the first bytes they get to L{info_from}.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pypid.core.dists.metadata import parse_metadata
from pypid.core.dists.model import FileRecord
from pypid.core.dists.version_order import choose_latest, page_order
from pypid.core.indexes import render
from pypid.core.indexes.project import Project
from pypid.core.indexes.render import LegacyFile
from pypid.core.security.advisories import Verdict, vulnerability_json

#: A release's files with their links: C{(record, url)} pairs.
LinkedFiles = list[tuple[FileRecord, str]]


def releases(project: Project, file_url: Callable[[FileRecord], str]) -> dict[str, LinkedFiles]:
    """A project's C{(record, file_url(record))} by version, in the order its pages list them."""
    found: dict[str, LinkedFiles] = {}
    for record in project.sorted_files():
        found.setdefault(record.version, []).append((record, file_url(record)))
    return found


def listed_releases(files: Iterable[LegacyFile], file_url: Callable[[Any], str]
                    ) -> dict[str, list[tuple[LegacyFile, str]]]:
    """The files a page lists by version, in the pages' order, each with its link."""
    found: dict[str, list[tuple[LegacyFile, str]]] = {}
    for f in page_order(files):
        found.setdefault(f.version, []).append((f, file_url(f)))
    return found


def latest_listed(found: Mapping[str, Sequence[tuple[LegacyFile, str]]]) -> str | None:
    """The version installers pick by default among C{found} (as L{Project.latest_version})."""
    alive = {v for v, files in found.items() if any(f.yanked is None for f, _ in files)}
    return choose_latest(set(found), lambda v: v not in alive)


def info_sources(files: Sequence[tuple[FileRecord, str]]) -> list[FileRecord]:
    """
    The records of a release's C{(record, url)} pairs whose stored metadata
    may fill C{info}, in the order to try them: wheels first (theirs is built).
    """
    return [record for record, _url in sorted(files, key=lambda f: not f[0].is_wheel)
            if record.metadata_sha256 is not None]


def info_from(metadata: bytes | None,
              files: Sequence[tuple[LegacyFile, str]]) -> dict[str, Any]:
    """The metadata part of C{info}: from the first stored C{metadata} read, else the records'."""
    if metadata is not None:
        return parse_metadata(metadata).to_json_info()
    return {"requires_python": files[0][0].requires_python}


def render_json(project: Project, found: Mapping[str, Sequence[tuple[FileRecord, str]]],
                shown: str, info: Mapping[str, Any], serial: int, include_releases: bool,
                base_url: str | None, verdict: Verdict | None = None,
                downloads: Mapping[str, int] | None = None) -> bytes:
    """
    The legacy JSON's bytes (L{render.pypi_json}) of C{found} (what
    L{releases} gave) about the release C{shown}, of which C{info} is what
    L{info_from} gave and C{verdict} gives the C{vulnerabilities};
    C{downloads}: the project's C{last_day}, C{last_week} and C{last_month}
    downloads, or L{None}: not counted (-1).
    """
    vulnerabilities = ([vulnerability_json(a) for a in verdict.advisories]
                       if verdict is not None else [])
    return render.pypi_json(project.display_name, project.name, info, found, shown, serial,
                            include_releases=include_releases,
                            base_url=(base_url or "/").rstrip("/"),
                            vulnerabilities=vulnerabilities, downloads=downloads)
