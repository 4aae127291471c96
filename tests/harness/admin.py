"""
C{pypid-admin export} and C{import} run in the test's process
(L{run_admin}), as its parser would call them; they were
L{tests.unit.bundle.test_migrate}'s. And a fake server for the tools that
ask one (L{FakeServer}).
"""

import contextlib
import io

from twisted.internet import reactor


class FakeServer:
    """A server (for C{pypid-admin}, C{pypid-token}) that records each request and answers C{answer}."""

    def __init__(self, answer=b"done\n"):
        self.asked = []
        self.answer = answer

    @contextlib.contextmanager
    def request(self, method, path, headers=None, body=None):
        self.asked.append((method, path, headers, body))
        yield io.BytesIO(self.answer)


def admin_options(command, **fields):
    """The C{pypid-admin} options of C{export} or C{import}, as its parser gives them."""
    import argparse

    values = {"command": command, "kind": None, "index": [], "map": [], "flatten": False,
              "verbose": False, "s3_endpoint": None, "s3_region": None}
    values.update(fields)
    return argparse.Namespace(**values)


async def run_admin(config_path, command, **fields):
    """Run C{pypid-admin export} or C{import} in this process; return C{(code, out, err)}."""
    import io

    from pypid.cli.bundle import import_command, pack_command
    from pypid.config import load_config

    config = load_config(config_path, (), environ={})
    out, err = io.StringIO(), io.StringIO()
    run = import_command if command == "import" else pack_command
    code = await run(config, admin_options(command, **fields), reactor, out, err)
    return code, out.getvalue(), err.getvalue()
