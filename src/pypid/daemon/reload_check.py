"""
C{SIGHUP} for a machine: the check the lean supervisor
(L{pypid.daemon.lean}) runs in a short-lived child, so that it never
imports the configuration's code itself.

C{python -m pypid.daemon.reload_check [twistd pypid's options]}, with the
configuration in force on descriptor L{CONFIG_FD}: the configuration is
read again as at the start; one that cannot be read, or that changes a
key only a restart takes, is refused (the reason on standard error, exit
status 1) and the machine goes on with the one in force; one that can is
written into the configuration in force (every worker reads it when the
supervisor passes the signal on, and a worker started later reads it too),
and this exits 0.
"""

from __future__ import annotations

import os
import sys

from pypid.config import load_config
from pypid.config.reloading import describe, needs_restart
from pypid.core.util.startup import StartupError
from pypid.daemon.lean import CONFIG_FD
from pypid.machine.config_in_force import ConfigInForce


def main(argv: list[str] | None = None) -> int:
    """Check the configuration and take it into the one in force; the exit status."""
    from pypid.tap import Options

    options = Options()
    try:
        options.parseOptions(sys.argv[1:] if argv is None else argv)
    except SystemExit as e:
        sys.stderr.write(f"{e}\n")
        return 1
    except Exception as e:
        sys.stderr.write(f"{e}\n")
        return 1
    in_force = ConfigInForce.attach(CONFIG_FD)
    held = in_force.read()
    try:
        before = load_config(options["config"], options["set"], options["listen"], os.environ,
                             text=held.text, held=held.held)
        config = load_config(options["config"], options["set"], options["listen"], os.environ)
        changed = needs_restart(before.keys, config.keys)
        if changed:
            raise StartupError(f"{config.source}: {describe(changed)}")
    except StartupError as e:
        sys.stderr.write(f"{e}\n")
        return 1
    in_force.write(config.text, config.held)
    return 0


if __name__ == "__main__":
    sys.exit(main())
