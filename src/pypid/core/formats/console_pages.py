"""
The console's pages, drawn like the pages for people: no external assets,
no script needed, every form a plain HTML form carrying the session's CSRF token.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import urlencode

from pypid.core.formats.admin_answers import (
    AdvisoryCheck,
    AuditCheck,
    AuditPage,
    BinListing,
    GroupsListing,
    IndexesListing,
    RetentionApplied,
)
from pypid.core.formats.pages import Chrome, frame
from pypid.core.indexes.index_names import DEFAULT

#: The lifetimes a token may be issued for on the form: (field value,
#: label, whether a person from outside may pick it: their tokens expire
#: within L{pypid.core.access.outside_logins.MAX_OUTSIDE_TOKEN_LIFETIME}).
LIFETIMES = (("30d", "30 days", True), ("7d", "7 days", True), ("90d", "90 days", True),
             ("365d", "1 year", False), ("", "never", False))

#: The scopes of actions offered: (field value, label).
ACTIONS = (("read", "read (install)"), ("upload", "upload (publish)"),
           ("read upload", "read and upload"))


def when_text(seconds: object) -> str:
    """A POSIX time as the console shows it (C{2026-01-31 12:00 UTC}), or "never"."""
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        return "never"
    try:
        moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return "never"
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def csrf_input(csrf: str) -> str:
    return f'<input type="hidden" name="csrf" value="{escape(csrf)}">'


def options_of(choices: Iterable[tuple[str, str]], chosen: str) -> str:
    return "".join(
        f'<option value="{escape(value)}"{" selected" if value == chosen else ""}>'
        f'{escape(label)}</option>' for value, label in choices)


def console_nav(root: str, admin: bool = False) -> str:
    links = [("console/", "Console"), ("console/tokens", "My tokens")]
    if admin:
        links += [("console/indexes", "Indexes"),
                  ("console/advisories", "Advisories"), ("console/retention", "Retention"),
                  ("console/recycle-bin", "Recycle bin"), ("console/audit", "Audit log"),
                  ("console/groups", "Groups"), ("console/webhooks", "Webhooks")]
    return ('<nav aria-label="Console"><ul class="console-nav">'
            + "".join(f'<li><a href="{escape(root + path)}">{escape(label)}</a></li>'
                      for path, label in links)
            + "</ul></nav>")


def console_start(title: str, root: str, admin: bool = True) -> list[str]:
    """A console page's first parts: its section, its C{title} (HTML) and the console's links."""
    return [f'<section class="console" aria-labelledby="title"><h1 id="title">{title}</h1>',
            console_nav(root, admin)]


def console_frame(chrome: Chrome, root: str, title: str, parts: list[str]) -> bytes:
    """The console page of C{parts}, its section closed, titled C{title - Console - site}."""
    parts.append("</section>")
    return frame(chrome, root, f"{title} - Console - {chrome.title}", "".join(parts),
                 search_box=False)


def console_table(headings: Iterable[str], rows: str, attributes: str = "") -> str:
    """A table of the console: its C{headings} and C{rows} are HTML."""
    return (f'<div class="table-scroll"><table class="files"{attributes}><thead><tr>'
            + "".join(f'<th scope="col">{heading}</th>' for heading in headings)
            + '</tr></thead><tbody>' + rows + '</tbody></table></div>')


def hidden(label: str) -> str:
    """A heading only screen readers read (the column of a table's buttons)."""
    return f'<span class="visually-hidden">{label}</span>'


def error_notice(error: str | None) -> list[str]:
    """Why the last action was refused, as the console's pages say it (nothing for none)."""
    return ([f'<p class="notice" role="alert" id="console-error">{escape(error)}</p>']
            if error else [])


def console_page(chrome: Chrome, person: str, *, root: str = "../",
                 admin: bool = False) -> bytes:
    """C{/console/}: what the person can manage here."""
    main = (
        '<section class="console" aria-labelledby="title"><h1 id="title">Console</h1>'
        f'<p>Logged in as <strong>{escape(person)}</strong>.</p>{console_nav(root, admin)}'
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
                outside: bool = False, site_url: str = "") -> bytes:
    """
    C{/console/tokens}: the person's API tokens (an admin's: everyone's),
    the form that issues one, and a button per token that revokes it.

    @param issued: C{(token string, record)} of the token just issued, shown this once.
    @param outside: whether the person logs in from outside (their tokens
        must expire: "never" is not offered).
    """
    fields = fields or {}
    parts = [*console_start("My tokens", root, admin), *error_notice(error)]
    if issued is not None:
        text, record = issued
        parts.append(
            '<section class="notice" aria-labelledby="issued" role="status">'
            f'<h2 id="issued">Token {escape(str(record.get("id", "")))} issued</h2>'
            '<p>Copy it now: it is not shown again.</p>'
            f'<code class="secret" id="new-token">{escape(text)}</code>'
            '<p>Use it as the password of the user <code>__token__</code>, for example:</p>'
            + "".join(f'<pre class="example"><code>{escape(line)}</code></pre>'
                      for line in token_examples(record, site_url))
            + '</section>')
    parts.append(_tokens_table(tokens, csrf, root, admin))
    parts.append(_issue_form(csrf, root, fields, outside, error))
    parts.append('</section>')
    return frame(chrome, root, "My tokens - " + chrome.title, "".join(parts), search_box=False)


def token_examples(record: Mapping[str, Any], site_url: str) -> list[str]:
    """
    The commands that use a token of C{record}'s rights on the site at
    C{site_url} (its scheme kept); C{<token>} stands for the secret.
    """
    base = site_url or "http://<this server>/"
    scheme, _, rest = base.partition("://")
    actions = record.get("actions") or ()
    lines = []
    if "read" in actions:
        index = f"{scheme}://__token__:<token>@{rest}simple/"
        lines += [f"pip install --index-url {index} <project>",
                  f"uv pip install --index-url {index} <project>"]
    if "upload" in actions:
        lines += [f"twine upload --repository-url {base} -u __token__ -p <token> dist/*",
                  f"uv publish --publish-url {base} --token <token> dist/*"]
    return lines


def _tokens_table(tokens: Sequence[Mapping[str, Any]], csrf: str, root: str,
                  admin: bool) -> str:
    """The tokens listed, each with the button that revokes it (an admin's: with its user)."""
    parts = ['<h2>Tokens</h2>']
    if tokens:
        rows = []
        for record in tokens:
            token_id = str(record.get("id", ""))
            projects = " ".join(record.get("projects") or ()) or "every project"
            indexes = " ".join(record.get("indexes") or ()) or "every index"
            owner = (f'<td>{escape(str(record.get("user", "")))}</td>' if admin else "")
            what = ("minted by trusted publishing" if record.get("minted")
                    else escape(str(record.get("description", ""))))
            ended = record.get("ended")
            # (a token whose person is gone says so, and why, where its expiry was)
            expires = (f'<strong class="ended">ended {escape(when_text(ended.get("at")))}:'
                       f' {escape(str(ended.get("reason", "")))}</strong>' if ended
                       else escape(when_text(record.get("expires"))))
            rows.append(
                f'<tr><td><code>{escape(token_id)}</code></td>{owner}'
                f'<td>{escape(" ".join(record.get("actions") or ()))}</td>'
                f'<td>{escape(projects)}</td><td>{escape(indexes)}</td>'
                f'<td>{expires}</td><td>{what}</td>'
                f'<td><form class="inline-form" method="post" '
                f'action="{escape(root)}console/tokens/{escape(token_id)}/revoke">'
                f'{csrf_input(csrf)}<button type="submit" class="danger" '
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
    return "".join(parts)


def _issue_form(csrf: str, root: str, fields: Mapping[str, str], outside: bool,
                error: str | None) -> str:
    """The form that issues a token, filled in again with C{fields} as sent."""
    lifetimes = [(value, label) for value, label, anyone in LIFETIMES if anyone or not outside]
    described = ' aria-describedby="console-error"' if error else ""
    return (
        '<h2 id="issue">Issue a token</h2>'
        f'<form class="console-form" method="post" action="{escape(root)}console/tokens" '
        'aria-labelledby="issue">' + csrf_input(csrf)
        + '<p><label for="description">Description</label>'
        '<input id="description" name="description" type="text" maxlength="200" '
        f'value="{escape(fields.get("description", ""))}"{described}></p>'
        '<p><label for="actions">Actions</label><select id="actions" name="actions">'
        + options_of(ACTIONS, fields.get("actions", "read")) + '</select></p>'
        '<p><label for="projects">Projects (names or globs; empty: every project)</label>'
        '<input id="projects" name="projects" type="text" maxlength="1000" '
        f'value="{escape(fields.get("projects", ""))}"></p>'
        '<p><label for="indexes">Indexes (empty: every index)</label>'
        '<input id="indexes" name="indexes" type="text" maxlength="1000" '
        f'value="{escape(fields.get("indexes", ""))}"></p>'
        '<p><label for="expires">Expires after</label><select id="expires" name="expires">'
        + options_of(lifetimes, fields.get("expires", "30d")) + '</select></p>'
        '<p><button type="submit">Issue token</button></p></form>')


def size_text(size: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return f"{size}"


def retention_page(chrome: Chrome, person: str, csrf: str,
                   plans: Sequence[Mapping[str, Any]], *, root: str = "../",
                   applied: RetentionApplied | None = None, error: str | None = None) -> bytes:
    """
    C{/console/retention} (admins): each hosted index's retention plan as
    C{GET /api/retention} makes it now (its C{indexes}: C{plans}), with a
    button that applies it, the very files shown, into the recycle bin;
    C{applied}: what C{POST /api/retention/apply} answered.
    """
    parts = [*console_start("Retention", root), *error_notice(error)]
    if applied is not None:
        removed = applied.get("removed") or []
        skipped = applied.get("skipped") or []
        parts.append(
            '<p class="notice" role="status" id="console-notice">'
            f'{escape(str(applied.get("index", "")))}: {len(removed)} '
            f'file{"s" if len(removed) != 1 else ""} moved to the recycle bin '
            f'({escape(size_text(int(applied.get("bytes") or 0)))})'
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
            f'<td>{escape(size_text(int(r.get("bytes") or 0)))}</td>'
            f'<td>{len(r.get("files") or [])}</td></tr>' for r in releases)
        files = "".join(f'<input type="hidden" name="files" value="{escape(str(f["filename"]))}">'
                        for r in releases for f in (r.get("files") or []))
        parts.append(
            console_table(("Project", "Release", "Why", "Size", "Files"), rows)
            + f'<form method="post" action="{escape(root)}console/retention/apply">'
            + csrf_input(csrf) + f'<input type="hidden" name="index" value="{escape(index)}">'
            + files + f'<p><button type="submit">Apply the plan of {escape(index)} '
            f'({escape(size_text(int(plan.get("bytes") or 0)))})</button></p></form>')
    return console_frame(chrome, root, "Retention", parts)


#: The filters of the audit page: (field, label).
AUDIT_FILTERS = (("project", "Project"), ("user", "User"), ("event", "Event"),
                 ("index", "Index"), ("since", "Since (ISO 8601, UTC)"))

#: The columns of the audit page: (entry field, heading).
AUDIT_COLUMNS = (("time", "Time"), ("event", "Event"), ("outcome", "Outcome"),
                 ("user", "User"), ("index", "Index"), ("project", "Project"),
                 ("version", "Version"), ("filename", "File"), ("target", "Target"),
                 ("detail", "Detail"), ("address", "Address"))


def audit_page(chrome: Chrome, person: str, page: AuditPage,
               filters: Mapping[str, str], *, root: str = "../",
               check: AuditCheck | None = None) -> bytes:
    """
    C{/console/audit} (admins): the audit log's C{page}, filtered by the
    form (C{filters} as asked), newest last, with links to the pages
    around; and, asked for, what checking every chain found (C{check}).
    """
    base = f"{root}console/audit"
    kept = {name: value for name, value in filters.items() if value and name != "since"}
    parts = console_start("Audit log", root)
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
    parts.append(audit_table(page["entries"], AUDIT_COLUMNS) if page["entries"]
                 else '<p class="muted">No entries.</p>')
    links = []
    for value, cursor, label in ((page["before"], "before", "Older entries"),
                                 (page["next"], "since", "Later entries")):
        if value:
            href = base + "?" + urlencode({**kept, cursor: value})
            links.append(f'<a href="{escape(href)}">{label}</a>')
    if links:
        parts.append('<p>' + " ".join(links) + '</p>')
    return console_frame(chrome, root, "Audit log", parts)


def audit_table(entries: Sequence[Mapping[str, Any]],
                 columns: Sequence[tuple[str, str]]) -> str:
    """Audit entries as a table of C{columns} (C{(field, heading)}), in the order given."""
    return ('<div class="table-scroll"><table class="files audit"><thead><tr>'
            + "".join(f'<th scope="col">{escape(h)}</th>' for _, h in columns)
            + '</tr></thead><tbody>'
            + "".join("<tr>" + "".join(f"<td>{escape(str(entry.get(field) or ''))}</td>"
                                       for field, _ in columns) + "</tr>" for entry in entries)
            + '</tbody></table></div>')


def recycle_bin_page(chrome: Chrome, person: str, csrf: str, listed: BinListing, *,
                     root: str = "../") -> bytes:
    """
    C{/console/recycle-bin?index=} (admins): an index's files in the
    recycle bin as C{GET /api/recycle-bin} lists them, each with the
    button that restores it (the project page's).
    """
    index = str(listed.get("index", "default"))
    files = listed.get("files") or []
    query = "" if index == DEFAULT else "?index=" + index
    parts = [*console_start("Recycle bin", root),
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
            f'<td>{escape(size_text(int(f.get("size") or 0)))}</td>'
            f'<td>{escape(str(f.get("deleted", "")))}</td>'
            f'<td>{escape(str(f.get("purged", "")))}</td>'
            f'<td><form class="inline-form" method="post" action="'
            + escape(f'{root}console/project/{f.get("project", "")}/files/'
                     f'{f.get("filename", "")}/restore{query}')
            + f'">{csrf_input(csrf)}<button type="submit" aria-label="Restore '
            f'{escape(str(f.get("filename", "")))}">Restore</button></form></td></tr>'
            for f in files)
        parts.append(console_table(("Project", "Release", "File", "Size", "Deleted", "Purged",
                                    hidden("Restore")), rows))
    else:
        parts.append('<p class="muted">The recycle bin is empty.</p>')
    return console_frame(chrome, root, "Recycle bin", parts)


def advisories_page(chrome: Chrome, person: str, report: AdvisoryCheck, *,
                    root: str = "../", mode: str = "") -> bytes:
    """
    C{/console/advisories} (admins): what the security advisories in force
    do to each index's releases, as C{GET /api/advisories} says (or, with
    C{mode}, would do: a dry run; C{""}: each index's own).
    """
    db = report.get("database") or {}
    parts = [*console_start("Advisories", root),
             f'<p>{escape(str(db.get("advisories", 0)))} advisories of '
             f'{escape(str(db.get("projects", 0)))} projects'
             + (f' from {escape(str(db["source"]))}' if db.get("source") else "") + '.</p>',
             f'<form class="console-form" method="get" action="{escape(root)}console/'
             'advisories" aria-label="A dry run"><p><label for="dry-mode">What each index '
             'would do in the mode</label><select id="dry-mode" name="mode">'
             + options_of([("", "its own"), ("warn", "warn"), ("hide", "hide"),
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
        parts.append(console_table(("Project", "Release", "Action", "Advisories"), rows))
    return console_frame(chrome, root, "Advisories", parts)


def groups_page(chrome: Chrome, person: str, groups: GroupsListing, *,
                root: str = "../") -> bytes:
    """C{/console/groups} (admins): who is in which group, as C{GET /api/groups} says."""
    listed = groups.get("groups") or {}
    parts = [*console_start("Groups", root), '<h2>Admins</h2><p>'
             + escape(", ".join([*groups.get("admins", []),
                                 *(f"group:{g}" for g in groups.get("admin_groups", []))])
                      or "none") + '</p><h2>[groups]</h2>']
    if listed:
        parts.append(console_table(("Group", "Members"), "".join(
            f'<tr><td>{escape(str(name))}</td><td>{escape(", ".join(members))}</td></tr>'
            for name, members in listed.items())))
    else:
        parts.append('<p class="muted">The configuration defines no group.</p>')
    outside = groups.get("outside_groups") or []
    parts.append('<h2>Groups of the directory or the provider</h2>')
    parts.append(('<p>The rules name these groups, which the directory or single sign-on '
                  'fill at each login: ' + escape(", ".join(outside)) + '.</p>') if outside
                 else '<p class="muted">The rules name no other group.</p>')
    return console_frame(chrome, root, "Groups", parts)


def indexes_page(chrome: Chrome, person: str, found: IndexesListing, *,
                 root: str = "../") -> bytes:
    """
    C{/console/indexes} (admins): the indexes (C{GET /api/indexes}), then
    the upstream caches, with what they keep and how they served it.
    """
    parts = console_start("Indexes", root)
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
               f'<td>{escape(size_text(size) if isinstance(size, int) else "counting")}</td>'
               f'<td>{escape(_binned(binned))}</td>'
               f'<td>{downloads["total"] if downloads else "not counted"}</td>'
               if hosted else '<td colspan="5" class="muted">a view of its sources</td>')
            + '</tr>')
    parts.append(console_table(("Index", "Kind", "Sources", "Advisories", "Projects", "Files",
                                "Size", "Recycle bin", "Downloads, 30 days"), "".join(rows)))
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
            f'{files.get("kept", 0)} files kept, {escape(size_text(kept))}'
            + (f' of {escape(size_text(cap))}' if isinstance(cap, int) and cap else ', no cap')
            + f'; {pages.get("cached", 0)} pages cached; '
            f'{files.get("evicted", 0)} files evicted since the start.</p>'
            + console_table(("Served since the start", *_SERVED), "".join(
                f'<tr><td>{label}</td>'
                + "".join(f'<td>{served.get(k, 0) if k in served else "-"}</td>'
                          for k in _SERVED) + '</tr>'
                for label, served in (("Pages", pages.get("served") or {}),
                                      ("Files", files.get("served") or {})))))
    return console_frame(chrome, root, "Indexes", parts)


#: How the upstream caches served what was asked, in the order shown.
_SERVED = ("hit", "stale", "miss", "unavailable")


def _binned(binned: Mapping[str, Any] | None) -> str:
    if not binned:
        return "none"
    return f"{binned.get('files', 0)} files, {size_text(int(binned.get('bytes') or 0))}"
