"""
The pages for people as HTML: the frame every page shares (L{Chrome},
L{frame}), the landing page, logging in and out, and search results.

Every link is relative to the page (C{root} is the way back to the site's
root from it), so the same pages work behind any proxy path, from a static
copy, and never depend on the request's C{Host}. An install snippet needs an
absolute URL: the configured base URL, or else the page's script writes the
browser's own origin into it (the server cannot trust a C{Host} header).

Everything shown comes from uploaders and is escaped. Pages carry no inline
script or style, so they work under a Content-Security-Policy of
C{script-src 'self'; style-src 'self'}.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Iterable, Mapping
from html import escape
from typing import Protocol
from urllib.parse import quote

import attrs

from pypid.core.dists.names import normalize
from pypid.core.formats.search import Results, SearchEntry
from pypid.core.indexes.index_names import DEFAULT
from pypid.core.indexes.render import ComposedFile
from pypid.core.util.units import counted


class ShownFile(ComposedFile, Protocol):
    """
    What the pages for people show of a file: a L{ComposedFile} and its
    kind; a C{summary} and an C{uploader}, where a file has them, too.
    """

    @property
    def packagetype(self) -> str: ...


@attrs.frozen
class IndexLink:
    """One index in the switcher of the pages for people, and whether it is a view."""

    name: str
    view: bool = False


@attrs.frozen
class Chrome:
    """
    What every page shares: where its assets are (C{css}, C{js}, C{icon},
    from the site's root) and how search and snippets reach the server.

    @ivar base_url: the absolute URL of the site's root for snippets, or
        L{None} to let the script fill in the browser's origin.
    @ivar files_url: the absolute URL files are linked under, or L{None}
        for C{files/} under the site's root.
    @ivar suggest: where the script finds results as one types, from the
        root: a URL it asks, or a C{.json} list of every project it
        searches itself (a static copy's).
    @ivar login: the path from the root that asks a browser for
        credentials, or L{None} (a static copy).
    @ivar site: the way from the index's root to the site's root: C{""} for
        the default index, C{"../"} for a named one.
    @ivar indexes: the index switcher's entries, the default first; empty:
        no switcher.
    @ivar uploads: whether the index takes uploads (else no publishing snippets).
    @ivar person: the user a browser session stands for (the header offers
        to log out rather than in).
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


# -- formatting ------------------------------------------------------------------------


@functools.lru_cache(maxsize=1 << 16)
def when(timestamp: float | None) -> str:
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


def size(size: int | None) -> str:
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


def http_link(url: str, text: str) -> str:
    """A link for a URL from metadata: only http and https become links."""
    if url.lower().startswith(("https://", "http://")):
        return f'<a href="{escape(url)}" rel="nofollow noopener noreferrer">{escape(text)}</a>'
    return escape(text)


def snippet_base(chrome: Chrome) -> str:
    """The site's absolute root in a snippet, or the element the script fills in."""
    if chrome.base_url:
        return escape(chrome.base_url)
    return '<span data-base="">http://&lt;this server&gt;/</span>'


def snippet(label: str, text_html: str) -> str:
    return (f'<div class="snippet"><p class="snippet-label">{label}</p>'
            f'<pre data-copy=""><code>{text_html}</code></pre></div>')


# -- the frame -------------------------------------------------------------------------


def frame(chrome: Chrome, root: str, title: str, main: str, *, search_box: bool = True) -> bytes:
    """A whole page around C{main}: head, header with search, footer."""
    search = ""
    if search_box:
        search = (
            f'<form class="search" role="search" action="{escape(root + chrome.search)}" '
            f'method="get"><label class="visually-hidden" for="q">Search projects</label>'
            f'<input id="q" name="q" type="search" value="" '
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
    """The index switcher: a link to each index the reader may read; nothing without entries."""
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
    """C{/}: what this index holds for the reader, its latest uploads, and how to use it."""
    root = ""
    rows = "".join(
        f'<tr><td><a href="project/{quote(u.project)}/">{escape(u.display_name)}</a></td>'
        f'<td><a href="project/{quote(u.project)}/{quote(u.version)}/">{escape(u.version)}</a></td>'
        f'<td>{escape(u.uploader) if u.uploader else "<span class=muted>imported</span>"}</td>'
        f'<td>{when(u.upload_time)}</td></tr>'
        for u in recent
    )
    uploads = (
        '<table class="uploads"><caption class="visually-hidden">Recent uploads</caption>'
        '<thead><tr><th scope="col">Project</th><th scope="col">Version</th>'
        '<th scope="col">By</th><th scope="col">When</th></tr></thead>'
        f'<tbody>{rows}</tbody></table>'
    ) if rows else '<p class="muted">Nothing has been uploaded yet.</p>'
    base = snippet_base(chrome)
    main = (
        '<section class="hero" aria-labelledby="title">'
        f'<h1 id="title">Python packages</h1>'
        f'<p class="lead">{counted(projects, "project")}, {counted(files, "file")} '
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
        + snippet("pip", f"pip install --index-url {base}simple/ PROJECT")
        + snippet("uv", f"uv pip install --index-url {base}simple/ PROJECT")
        + snippet("uv, in a project", f"uv add --index {base}simple/ PROJECT")
        + '</section>' + (
            '<section class="howto" aria-labelledby="publish">'
            '<h2 id="publish">Publish</h2>'
            + snippet("twine", f"twine upload --repository-url {base} dist/*")
            + snippet("uv", f"uv publish --publish-url {base} --check-url {base}simple/ dist/*")
            + '</section>' if chrome.uploads else '')
        + '</div>'
    )
    return frame(chrome, root, chrome.title + " package index", main, search_box=False)


# -- logging in and out ---------------------------------------------------


def login_page(chrome: Chrome, *, error: str | None = None, user: str = "",
               next_path: str = "", sso_label: str | None = None, root: str = "") -> bytes:
    """
    C{/login}: the form a person logs in with, rather than the browser's
    own prompt; with single sign-on (C{sso_label}), a link to the provider above it.

    @param error: why the last try failed, shown above the form.
    @param user: the name tried, filled in again.
    @param next_path: the page to go to once logged in (a path of this site).
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
    """The way to single sign-on on the login page (a link: no script, no form)."""
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
    form that logs them out; without a CSRF token, what went wrong.
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
    C{/search?q=}: one page of C{results} (L{None}: a page the script fills
    in, or before any query); C{versions}: each shown project's latest.
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
    parts += [f'<span aria-current="page">{n}</span>' if n == results.page
              else f'<a href="{link}{n}">{n}</a>'
              for n in range(first, min(results.pages, first + 6) + 1)]
    if results.page < results.pages:
        parts.append(f'<a rel="next" href="{link}{results.page + 1}">Next</a>')
    return f'<nav class="pager" aria-label="Result pages">{" ".join(parts)}</nav>'


def search_entry_json(entry: SearchEntry, version: str | None) -> dict[str, str | None]:
    """One project as the script's results list shows it (JSON-ready; its url from the root)."""
    return {"name": entry.project, "display_name": entry.display_name,
            "summary": entry.summary, "version": version,
            "url": project_path(entry.project)}


def project_path(name: str, version: str | None = None) -> str:
    """A project's (or a version's) page, from the site's root."""
    path = f"project/{quote(normalize(name))}/"
    return path + f"{quote(version)}/" if version is not None else path
