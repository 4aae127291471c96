"""
How pypid proves itself to Azure Blob Storage, and signs download URLs,
by what the operator gives (C{[azure]}):
  - an account key (L{AccountKey}): Shared Key signs each request, and a
    download URL is a read-only service SAS for one blob;
  - a SAS token (L{SasToken}), added to every request: it cannot sign a
    narrower URL, so downloads are relayed;
  - neither (L{AzureIdentity}): C{azure-identity}'s chain gives bearer
    tokens, and a user delegation key asked with one signs the URLs.

SAS URLs are made by C{generate_blob_sas}, a pure function of the key. The
chain's calls block: they run in the thread pool, ahead of expiry, so
signing never waits for them.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from azure.storage.blob import generate_blob_sas
from twisted.internet.interfaces import IReactorTime

from pypid.jobs.run import Run
from pypid.storage.azure.shared_key import shared_key
from pypid.storage.base.interface import StorageError
from pypid.storage.bucket.credential_life import AheadRefresh

#: The scope of a token for Azure Storage.
SCOPE = "https://storage.azure.com/.default"

#: How long before its expiry a token, or a user delegation key, is
#: replaced; a key is asked for this much longer than the longest URL.
REFRESH_AHEAD = 600.0

#: How long a user delegation key is asked for (the service allows 7 days).
DELEGATION_LIFE = 2 * 86400.0


def _when(seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).replace(microsecond=0)


class AzureCredentials(Protocol):
    """What the client signs its requests and its download URLs with."""

    async def start(self) -> None:
        """Find the credentials (a chain's first token); before any request."""

    def stop(self) -> None:
        """Stop refreshing them."""

    def with_token(self, url: str) -> str:
        """The URL to send (with a SAS token, where the credentials are one)."""

    def authorize(self, method: str, url: str, headers: dict[str, str]) -> None:
        """Add to C{headers} what proves the request (a signature, a token)."""

    def sign_url(self, container: str, blob: str, url: str, seconds: float,
                 now: float) -> tuple[str, float]:
        """A read-only URL of the blob at C{url}, and how long it is valid."""

    def signer(self) -> str:
        """Who signs download URLs now (see L{pypid.storage.bucket.store.ObjectStore})."""


class AccountKey:
    """Shared Key with the account's key (see the module)."""

    def __init__(self, account: str, key: str) -> None:
        self._account = account
        self._key = key
        try:
            self._decoded = base64.b64decode(key, validate=True)
        except ValueError:
            raise StorageError("[azure] account_key is not base64: copy it whole "
                               "from the storage account's access keys") from None

    async def start(self) -> None:
        """Nothing to find."""

    def stop(self) -> None:
        """Nothing to refresh."""

    def with_token(self, url: str) -> str:
        """The URL as it is."""
        return url

    def authorize(self, method: str, url: str, headers: dict[str, str]) -> None:
        """Sign the request with Shared Key."""
        headers["authorization"] = shared_key(self._account, self._decoded, method, url,
                                              headers)

    def sign_url(self, container: str, blob: str, url: str, seconds: float,
                 now: float) -> tuple[str, float]:
        """A service SAS, read-only, for the blob."""
        token = generate_blob_sas(self._account, container, blob, account_key=self._key,
                                  permission="r", expiry=_when(now + seconds))
        return f"{url}?{token}", seconds

    def signer(self) -> str:
        """The account and a digest of its key (a rotated key signs anew)."""
        return f"{self._account}:{hashlib.sha256(self._decoded).hexdigest()[:16]}"


class SasToken:
    """A SAS token the operator gave, added to every request."""

    def __init__(self, token: str) -> None:
        self._token = token.removeprefix("?")

    async def start(self) -> None:
        """Nothing to find."""

    def stop(self) -> None:
        """Nothing to refresh."""

    def with_token(self, url: str) -> str:
        """The URL with the token."""
        return url + ("&" if "?" in url else "?") + self._token

    def authorize(self, method: str, url: str, headers: dict[str, str]) -> None:
        """Nothing: the token is in the URL."""

    def sign_url(self, container: str, blob: str, url: str, seconds: float,
                 now: float) -> tuple[str, float]:
        """Never: a SAS token signs no narrower URL (the configuration says so first)."""
        raise StorageError("a SAS token cannot sign download URLs: set [azure] "
                           "download = stream, or give an account key or an identity")

    def signer(self) -> str:
        """A digest of the token."""
        return "sas:" + hashlib.sha256(self._token.encode("utf-8")).hexdigest()[:16]


#: Asks the service for a user delegation key, with a token, valid from
#: C{start} to C{expiry} (POSIX times): the key, as C{UserDelegationKey}.
FetchDelegationKey = Callable[[float, float], Awaitable[Any]]


def _default_chain() -> Any:
    from azure.identity import DefaultAzureCredential
    return DefaultAzureCredential()


class AzureIdentity:
    """The Azure identity chain (see the module)."""

    def __init__(self, account: str, run: Run, clock: IReactorTime,
                 chain: Callable[[], Any] = _default_chain, delegate: bool = True) -> None:
        """
        @param delegate: whether download URLs are signed (a user delegation
            key is asked for only then: an identity without the right relays).
        """
        self._account = account
        self._run = run
        self._clock = clock
        self._make_chain = chain
        self._chain: Any = None
        self._token: str | None = None
        self._key: Any = None
        self._key_expires = 0.0
        self._fetch_key: FetchDelegationKey | None = None
        self._delegate = delegate
        self._refreshes = AheadRefresh(clock, self._refresh, REFRESH_AHEAD, "the Azure token")

    def delegate_with(self, fetch: FetchDelegationKey) -> None:
        """Ask for user delegation keys with C{fetch} (the client's request), if it signs URLs."""
        if self._delegate:
            self._fetch_key = fetch

    async def start(self) -> None:
        """The chain's first token, then a user delegation key; L{StorageError}: none."""
        self._refreshes.restart()  # (a second start: one refresh goes on, not two)
        try:
            self._chain = await self._run(self._make_chain)
            await self._refresh()
        except StorageError:
            raise
        except Exception as e:
            # (the chain's first line; the rest lists each credential it tried)
            said = (str(e).splitlines() or [type(e).__name__])[0]
            raise StorageError(
                "no Azure credentials: set [azure] account_key or sas_token, or give the "
                f"machine an identity (the Azure identity chain said: {said})")

    def stop(self) -> None:
        """Stop refreshing."""
        self._refreshes.stop()

    async def _refresh(self) -> None:
        token = await self._run(self._chain.get_token, SCOPE)
        self._token, expires = token.token, float(token.expires_on)
        now = self._clock.seconds()
        if self._fetch_key is not None and self._key_expires - REFRESH_AHEAD <= now + 3600:
            self._key = await self._fetch_key(now - 300, now + DELEGATION_LIFE)
            self._key_expires = now + DELEGATION_LIFE
        self._refreshes.schedule(expires)

    def with_token(self, url: str) -> str:
        """The URL as it is."""
        return url

    def authorize(self, method: str, url: str, headers: dict[str, str]) -> None:
        """The bearer token."""
        if self._token is None:
            raise StorageError("the Azure token is not loaded yet")
        headers["authorization"] = "Bearer " + self._token

    def sign_url(self, container: str, blob: str, url: str, seconds: float,
                 now: float) -> tuple[str, float]:
        """A user delegation SAS, read-only, never beyond its key."""
        if self._key is None or self._key_expires - now < 60:
            raise StorageError("no user delegation key in force: downloads cannot be signed")
        seconds = min(seconds, self._key_expires - now)
        token = generate_blob_sas(self._account, container, blob,
                                  user_delegation_key=self._key, permission="r",
                                  expiry=_when(now + seconds))
        return f"{url}?{token}", seconds

    def signer(self) -> str:
        """The user delegation key's owner and start."""
        if self._key is None:
            raise StorageError("no user delegation key yet")
        return f"delegation:{self._key.signed_oid}:{self._key.signed_start}"
