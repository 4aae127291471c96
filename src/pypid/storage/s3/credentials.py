"""
Where S3 credentials come from, and keeping temporary ones fresh.

Keys in the configuration are used as they are. Without them, botocore's
standard chain finds them (the AWS environment variables first, then the
shared files, then container and instance roles). Resolving the chain and
refreshing temporary credentials may make HTTP calls (the instance metadata
service), which block: they run in the thread pool, never on the reactor.

Temporary credentials are refreshed ahead of their expiry, in the
background, so signing a request or a URL never waits for them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import ensureDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from pypid.storage.interface import Run, StorageError
from pypid.storage.s3.sign import Credentials

log = Logger()

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
    """
    The credentials to sign with now.

    @ivar _static: configured L{Credentials}, or L{None} to use the chain.
    @ivar _run: C{run(f, *args) -> Deferred} for blocking work.
    @ivar _clock: provides C{seconds()} and C{callLater}.
    @ivar _resolve: returns botocore credentials (the chain; replaceable in
        tests).
    """

    def __init__(self, static: Credentials | None, run: Run, clock: IReactorTime,
                 resolve: Callable[[], Any] = _resolve_chain) -> None:
        self._static = static
        self._run = run
        self._clock = clock
        self._resolve = resolve
        # (botocore's credentials: untyped)
        self._resolved: Any = None
        self._current = static
        self._timer: IDelayedCall | None = None
        self._stopped = False

    async def start(self) -> None:
        """
        Find the credentials (once, at start-up).

        @raise StorageError: when there are none.
        """
        self._stopped = False
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
        self._stopped = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

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
        self._schedule()

    def _schedule(self) -> None:
        expiry = self._current.expiry if self._current is not None else None
        if expiry is None or self._stopped:
            return
        delay = max(expiry - REFRESH_AHEAD - self._clock.seconds(), 30.0)
        self._timer = self._clock.callLater(delay, self._refresh_later)

    def _refresh_later(self) -> None:
        self._timer = None

        def failed(failure: Failure) -> None:
            log.warn("Cannot refresh the S3 credentials: {error}; retrying in 30 s",
                     error=failure.getErrorMessage())
            if not self._stopped:
                self._timer = self._clock.callLater(30.0, self._refresh_later)

        ensureDeferred(self._refresh()).addErrback(failed)


class SharedCredentials(CredentialSource):
    """
    The credentials of a client several storages use (the hosted indexes
    on one bucket, L{pypid.storage.factory.SharedBucket}): found by the
    first storage's start, refreshed until the last one stops (each storage
    starts and stops its credentials as if they were its own), so a named
    index stopping first does not leave the others signing with credentials
    no longer refreshed, and temporary ones are refreshed once, not once
    per index.

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
