"""
C{pypid-admin audit}: the audit log on the command line.

  - C{pypid-admin audit [--since WHEN] [--project P] [--user U] [--event E]}
    reads C{GET /api/audit} of a running server, as an admin, and prints
    one line an entry, oldest first (with C{--since}, every entry since
    then, page after page; without, the newest C{--limit});
  - C{pypid-admin --config FILE audit verify} reads the log where the
    server keeps it (its storage folder, or its bucket) and checks every
    chain: exit status 1, and a line per broken link, when an entry was
    removed, edited or moved.
"""

import datetime
import json
from urllib.parse import urlencode

from pypid.cli.client import CliError

#: What C{verify} says when it cannot read the log.
_CANNOT = "cannot read the audit log"


def add_parser(commands):
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
    audit.add_argument("--limit", type=int, default=None,
                       help="at most this many entries (without --since: the newest)")
    audit.add_argument("--json", action="store_true", help="print each entry as JSON")
    return audit


def run(options, server_from, config_from, out, err):
    """
    Run C{pypid-admin audit} for parsed C{options}; the exit status.

    @param server_from: C{server_from(options) -> Server}.
    @param config_from: C{config_from(options) -> Config}.
    @raise CliError: for a failure to report in one line.
    """
    if options.action == "verify":
        return verify(config_from(options), out, err)
    show(server_from(options), options, out)
    return 0


def since_value(text, now):
    """
    The C{since} to send for C{--since}: a duration (C{7d}) counts back from
    C{now}; anything else goes as it is (the server checks it).
    """
    from pypid.core.units import parse_duration

    try:
        seconds = parse_duration(text)
    except ValueError:
        return text
    when = datetime.datetime.fromtimestamp(now - seconds, tz=datetime.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def show(server, options, out, now=None):
    """Print the entries the options ask for, page after page."""
    import time

    query = {"project": options.project, "user": options.audit_user, "event": options.event,
             "limit": options.limit}
    if options.since:
        query["since"] = since_value(options.since, time.time() if now is None else now)
    while True:
        path = "api/audit?" + urlencode({k: v for k, v in query.items() if v is not None})
        with server.request("GET", path, {"Accept": "application/json"}) as response:
            page = json.loads(response.read())
        for entry in page["entries"]:
            out.write((json.dumps(entry, sort_keys=True) if options.json
                       else format_entry(entry)) + "\n")
        if not page.get("next") or options.limit is not None:
            return
        query["since"] = page["next"]


def format_entry(entry):
    """One line for a person: when, what, outcome, who (token), where, about what, why."""
    who = entry.get("user") or "-"
    if entry.get("token"):
        who += f" (token {entry['token']})"
    about = " ".join(entry[name] for name in ("project", "version", "filename", "target")
                     if entry.get(name))
    parts = [entry["time"], entry["event"], entry["outcome"], who, entry.get("address") or "-"]
    if about:
        parts.append(about)
    if entry.get("count", 1) != 1:
        parts.append(f"x{entry['count']}")
    if entry.get("detail"):
        parts.append(f"({entry['detail']})")
    return "  ".join(parts)


def verify(config, out, err):
    """
    Check the chains of the log the configuration's storage holds, under
    the reactor: 0 when intact, 1 (and a line per broken link) when not.
    """
    from twisted.internet import reactor, task
    from twisted.internet.defer import ensureDeferred, maybeDeferred

    from pypid.tap import make_audit_log

    status = {}

    async def main(reactor):
        # (blocking reads on the reactor's thread are fine: this is a
        # command, not a server)
        try:
            status["code"] = await check(make_audit_log(config, maybeDeferred, reactor),
                                         out, err)
        except CliError as e:
            status["error"] = e

    try:
        task.react(lambda reactor: ensureDeferred(main(reactor)), _reactor=reactor)
    except SystemExit as e:
        if "error" in status:
            raise status["error"]
        if "code" not in status:
            raise CliError(f"{_CANNOT}: stopped with status {e.code}")
    return status["code"]


async def check(log, out, err):
    """
    Check the chains of C{log} (an L{pypid.storage.audit.IAuditLog}), then
    close it; print a line per broken link and a summary.

    @return: the exit status: 0 when every chain is intact, 1 when not.
    @raise CliError: when the log cannot be read.
    """
    from pypid.storage.interface import StorageError

    try:
        verified = await log.verify()
    except (StorageError, OSError) as e:
        raise CliError(f"{_CANNOT}: {e}")
    finally:
        await log.close()
    for broken in verified.broken:
        out.write(f"{broken}\n")
    summary = f"{verified.files} files, {verified.entries} entries"
    if verified.broken:
        err.write(f"pypid-admin: audit verify: {summary}: {len(verified.broken)} broken "
                  "links\n")
        return 1
    out.write(f"{summary}: every chain is intact\n")
    return 0
