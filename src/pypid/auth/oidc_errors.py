"""
The refusals of an OIDC ID token exchange, shared by trusted publishing and
single sign-on: each says why in its message, and its class gives the HTTP
status; with how an untrusted value (L{short}) and a time are shown there.
"""

from __future__ import annotations

import datetime
import json


class TokenRefused(ValueError):
    """The ID token is not one pypid trusts (401); the message says why."""


class NoPublisher(TokenRefused):
    """The ID token is genuine, but no C{[publishers]} rule lets it publish (403)."""


class IssuerUnavailable(Exception):
    """The issuer's keys cannot be had now (503); the message says why."""


class TooMany(IssuerUnavailable):
    """Too many minted tokens or remembered C{jti}s are live at once (503)."""


class OverShare(TooMany):
    """
    One publisher holds its share of the places, or mints faster than its rate
    (429): the others are not held back. It may mint again in C{retry_after}.
    """

    def __init__(self, message: str, retry_after: float, publisher: str) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.publisher = publisher


class IssuerBusy(IssuerUnavailable):
    """Too many exchanges wait for the keys of one issuer already (503)."""


def short(value: object, limit: int = 100) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    text = "".join(c if " " <= c <= "~" else "?" for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_time(seconds: float) -> str:
    """A POSIX time as ISO 8601 in UTC, to the second (C{2026-01-31T12:00:00Z})."""
    try:
        when = datetime.datetime.fromtimestamp(int(seconds), tz=datetime.UTC)
    except (OverflowError, ValueError, OSError):
        return str(seconds)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")
