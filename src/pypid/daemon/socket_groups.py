"""
The listening sockets a machine's supervisor holds for its workers, in
the standard library alone (the supervisor's process imports nothing
else: L{pypid.daemon.lean}): each one given to a worker (L{Inherited}),
and a TCP line's group of sockets, one per worker, on one address with
C{SO_REUSEPORT} (L{Group}). L{pypid.daemon.inherited} says why a
worker's socket listens only once the worker accepts, and what a silent
or hung worker's socket does.
"""

from __future__ import annotations

import socket
from contextlib import suppress
from dataclasses import dataclass, field


class CannotListen(Exception):
    """A socket of a group cannot be opened; the message is one line."""


@dataclass(frozen=True)
class Inherited:
    """
    One listening socket the supervisor opened for its workers.

    @ivar description: its line of C{[pypid] listen}.
    @ivar fileno: its descriptor, in the supervisor (and, passed on, in a worker).
    @ivar family: its address family (C{AF_INET}, C{AF_INET6}, C{AF_UNIX}).
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
                    # (a line that asked for any port: every member on the
                    # first's, bound by its number, which a socket bound to
                    # port 0 would give up when shut down and listen again
                    # on another)
                    with self._bound(0) as first:
                        self.port = first.getsockname()[1]
                        sock = self._bound(self.port)
                if alone:
                    sock.listen(self.backlog)
            except OSError as e:
                raise CannotListen(f"Cannot listen on {self.description}: {e.strerror}")
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
