"""
Where S3 credentials come from: the configured keys, or botocore's chain
(the environment, the shared files, container and instance roles), whose
calls block and run in the thread pool. Temporary credentials are
refreshed ahead of their expiry, so signing never waits for them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IReactorTime

from pypid.jobs.run import Run
from pypid.storage.base.interface import StorageError
from pypid.storage.bucket.credential_life import AheadRefresh
from pypid.storage.s3.sign import Credentials

#: Refresh temporary credentials this long before they expire (botocore's
#: own advisory refresh window).
REFRESH_AHEAD = 15 * 60


def _resolve_chain() -> Any:
    """botocore's credential chain; blocking (it may ask the instance role)."""
    import botocore.session
    return botocore.session.Session().get_credentials()


def _expiry_of(resolved: Any) -> float | None:
    expiry = getattr(resolved, "_expiry_time", None)
    return expiry.timestamp() if expiry is not None else None


class CredentialSource:
    """The credentials to sign with now: C{static} ones, or the chain's (C{resolve})."""

    def __init__(self, static: Credentials | None, run: Run, clock: IReactorTime,
                 resolve: Callable[[], Any] = _resolve_chain) -> None:
        self._static = static
        self._run = run
        self._resolve = resolve
        # (botocore's credentials: untyped)
        self._resolved: Any = None
        self._current = static
        self._refreshes = AheadRefresh(clock, self._refresh, REFRESH_AHEAD,
                                       "the S3 credentials")

    async def start(self) -> None:
        """Find the credentials (once, at start-up), or L{StorageError}."""
        self._refreshes.restart()
        if self._static is not None:
            return
        resolved = await self._run(self._resolve)
        if resolved is None:
            raise StorageError(
                "no S3 credentials: set [s3] access_key and secret_key, the AWS "
                "environment variables, or give the machine a role")
        self._resolved = resolved
        await self._refresh()

    def stop(self) -> None:
        """Stop refreshing (a refresh under way schedules no other)."""
        self._refreshes.stop()

    def current(self) -> Credentials:
        """The credentials to sign with now (never blocks)."""
        if self._current is None:
            raise StorageError("S3 credentials are not loaded yet")
        return self._current

    async def _refresh(self) -> None:
        resolved = self._resolved
        frozen = await self._run(resolved.get_frozen_credentials)
        self._current = Credentials(frozen.access_key, frozen.secret_key, frozen.token,
                                    _expiry_of(resolved))
        self._refreshes.schedule(self._current.expiry)
