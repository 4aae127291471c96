"""
C{pypid-export}: write the whole index as static files (the tree that
L{pypid.export.plan} describes), to a folder or a bucket, for a web server
or a CDN to serve without the daemon; the tool's composition root.

It reads the server's storage as the daemon does at start-up, beside a
daemon that may run on it, and withholds what the daemon withholds from
an anonymous reader: a quarantined project's files, the releases the
index's advisories deny or hide. When the index hides or denies by
advisories that cannot be read, nothing is exported, as the daemon serves
none of those releases until it has read them.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO, TypeVar, cast

import attrs
from twisted.logger import globalLogBeginner

from pypid.cli.broken_pipe import quiet_on_broken_pipe
from pypid.cli.common import (
    ArgumentParser,
    Closing,
    UsageError,
    bucket_overlapping,
    close_all,
    failure_line,
    open_storage,
    overlapping,
    run_command,
)
from pypid.cli.server_client import log_lines
from pypid.config import Config, ConfigError, load_config, parse_override
from pypid.config.s3_settings import S3_KEYS
from pypid.config.values import optional_url
from pypid.core.indexes.composition import Filters
from pypid.core.indexes.index_names import DEFAULT, UPSTREAM_PREFIX, index_section
from pypid.core.security.advisories import DENY, HIDE, OFF, AdvisoryBoard, AdvisoryPolicy
from pypid.core.util.startup import StartupError
from pypid.core.util.units import counted
from pypid.export.exporter import Exporter, IndexChain
from pypid.export.plan import ExportError, ExportSettings
from pypid.export.target import LocalTarget, S3Target
from pypid.jobs.run import run_at_once
from pypid.storage.base.interface import StorageError

if TYPE_CHECKING:
    from pypid.storage.base.interface import IStorage
    from pypid.storage.s3.api import S3Client

T = TypeVar("T")

_DESCRIPTION = """\
Write the whole index as static files (PEP 503 and PEP 691 pages, the files
and their .metadata, the legacy JSON API, packages.json) to a folder or an
S3 bucket, for nginx, a bucket or a CDN to serve without the daemon. A
second run rewrites only what changed and removes what is gone.
"""

_EPILOG = """\
DEST is a folder, or s3://BUCKET/PREFIX. The storage and its snapshot are
those of the configuration file (the daemon may keep running). A bucket is
reached with the [s3] section's endpoint and credentials, or the standard
AWS ones; --s3-endpoint and --s3-region override them.
"""


def _parser() -> ArgumentParser:
    parser = ArgumentParser(prog="pypid-export", description=_DESCRIPTION, epilog=_EPILOG,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dest", nargs="?", metavar="DEST",
                        help="the folder, or s3://BUCKET/PREFIX, to write")
    parser.add_argument("-c", "--config", help="the server's configuration file (INI)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one configuration key (repeatable)")
    parser.add_argument("--files-url", metavar="URL",
                        help="link each file as URL<project>/<filename> (with .metadata "
                             "beside it, as the daemon's /files/ serves them) instead of "
                             "writing the files")
    parser.add_argument("--base-url", metavar="URL",
                        help="the URL DEST is served at, for the absolute links of the "
                             "legacy JSON API (default: links from the host's root)")
    parser.add_argument("--full", action="store_true",
                        help="render and write everything again, whatever the last "
                             "export wrote")
    parser.add_argument("--links", choices=("auto", "always", "never"),
                        help="hard-link files from a local storage on the same filesystem: "
                             "auto (the default) when they are readable by everyone, always, "
                             "or never (copy)")
    parser.add_argument("--s3-bucket", metavar="BUCKET", help="write to this bucket")
    parser.add_argument("--s3-prefix", metavar="PREFIX", default=None,
                        help="under this key prefix of the bucket")
    parser.add_argument("--s3-endpoint", metavar="URL",
                        help="the bucket's S3 endpoint (default: [s3] endpoint_url, or AWS)")
    parser.add_argument("--s3-region", metavar="REGION",
                        help="the bucket's region (default: [s3] region)")
    parser.add_argument("--index", metavar="NAME", default=DEFAULT,
                        help="export this index ([index:NAME]) as its pages list it: its "
                             "files and its hosted bases' (upstream files are not "
                             "exported); default: the index of /simple/")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="say what is read and written")
    return parser


@attrs.frozen
class ExportOptions:
    """A checked command line."""

    dest: str | None
    bucket: str | None
    prefix: str
    config: str | None
    overrides: tuple[tuple[str, str, str], ...]
    files_url: str | None
    base_url: str | None
    full: bool
    links: str
    endpoint: str | None
    region: str | None
    verbose: bool
    index: str = DEFAULT

    @property
    def s3(self) -> bool:
        """Whether the export goes to a bucket."""
        return self.bucket is not None


def _check(parse: Callable[[str], T], value: str, what: str) -> T:
    try:
        return parse(value)
    except ValueError as e:
        raise UsageError(f"{what}: {e}")


def parse_options(argv: list[str] | None) -> ExportOptions:
    """Read and check the command line; L{UsageError} says what is wrong."""
    args = _parser().parse_args(argv)
    bucket, prefix, dest = None, "", args.dest
    if dest is not None and dest.startswith("s3://"):
        if args.s3_bucket is not None:
            raise UsageError("give the bucket once: as DEST (s3://BUCKET/PREFIX) or "
                             "with --s3-bucket")
        bucket, _, prefix = dest[len("s3://"):].partition("/")
        if args.s3_prefix is not None:
            raise UsageError("give the prefix once: in DEST (s3://BUCKET/PREFIX) or "
                             "with --s3-prefix")
        dest = None
    elif args.s3_bucket is not None:
        if dest is not None:
            raise UsageError("give either DEST or --s3-bucket, not both")
        bucket, prefix = args.s3_bucket, args.s3_prefix or ""
    elif dest is None:
        raise UsageError("say where to write: DEST (a folder, or s3://BUCKET/PREFIX) "
                         "or --s3-bucket")
    elif not dest.strip():
        raise UsageError("DEST is empty")
    if bucket is None:
        for name in ("s3_prefix", "s3_endpoint", "s3_region"):
            if getattr(args, name) is not None:
                raise UsageError(f"--{name.replace('_', '-')} is for an export to a bucket")
    else:
        if args.links is not None:
            raise UsageError("--links is for an export to a folder")
        bucket = _check(S3_KEYS["bucket"][1], bucket, "the bucket")
        if not bucket:
            raise UsageError("the bucket name is empty")
        prefix = _check(S3_KEYS["prefix"][1], prefix, "the prefix")
    try:
        overrides = tuple(parse_override(text) for text in args.set)
    except ValueError as e:
        raise UsageError(str(e))
    url = optional_url("https://pypi.example/files/")
    return ExportOptions(
        dest=dest, bucket=bucket, prefix=prefix, config=args.config, overrides=overrides,
        files_url=_check(url, args.files_url or "", "--files-url"),
        base_url=_check(optional_url("https://pypi.example/"), args.base_url or "",
                        "--base-url"),
        full=args.full, links=args.links or "auto",
        endpoint=(_check(S3_KEYS["endpoint_url"][1], args.s3_endpoint, "--s3-endpoint")
                  if args.s3_endpoint is not None else None),
        region=(_check(S3_KEYS["region"][1], args.s3_region, "--s3-region")
                if args.s3_region is not None else None),
        verbose=args.verbose, index=args.index,
    )


@quiet_on_broken_pipe
def main(argv: list[str] | None = None, out: TextIO | None = None,
         err: TextIO | None = None) -> int:
    """Run C{pypid-export}: 0 when complete, 1 when it failed (or left files out), 2: bad usage."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    try:
        options = parse_options(argv)
    except UsageError as e:
        return _parser().refuse(err, str(e))
    globalLogBeginner.beginLoggingTo([log_lines(err, "pypid-export", options.verbose)],
                                     redirectStandardIO=False)
    return run_command(lambda reactor: export_command(options, reactor, out, err),
                       prog="pypid-export", err=err)


async def export_command(options: ExportOptions, reactor: Any, out: TextIO,
                         err: TextIO) -> int:
    """Run one export for checked L{ExportOptions}; the exit status."""
    closing: Closing = []
    try:
        config = load_config(options.config, options.overrides, environ=os.environ)
        if config.auth.read != "everyone" or config.acl:
            err.write("pypid-export: warning: the server limits who may read ([auth] read, "
                      "[acl]); the export has no access control and holds every project: "
                      "serve it only to those who may read them all\n")
        storage = await _open_storage(config, options, reactor, closing)
        target = (_s3_target(config, options, reactor) if options.s3
                  else _local_target(options))
        chain = (await _index_chain(config, options.index, reactor, closing)
                 if options.index != DEFAULT else None)
        advisories, applied = _advisories(config, options.index, err)
        if advisories is not None:
            applied += await _waivers(storage, advisories, options.index, err)
        settings = ExportSettings(files_url=options.files_url, base_url=options.base_url)
        from pypid.export.people_files import make_people
        exporter = Exporter(storage, target, settings, run_at_once, config.server.snapshot,
                            people=make_people(options.base_url, options.files_url),
                            full=options.full, chain=chain,
                            advisories=advisories)
        report = await exporter.export()
    except Exception as e:
        message = failure_line(e, (ConfigError, ExportError, StorageError, StartupError))
        err.write(f"pypid-export: {message}\n")
        return 1
    finally:
        await close_all(closing)
    for problem in report.problems:
        err.write(f"pypid-export: left out {problem}\n")
    out.write(report.summary(target.describe()) + "\n")
    if applied:
        out.write(applied + "\n")
    return 1 if report.problems else 0


def _advisories(config: Config, index: str, err: TextIO) -> tuple[AdvisoryPolicy | None, str]:
    """
    The exported index's advisory policy over the advisories a daemon puts in
    force at its start, and a line saying what is applied (C{""}: none).

    @raise ExportError: when the index hides or denies releases by their
        advisories and they cannot be read.
    """
    from pypid.advisories.feed import LoadFailed, read_in_force
    from pypid.state.index_sections import advisory_rules

    rules = advisory_rules(config).get(index)
    if rules is None or rules.mode == OFF:
        return None, ""
    where = index_section(index)
    try:
        found = read_in_force(config.advisories, config.server.snapshot)
    except LoadFailed as e:
        if rules.mode in (HIDE, DENY):
            raise ExportError(
                f"{where} advisories = {rules.mode}, but the advisories cannot be read "
                f"({e}): nothing is exported (the daemon serves none of the releases "
                "they might cover until it has read them)")
        err.write(f"pypid-export: warning: the advisories cannot be read ({e}): this "
                  "export names none\n")
        return None, ""
    for warning in found.warnings:
        err.write(f"pypid-export: warning: {warning}\n")
    if not config.advisories.configured:
        err.write(f"pypid-export: warning: {where} advisories = {rules.mode}, but "
                  "[advisories] names no path or url: no advisory is applied\n")
    board = AdvisoryBoard()
    board.replace(found.db)
    source = f" from {found.db.source}" if found.db.source else ""
    return (AdvisoryPolicy(rules, board),
            f"Advisories applied ({where} advisories = {rules.mode}): "
            f"{counted(len(found.db), 'advisory', 'advisories')}{source}")


async def _waivers(storage: IStorage, advisories: AdvisoryPolicy, index: str,
                   err: TextIO) -> str:
    """
    Act by the waivers admins keep for C{index}, as the daemon does; what the
    summary line adds. An unreadable document is warned about and none
    applied (the export then leaves out more, never less).
    """
    from pypid.core.security.advisory_waivers import InvalidWaiver, Waivers
    from pypid.storage.base.capabilities import WAIVERS, IServerDocuments

    if not IServerDocuments.providedBy(storage):
        return ""
    data = await cast(IServerDocuments, storage).document(WAIVERS)
    try:
        waivers = Waivers() if data is None else Waivers.from_bytes(data)
    except InvalidWaiver as e:
        err.write(f"pypid-export: warning: the advisory waivers kept are unreadable ({e}): "
                  "none is applied\n")
        return ""
    kept = waivers.of_index(index)
    advisories.take_waivers(kept)
    count = len(waivers.find(index))
    return f", {counted(count, 'waiver')} kept through the API" if count else ""


async def _index_chain(config: Config, name: str, reactor: Any,
                       closing: Closing) -> IndexChain:
    """
    The hosted sources of the index C{name}, in the order its pages read them; a view's filters.
    """
    from pypid.state.index_sections import source_order, view_filters
    from pypid.storage.base.reading import StoredSource
    from pypid.storage.factory import index_settings, index_snapshot_path

    settings = config.indexes.get(name)
    if settings is None:
        raise ExportError(f"--index {name}: no [index:{name}] is configured")
    parts = []
    for source in source_order(config, name):
        if source.startswith(UPSTREAM_PREFIX):
            continue  # (upstream files are not the server's to export)
        storage = await open_storage(index_settings(config, source), reactor, run_at_once,
                                     closing, prepare=False)
        parts.append(StoredSource(source, storage,
                                index_snapshot_path(config.server.snapshot, source)))
    return IndexChain(tuple(parts), view_filters(settings) if settings.view else Filters(),
                      reactor.seconds())


async def _open_storage(config: Config, options: ExportOptions, reactor: Any,
                        closing: Closing) -> IStorage:
    """The server's storage, to read beside a daemon, once DEST is known not to overlap it."""
    if config.bucket is None:
        if options.dest is not None:
            _check_apart(config.storage.path, options.dest)
    elif options.s3:
        _check_apart_in_bucket(config, options)
    return await open_storage(config, reactor, run_at_once, closing, prepare=False)


def _check_apart(storage_root: str, dest: str) -> None:
    """Refuse a DEST inside the storage folder (the scan would read it) or around it."""
    if overlapping(storage_root, dest):
        raise ExportError(f"DEST {os.path.realpath(dest)} and the storage folder "
                          f"{os.path.realpath(storage_root)} must not be inside one another")


def _check_apart_in_bucket(config: Config, options: ExportOptions) -> None:
    """Refuse an export into the storage's bucket where the daemon's scans would read it."""
    s3 = config.bucket
    assert options.bucket is not None and s3 is not None  # (to a bucket, from a bucket)
    if bucket_overlapping(config, "s3", options.bucket, options.prefix, options.endpoint):
        raise ExportError(
            f"s3://{options.bucket}/{options.prefix} and the storage's "
            f"s3://{s3.bucket}/{s3.prefix} must not be inside one another")


def _local_target(options: ExportOptions) -> LocalTarget:
    """The folder to write."""
    assert options.dest is not None  # (parse_options gives a folder or a bucket)
    return LocalTarget(options.dest, options.links)


def _s3_target(config: Config, options: ExportOptions, reactor: Any) -> S3Target:
    """The bucket to write: the [s3] section's endpoint and credentials, or the options'."""
    from pypid.storage.cloud_clients import make_client

    client, on_close = make_client(
        config, run_at_once, reactor, backend="s3", bucket=options.bucket,
        endpoint=options.endpoint, region=options.region)
    return S3Target(cast("S3Client", client), options.prefix, run_at_once, on_close)


if __name__ == "__main__":
    sys.exit(main())
