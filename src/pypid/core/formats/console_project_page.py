"""
The console's page of a project (C{/console/project/<name>/}), drawn from a
L{ConsoleProjectView} that the console fills from the API areas' answers,
and its downloads' chart (L{downloads_chart}).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

import attrs

from pypid.core.dists.model import FileRecord
from pypid.core.formats.admin_answers import ProjectAdvisories
from pypid.core.formats.console_pages import (
    AUDIT_COLUMNS,
    audit_table,
    console_frame,
    console_start,
    console_table,
    csrf_input,
    error_notice,
    hidden,
    options_of,
    size_text,
    when_text,
)
from pypid.core.formats.pages import Chrome
from pypid.core.indexes.index_names import DEFAULT
from pypid.core.indexes.project_status import STATUSES, ProjectStatus
from pypid.core.records.audit_chain import day_plus


@attrs.frozen
class ConsoleProjectView:
    """
    What the console's page of a project shows.

    @ivar project: its normalized name; C{display}, the name it shows.
    @ivar releases: C{(version, files)}, newest first.
    @ivar recycles: whether the index has a recycle bin (a delete can be undone).
    @ivar targets: the indexes a release may be promoted to (none: no form).
    @ivar chart: its L{downloads_chart}, or L{None} when not counted.
    @ivar trail: its newest audit entries in the index, or L{None}.
    @ivar advisories: the advisories affecting its releases and the
        waivers kept, or L{None} when the server reads none.
    """

    project: str
    display: str
    index: str
    releases: Sequence[tuple[str, Sequence[FileRecord]]]
    binned: Sequence[FileRecord]
    status: ProjectStatus | None
    recycles: bool
    targets: Sequence[str] = ()
    chart: str | None = None
    trail: Sequence[Mapping[str, Any]] | None = None
    advisories: ProjectAdvisories | None = None


@attrs.frozen
class _Forms:
    """The forms of a project's page: each posts to C{base + verb + query}, with the CSRF token."""

    base: str
    query: str
    csrf: str

    def url(self, verb: str) -> str:
        return self.base + verb + self.query

    def file(self, filename: str, verb: str, label: str, extra: str = "",
             danger: bool = False) -> str:
        """A button that acts on one file (C{files/<f>/<verb>})."""
        kind = ' class="danger"' if danger else ""
        return (f'<form class="inline-form" method="post" '
                f'action="{escape(self.url("files/" + filename + "/" + verb))}">'
                f'{csrf_input(self.csrf)}{extra}<button type="submit"{kind} '
                f'aria-label="{escape(label)} {escape(filename)}">{escape(label)}</button></form>')


def project_page(chrome: Chrome, person: str, csrf: str, view: ConsoleProjectView, *, admin: bool,
                 root: str = "../../../", error: str | None = None,
                 notice: str | None = None) -> bytes:
    """
    C{/console/project/<name>/}: a project for one who may change it, with
    the buttons that act on its files, and for admins the form that sets
    its status; C{notice}: what the last action did.
    """
    project, index = view.project, view.index
    forms = _Forms(f"{root}console/project/{project}/",
                   "" if index == DEFAULT else "?index=" + index, csrf)
    parts = [*console_start(escape(view.display), root, admin),
             f'<p>In the index <strong>{escape(index)}</strong>. '
             f'<a href="{escape(root + ("" if index == DEFAULT else index + "/"))}project/'
             f'{escape(project)}/">Its page</a>.</p>', *error_notice(error)]
    if notice:
        parts.append(f'<p class="notice" role="status" id="console-notice">{escape(notice)}</p>')
    parts.append(_status_section(view.status, forms, admin))
    parts.append(_releases_section(view.releases, forms))
    if view.advisories is not None:
        parts.append(_advisories_section(view.advisories, forms.url("waive"),
                                         forms.url("unwaive"), csrf, admin))
    if view.chart is not None:
        parts.append('<h2>Downloads</h2>' + view.chart)
    if view.releases and view.targets:
        parts.append(_promote_form(view, forms, admin))
    parts.append(_bin_section(view, forms))
    if view.trail is not None:
        parts.append('<h2>Audit trail</h2>')
        columns = [c for c in AUDIT_COLUMNS if c[0] not in ("project", "index", "address")]
        parts.append(audit_table(list(reversed(view.trail)), columns) if view.trail
                     else '<p class="muted">No entries.</p>')
    return console_frame(chrome, root, view.display, parts)


def _status_section(status: ProjectStatus | None, forms: _Forms, admin: bool) -> str:
    """The project's status (PEP 792), and for admins the form that sets it."""
    shown = status.status if status is not None else "active"
    reason = f": {status.reason}" if status is not None and status.reason else ""
    section = f'<h2>Status</h2><p id="status">{escape(shown + reason)}</p>'
    if not admin:
        return section
    return section + (
        f'<form class="console-form" method="post" action="{escape(forms.url("status"))}"'
        ' aria-label="Set the status">' + csrf_input(forms.csrf)
        + '<p><label for="status-choice">Status</label><select id="status-choice" '
        'name="status">' + options_of([(s, s) for s in STATUSES], shown) + '</select></p>'
        '<p><label for="status-reason">Reason</label><input id="status-reason" '
        'name="reason" type="text" maxlength="200"></p>'
        '<p><button type="submit">Set the status</button></p></form>')


def _releases_section(releases: Sequence[tuple[str, Sequence[FileRecord]]],
                      forms: _Forms) -> str:
    """Each release's files, each with its yank (or unyank) and delete buttons."""
    parts = ['<h2>Releases</h2>']
    if not releases:
        parts.append('<p class="muted">No files.</p>')
    for version, files in releases:
        rows = []
        for record in files:
            filename = record.filename
            if record.yanked is not None:
                state = "yanked" + (f": {record.yanked}" if record.yanked else "")
                yank = forms.file(filename, "unyank", "Unyank")
            else:
                state = ""
                yank = forms.file(filename, "yank", "Yank", extra=(
                    f'<label class="visually-hidden" for="reason-{escape(filename)}">Reason to '
                    f'yank {escape(filename)}</label><input id="reason-{escape(filename)}" '
                    'name="reason" type="text" maxlength="200" placeholder="reason">'))
            rows.append(
                f'<tr><td><code>{escape(filename)}</code></td><td>{escape(size_text(record.size))}'
                f'</td><td>{escape(when_text(record.upload_time))}</td>'
                f'<td>{escape(record.uploader or "")}</td><td>{escape(state)}</td>'
                f'<td>{yank} {forms.file(filename, "delete", "Delete", danger=True)}</td></tr>')
        parts.append(f'<h3>{escape(version)}</h3>' + console_table(
            ("File", "Size", "Uploaded", "By", "Yanked", hidden("Actions")), "".join(rows)))
    return "".join(parts)


def _promote_form(view: ConsoleProjectView, forms: _Forms, admin: bool) -> str:
    """The form that promotes a release to another index (admins may override a deny)."""
    releases, targets = view.releases, view.targets
    return (
        '<h2 id="promote">Promote a release</h2>'
        f'<form class="console-form" method="post" action="{escape(forms.url("promote"))}"'
        ' aria-labelledby="promote">' + csrf_input(forms.csrf)
        + '<p><label for="promote-version">Release</label><select id="promote-version" '
        'name="version">' + options_of([(v, v) for v, _ in releases], releases[0][0])
        + '</select></p><p><label for="promote-to">To the index</label><select '
        'id="promote-to" name="to">' + options_of([(t, t) for t in targets], targets[0])
        + '</select></p>'
        + ('<p><label><input type="checkbox" name="allow_denied" value="true"> Even if '
           'its advisories deny it</label></p>' if admin else "")
        + '<p><button type="submit">Promote</button></p></form>')


def _bin_section(view: ConsoleProjectView, forms: _Forms) -> str:
    """The project's files in the recycle bin, each with its restore button."""
    if not view.recycles:
        return ('<p class="muted">This index has no recycle bin: a deleted file is gone '
                'for good.</p>')
    if not view.binned:
        return ('<h2>Recycle bin</h2>'
                '<p class="muted">No file of this project is in the recycle bin.</p>')
    return '<h2>Recycle bin</h2>' + console_table(("File", "Deleted", hidden("Restore")), "".join(
        f'<tr><td><code>{escape(record.filename)}</code></td>'
        f'<td>{escape(when_text(record.binned))}</td>'
        f'<td>{forms.file(record.filename, "restore", "Restore")}</td></tr>'
        for record in view.binned))


#: How the project page says where the index stands on an advisory.
STANDINGS = {"acted": "acted on", "configured": "waived by the configuration",
             "waived": "waived", "below-severity": "below the index's severity",
             "off": "the index acts on no advisory"}


def _advisories_section(report: ProjectAdvisories, waive: str, unwaive: str, csrf: str,
                        admin: bool) -> str:
    """
    The project page's advisories: each affected release's and where the
    index stands on each, the waivers kept, and for admins the buttons
    that waive an advisory and remove a waiver.
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
                    + csrf_input(csrf)
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
        parts.append(console_table(("Release", "Advisory", "Severity", "Summary", "Here",
                                    hidden("Waive")), "".join(rows)))
    kept = report.get("waivers") or []
    if kept:
        rows = []
        for waiver in kept:
            advisory, version = waiver.get("advisory"), waiver.get("version")
            what = (str(advisory) if advisory else f"every advisory of {version}")
            key, value = ("advisory", advisory) if advisory else ("version", version)
            button = (
                f'<form class="inline-form" method="post" action="{escape(unwaive)}">'
                + csrf_input(csrf)
                + f'<input type="hidden" name="{key}" value="{escape(str(value))}">'
                f'<button type="submit" aria-label="Unwaive {escape(what)}">Unwaive</button>'
                '</form>') if admin else ""
            rows.append(
                f'<tr><td>{escape(what)}</td><td>{escape(str(waiver.get("reason") or ""))}</td>'
                f'<td>{escape(str(waiver.get("by") or ""))}</td>'
                f'<td>{escape(when_text(waiver.get("at")))}</td><td>{button}</td></tr>')
        parts.append('<h3>Waivers kept</h3>' + console_table(
            ("Waives", "Reason", "By", "When", hidden("Remove")), "".join(rows)))
    return "".join(parts)


# -- the downloads' chart -------------------------------------------------------

#: The most releases drawn, newest first; the others are summed in a last row.
MAX_ROWS = 10

#: The size of one release's row of bars, in SVG user units.
WIDTH, ROW_HEIGHT, LABEL = 640, 36, 120


def downloads_chart(releases: Mapping[str, Sequence[int]], first_day: str,
                    newest_first: Sequence[str]) -> str:
    """
    A project's downloads per release and per day: one row of bars a
    release (the newest L{MAX_ROWS}; older ones summed), all on one scale,
    each bar titled with its day and count; then the same numbers as a
    table, for screen readers and for those who want them. Inline SVG, so
    the pages' strict Content-Security-Policy holds; its colours come from
    the stylesheet's classes (light and dark).

    @param releases: C{{version: [downloads a day, oldest first]}}, every
        list of the same length, the first day C{first_day} (ISO).
    """
    rows: list[tuple[str, list[int]]] = [(v, list(releases[v])) for v in
                                         newest_first[:MAX_ROWS] if v in releases]
    older = [releases[v] for v in newest_first[MAX_ROWS:] if v in releases]
    if older:
        rows.append(("older", [sum(day) for day in zip(*older, strict=True)]))
    if not rows:
        return '<p class="muted">No downloads counted.</p>'
    days = len(rows[0][1])
    top = max((max(counts) for _, counts in rows), default=0) or 1
    step = (WIDTH - LABEL) / max(days, 1)
    height = ROW_HEIGHT * len(rows) + 16
    last = day_plus(first_day, days - 1)
    parts = [f'<figure class="chart"><svg role="img" aria-labelledby="chart-title" '
             f'viewBox="0 0 {WIDTH} {height}" width="100%" '
             f'xmlns="http://www.w3.org/2000/svg"><title id="chart-title">Downloads per '
             f'release and per day, {escape(first_day)} to {escape(last)}</title>']
    for row, (version, counts) in enumerate(rows):
        y = row * ROW_HEIGHT
        parts.append(f'<text class="label" x="0" y="{y + ROW_HEIGHT - 12}">'
                     f'{escape(version)}</text>')
        parts.append(f'<line class="axis" x1="{LABEL}" x2="{WIDTH}" y1="{y + ROW_HEIGHT - 6}" '
                     f'y2="{y + ROW_HEIGHT - 6}"/>')
        for offset, count in enumerate(counts):
            if not count:
                continue
            bar = max(1.0, (ROW_HEIGHT - 10) * count / top)
            parts.append(
                f'<rect class="bar" x="{LABEL + offset * step:.1f}" '
                f'y="{y + ROW_HEIGHT - 6 - bar:.1f}" width="{max(step - 1, 1):.1f}" '
                f'height="{bar:.1f}"><title>{escape(version)}, {day_plus(first_day, offset)}: '
                f'{count}</title></rect>')
    parts.append(f'<text class="label" x="{LABEL}" y="{height - 2}">{escape(first_day)}</text>'
                 f'<text class="label" x="{WIDTH}" y="{height - 2}" text-anchor="end">'
                 f'{escape(last)}</text></svg>')
    parts.append(
        '<figcaption><table class="files"><caption class="visually-hidden">The numbers of '
        'the chart</caption><thead><tr><th scope="col">Release</th><th scope="col">'
        f'{days} days</th><th scope="col">Last 7 days</th></tr></thead><tbody>'
        + "".join(f'<tr><td>{escape(version)}</td><td>{sum(counts)}</td>'
                  f'<td>{sum(counts[-7:])}</td></tr>' for version, counts in rows)
        + '</tbody></table></figcaption></figure>')
    return "".join(parts)
