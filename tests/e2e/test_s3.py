"""
End-to-end tests of the S3 backend: the real daemon on a bucket of moto's
S3 server and of SeaweedFS, a real one (over loopback HTTP), driven by
real twine, pip and uv (the tests themselves: L{tests.harness.bucket_e2e},
which the other clouds run too, in C{tests/e2e/test_clouds.py}).
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
from tests.harness.e2e_clouds import MOTO, SEAWEED


class RedirectTests(RedirectMixin, BucketTestCase):
    cloud = MOTO


class StreamTests(StreamMixin, BucketTestCase):
    cloud = MOTO


class RebuildTests(RebuildMixin, CloudTestCase):
    cloud = MOTO


class ConvergenceTests(ConvergenceMixin, CloudTestCase):
    cloud = MOTO


class RetentionTests(RetentionMixin, CloudTestCase):
    cloud = MOTO


class DownloadCountTests(DownloadCountMixin, CloudTestCase):
    cloud = MOTO


class OutageTests(OutageMixin, CloudTestCase):
    cloud = MOTO


class FilenameRaceTests(FilenameRaceMixin, CloudTestCase):
    cloud = MOTO


# -- the same on SeaweedFS, a real S3 server ------------------------------------------------------


class SeaweedRedirectTests(RedirectTests):
    cloud = SEAWEED


class SeaweedStreamTests(StreamTests):
    cloud = SEAWEED


class SeaweedRebuildTests(RebuildTests):
    cloud = SEAWEED


class SeaweedConvergenceTests(ConvergenceTests):
    cloud = SEAWEED


class SeaweedRetentionTests(RetentionTests):
    cloud = SEAWEED


class SeaweedDownloadCountTests(DownloadCountTests):
    cloud = SEAWEED


class SeaweedOutageTests(OutageTests):
    cloud = SEAWEED


class SeaweedFilenameRaceTests(FilenameRaceTests):
    cloud = SEAWEED


class ShortLivedURLTests(ShortLivedURLMixin, BucketTestCase):
    cloud = MOTO


class SeaweedShortLivedURLTests(ShortLivedURLTests):
    cloud = SEAWEED
