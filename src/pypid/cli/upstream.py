"""
C{pypid-upstream}: drive a server's upstream cache from the command line.
C{precache} downloads through the server every file the input pins, so
that the server keeps them (checked against their hashes) and can serve
them with the upstream down.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Iterable
from typing import Any, TextIO, cast
from urllib.parse import quote, urljoin

from pypid.cli.broken_pipe import quiet_on_broken_pipe
from pypid.cli.server_client import CliError, Server, add_server_options, json_answer, server_from
from pypid.core.util.units import counted
from pypid.upstream.page_model import UpstreamFile, UpstreamPageError
from pypid.upstream.parser import parse_page
from pypid.upstream.requirements import (
    Pin,
    RequirementsError,
    parse_names,
    parse_pylock,
    parse_requirements,
    select,
)

ACCEPT_JSON = "application/vnd.pypi.simple.v1+json"


def _is_terminal(out: TextIO) -> bool:
    """Whether C{out} is a terminal, where a bar redrawn in place reads as one."""
    try:
        return out.isatty()
    except (AttributeError, ValueError):  # (a closed or odd stream)
        return False


def _progress(done: int, total: int, name: str, out: TextIO) -> None:
    """
    Redraw the progress bar on C{out}: a terminal only, since elsewhere (a
    CI log, a file) each C{\\r} redraw is kept, one long line.
    """
    if not _is_terminal(out):
        return
    width = 30
    filled = int(width * done / total) if total else width
    line = f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {name[:40]:<40}"
    out.write(line)
    out.flush()


def precache(server: Server, pins: Iterable[Pin],
             out: TextIO = sys.stderr) -> tuple[list[str], list[tuple[str, str]]]:
    """Download through the server every file the pins select; C{(cached, failed)}."""
    chosen: list[UpstreamFile] = []
    failed: list[tuple[str, str]] = []
    for pin in pins:
        page_url = f"simple/{quote(pin.project)}/"
        try:
            with server.request("GET", page_url, {"Accept": ACCEPT_JSON}) as response:
                body = response.read()
                ctype = response.headers.get("Content-Type", "")
            page = parse_page(body, ctype, urljoin(server.url, page_url), pin.project)
        except (CliError, UpstreamPageError) as e:
            failed.append((pin.project, str(e)))
            continue
        files = select(pin, page.files)
        if not files:
            failed.append((pin.project, "no file matches " + (
                f"version {pin.version}" if pin.version else "it")))
        chosen.extend(files)
    cached: list[str] = []
    for number, f in enumerate(chosen, 1):
        _progress(number - 1, len(chosen), f.filename, out)
        try:
            digest = hashlib.sha256()
            with server.request("GET", f.url, {"Accept-Encoding": "identity"}) as response:
                while data := response.read(1 << 16):
                    digest.update(data)
            if digest.hexdigest() != f.sha256:
                raise CliError("the bytes do not match the page's sha256")
            if f.metadata_sha256 is not None:
                with server.request("GET", f.url + ".metadata") as response:
                    response.read()
        except CliError as e:
            failed.append((f.filename, str(e)))
            continue
        cached.append(f.filename)
    _progress(len(chosen), len(chosen), "done", out)
    if _is_terminal(out):
        out.write("\n")
    return cached, failed


def refreshed_line(answer: dict[str, object]) -> str:
    """The line C{refresh} prints: the file count, and the status upstream unless active."""
    line = f"{answer['project']}: {counted(cast(int, answer['files']), 'file')} upstream"
    status = answer.get("status")
    if isinstance(status, str) and status != "active":
        line += f", {status}"
        if status == "quarantined":
            line += " (none of its files is served)"
        reason = answer.get("reason")
        if isinstance(reason, str) and reason:
            line += f": {reason}"
    if answer.get("removed") is True:
        line += (f"\n  (removed upstream since: the quarantine is remembered here; "
                 f"'pypid-upstream release {answer['project']}' forgets it)")
    return line + "\n"


def released_line(answer: dict[str, object]) -> str:
    """The line C{release} prints: the quarantine forgotten, with its reason."""
    reason = answer.get("reason")
    return (f"{answer['project']}: {answer['released']} released"
            + (f" ({reason})" if isinstance(reason, str) and reason else "")
            + "; its page is asked of the upstream again\n")


def takedown_lines(answer: dict[str, Any]) -> list[str]:
    """The lines C{takedowns} prints: a line per file, then a count per upstream."""
    from pypid.core.dists.model import format_upload_time
    lines = []
    for upstream in answer.get("upstreams", []):
        files = upstream.get("files", [])
        served = "still served (keep_removed)" if upstream.get("keep_removed") else "withheld"
        for f in files:
            lines.append(f"{upstream['name']}: {f['filename']} ({f['project']}) no longer "
                         f"listed upstream since {format_upload_time(f['seen'])}: {served}")
        lines.append(f"{upstream['name']}: {counted(len(files), 'file')} taken down upstream")
    if not lines:
        lines.append("the server proxies no upstream")
    return lines


@quiet_on_broken_pipe
def main(argv: list[str] | None = None, out: TextIO = sys.stdout,
         err: TextIO = sys.stderr) -> int:
    """Run the command line; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="pypid-upstream",
        description="Drive a pypid server's upstream cache: pre-cache pinned files, "
                    "refresh a project's upstream page, release a remembered quarantine, "
                    "list the files the upstream took down, or check that the upstreams "
                    "work.")
    add_server_options(parser)
    commands = parser.add_subparsers(dest="command", required=True)
    pre = commands.add_parser("precache", help="fetch pinned files into the server's cache")
    pre.add_argument("-r", "--requirement", help="a requirements file")
    pre.add_argument("--lock", help="a pylock.toml (PEP 751) file")
    pre.add_argument("names", nargs="*", help="project names (their latest versions)")
    refresh = commands.add_parser("refresh", help="fetch a project's upstream page again now")
    refresh.add_argument("project")
    release = commands.add_parser(
        "release", help="forget the quarantine remembered of a project the upstream removed "
                        "(admins)")
    release.add_argument("project")
    commands.add_parser("takedowns", help="list the kept files the upstream no longer lists "
                                          "(admins)")
    check = commands.add_parser(
        "check", help="fetch one page and one file through each upstream and say what works "
                      "and what to set (admins)")
    check.add_argument("project", nargs="?", default="pip",
                       help="the project whose page and smallest file to fetch (pip)")
    options = parser.parse_args(argv)
    try:
        server = server_from(options)
        if options.command == "takedowns":
            answer = json_answer(server, "GET", "api/upstream/takedowns")
            out.write("".join(line + "\n" for line in takedown_lines(answer)))
            return 0
        if options.command == "check":
            path = "api/upstream/check?project=" + quote(options.project)
            answer = json_answer(server, "POST", path)
            out.write("".join(u["line"] + "\n" for u in answer["upstreams"]))
            return 0 if all(u["ok"] for u in answer["upstreams"]) else 1
        if options.command in ("refresh", "release"):
            path = f"api/upstream/{quote(options.project)}/{options.command}"
            answer = json_answer(server, "POST", path)
            out.write(refreshed_line(answer) if options.command == "refresh"
                      else released_line(answer))
            return 0
        pins: list[Pin] = []
        if options.requirement:
            with open(options.requirement, encoding="utf-8") as f:
                pins += parse_requirements(f.read())
        if options.lock:
            with open(options.lock, encoding="utf-8") as f:
                pins += parse_pylock(f.read())
        pins += parse_names(options.names)
        if not pins:
            raise CliError("nothing to pre-cache: give -r, --lock or names")
        cached, failed = precache(server, pins, err)
    except (CliError, RequirementsError, OSError) as e:
        err.write(f"pypid-upstream: {e}\n")
        return e.status if isinstance(e, CliError) else 1
    for name in cached:
        out.write(f"cached {name}\n")
    for name, reason in failed:
        out.write(f"FAILED {name}: {reason}\n")
    out.write(f"{counted(len(cached), 'file')} cached, {len(failed)} failed\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
