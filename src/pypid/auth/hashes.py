"""
Password hashes: making them, and verifying a password against one.

Passwords are stored as argon2id hashes (L{hash_password}); bcrypt hashes from
htpasswd files are accepted too. L{verify_hash} is blocking CPU work, run in a
thread pool. The dummy hashes let an unknown user cost what a known one does.
"""

from __future__ import annotations

import base64
import collections
import secrets
from collections.abc import Iterable

import bcrypt
from argon2 import Parameters, PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from pypid.auth.basic import MAX_PASSWORD_BYTES
from pypid.core.access.credential_syntax import HashShape, is_bcrypt, parse_hash

#: The cost of new hashes: argon2id with 19 MiB, 2 passes and 1 lane, the
#: setting OWASP's password storage guidance recommends.  See L{hash_password}.
DEFAULT_PARAMETERS = Parameters(type=Type.ID, version=19, salt_len=16, hash_len=32,
                                time_cost=2, memory_cost=19456, parallelism=1)


def hash_password(password: str, parameters: Parameters | None = None) -> str:
    """
    Return an argon2id hash of C{password} to put in the C{[users]} section.

    The default cost (L{DEFAULT_PARAMETERS}) is pinned here so a library
    upgrade does not silently change it. Memory is what makes argon2 costly to
    attack, and also what every verification costs the server: RFC 9106's
    profiles (64 MiB, or 2 GiB) would make a fresh server's first login its
    largest allocation; 19 MiB times the verification pool's size is a small,
    plannable bound. Verification reads the cost from the hash itself, so
    hashes made with other costs keep working.

    @param parameters: the argon2 cost instead of the default (tests use a tiny one).
    @raise ValueError: the password is empty or longer than
        L{MAX_PASSWORD_BYTES} bytes of UTF-8.
    """
    if not password:
        raise ValueError("the password is empty")
    if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
        raise ValueError(f"the password is longer than {MAX_PASSWORD_BYTES} bytes")
    if parameters is None:
        parameters = DEFAULT_PARAMETERS
    if parameters.type is not Type.ID:
        raise ValueError("only argon2id hashes are made")
    return PasswordHasher.from_parameters(parameters).hash(password)


def make_dummy_hash(shape: HashShape) -> str:
    """
    A well-formed argon2id hash of nothing, with C{shape}'s cost: its salt and
    digest are random, so verifying any password against it costs a full
    argon2 computation and fails, while building it costs nothing.
    """

    def b64(data: bytes) -> str:
        return base64.b64encode(data).rstrip(b"=").decode("ascii")

    return (f"$argon2id$v=19$m={shape.memory_cost},t={shape.time_cost},"
            f"p={shape.parallelism}${b64(secrets.token_bytes(shape.salt_len))}"
            f"${b64(secrets.token_bytes(shape.hash_len))}")


def dummy_shape(hashes: Iterable[str]) -> HashShape:
    """The most common cost among C{hashes} (else the default): an unknown user's cost."""
    counts = collections.Counter(parse_hash(value) for value in hashes
                                 if not is_bcrypt(value))
    if counts:
        return counts.most_common(1)[0][0]
    p = DEFAULT_PARAMETERS
    return HashShape(p.memory_cost, p.time_cost, p.parallelism, p.salt_len, p.hash_len)


# What one verification in the pool found; logged on the reactor thread.
MATCH = "match"
MISMATCH = "mismatch"
BROKEN = "broken"


def make_dummy_bcrypt(cost: int) -> str:
    """
    A bcrypt hash of a random secret: checking any password against it costs
    what a real check does, and fails. Made once, at start-up (one bcrypt
    computation), because a hash with random characters is usually refused by
    bcrypt at once, which would give unknown users away.
    """
    return bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(cost)).decode("ascii")


def verify_hash(stored_hash: str, password: str) -> str:
    """
    Verify C{password} against C{stored_hash} (slow: call it in a thread) and
    return L{MATCH}, L{MISMATCH} or L{BROKEN}, never raising for a wrong
    password or an unusable hash.
    """
    if stored_hash.startswith("$2"):
        try:
            # bcrypt reads 72 bytes at most (Apache's htpasswd cuts the rest).
            ok = bcrypt.checkpw(password.encode("utf-8")[:72], stored_hash.encode("ascii"))
        except ValueError:
            return BROKEN
        return MATCH if ok else MISMATCH
    try:
        PasswordHasher().verify(stored_hash, password)
    except VerifyMismatchError:
        return MISMATCH
    except (InvalidHashError, VerificationError):
        return BROKEN
    return MATCH
