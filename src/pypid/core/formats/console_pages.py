"""
The console's pages: what a person logged in to the pages can
do there, drawn like the pages for people (L{pypid.core.formats.pages}: no
external assets, no script needed, every form a plain HTML form carrying
the session's CSRF token).

Pure: each function takes what it shows and returns the page's bytes.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import urlencode

from pypid.core.formats.pages import Chrome, frame
from pypid.core.indexes.index_names import DEFAULT
from pypid.core.indexes.model import FileRecord
from pypid.core.indexes.project_status import STATUSES, ProjectStatus

#: The lifetimes a token may be issued for on the form: (field value,
#: label, whether a person from outside may pick it: their tokens expire
#: within L{pypid.core.access.outside_logins.MAX_OUTSIDE_TOKEN_LIFETIME}).
LIFETIMES = (("30d", "30 days", True), ("7d", "7 days", True), ("90d", "90 days", True),
             ("365d", "1 year", False), ("", "never", False))

#: The scopes of actions offered: (field value, label).
ACTIONS = (("read", "read (install)"), ("upload", "upload (publish)"),
           ("read upload", "read and upload"))


def _when(seconds: object) -> str:
    """A POSIX time as the console shows it (C{2026-01-31 12:00 UTC}), or "never"."""
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        return "never"
    try:
        moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return "never"
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _csrf(csrf: str) -> str:
    return f'<input type="hidden" name="csrf" value="{escape(csrf)}">'


def _options(choices: Iterable[tuple[str, str]], chosen: str) -> str:
    return "".join(
        f'<option value="{escape(value)}"{" selected" if value == chosen else ""}>'
        f'{escape(label)}</option>' for value, label in choices)


def _nav(root: str, admin: bool = False) -> str:
    links = [("console/", "Console"), ("console/tokens", "My tokens")]
    if admin:
        links += [("console/indexes", "Indexes"),
                  ("console/advisories", "Advisories"), ("console/retention", "Retention"),
                  ("console/recycle-bin", "Recycle bin"), ("console/audit", "Audit log"),
                  ("console/groups", "Groups")]
    return ('<nav aria-label="Console"><ul class="console-nav">'
            + "".join(f'<li><a href="{escape(root + path)}">{escape(label)}</a></li>'
                      for path, label in links)
            + "</ul></nav>")


def console_page(chrome: Chrome, person: str, *, root: str = "../",
                 admin: bool = False) -> bytes:
    """C{/console/}: what the person can manage here."""
    main = (
        '<section class="console" aria-labelledby="title"><h1 id="title">Console</h1>'
        f'<p>Logged in as <strong>{escape(person)}</strong>.</p>{_nav(root, admin)}'
        '<h2 id="manage">A project</h2>'
        f'<form class="console-form" method="get" action="{escape(root)}console/project" '
        'aria-labelledby="manage">'
        '<p><label for="project">Project name</label><input id="project" name="name" '
        'type="text" maxlength="200" required></p>'
        '<p><label for="index">Index (empty: the default)</label><input id="index" '
        'name="index" type="text" maxlength="63"></p>'
        '<p><button type="submit">Manage</button></p></form>'
        '<p class="muted">What you do here is done as the API does it, as you, and kept in '
        'the audit log.</p></section>'
    )
    return frame(chrome, root, "Console - " + chrome.title, main, search_box=False)


def tokens_page(chrome: Chrome, person: str, csrf: str, tokens: Sequence[Mapping[str, Any]],
                *, root: str = "../", admin: bool = False,
                issued: tuple[str, Mapping[str, Any]] | None = None,
                error: str | None = None, fields: Mapping[str, str] | None = None,
                outside: bool = False, index_url: str = "") -> bytes:
    """
    C{/console/tokens}: the person's API tokens (an admin's: everyone's),
    the form that issues one, and a button per token that revokes it.

    @param tokens: the records as C{GET /api/tokens} lists them.
    @param issued: C{(token string, record)} of the token just issued,
        shown this once.
    @param error: why the last action was refused.
    @param fields: the form's fields as sent, to fill it in again.
    @param outside: whether the person logs in from outside (their tokens
        must expire: "never" is not offered).
    @param index_url: the simple index's URL, for the example of use.
    @param root: the way back to the site's root from the page's URL.
    """
    fields = fields or {}
    parts = ['<section class="console" aria-labelledby="title"><h1 id="title">My tokens</h1>',
             _nav(root, admin)]
    if error:
        parts.append(f'<p class="notice" role="alert" id="console-error">{escape(error)}</p>')
    if issued is not None:
        text, record = issued
        parts.append(
            '<section class="notice" aria-labelledby="issued" role="status">'
            f'<h2 id="issued">Token {escape(str(record.get("id", "")))} issued</h2>'
            '<p>Copy it now: it is not shown again.</p>'
            f'<code class="secret" id="new-token">{escape(text)}</code>'
            '<p>Use it as the password of the user <code>__token__</code>, for example '
            f'<code>uv pip install --index-url https://__token__:&lt;token&gt;@'
            f'{escape(index_url or "<this server>/simple/")} &lt;project&gt;</code>.</p>'
            '</section>')
    parts.append('<h2>Tokens</h2>')
    if tokens:
        rows = []
        for record in tokens:
            token_id = str(record.get("id", ""))
            projects = " ".join(record.get("projects") or ()) or "every project"
            indexes = " ".join(record.get("indexes") or ()) or "every index"
            owner = (f'<td>{escape(str(record.get("user", "")))}</td>' if admin else "")
            if record.get("minted"):
                what = "minted by trusted publishing"
            else:
                what = escape(str(record.get("description", "")))
            rows.append(
                f'<tr><td><code>{escape(token_id)}</code></td>{owner}'
                f'<td>{escape(" ".join(record.get("actions") or ()))}</td>'
                f'<td>{escape(projects)}</td><td>{escape(indexes)}</td>'
                f'<td>{escape(_when(record.get("expires")))}</td><td>{what}</td>'
                f'<td><form class="inline-form" method="post" '
                f'action="{escape(root)}console/tokens/{escape(token_id)}/revoke">'
                f'{_csrf(csrf)}<button type="submit" class="danger" '
                f'aria-label="Revoke token {escape(token_id)}">Revoke</button></form></td></tr>')
        owner_head = "<th scope=\"col\">User</th>" if admin else ""
        parts.append(
            '<div class="table-scroll"><table class="tokens"><caption class="visually-hidden">'
            'Your API tokens</caption><thead><tr><th scope="col">Id</th>' + owner_head
            + '<th scope="col">Actions</th><th scope="col">Projects</th>'
            '<th scope="col">Indexes</th><th scope="col">Expires</th>'
            '<th scope="col">Description</th><th scope="col"><span class="visually-hidden">'
            'Revoke</span></th></tr></thead><tbody>' + "".join(rows)
            + '</tbody></table></div>')
    else:
        parts.append('<p class="muted">You have no tokens.</p>')
    lifetimes = [(value, label) for value, label, anyone in LIFETIMES if anyone or not outside]
    described = ' aria-describedby="console-error"' if error else ""
    parts.append(
        '<h2 id="issue">Issue a token</h2>'
        f'<form class="console-form" method="post" action="{escape(root)}console/tokens" '
        'aria-labelledby="issue">' + _csrf(csrf)
        + '<p><label for="description">Description</label>'
        '<input id="description" name="description" type="text" maxlength="200" '
        f'value="{escape(fields.get("description", ""))}"{described}></p>'
        '<p><label for="actions">Actions</label><select id="actions" name="actions">'
        + _options(ACTIONS, fields.get("actions", "read")) + '</select></p>'
        '<p><label for="projects">Projects (names or globs; empty: every project)</label>'
        '<input id="projects" name="projects" type="text" maxlength="1000" '
        f'value="{escape(fields.get("projects", ""))}"></p>'
        '<p><label for="indexes">Indexes (empty: every index)</label>'
        '<input id="indexes" name="indexes" type="text" maxlength="1000" '
        f'value="{escape(fields.get("indexes", ""))}"></p>'
        '<p><label for="expires">Expires after</label><select id="expires" name="expires">'
        + _options(lifetimes, fields.get("expires", "30d")) + '</select></p>'
        '<p><button type="submit">Issue token</button></p></form>')
    parts.append('</section>')
    return frame(chrome, root, "My tokens - " + chrome.title, "".join(parts), search_box=False)


def _size(size: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return f"{size}"


def project_page(chrome: Chrome, person: str, csrf: str, project: str, display: str,
                 releases: Sequence[tuple[str, Sequence[FileRecord]]],
                 binned: Sequence[FileRecord], *, index: str, status: ProjectStatus | None,
                 admin: bool, recycles: bool, root: str = "../../../",
                 error: str | None = None, notice: str | None = None,
                 targets: Sequence[str] = (), chart: str | None = None,
                 trail: Sequence[Mapping[str, Any]] | None = None,
                 advisories: Mapping[str, Any] | None = None) -> bytes:
    """
    C{/console/project/<name>/}: a project for one who may change it. Its
    files by release, each with the buttons that yank (with a reason) or
    unyank it and delete it; its files in the recycle bin, each with the
    button that restores it; and, for admins, the form that sets its
    status (PEP 792).

    @param releases: C{(version, files)}, newest first.
    @param binned: its files in the recycle bin.
    @param index: the index's name (the forms name it, C{default} included).
    @param recycles: whether the index has a recycle bin (a delete can be undone).
    @param notice: what the last action did.
    @param targets: the indexes a release may be promoted to (none: no form).
    @param chart: its downloads per release and per day
        (L{pypid.core.formats.charts.downloads_chart}), or L{None} when not counted.
    @param trail: its newest audit entries in the index, or L{None}.
    @param advisories: what C{GET /api/advisories/project/<p>} answered
        (the advisories affecting its releases, the waivers kept), or
        L{None} when the server reads none.
    """
    base = f"{root}console/project/{project}/"
    query = "" if index == DEFAULT else "?index=" + index

    def action(filename: str, verb: str, label: str, extra: str = "",
               danger: bool = False) -> str:
        kind = ' class="danger"' if danger else ""
        return (f'<form class="inline-form" method="post" '
                f'action="{escape(base + "files/" + filename + "/" + verb + query)}">'
                f'{_csrf(csrf)}{extra}<button type="submit"{kind} '
                f'aria-label="{escape(label)} {escape(filename)}">{escape(label)}</button></form>')

    parts = [f'<section class="console" aria-labelledby="title"><h1 id="title">'
             f'{escape(display)}</h1>', _nav(root, admin),
             f'<p>In the index <strong>{escape(index)}</strong>. '
             f'<a href="{escape(root + ("" if index == DEFAULT else index + "/"))}project/'
             f'{escape(project)}/">Its page</a>.</p>']
    if error:
        parts.append(f'<p class="notice" role="alert" id="console-error">{escape(error)}</p>')
    if notice:
        parts.append(f'<p class="notice" role="status" id="console-notice">{escape(notice)}</p>')
    shown = status.status if status is not None else "active"
    reason = f": {status.reason}" if status is not None and status.reason else ""
    parts.append(f'<h2>Status</h2><p id="status">{escape(shown + reason)}</p>')
    if admin:
        parts.append(
            f'<form class="console-form" method="post" action="{escape(base + "status" + query)}"'
            ' aria-label="Set the status">' + _csrf(csrf)
            + '<p><label for="status-choice">Status</label><select id="status-choice" '
            'name="status">' + _options([(s, s) for s in STATUSES], shown) + '</select></p>'
            '<p><label for="status-reason">Reason</label><input id="status-reason" '
            'name="reason" type="text" maxlength="200"></p>'
            '<p><button type="submit">Set the status</button></p></form>')
    parts.append('<h2>Releases</h2>')
    if not releases:
        parts.append('<p class="muted">No files.</p>')
    for version, files in releases:
        rows = []
        for record in files:
            filename = record.filename
            if record.yanked is not None:
                state = "yanked" + (f": {record.yanked}" if record.yanked else "")
                yank = action(filename, "unyank", "Unyank")
            else:
                state = ""
                yank = action(filename, "yank", "Yank", extra=(
                    f'<label class="visually-hidden" for="reason-{escape(filename)}">Reason to '
                    f'yank {escape(filename)}</label><input id="reason-{escape(filename)}" '
                    'name="reason" type="text" maxlength="200" placeholder="reason">'))
            rows.append(
                f'<tr><td><code>{escape(filename)}</code></td><td>{escape(_size(record.size))}'
                f'</td><td>{escape(_when(record.upload_time))}</td>'
                f'<td>{escape(record.uploader or "")}</td><td>{escape(state)}</td>'
                f'<td>{yank} {action(filename, "delete", "Delete", danger=True)}</td></tr>')
        parts.append(
            f'<h3>{escape(version)}</h3><div class="table-scroll"><table class="files">'
            '<thead><tr><th scope="col">File</th><th scope="col">Size</th>'
            '<th scope="col">Uploaded</th><th scope="col">By</th><th scope="col">Yanked</th>'
            '<th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>'
            '<tbody>' + "".join(rows) + '</tbody></table></div>')
    if advisories is not None:
        parts.append(_advisories_section(advisories, base + "waive" + query,
                                         base + "unwaive" + query, csrf, admin))
    if chart is not None:
        parts.append('<h2>Downloads</h2>' + chart)
    if releases and targets:
        parts.append(
            '<h2 id="promote">Promote a release</h2>'
            f'<form class="console-form" method="post" action="{escape(base + "promote" + query)}"'
            ' aria-labelledby="promote">' + _csrf(csrf)
            + '<p><label for="promote-version">Release</label><select id="promote-version" '
            'name="version">' + _options([(v, v) for v, _ in releases], releases[0][0])
            + '</select></p><p><label for="promote-to">To the index</label><select '
            'id="promote-to" name="to">' + _options([(t, t) for t in targets], targets[0])
            + '</select></p>'
            + ('<p><label><input type="checkbox" name="allow_denied" value="true"> Even if '
               'its advisories deny it</label></p>' if admin else "")
            + '<p><button type="submit">Promote</button></p></form>')
    if recycles:
        parts.append('<h2>Recycle bin</h2>')
        if binned:
            parts.append(
                '<div class="table-scroll"><table class="files"><thead><tr>'
                '<th scope="col">File</th><th scope="col">Deleted</th>'
                '<th scope="col"><span class="visually-hidden">Restore</span></th></tr></thead>'
                '<tbody>' + "".join(
                    f'<tr><td><code>{escape(record.filename)}</code></td>'
                    f'<td>{escape(_when(record.binned))}</td>'
                    f'<td>{action(record.filename, "restore", "Restore")}</td></tr>'
                    for record in binned) + '</tbody></table></div>')
        else:
            parts.append('<p class="muted">No file of this project is in the recycle bin.</p>')
    else:
        parts.append('<p class="muted">This index has no recycle bin: a deleted file is gone '
                     'for good.</p>')
    if trail is not None:
        parts.append('<h2>Audit trail</h2>')
        columns = [c for c in AUDIT_COLUMNS if c[0] not in ("project", "index", "address")]
        if trail:
            parts.append(_audit_table(list(reversed(trail)), columns))
        else:
            parts.append('<p class="muted">No entries.</p>')
    parts.append('</section>')
    return frame(chrome, root, f"{display} - Console - {chrome.title}", "".join(parts),
                 search_box=False)


#: How the project page says where the index stands on an advisory.
STANDINGS = {"acted": "acted on", "configured": "waived by the configuration",
             "waived": "waived", "below-severity": "below the index's severity",
             "off": "the index acts on no advisory"}


def _advisories_section(report: Mapping[str, Any], waive: str, unwaive: str, csrf: str,
                        admin: bool) -> str:
    """
    The project page's advisories: each affected release with its
    advisories and where the index stands on each, the waivers kept, and
    for admins the buttons that waive an advisory for the project and
    remove a waiver (C{/api/advisories/waivers}'s own code).
    """
    parts = ['<h2 id="advisories">Advisories</h2>',
             f'<p>This index is in the mode <strong>{escape(str(report.get("mode")))}</strong>'
             + (f' from the severity {escape(str(report["severity"]))}'
                if report.get("severity") else "") + '.</p>']
    releases = report.get("releases") or []
    if not releases:
        parts.append('<p class="muted">No advisory affects a release of this project.</p>')
    rows = []
    for release in releases:
        for advisory in release["advisories"]:
            ident = str(advisory["id"])
            link = advisory.get("link")
            name = (f'<a href="{escape(link)}">{escape(ident)}</a>'
                    if isinstance(link, str) and link.startswith("https://") else escape(ident))
            standing = str(advisory["standing"])
            button = ""
            if admin and standing in ("acted", "below-severity"):
                field = f"waive-{escape(release['version'])}-{escape(ident)}"
                button = (
                    f'<form class="inline-form" method="post" action="{escape(waive)}">'
                    + _csrf(csrf)
                    + f'<input type="hidden" name="advisory" value="{escape(ident)}">'
                    f'<label class="visually-hidden" for="{field}">Reason to waive '
                    f'{escape(ident)}</label><input id="{field}" name="reason" type="text" '
                    'maxlength="200" placeholder="reason">'
                    f'<button type="submit" aria-label="Waive {escape(ident)}">Waive</button>'
                    '</form>')
            rows.append(
                f'<tr><td>{escape(release["version"])}</td><td>{name}</td>'
                f'<td>{escape(str(advisory.get("severity") or "unknown"))}</td>'
                f'<td>{escape(str(advisory.get("summary") or ""))}</td>'
                f'<td>{escape(STANDINGS.get(standing, standing))}</td><td>{button}</td></tr>')
    if rows:
        parts.append(
            '<div class="table-scroll"><table class="files"><thead><tr>'
            '<th scope="col">Release</th><th scope="col">Advisory</th>'
            '<th scope="col">Severity</th><th scope="col">Summary</th>'
            '<th scope="col">Here</th>'
            '<th scope="col"><span class="visually-hidden">Waive</span></th></tr></thead>'
            '<tbody>' + "".join(rows) + '</tbody></table></div>')
    kept = report.get("waivers") or []
    if kept:
        parts.append('<h3>Waivers kept</h3><div class="table-scroll"><table class="files">'
                     '<thead><tr><th scope="col">Waives</th><th scope="col">Reason</th>'
                     '<th scope="col">By</th><th scope="col">When</th>'
                     '<th scope="col"><span class="visually-hidden">Remove</span></th>'
                     '</tr></thead><tbody>')
        for waiver in kept:
            advisory, version = waiver.get("advisory"), waiver.get("version")
            what = (str(advisory) if advisory else f"every advisory of {version}")
            key, value = ("advisory", advisory) if advisory else ("version", version)
            button = (
                f'<form class="inline-form" method="post" action="{escape(unwaive)}">'
                + _csrf(csrf)
                + f'<input type="hidden" name="{key}" value="{escape(str(value))}">'
                f'<button type="submit" aria-label="Unwaive {escape(what)}">Unwaive</button>'
                '</form>') if admin else ""
            parts.append(
                f'<tr><td>{escape(what)}</td><td>{escape(str(waiver.get("reason") or ""))}</td>'
                f'<td>{escape(str(waiver.get("by") or ""))}</td>'
                f'<td>{escape(_when(waiver.get("at")))}</td><td>{button}</td></tr>')
        parts.append('</tbody></table></div>')
    return "".join(parts)


def retention_page(chrome: Chrome, person: str, csrf: str,
                   plans: Sequence[Mapping[str, Any]], *, root: str = "../",
                   applied: Mapping[str, Any] | None = None, error: str | None = None) -> bytes:
    """
    C{/console/retention} (admins): each hosted index's retention plan as
    C{GET /api/retention} makes it now (a dry run: what would go, why, and
    the bytes it frees), with a button that applies that plan, the very
    files shown, into the index's recycle bin.

    @param plans: the C{indexes} of C{GET /api/retention}.
    @param applied: what C{POST /api/retention/apply} answered, to say.
    """
    parts = ['<section class="console" aria-labelledby="title"><h1 id="title">Retention</h1>',
             _nav(root, True)]
    if error:
        parts.append(f'<p class="notice" role="alert" id="console-error">{escape(error)}</p>')
    if applied is not None:
        removed = applied.get("removed") or []
        skipped = applied.get("skipped") or []
        parts.append(
            '<p class="notice" role="status" id="console-notice">'
            f'{escape(str(applied.get("index", "")))}: {len(removed)} '
            f'file{"s" if len(removed) != 1 else ""} moved to the recycle bin '
            f'({escape(_size(int(applied.get("bytes") or 0)))})'
            + (f", {len(skipped)} skipped (the plan changed)" if skipped else "") + '.</p>')
    for plan in plans:
        index = str(plan.get("index", ""))
        releases = plan.get("releases") or []
        kept = plan.get("kept") or {}
        rules = plan.get("rules") or {}
        parts.append(f'<h2 id="plan-{escape(index)}">{escape(index)}</h2>')
        parts.append('<p class="muted">Rules: ' + escape(", ".join(
            f"{key} {value}" for key, value in rules.items() if value not in (None, [], 0)))
            + '. Kept: ' + escape(", ".join(f"{n} {key}" for key, n in kept.items()))
            + f'. Deleted files wait {escape(str(plan.get("recycle_bin", "")))} s in the '
            'recycle bin.</p>')
        if not releases:
            parts.append('<p>Nothing to remove now.</p>')
            continue
        rows = "".join(
            f'<tr><td>{escape(str(r.get("project", "")))}</td>'
            f'<td>{escape(str(r.get("version", "")))}</td>'
            f'<td>{escape(str(r.get("reason", "")))}</td>'
            f'<td>{escape(_size(int(r.get("bytes") or 0)))}</td>'
            f'<td>{len(r.get("files") or [])}</td></tr>' for r in releases)
        files = "".join(f'<input type="hidden" name="files" value="{escape(str(f["filename"]))}">'
                        for r in releases for f in (r.get("files") or []))
        parts.append(
            '<div class="table-scroll"><table class="files"><thead><tr>'
            '<th scope="col">Project</th><th scope="col">Release</th><th scope="col">Why</th>'
            '<th scope="col">Size</th><th scope="col">Files</th></tr></thead><tbody>'
            + rows + '</tbody></table></div>'
            f'<form method="post" action="{escape(root)}console/retention/apply">'
            + _csrf(csrf) + f'<input type="hidden" name="index" value="{escape(index)}">'
            + files + f'<p><button type="submit">Apply the plan of {escape(index)} '
            f'({escape(_size(int(plan.get("bytes") or 0)))})</button></p></form>')
    parts.append('</section>')
    return frame(chrome, root, "Retention - Console - " + chrome.title, "".join(parts),
                 search_box=False)


#: The filters of the audit page: (field, label).
AUDIT_FILTERS = (("project", "Project"), ("user", "User"), ("event", "Event"),
                 ("index", "Index"), ("since", "Since (ISO 8601, UTC)"))

#: The columns of the audit page: (entry field, heading).
AUDIT_COLUMNS = (("time", "Time"), ("event", "Event"), ("outcome", "Outcome"),
                 ("user", "User"), ("index", "Index"), ("project", "Project"),
                 ("version", "Version"), ("filename", "File"), ("target", "Target"),
                 ("detail", "Detail"), ("address", "Address"))


def audit_page(chrome: Chrome, person: str, page: Mapping[str, Any],
               filters: Mapping[str, str], *, root: str = "../",
               check: Mapping[str, Any] | None = None) -> bytes:
    """
    C{/console/audit} (admins): the audit log's entries as C{GET
    /api/audit} gives them, filtered by the form, newest last, with links
    to the older and the following pages; and, asked for, what checking
    every chain found (C{GET /api/audit/verify}).

    @param page: the answer of C{GET /api/audit} (C{entries}, C{next}, C{before}).
    @param filters: the filters as asked (to fill the form and the links in).
    @param check: the answer of C{GET /api/audit/verify}, or L{None}.
    """
    base = f"{root}console/audit"
    kept = {name: value for name, value in filters.items() if value and name != "since"}
    parts = ['<section class="console" aria-labelledby="title"><h1 id="title">Audit log</h1>',
             _nav(root, True)]
    if check is not None:
        broken = check.get("broken") or []
        summary = (f'{check.get("files")} files, {check.get("entries")} entries: '
                   + ("every chain is intact." if check.get("intact")
                      else f"{len(broken)} broken links."))
        parts.append(f'<div class="notice" role="status" id="chain"><p>{escape(summary)}</p>'
                     + "".join(f"<p>{escape(str(line))}</p>"
                               for line in [*(check.get("notes") or []), *broken])
                     + '</div>')
    parts.append(
        f'<form class="console-form" method="get" action="{escape(base)}" '
        'aria-label="Filter the entries">'
        + "".join(f'<p><label for="audit-{name}">{escape(label)}</label>'
                  f'<input id="audit-{name}" name="{name}" type="text" maxlength="200" '
                  f'value="{escape(filters.get(name, ""))}"></p>'
                  for name, label in AUDIT_FILTERS)
        + '<p><button type="submit">Show</button></p></form>'
        f'<form method="get" action="{escape(base)}"><input type="hidden" name="verify" '
        'value="1"><p><button type="submit">Verify the chains</button></p></form>')
    entries = page.get("entries") or []
    if entries:
        parts.append(_audit_table(entries, AUDIT_COLUMNS))
    else:
        parts.append('<p class="muted">No entries.</p>')
    links = []
    for key, cursor, label in (("before", "before", "Older entries"),
                               ("next", "since", "Later entries")):
        if page.get(key):
            href = base + "?" + urlencode({**kept, cursor: page[key]})
            links.append(f'<a href="{escape(href)}">{label}</a>')
    if links:
        parts.append('<p>' + " ".join(links) + '</p>')
    parts.append('</section>')
    return frame(chrome, root, "Audit log - Console - " + chrome.title, "".join(parts),
                 search_box=False)


def _audit_table(entries: Sequence[Mapping[str, Any]],
                 columns: Sequence[tuple[str, str]]) -> str:
    """Audit entries as a table of C{columns} (C{(field, heading)}), in the order given."""
    return ('<div class="table-scroll"><table class="files audit"><thead><tr>'
            + "".join(f'<th scope="col">{escape(h)}</th>' for _, h in columns)
            + '</tr></thead><tbody>'
            + "".join("<tr>" + "".join(f"<td>{escape(str(entry.get(field) or ''))}</td>"
                                       for field, _ in columns) + "</tr>" for entry in entries)
            + '</tbody></table></div>')


def recycle_bin_page(chrome: Chrome, person: str, csrf: str, listed: Mapping[str, Any], *,
                     root: str = "../") -> bytes:
    """
    C{/console/recycle-bin?index=} (admins): an index's files in the
    recycle bin as C{GET /api/recycle-bin} lists them (when each was
    deleted, when it will be purged), each with the button that restores
    it (the project page's, C{POST /api/files/<f>/restore}'s path).

    @param listed: the answer of C{GET /api/recycle-bin}.
    """
    index = str(listed.get("index", "default"))
    files = listed.get("files") or []
    query = "" if index == DEFAULT else "?index=" + index
    parts = ['<section class="console" aria-labelledby="title"><h1 id="title">Recycle bin'
             '</h1>', _nav(root, True),
             f'<form class="console-form" method="get" action="{escape(root)}console/'
             'recycle-bin" aria-label="Choose the index"><p><label for="bin-index">Index'
             f'</label><input id="bin-index" name="index" type="text" maxlength="63" '
             f'value="{escape(index)}"></p><p><button type="submit">Show</button></p></form>',
             f'<p>Files deleted from <strong>{escape(index)}</strong> wait '
             f'{escape(str(listed.get("keep_for", "")))} s here before they are purged.</p>']
    if files:
        rows = "".join(
            f'<tr><td>{escape(str(f.get("project", "")))}</td>'
            f'<td>{escape(str(f.get("version", "")))}</td>'
            f'<td><code>{escape(str(f.get("filename", "")))}</code></td>'
            f'<td>{escape(_size(int(f.get("size") or 0)))}</td>'
            f'<td>{escape(str(f.get("deleted", "")))}</td>'
            f'<td>{escape(str(f.get("purged", "")))}</td>'
            f'<td><form class="inline-form" method="post" action="'
            + escape(f'{root}console/project/{f.get("project", "")}/files/'
                     f'{f.get("filename", "")}/restore{query}')
            + f'">{_csrf(csrf)}<button type="submit" aria-label="Restore '
            f'{escape(str(f.get("filename", "")))}">Restore</button></form></td></tr>'
            for f in files)
        parts.append(
            '<div class="table-scroll"><table class="files"><thead><tr>'
            '<th scope="col">Project</th><th scope="col">Release</th><th scope="col">File</th>'
            '<th scope="col">Size</th><th scope="col">Deleted</th><th scope="col">Purged</th>'
            '<th scope="col"><span class="visually-hidden">Restore</span></th></tr></thead>'
            '<tbody>' + rows + '</tbody></table></div>')
    else:
        parts.append('<p class="muted">The recycle bin is empty.</p>')
    parts.append('</section>')
    return frame(chrome, root, "Recycle bin - Console - " + chrome.title, "".join(parts),
                 search_box=False)


def advisories_page(chrome: Chrome, person: str, report: Mapping[str, Any], *,
                    root: str = "../", mode: str = "") -> bytes:
    """
    C{/console/advisories} (admins): what the security advisories in force
    do to each index's releases, as C{GET /api/advisories} says (or, with
    C{mode}, would do: a dry run), each release with its action and the
    advisories behind it.

    @param report: the answer of C{GET /api/advisories}.
    @param mode: the dry run's mode asked, or C{""} for each index's own.
    """
    db = report.get("database") or {}
    parts = ['<section class="console" aria-labelledby="title"><h1 id="title">Advisories'
             '</h1>', _nav(root, True),
             f'<p>{escape(str(db.get("advisories", 0)))} advisories of '
             f'{escape(str(db.get("projects", 0)))} projects'
             + (f' from {escape(str(db["source"]))}' if db.get("source") else "") + '.</p>',
             f'<form class="console-form" method="get" action="{escape(root)}console/'
             'advisories" aria-label="A dry run"><p><label for="dry-mode">What each index '
             'would do in the mode</label><select id="dry-mode" name="mode">'
             + _options([("", "its own"), ("warn", "warn"), ("hide", "hide"),
                         ("deny", "deny")], mode)
             + '</select></p><p><button type="submit">Show</button></p></form>']
    for index in report.get("indexes") or []:
        name = str(index.get("index", ""))
        releases = index.get("releases") or []
        stricter = index.get("stricter_bases") or []
        parts.append(f'<h2>{escape(name)}</h2><p>Mode <strong>{escape(str(index.get("mode")))}'
                     f'</strong>' + (f', severity {escape(str(index["severity"]))}'
                                     if index.get("severity") else "") + '.</p>')
        if stricter:
            parts.append('<p class="notice">Its bases act more strictly at their own URLs: '
                         + escape(", ".join(f'{b.get("index")} ({b.get("mode")})'
                                            for b in stricter)) + '.</p>')
        if not releases:
            parts.append('<p class="muted">It acts on no release.</p>')
            continue
        rows = "".join(
            f'<tr><td>{escape(str(r.get("project", "")))}</td>'
            f'<td>{escape(str(r.get("version", "")))}</td>'
            f'<td>{escape(str(r.get("action", "")))}</td><td>'
            + escape(", ".join(f'{a.get("id")} ({a.get("severity") or "no severity"})'
                               for a in r.get("advisories") or [])) + '</td></tr>'
            for r in releases)
        parts.append('<div class="table-scroll"><table class="files"><thead><tr>'
                     '<th scope="col">Project</th><th scope="col">Release</th>'
                     '<th scope="col">Action</th><th scope="col">Advisories</th></tr></thead>'
                     '<tbody>' + rows + '</tbody></table></div>')
    parts.append('</section>')
    return frame(chrome, root, "Advisories - Console - " + chrome.title, "".join(parts),
                 search_box=False)


def groups_page(chrome: Chrome, person: str, groups: Mapping[str, Any], *,
                root: str = "../") -> bytes:
    """
    C{/console/groups} (admins): who is in which group, as configured
    (C{GET /api/groups}): C{[groups]} with their members, the admins, and
    the groups that only a directory or a provider fills.
    """
    listed = groups.get("groups") or {}
    parts = ['<section class="console" aria-labelledby="title"><h1 id="title">Groups</h1>',
             _nav(root, True), '<h2>Admins</h2><p>'
             + escape(", ".join([*groups.get("admins", []),
                                 *(f"group:{g}" for g in groups.get("admin_groups", []))])
                      or "none") + '</p><h2>[groups]</h2>']
    if listed:
        parts.append('<div class="table-scroll"><table class="files"><thead><tr>'
                     '<th scope="col">Group</th><th scope="col">Members</th></tr></thead>'
                     '<tbody>' + "".join(
                         f'<tr><td>{escape(str(name))}</td><td>'
                         f'{escape(", ".join(members))}</td></tr>'
                         for name, members in listed.items()) + '</tbody></table></div>')
    else:
        parts.append('<p class="muted">The configuration defines no group.</p>')
    outside = groups.get("outside_groups") or []
    parts.append('<h2>Groups of the directory or the provider</h2>')
    parts.append(('<p>The rules name these groups, which the directory or single sign-on '
                  'fill at each login: ' + escape(", ".join(outside)) + '.</p>') if outside
                 else '<p class="muted">The rules name no other group.</p>')
    parts.append('</section>')
    return frame(chrome, root, "Groups - Console - " + chrome.title, "".join(parts),
                 search_box=False)


def indexes_page(chrome: Chrome, person: str, found: Mapping[str, Any], *,
                 root: str = "../") -> bytes:
    """
    C{/console/indexes} (admins): the indexes (C{GET /api/indexes}), each
    with its kind, sources, advisories' mode and, for a hosted one, its
    projects, files, bytes, recycle bin and downloads over 30 days; then
    the upstream caches, with what they keep and how they served it.
    """
    parts = ['<section class="console" aria-labelledby="title"><h1 id="title">Indexes</h1>',
             _nav(root, True)]
    rows = []
    for index in found.get("indexes") or []:
        hosted = index.get("kind") == "hosted"
        size = index.get("bytes")
        binned = index.get("recycle_bin")
        downloads = index.get("downloads")
        path = str(index.get("path") or "/")
        rows.append(
            f'<tr><td><a href="{escape(root + path.lstrip("/"))}simple/">'
            f'{escape(str(index.get("name")))}</a></td><td>{escape(str(index.get("kind")))}</td>'
            f'<td>{escape(", ".join(index.get("sources") or []) or "none")}</td>'
            f'<td>{escape(str(index.get("advisories") or "off"))}</td>'
            + (f'<td>{index.get("projects", 0)}</td><td>{index.get("files", 0)}</td>'
               f'<td>{escape(_size(size) if isinstance(size, int) else "counting")}</td>'
               f'<td>{escape(_binned(binned))}</td>'
               f'<td>{downloads["total"] if downloads else "not counted"}</td>'
               if hosted else '<td colspan="5" class="muted">a view of its sources</td>')
            + '</tr>')
    parts.append(
        '<div class="table-scroll"><table class="files"><thead><tr>'
        '<th scope="col">Index</th><th scope="col">Kind</th><th scope="col">Sources</th>'
        '<th scope="col">Advisories</th><th scope="col">Projects</th>'
        '<th scope="col">Files</th><th scope="col">Size</th>'
        '<th scope="col">Recycle bin</th><th scope="col">Downloads, 30 days</th></tr></thead>'
        '<tbody>' + "".join(rows) + '</tbody></table></div>')
    parts.append('<h2>Upstream caches</h2>')
    upstreams = found.get("upstreams") or []
    if not upstreams:
        parts.append('<p class="muted">The server proxies no upstream.</p>')
    for cache in upstreams:
        pages, files = cache.get("pages") or {}, cache.get("files") or {}
        cap = files.get("max_bytes")
        kept = files.get("bytes") or 0
        parts.append(
            f'<h3>{escape(str(cache.get("name")))}</h3>'
            f'<p>Mode <strong>{escape(str(cache.get("mode")))}</strong>. '
            f'{files.get("kept", 0)} files kept, {escape(_size(kept))}'
            + (f' of {escape(_size(cap))}' if isinstance(cap, int) and cap else ', no cap')
            + f'; {pages.get("cached", 0)} pages cached; '
            f'{files.get("evicted", 0)} files evicted since the start.</p>'
            '<div class="table-scroll"><table class="files"><thead><tr>'
            '<th scope="col">Served since the start</th>'
            + "".join(f'<th scope="col">{escape(k)}</th>' for k in _SERVED)
            + '</tr></thead><tbody>'
            + "".join(f'<tr><td>{label}</td>'
                      + "".join(f'<td>{served.get(k, 0) if k in served else "-"}</td>'
                                for k in _SERVED) + '</tr>'
                      for label, served in (("Pages", pages.get("served") or {}),
                                            ("Files", files.get("served") or {})))
            + '</tbody></table></div>')
    parts.append('</section>')
    return frame(chrome, root, "Indexes - Console - " + chrome.title, "".join(parts),
                 search_box=False)


#: How the upstream caches served what was asked, in the order shown.
_SERVED = ("hit", "stale", "miss", "unavailable")


def _binned(binned: Mapping[str, Any] | None) -> str:
    if not binned:
        return "none"
    return f"{binned.get('files', 0)} files, {_size(int(binned.get('bytes') or 0))}"
