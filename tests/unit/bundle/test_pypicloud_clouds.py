"""
C{pypid-admin import} of a pypicloud bucket on Google Cloud Storage
(C{gs://}, fake-gcs-server) and a container on Azure Blob Storage
(C{azure://}, Azurite): pypicloud's layout as pypicloud writes it there
(C{<prefix><name>/<filename>}, its metadata names with C{_}), read with the
C{[gcs]} and C{[azure]} sections' credentials into a local storage.
"""

import hashlib
import os

from tests.harness import azurite
from tests.harness.admin import run_admin
from tests.harness.azure import AzuriteCase
from tests.harness.distributions import make_sdist, make_wheel
from tests.harness.fakes import write_file
from tests.harness.gcs import GCSCase


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


class _PypicloudImportMixin:
    """Three files as pypicloud keeps them, one with a wrong sha256; a dot folder skipped."""

    def config(self, section):
        folder = os.path.abspath(self.mktemp())
        self.storage = os.path.join(folder, "packages")
        os.makedirs(self.storage)
        path = os.path.join(folder, "pypid.ini")
        write_file(path, (f"[storage]\npath = {self.storage}\n[pypid]\n"
                          f"snapshot = {folder}/index.json\n{section}").encode())
        return path

    async def test_import(self):
        name, data = make_wheel("holy-grail", "1.0")
        sdist_name, sdist = make_sdist("holy-grail", "1.0")
        other_name, other = make_wheel("holy-grail", "2.0")
        self.put(f"pypi/holy-grail/{name}", data, {"name": "holy-grail", "version": "1.0",
                                                    "uploader": "erin",
                                                    "hash_sha256": _sha256(data)})
        self.put(f"pypi/holy-grail/{sdist_name}", sdist, {"name": "holy-grail",
                                                          "version": "1.0"})
        self.put(f"pypi/holy-grail/{other_name}", other, {"name": "holy-grail",
                                                          "version": "2.0",
                                                          "hash_sha256": "0" * 64})
        self.put(f"pypi/.pypid/{name}", data, {})
        self.put(f"elsewhere/{name}", data, {})
        code, out, err = await run_admin(self.config_path, "import", source=self.source)
        self.assertEqual(code, 1, out + err)  # (one file refused)
        self.assertIn("imported: 2\n", out)
        self.assertIn("refused: 1\n", out)
        self.assertIn(f"/pypi/holy-grail/{other_name}: its bytes have sha256", out)
        self.assertEqual(sorted(n for n in os.listdir(self.storage) if not n.startswith(".")),
                         sorted([name, sdist_name]))
        self.assertIn("erin", open(os.path.join(self.storage, ".pypid", "files",
                                                name + ".json")).read())


class PypicloudGCSTests(_PypicloudImportMixin, GCSCase):
    """A pypicloud bucket on Google Cloud Storage (gs://BUCKET/PREFIX)."""

    def setUp(self):
        super().setUp()
        self.source = f"gs://{self.bucket}/pypi/"
        self.config_path = self.config(
            f"[gcs]\nendpoint_url = {self.server.endpoint}\n"
            f"credentials_file = {self.key_path}\n")

    def put(self, key, data, metadata):
        self.server.put(self.bucket, key, data, metadata)


class PypicloudAzureTests(_PypicloudImportMixin, AzuriteCase):
    """A pypicloud container on Azure Blob Storage (azure://CONTAINER/PREFIX)."""

    def setUp(self):
        super().setUp()
        self.source = f"azure://{self.container}/pypi/"
        self.config_path = self.config(
            f"[azure]\naccount = {azurite.ACCOUNT}\nendpoint_url = {self.server.endpoint}\n"
            f"account_key = {azurite.KEY}\n")

    def put(self, key, data, metadata):
        azurite.put_blob(self.server.endpoint, self.container, key, data,
                         {f"x-ms-meta-{name}": value for name, value in metadata.items()})
