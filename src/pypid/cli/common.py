"""
What the command-line tools that work on a storage share. Nothing here
exits: only the tools' C{main()} functions turn a status into the
process's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

import attrs
from twisted.internet.defer import ensureDeferred

from pypid.cli.server_client import CliError
from pypid.core.util.startup import StartupError
from pypid.storage.base.interface import StorageError

if TYPE_CHECKING:
    from pypid.config import Config
    from pypid.jobs.run import Run
    from pypid.storage.base.interface import IStorage

#: What must be called (and, when it answers a L{Deferred}, waited for)
#: once a command is done with what it opened, in the order opened.
Closing = list[Callable[[], Any]]


class UsageError(Exception):
    """A command line that cannot be run; the message is one line."""


class ArgumentParser(argparse.ArgumentParser):
    """An argument parser that raises L{UsageError}, so that a C{main} returns its exit status."""

    def error(self, message: str) -> NoReturn:
        """Raise rather than exit."""
        raise UsageError(message)

    def refuse(self, err: TextIO, message: str) -> int:
        """Say why a command line cannot be run, as argparse would, on C{err}; 2."""
        self.print_usage(err)
        err.write(f"{self.prog}: error: {message}\n")
        return 2


def run_command(main: Callable[[Any], Awaitable[int]], reactor: Any = None, *,
                prog: str, err: TextIO | None = None) -> int:
    """
    Run C{main(reactor)} under the reactor (by default the global one) until it
    finishes; the one place that deals with C{task.react} (which ends by
    raising L{SystemExit}, and logs what C{main} raised, traceback and all).

    @return: C{main}'s exit status; 1 when it raised L{CliError} or
        L{StartupError} (its message the one line, C{<prog>: <message>}), or
        the reactor's status when C{main} never finished.
    """
    from twisted.internet import task

    if reactor is None:
        from twisted.internet import reactor
    err = sys.stderr if err is None else err
    statuses: list[int] = []

    async def guarded(reactor: Any) -> None:
        try:
            statuses.append(await main(reactor))
        except (CliError, StartupError) as e:
            err.write(f"{prog}: {e}\n")
            statuses.append(1)

    try:
        task.react(lambda reactor: ensureDeferred(guarded(reactor)), _reactor=reactor)
    except SystemExit as e:
        if not statuses:
            code = e.code if isinstance(e.code, int) and e.code else 1
            err.write(f"{prog}: stopped with status {code}\n")
            return code
    return statuses[0] if statuses else 1


def failure_line(e: Exception, known: tuple[type[Exception], ...]) -> str:
    """
    The one line a command says of the exception C{e} that stopped it: the
    message of one it expects (C{known}), the file of an L{OSError}, else
    (a bug) its type and message: never a traceback.
    """
    if isinstance(e, known):
        return str(e)
    if isinstance(e, OSError):
        where = f" {e.filename}" if e.filename else ""
        return f"cannot use{where}: {e.strerror or e}"
    return f"unexpected error: {type(e).__name__}: {e}"


async def open_storage(config: Config, reactor: Any, run: Run, closing: Closing, *,
                       prepare: bool) -> IStorage:
    """
    The storage of the configuration, opened without C{prepare} to read
    beside a daemon that may be running on it (L{pypid.storage.base.reading}:
    no lock taken, nothing swept, a bucket's files streamed); with it, to
    write into it, prepared as the daemon prepares it. A bucket's spool folder
    is the command's own, never the daemon's (which C{prepare} sweeps). What
    must be closed is appended to C{closing} (L{close_all}).

    @raise ExportError: without C{prepare}, when the storage folder does
        not exist.
    @raise StartupError: when C{[pypid] ca_bundle} cannot be used, or the
        cloud's SDK is missing.
    """
    if prepare:
        return await _prepared(config, reactor, run, closing)
    from pypid.export.plan import ExportError
    from pypid.storage.folder.local import LocalStorage

    section = config.bucket
    if section is None:
        root = config.storage.path
        if not os.path.isdir(root):
            raise ExportError(f"the storage folder {root} does not exist "
                              f"({config.where('storage', 'path')})")
        return LocalStorage(root, run, reactor)
    from pypid.storage.bucket.layout import Layout
    from pypid.storage.bucket.storage import BucketSettings, BucketStorage
    from pypid.storage.cloud_clients import make_client

    client, on_close = make_client(config, run, reactor)
    spool = tempfile.mkdtemp(prefix="pypid-export-")
    storage = BucketStorage(
        client, Layout(section.prefix), run, reactor, spool,
        BucketSettings(download="stream", sync_interval=section.sync_interval,
                       bucket_snapshot=section.bucket_snapshot,
                       max_import_size=config.server.max_upload_size),
        on_close=on_close)
    closing.append(lambda: remove_tree(spool))
    closing.append(storage.close)
    await client.start()
    return storage


async def _prepared(config: Config, reactor: Any, run: Run, closing: Closing) -> IStorage:
    """The storage for an import: see L{open_storage}."""
    from pypid.storage.factory import make_storage

    if config.bucket is not None:
        spool = await run(tempfile.mkdtemp, None, "pypid-import-")
        closing.append(lambda: run(remove_tree, spool))
        config = attrs.evolve(config, storage=attrs.evolve(config.storage, path=spool))
    storage = make_storage(config, run, reactor)
    try:
        await storage.prepare()
    except StorageError as e:
        if "in use by another pypid process" in str(e):
            raise StorageError(f"{e}: stop the server before importing into its folder "
                               "(or import into a bucket, which a server may share)")
        raise
    closing.append(storage.close)
    return storage


async def close_all(closing: Closing) -> None:
    """Call what L{open_storage} left to close, newest first, ignoring a failure to close."""
    for close in reversed(closing):
        with suppress(Exception):
            result = close()
            if result is not None and hasattr(result, "addCallback"):
                await result


def overlapping(a: str, b: str) -> bool:
    """Whether one of two paths is inside the other, or they are the same (links resolved)."""
    a, b = os.path.realpath(a), os.path.realpath(b)
    return os.path.commonpath([a, b]) in (a, b)


def bucket_overlapping(config: Config, backend: str, bucket: str, prefix: str,
                       endpoint: str | None = None) -> bool:
    """
    Whether C{bucket} under C{prefix} (at C{endpoint}; L{None}: the configured one) holds
    the storage's keys or is held by them: the daemon's scans would read what is written there.
    """
    section = config.bucket if config.storage.backend == backend else None
    if section is None:
        return False
    return ((endpoint or section.endpoint_url) == section.endpoint_url
            and bucket == section.bucket
            and (prefix.startswith(section.prefix) or section.prefix.startswith(prefix)))


def remove_tree(path: str) -> None:
    """Remove a spool folder the command made (a folder left behind fails nothing)."""
    shutil.rmtree(path, ignore_errors=True)
