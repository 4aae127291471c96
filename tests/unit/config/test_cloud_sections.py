"""
The C{[azure]} and C{[gcs]} sections (L{pypid.config.azure_settings},
L{pypid.config.gcs_settings}), and what a configuration on them builds.
"""

from twisted.trial.unittest import SynchronousTestCase

from pypid.config import load_config
from pypid.daemon.start_notes import storage_line
from pypid.storage.factory import index_settings
from tests.harness.config_files import ConfigFiles

KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class AzureSectionTests(ConfigFiles, SynchronousTestCase):
    """C{[azure]}: its keys, and what goes with what."""

    def azure(self, text, backend="azure"):
        return load_config(self.write(f"[storage]\nbackend = {backend}\n[azure]\n{text}"))

    def test_keys(self):
        """Every key is read; the secrets are hidden from the repr; the endpoint is Azure's."""
        config = self.azure(f"account = pypidpackages\ncontainer = packages\nprefix = /p\n"
                            f"account_key = {KEY}\nblock_size = 8M\ndownload = stream\n"
                            "expire_after = 2h\nsync_interval = 5s\n")
        azure = config.stores["azure"]
        self.assertEqual((azure.account, azure.container, azure.prefix, azure.block_size,
                          azure.download, azure.expire_after, azure.sync_interval),
                         ("pypidpackages", "packages", "p/", 8 << 20, "stream", 7200.0, 5.0))
        self.assertEqual(azure.blob_endpoint, "https://pypidpackages.blob.core.windows.net")
        self.assertNotIn(KEY, repr(config))
        self.assertIs(config.bucket, azure)
        self.assertEqual(storage_line(config),
                         "Azure container packages of https://pypidpackages.blob.core.windows.net"
                         ", prefix p/")

    def test_required(self):
        """The account and the container are required on the backend, not otherwise."""
        self.assertIn("[azure] account: required for backend = azure",
                      self.refused("[storage]\nbackend = azure\n[azure]\ncontainer = c0c\n"))
        self.assertIn("[azure] container: required for backend = azure",
                      self.refused("[storage]\nbackend = azure\n[azure]\naccount = abc\n"))
        self.assertIsNone(load_config(self.write("[azure]\naccount = abc\n")).bucket)

    def test_refused_values(self):
        """Names, keys and sizes Azure would not take are refused, the secret unrepeated."""
        for text, words in (("account = Pypid", "storage account name"),
                            ("container = a--b", "container name"),
                            ("account_key = not base64!", "spaces and control characters"),
                            ("account_key = abc$", "base64"),
                            ("block_size = 200M", "from 1M to 100M"),
                            ("endpoint_url = ftp://x", "http:// or https://")):
            message = self.refused(f"[azure]\n{text}\n")
            self.assertIn(words, message)
            self.assertNotIn("abc$", message)

    def test_credentials_together(self):
        """A key and a SAS token at once are refused; a SAS token cannot sign redirects."""
        self.assertIn("give account_key or sas_token, not both", self.refused(
            f"[azure]\naccount_key = {KEY}\nsas_token = sv=1&sig=x\ndownload = stream\n"))
        self.assertIn("[azure] download: redirect needs URLs pypid signs", self.refused(
            "[storage]\nbackend = azure\n[azure]\naccount = abc\ncontainer = c0c\n"
            "sas_token = sv=1&sig=x\n"))
        # (a token for an import only, another backend keeping the packages)
        load_config(self.write("[azure]\nsas_token = sv=1&sig=x\n"))
        load_config(self.write("[azure]\nsas_token = sv=1&sig=x\n"
                               "public_url = https://cdn.example/\n"))

    def test_blocks_fit_the_largest_upload(self):
        """The blocks must hold the largest upload in Azure's 50,000."""
        self.assertIn("[azure] block_size: too small for [pypid] max_upload_size",
                      self.refused("[pypid]\nmax_upload_size = 100G\n[storage]\nbackend = azure\n"
                                   "[azure]\naccount = abc\ncontainer = c0c\nblock_size = 1M\n"))

    def test_named_index_prefix(self):
        """A named index's storage is the container's, under the prefix's .indexes/NAME/."""
        config = self.azure("account = abc\ncontainer = c0c\nprefix = p/\n")
        self.assertEqual(index_settings(config, "staging").stores["azure"].prefix, "p/.indexes/staging/")


class GCSSectionTests(ConfigFiles, SynchronousTestCase):
    """C{[gcs]}: its keys, and what goes with what."""

    def test_keys(self):
        """Every key is read; the credentials file is a path of the file's folder."""
        path = self.write("[storage]\nbackend = gcs\n[gcs]\nbucket = pypid-packages\n"
                          "credentials_file = sa.json\nendpoint_url = http://127.0.0.1:4443/\n"
                          "prefix = p\n")
        config = load_config(path)
        gcs = config.stores["gcs"]
        self.assertEqual((gcs.bucket, gcs.prefix, gcs.api_endpoint),
                         ("pypid-packages", "p/", "http://127.0.0.1:4443"))
        self.assertTrue(gcs.credentials_file.endswith("/sa.json"))
        self.assertIs(config.bucket, gcs)
        self.assertEqual(storage_line(config), "Google Cloud Storage bucket pypid-packages at "
                         "http://127.0.0.1:4443, prefix p/")
        self.assertEqual(load_config(self.write("[gcs]\nbucket = b-1\n")).stores["gcs"].api_endpoint,
                         "https://storage.googleapis.com")

    def test_required(self):
        """The bucket is required on the backend."""
        self.assertIn("[gcs] bucket: required for backend = gcs",
                      self.refused("[storage]\nbackend = gcs\n[gcs]\ndownload = stream\n"))

    def test_refused_values(self):
        for text, words in (("bucket = Pypid", "bucket name"), ("bucket = google-x", "goog"),
                            ("check_rate = -1", "requests a second")):
            self.assertIn(words, self.refused(f"[gcs]\n{text}\n"))

    def test_metadata_server_cannot_sign(self):
        """Without a key file, redirects to signed URLs are refused; relays are not."""
        self.assertIn("[gcs] download: redirect needs URLs pypid signs", self.refused(
            "[storage]\nbackend = gcs\n[gcs]\nbucket = b-1\n"))
        load_config(self.write("[storage]\nbackend = gcs\n[gcs]\nbucket = b-1\n"
                               "download = stream\n"))



    def test_anonymous(self):
        """
        No token only at an emulator's endpoint: refused at Google's own
        (whatever the scheme, port or case) and without an endpoint;
        without a key file, no URL to redirect to is signed.
        """
        section = "[storage]\nbackend = gcs\n[gcs]\nbucket = b-1\nanonymous = yes\n"
        self.assertIn("[gcs] anonymous: is for an emulator only, and endpoint_url is empty",
                      self.refused(section + "download = stream\n"))
        for google in ("https://storage.googleapis.com", "http://storage.googleapis.com:4443",
                       "https://STORAGE.googleapis.com./", "https://googleapis.com",
                       "https://storage.europe-west1.rep.googleapis.com"):
            self.assertIn(f"[gcs] anonymous: is for an emulator only, and endpoint_url "
                          f"{google.rstrip('/')} is Google's own",
                          self.refused(f"{section}download = stream\nendpoint_url = {google}\n"))
        emulator = section + "endpoint_url = http://127.0.0.1:4443\n"
        self.assertIn("[gcs] download: redirect needs URLs pypid signs, and anonymous = yes "
                      "signs none without a key file", self.refused(emulator))
        config = load_config(self.write(emulator + "download = stream\n"))
        gcs = config.stores["gcs"]
        self.assertTrue(gcs.anonymous)
        self.assertEqual(storage_line(config), "Google Cloud Storage bucket b-1 at "
                         "http://127.0.0.1:4443 (anonymous: no token)")
        signed = load_config(self.write(emulator + "credentials_file = sa.json\n"))
        self.assertEqual(signed.stores["gcs"].download, "redirect")
        load_config(self.write(section + "endpoint_url = http://gcs.internal.example:4443\n"
                               "download = stream\n"))
        self.assertFalse(load_config(self.write("[gcs]\nbucket = b-1\n")).stores["gcs"].anonymous)
