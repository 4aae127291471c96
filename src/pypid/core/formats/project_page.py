"""
The page for people of a project, about one of its versions (or the
latest): what it shows (L{ProjectView}, made by L{project_view}) and its
HTML, with its release history cut short for a project of many versions.

Everything shown comes from uploaders and is escaped; the description is
HTML that L{pypid.core.dists.readme} sanitized when the file arrived.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from html import escape
from urllib.parse import quote

import attrs

from pypid.core.dists.details import Details
from pypid.core.dists.names import WHEEL
from pypid.core.dists.provenance import integrity_path
from pypid.core.dists.version_order import choose_latest, is_prerelease, version_key
from pypid.core.formats.pages import (
    Chrome,
    ShownFile,
    frame,
    http_link,
    size,
    snippet,
    snippet_base,
    when,
)
from pypid.core.indexes.project_status import ProjectStatus
from pypid.core.security.advisories import DENY, HIDE, Verdict


@attrs.frozen
class Release:
    """
    One version of a project as the pages show it.

    @ivar files: its files, by filename.
    @ivar yanked: the reason when every file is yanked (possibly C{""}), else L{None}.
    @ivar uploaded: the earliest upload time of its files, or L{None}.
    """

    version: str
    files: tuple[ShownFile, ...]
    prerelease: bool
    yanked: str | None
    uploaded: float | None


@attrs.frozen
class ProjectView:
    """
    What a project page shows.

    @ivar releases: every L{Release}, newest first.
    @ivar current: the release the page is about.
    @ivar latest: the version installers pick by default, or L{None}.
    @ivar details: the current release's L{Details}, or L{None} when none are kept.
    @ivar upstream: when the upstream's page was fetched, for a project the
        cache knows from the upstream; L{None} for a hosted one.
    @ivar summary: the current release's summary from its records.
    @ivar pending: whether the details are being rendered now (the page
        says so, and is not kept).
    @ivar advisories: version -> the index's L{Verdict} on it, for the
        releases that advisories affect.
    @ivar publishers: filename -> who published it, as its verified
        provenance says (PEP 740), for the current release's files.
    """

    name: str
    display_name: str
    releases: tuple[Release, ...]
    current: Release
    latest: str | None
    details: Details | None = None
    upstream: float | None = None
    summary: str | None = None
    pending: bool = False
    status: ProjectStatus | None = None
    advisories: Mapping[str, Verdict] = attrs.field(factory=dict)
    publishers: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    #: filename -> its downloads over the last 30 days, for the
    #: current release's files; L{None}: not counted (a page of the upstream)
    downloads: Mapping[str, int] | None = None


def releases_of(files: Iterable[ShownFile]) -> tuple[Release, ...]:
    """The L{Release}s of a project's files, newest first."""
    by_version: dict[str, list[ShownFile]] = {}
    for f in files:
        by_version.setdefault(f.version, []).append(f)
    releases = []
    for version in sorted(by_version, key=version_key, reverse=True):
        group = tuple(sorted(by_version[version], key=lambda f: f.filename))
        reasons = [f.yanked for f in group]
        times = [f.upload_time for f in group if f.upload_time is not None]
        releases.append(Release(
            version=version, files=group, prerelease=is_prerelease(version),
            yanked=reasons[0] if all(r is not None for r in reasons) else None,
            uploaded=min(times) if times else None,
        ))
    return tuple(releases)


def latest_of(releases: Iterable[Release]) -> str | None:
    """The version installers pick by default (L{choose_latest}) among L{Release}s."""
    yanked = {r.version for r in releases if r.yanked is not None}
    return choose_latest([r.version for r in releases], yanked.__contains__)


def project_view(name: str, display_name: str, files: Iterable[ShownFile],
                 version: str | None = None, details: Details | None = None,
                 upstream: float | None = None, releases: tuple[Release, ...] | None = None,
                 ) -> ProjectView | None:
    """
    The L{ProjectView} of a project's files, about C{version} (the latest
    when L{None}); L{None} when there is no such version. C{releases}:
    C{releases_of(files)}, when the caller has them already.
    """
    releases = releases if releases is not None else releases_of(files)
    latest = latest_of(releases)
    wanted = latest if version is None else version
    current = next((r for r in releases if r.version == wanted), None)
    if current is None:
        return None
    # (a hosted record has a summary; an upstream's file has none)
    summary = next((s for f in current.files if (s := getattr(f, "summary", None))), None)
    return ProjectView(name, display_name, releases, current, latest, details, upstream,
                       summary)

# -- a project ---------------------------------------------------------------------------


#: What a project page says of each status but active (PEP 792's meanings).
_STATUS_TEXT = {
    "archived": "This project is archived: it takes no new uploads; its files are still "
                "offered.",
    "quarantined": "This project is quarantined: its files are not offered for install.",
    "deprecated": "This project is deprecated: it is kept, but should not be used for "
                  "new work.",
}


def status_notice(status: ProjectStatus | None) -> str:
    """The notice a project page opens with when the project is not active (PEP 792)."""
    if status is None:
        return ""
    text = _STATUS_TEXT.get(status.status, f"This project is {status.status}.")
    reason = (f' <span class="status-reason">Reason: {escape(status.reason)}</span>'
              if status.reason else "")
    return (f'<p class="notice status-{escape(status.status, True)}" role="alert">'
            f'<strong>{escape(text)}</strong>{reason}</p>')


#: What the index does with a release an advisory names, by its action.
_ADVISORY_ACTION = {
    HIDE: "This index does not list its files for installers.",
    DENY: "This index does not offer its files to installers, and refuses to serve them.",
}


def advisory_notice(verdict: Verdict | None, version: str) -> str:
    """The notice a release's page shows when advisories affect it, and what the index does."""
    if verdict is None:
        return ""
    items = []
    for advisory in verdict.advisories:
        ident = (http_link(advisory.link, advisory.id) if advisory.link
                 else escape(advisory.id))
        severity = (f' <span class="badge badge-vulnerable">{escape(advisory.severity)}</span>'
                    if advisory.severity else "")
        aliases = (f' <span class="muted">also {escape(", ".join(advisory.aliases))}</span>'
                   if advisory.aliases else "")
        summary = f" {escape(advisory.summary)}" if advisory.summary else ""
        fixed = (f' <span class="fixed-in">Fixed in {escape(", ".join(advisory.fixed_in))}.'
                 "</span>" if advisory.fixed_in else "")
        items.append(f"<li>{ident}{severity}{aliases}:{summary}{fixed}</li>")
    action = _ADVISORY_ACTION.get(verdict.action, "")
    return (f'<section class="notice advisories" role="alert" aria-labelledby="advisories">'
            f'<h2 id="advisories">Known vulnerabilities in {escape(version)}</h2>'
            f'<ul>{"".join(items)}</ul>'
            + (f"<p><strong>{escape(action)}</strong></p>" if action else "")
            + "</section>")


def quarantined_page(chrome: Chrome, name: str, display_name: str, status: ProjectStatus,
                     root: str) -> bytes:
    """The page of a quarantined project for those who may not see its files (not admins)."""
    body = (f'{status_notice(status)}<div class="project-head">'
            f'<h1>{escape(display_name)}</h1></div>')
    return frame(chrome, root, f"{display_name} - {chrome.title}", body)


def project_page(chrome: Chrome, view: ProjectView, root: str) -> bytes:
    """C{/project/<name>/} (about the latest version) or C{/project/<name>/<version>/}."""
    current, details = view.current, view.details
    name_q = quote(view.name)
    summary = (details.get("summary") if details is not None else None) or view.summary
    badges = []
    if current.prerelease:
        badges.append('<span class="badge badge-pre">pre-release</span>')
    if current.yanked is not None:
        badges.append(_yanked(current.yanked))
    if view.latest is not None and current.version != view.latest:
        badges.append(f'<span class="badge">the latest version is '
                      f'<a href="{escape(root)}project/{name_q}/">{escape(view.latest)}</a>'
                      f'</span>')
    upstream = "" if view.upstream is None else (
        '<p class="notice" role="note">This project is not hosted here: it is what '
        "this index's cache knows of it from the upstream index, as listed there "
        f"on {when(view.upstream)}.</p>")
    base = snippet_base(chrome)
    pin = f"{view.name}=={current.version}"
    head = (
        status_notice(view.status)
        + advisory_notice(view.advisories.get(current.version), current.version)
        + f'{upstream}<div class="project-head"><h1>{escape(view.display_name)} '
        f'<span class="version">{escape(current.version)}</span></h1>'
        + (f'<p class="summary">{escape(summary)}</p>' if summary else "")
        + (f'<p class="badges">{" ".join(badges)}</p>' if badges else "")
        + '</div>'
    )
    install = (
        '<section class="howto" aria-labelledby="install"><h2 id="install">Install</h2>'
        + snippet("pip", f"pip install --index-url {base}simple/ {escape(pin)}")
        + snippet("uv", f"uv add --index {base}simple/ {escape(pin)}")
        + '</section>'
    )
    if details is not None and details.html:
        fell_back = ('<p class="muted">This description did not render as its content type '
                     'asks; it is shown as plain text.</p>') if details.fell_back else ""
        shown = fell_back + details.html
    else:
        if view.pending:
            why = "The description is being prepared: reload the page in a moment."
        elif view.upstream is not None:
            why = "This index has not fetched a file of this version from the upstream yet."
        else:
            why = "This version has no description."
        shown = f'<p class="muted">{why}</p>'
    description = (f'<article class="description" aria-labelledby="about">'
                   f'<h2 id="about" class="visually-hidden">Description</h2>{shown}</article>')
    body = (
        head + install
        + f'<div class="columns">{description}{_about(details, current)}</div>'
        + _downloads(view) + _files(chrome, view, root) + _history(view, root)
    )
    title = f"{view.display_name} {current.version} - {chrome.title}"
    return frame(chrome, root, title, body)


def _about(details: Details | None, current: Release) -> str:
    """The side column: licence, Python, people, links, dependencies, classifiers."""
    rows = []

    def row(label: str, value_html: str) -> None:
        if value_html:
            rows.append(f"<dt>{label}</dt><dd>{value_html}</dd>")

    info = details.info if details is not None else {}
    requires_python = info.get("requires_python") or next(
        (f.requires_python for f in current.files if f.requires_python), None)
    row("Requires Python", escape(requires_python) if requires_python else "")
    licence = info.get("license_expression") or info.get("license")
    if licence:
        row("Licence", f'<span class="licence">{escape(str(licence))}</span>')
    for who, email in (("author", "author_email"), ("maintainer", "maintainer_email")):
        parts = [escape(str(info[k])) for k in (who, email) if info.get(k)]
        row(who.capitalize(), " ".join(parts))
    if info.get("keywords"):
        row("Keywords", escape(str(info["keywords"])))
    links: list[tuple[str, str]] = []
    urls = info.get("project_urls") or {}
    if isinstance(urls, dict):
        links.extend((str(label), str(url)) for label, url in urls.items())
    for label, key in (("Homepage", "home_page"), ("Download", "download_url")):
        if info.get(key):
            links.append((label, str(info[key])))
    if links:
        row("Links", "<ul>" + "".join(f"<li>{http_link(url, label)}</li>"
                                      for label, url in links) + "</ul>")
    parts = ['<aside class="about" aria-labelledby="meta"><h2 id="meta">About</h2>']
    parts.append(f"<dl>{''.join(rows)}</dl>" if rows
                 else '<p class="muted">Its metadata gives nothing more.</p>')
    for title, key in (("Dependencies", "requires_dist"), ("Classifiers", "classifiers")):
        values = info.get(key) or []
        if values:
            items = "".join(f"<li><code>{escape(str(v))}</code></li>" if key == "requires_dist"
                            else f"<li>{escape(str(v))}</li>" for v in values)
            parts.append(f'<h3>{title}</h3><ul class="{key}">{items}</ul>')
    parts.append("</aside>")
    return "".join(parts)


def _downloads(view: ProjectView) -> str:
    """The release's downloads over the last 30 days, and each file's."""
    counts = view.downloads
    if counts is None:
        return ""
    total = sum(counts.get(f.filename, 0) for f in view.current.files)
    each = ", ".join(f"{escape(f.filename)}: {counts.get(f.filename, 0):,}"
                     for f in view.current.files)
    return (f'<p class="downloads">Downloaded <strong>{total:,}</strong> '
            f'time{"" if total == 1 else "s"} in the last 30 days '
            f'<span class="muted">({each})</span></p>')


def _files(chrome: Chrome, view: ProjectView, root: str) -> str:
    rows = []
    for f in view.current.files:
        kind = "wheel" if f.packagetype == WHEEL else "sdist"
        yanked = (" " + _yanked(f.yanked)
                  if f.yanked is not None and view.current.yanked is None else "")
        uploader = getattr(f, "uploader", None)
        who = escape(uploader) if uploader else (
            '<span class="muted">upstream</span>' if view.upstream is not None
            else '<span class="muted">imported</span>')
        publishers = view.publishers.get(f.filename)
        if publishers:
            link = escape(root + integrity_path(f.project, f.version, f.filename))
            who += (f'<br><a class="provenance" href="{link}" title="Its provenance (PEP 740)">'
                    f'published by {escape("; ".join(publishers))}</a>')
        rows.append(
            f'<tr><td><a href="{escape(chrome.file_url(f, root))}" download>'
            f'{escape(f.filename)}</a>{yanked}</td><td>{kind}</td><td>{size(f.size)}</td>'
            f'<td>{when(f.upload_time)}</td><td>{who}</td>'
            f'<td><code class="hash" data-copy="">{escape(f.sha256)}</code></td></tr>'
        )
    return (
        '<section aria-labelledby="files"><h2 id="files">Files</h2>'
        '<div class="table-scroll"><table class="files">'
        '<caption class="visually-hidden">Files of this version</caption>'
        '<thead><tr><th scope="col">File</th><th scope="col">Type</th>'
        '<th scope="col">Size</th><th scope="col">Uploaded</th><th scope="col">By</th>'
        '<th scope="col">SHA-256</th></tr></thead>'
        f'<tbody>{"".join(rows)}</tbody></table></div></section>'
    )


def _yanked(reason: str) -> str:
    """The badge of a yanked file or release."""
    reason = f": {escape(reason)}" if reason else ""
    return f'<span class="badge badge-yanked">yanked{reason}</span>'


@functools.lru_cache(maxsize=1 << 16)
def _quoted(text: str) -> str:
    """C{quote(text)}, remembered: every version page lists every version."""
    return quote(text)


#: The newest releases every page's history lists, and how many on either
#: side of the page's own release: else a project of thousands of versions
#: gives each page the whole list, and the static export the square of it
#: (1,200 versions made 188 MB).
HISTORY_NEWEST = 20
HISTORY_AROUND = 20


def history_shown(count: int, current: int, latest: int | None) -> list[int | tuple[int, int]]:
    """
    The entries of a history of C{count} releases (newest first) that the
    page of the C{current}th shows: the index of a release shown, or
    C{(start, end)} for a run left out (the page links into it, so that
    every release is a few clicks away). C{latest}: its index, or L{None}.
    """
    shown = set(range(min(count, HISTORY_NEWEST)))
    shown.update(range(max(0, current - HISTORY_AROUND), min(count, current + HISTORY_AROUND + 1)))
    shown.add(count - 1)
    if latest is not None:
        shown.add(latest)
    entries: list[int | tuple[int, int]] = []
    gap: int | None = None
    for i in range(count):
        if i in shown:
            if gap is not None:
                entries.append((gap, i))
                gap = None
            entries.append(i)
        elif gap is None:
            gap = i
    return entries


def _history(view: ProjectView, root: str) -> str:
    name_q = quote(view.name)
    releases = view.releases
    current = next((i for i, r in enumerate(releases) if r is view.current), 0)
    latest = next((i for i, r in enumerate(releases) if r.version == view.latest), None)
    items = []
    for entry in history_shown(len(releases), current, latest):
        if isinstance(entry, tuple):
            start, end = entry
            # (into the run, from the side this page shows: its page shows
            # the next releases of the run around it)
            step = min(HISTORY_AROUND, end - start - 1)
            target = releases[start + step if start > current else end - 1 - step]
            items.append(
                f'<li class="history-gap"><a href="{escape(root)}project/{name_q}/'
                f'{_quoted(target.version)}/">{end - start:,} more '
                f'{"release" if end - start == 1 else "releases"}</a></li>')
            continue
        r = releases[entry]
        marks = []
        if r.version == view.latest:
            marks.append('<span class="badge badge-latest">latest</span>')
        if r.prerelease:
            marks.append('<span class="badge badge-pre">pre-release</span>')
        if r.yanked is not None:
            marks.append(_yanked(r.yanked))
        verdict = view.advisories.get(r.version)
        if verdict is not None:
            marks.append(f'<span class="badge badge-vulnerable">vulnerable: '
                         f'{escape(", ".join(verdict.ids))}</span>')
        current_mark = ' aria-current="page"' if r is view.current else ""
        items.append(
            f'<li><a href="{escape(root)}project/{name_q}/{_quoted(r.version)}/"'
            f'{current_mark}>{escape(r.version)}</a> {when(r.uploaded)} {" ".join(marks)}</li>'
        )
    return ('<section aria-labelledby="history"><h2 id="history">Release history</h2>'
            f'<ol class="releases">{"".join(items)}</ol></section>')

