"""
C{pypid-admin storage init} (L{pypid.cli.admin_storage}): its command
line, a local folder (nothing to make), the project of a new Google Cloud
Storage bucket, and the one line of each refusal. What it asks of each
cloud is in C{tests/unit/storage/test_bucket_creation.py}; the command
run on each emulator, in C{tests/e2e/test_storage_init.py}.
"""

import argparse
import io
import json
import os

from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pypid.cli import admin, admin_storage
from pypid.cli.server_client import CliError
from pypid.config import load_config
from pypid.core.util.startup import StartupError
from pypid.storage import cloud_clients


class StorageInitTests(SynchronousTestCase):
    """The command line, and what it says of a local folder and of a refusal."""

    def setUp(self):
        self.folder = os.path.abspath(self.mktemp())
        os.makedirs(self.folder)
        self.packages = os.path.join(self.folder, "packages")

    def config(self, text):
        """A configuration file of C{text}; its path."""
        path = os.path.join(self.folder, "pypid.ini")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def run_admin(self, *argv):
        """C{(status, stdout, stderr)} of C{pypid-admin argv}."""
        out, err = io.StringIO(), io.StringIO()
        status = admin.main(list(argv), out, err)
        return status, out.getvalue(), err.getvalue()

    def test_local_folder_missing(self):
        """
        On a local folder there is nothing to make: the server makes it at
        its start, as the user it runs as (made here, by root say, the
        server could not write in it); nothing is made.
        """
        path = self.config(f"[storage]\npath = {self.packages}\n")
        self.assertEqual(self.run_admin("storage", "init", "--config", path), (
            0, f"nothing to create: the server makes the storage folder {self.packages} at "
               "its start, as the user it runs as\n", ""))
        self.assertFalse(os.path.exists(self.packages))

    def test_local_folder_there(self):
        """A folder that is there is said to be; C{--config} may come before C{storage} too."""
        os.makedirs(self.packages)
        path = self.config(f"[storage]\npath = {self.packages}\n")
        self.assertEqual(self.run_admin("--config", path, "storage", "init"), (
            0, f"the storage folder {self.packages} exists: nothing to create\n", ""))

    def test_overrides_on_either_side(self):
        """C{--set} before C{storage} and after C{init} are both taken."""
        os.makedirs(self.packages)
        path = self.config("[storage]\npath = /nowhere\n")
        status, out, _ = self.run_admin(
            "--set", "storage.backend=local", "storage", "init", "--config", path,
            "--set", f"storage.path={self.packages}")
        self.assertEqual((status, out), (
            0, f"the storage folder {self.packages} exists: nothing to create\n"))

    def test_without_config(self):
        """Without C{--config}: one line saying to give it, exit status 1."""
        self.assertEqual(self.run_admin("storage", "init"), (
            1, "", "pypid-admin: storage works on the storage directly: give the server's "
                   "configuration with --config FILE\n"))

    def test_project_of_another_cloud(self):
        """C{--project} (or C{--location}) on another backend than gcs is a usage error."""
        path = self.config("[storage]\nbackend = s3\n[s3]\nbucket = pkgs\n")
        self.assertEqual(self.run_admin("storage", "init", "--config", path, "--location", "EU"), (
            2, "", "pypid-admin: storage init: --project and --location are for [storage] "
                   "backend = gcs, not s3\n"))

    def test_gcs_without_project(self):
        """
        A GCS bucket without a key file (the metadata server's credentials)
        and without C{--project}: one line saying to give it, before
        anything is asked of the store.
        """
        path = self.config("[storage]\nbackend = gcs\n[gcs]\nbucket = pkgs\ndownload = stream\n")
        self.assertEqual(self.run_admin("storage", "init", "--config", path), (
            1, "", "pypid-admin: storage init: a new Google Cloud Storage bucket is made in a "
                   "project: give --project ID (there is no [gcs] credentials_file to name "
                   "one)\n"))


class ProjectTests(SynchronousTestCase):
    """The project of a new GCS bucket: C{--project}, else the key file's C{project_id}."""

    def config(self, key):
        """A GCS configuration whose key file holds C{key} (JSON, unless text)."""
        path = os.path.abspath(self.mktemp())
        with open(path, "w", encoding="utf-8") as f:
            f.write(key if isinstance(key, str) else json.dumps(key))
        return load_config(None, [("storage", "backend", "gcs"), ("gcs", "bucket", "pkgs"),
                                  ("gcs", "credentials_file", path)]), path

    def project(self, config, project=None):
        return admin_storage._project(config, argparse.Namespace(project=project))

    def test_key_file(self):
        """The key file's C{project_id}."""
        config, _ = self.config({"type": "service_account", "project_id": "acme-pypi"})
        self.assertEqual(self.project(config), "acme-pypi")

    def test_option_first(self):
        """C{--project} over the key file's."""
        config, _ = self.config({"type": "service_account", "project_id": "acme-pypi"})
        self.assertEqual(self.project(config, "other"), "other")

    def test_key_file_names_none(self):
        """A key file without a C{project_id}: one line saying to give C{--project}."""
        config, path = self.config({"type": "service_account"})
        e = self.assertRaises(CliError, self.project, config)
        self.assertEqual(str(e), f"storage init: [gcs] credentials_file {path} names no "
                                 "project_id: give --project ID")

    def test_key_file_unreadable(self):
        """A key file that is not JSON: one line naming it."""
        config, path = self.config("{not json")
        e = self.assertRaises(CliError, self.project, config)
        self.assertTrue(str(e).startswith(f"cannot read [gcs] credentials_file {path}: "), e)


class MissingSDKTests(SynchronousTestCase):
    """A cloud whose SDK is missing is refused with the one line every tool says."""

    def test_refused(self):
        """Nothing is asked of the store; the line names the extra to install."""
        self.patch(cloud_clients, "find_spec",
                   lambda module: None if module == "azure.identity" else object())
        config = load_config(None, [("storage", "backend", "azure"), ("azure", "account", "acct"),
                                    ("azure", "container", "pkgs")])
        failure = self.failureResultOf(
            ensureDeferred(admin_storage.init(config, Clock(), io.StringIO())), StartupError)
        self.assertEqual(str(failure.value),
                         "the azure backend needs its SDK, which is not installed (no module "
                         "azure.identity): pip install 'pypid[azure]'")
