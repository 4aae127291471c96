"""
What each path of a static export holds: a project's pages (its simple
pages, the daemon's bytes, and its legacy JSON), its files with their core
metadata and provenance, the project list, and the pages for people,
checked before they are written. L{pypid.export.plan} decides which
projects to render and what to remove; this makes the bytes.

The tree an export writes, served by a plain web server (nginx, a
bucket, a CDN) as the daemon serves its read API::

    simple/index.html, simple/index.json          the project list (PEP 503, PEP 691)
    simple/<project>/index.html, index.json       each project's page, the daemon's bytes
    files/<project>/<filename>                    each file (unless --files-url)
    files/<project>/<filename>.metadata           its core metadata (PEP 658)
    pypi/<project>/json                           the legacy JSON API
    packages.json                                 the project list for a search page
    ...                                           the pages for people
    .pypid-export.json                            the manifest of the export

(the pages for people: L{pypid.export.plan.People}; the manifest:
L{pypid.export.plan.ExportManifest}).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Container
from typing import Any

from pypid.core.dists.model import FileRecord
from pypid.core.dists.provenance import INTEGRITY_MEDIA_TYPE, integrity_path
from pypid.core.formats import legacy_info as legacy_json
from pypid.core.formats.catalog import summary_among
from pypid.core.indexes.index import Index
from pypid.core.indexes.project import Project
from pypid.core.indexes.render import HTML, JSON
from pypid.export.plan import (
    Entry,
    ExportError,
    ExportSettings,
    Output,
    PeoplePairs,
    check_path,
)
from pypid.storage.base.reading import BINARY_TYPE

HTML_TYPE = "text/html; charset=utf-8"
SIMPLE_JSON_TYPE = "application/vnd.pypi.simple.v1+json"
JSON_TYPE = "application/json"

#: The Content-Type of a page for people, by its path's extension.
_PEOPLE_TYPES = {
    ".html": HTML_TYPE,
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": JSON_TYPE,
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".xml": "application/xml",
}

#: Where the export's own outputs live: the pages for people may not write there.
_RESERVED = ("simple/", "files/", "pypi/")
_ROOT_PATHS = ("simple/index.html", "simple/index.json", "packages.json")


def people_type(path: str) -> str:
    """The Content-Type of a page for people, from its extension."""
    dot = path.rfind(".")
    slash = path.rfind("/")
    if dot > slash:
        return _PEOPLE_TYPES.get(path[dot:].lower(), BINARY_TYPE)
    return BINARY_TYPE


def people_outputs(pairs: PeoplePairs) -> list[Output]:
    """
    The L{Output}s of what a L{pypid.export.plan.People} callable gave.

    @raise ExportError: for a path that L{check_path} refuses, one under the
        export's own folders, or one given twice.
    """
    outputs: list[Output] = []
    seen: set[str] = set()
    for path, data in pairs:
        check_path(path)
        if path.startswith(_RESERVED) or path in _ROOT_PATHS:
            raise ExportError(f"the pages for people may not write {path!r}")
        if path in seen:
            raise ExportError(f"the pages for people give {path!r} twice")
        if not isinstance(data, bytes):
            raise ExportError(f"the pages for people give {path!r} as "
                              f"{type(data).__name__}, not bytes")
        seen.add(path)
        outputs.append(Output.page(path, data, people_type(path)))
    return outputs


def package_entry(project: Project, version: str | None) -> Entry | None:
    """
    The project's line in C{packages.json} (name, display name, summary,
    latest C{version}), or L{None} for a project without files.
    """
    if version is None:
        return None
    return {"name": project.name, "display_name": project.display_name,
            "summary": summary_among(project.files.values(), version), "version": version}


def file_outputs(project: Project, metadata: dict[str, bytes],
                 provenance: dict[str, bytes] | None = None,
                 left_out: Container[str] = ()) -> list[Output]:
    """
    The files of a project and their core metadata, to write under
    C{files/<project>/}, and their provenance (PEP 740), under
    C{integrity/<project>/<version>/<filename>/provenance} as the
    Integrity API serves it (JSON; a static server cannot answer 406).

    @param metadata: filename -> the metadata bytes to write beside it; a
        file missing here gets no C{.metadata} (and none is L{announced}).
    @param provenance: filename -> its provenance object, where it has one.
    @param left_out: the filenames not written at all (L{withheld}).
    """
    outputs = []
    for record in project.sorted_files():
        if record.filename in left_out:
            continue
        base = f"files/{project.name}/{record.filename}"
        outputs.append(Output(base, BINARY_TYPE, record.sha256, record=record))
        data = metadata.get(record.filename)
        if data is not None:
            outputs.append(Output.page(base + ".metadata", data, BINARY_TYPE))
        kept = (provenance or {}).get(record.filename)
        if kept is not None:
            outputs.append(Output.page(
                integrity_path(project.name, record.version, record.filename), kept,
                INTEGRITY_MEDIA_TYPE))
    return outputs


def file_of(path: str) -> str:
    """
    The filename of the distribution a path of L{file_outputs} belongs to:
    C{files/<project>/<filename>[.metadata]} or
    C{integrity/<project>/<version>/<filename>/provenance}.
    """
    parts = path.split("/")
    if parts[0] == "integrity" and len(parts) == 5:
        return parts[3]
    return parts[-1].removesuffix(".metadata")


def announced(record: FileRecord, metadata: dict[str, bytes]) -> FileRecord:
    """
    The record as the pages show it: PEP 658 metadata is announced only
    where it is written (L{file_outputs}) with the digest announced.
    """
    if record.metadata_sha256 is None:
        return record
    data = metadata.get(record.filename)
    if data is not None and hashlib.sha256(data).hexdigest() == record.metadata_sha256:
        return record
    return record.replace(metadata_sha256=None)


def project_outputs(index: Index, project: Project, settings: ExportSettings, serial: int,
                    latest: str | None, info: dict[str, Any] | None) -> list[Output]:
    """
    A project's pages: its simple pages (the daemon's bytes) and, where
    L{has_legacy_json}, its legacy JSON, naming the advisories the index
    acts on in its C{latest} release, as the daemon's does.

    @param serial: the C{last_serial} the legacy JSON announces (the export
        at which the project last changed).
    @param info: what L{legacy_info} gave (ignored without files).
    """
    page = index.rendered.project_page(project, JSON)
    outputs = [
        Output.page(f"simple/{project.name}/index.html",
                    index.rendered.project_page(project, HTML).body, HTML_TYPE),
        Output.page(f"simple/{project.name}/index.json", page.body, SIMPLE_JSON_TYPE),
        # (the index-level files of variants its pages link: PEP 825)
        *(Output.page(f"files/{project.name}/{name}", variants.body, JSON_TYPE)
          for name, variants in sorted(page.variants.items())),
    ]
    if has_legacy_json(index, project):
        # (a project with files has a latest version, and its info was read)
        assert latest is not None and info is not None, project.name
        found = legacy_json.releases(project, settings.legacy_file_url())
        body = legacy_json.render_json(project, found, latest, info, serial, True,
                                       settings.base_url,
                                       index.rendered.advisories.verdict(project.name, latest))
        outputs.append(Output.page(f"pypi/{project.name}/json", body, JSON_TYPE))
    return outputs


def has_legacy_json(index: Index, project: Project) -> bool:
    """
    Whether the export writes C{pypi/<project>/json}: the daemon answers
    it for a project with files that is not quarantined (404 otherwise).
    """
    return bool(project.files) and not index.statuses.quarantined(project.name)


def _release(project: Project, version: str | None) -> list[tuple[FileRecord, str]]:
    return [(record, "") for record in project.sorted_files() if record.version == version]


def legacy_info_sources(project: Project, latest: str | None) -> list[FileRecord]:
    """
    The records whose metadata may fill the legacy JSON's C{info}, in the
    order to try them (L{pypid.core.formats.legacy_info.info_sources}).
    """
    return legacy_json.info_sources(_release(project, latest)) if latest is not None else []


def legacy_info(project: Project, latest: str | None,
                metadata: bytes | None) -> dict[str, Any]:
    """C{info} of the legacy JSON, from the first of L{legacy_info_sources} read, or L{None}."""
    return legacy_json.info_from(metadata, _release(project, latest))


def root_outputs(index: Index, entries: dict[str, Entry | None]) -> list[Output]:
    """The project list in both forms, and C{packages.json} of the L{package_entry}s."""
    packages = [entries[name] for name in sorted(entries) if entries[name] is not None]
    return [
        Output.page("simple/index.html", index.rendered.root_page(HTML).body, HTML_TYPE),
        Output.page("simple/index.json", index.rendered.root_page(JSON).body, SIMPLE_JSON_TYPE),
        Output.page("packages.json",
                    json.dumps(packages, separators=(",", ":"), ensure_ascii=False)
                    .encode("utf-8", "replace"), JSON_TYPE),
    ]
