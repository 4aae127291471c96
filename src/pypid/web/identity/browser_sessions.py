"""
The daemon's browser sessions: the L{pypid.core.access.sessions.SessionBook},
its file beside the snapshot, and the cookie that names a session.

The file (C{[auth] sessions}, mode 0600) is read at start-up, so a restart
logs nobody out, and written in a worker thread: at once when a session
ends (what ended must stay ended after a crash), soon after a login, and
every L{SAVE_INTERVAL} seconds while sessions were used, when those that
timed out are swept too. One write at a time.

In a worker of a machine the file is the workers' (L{SharedFile}): each
write puts this worker's changes on the file as the others left it, under
the machine's lock; a login answers once the file holds its session, and
another worker's change is read before this one's next answer
(L{BrowserSessions.sync}).

The cookie is C{__Host-pypid-session} when the page was served over HTTPS
(here, or at a proxy: C{[pypid] base_url} an https URL): the prefix makes
the browser refuse it unless C{Secure}, for the whole site and from this
host only. Over plain HTTP (a trial on a laptop) it is C{pypid-session},
without C{Secure}, which the browser would not send back. Both are
C{HttpOnly} and C{SameSite=Lax}.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

from pypid.core.access.sessions import Session, SessionBook, SessionFileError
from pypid.storage.base.disk import read_if_present, write_durably
from pypid.storage.folder.shared_file import SharedFile

log = Logger()

#: The cookie's name over HTTPS, and over plain HTTP.
SECURE_COOKIE = b"__Host-pypid-session"
PLAIN_COOKIE = b"pypid-session"

#: The cookie that ties a single sign-on under way to the browser that
#: began it (L{pypid.core.access.sso_flow.PendingLogins}), over HTTPS and plain HTTP.
SECURE_BINDING = b"__Host-pypid-sso"
PLAIN_BINDING = b"pypid-sso"

#: Seconds between writes of the sessions' use, and sweeps of those that
#: timed out.
SAVE_INTERVAL = 60.0

#: C{run(f, *args) -> Deferred}: runs blocking C{f} in a worker thread.
Run = Callable[..., Deferred[Any]]

_T = TypeVar("_T")


def load_book(path: str, idle: float, lifetime: float, now: float,
              random: Callable[[int], bytes] = os.urandom) -> SessionBook:
    """
    The book of the file at C{path} (blocking, at start-up), or a new one
    when there is none; L{SessionFileError} naming the file.
    """
    try:
        data = read_if_present(path)
    except OSError as e:
        raise SessionFileError(f"{path}: {e.strerror}") from None
    if data is None:
        return SessionBook.new(idle, lifetime, random)
    try:
        return SessionBook.loads(data, idle, lifetime, now)
    except SessionFileError as e:
        raise SessionFileError(f"{path}: {e}") from None


def has_session_cookie(request: IRequest) -> bool:
    """Whether C{request} carries a session cookie (open or not)."""
    cookies = request.received_cookies  # type: ignore[attr-defined]  # (a Request's)
    return SECURE_COOKIE in cookies or PLAIN_COOKIE in cookies


def is_secure(request: IRequest, base_url: str | None) -> bool:
    """Whether the browser reached the page over HTTPS (here, or at a proxy in front)."""
    return bool(request.isSecure()) or bool(base_url and base_url.startswith("https://"))


class BrowserSessions:
    """The sessions of the people logged in through the pages' form, and their file."""

    def __init__(self, book: SessionBook, path: str, clock: IReactorTime, run: Run,
                 base_url: str | None = None,
                 random: Callable[[int], bytes] = os.urandom,
                 shared: SharedFile | None = None) -> None:
        """
        @param run: runs the file's writes in a worker thread.
        @param shared: in a worker of a machine, the file as the workers
            share it.
        """
        self.book = book
        self.path = path
        self._clock = clock
        self._run = run
        self._base_url = base_url
        self._random = random
        self._writes: Deferred[None] = succeed(None)
        #: who waits for the write not begun yet, or L{None} when none is due
        self._waiting: list[Deferred[None]] | None = None
        #: whether the last write failed (L{tick} tries again)
        self._failed = False
        #: whether sessions were used since the last write
        self._used = False
        self.shared = shared
        #: in a worker of a machine: this worker's changes not written yet,
        #: and those being written (L{SessionBook.changes_since})
        self._pending: dict[str, Session | None] = {}
        self._writing: dict[str, Session | None] = {}

    # -- the cookie --------------------------------------------------------------------

    def cookie_name(self, request: IRequest, binding: bool = False) -> bytes:
        """The name of C{request}'s cookie (C{binding}: a single sign-on's), by its scheme."""
        if is_secure(request, self._base_url):
            return SECURE_BINDING if binding else SECURE_COOKIE
        return PLAIN_BINDING if binding else PLAIN_COOKIE

    def now(self) -> float:
        """The time now, as the sessions count it."""
        return self._clock.seconds()

    def of(self, request: IRequest) -> tuple[str, Session] | None:
        """
        C{(digest, session)} of the cookie C{request} carries, if it names
        an open session (which is then marked used); L{None} otherwise.
        """
        value = request.getCookie(self.cookie_name(request))
        if not value:
            return None
        try:
            text = value.decode("ascii")
        except UnicodeDecodeError:
            return None
        now = self._clock.seconds()
        found = self.book.find(text, now)
        if found is None:
            return None
        self.book.touch(found[0], now)
        self._used = True
        return found

    def _set_cookie(self, request: IRequest, value: str, max_age: int,
                    binding: bool = False) -> None:
        attributes = [f"Max-Age={max_age}", "Path=/", "HttpOnly", "SameSite=Lax"]
        if is_secure(request, self._base_url):
            attributes.append("Secure")
        request.responseHeaders.addRawHeader(b"set-cookie", self.cookie_name(
            request, binding) + b"=" + "; ".join([value, *attributes]).encode("ascii"))

    def bind(self, request: IRequest, value: str, max_age: int) -> None:
        """
        Give the browser the cookie of a single sign-on it begins (its value
        C{value}, for C{max_age} seconds); C{SameSite=Lax}, so the
        provider's redirect back, a top-level navigation, carries it.
        """
        self._set_cookie(request, value, max_age, binding=True)

    def binding_of(self, request: IRequest) -> str | None:
        """The value of the browser's single sign-on cookie, and clear it; L{None}: none."""
        value = request.getCookie(self.cookie_name(request, binding=True))
        if value is None:
            return None
        self._set_cookie(request, "", 0, binding=True)
        try:
            return value.decode("ascii")
        except UnicodeDecodeError:
            return None

    # -- logging in and out --------------------------------------------------------------

    def open(self, request: IRequest, user: str, groups: frozenset[str], source: str,
             stored: str | None = None, person: str = "") -> Deferred[Session]:
        """
        Open a session for C{user} and give C{request}'s browser its cookie;
        the session the browser had, if any, ends. Fires with the session
        (in a worker of a machine, once the file holds it).

        @param stored: what vouches for them
            (L{pypid.core.access.sessions.Session.stamp}).
        @param person: who they are to the provider (its subject).
        """
        had = self.of(request)
        value, session = self._changed(lambda book: book.open(
            user, groups, source, self._clock.seconds(), self._random, stored,
            replacing=had[0] if had is not None else None, person=person))
        self._set_cookie(request, value, int(self.book.lifetime))
        saved = self._save_quietly()
        if self.shared is None:
            return succeed(session)
        # (the next request may come to another worker: it must know it)
        return saved.addCallback(lambda _: session)

    def is_open(self, digest: str) -> bool:
        """Whether the session of C{digest} is open and has not timed out now."""
        return self.book.is_open(digest, self._clock.seconds())

    def close(self, request: IRequest, digest: str) -> Deferred[None]:
        """
        End a session (a logout) and clear the browser's cookie; fires once
        the file no longer holds it, or fails when it could not be written
        (ended in memory all the same, and L{tick} writes again).
        """
        self._changed(lambda book: book.close(digest))
        self._set_cookie(request, "", 0)
        return self.save()

    def end(self, digest: str) -> None:
        """End the session of C{digest} (its source no longer vouches for it), and keep that."""
        if self._changed(lambda book: book.close(digest)):
            self._save_quietly()

    def revoke(self, ends: Callable[[Session], bool]) -> int:
        """End the sessions for which C{ends(session)} (a reload); how many."""
        ended = self._changed(lambda book: book.revoke(ends))
        if ended:
            self._save_quietly()
        return ended

    def regroup(self, digest: str, groups: Iterable[str], now: float) -> Session | None:
        """The session of C{digest} with its groups read again (L{SessionBook.regroup})."""
        return self._changed(lambda book: book.regroup(digest, groups, now))

    def _changed(self, change: Callable[[SessionBook], _T]) -> _T:
        """C{change(book)}; in a worker of a machine, what it changed kept for the next write."""
        before = dict(self.book.sessions) if self.shared is not None else None
        result = change(self.book)
        if before is not None:
            self._pending.update(self.book.changes_since(before))
        return result

    # -- the file ----------------------------------------------------------------------

    def save(self) -> Deferred[None]:
        """
        Write the book, after the write under way if any: fires once a write
        that began after this call ended, or fails as it did (logged; L{tick}
        tries again). Calls made before that write began share it: logins in
        a loop make one write at a time, never a queue of them.
        """
        self._used = False
        waiter: Deferred[None] = Deferred()
        if self._waiting is not None:
            self._waiting.append(waiter)
        else:
            waiting: list[Deferred[None]] = [waiter]
            self._waiting = waiting

            def write(_: object) -> Deferred[None]:
                # (changes from now on need another write)
                self._waiting = None
                writing = (self._run(write_durably, self.path, self.book.dumps(), ".sessions-")
                           if self.shared is None else self._write_shared(self.shared))

                def done(result: object) -> None:
                    failure = result if isinstance(result, Failure) else None
                    self._failed = failure is not None
                    if failure is not None:
                        log.error("Cannot keep the browser sessions in {path}: {error}",
                                  path=self.path, error=failure.getErrorMessage())
                    for each in waiting:
                        if failure is not None:
                            each.errback(failure)
                        else:
                            each.callback(None)
                writing.addBoth(done)
                return writing
            # (with the writes idle, this may run, and end, at once)
            self._writes.addBoth(write)
        return waiter

    def _write_shared(self, shared: SharedFile) -> Deferred[None]:
        """A worker's write: its changes put on the file as the others left it."""
        self._writing, self._pending = self._pending, {}
        written: list[SessionBook] = []

        async def merge(current: bytes | None) -> bytes:
            theirs = self._theirs(current)
            written.append(self.book.merged(theirs, self._writing, self.now()))
            return written[0].dumps()

        def done(result: object) -> object:
            if written and not isinstance(result, Failure):
                self.book = self.book.merged(written[0], self._pending, self.now())
            else:
                self._pending = {**self._writing, **self._pending}
            self._writing = {}
            return result
        return Deferred.fromCoroutine(shared.change(merge)).addBoth(done)

    def _theirs(self, current: bytes | None) -> SessionBook:
        """The book the file holds (this worker's own when there is none)."""
        if current is None:
            return self.book
        return SessionBook.loads(current, self.book.idle, self.book.lifetime, self.now())

    def sync(self) -> Deferred[None]:
        """In a worker of a machine, before its next answer: take in another worker's changes."""
        if self.shared is None or not self.shared.changed_elsewhere():
            return succeed(None)
        return self.shared.read().addCallback(self._take).addErrback(
            lambda failure: log.error("Cannot read the browser sessions another worker "
                                      "changed in {path}: {error}", path=self.path,
                                      error=failure.getErrorMessage()))

    def _take(self, current: bytes | None) -> None:
        if current is not None:
            self.book = self.book.merged(self._theirs(current),
                                         {**self._writing, **self._pending}, self.now())

    def _save_quietly(self) -> Deferred[None]:
        """L{save}, its failure logged there and not passed on."""
        return self.save().addErrback(lambda _: None)

    def tick(self) -> Deferred[None]:
        """Sweep the sessions that timed out; write their use, or what a failed write left out."""
        swept = self.book.sweep(self._clock.seconds())
        if swept or self._used or self._failed:
            return self._save_quietly()
        return succeed(None)
