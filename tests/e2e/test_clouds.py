"""
End-to-end tests of the Azure Blob Storage and Google Cloud Storage
backends: the real daemon on a container of Azurite and a bucket of
fake-gcs-server, driven by real twine, pip and uv; the same tests S3
passes on moto and SeaweedFS (L{tests.harness.bucket_e2e}). On
fake-gcs-server also with C{[gcs] anonymous = yes} and no token endpoint.
"""

from tests.harness.bucket_e2e import (
    BucketTestCase,
    CloudTestCase,
    ConvergenceMixin,
    DownloadCountMixin,
    FilenameRaceMixin,
    OutageMixin,
    RebuildMixin,
    RedirectMixin,
    RetentionMixin,
    ShortLivedURLMixin,
    StreamMixin,
)
from tests.harness.e2e_clouds import AZURE, GCS, GCS_ANONYMOUS, GCS_ANONYMOUS_SIGNED


class AzureRedirectTests(RedirectMixin, BucketTestCase):
    cloud = AZURE


class AzureStreamTests(StreamMixin, BucketTestCase):
    cloud = AZURE


class AzureRebuildTests(RebuildMixin, CloudTestCase):
    cloud = AZURE


class AzureConvergenceTests(ConvergenceMixin, CloudTestCase):
    cloud = AZURE


class AzureRetentionTests(RetentionMixin, CloudTestCase):
    cloud = AZURE


class AzureDownloadCountTests(DownloadCountMixin, CloudTestCase):
    cloud = AZURE


class AzureOutageTests(OutageMixin, CloudTestCase):
    cloud = AZURE


class GCSRedirectTests(RedirectMixin, BucketTestCase):
    cloud = GCS


class GCSStreamTests(StreamMixin, BucketTestCase):
    cloud = GCS


class GCSRebuildTests(RebuildMixin, CloudTestCase):
    cloud = GCS


class GCSConvergenceTests(ConvergenceMixin, CloudTestCase):
    cloud = GCS


class GCSRetentionTests(RetentionMixin, CloudTestCase):
    cloud = GCS


class GCSDownloadCountTests(DownloadCountMixin, CloudTestCase):
    cloud = GCS


class GCSOutageTests(OutageMixin, CloudTestCase):
    cloud = GCS


class AzureFilenameRaceTests(FilenameRaceMixin, CloudTestCase):
    cloud = AZURE


class GCSFilenameRaceTests(FilenameRaceMixin, CloudTestCase):
    cloud = GCS


class AzureShortLivedURLTests(ShortLivedURLMixin, BucketTestCase):
    cloud = AZURE


class GCSShortLivedURLTests(ShortLivedURLMixin, BucketTestCase):
    cloud = GCS


class GCSAnonymousRedirectTests(RedirectMixin, BucketTestCase):
    """
    C{anonymous = yes} with a key file: no token is asked for (its token
    endpoint is a closed port), and its key signs the URLs redirected to.
    """

    cloud = GCS_ANONYMOUS_SIGNED

    def test_start_log(self):
        """The start log says the bucket is reached without a token."""
        self.assertIn("(anonymous: no token)", self.daemon.log_text())


class GCSAnonymousStreamTests(StreamMixin, BucketTestCase):
    """C{anonymous = yes} without a key file: no token, every byte relayed."""

    cloud = GCS_ANONYMOUS
