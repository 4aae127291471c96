"""
Browser sessions: who logged in through C{/login}, kept by the server and
named to the browser by a cookie that holds an id and nothing else.

The cookie's value is C{<id>.<mac>}: 32 random bytes and their
HMAC-SHA256 under the book's key, so a value the server never issued is
refused before any lookup. The book keeps only the SHA-256 of each id, so
its file (mode 0600) names no live cookie: reading it logs no one in.

A session ends at logout, after C{idle} seconds unused or C{lifetime}
seconds of age, and when a reload no longer has its user
(L{SessionBook.revoke}). Its CSRF token is carried by every form and must
come back with every C{POST} from them. Sessions stand for a person only
on the pages for people: the simple API and uploads take passwords and
tokens, and a token never opens a session.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from pypid.core.access.credential_syntax import b64_text
from pypid.core.access.outside_logins import LOCAL, PASSWORD, SOURCES, LoginSource, OutsideLogins

#: Bytes of randomness in a session id, a key and a CSRF token.
ID_BYTES = 32

FORMAT = "pypid-sessions-1"

#: Sessions one user may have open at once: a new login past it ends their
#: least recently used one (logins in a loop must not grow the book without end).
MAX_PER_USER = 16


class SessionFileError(ValueError):
    """A session file cannot be read; the message says where and why."""


def _unb64(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("ascii")).hexdigest()


@attrs.frozen
class Session:
    """
    One person's session (never its id).

    @ivar groups: the directory's or the provider's groups of the user at
        login (C{[groups]} are applied as they are at each request).
    @ivar source: one of L{SOURCES}.
    @ivar created: POSIX time of the login.
    @ivar seen: POSIX time of the last request that used it.
    @ivar csrf: the token its forms carry.
    @ivar stamp: the HMAC (L{SessionBook.stamp_of}) of the hash a password
        user's password was checked against, so that a reload that changed
        the password ends the session; for single sign-on, of the provider
        key; for a directory user, of the directory's key.
    """

    user: str
    groups: frozenset[str]
    source: str
    created: float
    seen: float
    csrf: str
    stamp: str = ""
    #: POSIX time the directory read the groups again (its C{cache_ttl}
    #: passed); L{None}: at login
    checked: float | None = None
    #: who they are to the provider (L{LoginSource.person})
    person: str = ""

    @property
    def groups_read(self) -> float:
        """When the groups were last read from the directory or the provider."""
        return self.created if self.checked is None else self.checked

    def to_json(self, digest: str) -> dict[str, Any]:
        """The record kept in the file, under the id's digest."""
        record = {"digest": digest, "user": self.user, "groups": sorted(self.groups),
                  "source": self.source, "created": self.created, "seen": self.seen,
                  "csrf": self.csrf, "stamp": self.stamp}
        if self.checked is not None:
            record["checked"] = self.checked
        if self.person:
            record["person"] = self.person
        return record

    @classmethod
    def from_json(cls, record: Any) -> tuple[str, Session]:
        """
        C{(digest, session)} of a record of the file.

        @raise ValueError: naming what is wrong with it.
        """
        if not isinstance(record, dict):
            raise ValueError("a session is an object")
        digest = record.get("digest")
        if not isinstance(digest, str) or len(digest) != 64 \
                or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError("digest: expected 64 hexadecimal digits")
        user, source, csrf = record.get("user"), record.get("source"), record.get("csrf")
        if not isinstance(user, str) or not user:
            raise ValueError("user: expected a name")
        if source not in SOURCES:
            raise ValueError(f"source: expected one of {', '.join(sorted(SOURCES))}")
        if not isinstance(csrf, str) or not csrf:
            raise ValueError("csrf: expected a token")
        stamp, person = record.get("stamp", ""), record.get("person", "")
        for name, value in (("stamp", stamp), ("person", person)):
            if not isinstance(value, str):
                raise ValueError(f"{name}: expected text")
        groups = record.get("groups", [])
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise ValueError("groups: expected a list of names")
        created, seen = _posix_time(record, "created"), _posix_time(record, "seen")
        checked = None if record.get("checked") is None else _posix_time(record, "checked")
        return digest, cls(user, frozenset(groups), source, created, seen, csrf, stamp,
                           checked, person)


def _posix_time(record: dict[str, Any], name: str) -> float:
    value = record.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or value != value or value < 0:
        raise ValueError(f"{name}: expected a POSIX time")
    return float(value)


@attrs.define
class SessionBook:
    """
    The sessions open now, by the digest of their id.

    @ivar key: the HMAC key of the cookies' values.
    @ivar idle: seconds a session lasts unused.
    @ivar lifetime: seconds a session lasts at most.
    """

    key: bytes
    idle: float
    lifetime: float
    sessions: dict[str, Session] = attrs.field(factory=dict)

    @classmethod
    def new(cls, idle: float, lifetime: float, random: Callable[[int], bytes]) -> SessionBook:
        """An empty book with a new key (C{random(n)} gives C{n} random bytes)."""
        return cls(random(ID_BYTES), idle, lifetime)

    def _mac(self, session_id: str) -> str:
        return b64_text(hmac.new(self.key, session_id.encode("ascii"), hashlib.sha256).digest())

    def stamp_of(self, stored: str | None) -> str:
        """The stamp of a password hash (L{Session.stamp}); empty for none."""
        if stored is None:
            return ""
        return hmac.new(self.key, stored.encode("utf-8"), hashlib.sha256).hexdigest()

    def login_of(self, session: Session, stored: str | None,
                 outside: OutsideLogins) -> LoginSource | None:
        """
        Where C{session}'s person logged in, while that source still vouches
        for them (checked at each use, and when the book is read at start-up
        and C{SIGHUP}); L{None} once it does not.

        A password user's session stands while C{stored} is the hash they
        logged in with; an outside person's, while no local user has their
        name (C{stored} is L{None}) and C{outside} still admits them through
        the directory or provider of the stamp.

        @param stored: the hash of the local user of the session's name, or L{None}.
        """
        if session.source == PASSWORD:
            if stored is None or not hmac.compare_digest(self.stamp_of(stored),
                                                         session.stamp):
                return None
            return LOCAL
        if stored is not None:
            return None
        key = outside.key_of(session.source)
        if key is None or not hmac.compare_digest(self.stamp_of(key), session.stamp) \
                or not outside.admits(session.source, session.user, session.groups, key):
            return None
        return LoginSource(session.source, session.groups, key, session.person)

    def open(self, user: str, groups: Iterable[str], source: str, now: float,
             random: Callable[[int], bytes], stored: str | None = None,
             replacing: str | None = None, person: str = "") -> tuple[str, Session]:
        """
        A new session for C{user}: the cookie's value, and the session.

        @param stored: the hash a password user's password was checked
            against, or the provider's key (L{stamp_of}).
        @param replacing: the digest of the session the browser had, which
            ends (a login never leaves the old one open beside the new).
        @raise ValueError: for a source not in L{SOURCES}.
        """
        if source not in SOURCES:
            raise ValueError(f"unknown session source {source!r}")
        if replacing is not None:
            self.sessions.pop(replacing, None)
        theirs = sorted((s.seen, d) for d, s in self.sessions.items() if s.user == user)
        for _, digest in theirs[:max(0, len(theirs) - MAX_PER_USER + 1)]:
            del self.sessions[digest]
        session_id = b64_text(random(ID_BYTES))
        session = Session(user, frozenset(groups), source, now, now, b64_text(random(ID_BYTES)),
                          self.stamp_of(stored), person=person)
        self.sessions[_digest(session_id)] = session
        return f"{session_id}.{self._mac(session_id)}", session

    def is_open(self, digest: str, now: float) -> bool:
        """Whether the session of C{digest} is open and has not timed out."""
        session = self.sessions.get(digest)
        return session is not None and self._live(session, now)

    def _digest_of(self, value: str) -> str | None:
        """The digest a cookie's value names, if the value is one this book issued."""
        session_id, dot, mac = value.partition(".")
        if not dot or len(value) > 200 or not session_id.isascii() or not mac.isascii():
            return None
        raw = _unb64(session_id)
        if raw is None or len(raw) != ID_BYTES \
                or not hmac.compare_digest(mac, self._mac(session_id)):
            return None
        return _digest(session_id)

    def _live(self, session: Session, now: float) -> bool:
        return now - session.seen < self.idle and now - session.created < self.lifetime

    def find(self, value: str, now: float) -> tuple[str, Session] | None:
        """
        C{(digest, session)} the cookie's C{value} names, if open and not
        timed out (a timed-out one is closed); not marked used (L{touch}).
        """
        digest = self._digest_of(value)
        if digest is None:
            return None
        session = self.sessions.get(digest)
        if session is None:
            return None
        if not self._live(session, now):
            del self.sessions[digest]
            return None
        return digest, session

    def touch(self, digest: str, now: float) -> None:
        """Mark the session used at C{now} (its idle time starts again)."""
        session = self.sessions.get(digest)
        if session is not None and now > session.seen:
            self.sessions[digest] = attrs.evolve(session, seen=now)

    def regroup(self, digest: str, groups: Iterable[str], now: float) -> Session | None:
        """The session of C{digest} with its groups read again at C{now}, or L{None}."""
        session = self.sessions.get(digest)
        if session is None:
            return None
        session = attrs.evolve(session, groups=frozenset(groups), checked=now)
        self.sessions[digest] = session
        return session

    def close(self, digest: str) -> bool:
        """End one session (a logout); whether it was open."""
        return self.sessions.pop(digest, None) is not None

    def revoke(self, ends: Callable[[Session], bool]) -> int:
        """End every session for which C{ends(session)}; how many ended."""
        gone = [digest for digest, session in self.sessions.items() if ends(session)]
        for digest in gone:
            del self.sessions[digest]
        return len(gone)

    def sweep(self, now: float) -> int:
        """End the sessions that timed out; how many."""
        return self.revoke(lambda session: not self._live(session, now))

    def changes_since(self, before: Mapping[str, Session]) -> dict[str, Session | None]:
        """What changed since C{before}, by digest: sessions opened or changed, L{None} if ended."""
        changes: dict[str, Session | None] = {
            digest: None for digest in before if digest not in self.sessions}
        changes.update((digest, session) for digest, session in self.sessions.items()
                       if before.get(digest) is not session)
        return changes

    def merged(self, theirs: SessionBook, changes: Mapping[str, Session | None],
               now: float) -> SessionBook:
        """
        The book of a file the machine's other workers keep too, C{theirs},
        with this book's C{changes} (L{changes_since}) on it, each session's
        last use the latest either saw, and without the sessions that timed
        out. Its key is the file's (every worker's cookies are the first's).
        """
        book = SessionBook(theirs.key, self.idle, self.lifetime, dict(theirs.sessions))
        for digest, change in changes.items():
            if change is None:
                book.sessions.pop(digest, None)
            else:
                book.sessions[digest] = change
        for digest, session in book.sessions.items():
            seen = max([session.seen, *(s.seen for s in (self.sessions.get(digest),
                                                        theirs.sessions.get(digest))
                                       if s is not None)])
            if seen > session.seen:
                book.sessions[digest] = attrs.evolve(session, seen=seen)
        book.sweep(now)
        return book

    @staticmethod
    def csrf_matches(session: Session, presented: str | None) -> bool:
        """Whether a form sent back its session's CSRF token."""
        return presented is not None and hmac.compare_digest(
            presented.encode("utf-8", "replace"), session.csrf.encode("ascii"))

    def dumps(self) -> bytes:
        """The book as the bytes of its file."""
        return json.dumps({
            "format": FORMAT, "key": b64_text(self.key),
            "sessions": [s.to_json(d) for d, s in sorted(self.sessions.items())],
        }, indent=1).encode("utf-8") + b"\n"

    @classmethod
    def loads(cls, data: bytes, idle: float, lifetime: float, now: float) -> SessionBook:
        """
        The book a file holds, without the sessions that timed out.

        @raise SessionFileError: naming what is wrong.
        """
        try:
            document = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise SessionFileError(f"not JSON: {e}") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise SessionFileError(f"expected a JSON object with \"format\": \"{FORMAT}\"")
        key = document.get("key")
        raw_key = _unb64(key) if isinstance(key, str) else None
        if raw_key is None or len(raw_key) < ID_BYTES:
            raise SessionFileError(f"key: expected {ID_BYTES} bytes in URL-safe base64")
        records = document.get("sessions")
        if not isinstance(records, list):
            raise SessionFileError("sessions: expected a list")
        book = cls(raw_key, idle, lifetime)
        for number, record in enumerate(records, 1):
            try:
                digest, session = Session.from_json(record)
            except ValueError as e:
                raise SessionFileError(f"session {number}: {e}") from None
            book.sessions[digest] = session
        book.sweep(now)
        return book
