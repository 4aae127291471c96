"""
C{pypid-admin webhooks}: a running server's webhooks, over its API
(admins; L{pypid.web.admin.webhook_admin}): list them, their deliveries,
send given-up events again, send a test event (exit status 1 when it was
not delivered); and print a new secret for a C{[webhook:NAME]} section.
"""

from __future__ import annotations

import argparse
import json
import secrets
from collections.abc import Callable
from typing import Any, TextIO
from urllib.parse import quote

from pypid.cli.server_client import CliError, Server
from pypid.core.records.webhook_events import new_secret
from pypid.core.util.terminal_text import escaped
from pypid.core.util.units import counted

#: The bytes of a new secret (the specification allows 24 to 64).
SECRET_BYTES = 32


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]
               ) -> argparse.ArgumentParser:
    """The C{webhooks} command's arguments, on C{pypid-admin}'s subcommands."""
    webhooks = commands.add_parser(
        "webhooks", help="the webhooks: list them, their deliveries, send given-up events "
                         "again, send a test event (admins); make a secret")
    webhooks.add_argument("action", choices=("list", "deliveries", "redeliver", "test",
                                             "secret"))
    webhooks.add_argument("name", nargs="?", help="the webhook ([webhook:NAME])")
    webhooks.add_argument("key", nargs="?", help="redeliver: the key (or event id) of one "
                                                 "event given up; without: every one")
    webhooks.add_argument("--json", action="store_true", help="print the server's answer")
    return webhooks


def run(options: argparse.Namespace, server_from: Callable[[argparse.Namespace], Server],
        out: TextIO, err: TextIO) -> int:
    """Run C{pypid-admin webhooks} for parsed C{options}; the exit status."""
    action = options.action
    if action == "secret":
        out.write(new_secret(secrets.token_bytes(SECRET_BYTES)) + "\n")
        return 0
    if action == "list":
        answer = _call(server_from(options), "GET", "api/webhooks")
        return _print(options, out, answer, _listed)
    if not options.name:
        err.write(f"pypid-admin: webhooks {action}: name the webhook\n")
        return 2
    path = f"api/webhooks/{quote(options.name, safe='')}"
    server = server_from(options)
    if action == "deliveries":
        return _print(options, out, _call(server, "GET", path), _deliveries)
    if action == "redeliver":
        body = {} if options.key is None else {"key": options.key}
        answer = _call(server, "POST", path + "/redeliver", body)
        out.write(f"{counted(answer['redelivered'], 'event')} to send again to "
                  f"{escaped(options.name)}\n")
        return 0
    answer = _call(server, "POST", path + "/test", {})
    _print(options, out, answer, _tested)
    return 0 if answer["delivered"] else 1


def _call(server: Server, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    headers = {} if body is None else {"Content-Type": "application/json"}
    with server.request(method, path, headers, data) as response:
        try:
            return json.loads(response.read())
        except ValueError:
            raise CliError(f"{method} {path}: the server's answer is not JSON")


def _print(options: argparse.Namespace, out: TextIO, answer: Any,
           lines: Callable[[Any], list[str]]) -> int:
    if options.json:
        out.write(json.dumps(answer, indent=2, sort_keys=True) + "\n")
    else:
        out.write("".join(escaped(line) + "\n" for line in lines(answer)))
    return 0


def _wants(hook: dict[str, Any]) -> str:
    return "; ".join(f"{key}: {','.join(hook.get(key) or ['*'])}"
                     for key in ("events", "indexes", "projects"))


def _listed(answer: dict[str, Any]) -> list[str]:
    lines = []
    for hook in answer["webhooks"]:
        waiting = hook.get("pending") or 0
        since = f" since {hook['oldest']}" if hook.get("oldest") else ""
        lines.append(f"{hook['name']}  {hook['url']}  ({_wants(hook)})  {waiting} waiting"
                     f"{since}, {hook.get('given_up') or 0} given up"
                     + (f"; last error: {hook['last_error']}" if hook.get("last_error") else ""))
    return lines or ["no webhook is configured ([webhook:NAME] sections)"]


def _deliveries(hook: dict[str, Any]) -> list[str]:
    lines = _listed({"webhooks": [hook]})
    for d in hook.get("deliveries") or []:
        outcome = d.get("error") or f"HTTP {d.get('status')}"
        lines.append(f"  {d.get('time')}  {d.get('id')}  {d.get('type')}  try {d.get('try')}"
                     f"  {outcome}  {d.get('seconds')} s")
    for f in hook.get("failures") or []:
        lines.append(f"  given up {f.get('given_up')}: {f.get('id')} {f.get('type')} after "
                     f"{f.get('tries')} tries ({f.get('error')})  key {f.get('key')}")
    return lines


def _tested(answer: dict[str, Any]) -> list[str]:
    outcome = "delivered" if answer["delivered"] else f"not delivered: {answer['error']}"
    return [f"test event {answer['id']}: {outcome} (HTTP {answer['status']}, "
            f"{answer['seconds']} s)"]
