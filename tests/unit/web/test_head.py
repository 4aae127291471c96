"""
C{HEAD} of every documented route (L{tests.harness.access_table.ROWS}),
pypiserver's C{/<project>/} and a few that answer errors: the headers a
C{GET} gets, the C{Content-Length} it sends (or none, when it sends its
body in chunks), no body, and no line in the log (Twisted logs "I think
I'll eat it" for each resource that gives it a body).
"""

from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from tests.harness.access_table import ROWS, digest_path, filename_of
from tests.harness.web import _ServerMixin, parse_response, request

#: What Twisted logs for a C{HEAD} whose resource gave a body, or that it
#: answered with C{GET}.
EATEN = ("is returning a message body", "to fake a HEAD request")

#: Paths beyond the table's: pypiserver's project URL (a 301), a missing
#: project's, an asset, and paths no route takes.
MORE = ("/holy-grail/", "/no-such/", "/static/nothing.css", "/no/such/route", "/simple/%ff/")


def _paths():
    """The C{GET} routes of the table, for a project that exists and one that does not."""
    for method, template, projects in ROWS:
        if method != "GET":
            continue
        for project in projects:
            if project not in ("", "holy-grail", "no-such"):
                continue
            yield template.format(p=project, f=filename_of(project), q=project,
                                  **digest_path(project))
    yield from MORE


class HeadTests(_ServerMixin, SynchronousTestCase):
    """C{HEAD} answers as C{GET} does, without the body, and quietly."""

    def answer(self, method, path):
        """The bytes C{site} writes for one request of C{method} on a new connection, and the log."""
        channel = self.web.site.buildProtocol(None)
        transport = StringTransport()
        channel.makeConnection(transport)
        with capturedLogs() as logged:
            channel.dataReceived(request(method, path.encode("ascii")))
        channel.connectionLost(None)
        return transport.value(), [formatEvent(event) for event in logged]

    def test_every_route(self):
        """
        A C{HEAD} of each path gets the status and C{Content-Length} a
        C{GET} gets, no body, and nothing about it is logged.
        """
        self.uploaded(filename_of("holy-grail"))
        checked = 0
        for path in _paths():
            answer, logged = self.answer(b"HEAD", path)
            self.assertEqual([line for line in logged if any(words in line for words in EATEN)],
                             [], path)
            status, head, rest = parse_response(answer)
            self.assertEqual(rest, b"", path)
            get_status, get, _ = parse_response(self.answer(b"GET", path)[0])
            self.assertEqual(status, get_status, path)
            self.assertEqual(head.get(b"content-length"), get.get(b"content-length"), path)
            if b"content-length" not in get:
                self.assertEqual(get.get(b"transfer-encoding"), b"chunked", path)
            checked += 1
        self.assertGreater(checked, 60)
