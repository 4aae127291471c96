"""
C{pypid-admin audit}: the audit log on the command line, read from a
running server as an admin (one line an entry, oldest first, what a client
chose escaped: a yank reason cannot forge a line or send an escape
sequence), or verified where the server keeps it (C{audit verify}: exit
status 1, and a line per broken link, when an entry was removed, edited or
moved).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlencode

from pypid.cli.server_client import CliError, Server, json_answer
from pypid.core.records.audit_chain import FIRST_YEAR, AuditError, format_time, parse_time
from pypid.core.records.audit_query import DEFAULT_LIMIT, MAX_LIMIT
from pypid.core.util.terminal_text import escaped
from pypid.core.util.units import counted

if TYPE_CHECKING:
    # (types only: the command that needs them imports them)
    from pypid.config import Config
    from pypid.storage.base.journal import IJournal

#: An entry of C{GET /api/audit}, as JSON.
JsonEntry = dict[str, Any]

#: What C{verify} says when it cannot read the log.
_CANNOT = "cannot read the audit log"


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]
               ) -> argparse.ArgumentParser:
    """The C{audit} command's arguments, on C{pypid-admin}'s subcommands."""
    audit = commands.add_parser(
        "audit", help="show the audit log (over the API), or verify it (with --config)")
    audit.add_argument("action", nargs="?", choices=("show", "verify"), default="show",
                       help="show entries (the default), or verify the chains in the "
                            "storage (needs --config)")
    audit.add_argument("--since", help="from this date or time (ISO 8601, UTC), or this "
                                       "long ago (30m, 12h, 7d)")
    audit.add_argument("--project", help="only entries about this project")
    audit.add_argument("--user", dest="audit_user", metavar="USER",
                       help="only entries of this user")
    audit.add_argument("--event", help="only entries of this kind (upload, yank, ...)")
    audit.add_argument("--index", help="only entries of this index (default: those naming "
                                       "none)")
    audit.add_argument("--limit", type=int, default=None,
                       help="at most this many entries (without --since: the newest)")
    audit.add_argument("--json", action="store_true", help="print each entry as JSON")
    return audit


def run(options: argparse.Namespace, server_from: Callable[[argparse.Namespace], Server],
        config_from: Callable[[argparse.Namespace], Config], out: TextIO, err: TextIO) -> int:
    """Run C{pypid-admin audit} for parsed C{options}; the exit status."""
    if options.action == "verify":
        return verify(config_from(options), out, err)
    try:
        since = since_value(options.since, time.time()) if options.since else None
    except AuditError as e:
        err.write(f"pypid-admin: audit: --since: {escaped(str(e))}\n")
        return 2
    if options.limit is not None and options.limit < 1:
        err.write("pypid-admin: audit: --limit: expected a number from 1\n")
        return 2
    show(server_from(options), options, out, since)
    return 0


def since_value(text: str, now: float) -> str:
    """The C{since} of C{--since}: a duration (C{7d}) back from C{now}, or an ISO 8601 time."""
    from pypid.core.util.units import parse_duration

    try:
        seconds = parse_duration(text)
    except ValueError:
        return parse_time(text)
    if not seconds <= now:
        raise AuditError(f"{text} ago is before {FIRST_YEAR}: expected a shorter duration, "
                         "or a date or time such as 2026-01-31")
    return format_time(now - seconds)


def show(server: Server, options: argparse.Namespace, out: TextIO,
         since: str | None = None) -> None:
    """
    Print the entries the options ask for, oldest first: with C{since}, page
    after page; without, the newest C{--limit} (following C{before} while a
    page, cut short by the days one request reads, holds fewer).
    """
    query: dict[str, str | int | None] = {
        "project": options.project, "user": options.audit_user, "event": options.event,
        "index": options.index}
    wanted = options.limit

    def page_of(values: dict[str, str | int | None]) -> Any:
        path = "api/audit?" + urlencode({k: v for k, v in values.items() if v is not None})
        return json_answer(server, "GET", path, {"Accept": "application/json"})

    def shown(entry: JsonEntry) -> str:
        return (json.dumps(entry, sort_keys=True) if options.json
                else format_entry(entry)) + "\n"

    if since is not None:
        query["since"] = since
        printed = 0
        while True:
            page = page_of(dict(query, limit=None if wanted is None
                                else min(wanted - printed, MAX_LIMIT)))
            entries = page["entries"]
            if wanted is not None:
                entries = entries[:wanted - printed]
            for entry in entries:
                out.write(shown(entry))
            printed += len(entries)
            if not page.get("next") or (wanted is not None and printed >= wanted):
                return
            query["since"] = page["next"]
    wanted = DEFAULT_LIMIT if wanted is None else wanted
    found: list[JsonEntry] = []
    while len(found) < wanted:
        page = page_of(dict(query, limit=min(wanted - len(found), MAX_LIMIT)))
        found[:0] = page["entries"]
        if not page.get("before"):
            break
        query["before"] = page["before"]
    for entry in found[-wanted:] if len(found) > wanted else found:
        out.write(shown(entry))


def format_entry(entry: JsonEntry) -> str:
    """One line for a person: when, what, outcome, who, where, about what, why; escaped."""
    who = entry.get("user") or "-"
    if entry.get("token"):
        who += f" (token {entry['token']})"
    about = " ".join(entry[name] for name in ("project", "version", "filename", "target")
                     if entry.get(name))
    if entry.get("index"):
        about = f"[{entry['index']}] {about}".rstrip()
    parts = [entry["time"], entry["event"], entry["outcome"], who, entry.get("address") or "-"]
    if about:
        parts.append(about)
    if entry.get("count", 1) != 1:
        parts.append(f"x{entry['count']}")
    if entry.get("detail"):
        parts.append(f"({entry['detail']})")
    return escaped("  ".join(str(part) for part in parts))


def verify(config: Config, out: TextIO, err: TextIO) -> int:
    """Check the chains of the log the configuration's storage holds; the exit status."""
    from pypid.cli.common import run_command
    from pypid.jobs.run import run_at_once
    from pypid.storage.factory import make_journal

    # (blocking reads on the reactor's thread are fine in a command)
    return run_command(
        lambda reactor: check(make_journal(config, run_at_once, reactor), out, err),
        prog="pypid-admin", err=err)


async def check(log: IJournal, out: TextIO, err: TextIO) -> int:
    """
    Check the chains of C{log}, then close it; print a line per note (where a
    chain's kept part begins), a line per broken link, and a summary; the exit
    status.
    """
    from pypid.storage.base.interface import StorageError

    try:
        check = await log.verify()  # a ChainCheck
    except (StorageError, OSError) as e:
        raise CliError(f"{_CANNOT}: {e}")
    finally:
        await log.close()
    for note in check.notes:
        out.write(f"note: {escaped(str(note))}\n")
    for broken in check.broken:
        out.write(f"{escaped(str(broken))}\n")
    summary = f"{counted(check.files, 'file')}, {counted(check.entries, 'entry', 'entries')}"
    if check.broken:
        err.write(f"pypid-admin: audit verify: {summary}: "
                  f"{counted(len(check.broken), 'broken link')}\n")
        return 1
    out.write(f"{summary}: every chain is intact\n")
    return 0
