"""
How pypid proves itself to Google Cloud Storage, and who signs its
download URLs.

Tokens come from C{google-auth}: a service account's key file
(C{[gcs] credentials_file}), or, without one, the metadata server of the
machine (workload identity, a VM's service account; C{GCE_METADATA_HOST}
moves it, as google-auth reads it). Getting and refreshing a token makes
an HTTP call that blocks: it runs in the thread pool, ahead of the
token's expiry, never on the reactor; a request never waits for it.

A V4 signed URL (L{pypid.storage.gcs.v4_urls}) is signed with the key
file's private key, by google-auth's signer, locally. The metadata
server's credentials sign only through an IAM call per URL, which a
download cannot wait for: without a key file, downloads are relayed (the
configuration refuses C{download = redirect}).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet.interfaces import IReactorTime

from pypid.config.values import held_bytes
from pypid.jobs.run import Run
from pypid.storage.base.interface import StorageError
from pypid.storage.bucket.credential_life import AheadRefresh

#: The scope pypid's tokens are for.
SCOPE = "https://www.googleapis.com/auth/devstorage.read_write"

#: How long before its expiry a token is replaced.
REFRESH_AHEAD = 300.0


def key_file_credentials(path: str, held: Mapping[str, str] | None = None) -> Any:
    """
    The service account of a key file, its text as read with the
    configuration (C{held}, L{pypid.config.Config.held}) or else read now:
    call it in the thread pool.
    """
    from google.oauth2 import service_account
    try:
        info = json.loads(held_bytes(path, held))
        return service_account.Credentials.from_service_account_info(info, scopes=[SCOPE])
    except (OSError, ValueError, KeyError, AttributeError, TypeError) as e:
        raise StorageError(f"cannot use [gcs] credentials_file {path}: {e}") from None


def metadata_server_credentials() -> Any:
    """The machine's service account, from its metadata server."""
    from google.auth import compute_engine
    return compute_engine.Credentials(scopes=[SCOPE])


def _refresh(credentials: Any) -> None:
    from google.auth.transport.requests import Request
    credentials.refresh(Request())


class GoogleCredentials:
    """
    The token to send now, refreshed ahead of its expiry; see the module.

    @ivar _make: returns google-auth credentials (blocking: run in the pool).
    """

    def __init__(self, make: Callable[[], Any], run: Run, clock: IReactorTime,
                 refresh: Callable[[Any], None] = _refresh) -> None:
        self._make = make
        self._run = run
        self._clock = clock
        self._refresh_with = refresh
        self._credentials: Any = None
        self._token: str | None = None
        self._refreshes = AheadRefresh(clock, self._refresh, REFRESH_AHEAD,
                                       "the Google Cloud token")

    async def start(self) -> None:
        """
        The first token.

        @raise StorageError: when there are no credentials, or the token
            endpoint refuses them.
        """
        self._refreshes.restart()  # (a second start: one refresh goes on, not two)
        try:
            self._credentials = await self._run(self._make)
            await self._refresh()
        except StorageError:
            raise
        except Exception as e:
            raise StorageError(
                "no Google Cloud credentials: set [gcs] credentials_file to a service "
                f"account's key file, or run where the metadata server gives one ({e})")

    def stop(self) -> None:
        """Stop refreshing."""
        self._refreshes.stop()

    async def _refresh(self) -> None:
        credentials = self._credentials
        await self._run(self._refresh_with, credentials)
        self._token = credentials.token
        expiry: datetime.datetime | None = credentials.expiry
        self._refreshes.schedule(None if expiry is None
                                 else expiry.replace(tzinfo=datetime.UTC).timestamp())

    def authorize(self, headers: dict[str, str]) -> None:
        """The bearer token."""
        if self._token is None:
            raise StorageError("the Google Cloud token is not loaded yet")
        headers["authorization"] = "Bearer " + self._token

    def signing(self) -> tuple[str, Callable[[bytes], bytes]]:
        """
        The service account's email and its signer of bytes (RSA SHA-256),
        for V4 URLs.

        @raise StorageError: for credentials that cannot sign locally.
        """
        signer = getattr(self._credentials, "signer", None)
        email = getattr(self._credentials, "signer_email", None)
        if signer is None or not email or not hasattr(self._credentials, "_signer"):
            raise StorageError("the metadata server's credentials cannot sign download URLs: "
                               "set [gcs] download = stream, or give a credentials_file")
        return email, signer.sign

    def signer(self) -> str:
        """The service account and its key that sign URLs."""
        email, _ = self.signing()
        key_id = getattr(self._credentials.signer, "key_id", None) or ""
        return f"{email}:{key_id}"
