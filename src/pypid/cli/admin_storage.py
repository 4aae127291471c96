"""
C{pypid-admin storage init --config FILE}: make the bucket (Azure's
container) the configuration names, private, when it is missing; the
server itself never makes one. One that answers is left as it is, so the
command may run at every deployment. A local folder needs nothing: the
server makes it at its start, as the user it runs as (made here, by root
say, the server could not write in it).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any, TextIO, cast

from pypid.cli.server_client import CliError

if TYPE_CHECKING:
    # (types only: each cloud's client is imported once its SDK is known to be there)
    from pypid.config import Config
    from pypid.config.gcs_settings import GCSConfig
    from pypid.storage.azure.blob_calls import AzureClient
    from pypid.storage.bucket.http_calls import StoreClient
    from pypid.storage.bucket.store import Creation
    from pypid.storage.gcs.object_calls import GCSClient
    from pypid.storage.s3.api import S3Client


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The C{storage} command and its C{init}, on C{pypid-admin}'s subcommands."""
    storage = commands.add_parser(
        "storage", help="the server's storage: init makes its bucket or container (with "
                        "--config)")
    actions = storage.add_subparsers(dest="storage_command", required=True)
    init = actions.add_parser(
        "init", help="make the bucket or container the configuration names, private, when "
                     "it is missing (one that exists is left as it is)")
    init.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                      help="the server's configuration (as pypid-admin --config FILE)")
    init.add_argument("--set", dest="init_set", action="append", default=[],
                      metavar="SECTION.KEY=VALUE", help="override a key of --config")
    init.add_argument("--project", metavar="ID",
                      help="gcs: the Google Cloud project the bucket is made in (default: "
                           "the project_id of [gcs] credentials_file)")
    init.add_argument("--location", metavar="LOCATION",
                      help="gcs: where the bucket keeps its data, such as EU or "
                           "europe-west1 (default: Google's, US)")


def run(options: argparse.Namespace, config_from: Callable[[argparse.Namespace], Config],
        out: TextIO, err: TextIO) -> int:
    """Run C{pypid-admin storage init} for parsed C{options}; the exit status."""
    from pypid.cli.common import run_command

    options.set = [*options.set, *options.init_set]
    config = config_from(options)
    backend = config.storage.backend
    if (options.project or options.location) and backend != "gcs":
        raise CliError(f"storage init: --project and --location are for [storage] backend "
                       f"= gcs, not {backend}", status=2)
    if config.bucket is None:
        path = config.storage.path
        if os.path.isdir(path):
            out.write(f"the storage folder {path} exists: nothing to create\n")
        else:
            out.write(f"nothing to create: the server makes the storage folder {path} at "
                      "its start, as the user it runs as\n")
        return 0
    project = _project(config, options) if backend == "gcs" else None
    return run_command(lambda reactor: init(config, reactor, out, project, options.location),
                       prog="pypid-admin", err=err)


def _project(config: Config, options: argparse.Namespace) -> str:
    """The project a new GCS bucket is made in: C{--project}, else the key file's C{project_id}."""
    from pypid.config.values import held_bytes

    if options.project:
        return str(options.project)
    gcs = cast("GCSConfig", config.stores["gcs"])
    path = gcs.credentials_file
    if path is None:
        raise CliError("storage init: a new Google Cloud Storage bucket is made in a project: "
                       "give --project ID (there is no [gcs] credentials_file to name one)")
    try:
        info = json.loads(held_bytes(path, config.held))
    except (OSError, ValueError) as e:
        raise CliError(f"cannot read [gcs] credentials_file {path}: {e}")
    project = info.get("project_id") if isinstance(info, dict) else None
    if not isinstance(project, str) or not project:
        raise CliError(f"storage init: [gcs] credentials_file {path} names no project_id: "
                       "give --project ID")
    return project


async def init(config: Config, reactor: Any, out: TextIO, project: str | None = None,
               location: str | None = None) -> int:
    """
    Make the configuration's bucket unless it exists and answers (a new GCS
    bucket in C{project}, at C{location}); print what was done; 0.

    @raise StartupError: when the cloud's SDK is missing, or its section's
        credentials or C{ca_bundle} cannot be used.
    """
    from pypid.jobs.run import run_at_once
    from pypid.storage.base.interface import StorageError
    from pypid.storage.cloud_clients import make_client

    section = config.bucket
    assert section is not None  # (the caller answers a local folder)
    made, close = make_client(config, run_at_once, reactor)
    client = cast("StoreClient", made)
    create: Callable[[], Awaitable[Creation]]
    if config.storage.backend == "gcs":
        create = partial(cast("GCSClient", made).create_bucket, cast(str, project), location)
    else:
        # (S3's and Azure's take nothing: the region is the section's)
        create = cast("S3Client | AzureClient", made).create_bucket
    try:
        await client.start()
        creation = await client.ensure(section.prefix, create)
    except StorageError as e:
        raise CliError(str(e))
    finally:
        client.stop()
        await close()
    named = f"the {client.noun} {made.identity()}"
    if not creation.created:
        out.write(f"{named} exists: nothing to create\n")
        return 0
    out.write(f"created {named}" + (f" {creation.where}" if creation.where else "")
              + (f", private: {creation.private}" if creation.private else "") + "\n")
    for note in creation.notes:
        out.write(f"note: {note}\n")
    return 0
