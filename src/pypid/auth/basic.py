"""
HTTP Basic credentials: parsing an C{Authorization} header, and the challenge
that asks for one.

pip, uv and twine send credentials with every request, so L{parse_basic} is
pure and cheap: it turns a header into a user name and a password, or refuses
it with L{MalformedCredentials}, before anything expensive happens.
"""

from __future__ import annotations

import base64
import binascii
import re

#: The realm of the C{WWW-Authenticate} challenge; see L{www_authenticate_header}.
REALM = "pypid"

#: Longest password accepted, in bytes (UTF-8 or as sent): argon2 would hash a
#: megabyte happily, so the bound is what stops a client from making us do it.
MAX_PASSWORD_BYTES = 4096

#: Longest user name accepted, in bytes.
MAX_USER_BYTES = 256

# The longest base64 text that can decode to a user, a colon and a password
# within the limits above; anything longer is refused without decoding it.
_MAX_BASIC_TOKEN = 4 * -(-(MAX_USER_BYTES + 1 + MAX_PASSWORD_BYTES) // 3)

# C0 controls and DEL: refused in user names so that a name can be logged
# without forging log lines, and so "user\0password" keys stay unambiguous.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class MalformedCredentials(ValueError):
    """
    An C{Authorization} header that is not usable HTTP Basic credentials; the
    message never contains any part of the header, which may hold a password.
    """


def www_authenticate_header() -> bytes:
    """The C{WWW-Authenticate} value of a 401 response, so the realm is spelt in one place."""
    return f'Basic realm="{REALM}"'.encode("ascii")


def parse_basic(header: bytes | None) -> tuple[str, str] | None:
    """
    Return C{(user, password)} from an C{Authorization} header value, or
    L{None} when there is no header, refusing anything malformed or oversized
    before any hashing is done (L{credentials_of}, L{decode_password}).

    @raise MalformedCredentials: the header is not C{Basic <base64>} of
        C{user:password} within the size limits.
    """
    if header is None:
        return None
    parts = header.split(None, 1)
    if len(parts) != 2 or parts[0].lower() != b"basic":
        raise MalformedCredentials("only Basic credentials are accepted")
    token = parts[1].strip()
    if len(token) > _MAX_BASIC_TOKEN:
        raise MalformedCredentials("credentials too long")
    try:
        decoded = base64.b64decode(token, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedCredentials("credentials are not valid base64") from None
    user_bytes, colon, password_bytes = decoded.partition(b":")
    if not colon:
        raise MalformedCredentials("credentials have no ':' between user and password")
    return credentials_of(user_bytes, password_bytes)


def credentials_of(user_bytes: bytes, password_bytes: bytes) -> tuple[str, str]:
    """
    C{(user, password)} of a user name and password as sent (in an
    C{Authorization} header, or the login form's fields), refusing what no user
    could have: an empty or oversized name, one with control characters or not
    UTF-8, an oversized password.

    @raise MalformedCredentials: naming what is wrong, never quoting it.
    """
    if not user_bytes:
        raise MalformedCredentials("empty user name")
    if len(user_bytes) > MAX_USER_BYTES:
        raise MalformedCredentials("user name too long")
    if len(password_bytes) > MAX_PASSWORD_BYTES:
        raise MalformedCredentials("password too long")
    try:
        user = user_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedCredentials("user name is not UTF-8") from None
    if _CONTROL.search(user):
        raise MalformedCredentials("user name contains control characters")
    return user, decode_password(password_bytes)


def decode_password(raw: bytes) -> str:
    """
    Decode a password's bytes the one way both the server and
    C{pypid-passwd} do, so a hash made from a file verifies what a client
    sends: UTF-8 when valid, latin-1 otherwise (old clients send latin-1).
    """
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")
