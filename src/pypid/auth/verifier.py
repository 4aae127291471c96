"""
Users, password hashes and who may do what.

pip, uv and twine send HTTP Basic credentials with every request, so the
server checks a password far more often than a person types one.  This module
keeps that cheap and safe:

  - L{parse_basic} is pure: it turns an C{Authorization} header into a user
    name and a password, or refuses it with L{MalformedCredentials}, before
    anything expensive happens;
  - passwords are stored as argon2id hashes (L{hash_password}, checked at
    configuration time by L{check_hash_format});
  - L{PasswordVerifier} runs the slow hash verification in a thread pool, never
    on the reactor thread, makes an unknown user cost as much as a wrong
    password, and remembers recent successes (by keyed digest, never the
    password itself) so that C{pip install} of fifty packages costs one
    verification;
  - L{Policy} says which actions need an authenticated L{Identity}; the HTTP
    layer turns its answers into status codes.

Nothing here imports the global reactor: the reactor (for its clock and to get
results back from threads) and the thread pool come in through constructors.
"""

import base64
import binascii
import collections
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping

import attrs
import bcrypt
from argon2 import Parameters, PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure

log = Logger()

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

#: The cost of new hashes: argon2id with 19 MiB, 2 passes and 1 lane, the
#: setting OWASP's password storage guidance recommends.  See L{hash_password}.
DEFAULT_PARAMETERS = Parameters(
    type=Type.ID,
    version=19,
    salt_len=16,
    hash_len=32,
    time_cost=2,
    memory_cost=19456,
    parallelism=1,
)

# $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<digest>, both in
# unpadded standard base64, as argon2's reference encoder writes it.
_ARGON2ID = re.compile(
    r"\$argon2id\$v=19\$m=([0-9]{1,10}),t=([0-9]{1,10}),p=([0-9]{1,8})"
    r"\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)\Z"
)


class Busy(Exception):
    """Too many password verifications are under way; try again shortly."""


class MalformedCredentials(ValueError):
    """
    An C{Authorization} header that is not usable HTTP Basic credentials.

    The message is short and never contains any part of the header, which may
    hold a password.
    """


def www_authenticate_header() -> bytes:
    """
    Return the C{WWW-Authenticate} value of a 401 response, so the realm is
    spelt in one place.
    """
    return f'Basic realm="{REALM}"'.encode("ascii")


def parse_basic(header: bytes | None) -> tuple[str, str] | None:
    """
    Return C{(user, password)} from an C{Authorization} header value, or
    L{None} when there is no header, refusing anything malformed or oversized
    before any hashing is done.

    The password is decoded as UTF-8 when it is valid UTF-8 and as latin-1
    otherwise (old clients send latin-1), so every byte string is a password;
    the user name must be UTF-8 without control characters.

    @param header: the raw header value, or L{None}.
    @type header: L{bytes} or L{None}
    @rtype: L{tuple} of (L{str}, L{str}) or L{None}
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


def hash_password(password: str, parameters: Parameters | None = None) -> str:
    """
    Return an argon2id hash of C{password} to put in the C{[users]} section.

    The default cost (L{DEFAULT_PARAMETERS}) is OWASP's recommended argon2id
    setting, 19 MiB and 2 passes, pinned here so a library upgrade does not
    silently change it. Memory is what makes argon2 costly to attack, and
    also what every verification costs the server: RFC 9106's profiles
    (64 MiB, or 2 GiB) would make a fresh server's first login its largest
    allocation, and a few concurrent logins a memory spike; 19 MiB times the
    verification pool's size is a small, plannable bound. Verification reads
    the cost from the hash itself, so hashes made with other costs keep
    working.

    @param password: the password.
    @type password: L{str}
    @param parameters: the argon2 cost to use instead of the default; tests use
        a tiny one to run fast.
    @type parameters: L{argon2.Parameters} or L{None}
    @rtype: L{str}
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


@attrs.frozen
class _HashShape:
    """The cost parameters and sizes of a well-formed argon2id hash."""

    memory_cost: int
    time_cost: int
    parallelism: int
    salt_len: int
    hash_len: int


def _decode_b64(text):
    # argon2 writes base64 without padding; put it back for a strict decode.
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _parse_hash(value):
    """
    Return the L{_HashShape} of an argon2id hash, or raise L{ValueError}
    saying what is accepted; the message never repeats C{value}, which may be
    a plaintext password put there by mistake.
    """
    help_ = "make one with pypid-passwd and put it in [users] as: name = <hash>"
    if not isinstance(value, str) or not value:
        raise ValueError(f"an argon2id password hash is required; {help_}")
    if not value.startswith("$"):
        raise ValueError(
            "this looks like a plaintext password, which is never accepted; "
            f"store an argon2id hash instead: {help_}"
        )
    if value.startswith(("$argon2i$", "$argon2d$")):
        raise ValueError(
            "only argon2id hashes ($argon2id$...) are accepted, not argon2i or "
            f"argon2d; {help_}"
        )
    if not value.startswith("$argon2id$"):
        raise ValueError(
            "only argon2id hashes ($argon2id$...) are accepted (not bcrypt, "
            f"crypt or other formats); {help_}"
        )
    match = _ARGON2ID.match(value)
    if match is None:
        raise ValueError(
            "malformed argon2id hash (expected "
            f"$argon2id$v=19$m=...,t=...,p=...$<salt>$<hash>); {help_}"
        )
    memory_cost, time_cost, parallelism = (int(match.group(i)) for i in (1, 2, 3))
    try:
        salt = _decode_b64(match.group(4))
        digest = _decode_b64(match.group(5))
    except (binascii.Error, ValueError):
        raise ValueError(f"malformed argon2id hash (bad base64); {help_}") from None
    if (
        parallelism < 1
        or time_cost < 1
        or memory_cost < 8 * parallelism
        or len(salt) < 8
        or len(digest) < 4
    ):
        raise ValueError(f"argon2id hash with impossible parameters; {help_}")
    return _HashShape(memory_cost, time_cost, parallelism, len(salt), len(digest))


def check_hash_format(value: str) -> None:
    """
    Refuse, with a message a person can act on, anything in C{[users]} that is
    not a well-formed argon2id hash, a plaintext password above all.

    Only argon2id is accepted: RFC 9106 recommends it for passwords, argon2d
    leaks through side channels and argon2i is weaker against trade-off
    attacks.  The check is textual and cheap (no hashing), so a configuration
    with many users loads fast.

    @param value: the value of one C{name = value} line.
    @type value: L{str}
    @raise ValueError: C{value} is not an argon2id hash; the message does not
        repeat it.
    """
    _parse_hash(value)


def _make_dummy_hash(shape):
    """
    Return a well-formed argon2id hash of nothing, with C{shape}'s cost.

    Its salt and digest are random, so verifying any password against it
    costs a full argon2 computation and fails; building it costs nothing,
    unlike hashing, so start-up and reloads do not block the reactor.
    """

    def b64(data):
        return base64.b64encode(data).rstrip(b"=").decode("ascii")

    return (
        f"$argon2id$v=19$m={shape.memory_cost},t={shape.time_cost},"
        f"p={shape.parallelism}${b64(secrets.token_bytes(shape.salt_len))}"
        f"${b64(secrets.token_bytes(shape.hash_len))}"
    )


def _dummy_shape(hashes):
    """
    Return the most common cost among C{hashes} (the default when there are
    none), so an unknown user costs what a typical known one does.
    """
    counts = collections.Counter(_parse_hash(value) for value in hashes
                                 if not is_bcrypt(value))
    if counts:
        return counts.most_common(1)[0][0]
    p = DEFAULT_PARAMETERS
    return _HashShape(p.memory_cost, p.time_cost, p.parallelism, p.salt_len, p.hash_len)


# What one verification in the pool found; logged on the reactor thread.
_MATCH = "match"
_MISMATCH = "mismatch"
_BROKEN = "broken"


#: What a user (or group) name may be: 1 to 64 letters, digits, '.', '_',
#: '@' or '-', starting with a letter or digit.
USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")

_BCRYPT = re.compile(r"^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")


def is_bcrypt(value):
    """Whether C{value} is a well-formed bcrypt hash (htpasswd files have them)."""
    return bool(_BCRYPT.match(value))


def _make_dummy_bcrypt(cost):
    """
    A bcrypt hash of a random secret: checking any password against it
    costs what a real check does, and fails. Made once, at start-up (one
    bcrypt computation), because a hash with random characters is usually
    refused by bcrypt at once, which would give unknown users away.
    """
    return bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(cost)).decode("ascii")


def _verify_hash(stored_hash, password):
    """
    Verify C{password} against C{stored_hash} (slow: call it in a thread) and
    return L{_MATCH}, L{_MISMATCH} or L{_BROKEN}, never raising for a wrong
    password or an unusable hash.
    """
    if stored_hash.startswith("$2"):
        try:
            # bcrypt reads 72 bytes at most (Apache's htpasswd cuts the rest).
            ok = bcrypt.checkpw(password.encode("utf-8")[:72], stored_hash.encode("ascii"))
        except ValueError:
            return _BROKEN
        return _MATCH if ok else _MISMATCH
    try:
        PasswordHasher().verify(stored_hash, password)
    except VerifyMismatchError:
        return _MISMATCH
    except (InvalidHashError, VerificationError):
        return _BROKEN
    return _MATCH


@attrs.frozen
class Identity:
    """
    Who a request was authenticated as.

    A value rather than a bare name so that groups and token scopes can be
    added without changing every caller.

    @ivar name: the user's name, as it appears in C{[users]}.
    @ivar token: the L{pypid.auth.tokens.Token} the request used (with the user
        name C{__token__}), whose scope limits what the user may do; or
        L{None} for a password.
    """

    name: str
    token: object = None


def _non_negative(instance, attribute, value):
    if value < 0:
        raise ValueError(f"{attribute.name.lstrip('_')} must not be negative")


@attrs.define
class PasswordVerifier:
    """
    Check user names and passwords against the C{[users]} hashes, off the
    reactor thread, with a short-lived in-memory cache of successes.

    A new configuration means a new verifier, so its cache starts empty and a
    removed user or a changed password takes effect at once.

    @ivar _users: user name to argon2id hash; every hash is checked with
        L{check_hash_format} at construction.
    @ivar _reactor: provides C{seconds()} for cache expiry and
        C{callFromThread} for L{deferToThreadPool}.
    @ivar _threadpool: the L{twisted.python.threadpool.ThreadPool} that runs
        the verifications; the caller starts and stops it, and its size
        bounds the memory used by concurrent verifications (19 MiB each with
        the default cost).
    @ivar _cache_ttl: seconds a successful verification is remembered; 0
        disables the cache.
    @ivar _cache_size: most successes remembered; the oldest go first.
    @ivar _max_pending: most distinct verifications waiting or running at
        once; past it, new ones fail at once with L{Busy} rather than queue
        behind a flood of made-up passwords.
    @ivar _run_in_pool: a L{deferToThreadPool}-compatible callable; tests
        replace it to run synchronously and count verifications.
    """

    _users: Mapping = attrs.field(converter=dict, repr=False)
    _reactor: object = attrs.field(repr=False)
    _threadpool: object = attrs.field(repr=False)
    _cache_ttl: float = attrs.field(default=300.0, validator=_non_negative)
    _cache_size: int = attrs.field(default=1024, validator=_non_negative)
    _max_pending: int = attrs.field(default=64, kw_only=True, validator=_non_negative)
    _run_in_pool: object = attrs.field(default=deferToThreadPool, kw_only=True, repr=False)
    # Per-process key for the cache's digests: a leaked cache (a core dump,
    # say) cannot be brute-forced offline without it, and is useless after
    # a restart.
    _cache_key: bytes = attrs.field(init=False, repr=False, factory=lambda: secrets.token_bytes(32))
    # digest -> expiry (reactor seconds), oldest first.
    _cache: collections.OrderedDict = attrs.field(init=False, repr=False, factory=collections.OrderedDict)
    # digest -> Deferreds waiting for the verification already under way.
    _in_flight: dict = attrs.field(init=False, repr=False, factory=dict)
    _dummy_hash: str = attrs.field(init=False, repr=False, default="")

    def __attrs_post_init__(self):
        for name, value in self._users.items():
            if is_bcrypt(value):
                continue  # from an htpasswd file (pypid.auth.htpasswd checked it)
            try:
                check_hash_format(value)
            except ValueError as e:
                raise ValueError(f"user {name!r}: {e}") from None
        hashes = list(self._users.values())
        bcrypts = [h for h in hashes if is_bcrypt(h)]
        if bcrypts and len(bcrypts) * 2 > len(hashes):
            # Mostly bcrypt (users moved from pypiserver): an unknown user
            # costs a bcrypt check of the common cost.
            cost = collections.Counter(int(h[4:6]) for h in bcrypts).most_common(1)[0][0]
            self._dummy_hash = _make_dummy_bcrypt(cost)
        else:
            self._dummy_hash = _make_dummy_hash(_dummy_shape(hashes))

    def knows(self, user):
        """Whether C{user} is a user (of [users] or the htpasswd file)."""
        return user in self._users

    def remembers(self, user, password):
        """
        Whether these credentials were verified lately (and are cached): a
        client already known to hold them is not held back by the throttle.
        """
        return self._cached(self._digest(user, password), self._reactor.seconds())

    def _digest(self, user, password):
        """
        Return the cache key of C{(user, password)}: an HMAC, so the cache
        never holds the password or anything that can be checked offline.
        """
        # The length prefix keeps ("a\0b", "c") and ("a", "b\0c") apart,
        # whatever characters a caller lets into user names.
        user_bytes = user.encode("utf-8")
        message = (
            len(user_bytes).to_bytes(4, "big")
            + user_bytes
            + b"\0"
            + password.encode("utf-8", "surrogatepass")
        )
        return hmac.new(self._cache_key, message, hashlib.sha256).digest()

    def _cached(self, digest, now):
        """Whether C{digest} is a success remembered and not yet expired."""
        expiry = self._cache.get(digest)
        if expiry is None:
            return False
        if expiry <= now:
            del self._cache[digest]
            return False
        return True

    def _remember(self, digest, now):
        """Remember a success until C{now} plus the TTL, within the size bound."""
        if self._cache_ttl <= 0 or self._cache_size <= 0:
            return
        # Expiries are appended in time order, so expired entries are at the
        # front; drop them, then the oldest until there is room.
        while self._cache:
            oldest, expiry = next(iter(self._cache.items()))
            if expiry > now and len(self._cache) < self._cache_size:
                break
            del self._cache[oldest]
        self._cache[digest] = now + self._cache_ttl
        self._cache.move_to_end(digest)

    def verify(self, user: str, password: str) -> Deferred:
        """
        Return a L{Deferred} that fires with C{True} if C{password} is
        C{user}'s password and C{False} otherwise, including for an unknown
        user, which costs the same full hash verification.

        @type user: L{str}
        @type password: L{str}
        @rtype: L{Deferred} firing with L{bool}; it fails only if the thread
            pool does something unexpected.
        """
        digest = self._digest(user, password)
        if self._cached(digest, self._reactor.seconds()):
            return succeed(True)
        result = Deferred()
        waiting = self._in_flight.get(digest)
        if waiting is not None:
            waiting.append(result)
            return result
        if len(self._in_flight) >= self._max_pending:
            return fail(Busy())
        self._in_flight[digest] = [result]
        stored = self._users.get(user)
        known = stored is not None
        work = self._run_in_pool(
            self._reactor,
            self._threadpool,
            _verify_hash,
            stored if known else self._dummy_hash,
            password,
        )
        work.addCallback(self._verified, user, known, digest)
        work.addBoth(self._deliver, digest)
        return result

    def _verified(self, outcome, user, known, digest):
        """Turn a verification's outcome into a bool, log it, and cache a success."""
        if outcome == _MATCH and known:
            self._remember(digest, self._reactor.seconds())
            return True
        if outcome == _BROKEN:
            log.error("The password hash of user {user!r} cannot be used", user=user)
        elif known:
            log.info("Wrong password for user {user!r}", user=user)
        else:
            # Not the name: people type passwords into the user field.
            log.info("Authentication attempt for an unknown user name")
        return False

    def _deliver(self, result, digest):
        """Fire every Deferred waiting for this verification with C{result}."""
        for waiter in self._in_flight.pop(digest, []):
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)
        return None

    def authenticate(self, user: str, password: str) -> Deferred:
        """
        Return a L{Deferred} firing with the L{Identity} of C{user} if
        C{password} is theirs, or L{None} otherwise.

        @rtype: L{Deferred} firing with L{Identity} or L{None}
        """
        return self.verify(user, password).addCallback(
            lambda ok: Identity(user) if ok else None
        )


#: L{Policy.read} value: anyone, authenticated or not, may read.
EVERYONE = "everyone"
#: L{Policy.read} and L{Policy.upload} value: only an L{Identity} may.
AUTHENTICATED = "authenticated"


@attrs.frozen
class Policy:
    """
    Which actions need an authenticated user: the C{[auth]} section.

    It only answers questions; the HTTP layer decides statuses (401 with
    L{www_authenticate_header} when credentials are missing or wrong).

    @ivar read: L{EVERYONE} or L{AUTHENTICATED}: who may list and download.
    @ivar upload: L{AUTHENTICATED}: who may upload.
    """

    read: str = attrs.field(
        default=EVERYONE, validator=attrs.validators.in_((EVERYONE, AUTHENTICATED))
    )
    upload: str = attrs.field(
        default=AUTHENTICATED, validator=attrs.validators.in_((AUTHENTICATED,))
    )

    def needs_auth_for_read(self) -> bool:
        """Whether listing and downloading need an authenticated user."""
        return self.read == AUTHENTICATED

    def needs_auth_for_upload(self) -> bool:
        """Whether uploading needs an authenticated user (always, for now)."""
        return self.upload == AUTHENTICATED

    def may_read(self, identity: Identity | None) -> bool:
        """
        Whether C{identity} (L{None} for an anonymous request) may list and
        download.
        """
        return identity is not None or not self.needs_auth_for_read()

    def may_upload(self, identity: Identity | None) -> bool:
        """
        Whether C{identity} (L{None} for an anonymous request) may upload.
        """
        return identity is not None or not self.needs_auth_for_upload()
