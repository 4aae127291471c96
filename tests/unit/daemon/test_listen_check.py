"""
L{pypid.daemon.listeners.ListenCheck} and L{bind_for_a_moment}: each TCP
port is bound for a moment before anything starts, with a plain socket
whose check logs nothing (Twisted's listener logged C{(TCP Port 8080
Closed)}, which read as if the port were closed: issue 69), and a port
taken stops start-up with one line.
"""

import errno
import socket

from twisted.internet.error import CannotListenError
from twisted.logger import capturedLogs
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from pypid.core.util.startup import StartupError
from pypid.daemon.listeners import ListenCheck, bind_for_a_moment


def listening(family=socket.AF_INET, host="127.0.0.1"):
    """A socket listening on a port the system chose on C{host} (the caller closes it)."""
    holder = socket.socket(family, socket.SOCK_STREAM)
    holder.bind((host, 0))
    holder.listen(1)
    return holder


def freed_port(family=socket.AF_INET, host="127.0.0.1"):
    """A port that was just free on C{host}."""
    with listening(family, host) as holder:
        return holder.getsockname()[1]


def can_listen(port, family=socket.AF_INET, host="127.0.0.1"):
    """Whether C{port} can be listened on now, as Twisted's listener would."""
    with socket.socket(family, socket.SOCK_STREAM) as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            again.bind((host, port))
        except OSError:
            return False
        again.listen(1)
        return True


class BindForAMomentTests(SynchronousTestCase):
    """L{bind_for_a_moment} refuses what Twisted's listener would, and lets go."""

    def test_free_port_let_go(self):
        """A free port passes, and is free again after the check."""
        port = freed_port()
        bind_for_a_moment(port, "127.0.0.1")
        self.assertTrue(can_listen(port))

    def test_taken_port(self):
        """A port another socket listens on is refused, as Twisted refuses it."""
        with listening() as holder:
            port = holder.getsockname()[1]
            e = self.assertRaises(CannotListenError, bind_for_a_moment, port, "127.0.0.1")
        self.assertEqual(e.socketError.errno, errno.EADDRINUSE)
        self.assertEqual((e.interface, e.port), ("127.0.0.1", port))
        self.assertIn("Address already in use", str(e))

    def test_address_not_here(self):
        """An address this machine does not have is refused (TEST-NET-1)."""
        e = self.assertRaises(CannotListenError, bind_for_a_moment, 0, "192.0.2.1")
        self.assertEqual(e.socketError.errno, errno.EADDRNOTAVAIL)

    def test_ipv6(self):
        """An IPv6 interface is bound as IPv6, taken or free."""
        try:
            holder = listening(socket.AF_INET6, "::1")
        except OSError:
            raise SkipTest("this machine has no IPv6 loopback")
        with holder:
            port = holder.getsockname()[1]
            self.assertRaises(CannotListenError, bind_for_a_moment, port, "::1")
        bind_for_a_moment(port, "::1")
        self.assertTrue(can_listen(port, socket.AF_INET6, "::1"))


class ListenCheckTests(SynchronousTestCase):
    """The start-up's check of the ports, as a part."""

    def test_free_ports_quiet(self):
        """Free ports are checked without a line in the log."""
        first, second = freed_port(), freed_port()
        check = ListenCheck(bind_for_a_moment, [(f"tcp:{first}", first, "127.0.0.1"),
                                                (f"tcp:{second}", second, "127.0.0.1")])
        with capturedLogs() as events:
            self.assertIsNone(check.startService())
        self.assertEqual(events, [])
        self.assertTrue(can_listen(first) and can_listen(second))

    def test_taken_port_stops(self):
        """A port taken stops start-up with one line naming the listener."""
        checked = []

        def check(port, interface):
            checked.append(port)
            if port == 8081:
                raise CannotListenError(interface, port, OSError(98, "Address already in use"))
        listen_check = ListenCheck(check, [("tcp:8081", 8081, ""), ("tcp:8082", 8082, "")])
        e = self.assertRaises(StartupError, listen_check.startService)
        self.assertEqual(str(e), "Cannot listen on tcp:8081: Couldn't listen on any:8081: "
                                 "[Errno 98] Address already in use; another program listens "
                                 "there: choose another address with --listen (twistd -n pypid "
                                 "--listen tcp:8081) or [pypid] listen")
        self.assertEqual(checked, [8081])
