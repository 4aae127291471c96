"""
A machine's first workers, forked from C{twistd pypid} before the machine
is set up (L{fork}), so that a machine's start is not two Python starts
one after the other: a worker the lean supervisor spawns imports Twisted,
the configuration's code and the server's parts only once C{twistd pypid}
had imported most of the same and set the machine up (on an empty folder
a machine of two answered 1.96 times as late as one process, its second
worker up 2.95 times). A forked child imports the server's parts while
its parent sets the machine up, then waits for its role (L{Forked.give})
and runs C{twistd} again as that worker (1.22 and 1.27 times). One is
forked a core; the others, and any started again, start anew.

Only where nothing of this process would follow the child that a spawned
worker has not (L{may_fork}). A child whose parent ended before giving it
a role ends without a word. The standard library alone: the lean
supervisor gives the role.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pypid.daemon.socket_groups import inheritable
from pypid.daemon.workers import DEFAULTED, HELD, READY_FD, Command, lifted

#: The largest role a worker is given: its environment and descriptors.
_LARGEST_ROLE = 1 << 20

#: The descriptors of the child's pipes: its output, and L{READY_FD}.
_PIPED = (1, 2, READY_FD)


def may_fork(twistd: Mapping[str, Any] | None, modules: Mapping[str, object] = sys.modules,
             trace: Callable[[], object] = sys.gettrace) -> bool:
    """
    Whether a worker may be forked here: C{twistd}'s options leave the
    process as it is once its service is made (in the foreground; no user,
    group, root, folder or umask to change to), and nothing of this process
    would follow the child that a spawned worker has not: the reactor (made
    already by C{--reactor}), C{--debug}'s post-mortem, a trace (C{--spew}).
    """
    return (twistd is not None and bool(twistd.get("nodaemon")) and not twistd.get("debug")
            and not twistd.get("uid") and not twistd.get("gid") and not twistd.get("chroot")
            and twistd.get("rundir", ".") == "." and twistd.get("umask") is None
            and "twisted.internet.reactor" not in modules and trace() is None)


@dataclass
class Forked:
    """
    A worker forked and waiting for its role: what its parent (and the
    lean supervisor after it) holds of it.

    @ivar role: the socket its role is given on.
    @ivar pipes: the read end of each of its pipes, by its descriptor there.
    @ivar stdin: the write end of its standard input, held, never written.
    @ivar reserved: how many descriptors after L{READY_FD} it holds for its role.
    """

    pid: int
    role: int
    pipes: dict[int, int]
    stdin: int
    reserved: int

    def descriptors(self) -> list[int]:
        """Every descriptor held of it."""
        return [self.role, self.stdin, *self.pipes.values()]

    def handed(self) -> dict[str, Any]:
        """What the hand-over says of it (its descriptors made to outlive the exec)."""
        return {"pid": self.pid, "role": inheritable(self.role),
                "stdin": inheritable(self.stdin),
                "pipes": {str(child): inheritable(fd) for child, fd in self.pipes.items()},
                "reserved": self.reserved}

    @classmethod
    def taken(cls, handed: Mapping[str, Any]) -> Forked:
        """The child L{handed} told of."""
        return cls(int(handed["pid"]), int(handed["role"]),
                   {int(child): int(fd) for child, fd in handed["pipes"].items()},
                   int(handed["stdin"]), int(handed["reserved"]))

    def fits(self, command: Command) -> bool:
        """Whether C{command}'s descriptors go where this child holds places for them."""
        return all(READY_FD < target <= READY_FD + self.reserved for target in command.inherited)

    def give(self, command: Command) -> None:
        """
        Give it C{command}'s role: its environment, and its descriptors
        placed where C{command} says. Raises L{OSError} when it is gone
        (the caller starts the worker anew); the socket is closed either way.
        """
        targets = sorted(command.inherited)
        message = json.dumps({"env": dict(command.env), "targets": targets}).encode("utf-8")
        try:
            with socket.socket(fileno=self.role) as role:
                socket.send_fds(role, [message], [command.inherited[t] for t in targets])
        finally:
            self.role = -1
        for fd in self.pipes.values():
            os.set_blocking(fd, False)

    def last_words(self) -> str:
        """The last line it wrote on its standard error, if any (once it ended)."""
        try:
            said = os.read(self.pipes[2], 65536) if self.pipes.get(2, -1) >= 0 else b""
        except OSError:
            said = b""
        lines = said.decode("utf-8", "replace").strip().splitlines()
        return lines[-1] if lines else ""

    def close(self) -> None:
        """Let go of a child given no role (it ends once the socket closes)."""
        for fd in self.descriptors():
            if fd >= 0:
                os.close(fd)


def given_role(waiting: list[Forked], command: Command,
               log: Callable[[str, str], object]) -> Forked | None:
    """
    The first of C{waiting} that takes C{command}'s role (L{Forked.give}),
    each tried taken out of C{waiting}; L{None} when none is left (the
    worker starts anew). One gone meanwhile, or holding too few places for
    the role's descriptors, is logged and let go.
    """
    while waiting:
        forked = waiting.pop(0)
        if not forked.fits(command):
            forked.close()
            log("warn", f"Worker process {forked.pid}, forked at the start, holds "
                f"{forked.reserved} places for descriptors, not {sorted(command.inherited)}")
            continue
        try:
            forked.give(command)
        except OSError as e:
            said = forked.last_words()
            forked.close()
            log("warn", f"Worker process {forked.pid}, forked at the start, ended before "
                f"its role ({e.strerror})" + (f": {said}" if said else ""))
        else:
            return forked
    return None


def fork(prepare: Callable[[], object], reserved: int) -> Forked | None:
    """
    Fork a worker. In this process: its L{Forked} (or L{OSError}). In the
    child: L{None}, once C{prepare()} ran and the role came, with the
    environment, the descriptors and the signals as a spawned worker has
    them; when its parent ended first, or anything failed, the child exits.

    @param reserved: how many descriptors after L{READY_FD} the role
        places: held (on C{/dev/null}) while C{prepare()} runs, so that
        nothing it opens (the reactor's poller, its waker) is overwritten.
    """
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pipes = {fd: os.pipe2(os.O_CLOEXEC) for fd in _PIPED}
    stdin_read, stdin_write = os.pipe2(os.O_CLOEXEC)
    ours = [stdin_read, stdin_write, *(fd for pair in pipes.values() for fd in pair)]
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        pid = os.fork()
    except OSError:
        parent.close()
        child.close()
        for fd in ours:
            os.close(fd)
        raise
    if pid:
        child.close()
        os.close(stdin_read)
        for _, write in pipes.values():
            os.close(write)
        return Forked(pid, parent.detach(), {fd: read for fd, (read, _) in pipes.items()},
                      stdin_write, reserved)
    try:
        parent.close()
        _as_spawned(child.detach(), stdin_read, pipes, prepare, reserved)
    except BaseException:
        # (never back into the parent's stack: its twistd, its exit)
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    return None


def _as_spawned(role: int, stdin: int, pipes: Mapping[int, tuple[int, int]],
                prepare: Callable[[], object], reserved: int) -> None:
    """
    In the child: its standard descriptors and signals as a spawned
    worker's, nothing else of its parent's open, C{prepare()}, then its role.
    """
    places = range(READY_FD + 1, READY_FD + 1 + reserved)
    role = fcntl.fcntl(role, fcntl.F_DUPFD_CLOEXEC, READY_FD + 1 + reserved)
    _place({0: stdin, **{fd: write for fd, (_, write) in pipes.items()}})
    os.closerange(READY_FD + 1, role)
    os.closerange(role + 1, os.sysconf("SC_OPEN_MAX"))
    held = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    for fd in places:
        if fd != held:
            os.dup2(held, fd, inheritable=False)
    if held not in places:
        os.close(held)
    signal.pthread_sigmask(signal.SIG_SETMASK, HELD)
    for signum in DEFAULTED:
        signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT
                      else signal.SIG_DFL)
    prepare()
    targets = _take_role(role)
    for fd in places:
        if fd not in targets:
            os.close(fd)


def _place(placed: Mapping[int, int]) -> None:
    """Each descriptor of C{placed}'s values at its key, the sources closed."""
    moved = lifted(placed)
    for source in set(placed.values()):
        os.close(source)
    for target, fd in moved.items():
        os.dup2(fd, target)
        os.close(fd)


def _take_role(role: int) -> list[int]:
    """Wait for the role on C{role}, and take it: its descriptors' places (or exit: none came)."""
    with socket.socket(fileno=role) as sock:
        try:
            message, fds, _, _ = socket.recv_fds(sock, _LARGEST_ROLE, 256)
        except OSError:
            message, fds = b"", []
    if not message:
        os._exit(0)
    told = json.loads(message)
    _place(dict(zip(told["targets"], fds, strict=True)))
    os.environ.clear()
    os.environ.update(told["env"])
    return list(told["targets"])
