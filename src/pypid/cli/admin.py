"""
C{pypid-admin}: look after a running server's packages over its HTTP API,
with the same credentials rules as C{pypid-token} (C{--server}, C{--user},
C{$PYPID_PASSWORD}; credentials only over https, or to this machine).

The commands over the API are L{_SERVER_COMMANDS}: each takes C{--cert PEM}
to trust a private CA, and each that acts in one index C{--index NAME}
(L{_in_index}). C{delete} and C{retention apply} ask for C{--yes}: without
a recycle bin (C{[retention] recycle_bin}) a deleted filename is never used
again. The others have modules of their own: C{audit}
(L{pypid.cli.admin_audit}), C{webhooks} (L{pypid.cli.admin_webhooks}),
C{export} and C{import} (L{pypid.cli.bundle}), C{storage init}
(L{pypid.cli.admin_storage}) and C{tls} (L{pypid.cli.private_ca}); those
that work on the storage directly read C{--config FILE}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import quote, urlencode

import attrs

from pypid.cli import admin_audit as audit_command
from pypid.cli import admin_storage as storage_command
from pypid.cli import admin_webhooks as webhooks_command
from pypid.cli import bundle as bundle_commands
from pypid.cli import private_ca as tls_command
from pypid.cli.broken_pipe import quiet_on_broken_pipe
from pypid.cli.server_client import CliError, Server, add_server_options, json_answer, server_from
from pypid.core.dists.names import InvalidName, parse_filename
from pypid.core.indexes.index_names import DEFAULT
from pypid.core.indexes.project_status import STATUSES
from pypid.core.util.terminal_text import escaped
from pypid.core.util.units import counted, format_duration

if TYPE_CHECKING:
    # (types only: the configuration is read by the commands that need it)
    from pypid.config import Config

#: What the simple index answers in JSON (PEP 691).
_JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}
#: The headers of a request with a JSON body, and of one with a form.
_JSON_BODY = {"Content-Type": "application/json"}
_FORM_BODY = {"Content-Type": "application/x-www-form-urlencoded"}


@quiet_on_broken_pipe
def main(argv: list[str] | None = None, out: TextIO = sys.stdout,
         err: TextIO = sys.stderr) -> int:
    """Run the command line; return the exit status."""
    parser = _parser()
    options = parser.parse_args(argv)
    command = _SERVER_COMMANDS.get(options.command)
    problem = command.check(options) if command is not None else None
    if problem is not None:
        parser.error(problem)
    try:
        if options.command == "audit":
            return audit_command.run(options, server_from, config_from, out, err)
        if options.command in bundle_commands.COMMANDS:
            return bundle_commands.run(options, config_from, out, err)
        if options.command == "webhooks":
            return webhooks_command.run(options, server_from, out, err)
        if options.command == "storage":
            return storage_command.run(options, config_from, out, err)
        if options.command == "tls":
            return tls_command.run(
                options, out, None if options.config is None else config_from(options))
        assert command is not None  # (argparse allows only the commands added)
        command.run(server_from(options), options, out)
    except CliError as e:
        err.write(f"pypid-admin: {e}\n")
        return e.status
    return 0


def _parser() -> argparse.ArgumentParser:
    """C{pypid-admin}'s options and sub-commands: L{_SERVER_COMMANDS} first, in order."""
    parser = argparse.ArgumentParser(
        prog="pypid-admin", description="Look after a pypid server's packages.")
    add_server_options(parser)
    parser.add_argument("--config", metavar="FILE",
                        help="the server's configuration, for the commands that work on its "
                             "storage directly (export, import, audit verify, storage init), "
                             "and for tls, "
                             "whose https: lines keep the addresses of its listen lines")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a key of --config, as the daemon's --set does")
    commands = parser.add_subparsers(dest="command", required=True)
    for command in _SERVER_COMMANDS.values():
        command.arguments(commands.add_parser(command.name, help=command.help))
    audit_command.add_parser(commands)
    webhooks_command.add_parser(commands)
    bundle_commands.add_commands(commands)
    storage_command.add_parser(commands)
    tls_command.add_parser(commands)
    return parser


def _no_problem(options: argparse.Namespace) -> str | None:
    """Every command line argparse accepts is a good one."""
    return None


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    """A command of no arguments."""


@attrs.frozen
class ServerCommand:
    """
    One sub-command of C{pypid-admin} that works over the server's HTTP API.

    @ivar run: C{run(server, options, out)}; raises L{CliError}.
    @ivar check: what is wrong with the options argparse accepted (a usage
        error), or L{None}.
    """

    name: str
    help: str
    run: Callable[[Server, argparse.Namespace, TextIO], None]
    arguments: Callable[[argparse.ArgumentParser], None] = _no_arguments
    check: Callable[[argparse.Namespace], str | None] = _no_problem


def config_from(options: argparse.Namespace) -> Config:
    """The configuration of C{--config}, as the daemon reads it, for a command on the storage."""
    from pypid.config import ConfigError, load_config, parse_override

    if options.config is None:
        raise CliError(f"{options.command} works on the storage directly: give the server's "
                       "configuration with --config FILE")
    try:
        overrides = tuple(parse_override(text) for text in options.set)
        return load_config(options.config, overrides, environ=os.environ)
    except (ValueError, ConfigError) as e:
        raise CliError(str(e))


def _in_index(options: argparse.Namespace, path: str) -> str:
    """
    The API path C{path} in the index C{--index} names: under C{NAME/}, where
    the server mounts a named index's routes (the site's admin routes take
    C{?index=NAME} instead).
    """
    index = options.index
    return path if not index or index == DEFAULT else f"{quote(index, safe='')}/{path}"


def _index_argument(parser: argparse.ArgumentParser) -> None:
    """C{--index NAME}: the index a command acts in, as every such command takes it."""
    parser.add_argument("--index", metavar="NAME",
                        help="the index (default: the default index)")


def _get(server: Server, path: str) -> Any:
    return json_answer(server, "GET", path, _JSON)


def _print_answer(server: Server, out: TextIO, method: str, path: str,
                  headers: dict[str, str], body: bytes | None) -> None:
    """Make the request, and print the server's answer: a line of text."""
    with server.request(method, path, headers, body) as response:
        out.write(response.read().decode("utf-8", "replace").strip() + "\n")


def _index_query(options: argparse.Namespace) -> str:
    """C{?index=NAME} of C{--index}, or nothing."""
    return f"?{urlencode({'index': options.index})}" if options.index else ""


def _files(server: Server, options: argparse.Namespace, out: TextIO) -> None:
    """C{files PROJECT}: one line a file: filename, version, size, upload time, yank state."""
    page = _get(server, _in_index(options, f"simple/{quote(options.project)}/"))
    for f in page["files"]:
        yanked = f.get("yanked", False)
        state = "" if yanked is False else (
            f"  yanked: {yanked}" if isinstance(yanked, str) and yanked else "  yanked")
        try:
            version = parse_filename(f["filename"], legacy=True).version
        except InvalidName:
            version = "?"
        # (the server's answer is text clients chose: a yank reason, say)
        out.write(escaped(f"{f['filename']}  {version}  {f.get('size', '?')} bytes  "
                          f"{f.get('upload-time', '?')}{state}") + "\n")


def _release_of(text: str) -> tuple[str, str] | None:
    """C{(project, version)} of C{PROJECT==VERSION}, or L{None}."""
    project, sep, version = text.partition("==")
    if not sep or not project.strip() or not version.strip():
        return None
    return project.strip(), version.strip()


def _promote(server: Server, options: argparse.Namespace, out: TextIO) -> None:
    """Promote a release; one line a file: promoted, or skipped (there already)."""
    found = _release_of(options.release)
    assert found is not None  # (checked with the options)
    project, version = found
    fields: dict[str, Any] = {"from": options.source, "to": options.target,
                              "project": project, "version": version}
    if options.allow_denied:
        fields["allow_denied"] = True
    answer = json_answer(server, "POST", "api/promote", _JSON_BODY, json.dumps(fields).encode())
    for filename in answer["promoted"]:
        out.write(f"promoted {filename} to {answer['to']}\n")
    for filename in answer["skipped"]:
        out.write(f"skipped {filename}: {answer['to']} holds it already\n")


def _status(server: Server, options: argparse.Namespace, out: TextIO) -> None:
    """Set a project's status (C{POST [NAME/]api/projects/PROJECT/status})."""
    path = _in_index(options, f"api/projects/{quote(options.project, safe='')}/status")
    fields = {"status": options.status}
    if options.reason:
        fields["reason"] = options.reason
    _print_answer(server, out, "POST", path, _JSON_BODY, json.dumps(fields).encode())


#: How C{advisories check} words each action.
_ACTIONS = {"warn": "warned", "hide": "hidden", "deny": "denied"}


def _advisories(server: Server, options: argparse.Namespace, out: TextIO) -> None:
    """C{advisories check}: a line a release an index acts on, then each index's totals."""
    query = {key: value for key, value in (("index", options.index), ("mode", options.mode))
             if value}
    answer = _get(server, "api/advisories" + (f"?{urlencode(query)}" if query else ""))
    db = answer["database"]
    out.write(f"{counted(db['advisories'], 'advisory', 'advisories')} of "
              f"{counted(db['projects'], 'project')} in force"
              + (f" (from {db['source']})" if db.get("source") else "") + "\n")
    for report in answer["indexes"]:
        mode = answer.get("dry_run") or report["mode"]
        for release in report["releases"]:
            why = "; ".join(
                a["id"] + (f" ({a['severity']})" if a.get("severity") else "")
                + (f" {a['summary']}" if a.get("summary") else "")
                for a in release["advisories"])
            out.write(f"{report['index']}: {release['project']} {release['version']} "
                      f"{_ACTIONS.get(release['action'], release['action'])}: {why}\n")
        count = len(report["releases"])
        if mode == "off":
            out.write(f"{report['index']}: advisories are off (try --as deny for a dry run)\n")
        else:
            dry = " (dry run)" if answer.get("dry_run") else ""
            out.write(f"{report['index']}: {counted(count, 'release')} "
                      f"{_ACTIONS.get(mode, mode)}{dry}\n")
        for base in report.get("stricter_bases", ()):
            # (a base's mode does not reach the indexes built on it: say so
            # where an operator would read it as if it did)
            out.write(f"{report['index']}: serves {base['index']}'s releases by its own mode "
                      f"({mode}), though {base['index']} is in {base['mode']}: set "
                      f"{report['index']}'s own advisories key to act on them\n")


def _usage(server: Server, options: argparse.Namespace, out: TextIO) -> None:
    """C{usage}: one line a file (downloads, last download, filename), most or least first."""
    query = {"order": "least" if options.least else "most", "days": str(options.days),
             "limit": str(options.limit)}
    if options.index:
        query["index"] = options.index
    answer = _get(server, f"api/usage?{urlencode(query)}")
    out.write(f"{answer['index']}: downloads over the last {counted(answer['days'], 'day')}\n")
    for row in answer["files"]:
        last = row["last_downloaded"] or "never"
        out.write(f"{row['downloads']:>9}  {last:<27}  {row['filename']}\n")


def _bin(server: Server, options: argparse.Namespace, out: TextIO) -> None:
    """
    C{bin}: a line naming the index and what its recycle bin holds, then one
    line a file, the first purged first, each time labelled (a bare second time
    read as a purge that had happened). Or restore one.
    """
    if options.bin_command == "restore":
        path = _in_index(options, f"api/files/{quote(options.filename, safe='')}/restore")
        _print_answer(server, out, "POST", path, {}, b"")
        return
    answer = _get(server, f"api/recycle-bin{_index_query(options)}")
    files = answer["files"]
    kept = format_duration(answer["keep_for"]) if answer["keep_for"] else "off"
    out.write(f"{answer['index']}: {counted(len(files), 'file')} in the recycle bin "
              f"(kept {kept})\n")
    for row in files:
        out.write(f"deleted {row['deleted']}  purge due {row['purged']}  {row['filename']}\n")


def _retention(server: Server, options: argparse.Namespace, out: TextIO) -> None:
    """C{retention plan}: per index, what the rules remove and why; C{apply} removes it."""
    plans = _get(server, f"api/retention{_index_query(options)}")["indexes"]
    for plan in plans:
        releases = plan["releases"]
        files = sum(len(release["files"]) for release in releases)
        out.write(f"{plan['index']}: {counted(len(releases), 'release')}, "
                  f"{counted(files, 'file')}, {_bytes(plan['bytes'])}\n")
        for release in releases:
            out.write(f"  {release['project']} {release['version']}: {release['reason']} "
                      f"({counted(len(release['files']), 'file')}, "
                      f"{_bytes(release['bytes'])})\n")
        kept = {why: count for why, count in plan["kept"].items() if count}
        if kept:
            out.write("  kept: " + ", ".join(f"{count} {why}" for why, count in kept.items())
                      + "\n")
        if options.retention_command != "apply" or not releases:
            continue
        body = json.dumps({"index": plan["index"], "files": [
            f["filename"] for release in releases for f in release["files"]]}).encode()
        applied = json_answer(server, "POST", "api/retention/apply", _JSON_BODY, body)
        where = ("into the recycle bin" if plan["recycle_bin"] else "for good")
        out.write(f"{plan['index']}: removed {counted(len(applied['removed']), 'file')} {where}, "
                  f"{_bytes(applied['bytes'])}\n")
        for skipped in applied["skipped"]:
            out.write(f"  kept {skipped['filename']}: {skipped['reason']}\n")


def _bytes(size: int) -> str:
    """A size as people read it: C{1.5 MiB}."""
    if size < 1024:
        return counted(size, "byte")
    value = float(size)
    for unit in ("KiB", "MiB"):
        value /= 1024
        if value < 1024:
            return f"{value:.1f} {unit}"
    return f"{value / 1024:.1f} GiB"


def _change(server: Server, options: argparse.Namespace, out: TextIO) -> None:
    """Yank, unyank or delete a file or a release."""
    if options.version is None:
        path = f"api/files/{quote(options.target, safe='')}"
    else:
        path = f"api/projects/{quote(options.target, safe='')}/{quote(options.version, safe='')}"
    path = _in_index(options, path)
    if options.command == "delete":
        _print_answer(server, out, "DELETE", path, {}, None)
    else:
        fields = {"reason": options.reason} if options.command == "yank" else {}
        _print_answer(server, out, "POST", f"{path}/{options.command}", _FORM_BODY,
                      urlencode(fields).encode())


def _projects(server: Server, options: argparse.Namespace, out: TextIO) -> None:
    """One line a project the user may read."""
    for project in _get(server, _in_index(options, "simple/"))["projects"]:
        out.write(f"{project['name']}\n")


def _project_argument(parser: argparse.ArgumentParser) -> None:
    """C{files}' arguments: the project, and its index."""
    parser.add_argument("project")
    _index_argument(parser)


def _target_arguments(parser: argparse.ArgumentParser) -> None:
    """C{unyank}'s arguments, which C{yank} and C{delete} share: a file or a release."""
    parser.add_argument("target", metavar="FILENAME|PROJECT")
    parser.add_argument("version", nargs="?", help="with a project: the release")
    _index_argument(parser)


def _yank_arguments(parser: argparse.ArgumentParser) -> None:
    """C{yank}'s arguments: a file or a release, and why."""
    _target_arguments(parser)
    parser.add_argument("--reason", default="")


def _delete_arguments(parser: argparse.ArgumentParser) -> None:
    """C{delete}'s arguments: a file or a release, and C{--yes}."""
    _target_arguments(parser)
    parser.add_argument("--yes", action="store_true",
                        help="really delete: the filenames can never be used again "
                             "for other files")


def _delete_check(options: argparse.Namespace) -> str | None:
    """C{delete} asks for C{--yes}: a file deleted for good leaves its name unusable."""
    if not options.yes:
        return ("delete: add --yes (into the recycle bin when the server keeps one, "
                "else for good)")
    return None


def _status_arguments(parser: argparse.ArgumentParser) -> None:
    """C{status}' arguments: the project, its status, why, and its index."""
    parser.add_argument("project")
    parser.add_argument("status", choices=STATUSES)
    parser.add_argument("--reason", help="why, in one short line (shown on its pages)")
    _index_argument(parser)


def _promote_arguments(parser: argparse.ArgumentParser) -> None:
    """C{promote}'s arguments: from which index, to which, and the release."""
    parser.add_argument("source", metavar="FROM", help="the index that hosts the release")
    parser.add_argument("target", metavar="TO", help="the hosted index to promote it to")
    parser.add_argument("release", metavar="PROJECT==VERSION")
    parser.add_argument("--allow-denied", action="store_true",
                        help="admins: promote it although advisories deny it in either "
                             "index (the audit log records the override)")


def _promote_check(options: argparse.Namespace) -> str | None:
    """C{promote}'s release is C{PROJECT==VERSION}."""
    if not _release_of(options.release):
        return f"{options.release}: give the release as PROJECT==VERSION"
    return None


def _advisories_arguments(parser: argparse.ArgumentParser) -> None:
    """C{advisories}' own sub-command: C{check} (C{--index}, C{--as})."""
    advisory_commands = parser.add_subparsers(dest="advisories_command", required=True)
    check = advisory_commands.add_parser(
        "check", help="list, per index, the releases hidden, denied or warned about, and why")
    check.add_argument("--index", metavar="NAME", help="this index only")
    check.add_argument("--as", dest="mode", choices=("warn", "hide", "deny"),
                       help="a dry run: what each index would do in this mode (its "
                            "severity and waivers kept)")


def _usage_arguments(parser: argparse.ArgumentParser) -> None:
    """C{usage}'s arguments: the order, the days counted, how many files, the index."""
    parser.add_argument("--least", action="store_true", help="the least downloaded first")
    parser.add_argument("--days", type=int, default=30, help="the days counted (default 30)")
    parser.add_argument("--limit", type=int, default=20, help="how many files (default 20)")
    _index_argument(parser)


def _bin_arguments(parser: argparse.ArgumentParser) -> None:
    """C{bin}'s arguments: C{list} or C{restore FILENAME}, and the index."""
    parser.add_argument("bin_command", nargs="?", choices=("list", "restore"), default="list")
    parser.add_argument("filename", nargs="?", help="with restore: the file to restore")
    _index_argument(parser)


def _bin_check(options: argparse.Namespace) -> str | None:
    """C{bin restore} takes a filename, and C{bin list} none."""
    if (options.bin_command == "restore") != bool(options.filename):
        return "bin: give a filename to restore, and only to restore"
    return None


def _retention_arguments(parser: argparse.ArgumentParser) -> None:
    """C{retention}'s arguments: C{plan} or C{apply}, the index, and C{--yes}."""
    parser.add_argument("retention_command", choices=("plan", "apply"))
    parser.add_argument("--index", metavar="NAME", help="this hosted index only")
    parser.add_argument("--yes", action="store_true",
                        help="with apply: remove what the plan lists")


def _retention_check(options: argparse.Namespace) -> str | None:
    """C{retention apply} asks for C{--yes}: it removes files."""
    if options.retention_command == "apply" and not options.yes:
        return "retention apply: add --yes (run retention plan first to see what goes)"
    return None


#: The sub-commands over the HTTP API, by name, in the order C{--help} lists them.
_SERVER_COMMANDS = {command.name: command for command in (
    ServerCommand("projects", "list the projects", _projects, _index_argument),
    ServerCommand("files", "list a project's files", _files, _project_argument),
    ServerCommand("yank", "yank a file, or every file of a release", _change, _yank_arguments),
    ServerCommand("unyank", "undo a yank", _change, _target_arguments),
    ServerCommand("delete", "delete a file, or a release (into the recycle bin when the "
                            "server keeps one)", _change, _delete_arguments, _delete_check),
    ServerCommand("status", "set a hosted project's status (admins): active, archived (no "
                            "uploads), quarantined (no uploads, no files offered), deprecated",
                  _status, _status_arguments),
    ServerCommand("promote", "promote a release from one index to another (read on the "
                             "first, upload on the second)",
                  _promote, _promote_arguments, _promote_check),
    ServerCommand("advisories", "what the security advisories do to each index (admins)",
                  _advisories, _advisories_arguments),
    ServerCommand("usage", "an index's files, the most (or least) downloaded first (admins)",
                  _usage, _usage_arguments),
    ServerCommand("bin", "the recycle bin: list it (admins), or restore a file from it",
                  _bin, _bin_arguments, _bin_check),
    ServerCommand("retention", "the retention rules: what they remove (plan), or remove it "
                               "(apply), admins only",
                  _retention, _retention_arguments, _retention_check),
)}

if __name__ == "__main__":
    sys.exit(main())
