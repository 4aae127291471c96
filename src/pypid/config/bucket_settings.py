"""
What every object store's section (C{[s3]}, C{[azure]}, C{[gcs]}) says of
how its bucket is worked, whatever the cloud: how downloads are served,
how often the other servers' changes are looked for, the snapshot's copy
in the bucket, the pace of the background check.
"""

from __future__ import annotations

from typing import Protocol


class BucketConfig(Protocol):
    """The keys of a store's section that L{pypid.storage.bucket.storage.BucketSettings} reads."""

    @property
    def prefix(self) -> str:
        """C{prefix}."""
    @property
    def download(self) -> str:
        """C{download}."""
    @property
    def public_url(self) -> str | None:
        """C{public_url}."""
    @property
    def expire_after(self) -> float:
        """C{expire_after}."""
    @property
    def buffer_time(self) -> float:
        """C{buffer_time}."""
    @property
    def sync_interval(self) -> float:
        """C{sync_interval}."""
    @property
    def bucket_snapshot(self) -> bool:
        """C{bucket_snapshot}."""
    @property
    def check_rate(self) -> float:
        """C{check_rate}."""
    @property
    def timeout(self) -> float:
        """C{timeout}."""
