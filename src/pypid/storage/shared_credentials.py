"""
The credentials of one S3 client that the storages of several hosted
indexes share (L{pypid.storage.factory.SharedBucket}): each storage starts
and stops its credentials as if they were its own
(L{pypid.storage.s3.storage.S3Storage.prepare} and C{close}); only the
first start finds them and only the last stop ends their refresh, so a
named index stopping first does not leave the default's signing with
credentials no longer refreshed, and temporary ones are refreshed once,
not once per index.

A module of its own, loaded only with an S3 storage: its base class
imports botocore.
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime

from pypid.storage.interface import Run
from pypid.storage.s3.credentials import CredentialSource
from pypid.storage.s3.sign import Credentials


class SharedCredentials(CredentialSource):
    """
    The credentials of a client several storages use: found by the first
    storage's start, refreshed until the last one stops (each storage
    starts and stops its credentials as if they were its own).

    The daemon's parts start one after the other: a second start finds
    the first one's credentials found already.
    """

    def __init__(self, static: Credentials | None, run: Run, clock: IReactorTime) -> None:
        super().__init__(static, run, clock)
        self._users = 0

    async def start(self) -> None:
        """Find the credentials, at the first user's start only."""
        self._users += 1
        if self._users > 1:
            return
        try:
            await super().start()
        except BaseException:
            self._users -= 1
            raise

    def stop(self) -> None:
        """Stop refreshing them once the last user stopped."""
        self._users = max(self._users - 1, 0)
        if not self._users:
            super().stop()
