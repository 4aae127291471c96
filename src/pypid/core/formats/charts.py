"""
Charts drawn by pypid as inline SVG (a project's downloads in
the console): no script, no external asset, so the pages' strict
Content-Security-Policy holds; colours come from the stylesheet's classes
(light and dark), and every chart has its numbers beside it as a table
for screen readers and for those who want them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from pypid.core.records.audit_chain import day_plus

#: The most releases drawn, newest first; the others are summed in a last row.
MAX_ROWS = 10

#: The size of one release's row of bars, in SVG user units.
WIDTH, ROW_HEIGHT, LABEL = 640, 36, 120


def downloads_chart(releases: Mapping[str, Sequence[int]], first_day: str,
                    newest_first: Sequence[str]) -> str:
    """
    A project's downloads per release and per day: one row of bars a
    release (the newest L{MAX_ROWS}; older ones summed as "older"), all on
    one scale, each bar titled with its day and count; then the same
    numbers as a table (a release's total, and its last seven days).

    @param releases: C{{version: [downloads a day, oldest first]}}, every
        list of the same length.
    @param first_day: the ISO date of the first day.
    @param newest_first: the versions, newest first.
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
