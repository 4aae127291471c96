"""
L{pypid.storage.cloud_clients}: one client maker per cloud of the
configuration's table, each cloud's SDK an extra of its own, and a
missing SDK refused with the one line that names the extra to install,
by the daemon (one process or a machine's supervisor) and by the tools
that reach a bucket.
"""

import ast
import io
import os
import re

from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pypid.cli import export
from pypid.config import load_config
from pypid.config.store_backends import BACKENDS
from pypid.core.util.startup import StartupError
from pypid.daemon.machine import build_supervisor
from pypid.jobs.run import run_at_once
from pypid.storage import cloud_clients
from pypid.storage.cloud_clients import CLIENTS, make_client, require_sdk
from pypid.storage.factory import StoragePart
from tests import CHECKOUT
from tests.harness.admin import run_admin
from tests.harness.fakes import write_file
from tests.harness.image import EXTRAS

#: A configuration of each cloud that passes the configuration's checks.
SECTIONS = {
    "s3": [("s3", "bucket", "pkgs")],
    "azure": [("azure", "account", "abc"), ("azure", "container", "c0c"),
              ("azure", "account_key", "a2V5")],
    "gcs": [("gcs", "bucket", "pkgs"), ("gcs", "download", "stream")],
}


def _config(backend, *more):
    """The configuration of C{backend}'s bucket (and C{more} keys)."""
    return load_config(None, [("storage", "backend", backend), *SECTIONS[backend], *more])


def _setup_extras():
    """C{CLOUD_EXTRAS} of C{setup.py}: extra -> requirements."""
    with open(os.path.join(CHECKOUT, "setup.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    [extras] = [node.value for node in tree.body if isinstance(node, ast.Assign)
                and [target.id for target in node.targets] == ["CLOUD_EXTRAS"]]
    return ast.literal_eval(extras)


class _Missing:
    """C{find_spec} with some modules missing; the names looked for, in order."""

    def __init__(self, *missing, parent=False):
        self.missing = missing
        self.parent = parent
        self.asked = []

    def __call__(self, module):
        self.asked.append(module)
        if module in self.missing:
            if self.parent:
                raise ModuleNotFoundError(f"No module named {module.split('.')[0]!r}")
            return None
        return object()


class TableTests(SynchronousTestCase):
    """The clouds of the configuration, their clients and their extras are the same."""

    def test_every_backend_has_a_client_and_an_extra(self):
        """Each backend of the table has a client maker and an extra of its name in setup.py."""
        self.assertEqual(list(CLIENTS), list(BACKENDS))
        self.assertEqual(list(_setup_extras()), list(BACKENDS))

    def test_image_extras(self):
        """The container image holds every cloud's SDK, and the image tests build it so."""
        with open(os.path.join(CHECKOUT, "etc", "container", "Containerfile"),
                  encoding="utf-8") as f:
            [default] = re.findall(r"^ARG EXTRAS=(.*)$", f.read(), re.MULTILINE)
        self.assertEqual(default.split(","), list(BACKENDS))
        self.assertEqual(EXTRAS, default)

    def test_installed(self):
        """With the test extra, every cloud's SDK is there: nothing is refused."""
        for backend in BACKENDS:
            require_sdk(backend)


class MissingSDKTests(SynchronousTestCase):
    """A cloud whose SDK is not installed is refused with one line naming its extra."""

    def hide(self, *modules, parent=False):
        """Make the modules C{modules} missing for L{require_sdk}."""
        missing = _Missing(*modules, parent=parent)
        self.patch(cloud_clients, "find_spec", missing)
        return missing

    def test_each_cloud_names_its_extra(self):
        """A client of each cloud, its SDK missing, is refused naming the cloud's extra."""
        for backend, client in CLIENTS.items():
            modules = client.sdk
            self.hide(modules[-1])
            e = self.assertRaises(StartupError, make_client, _config(backend), run_at_once,
                                  Clock())
            self.assertEqual(str(e), f"the {backend} backend needs its SDK, which is not "
                             f"installed (no module {modules[-1]}): "
                             f"pip install 'pypid[{backend}]'")

    def test_parent_package_missing(self):
        """A namespace package missing altogether (no C{azure} at all) is refused the same."""
        self.hide("azure.storage.blob", parent=True)
        e = self.assertRaises(StartupError, require_sdk, "azure")
        self.assertIn("(no module azure.storage.blob): pip install 'pypid[azure]'", str(e))

    def test_local_needs_none(self):
        """Local disk looks for no SDK at all."""
        missing = self.hide("botocore", "azure.storage.blob", "google.auth")
        require_sdk("local")
        self.assertEqual(missing.asked, [])

    def test_another_cloud_asked_for(self):
        """A client of another cloud than the storage's (an import's source) needs that one's."""
        self.hide("google.auth")
        config = _config("s3")
        e = self.assertRaises(StartupError, make_client, config, run_at_once, Clock(),
                              backend="gcs", bucket="elsewhere")
        self.assertIn("pip install 'pypid[gcs]'", str(e))

    def test_daemon_refuses(self):
        """The server of one process stops as it builds its storage."""
        self.hide("botocore")
        e = self.assertRaises(StartupError, StoragePart.from_config, _config("s3"),
                              run_at_once, Clock())
        self.assertIn("pip install 'pypid[s3]'", str(e))

    def test_supervisor_refuses(self):
        """A machine's supervisor stops before it starts workers that would each stop."""
        self.hide("azure.identity")
        config = _config("azure", ("pypid", "workers", "2"))
        e = self.assertRaises(StartupError, build_supervisor, config, MemoryReactorClock(), [], {},
                              check_port=lambda port, interface: None)
        self.assertIn("pip install 'pypid[azure]'", str(e))


async def _import_from(case: TestCase, source: str) -> tuple[int, str, str]:
    """C{pypid-admin import SOURCE} on an empty local server: its exit code, configuration and stderr."""
    folder = os.path.abspath(case.mktemp())
    os.makedirs(os.path.join(folder, "packages"))
    path = os.path.join(folder, "pypid.ini")
    write_file(path, (f"[storage]\npath = {folder}/packages\n[pypid]\n"
                      f"snapshot = {folder}/index.json\n").encode())
    code, _out, err = await run_admin(path, "import", source=source)
    return code, path, err


class MissingSDKCommandTests(TestCase):
    """The tools that reach a bucket say the same line."""

    async def test_import_from_bucket(self):
        """C{pypid-admin import gs://...} without Google's SDK: exit 1, one line, nothing read."""
        self.patch(cloud_clients, "find_spec", _Missing("google.auth"))
        code, _path, err = await _import_from(self, "gs://pkgs/pypi/")
        self.assertEqual(code, 1)
        self.assertEqual(err, "pypid-admin: import stopped: the gcs backend needs its SDK, which is not "
                              "installed (no module google.auth): pip install 'pypid[gcs]'\n")

    async def test_export_to_bucket(self):
        """C{pypid-export s3://...} without botocore: exit 1, one line, nothing written."""
        self.patch(cloud_clients, "find_spec", _Missing("botocore"))
        folder = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(folder, "packages"))
        path = os.path.join(folder, "pypid.ini")
        write_file(path, f"[storage]\npath = {folder}/packages\n".encode())
        out, err = io.StringIO(), io.StringIO()
        code = await export.export_command(
            export.parse_options(["s3://site/pypi/", "--config", path]), reactor, out, err)
        self.assertEqual((code, out.getvalue()), (1, ""))
        self.assertEqual(err.getvalue(), "pypid-export: the s3 backend needs its SDK, which is "
                                         "not installed (no module botocore): "
                                         "pip install 'pypid[s3]'\n")


class AzureAccountTests(TestCase):
    """A container is refused without C{[azure] account} when its credentials need one."""

    async def test_import_without_account(self):
        """C{pypid-admin import azure://...} without an account: exit 1, one line naming it."""
        code, path, err = await _import_from(self, "azure://cont/pypi/")
        self.assertEqual(code, 1)
        self.assertEqual(err, f"pypid-admin: import stopped: {path}: [azure] account: required "
                              "to reach an Azure container: set it to the storage account's "
                              "name\n")

    def test_sas_token_at_endpoint(self):
        """A SAS token at an endpoint of its own needs no account."""
        config = load_config(None, [("azure", "sas_token", "sv=2026-02-06&sig=x"),
                                    ("azure", "endpoint_url", "http://127.0.0.1:10000/acct")])
        client, close = make_client(config, run_at_once, Clock(), backend="azure", bucket="c0c")
        close()
        self.assertEqual(client.container, "c0c")
