"""
Who may do what, as a part of the daemon (L{IdentityPart}): the access gate
and trusted publishing built from the configuration, taken again on
C{SIGHUP}, and the browser sessions, kept through a restart and swept;
with what a reload or a login asks of the people already in.

Apart from L{pypid.web.identity.gates} because this runs at start-up,
reload and login only.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from pypid.auth.factory import (
    make_gate_materials,
    make_publishing,
    make_sso,
    outside_logins,
    reloaded_oidc_http,
    reloaded_sso_http,
)
from pypid.auth.shared_throttle import ThrottleShare
from pypid.auth.throttle import LoginThrottle
from pypid.auth.tokens import TokenBook
from pypid.auth.tokens import write_file as write_tokens
from pypid.auth.verifier import PasswordVerifier
from pypid.config import Config
from pypid.config.sso_settings import sso_secret
from pypid.core.access.outside_logins import DIRECTORY, PROVIDER
from pypid.core.access.sessions import Session, SessionBook, SessionFileError
from pypid.core.parts import IReloadable
from pypid.core.util.startup import StartupError
from pypid.core.util.units import counted
from pypid.jobs.periodic import Periodic
from pypid.jobs.run import Run
from pypid.machine.topics import LONE, Hub
from pypid.storage.folder.shared_file import SharedFile, ShareFile
from pypid.web.identity.browser_sessions import SAVE_INTERVAL, BrowserSessions, load_book
from pypid.web.identity.gates import Gates
from pypid.web.identity.identification import FailedLogins

#: (the namespace these lines always had, before they were split from access)
log = Logger(namespace="pypid.web.identity.access")


@implementer(IReloadable)
class IdentityPart(Service):
    """
    Who may do what, as a part of the daemon: the access gate, trusted
    publishing and single sign-on (C{sso}), built from the configuration
    and taken again on C{SIGHUP}.
    """

    def __init__(self, config: Config, reactor: IReactorTime, hashing: ThreadPool,
                 audit: FailedLogins, run: Run, hub: Hub = LONE) -> None:
        """
        @param hashing: the thread pool passwords are checked in.
        @param run: C{run(f, *args) -> Deferred}, for the token and session
            files' writes (the I/O pool).
        @param hub: in a worker of a machine, its hub: the token and
            session files and the login throttle's counts are the workers'.
        @raise StartupError: when the token file, or a bundle of C{[ldap]}
            or C{[oidc]}, cannot be used.
        """
        self._config = config
        self._reactor = reactor
        self._hashing = hashing
        self._run = run
        def shared(path: str, prefix: str) -> SharedFile:
            return SharedFile(path, hub, run, prefix)
        share: ShareFile | None = shared if not hub.alone else None
        self._share = share
        materials = make_gate_materials(config, reactor, hashing, held=self.held_elsewhere,
                                        share=share)
        self.publishing = make_publishing(config, reactor)
        self.sso = make_sso(config, reactor, hub)
        # (the throttle is the daemon's: a reload keeps what it counted, and
        # [auth] throttle_ipv6_prefix is read at start-up)
        throttle = LoginThrottle(reactor, ipv6_prefix=config.auth.throttle_ipv6_prefix,
                                 share=ThrottleShare(hub, b"login"))
        self.sessions = make_sessions(config, reactor, self._run, share)
        # (the sessions kept through a restart meet the configuration it
        # brought, as those of a reload do)
        ended = self._end_sessions(materials.verifier, config)
        if ended:
            log.info("Ended {sessions} whose people the configuration no longer lets in "
                     "as they logged in", sessions=counted(ended, "browser session"))
        self._settle_tokens(materials.tokens, config, at_start=True)
        self.access = Gates(materials.model, materials.verifier, throttle, materials.tokens,
                             audit=audit, publishers=self.publishing.tokens,
                             sessions=self.sessions, outside=outside_logins(config))
        self._sweep = Periodic(self.sessions.tick, SAVE_INTERVAL, reactor,
                               what="The browser sessions' sweep")

    def _end_sessions(self, verifier: PasswordVerifier, config: Config) -> int:
        """End the browser sessions C{config} no longer lets in as they logged in; how many."""
        book = self.sessions.book
        return self.sessions.revoke(
            lambda session: not still_a_user(session, verifier, config, book))

    def _settle_tokens(self, book: TokenBook, config: Config, at_start: bool = False) -> None:
        """
        End for good the tokens whose person the configuration no longer has
        (L{pypid.auth.tokens.TokenBook.settle}), and write the file when the
        book changed: at start-up before anything is served (a file that
        cannot be written stops the start: L{StartupError}), at a reload in
        the pool, behind the changes of the tokens under way.
        """
        def settle() -> None:
            ended = book.settle(config.users, outside_logins(config))
            if ended:
                log.info("Ended {tokens} whose people are gone",
                         tokens=counted(ended, "API token"))

        def settled(current: bytes | None) -> bytes:
            if current is not None:
                book.loads(current)
            settle()
            return book.dumps()
        # (in a worker of a machine, settled from the file as the others left
        # it, under the machine's lock of the file)
        shared = book.shared
        if shared is None:
            before = book.dumps()
            settle()
            if book.path is None or book.dumps() == before:
                return
        if at_start:
            try:
                if shared is not None:
                    shared.change_now(settled)
                elif book.path is not None:
                    write_tokens(book.path, book.dumps())
            except OSError as e:
                raise StartupError(f"{config.where('auth', 'tokens')}: cannot write "
                                   f"{book.path}: {e.strerror}") from None
            return
        saved = Deferred.fromCoroutine(book.change(
            lambda kept: kept, self._run, first=settle if shared is not None else None))
        saved.addErrback(lambda failure: log.failure(
            "Cannot keep the ended tokens in {path}", failure, path=book.path))

    def held_elsewhere(self, user: str) -> str | None:
        """Why the directory's C{user} may not log in now (L{name_held}), or L{None}."""
        return name_held(self.access, self._reactor.seconds(), user)

    def startService(self) -> None:
        """Sweep the browser sessions that timed out, and keep their use, every minute."""
        Service.startService(self)
        self._sweep.startService()

    def stopService(self) -> Deferred[None]:
        """Stop the sweep, and keep the sessions' use."""
        Service.stopService(self)
        self._sweep.stopService()
        return self.sessions.tick()

    def prepare_reload(self, config: Config | None) -> Callable[[], str] | None:
        """
        Build what the configuration read again asks for (a token file or
        a bundle that cannot be used refuses the whole reload), then take
        it: no credentials checked before are trusted any more; a change of
        the issuers, audience or rules revokes minted tokens.
        """
        if config is None:
            return None
        http = reloaded_oidc_http(self._config, config, self._reactor)
        secret = sso_secret(config.sso, config.held)
        sso_http = reloaded_sso_http(self._config, config, self._reactor)
        # (a reload keeps the book in memory rather than read a file a
        # change may be writing at this moment, which brought revoked tokens
        # back; a new path is read)
        kept = self.access.tokens if config.auth.tokens == self._config.auth.tokens else None
        materials = make_gate_materials(config, self._reactor, self._hashing, kept,
                                          held=self.held_elsewhere, share=self._share)

        def commit() -> str:
            self._config = config
            before = self.access.tokens
            self.access.reconfigure(materials.model, materials.verifier, materials.tokens,
                                    outside_logins(config))
            if before is not None and before is not materials.tokens \
                    and before.shared is not None:
                before.shared.close()
            self.sessions.book.idle = config.auth.session_idle
            self.sessions.book.lifetime = config.auth.session_lifetime
            ended = self._end_sessions(materials.verifier, config)
            self._settle_tokens(materials.tokens, config)
            revoked = self.publishing.reconfigure(config.oidc.settings(config.publishers), http)
            self.sso.reconfigure(config.sso, secret, sso_http)
            return (f"{counted(len(config.users), 'user')}, "
                    f"{counted(len(config.groups), 'group')}, "
                    f"{counted(len(config.auth.admins), 'admin')}, "
                    f"{counted(len(config.acl), 'rule')}, "
                    f"{counted(len(config.publishers), 'publisher')}"
                    + (f" ({counted(revoked, 'publisher token')} revoked)" if revoked else "")
                    + (f" ({counted(ended, 'browser session')} ended)" if ended else ""))
        return commit


def still_a_user(session: Session, verifier: PasswordVerifier, config: Config,
                 book: SessionBook) -> bool:
    """
    Whether the configuration read again still has a browser session's
    user as they logged in (L{pypid.core.access.sessions.SessionBook.login_of}):
    the same password, directory or provider, and no local user took the
    name. A directory account disabled in the directory, or a person the
    provider no longer lets in, keeps the session until it times out:
    pypid cannot see that without them logging in again.
    """
    return book.login_of(session, verifier.stored(session.user),
                         outside_logins(config)) is not None


def name_held(access: Gates, now: float, user: str, asking: str = DIRECTORY) -> str | None:
    """
    Why C{user} may not log in through C{asking} (the directory, or single
    sign-on): a person of the other source holds the name here (an open
    session, or a live token, the configuration still admits), or L{None}.
    One name is one person: the first source keeps it until nothing of
    theirs stands. For the directory, asked at a new check of a password
    only; for single sign-on, at each login (L{pypid.web.pages.browser_login}).
    """
    other = PROVIDER if asking == DIRECTORY else DIRECTORY
    outside = access.outside
    sessions = access.sessions
    if sessions is not None:
        book = sessions.book
        if any(session.user == user and session.source == other
               and book.login_of(session, None, outside) is not None
               for session in book.sessions.values()):
            return _held(user, other)
    tokens = access.tokens
    if tokens is not None and any(
            token.user == user and token.source == other and token.id not in tokens.ended
            and (token.expires is None or token.expires > now)
            and outside.admits(other, user, token.groups, token.provider)
            for token in tokens.tokens.values()):
        return _held(user, other)
    return None


def _held(user: str, source: str) -> str:
    who = "a person of single sign-on" if source == PROVIDER else "a user of the directory"
    return (f"{user} is {who} on this server, who holds the name while a session or token "
            "of theirs is live: nobody else of that name can log in meanwhile (ask an admin)")


def make_sessions(config: Config, reactor: IReactorTime, run: Run,
                  share: ShareFile | None = None) -> BrowserSessions:
    """
    The browser sessions of C{[auth] sessions} (read now, blocking: at
    start-up); in a worker of a machine, the file as the workers share it,
    made by the first to start (one key for every worker's cookies).
    L{StartupError} when the file cannot be read or used.
    """
    auth = config.auth
    path = sessions_path(config)
    shared = share(path, ".sessions-") if share is not None else None
    try:
        if shared is not None:
            shared.change_now(lambda current: current if current is not None else SessionBook.new(
                auth.session_idle, auth.session_lifetime, os.urandom).dumps())
        book = load_book(path, auth.session_idle, auth.session_lifetime, reactor.seconds())
    except SessionFileError as e:
        raise StartupError(f"{config.where('auth', 'sessions')}: {e}") from None
    except OSError as e:
        raise StartupError(f"{config.where('auth', 'sessions')}: {path}: {e.strerror}") from None
    return BrowserSessions(book, path, reactor, run, base_url=config.server.base_url,
                           shared=shared)


def sessions_path(config: Config) -> str:
    """C{[auth] sessions}, or C{sessions.json} beside the snapshot."""
    return config.auth.sessions or os.path.join(
        os.path.dirname(config.server.snapshot), "sessions.json")
