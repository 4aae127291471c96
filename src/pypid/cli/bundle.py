"""
C{pypid-admin export} and C{pypid-admin import}: packages out of a
server's storage and into another's, as a bundle (L{pypid.bundle}), and
in from devpi, pypiserver and pypicloud; the commands' composition root.

An export reads the storage beside a daemon that may be running on it. An
import refuses, before importing anything, named indexes not configured,
printing the sections to add; into a local folder it takes its lock
(refused while a daemon holds it: that daemon would not see the files).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from contextlib import suppress
from functools import partial
from typing import TYPE_CHECKING, Any, TextIO

import attrs
from twisted.logger import ILogObserver, LogEvent, globalLogBeginner

from pypid.bundle.manifest import BundleError
from pypid.cli import common
from pypid.cli.server_client import CliError, log_lines
from pypid.config.store_backends import BACKENDS, backend_of_url, url_forms
from pypid.core.dists.readme import Renderer
from pypid.core.indexes.index_names import DEFAULT
from pypid.core.records.audit_chain import format_time
from pypid.core.util.startup import StartupError
from pypid.core.util.terminal_text import escaped
from pypid.jobs.run import run_at_once
from pypid.sandbox.readme_sandbox import ReadmeSandbox
from pypid.storage.base.interface import StorageError

if TYPE_CHECKING:
    from pypid.bundle.archive import BundleWriter
    from pypid.bundle.devpi import DevpiIndexes
    from pypid.bundle.ingest import Ingest
    from pypid.bundle.pack import PackedIndex
    from pypid.bundle.pypicloud import PypicloudBucketSource
    from pypid.bundle.sources import ImportSource, Offer
    from pypid.config import Config
    from pypid.jobs.run import Run
    from pypid.storage.base.journal import IJournal

#: The sub-commands of C{pypid-admin} this module runs.
COMMANDS = ("export", "import")

_EXPORT_EPILOG = """\
DEST is a folder (which must not exist or be empty), or a tar file: plain
when its name ends in .tar, gzipped when it ends in .tar.gz or .tgz. A tar
file is written under a temporary name and renamed once complete. The
server may keep running: its storage is read without a lock or a write.
"""

_IMPORT_EPILOG = f"""\
SOURCE is a bundle (a folder, or a .tar/.tar.gz file) from 'pypid-admin
export', a devpi export folder (devpi-export DIR), a pypiserver package
folder, a pypicloud storage folder, or a pypicloud bucket as
{url_forms()}
(reached with the credentials of its cloud's section: [s3] for s3://).
Its kind is detected unless --from names it. A local
storage folder must not be in use by a running server (stop it first); a
bucket may be. Exit status 1 when anything was refused or in conflict.
A bundle's named indexes, and a devpi export's indexes (unless
flattened), go into the configured [index:NAME] of each; when one is not
configured, nothing is imported and the sections to add are printed.
"""


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add C{export} and C{import} to C{pypid-admin}'s sub-command parsers."""
    export = commands.add_parser(
        "export", help="write the storage of --config as a bundle (files, records, yanks, "
                       "tombstones, project statuses), also while the server runs",
        epilog=_EXPORT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    export.add_argument("--to", required=True, metavar="DIR|FILE.tar",
                        help="where to write the bundle")
    export.add_argument("--index", action="append", default=[], metavar="NAME",
                        help="pack this index (repeatable; 'default' is the index of "
                             "/simple/; default: the default index only)")
    export.add_argument("-v", "--verbose", action="store_true", help="say what is read")
    load = commands.add_parser(
        "import", help="load a bundle, or what devpi, pypiserver or pypicloud hold, into "
                       "the storage of --config",
        epilog=_IMPORT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    load.add_argument("source", metavar="SOURCE")
    load.add_argument("--from", dest="kind",
                      choices=("bundle", "devpi", "pypiserver", "pypicloud"),
                      help="what SOURCE is (default: detected)")
    load.add_argument("--index", action="append", default=[], metavar="USER/NAME",
                      help="devpi: take this index only (repeatable; default: every index "
                           "that is not a mirror)")
    load.add_argument("--map", action="append", default=[], metavar="USER/NAME=INDEX",
                      help="devpi: import the devpi index USER/NAME into the pypid index "
                           "INDEX (repeatable; default: USER-NAME)")
    load.add_argument("--flatten", action="store_true",
                      help="devpi: import every devpi index into the default index, as "
                           "one flat index (the default when no [index:NAME] is "
                           "configured and no --map is given)")
    load.add_argument("--s3-endpoint", metavar="URL",
                      help="pypicloud bucket: its S3 endpoint (default: [s3] endpoint_url, "
                           "or AWS)")
    load.add_argument("--s3-region", metavar="REGION",
                      help="pypicloud bucket: its region (default: [s3] region)")
    load.add_argument("-v", "--verbose", action="store_true",
                      help="list every file imported or already there")


def run(options: argparse.Namespace, config_from: Callable[[argparse.Namespace], Config],
        out: TextIO, err: TextIO) -> int:
    """Run C{export} or C{import} under the real reactor; the exit status."""
    try:
        config = config_from(options)
        _check_options(options)
    except CliError as e:
        err.write(f"pypid-admin: {e}\n")
        return 1
    globalLogBeginner.beginLoggingTo([_observer(err, options.verbose, options.command)],
                                     redirectStandardIO=False)
    command = pack_command if options.command == "export" else import_command
    return common.run_command(lambda reactor: command(config, options, reactor, out, err),
                              prog="pypid-admin", err=err)


def _check_options(options: argparse.Namespace) -> None:
    """Refuse options that do not go with the source."""
    if options.command != "import":
        return
    if (options.map or options.flatten) and options.kind not in (None, "devpi"):
        raise CliError("--map and --flatten are for a devpi export")
    if options.map and options.flatten:
        raise CliError("give --map or --flatten, not both")
    for name in ("s3_endpoint", "s3_region"):
        if getattr(options, name) and backend_of_url(options.source) is not BACKENDS["s3"]:
            raise CliError(f"--{name.replace('_', '-')} is for a pypicloud bucket "
                           f"({BACKENDS['s3'].url_form()})")


def _observer(err: TextIO, verbose: bool, command: str) -> ILogObserver:
    """Log events as C{pypid-admin: ...} lines, but not an import's notes on non-distributions."""
    def ignore(event: LogEvent) -> bool:
        return (command == "import" and event.get("log_namespace") == "pypid.storage.base.reading"
                and str(event.get("log_format", "")).startswith("Not exporting"))
    return log_lines(err, "pypid-admin", verbose, ignore)


def _runner(reactor: Any) -> Run:
    """C{run(f, *args) -> Deferred}: blocking work in the reactor's thread pool."""
    from twisted.internet.threads import deferToThreadPool

    return partial(deferToThreadPool, reactor, reactor.getThreadPool())


# -- export ---------------------------------------------------------------------------------


async def pack_command(config: Config, options: argparse.Namespace, reactor: Any, out: TextIO,
                       err: TextIO) -> int:
    """Write the bundle; return the exit status."""
    from pypid.bundle.archive import open_writer
    from pypid.bundle.pack import pack_bundle
    from pypid.export.plan import ExportError

    run = _runner(reactor)
    closing: common.Closing = []
    writer: BundleWriter | None = None
    try:
        if config.bucket is None and common.overlapping(config.storage.path, options.to):
            raise BundleError(f"the bundle {options.to} and the storage folder "
                              f"{config.storage.path} must not be inside one another")
        names = _packed_names(config, options.index)
        storage = (await common.open_storage(config, reactor, run_at_once, closing,
                                             prepare=False)
                   if DEFAULT in names else None)
        indexes = [await _packed_index(config, name, reactor, closing)
                   for name in names if name != DEFAULT]
        writer = await run(open_writer, options.to)
        report = await pack_bundle(storage, writer, config.server.snapshot, run, reactor,
                                   _audit_log(config, run, reactor, closing), indexes)
    except Exception as e:
        return await _failed(err, run, writer, common.failure_line(
            e, (BundleError, ExportError, StorageError, StartupError)))
    finally:
        await common.close_all(closing)
    for filename, why in report.problems:
        err.write(f"pypid-admin: left out {filename}: {why}\n")
    out.write(report.summary(writer.describe()) + "\n")
    return 1 if report.problems else 0


def _packed_names(config: Config, asked: list[str]) -> list[str]:
    """The indexes C{--index} names (each once, in order), or the default's."""
    names = list(dict.fromkeys(asked)) or [DEFAULT]
    for name in names:
        if name == DEFAULT:
            continue
        index = config.indexes.get(name)
        if index is None:
            raise BundleError(f"--index {name}: no [index:{name}] is configured")
        if index.view:
            raise BundleError(f"--index {name}: a view holds no files; pack its bases")
    return names


async def _packed_index(config: Config, name: str, reactor: Any,
                        closing: common.Closing) -> PackedIndex:
    """A named index's storage, opened to read beside a daemon, and its description."""
    from pypid.bundle.manifest import BundledIndex
    from pypid.bundle.pack import PackedIndex
    from pypid.storage.factory import index_settings, index_snapshot_path

    storage = await common.open_storage(index_settings(config, name), reactor, run_at_once,
                                        closing, prepare=False)
    bases = tuple(str(base) for base in config.indexes[name].bases)
    return PackedIndex(BundledIndex(name, bases), storage,
                       index_snapshot_path(config.server.snapshot, name))


async def _failed(err: TextIO, run: Run, writer: BundleWriter | None, message: str) -> int:
    if writer is not None:
        with suppress(OSError):
            await run(writer.abort)
    err.write(f"pypid-admin: {message}\n")
    return 1


# -- import ---------------------------------------------------------------------------------


async def import_command(config: Config, options: argparse.Namespace, reactor: Any,
                         out: TextIO, err: TextIO) -> int:
    """Load the source into the storage (and its named indexes); return the exit status."""
    from pypid.bundle.ingest import carry_audit, import_entries
    from pypid.bundle.sources import DESCRIPTIONS, detect

    run = _runner(reactor)
    closing: common.Closing = []
    source: ImportSource | None = None
    ingests: list[tuple[str, Ingest]] = []
    try:
        kind = options.kind
        if kind is None:
            kind = detect(options.source)
            out.write(f"Reading {options.source} as {DESCRIPTIONS[kind]} (detected; "
                      "name another with --from)\n")
        source = await _source(kind, config, options, reactor, run, closing)
        # (the descriptions rendered in children with a time budget, as the
        # daemon renders them: a hostile README cannot stop the import)
        sandbox = ReadmeSandbox()
        closing.append(sandbox.close)
        # (the default index's storage first: a local folder's lock is taken
        # before the source is read)
        default = await _ingest(config, DEFAULT, reactor, run, closing, sandbox.render)
        offer = await source.read()
        _check_indexes(config, offer, out)
        ingests.append((DEFAULT, default))
        default.report.refused.extend(offer.refused)
        default.report.ignored.extend(offer.ignored)
        # (the statuses first: a quarantined project's files never arrive active)
        await default.take_statuses(offer.statuses)
        await default.take_all(offer.arrivals)
        for filename in sorted(offer.tombstones):
            await default.bury(filename)
        audit = _audit_log(config, run, reactor, closing)
        await carry_audit(audit, offer.audit, default.report, run)
        for named in offer.indexes:
            if named.name == DEFAULT:
                ingest = default
            else:
                ingest = await _ingest(config, named.name, reactor, run, closing,
                                       sandbox.render)
                ingests.append((named.name, ingest))
            await ingest.take_statuses(named.statuses)
            await ingest.take_all(named.arrivals)
            for filename in sorted(named.tombstones):
                await ingest.bury(filename)
        when = format_time(reactor.seconds())
        for name, ingest in ingests:
            for entry in import_entries(ingest, when, _operator()):
                audit.queue(entry if name == DEFAULT else attrs.evolve(entry, index=name))
        if not await audit.flush():
            raise StorageError("the import is done, but its audit log entries could not be "
                               "written (see the messages above)")
        if offer.note:
            out.write(offer.note)
    except Exception as e:
        # (a StartupError: an unusable [pypid] ca_bundle, a cloud's SDK missing)
        return await _import_failed(out, err, ingests, options, common.failure_line(
            e, (BundleError, StorageError, CliError, StartupError)))
    finally:
        if source is not None:
            with suppress(OSError):
                await run(source.close)
        await common.close_all(closing)
    _report(out, ingests, options)
    return 1 if any(ingest.report.failed for _, ingest in ingests) else 0


async def _ingest(config: Config, name: str, reactor: Any, run: Run,
                  closing: common.Closing, render: Renderer) -> Ingest:
    """An ingest into the storage of the hosted index C{name}, with what it holds already."""
    from pypid.bundle.ingest import Ingest
    from pypid.storage.base.reading import load_records, read_statuses
    from pypid.storage.factory import index_settings, index_snapshot_path

    storage = await common.open_storage(index_settings(config, name), reactor, run, closing,
                                        prepare=True)
    scanned = await load_records(storage, index_snapshot_path(config.server.snapshot, name),
                                 run)
    settings = config.indexes.get(name) if name != DEFAULT else None
    return Ingest(storage, run, config.server.max_upload_size, scanned.records,
                  scanned.tombstones, render=render, statuses=await read_statuses(storage),
                  uploads=(settings or config.server).upload_rules)


def _check_indexes(config: Config, offer: Offer, out: TextIO) -> None:
    """Refuse named indexes not configured as hosted ones, printing the sections to add."""
    from pypid.bundle.sources import index_sections

    named = [index for index in offer.indexes if index.name != DEFAULT]
    missing = [index for index in named if index.name not in config.indexes]
    views = sorted({index.name for index in named
                    if index.name in config.indexes and config.indexes[index.name].view})
    if views:
        raise CliError(f"[index:{views[0]}] is a view: it takes no files; import into a "
                       "hosted index (--map for a devpi export)")
    if missing:
        out.write("Add these sections to the configuration, then import again:\n\n"
                  + index_sections(missing) + "\n")
        names = ", ".join(f"[index:{name}]" for name in dict.fromkeys(i.name for i in missing))
        raise CliError(f"the source holds indexes that are not configured: {names} "
                       "(nothing was imported)")


def _report(out: TextIO, ingests: list[tuple[str, Ingest]],
            options: argparse.Namespace) -> None:
    """What each index's import did; a named index's under a line naming it."""
    for name, ingest in ingests:
        if name != DEFAULT:
            out.write(f"Into the index {name}:\n")
        # (names, reasons and errors a bundle or a source chose: escaped)
        for line in ingest.report.lines(options.verbose):
            out.write(escaped(line) + "\n")


def _audit_log(config: Config, run: Run, reactor: Any, closing: common.Closing) -> IJournal:
    """The audit log of the configuration's storage, closed with the rest."""
    from pypid.storage.factory import make_journal

    audit = make_journal(config, run, reactor)
    closing.append(audit.close)
    return audit


def _operator() -> str:
    """Who runs the command, for the audit log: the account, and the machine."""
    import getpass
    import socket

    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = f"uid {os.getuid()}"
    return f"{who}@{socket.gethostname()} (pypid-admin)"


async def _import_failed(out: TextIO, err: TextIO, ingests: list[tuple[str, Ingest]],
                         options: argparse.Namespace, message: str) -> int:
    """Say what was done before the failure, then the failure."""
    _report(out, ingests, options)
    err.write(f"pypid-admin: import stopped: {message}\n")
    return 1


async def _source(kind: str, config: Config, options: argparse.Namespace, reactor: Any,
                  run: Run, closing: common.Closing) -> ImportSource:
    """The source of the given kind at C{options.source}."""
    from pypid.bundle.devpi import DevpiSource
    from pypid.bundle.pypicloud import PypicloudFolderSource
    from pypid.bundle.sources import BundleSource, PypiserverSource

    path = options.source
    if (options.index or options.map or options.flatten) and kind != "devpi":
        raise CliError("--index, --map and --flatten are for a devpi export")
    if backend_of_url(path) is not None:
        if kind != "pypicloud":
            raise CliError(f"a {path.partition(':')[0]}:// source is a pypicloud bucket "
                           "(--from pypicloud)")
        return await _bucket_source(config, options, reactor, run, closing)
    if config.bucket is None and os.path.isdir(path) and common.overlapping(
            path, config.storage.path):
        raise CliError(f"{path} and the storage folder {config.storage.path} must not be "
                       "inside one another")
    if kind == "bundle":
        return BundleSource(path, run)
    if kind == "devpi":
        return DevpiSource(path, run, options.index, _kept_indexes(config, options))
    if kind == "pypiserver":
        return PypiserverSource(path, run)
    return PypicloudFolderSource(path, run)


def _kept_indexes(config: Config, options: argparse.Namespace) -> DevpiIndexes | None:
    """
    How a devpi export's indexes are kept as pypid's, or L{None} to flatten
    them: with C{--flatten}, and by default while no C{[index:NAME]} is
    configured and no C{--map} given.
    """
    from pypid.bundle.devpi import DevpiIndexes, parse_map

    if options.flatten or (not config.indexes and not options.map):
        return None
    try:
        return DevpiIndexes(dict(parse_map(text) for text in options.map))
    except ValueError as e:
        raise CliError(str(e))


async def _bucket_source(config: Config, options: argparse.Namespace, reactor: Any, run: Run,
                         closing: common.Closing) -> PypicloudBucketSource:
    """A pypicloud bucket, reached with the credentials and endpoint of its cloud's section."""
    from pypid.bundle.pypicloud import PypicloudBucketSource, parse_bucket_url
    from pypid.storage.cloud_clients import make_client

    try:
        backend, bucket, prefix = parse_bucket_url(options.source)
    except BundleError as e:
        raise CliError(str(e))
    own = config.bucket
    if common.bucket_overlapping(config, backend, bucket, prefix, options.s3_endpoint):
        assert own is not None  # (what overlaps is the storage's bucket)
        raise CliError(f"{options.source} and the storage's {config.storage.backend} "
                       f"bucket {bucket}, prefix {own.prefix!r}, must not be inside one "
                       "another (pypid already serves what its own prefix holds)")
    # (S3's own options: _check_options refuses them for another cloud)
    s3_options = {"endpoint": options.s3_endpoint, "region": options.s3_region}
    client, on_close = make_client(config, run, reactor, backend=backend, bucket=bucket,
                                   **{key: value for key, value in s3_options.items() if value})
    closing.append(on_close)
    await client.start()
    closing.append(client.stop)
    return PypicloudBucketSource(client, prefix, run)
