"""
The C{--set} overrides that put an end-to-end daemon on a bucket of one of
the tests' S3 servers (L{s3_settings}; moto's unless told), and how often
it syncs (C{SYNC}); they were L{tests.e2e.test_s3}'s.
"""

from tests.harness import s3server

#: How often the daemons of these tests look for each other's changes.
SYNC = 0.5


def s3_settings(bucket, endpoint=None, store=s3server.MOTO, **extra):
    """The C{--set} overrides that put a daemon on C{bucket} of C{store}."""
    settings = {
        "storage.backend": "s3",
        "s3.bucket": bucket,
        "s3.prefix": "packages/",
        "s3.endpoint_url": endpoint or store.endpoint(),
        "s3.access_key": s3server.ACCESS_KEY,
        "s3.secret_key": s3server.SECRET_KEY,
        "s3.sync_interval": str(SYNC),
    }
    settings.update({f"s3.{key}": value for key, value in extra.items()})
    return settings
