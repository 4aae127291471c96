"""
The grammar of credentials in the configuration: user names, the argon2id
hashes C{[users]} accepts (L{parse_hash}), and htpasswd files' lines
(L{parse_htpasswd}), so that pypiserver's users move over as they are.
htpasswd's weak schemes are refused, naming the line, so the administrator
re-hashes them: plaintext, DES crypt, MD5, SHA-1 and SHA-2 crypt, all fast
enough to guess offline; bcrypt and argon2id are taken.
"""

from __future__ import annotations

import base64
import binascii
import re

import attrs

#: A user (or group) name. (C{\Z}, not C{$}, which also matches before a
#: final line break: C{"alice\n"} is not a name.)
USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}\Z")

# $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<digest>, both in
# unpadded standard base64, as argon2's reference encoder writes it.
_ARGON2ID = re.compile(
    r"\$argon2id\$v=19\$m=([0-9]{1,10}),t=([0-9]{1,10}),p=([0-9]{1,8})"
    r"\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)\Z"
)


@attrs.frozen
class HashShape:
    """The cost parameters and sizes of a well-formed argon2id hash."""

    memory_cost: int
    time_cost: int
    parallelism: int
    salt_len: int
    hash_len: int


def b64_text(data: bytes) -> str:
    """C{data} in URL-safe base64 without padding: a session's cookie, a sign-in's values."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _decode_b64(text: str) -> bytes:
    # argon2 writes base64 without padding; put it back for a strict decode.
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def parse_hash(value: str) -> HashShape:
    """
    The L{HashShape} of an argon2id hash (a C{[users]} value), or
    L{ValueError} saying what is accepted; the message never repeats
    C{value}, which may be a plaintext password put there by mistake.

    Only argon2id: RFC 9106 recommends it, argon2d leaks through side
    channels and argon2i is weaker against trade-off attacks. The check is
    textual (no hashing), so a configuration of many users loads fast.
    """
    help_ = "make one with pypid-passwd and put it in [users] as: name = <hash>"
    if not isinstance(value, str) or not value:
        raise ValueError(f"an argon2id password hash is required; {help_}")
    if not value.startswith("$"):
        raise ValueError(f"this looks like a plaintext password, which is never accepted; {help_}")
    if value.startswith(("$argon2i$", "$argon2d$")):
        raise ValueError("only argon2id hashes ($argon2id$...) are accepted, not argon2i or "
                         f"argon2d; {help_}")
    if not value.startswith("$argon2id$"):
        raise ValueError("only argon2id hashes ($argon2id$...) are accepted (not bcrypt, "
                         f"crypt or other formats); {help_}")
    match = _ARGON2ID.match(value)
    if match is None:
        raise ValueError("malformed argon2id hash (expected "
                         f"$argon2id$v=19$m=...,t=...,p=...$<salt>$<hash>); {help_}")
    memory_cost, time_cost, parallelism = (int(match.group(i)) for i in (1, 2, 3))
    try:
        salt = _decode_b64(match.group(4))
        digest = _decode_b64(match.group(5))
    except (binascii.Error, ValueError):
        raise ValueError(f"malformed argon2id hash (bad base64); {help_}") from None
    if parallelism < 1 or time_cost < 1 or memory_cost < 8 * parallelism or len(salt) < 8 \
            or len(digest) < 4:
        raise ValueError(f"argon2id hash with impossible parameters; {help_}")
    return HashShape(memory_cost, time_cost, parallelism, len(salt), len(digest))


_BCRYPT = re.compile(r"^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")


def is_bcrypt(value: str) -> bool:
    """Whether C{value} is a well-formed bcrypt hash (htpasswd files have them)."""
    return bool(_BCRYPT.match(value))


_WEAK = (
    ("$apr1$", "Apache MD5"),
    ("$1$", "MD5 crypt"),
    ("{SHA}", "SHA-1"),
    ("$5$", "SHA-256 crypt"),
    ("$6$", "SHA-512 crypt"),
)


#: What an htpasswd entry whose hash is refused is told to do; several, each.
_REHASH = "set the password again with htpasswd -B (bcrypt) or pypid-passwd (argon2id)"
_REHASH_EACH = "set each password again with htpasswd -B (bcrypt) or pypid-passwd (argon2id)"

#: The most entries one refusal lists (a migrated file may have hundreds).
_LISTED = 10


@attrs.frozen
class _Unusable:
    """
    An htpasswd entry that cannot be used: at line C{number}, C{what} is
    wrong (its user named, never its hash); C{remedy}, or L{None} where
    C{what} says it.
    """

    number: int
    what: str
    remedy: str | None = None


def parse_htpasswd(text: str, source: str) -> dict[str, str]:
    """
    The users of an htpasswd file: C{{name: hash}}.

    Every entry is read before any is refused, so a file of several weak
    entries (a pypiserver's) is told of all at once, not one a start. A
    file naming no user is refused, not taken as nobody: one read while it
    is rewritten would end all its users' tokens, on every worker.

    @param source: the file's name, for messages.
    @raise ValueError: naming the file, the lines and the users (never the
        hashes) of the entries that cannot be used, or that it names no user.
    """
    users = {}
    unusable: list[_Unusable] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition(":")
        if not sep or not USER_NAME.match(name):
            unusable.append(_Unusable(number, "expected user:hash, with a user name of 1 to "
                                              "64 letters, digits, '.', '_', '@' or '-'"))
            continue
        if name in users:
            unusable.append(_Unusable(number, f"user {name!r} is listed twice"))
            continue
        users[name] = value = value.strip()
        refused = _refusal(value)
        if refused is not None:
            what, remedy = refused
            unusable.append(_Unusable(number, f"user {name!r}: {what}", remedy))
    if unusable:
        raise ValueError(_unusable_message(source, unusable))
    if not users:
        raise ValueError(f"{source} names no user (a file read while it is written would end "
                         "every user's tokens); to have none, leave [auth] htpasswd empty")
    return users


def _unusable_message(source: str, unusable: list[_Unusable]) -> str:
    """
    The message of the unusable entries of C{source}: one entry's as
    C{file:2: user 'bob': ...; remedy}; several listed by line, each remedy
    once, at the end.
    """
    if len(unusable) == 1:
        [entry] = unusable
        remedy = f"; {entry.remedy}" if entry.remedy else ""
        return f"{source}:{entry.number}: {entry.what}{remedy}"
    listed = ", ".join(f"{entry.number} ({entry.what})" for entry in unusable[:_LISTED])
    more = len(unusable) - _LISTED
    if more > 0:
        listed += f" and {more} more"
    remedies = dict.fromkeys(_REHASH_EACH if entry.remedy == _REHASH else entry.remedy
                             for entry in unusable if entry.remedy)
    return (f"{source}: lines {listed} cannot be used"
            + "".join(f"; {remedy}" for remedy in remedies))


def _refusal(value: str) -> tuple[str, str | None] | None:
    """Why an htpasswd hash is refused and what to do (or L{None}); L{None} if it is used."""
    if is_bcrypt(value):
        return None
    for prefix, scheme in _WEAK:
        if value.startswith(prefix):
            return f"{scheme} hashes are too weak", _REHASH
    if value.startswith("$argon2"):
        try:
            parse_hash(value)
        except ValueError as e:
            what, _, remedy = str(e).partition("; ")
            return what, remedy or None
        return None
    if value.startswith("$2"):
        return "not a well-formed bcrypt hash", None
    if len(value) == 13 and re.match(r"^[./A-Za-z0-9]{13}$", value):
        return "DES crypt hashes are too weak", _REHASH
    return "a plaintext password or an unknown scheme is never accepted", _REHASH
