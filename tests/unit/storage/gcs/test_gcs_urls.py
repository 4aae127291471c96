"""
L{pypid.storage.gcs.v4_urls}: V4 signed URLs, their signature verified
with the key's public half (the emulator checks none).
"""

import datetime
import hashlib
from urllib.parse import parse_qsl, quote, urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from twisted.trial.unittest import SynchronousTestCase

from pypid.storage.gcs.v4_urls import MAX_SECONDS, signed_url

EMAIL = "pypid@pypid.iam.gserviceaccount.com"
NOW = 1_795_000_000.0


def string_to_sign(url):
    """What a V4 URL's signature must sign, rebuilt from the URL by Google's published algorithm."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "X-Goog-Signature"]
    canonical_query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
                               for k, v in sorted(query))
    canonical = "\n".join(["GET", parts.path, canonical_query, f"host:{parts.netloc}\n",
                           "host", "UNSIGNED-PAYLOAD"])
    fields = dict(query)
    scope = fields["X-Goog-Credential"].split("/", 1)[1]
    return "\n".join(["GOOG4-RSA-SHA256", fields["X-Goog-Date"], scope,
                      hashlib.sha256(canonical.encode()).hexdigest()]).encode()


class SignedURLTests(SynchronousTestCase):

    def setUp(self):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def sign(self, data):
        return self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())

    def url(self, name="pkgs/a b+c/é.whl", seconds=3600, endpoint="https://storage.googleapis.com"):
        return signed_url(endpoint, "bkt", name, EMAIL, self.sign, seconds, NOW)

    def verify(self, url):
        signature = bytes.fromhex(dict(parse_qsl(urlsplit(url).query))["X-Goog-Signature"])
        self.key.public_key().verify(signature, string_to_sign(url), padding.PKCS1v15(),
                                     hashes.SHA256())

    def test_signature_verifies(self):
        """The signature is the key's over the canonical request, for odd names and an emulator too."""
        for url in (self.url(), self.url("x.tar.gz"), self.url(endpoint="http://127.0.0.1:9")):
            self.verify(url)

    def test_fields(self):
        """The URL names the object, the signer, the time and the validity."""
        url = self.url(seconds=600)
        parts = urlsplit(url)
        fields = dict(parse_qsl(parts.query))
        self.assertEqual(parts.path, "/bkt/pkgs/a%20b%2Bc/%C3%A9.whl")
        day = datetime.datetime.fromtimestamp(NOW, datetime.UTC).strftime("%Y%m%d")
        self.assertEqual(fields["X-Goog-Credential"], f"{EMAIL}/{day}/auto/storage/goog4_request")
        self.assertEqual((fields["X-Goog-Expires"], fields["X-Goog-SignedHeaders"]), ("600", "host"))

    def test_tampered(self):
        """Another object's URL with this signature does not verify."""
        from cryptography.exceptions import InvalidSignature
        url = self.url().replace("a%20b", "a%20c")
        with self.assertRaises(InvalidSignature):
            self.verify(url)

    def test_at_most_seven_days(self):
        """A longer validity is cut to GCS's seven days."""
        fields = dict(parse_qsl(urlsplit(self.url(seconds=30 * 86400)).query))
        self.assertEqual(fields["X-Goog-Expires"], str(MAX_SECONDS))
