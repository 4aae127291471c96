"""
C{SIGHUP} for a machine: the check the lean supervisor runs in a
short-lived child (C{python -m pypid.daemon.reload_check JSON}, the
configuration in force on L{CONFIG_FD}), so that it never imports the
configuration's code itself. The configuration is read again as at the
start; one that cannot be read, or that changes a key only a restart
takes, is refused: the reason on standard error, exit status 1, the
sections and keys at fault recorded (for the first worker's journal
entry), and the machine goes on with the one in force. One that can is
written into the configuration in force, exit status 0. Either way, as
one process does, the C{[tls]} files are read again: taken when they can
be served, else the texts in force kept and the reason written on
standard error.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from typing import TextIO

from pypid.config import Config, load_config
from pypid.config.reloading import held_as_started, refuse_restart_keys
from pypid.core.util.startup import StartupError
from pypid.daemon.lean import CONFIG_FD
from pypid.daemon.listeners import held_tls
from pypid.machine.config_in_force import ConfigInForce


def main(argv: list[str] | None = None, fd: int = CONFIG_FD, err: TextIO = sys.stderr) -> int:
    """
    Check the configuration and take it into the one in force (on C{fd});
    the exit status. The one argument is JSON: the configuration file and
    the overrides (L{pypid.daemon.handover.plan}).
    """
    given = json.loads((sys.argv[1:] if argv is None else argv)[0])
    path, listen = given["config"], given["listen"]
    overrides = [tuple(override) for override in given["set"]]
    in_force = ConfigInForce.attach(fd, writable=True)
    try:
        held = in_force.read()
        before = load_config(path, overrides, listen, os.environ, text=held.text,
                             held=held.held)
        try:
            config = load_config(path, overrides, listen, os.environ)
            refuse_restart_keys(before, config)
        except StartupError as e:
            err.write(f"{e}\n")
            # (the [tls] files are read again all the same, as one process
            # reads them again whatever becomes of the configuration)
            in_force.write(held.text, {**held.held, **_tls(before, held.held, err)},
                           refused=e.named or "", refusals=held.refusals + 1)
            return 1
        config = held_as_started(before, config)
        in_force.write(config.text, {**config.held, **_tls(config, held.held, err)},
                       refusals=held.refusals)
    except StartupError as e:
        # (the configuration in force itself no longer reads: its files went)
        err.write(f"{e}\n")
        in_force.write(held.text, held.held, refused=e.named or "", refusals=held.refusals + 1)
        return 1
    finally:
        in_force.close()
    return 0


def _tls(config: Config, held: Mapping[str, str], err: TextIO) -> dict[str, str]:
    """The C{[tls]} files' texts to serve: as they are now, or as held when they cannot be."""
    tls, refused = held_tls(config, held, time.time())
    if refused is not None:
        err.write(f"Cannot reload TLS, still using the certificate loaded before: {refused}\n")
    return tls


if __name__ == "__main__":
    sys.exit(main())
