"""
The console's pages of the webhooks (admins), drawn from what C{GET
/api/webhooks} answers; never a secret.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from pypid.core.formats.console_pages import (
    console_frame,
    console_start,
    console_table,
    csrf_input,
    hidden,
)
from pypid.core.formats.pages import Chrome
from pypid.core.util.units import counted


def _text(value: object) -> str:
    return "" if value is None else escape(str(value))


def _filter_text(state: Mapping[str, Any]) -> str:
    return "; ".join(f"{label}: {', '.join(str(v) for v in state.get(key) or ['*'])}"
                     for key, label in (("events", "events"), ("indexes", "indexes"),
                                        ("projects", "projects")))


def webhooks_page(chrome: Chrome, person: str, webhooks: Sequence[Mapping[str, Any]], *,
                  root: str = "../") -> bytes:
    """C{/console/webhooks}: each subscription, what it wants, what waits, what failed."""
    parts = console_start("Webhooks", root)
    if webhooks:
        rows = "".join(
            f'<tr><td><a href="{escape(root)}console/webhooks/{escape(str(w["name"]))}">'
            f'{escape(str(w["name"]))}</a></td><td><code>{_text(w.get("url"))}</code></td>'
            f'<td>{escape(_filter_text(w))}</td><td>{_text(w.get("pending") or 0)}</td>'
            f'<td>{_text(w.get("oldest") or "")}</td><td>{_text(w.get("given_up") or 0)}</td>'
            f'<td>{_text(w.get("last_error") or "")}</td></tr>' for w in webhooks)
        parts.append(console_table(("Webhook", "URL", "Wants", "Waiting", "Oldest waiting",
                                    "Given up", "Last error"), rows))
    else:
        parts.append('<p class="muted">No webhook is configured: add a [webhook:NAME] section '
                     'to the configuration (docs/configuration.rst).</p>')
    return console_frame(chrome, root, "Webhooks", parts)


def webhook_page(chrome: Chrome, person: str, csrf: str, state: Mapping[str, Any], *,
                 root: str = "../", tested: Mapping[str, Any] | None = None,
                 redelivered: int | None = None, error: str | None = None) -> bytes:
    """
    C{/console/webhooks/<name>}: one subscription's last deliveries and
    given-up events, a test button, and redeliver buttons.
    """
    name = str(state["name"])
    action = f"{root}console/webhooks/{name}"
    parts = [*console_start(f"Webhook {escape(name)}", root),
             f'<p>Sends to <code>{_text(state.get("url"))}</code>: {escape(_filter_text(state))}.'
             f' {_text(state.get("pending") or 0)} waiting'
             + (f', the oldest since {_text(state["oldest"])}' if state.get("oldest") else "")
             + (f'; next try {_text(state["next_try"])}' if state.get("next_try") else "")
             + '.</p>']
    if error:
        parts.append(f'<p class="error" role="alert">{escape(error)}</p>')
    if tested is not None:
        outcome = ("delivered" if tested.get("delivered")
                   else f'not delivered: {tested.get("error")}')
        parts.append(f'<p role="status">Test event <code>{_text(tested.get("id"))}</code> '
                     f'{escape(outcome)} ({_text(tested.get("seconds"))} s).</p>')
    if redelivered is not None:
        parts.append(f'<p role="status">{counted(redelivered, "event")} to send again.</p>')
    parts.append(f'<form class="inline-form" method="post" action="{escape(action)}/test">'
                 f'{csrf_input(csrf)}<button type="submit">Send a test event</button></form>')
    parts.append('<h2 id="deliveries">Last deliveries</h2>')
    deliveries = state.get("deliveries") or []
    if deliveries:
        parts.append(console_table(
            ("When", "Event", "Type", "Try", "Answer", "Error", "Seconds"),
            "".join(f'<tr><td>{_text(d.get("time"))}</td><td><code>{_text(d.get("id"))}'
                    f'</code></td><td>{_text(d.get("type"))}</td><td>{_text(d.get("try"))}'
                    f'</td><td>{_text(d.get("status") or "none")}</td>'
                    f'<td>{_text(d.get("error") or "")}</td><td>{_text(d.get("seconds"))}'
                    '</td></tr>' for d in deliveries), ' aria-labelledby="deliveries"'))
    else:
        parts.append('<p class="muted">No delivery yet.</p>')
    parts.append('<h2 id="failures">Given up</h2>')
    failures = state.get("failures") or []
    if failures:
        rows = "".join(
            f'<tr><td><code>{_text(f.get("id"))}</code></td><td>{_text(f.get("type"))}</td>'
            f'<td>{_text(f.get("time"))}</td><td>{_text(f.get("tries"))}</td>'
            f'<td>{_text(f.get("error"))}</td><td><form class="inline-form" method="post" '
            f'action="{escape(action)}/redeliver">{csrf_input(csrf)}<input type="hidden" '
            f'name="key" value="{_text(f.get("key"))}"><button type="submit" aria-label='
            f'"Send {_text(f.get("id"))} again">Send again</button></form></td></tr>'
            for f in failures)
        parts.append(
            console_table(("Event", "Type", "Made", "Tries", "Last error", hidden("Send again")),
                          rows, ' aria-labelledby="failures"')
            + f'<form class="inline-form" method="post" action="{escape(action)}/redeliver">'
            f'{csrf_input(csrf)}<button type="submit">Send every one again</button></form>')
    else:
        parts.append('<p class="muted">Nothing was given up.</p>')
    return console_frame(chrome, root, f"Webhook {name}", parts)
