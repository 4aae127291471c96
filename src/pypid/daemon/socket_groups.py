"""
The listening sockets a machine's supervisor holds for its workers, in the
standard library alone (for L{pypid.daemon.lean}): each one given to a
worker (L{Inherited}), and a TCP line's group of sockets, one per worker,
on one address with C{SO_REUSEPORT} (L{Group}). L{pypid.daemon.inherited}
says why a worker's socket listens only once the worker accepts, and what
a silent or hung worker's socket does.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any


def in_use_hint(error: OSError | None) -> str:
    """
    What a start stopped by a port in use says after the error: the remedy,
    which a first start where 8080 is taken needs and the README gives far below.
    """
    if error is None or error.errno != errno.EADDRINUSE:
        return ""
    return ("; another program listens there: choose another address with --listen "
            "(twistd -n pypid --listen tcp:8081) or [pypid] listen")


class CannotListen(Exception):
    """A socket of a group cannot be opened; the message is one line."""


@dataclass(frozen=True)
class Inherited:
    """
    One listening socket the supervisor opened for its workers.

    @ivar description: its line of C{[pypid] listen}.
    @ivar fileno: its descriptor, in the supervisor (and, passed on, in a worker).
    @ivar backlog: for a worker's own socket of a TCP line, bound, the
        backlog it listens with when the worker accepts; 0 for a socket
        already listening.
    """

    description: str
    fileno: int
    family: int
    backlog: int = 0


def listens(sock: socket.socket) -> bool:
    """Whether C{sock} listens (in whichever process)."""
    return bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))


@dataclass(eq=False)
class Group:
    """A TCP line's sockets, one per worker, on one address (C{SO_REUSEPORT})."""

    description: str
    family: int
    interface: str
    port: int
    backlog: int
    members: dict[int, socket.socket] = field(default_factory=dict)

    def member(self, number: int) -> socket.socket:
        """
        Worker C{number}'s socket, opened anew (bound) if it was closed; it
        listens at once when no other of the group does.
        """
        sock = self.members.get(number)
        if sock is None:
            alone = not any(listens(other) for other in self.members.values())
            try:
                if self.port:
                    sock = self._bound(self.port)
                else:
                    # (a line that asked for any port: every member on the first's,
                    # by its number, which a socket bound to port 0 would give up
                    # when shut down and listen again on another)
                    with self._bound(0) as first:
                        self.port = first.getsockname()[1]
                        sock = self._bound(self.port)
                if alone:
                    sock.listen(self.backlog)
            except OSError as e:
                raise CannotListen(f"Cannot listen on {self.description}: {e.strerror}"
                                   + in_use_hint(e))
            self.members[number] = sock
        return sock

    def _bound(self, port: int) -> socket.socket:
        """A socket of the group bound to C{port}, not listening yet."""
        sock = socket.socket(self.family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((self.interface, port))
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        return sock

    def shut(self, number: int, last: bool = True) -> None:
        """
        Take worker C{number}'s socket out of the group: no connection is
        given to it any more, and those queued on it are reset (moved to
        another of the group where C{net.ipv4.tcp_migrate_req} is set).
        With C{last} false, not the only one listening (its connections
        wait for it rather than be refused).
        """
        sock = self.members.get(number)
        if sock is None or not listens(sock):
            return  # (not listening yet: nothing was given to it)
        if not last and not any(listens(other) for other in self.members.values()
                                if other is not sock):
            return
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    def close(self, number: int | None = None) -> None:
        """Close worker C{number}'s socket, or every one."""
        for each in [number] if number is not None else list(self.members):
            sock = self.members.pop(each, None)
            if sock is not None:
                sock.close()


@dataclass(eq=False)
class Sockets:
    """
    The sockets of every line of C{[pypid] listen} (C{listen}), as the
    supervisor holds them for its workers: a TCP line's group, any other
    line's one shared socket (see L{pypid.daemon.inherited}).
    """

    listen: list[str]
    groups: list[Group] = field(default_factory=list)
    shared: list[Inherited] = field(default_factory=list)

    def for_worker(self, number: int) -> list[Inherited]:
        """
        Worker C{number}'s sockets, a line's each: its own of a TCP line
        (opened anew after it ended, or L{CannotListen}), the shared one of
        any other.
        """
        own = {group.description: Inherited(group.description, group.member(number).fileno(),
                                            group.family, group.backlog)
               for group in self.groups}
        shared = {inherited.description: inherited for inherited in self.shared}
        return [own.get(description) or shared[description] for description in self.listen]

    def ended(self, number: int) -> None:
        """Worker C{number} ended: its own sockets are closed until it starts again."""
        for group in self.groups:
            group.close(number)

    def shut(self, number: int) -> None:
        """Worker C{number} hangs: its own sockets take no more connections."""
        for group in self.groups:
            group.shut(number)

    def silent(self, number: int) -> None:
        """
        Worker C{number} went silent: its own sockets, each not the only one
        of its group listening, take no new connection until it runs again.
        """
        for group in self.groups:
            group.shut(number, last=False)

    def close(self) -> None:
        """Close every group's socket (the shared ones are their opener's to close)."""
        for group in self.groups:
            group.close()

    def close_shared(self) -> None:
        """
        Close the shared sockets, as their opener's stop did before the
        hand-over: a Unix socket's file goes with it (a start after would
        find it and be refused the address), and Twisted's lock beside it.
        """
        for inherited in self.shared:
            with socket.socket(fileno=inherited.fileno) as sock:
                path = sock.getsockname() if inherited.family == socket.AF_UNIX else None
            if isinstance(path, str) and path and not path.startswith("\0"):
                with suppress(FileNotFoundError):
                    os.unlink(path)
                # (Twisted's lock beside it, this process's: the exec kept the pid)
                with suppress(OSError):
                    if os.readlink(path + ".lock") == str(os.getpid()):
                        os.unlink(path + ".lock")
        self.shared.clear()

    def handed(self) -> dict[str, Any]:
        """The sockets as the lean process takes them over (L{taken}), to outlive the C{exec}."""
        return {"listen": self.listen,
                "groups": [{"description": g.description, "family": g.family,
                            "interface": g.interface, "port": g.port, "backlog": g.backlog,
                            "members": {str(number): inheritable(sock.fileno())
                                        for number, sock in g.members.items()}}
                           for g in self.groups],
                "shared": [{"description": s.description, "fd": inheritable(s.fileno),
                            "family": s.family} for s in self.shared]}

    @classmethod
    def taken(cls, handed: Mapping[str, Any]) -> Sockets:
        """The sockets L{handed} over, in the lean process."""
        return cls(list(handed["listen"]),
                   [Group(g["description"], g["family"], g["interface"], g["port"],
                          g["backlog"], {int(number): socket.socket(fileno=fd)
                                         for number, fd in g["members"].items()})
                    for g in handed["groups"]],
                   [Inherited(s["description"], s["fd"], s["family"])
                    for s in handed["shared"]])


def inheritable(fd: int) -> int:
    """C{fd}, made to outlive an C{exec}."""
    os.set_inheritable(fd, True)
    return fd
