"""
The bytes of the index's read API: the simple index in its PEP 503 HTML and
PEP 691 JSON forms, the legacy C{/pypi/<project>/json} API, and their ETags.

The caller hands in files paired with their URLs (without a fragment) and
gets bytes back, ready to be cached and served many times. The markup is
compact on purpose, since these pages are the bulk of the traffic, and
every value placed in HTML is escaped: it comes from uploaders.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from html import escape
from types import MappingProxyType
from typing import Any, Final, Literal, Protocol

import attrs

from pypid.core.dists.model import format_upload_time
from pypid.core.dists.names import SDIST, InvalidName, parse_filename
from pypid.core.dists.variant_files import NO_VARIANTS
from pypid.core.indexes.links import ProvenanceURL, no_provenance
from pypid.core.indexes.project_status import ProjectStatus
from pypid.core.util.bounded import remember

HTML = "html"
JSON = "json"

CONTENT_TYPES = {
    HTML: b"text/html; charset=utf-8",
    JSON: b"application/vnd.pypi.simple.v1+json",
}
#: the Content-Type of an index-level file of variants (PEP 825: JSON)
VARIANTS_TYPE = b"application/json"

#: the index-level files' pages of a page that lists no variant wheel
NO_PAGES: Mapping[str, Page] = MappingProxyType({})

# Pages shorter than this are not worth a Content-Encoding.
_MIN_GZIP = 256

#: what L{escape} would replace
_UNSAFE = re.compile("[&<>\"']")

#: The simple API version announced in both serializations: PEP 700's fields
#: (1.1), PEP 740's provenance (1.3) and PEP 792's status markers (1.4, which
#: a server that sends them must announce); 1.2 (PEP 708) was rejected. pip
#: reads no version; uv warns only on a major version above 1.
API_VERSION = "1.4"

#: The JSON API version of an index that serves PEP 752's namespaces; the
#: HTML stays at L{API_VERSION}, as PEP 833 froze it, and an index that
#: serves none (a static export) at 1.4 in JSON too, as PEP 752 asks.
NAMESPACES_API_VERSION = "1.5"

_META = {"api-version": API_VERSION}
_META_NAMESPACES = {"api-version": NAMESPACES_API_VERSION}

#: What a page of an index that serves no namespaces passes as its project's
#: C{namespaces} (API 1.4: the key is left out); L{None} is 1.5's "in none".
UNSERVED: Final = False

_HEAD = (
    '<!DOCTYPE html>\n<html lang="en"><head>'
    '<meta name="pypi:repository-version" content="' + API_VERSION + '">'
    "{status}<title>{title}</title></head>\n<body>\n"
)
_TAIL = "</body></html>\n"

# The fields of the legacy JSON API's "info" object, in warehouse's order,
# with the value used when the caller's metadata has none: null, but for
# "yanked" (false).
_INFO_DEFAULTS: Mapping[str, Any] = {**dict.fromkeys((
    "author", "author_email", "bugtrack_url", "classifiers", "description",
    "description_content_type", "docs_url", "download_url", "dynamic", "home_page",
    "keywords", "license", "license_expression", "license_files", "maintainer",
    "maintainer_email", "name", "package_url", "platform", "project_url", "project_urls",
    "provides_extra", "release_url", "requires_dist", "requires_python", "summary",
    "version", "yanked", "yanked_reason")), "yanked": False}


# Formatting a timestamp costs more than the rest of an anchor put together,
# and the same files are rendered again after every change to their project,
# so the formatted times are remembered, up to a bound.
_ISO_MEMO_LIMIT = 65536
_iso_memo: dict[float, str] = {}


class ListedFile(Protocol):
    """
    What a project's index page shows of a file: a hosted L{FileRecord}, or
    an upstream's (whose size and upload time may be unknown).
    """

    @property
    def filename(self) -> str: ...
    @property
    def sha256(self) -> str: ...
    @property
    def requires_python(self) -> str | None: ...
    @property
    def yanked(self) -> str | None: ...
    @property
    def metadata_sha256(self) -> str | None: ...
    @property
    def size(self) -> int | None: ...
    @property
    def upload_time(self) -> float | None: ...
    @property
    def variant(self) -> str | None: ...


class ComposedFile(ListedFile, Protocol):
    """
    A file as a composed page lists it: a L{ListedFile} with its project
    and version (for its link, the order, the filters and the advisories).
    """

    @property
    def project(self) -> str: ...
    @property
    def version(self) -> str: ...


class LegacyFile(ListedFile, Protocol):
    """What the legacy JSON API shows of a file: a page's, with its version and type."""

    @property
    def version(self) -> str: ...
    @property
    def packagetype(self) -> str: ...


def _upload_time_iso(when: float) -> str:
    """Return C{when} in PEP 700's format, memoized on the timestamp."""
    try:
        return _iso_memo[when]
    except KeyError:
        return remember(_iso_memo, when, format_upload_time(when), _ISO_MEMO_LIMIT)


def dumps_json(value: Any) -> bytes:
    """
    Serialize C{value} as compact UTF-8 JSON; text that cannot be encoded
    (a lone surrogate in metadata) is replaced rather than fail the response.
    """
    return json.dumps(
        value, separators=(",", ":"), ensure_ascii=False, check_circular=False
    ).encode("utf-8", "replace")


def etag(body: bytes) -> bytes:
    """Return a strong ETag for C{body}, quotes included."""
    return b'"' + hashlib.blake2b(body, digest_size=16).hexdigest().encode("ascii") + b'"'


@attrs.frozen
class Page:
    """
    One rendered page, ready to send.

    @ivar gzipped: the same bytes gzip-compressed, or L{None} when too small
        to be worth it.
    @ivar variants: a JSON page's index-level files (PEP 825) by filename,
        made with it, so that their URLs serve what the page's hashes name
        (an HTML page links the same ones, and keeps none).
    @ivar serial: the journal's serial the page carries
        (C{X-PyPI-Last-Serial}), or L{None} (a static export's, an upstream's).
    """

    body: bytes
    etag: bytes
    gzipped: bytes | None
    gzip_etag: bytes | None
    content_type: bytes
    variants: Mapping[str, Page] = NO_PAGES
    serial: int | None = None

    @classmethod
    def of(cls, body: bytes, content_type: bytes,
           variants: Mapping[str, bytes] = NO_VARIANTS, serial: int | None = None) -> Page:
        """
        Make a page from rendered bytes, with its compressed form and the
        index-level files' pages of a JSON page's C{variants}.
        """
        tag = etag(body)
        if len(body) >= _MIN_GZIP:
            gzipped: bytes | None = gzip.compress(body, compresslevel=6, mtime=0)
            gzip_etag: bytes | None = tag[:-1] + b'-gz"'
        else:
            gzipped = gzip_etag = None
        pages: Mapping[str, Page] = NO_PAGES
        if variants and content_type == CONTENT_TYPES[JSON]:
            pages = {name: cls.of(data, VARIANTS_TYPE) for name, data in variants.items()}
        return cls(body, tag, gzipped, gzip_etag, content_type, pages, serial)


@attrs.frozen
class AgedPage:
    """
    A page composed from an upstream's cached page, sent with its C{Age}
    (RFC 9111 5.1, whole seconds): when the oldest upstream page in it was fetched.
    """

    page: Page
    age: bytes


def root_html(projects: Iterable[tuple[str, str]]) -> bytes:
    """Render the PEP 503 project list of C{(normalized name, display name)} pairs."""
    parts = [_HEAD.format(title="Simple index", status="")]
    append = parts.append
    # (a name is escaped only when it holds what HTML would read otherwise:
    # project names never do, and the check costs a third of the escape,
    # 0.13 rather than 0.21 s for the 200,000 projects of a million files)
    unsafe = _UNSAFE.search
    for normalized, display in projects:
        if unsafe(normalized) or unsafe(display):
            normalized, display = escape(normalized, True), escape(display, True)
        append(f'<a href="{normalized}/">{display}</a><br />\n')
    append(_TAIL)
    return "".join(parts).encode("utf-8", "replace")


def root_json(projects: Iterable[tuple[str, str]], namespaces: bool = False,
              serials: Callable[[str], int] | None = None, last: int | None = None) -> bytes:
    """
    Render the PEP 691 project list of C{(normalized name, display name)}
    pairs, by display name as the spec allows; with C{serials(name)}, each
    with its C{_last-serial} (as the public index lists them and mirrors
    read them), and C{last} in C{meta}. C{namespaces}: API 1.5.
    """
    meta: dict[str, str | int] = dict(_META_NAMESPACES if namespaces else _META)
    if last is not None:
        meta = {**meta, "_last-serial": last}
    listed = ([{"name": display, "_last-serial": serials(name)} for name, display in projects]
              if serials is not None else [{"name": display} for _, display in projects])
    return dumps_json({"meta": meta, "projects": listed})


def _anchor(record: ListedFile, url: str, provenance: str | None = None) -> str:
    """Return the HTML anchor for one file, every attribute escaped."""
    parts = ['<a href="', escape(f"{url}#sha256={record.sha256}", True), '"']
    if record.requires_python:
        parts += (' data-requires-python="', escape(record.requires_python, True), '"')
    if record.yanked is not None:
        parts += (' data-yanked="', escape(record.yanked, True), '"')
    if record.metadata_sha256 is not None:
        # (an upstream may advertise metadata without its hash: "true")
        value = (escape("sha256=" + record.metadata_sha256, True) if record.metadata_sha256
                 else "true")
        parts += (' data-core-metadata="', value, '" data-dist-info-metadata="', value, '"')
    # Size and upload time are unknown for some upstream files (HTML pages).
    if record.size is not None:
        parts += (' data-size="', str(int(record.size)), '"')
    if record.upload_time is not None:
        parts += (' data-upload-time="', _upload_time_iso(record.upload_time), '"')
    if provenance is not None:
        parts += (' data-provenance="', escape(provenance, True), '"')
    parts += ('>', escape(record.filename, True), "</a><br />\n")
    return "".join(parts)


def _status_metas(status: ProjectStatus | None) -> str:
    """PEP 792's C{<meta>} elements of a project's status (none for an active one)."""
    if status is None:
        return ""
    metas = f'<meta name="pypi:project-status" content="{escape(status.status, True)}">'
    if status.reason:
        metas += ('<meta name="pypi:project-status-reason" content="'
                  f'{escape(status.reason, True)}">')
    return metas


def project_html(project: str, files: Iterable[tuple[ListedFile, str]],
                 status: ProjectStatus | None = None,
                 provenance_url: ProvenanceURL = no_provenance) -> bytes:
    """
    Render a project's PEP 503 page of C{(record, url)} pairs, with the PEP
    592, 658/714 attributes, uv's non-standard C{data-size} and
    C{data-upload-time}, PEP 740's C{data-provenance} and PEP 792's status
    markers (none for an active project, as PEP 792 allows).
    """
    title = escape(f"Links for {project}", True)
    parts = [_HEAD.format(title=title, status=_status_metas(status)), f"<h1>{title}</h1>\n"]
    parts.extend(_anchor(record, url, provenance_url(record)) for record, url in files)
    parts.append(_TAIL)
    return "".join(parts).encode("utf-8", "replace")


def _json_file(record: ListedFile, url: str, provenance: str | None = None,
               ) -> dict[str, Any]:
    """Return the PEP 691 / PEP 700 entry of one file."""
    metadata = _core_metadata(record.metadata_sha256)
    entry: dict[str, Any] = {"filename": record.filename, "url": url,
                             "hashes": {"sha256": record.sha256}}
    if record.requires_python:
        entry["requires-python"] = record.requires_python
    if record.size is not None:
        entry["size"] = record.size
    if record.upload_time is not None:
        entry["upload-time"] = _upload_time_iso(record.upload_time)
    # PEP 592: true for an empty reason, the reason otherwise.
    entry["yanked"] = (record.yanked or True) if record.yanked is not None else False
    entry["core-metadata"] = metadata
    entry["dist-info-metadata"] = metadata
    # (PEP 740: the key always, as the public index sends it)
    entry["provenance"] = provenance
    return entry


def _core_metadata(sha256: str | None) -> bool | dict[str, str]:
    """The C{core-metadata} of a file: its hash, C{true} when unknown, C{false} for none."""
    return False if sha256 is None else {"sha256": sha256} if sha256 else True


def project_json(project: str, files: Iterable[tuple[ListedFile, str]],
                 versions: Iterable[str], status: ProjectStatus | None = None,
                 provenance_url: ProvenanceURL = no_provenance,
                 namespaces: Sequence[Mapping[str, Any]] | None | Literal[False] = UNSERVED,
                 serial: int | None = None) -> bytes:
    """
    Render a project's PEP 691 page of C{(record, url)} pairs at API
    version 1.4, or 1.5 with its C{namespaces} (L{None}: in none; a list of
    C{{name, owned}}); with its C{serial} in C{meta} (C{_last-serial}).

    @param versions: every version to announce, without duplicates; it must
        include the version of each file.
    """
    meta = _META if namespaces is UNSERVED else _META_NAMESPACES
    page: dict[str, Any] = {
        "meta": meta if serial is None else {**meta, "_last-serial": serial},
        "name": project,
        "versions": list(versions),
        "files": [_json_file(record, url, provenance_url(record)) for record, url in files],
    }
    if status is not None:
        marker = {"status": status.status}
        if status.reason:
            marker["reason"] = status.reason
        page["project-status"] = marker
    if namespaces is not UNSERVED:
        page["namespaces"] = None if namespaces is None else list(namespaces)
    return dumps_json(page)


def _python_version(record: LegacyFile) -> str:
    """
    The legacy API's C{python_version}: C{"source"} for an sdist, the
    wheel's python tag(s) otherwise, read from the filename.
    """
    if record.packagetype == SDIST:
        return "source"
    try:
        return parse_filename(record.filename, legacy=True).pyversion
    except InvalidName:
        return ""


def _legacy_file(record: LegacyFile, url: str) -> dict[str, Any]:
    """
    Return one file as the legacy JSON API (warehouse) describes it: a
    hosted L{FileRecord}, or an upstream page's (its md5 and blake2 unknown).
    """
    digests = {}
    md5: str | None = getattr(record, "md5", None)
    blake2: str | None = getattr(record, "blake2_256", None)
    if md5 is not None:
        digests["md5"] = md5
    digests["sha256"] = record.sha256
    if blake2 is not None:
        digests["blake2b_256"] = blake2
    when = record.upload_time
    iso = _upload_time_iso(when) if when is not None else None
    return {
        "comment_text": "",
        "core-metadata": _core_metadata(record.metadata_sha256),
        "digests": digests,
        "downloads": -1,
        "filename": record.filename,
        "has_sig": False,
        "md5_digest": md5,
        "packagetype": record.packagetype,
        "python_version": _python_version(record),
        "requires_python": record.requires_python or None,
        "size": record.size,
        "upload_time": iso[:19] if iso is not None else None,
        "upload_time_iso_8601": iso,
        "url": url,
        "yanked": record.yanked is not None,
        "yanked_reason": record.yanked or None,
    }


def pypi_json(
    project_display: str,
    project: str,
    info: Mapping[str, Any],
    releases: Mapping[str, Sequence[tuple[LegacyFile, str]]],
    latest_version: str,
    last_serial: int,
    include_releases: bool = True,
    base_url: str = "",
    vulnerabilities: Sequence[Mapping[str, object]] = (),
    downloads: Mapping[str, int] | None = None,
) -> bytes:
    """
    Render warehouse's legacy JSON API for one release of a project:
    C{/pypi/<project>/json} (with C{releases}) or
    C{/pypi/<project>/<version>/json} (without).

    @param info: metadata-derived fields of the rendered release, named as
        in the legacy API; fields it lacks are sent as null, and the fields
        computed here override it.
    @param releases: version -> C{(record, url)} pairs, in the order to list
        them, C{latest_version} (the one rendered in C{info}) among them.
    @param base_url: prefix (scheme and host, no trailing slash) of the links.
    """
    urls = [_legacy_file(record, url) for record, url in releases[latest_version]]
    out_info: dict[str, Any] = dict(_INFO_DEFAULTS)
    # A fresh list per response: classifiers is the one non-null default.
    out_info["classifiers"] = []
    out_info.update(info)
    project_url = f"{base_url}/project/{project}/"
    all_yanked = bool(urls) and all(f["yanked"] for f in urls)
    out_info.update(
        name=project_display,
        version=latest_version,
        package_url=project_url,
        project_url=project_url,
        release_url=f"{project_url}{latest_version}/",
        downloads=dict(downloads) if downloads is not None
        else {"last_day": -1, "last_month": -1, "last_week": -1},
        yanked=all_yanked,
        yanked_reason=(next((f["yanked_reason"] for f in urls if f["yanked_reason"]), None)
                       if all_yanked else None),
    )
    out = {"info": out_info, "last_serial": last_serial}
    if include_releases:
        out["releases"] = {
            version: urls if version == latest_version
            else [_legacy_file(record, url) for record, url in files]
            for version, files in releases.items()}
    out["urls"] = urls
    out["vulnerabilities"] = list(vulnerabilities)
    out["ownership"] = {"organization": None, "roles": []}
    return dumps_json(out)
