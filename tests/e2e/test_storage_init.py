"""
C{pypid-admin storage init} on each store the suite runs (moto,
SeaweedFS, Azurite, fake-gcs-server, each the harness's shared server):
a bucket the configuration names and no one made is made by the command,
run as an operator runs it, with the server's own clients; run again, it
says the bucket exists; then the server, which refuses a missing bucket,
starts on it.
"""

import subprocess
import sys
import uuid

from tests.harness.bucket_e2e import CloudTestCase
from tests.harness.e2e import http
from tests.harness.e2e_clouds import AZURE, GCS, MOTO, SEAWEED

#: How long one run of the command may take (its credentials, two or three requests).
COMMAND_LIMIT = 60


class _InitMixin:
    """The command twice on a new name of the store, then the server on the bucket."""

    #: what the first run says after the bucket's URL
    made_words = ""

    def admin(self, daemon, *argv):
        """C{(status, stdout, stderr)} of C{pypid-admin storage init} with the daemon's settings."""
        sets = [arg for key, value in daemon.settings.items()
                for arg in ("--set", f"{key}={value}")]
        done = subprocess.run([sys.executable, "-m", "pypid.cli.admin", "storage", "init",
                               "--config", daemon.config_path, *sets, *argv],
                              capture_output=True, text=True, timeout=COMMAND_LIMIT)
        return done.returncode, done.stdout, done.stderr

    def test_init(self):
        """Made at the first run, there at the second, and the server starts on it."""
        name = "pypid-init-" + uuid.uuid4().hex[:12]
        daemon = self.new_daemon(settings=self.on(name), start=False)
        status, out, err = self.admin(daemon)
        self.assertEqual((status, err), (0, ""), out)
        self.assertTrue(out.startswith(f"created the {self.noun} {self.url(name)}"
                                       f"{self.made_words}"), out)
        self.assertEqual(self.cloud.keys(name, ""), set())
        self.check_made(name, out)
        self.assertEqual(self.admin(daemon), (
            0, f"the {self.noun} {self.url(name)} exists: nothing to create\n", ""))
        daemon.start()
        self.assertEqual(http("GET", daemon.url + "health").status, 200)

    noun = "bucket"

    def url(self, name):
        return f"s3://{name}/"

    def check_made(self, name, out):
        """What the store keeps of how the bucket was made."""


class MotoInitTests(_InitMixin, CloudTestCase):
    cloud = MOTO
    made_words = " in us-east-1, private: Block Public Access on, ACLs disabled\n"

    def check_made(self, name, out):
        """moto keeps the four settings of Block Public Access, each on."""
        block = self.cloud.store.client().get_public_access_block(Bucket=name)
        self.assertEqual(block["PublicAccessBlockConfiguration"], {
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True})


class SeaweedInitTests(_InitMixin, CloudTestCase):
    cloud = SEAWEED
    made_words = " in us-east-1\n"

    def check_made(self, name, out):
        """SeaweedFS has no Block Public Access: a note says so, and the bucket is made."""
        self.assertIn("\nnote: the store does not implement Block Public Access (it answered "
                      "501 NotImplemented)", out)


class AzureInitTests(_InitMixin, CloudTestCase):
    cloud = AZURE
    noun = "container"
    made_words = ", private: no public access\n"

    def url(self, name):
        return f"azure://devstoreaccount1/{name}/"


class GCSInitTests(_InitMixin, CloudTestCase):
    cloud = GCS
    # (the project is the key file's; fake-gcs-server keeps every bucket in one place)
    made_words = " in project pypid, "

    def url(self, name):
        return f"gs://{name}/"
