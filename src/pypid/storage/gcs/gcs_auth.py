"""
How pypid proves itself to Google Cloud Storage, and who signs its
download URLs.

Tokens come from C{google-auth}: a service account's key file, or the
machine's metadata server. A token's refresh blocks: it runs in the thread
pool, ahead of its expiry, so a request never waits for it. V4 URLs
(L{pypid.storage.gcs.v4_urls}) are signed locally with the key file's
key; the metadata server's credentials sign only through an IAM call per
URL, too slow for a download, so without a key file downloads are relayed.

An emulator checks no token (C{[gcs] anonymous}): L{AnonymousAccess} sends
none. A token that cannot be had is one short line saying who failed
(L{token_failure}), never their answer verbatim.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from twisted.internet.interfaces import IReactorTime

from pypid.config.values import held_bytes
from pypid.core.util.terminal_text import short_line
from pypid.jobs.run import Run
from pypid.storage.base.interface import StorageError
from pypid.storage.bucket.credential_life import AheadRefresh

#: The scope pypid's tokens are for.
SCOPE = "https://www.googleapis.com/auth/devstorage.read_write"

#: How long before its expiry a token is replaced.
REFRESH_AHEAD = 300.0


def key_file_credentials(path: str, held: Mapping[str, str] | None = None) -> Any:
    """
    The service account of a key file, as read with the configuration
    (C{held}) or else now: call it in the thread pool.
    """
    from google.oauth2 import service_account
    try:
        info = json.loads(held_bytes(path, held))
        return service_account.Credentials.from_service_account_info(info, scopes=[SCOPE])
    except (OSError, ValueError, KeyError, AttributeError, TypeError) as e:
        raise StorageError(f"cannot use [gcs] credentials_file {path}: "
                           f"{short_line(str(e))}") from None


def metadata_server_credentials() -> Any:
    """The machine's service account, from its metadata server."""
    from google.auth import compute_engine
    return compute_engine.Credentials(scopes=[SCOPE])


class GCSCredentials(Protocol):
    """What the client proves its requests and signs its download URLs with."""

    async def start(self) -> None:
        """Find the credentials (the first token); before any request."""

    def stop(self) -> None:
        """Stop refreshing them."""

    def authorize(self, headers: dict[str, str]) -> None:
        """Add to C{headers} what proves the request (a bearer token), if anything."""

    def signing(self) -> tuple[str, Callable[[bytes], bytes]]:
        """The service account's email and its signer of bytes, for V4 URLs."""

    def signer(self) -> str:
        """Who signs download URLs now (see L{pypid.storage.bucket.store.ObjectStore})."""


def _root(error: BaseException) -> BaseException:
    """The first cause of C{error} (a refused connection under a transport error)."""
    for _ in range(20):
        cause = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
        if cause is None:
            break
        error = cause
    return error


def _reason(error: BaseException) -> str:
    """What C{error} says, as one short escaped line."""
    root = _root(error)
    text = root.args[0] if root.args and isinstance(root.args[0], str) else str(root)
    return short_line(text or type(root).__name__)


def token_failure(credentials: Any, error: Exception) -> StorageError:
    """
    The line for a token that could not be had: who was asked, whether it
    could not be reached (an L{OSError} among the causes) or answered no,
    and its reason, short and escaped (an answer may be anything).
    """
    from google.auth.exceptions import RefreshError
    from google.oauth2 import service_account
    unreachable = isinstance(_root(error), OSError)
    reason = _reason(error)
    if isinstance(credentials, service_account.Credentials):
        # (google-auth keeps the key file's token_uri private)
        endpoint = short_line(str(getattr(credentials, "_token_uri", "")), 100)
        where = f"the token endpoint {endpoint} of [gcs] credentials_file"
        if unreachable:
            return StorageError(f"{where} could not be reached: {reason}")
        if isinstance(error, RefreshError):
            return StorageError(f"{where} refused the service account's key: {reason}")
        return StorageError(f"no Google Cloud token from {where}: {reason}")
    hint = ("; no [gcs] credentials_file is set: give a service account's key file, "
            "or, for an emulator, set endpoint_url and anonymous = yes")
    if unreachable:
        return StorageError(f"the machine's metadata server could not be reached: {reason}"
                            + hint)
    return StorageError(f"the machine's metadata server gave no token: {reason}" + hint)


def _signing(credentials: Any, cannot: str) -> tuple[str, Callable[[bytes], bytes]]:
    """The signer of C{credentials} (see L{GCSCredentials.signing}), or C{cannot} raised."""
    signer = getattr(credentials, "signer", None)
    email = getattr(credentials, "signer_email", None)
    if signer is None or not email or not hasattr(credentials, "_signer"):
        raise StorageError(cannot)
    return email, signer.sign


def _signer(credentials: Any, cannot: str) -> str:
    """The service account and its key that sign URLs (L{GCSCredentials.signer})."""
    email, _ = _signing(credentials, cannot)
    key_id = getattr(credentials.signer, "key_id", None) or ""
    return f"{email}:{key_id}"


def _refresh(credentials: Any) -> None:
    from google.auth.transport.requests import Request
    credentials.refresh(Request())


#: Why the credentials of each kind without a key file sign no URL.
_METADATA_SIGNS_NONE = ("the metadata server's credentials cannot sign download URLs: "
                        "set [gcs] download = stream, or give a credentials_file")
_ANONYMOUS_SIGNS_NONE = ("[gcs] anonymous = yes without a credentials_file signs no download "
                         "URL: set [gcs] download = stream, or give a credentials_file")


class GoogleCredentials:
    """The token to send now, refreshed ahead of its expiry; see the module."""

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
        """The first token, or L{StorageError} (L{token_failure})."""
        self._refreshes.restart()  # (a second start: one refresh goes on, not two)
        self._credentials = await self._run(self._make)
        await self._refresh()

    def stop(self) -> None:
        """Stop refreshing."""
        self._refreshes.stop()

    async def _refresh(self) -> None:
        credentials = self._credentials
        try:
            await self._run(self._refresh_with, credentials)
        except Exception as e:
            raise token_failure(credentials, e) from None
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
        """The key file's email and signer, for V4 URLs; else L{StorageError}."""
        return _signing(self._credentials, _METADATA_SIGNS_NONE)

    def signer(self) -> str:
        """The service account and its key that sign URLs."""
        return _signer(self._credentials, _METADATA_SIGNS_NONE)


class AnonymousAccess:
    """
    No token (C{[gcs] anonymous}, for an emulator): no token endpoint is
    asked; a key file, when given (C{make}), only signs download URLs.
    """

    def __init__(self, run: Run, make: Callable[[], Any] | None = None) -> None:
        self._run = run
        self._make = make
        self._credentials: Any = None

    async def start(self) -> None:
        """Read the key file, if any (L{StorageError}: unusable)."""
        if self._make is not None and self._credentials is None:
            self._credentials = await self._run(self._make)

    def stop(self) -> None:
        """Nothing is refreshed."""

    def authorize(self, headers: dict[str, str]) -> None:
        """Nothing: the emulator takes requests without a token."""

    def signing(self) -> tuple[str, Callable[[bytes], bytes]]:
        """The key file's email and signer, for V4 URLs; else L{StorageError}."""
        return _signing(self._credentials, _ANONYMOUS_SIGNS_NONE)

    def signer(self) -> str:
        """The service account and its key that sign URLs."""
        return _signer(self._credentials, _ANONYMOUS_SIGNS_NONE)
