"""
The pages for people as HTML: the landing page, search results, and a page
per project and per version. The server renders them once per change and
keeps the bytes (see L{pypid.web.pages.people}); the static export writes the same
bytes to files (see L{pypid.export}).

Every link is relative to the page (C{root} is the way back to the site's
root from it), so the same pages work behind any proxy path, from a static
copy, and never depend on the request's C{Host}. An install snippet needs an
absolute URL: it is the configured base URL, or, without one, the page's
script writes the browser's own origin into it (the browser knows where it
is; the server cannot trust a C{Host} header to tell it).

Everything shown comes from uploaders and is escaped; the description is
HTML that L{pypid.core.dists.readme} sanitized when the file arrived. Pages carry
no inline script or style, so they work under a Content-Security-Policy of
C{script-src 'self'; style-src 'self'} (see L{pypid.web.pages.people.PEOPLE_CSP}).

Pure: data in, bytes out.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Iterable, Mapping
from html import escape
from typing import Protocol
from urllib.parse import quote

import attrs

from pypid.core.dists.names import WHEEL, normalize
from pypid.core.dists.provenance import integrity_path
from pypid.core.dists.version_order import choose_latest, is_prerelease, version_key
from pypid.core.formats.details import Details
from pypid.core.formats.render import ListedFile
from pypid.core.formats.search import Results, SearchEntry
from pypid.core.indexes.index_names import DEFAULT
from pypid.core.indexes.project_status import ProjectStatus
from pypid.core.security.advisories import DENY, HIDE, Verdict


class ShownFile(ListedFile, Protocol):
    """
    What the pages for people show of a file: what its index page lists
    (L{ListedFile}: a hosted record or an upstream's file), with the
    project, version and kind the pages group it by. A C{summary} and an
    C{uploader}, where a file has them, are read too.
    """

    @property
    def project(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def packagetype(self) -> str: ...


@attrs.frozen
class IndexLink:
    """
    One index in the switcher of the pages for people.

    @ivar name: its name (C{default} for the default index, at the site's root).
    @ivar view: whether it is a read-only view.
    """

    name: str
    view: bool = False


@attrs.frozen
class Chrome:
    """
    What every page shares: where its assets are and how search and
    snippets reach the server.

    @ivar css: the stylesheet's path from the site's root.
    @ivar js: the script's path from the site's root.
    @ivar icon: the icon's path from the site's root.
    @ivar base_url: the absolute URL of the site's root for snippets
        (C{https://pypi.internal.example/}), or L{None} to let the script
        fill in the browser's origin.
    @ivar files_url: the absolute URL files are linked under (C{<url><project>/<filename>}),
        or L{None} for C{files/} under the site's root.
    @ivar search: the search page's path from the root (C{search}, or
        C{search/} in a static copy).
    @ivar suggest: where the script finds results as one types, from the
        root: a URL it asks (C{api/search}), or a C{.json} list of every
        project it searches itself (a static copy's C{packages.json}).
    @ivar title: the site's name in titles and the header.
    @ivar login: the path from the root that asks a browser for
        credentials, or L{None} where there is none (a static copy).
    @ivar site: the way from the index's root to the site's root, where
        the assets and C{login} are: C{""} for the default index, C{"../"}
        for a named one, whose pages' C{root} leads to C{/NAME/}.
    @ivar index: the name of the index the pages are of.
    @ivar indexes: the index switcher's entries, the default first; empty:
        no switcher (a server without named indexes, whose pages stay as
        they were).
    @ivar uploads: whether the index takes uploads (a view does not: its
        landing page shows no publishing snippets).
    @ivar person: the user a browser session stands for: the
        header names them and offers to log out, rather than to log in.
    """

    css: str
    js: str
    icon: str
    base_url: str | None = None
    files_url: str | None = None
    search: str = "search"
    suggest: str = "api/search"
    title: str = "pypid"
    login: str | None = "login"
    site: str = ""
    index: str = DEFAULT
    indexes: tuple[IndexLink, ...] = ()
    uploads: bool = True
    person: str | None = None

    def file_url(self, file: ShownFile, root: str) -> str:
        """The link to a file from a page whose way back to the root is C{root}."""
        base = self.files_url if self.files_url is not None else root + "files/"
        return f"{base}{quote(file.project)}/{quote(file.filename)}"


@attrs.frozen
class Upload:
    """A line of the landing page's recent uploads."""

    project: str
    display_name: str
    version: str
    uploader: str | None
    upload_time: float


@attrs.frozen
class Release:
    """
    One version of a project as the pages show it.

    @ivar files: its files (L{pypid.core.indexes.model.FileRecord}s, or the
        upstream's L{pypid.upstream.parser.UpstreamFile}s), by filename.
    @ivar yanked: the reason when every file is yanked (possibly C{""}),
        else L{None}.
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
    @ivar latest: the version installers pick by default (no pre-release
        when there is a final one, no yanked one), or L{None}.
    @ivar details: the L{pypid.core.formats.details.Details} of the current
        release, or L{None} when none are kept.
    @ivar upstream: when the upstream's page was fetched, for a project the
        cache knows from the upstream; L{None} for a hosted one.
    @ivar summary: the current release's summary (from its records, when
        no details are kept).
    @ivar pending: whether the details are being rendered now (the page
        says so, and is not kept).
    @ivar status: the project's status (PEP 792), or L{None} when it is
        active; the page says it first thing.
    @ivar advisories: version -> the index's L{Verdict} on it, for the
        releases that advisories affect; the page about one
        lists them, the release history marks them.
    @ivar publishers: filename -> who published it, as its verified
        provenance says (PEP 740, L{pypid.core.dists.provenance.publishers_of}),
        for the current release's files that have one; each links its
        provenance.
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
    when L{None}); L{None} when there is no such version.

    @param releases: C{releases_of(files)}, when the caller has them
        already (a view per version of one project).
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


# -- formatting ------------------------------------------------------------------------


@functools.lru_cache(maxsize=1 << 16)
def _when(timestamp: float | None) -> str:
    """A C{<time>} element: UTC, to the minute."""
    if timestamp is None:
        return "unknown"
    try:
        dt = datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return "unknown"
    iso = dt.isoformat(timespec="seconds")[:19]  # (the year always in 4 digits)
    return (f'<time datetime="{iso}Z">'
            f'{iso[:10]} {iso[11:16]}\N{NO-BREAK SPACE}UTC</time>')


def _size(size: int | None) -> str:
    """A size for people (C{1.2 MB}), with the exact bytes in a tooltip."""
    if size is None:
        return "unknown"
    value, unit = float(size), "bytes"
    for next_unit in ("kB", "MB", "GB"):
        if value < 1000:
            break
        value, unit = value / 1000, next_unit
    text = f"{size} bytes" if unit == "bytes" else f"{value:.1f}\N{NO-BREAK SPACE}{unit}"
    return f'<span title="{size} bytes">{text}</span>'


def _http_link(url: str, text: str) -> str:
    """A link for a URL from metadata: only http and https become links."""
    if url.lower().startswith(("https://", "http://")):
        return f'<a href="{escape(url)}" rel="nofollow noopener noreferrer">{escape(text)}</a>'
    return escape(text)


def _base(chrome: Chrome) -> str:
    """The site's absolute root in a snippet, or the element the script fills in."""
    if chrome.base_url:
        return escape(chrome.base_url)
    return '<span data-base="">http://&lt;this server&gt;/</span>'


def _snippet(label: str, text_html: str) -> str:
    return (f'<div class="snippet"><p class="snippet-label">{label}</p>'
            f'<pre data-copy=""><code>{text_html}</code></pre></div>')


# -- the frame -------------------------------------------------------------------------


def frame(chrome: Chrome, root: str, title: str, main: str, *, search_box: bool = True,
           query: str = "") -> bytes:
    """A whole page around C{main}: head, header with search, footer."""
    search = ""
    if search_box:
        search = (
            f'<form class="search" role="search" action="{escape(root + chrome.search)}" '
            f'method="get"><label class="visually-hidden" for="q">Search projects</label>'
            f'<input id="q" name="q" type="search" value="{escape(query)}" '
            f'placeholder="Search projects" autocomplete="off" maxlength="200" '
            f'data-suggest="{escape(root + chrome.suggest)}" aria-controls="suggestions">'
            f'<button type="submit">Search</button></form>'
            f'<div id="suggestions" class="suggestions" aria-live="polite"></div>'
        )
    site = root + chrome.site
    if chrome.person is not None:
        # (the console is one click away for every person logged in: their
        # tokens, and the admins' pages for an admin)
        login = (f'<span class="person">{escape(chrome.person)}</span>'
                 f'<a href="{escape(site + "console/")}">Console</a>'
                 f'<a href="{escape(site + "logout")}">Log out</a>')
    else:
        login = (f'<a href="{escape(site + chrome.login)}">Log in</a>'
                 if chrome.login is not None else "")
    return (
        f'<!DOCTYPE html>\n<html lang="en" data-root="{escape(root)}"><head>'
        f'<meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="color-scheme" content="light dark">'
        f'<title>{escape(title)}</title>'
        f'<link rel="icon" href="{escape(site + chrome.icon)}" type="image/svg+xml">'
        f'<link rel="stylesheet" href="{escape(site + chrome.css)}">'
        f'<script src="{escape(site + chrome.js)}" defer></script></head>\n'
        f'<body><a class="skip" href="#main">Skip to the content</a>'
        f'<header class="site"><nav aria-label="Site">'
        f'<a class="brand" href="{escape(root or "./")}">{escape(chrome.title)}</a>'
        f'<a href="{escape(root)}simple/">Simple index</a>{login}</nav>'
        f'{_switcher(chrome, site)}{search}</header>\n'
        f'<main id="main" tabindex="-1">{main}</main>\n'
        f'<footer class="site"><p>A private Python package index, served by pypid.</p>'
        f'</footer></body></html>\n'
    ).encode()


def _switcher(chrome: Chrome, site: str) -> str:
    """
    The index switcher: a link to each index the reader may read, the
    current one marked, views named so; nothing without entries.

    @param site: the way from the page to the site's root.
    """
    if not chrome.indexes:
        return ""
    items = []
    for link in chrome.indexes:
        href = site + quote(link.name) + "/" if link.name != DEFAULT else site or "./"
        current = ' aria-current="page"' if link.name == chrome.index else ""
        view = ' <span class="badge">view</span>' if link.view else ""
        items.append(f'<a href="{escape(href)}"{current}>{escape(link.name)}</a>{view}')
    return f'<nav class="indexes" aria-label="Indexes">{"".join(items)}</nav>'


# -- the landing page ------------------------------------------------------------------


def landing_page(chrome: Chrome, projects: int, files: int, recent: Iterable[Upload]) -> bytes:
    """
    C{/}: what this index holds, its latest uploads, and how to use it.

    @param projects: how many projects the reader may see.
    @param files: how many files they hold.
    @param recent: the latest L{Upload}s the reader may see, newest first.
    """
    root = ""
    rows = "".join(
        f'<tr><td><a href="project/{quote(u.project)}/">{escape(u.display_name)}</a></td>'
        f'<td><a href="project/{quote(u.project)}/{quote(u.version)}/">{escape(u.version)}</a></td>'
        f'<td>{escape(u.uploader) if u.uploader else "<span class=muted>imported</span>"}</td>'
        f'<td>{_when(u.upload_time)}</td></tr>'
        for u in recent
    )
    uploads = (
        '<table class="uploads"><caption class="visually-hidden">Recent uploads</caption>'
        '<thead><tr><th scope="col">Project</th><th scope="col">Version</th>'
        '<th scope="col">By</th><th scope="col">When</th></tr></thead>'
        f'<tbody>{rows}</tbody></table>'
    ) if rows else '<p class="muted">Nothing has been uploaded yet.</p>'
    base = _base(chrome)
    plural = "" if projects == 1 else "s"
    main = (
        '<section class="hero" aria-labelledby="title">'
        f'<h1 id="title">Python packages</h1>'
        f'<p class="lead">{projects} project{plural}, {files} file{"" if files == 1 else "s"} '
        f'on this private index.</p>'
        f'<form class="search search-big" role="search" action="{escape(chrome.search)}" '
        f'method="get"><label class="visually-hidden" for="q">Search projects</label>'
        f'<input id="q" name="q" type="search" placeholder="Search projects" '
        f'autocomplete="off" maxlength="200" data-suggest="{escape(chrome.suggest)}" '
        f'aria-controls="suggestions"><button type="submit">Search</button></form>'
        f'<div id="suggestions" class="suggestions" aria-live="polite"></div></section>'
        '<section aria-labelledby="recent"><h2 id="recent">Recent uploads</h2>'
        f'{uploads}</section>'
        '<div class="howto-grid">'
        '<section class="howto" aria-labelledby="install"><h2 id="install">Install</h2>'
        + _snippet("pip", f"pip install --index-url {base}simple/ PROJECT")
        + _snippet("uv", f"uv pip install --index-url {base}simple/ PROJECT")
        + _snippet("uv, in a project", f"uv add --index {base}simple/ PROJECT")
        + '</section>' + (
            '<section class="howto" aria-labelledby="publish">'
            '<h2 id="publish">Publish</h2>'
            + _snippet("twine", f"twine upload --repository-url {base} dist/*")
            + _snippet("uv", f"uv publish --publish-url {base} --check-url {base}simple/ dist/*")
            + '</section>' if chrome.uploads else '')
        + '</div>'
    )
    return frame(chrome, root, chrome.title + " package index", main, search_box=False)


# -- logging in and out ---------------------------------------------------


def login_page(chrome: Chrome, *, error: str | None = None, user: str = "",
               next_path: str = "", sso_label: str | None = None, root: str = "") -> bytes:
    """
    C{/login}: the form a person logs in with (a user of C{[users]}, the
    htpasswd file or the directory), rather than the browser's own prompt;
    with single sign-on, a link to the provider above it.

    @param error: why the last try failed, shown above the form.
    @param user: the name tried, filled in again.
    @param next_path: the page to go to once logged in (a path of this site).
    @param sso_label: the provider's name (C{[sso] label}), or L{None} without one.
    @param root: the way back to the site's root (C{../} from C{/login/sso}).
    """
    problem = (f'<p class="notice" role="alert" id="login-error">{escape(error)}</p>'
               if error else "")
    described = ' aria-describedby="login-error"' if error else ""
    main = (
        '<section class="account" aria-labelledby="title"><h1 id="title">Log in</h1>'
        f'{problem}{_sso_link(root, sso_label, next_path)}'
        f'<form class="account-form" method="post" action="{escape(root)}login">'
        f'<input type="hidden" name="next" value="{escape(next_path)}">'
        f'<p><label for="user">User name</label>'
        f'<input id="user" name="user" type="text" autocomplete="username" required '
        f'maxlength="200" value="{escape(user)}"{described}></p>'
        f'<p><label for="password">Password</label>'
        f'<input id="password" name="password" type="password" '
        f'autocomplete="current-password" required maxlength="1024"></p>'
        f'<p><button type="submit">Log in</button></p></form>'
        '<p class="muted">Tools such as pip, uv and twine keep using a password or an API '
        'token; this page logs your browser in.</p></section>'
    )
    return frame(chrome, root, "Log in - " + chrome.title, main, search_box=False)


def _sso_link(root: str, label: str | None, next_path: str) -> str:
    """
    The way to single sign-on on the login page (a link: no script, no
    form), from the page's way back to the site's root, C{root}.
    """
    if label is None:
        return ""
    query = "?next=" + quote(next_path, safe="/") if next_path else ""
    return (f'<p class="sso"><a class="button" href="{escape(root)}login/sso{escape(query)}">'
            f'Log in with {escape(label)}</a></p><p class="muted">Or log in with a user name '
            'and password of this server:</p>')


def account_page(chrome: Chrome, user: str, csrf: str | None, *,
                 problem: str | None = None) -> bytes:
    """
    C{/login} and C{/logout} for a person logged in: who they are, and the
    form that logs them out (with their session's CSRF token); or, with
    no token, what went wrong as they logged out.
    """
    if csrf is None:
        main = (
            '<section class="account" aria-labelledby="title"><h1 id="title">Logged out</h1>'
            f'<p class="notice" role="alert">{escape(problem or "")}</p></section>'
        )
        return frame(chrome, "", "Logged out - " + chrome.title, main, search_box=False)
    main = (
        '<section class="account" aria-labelledby="title"><h1 id="title">Your session</h1>'
        f'<p>You are logged in as <strong>{escape(user)}</strong>.</p>'
        f'<form class="account-form" method="post" action="logout">'
        f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
        f'<p><button type="submit">Log out</button></p></form></section>'
    )
    return frame(chrome, "", "Your session - " + chrome.title, main, search_box=False)


# -- search ------------------------------------------------------------------------------


def search_page(chrome: Chrome, results: Results | None, versions: Mapping[str, str | None],
                root: str = "") -> bytes:
    """
    C{/search?q=}: one page of results.

    @param results: the L{pypid.core.formats.search.Results}, or L{None} for a page
        the script fills in (a static copy) or before any query.
    @param versions: C{{project: latest version}} of the projects shown.
    """
    query = results.query if results is not None else ""
    form = (
        f'<form class="search search-big" role="search" action="{escape(root + chrome.search)}" '
        f'method="get"><label for="q">Search projects by name or summary</label>'
        f'<input id="q" name="q" type="search" value="{escape(query)}" autocomplete="off" '
        f'maxlength="200" data-suggest="{escape(root + chrome.suggest)}" '
        f'data-results="results"><button type="submit">Search</button></form>'
    )
    if results is None or not results.query:
        body = ('<div id="results" aria-live="polite">'
                '<p class="muted">Type part of a project\'s name, or words of its summary.</p>'
                '</div>')
        if chrome.suggest.endswith(".json"):
            body += ('<noscript><p>Searching this copy of the index needs JavaScript; '
                     f'the <a href="{escape(root)}simple/">simple index</a> lists every '
                     'project.</p></noscript>')
        title = "Search"
    else:
        count = ('1 project matches' if results.total == 1
                 else f'{results.total} projects match')
        items = "".join(_hit(hit.entry, versions.get(hit.entry.project), root)
                        for hit in results.hits)
        body = (f'<div id="results" aria-live="polite"><p class="count" role="status">'
                f'{count} \N{LEFT DOUBLE QUOTATION MARK}{escape(results.query)}'
                f'\N{RIGHT DOUBLE QUOTATION MARK}</p>'
                f'<ol class="results">{items}</ol>{_pager(chrome, results, root)}</div>')
        title = f"{results.query} - Search"
    main = f'<h1>Search</h1>{form}{body}'
    return frame(chrome, root, f"{title} - {chrome.title}", main, search_box=False)


def _hit(entry: SearchEntry, version: str | None, root: str) -> str:
    summary = f'<p>{escape(entry.summary)}</p>' if entry.summary else ""
    version_html = f' <span class="version">{escape(version)}</span>' if version else ""
    return (f'<li><a href="{escape(root)}project/{quote(entry.project)}/">'
            f'{escape(entry.display_name)}</a>{version_html}{summary}</li>')


def _pager(chrome: Chrome, results: Results, root: str) -> str:
    """Previous and next links, and the page numbers around this one."""
    if results.pages <= 1:
        return ""
    q = quote(results.query, safe="")
    link = f"{escape(root + chrome.search)}?q={q}&amp;page="
    parts = []
    if results.page > 1:
        parts.append(f'<a rel="prev" href="{link}{results.page - 1}">Previous</a>')
    first = max(1, results.page - 3)
    for n in range(first, min(results.pages, first + 6) + 1):
        if n == results.page:
            parts.append(f'<span aria-current="page">{n}</span>')
        else:
            parts.append(f'<a href="{link}{n}">{n}</a>')
    if results.page < results.pages:
        parts.append(f'<a rel="next" href="{link}{results.page + 1}">Next</a>')
    return f'<nav class="pager" aria-label="Result pages">{" ".join(parts)}</nav>'


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
    """
    The notice a release's page shows when advisories affect it: each
    advisory (its identifier linked, its severity, aliases, summary and
    the versions that fix it), and what the index does about it.
    """
    if verdict is None:
        return ""
    items = []
    for advisory in verdict.advisories:
        ident = (_http_link(advisory.link, advisory.id) if advisory.link
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
    """
    C{/project/<name>/} (about the latest version) or
    C{/project/<name>/<version>/}.

    @param root: the way back to the site's root: C{../../} or C{../../../}.
    """
    current, details = view.current, view.details
    name_q = quote(view.name)
    summary = (details.get("summary") if details is not None else None) or view.summary
    badges = []
    if current.prerelease:
        badges.append('<span class="badge badge-pre">pre-release</span>')
    if current.yanked is not None:
        reason = f": {escape(current.yanked)}" if current.yanked else ""
        badges.append(f'<span class="badge badge-yanked">yanked{reason}</span>')
    if view.latest is not None and current.version != view.latest:
        badges.append(f'<span class="badge">the latest version is '
                      f'<a href="{escape(root)}project/{name_q}/">{escape(view.latest)}</a>'
                      f'</span>')
    upstream = ""
    if view.upstream is not None:
        upstream = (
            '<p class="notice" role="note">This project is not hosted here: it is what '
            "this index's cache knows of it from the upstream index, as listed there "
            f"on {_when(view.upstream)}.</p>"
        )
    base = _base(chrome)
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
        + _snippet("pip", f"pip install --index-url {base}simple/ {escape(pin)}")
        + _snippet("uv", f"uv add --index {base}simple/ {escape(pin)}")
        + '</section>'
    )
    if details is not None and details.html:
        fell_back = ('<p class="muted">This description did not render as its content type '
                     'asks; it is shown as plain text.</p>') if details.fell_back else ""
        description = (f'<article class="description" aria-labelledby="about">'
                       f'<h2 id="about" class="visually-hidden">Description</h2>'
                       f'{fell_back}{details.html}</article>')
    else:
        if view.pending:
            why = "The description is being prepared: reload the page in a moment."
        elif view.upstream is not None:
            why = "This index has not fetched a file of this version from the upstream yet."
        else:
            why = "This version has no description."
        description = (f'<article class="description" aria-labelledby="about">'
                       f'<h2 id="about" class="visually-hidden">Description</h2>'
                       f'<p class="muted">{why}</p></article>')
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
        row("Links", "<ul>" + "".join(f"<li>{_http_link(url, label)}</li>"
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
        yanked = ""
        if f.yanked is not None and view.current.yanked is None:
            reason = f": {escape(f.yanked)}" if f.yanked else ""
            yanked = f' <span class="badge badge-yanked">yanked{reason}</span>'
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
            f'{escape(f.filename)}</a>{yanked}</td><td>{kind}</td><td>{_size(f.size)}</td>'
            f'<td>{_when(f.upload_time)}</td><td>{who}</td>'
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


@functools.lru_cache(maxsize=1 << 16)
def _quoted(text: str) -> str:
    """C{quote(text)}, remembered: every version page lists every version."""
    return quote(text)


#: The newest releases every page's history lists, and how many on either
#: side of the page's own release: a project of thousands of versions
#: would otherwise give each of its pages the whole list, and the static
#: export the square of it (1,200 versions made 188 MB).
HISTORY_NEWEST = 20
HISTORY_AROUND = 20


def history_shown(count: int, current: int, latest: int | None) -> list[int | tuple[int, int]]:
    """
    The entries a page's history shows, in order: the index of a release
    shown, or C{(start, end)} for a run of releases left out (the page
    links into it, so that every release is a few clicks away).

    @param count: how many releases there are (newest first).
    @param current: the index of the page's release.
    @param latest: the index of the latest release, or L{None}.
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
            reason = f": {escape(r.yanked)}" if r.yanked else ""
            marks.append(f'<span class="badge badge-yanked">yanked{reason}</span>')
        verdict = view.advisories.get(r.version)
        if verdict is not None:
            marks.append(f'<span class="badge badge-vulnerable">vulnerable: '
                         f'{escape(", ".join(verdict.ids))}</span>')
        current_mark = ' aria-current="page"' if r is view.current else ""
        items.append(
            f'<li><a href="{escape(root)}project/{name_q}/{_quoted(r.version)}/"'
            f'{current_mark}>{escape(r.version)}</a> {_when(r.uploaded)} {" ".join(marks)}</li>'
        )
    return ('<section aria-labelledby="history"><h2 id="history">Release history</h2>'
            f'<ol class="releases">{"".join(items)}</ol></section>')


def search_entry_json(entry: SearchEntry, version: str | None) -> dict[str, str | None]:
    """One project as the script's results list shows it (JSON-ready; its url from the root)."""
    return {"name": entry.project, "display_name": entry.display_name,
            "summary": entry.summary, "version": version,
            "url": project_path(entry.project)}


def project_path(name: str, version: str | None = None) -> str:
    """A project's (or a version's) page, from the site's root."""
    path = f"project/{quote(normalize(name))}/"
    return path + f"{quote(version)}/" if version is not None else path
