"""
A webhook receiver for the tests: a small Twisted server on loopback that
checks every delivery's signature with the C{standardwebhooks} package
(Standard Webhooks' reference implementation), records it, and answers
as the test says: 200, 500, 429 with C{Retry-After}, after a delay, a
redirect; or is down (not listening).

  - L{ReceiverResource} receives; L{start_in_reactor} runs it in the test
    process's reactor (L{ReceiverServer}: stopped and started again on
    its port), for trial tests that wait on Deferreds.
  - C{python -m tests.harness.webhook_receiver --port P --secret S --log F}
    runs it as a process, each delivery a line of JSON in C{F}, with a
    control API (C{POST /_control/answer}); L{ReceiverProcess} drives it
    from the blocking end-to-end tests, and kills it for an outage.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import attrs
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from twisted.internet.defer import succeed
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from tests.harness.e2e import (
    CHECKOUT,
    ChildProcess,
    E2EFailure,
    clean_env,
    free_port,
    http,
    spawn,
)

HOST = "127.0.0.1"


@attrs.define
class Answer:
    """How the receiver answers: a status, a C{Retry-After}, after C{delay} seconds."""

    status: int = 200
    retry_after: str | None = None
    delay: float = 0.0
    location: str | None = None
    #: how many deliveries are answered so before the next (L{None}: all)
    times: int | None = None


@attrs.frozen
class Received:
    """One delivery as the receiver saw it."""

    id: str | None
    body: bytes
    headers: dict
    verified: bool
    error: str | None
    status: int
    path: str

    @property
    def event(self):
        """The body, as JSON."""
        return json.loads(self.body)

    def to_json(self):
        """One line of the process's log."""
        return {"id": self.id, "body": self.body.decode("utf-8"), "headers": self.headers,
                "verified": self.verified, "error": self.error, "status": self.status,
                "path": self.path}

    @classmethod
    def from_json(cls, value):
        """A line of the process's log."""
        return cls(value["id"], value["body"].encode("utf-8"), value["headers"],
                   value["verified"], value["error"], value["status"], value["path"])


class ReceiverResource(Resource):
    """
    Receives every POST: checks it with C{standardwebhooks}, records it
    (L{received}; C{on_received(Received)} too), answers as L{answers} say.
    """

    isLeaf = True

    def __init__(self, secret, reactor, on_received=None):
        super().__init__()
        self.webhook = Webhook(secret)
        self.reactor = reactor
        self.received = []
        #: the answers to give, first first; the last stays
        self.answers = [Answer()]
        self.on_received = on_received
        #: deliveries being answered now, and the most at once so far
        self.in_flight = 0
        self.most_at_once = 0

    def answer(self, **kwargs):
        """Answer every delivery from now on so (see L{Answer})."""
        self.answers = [Answer(**kwargs)]

    def then(self, **kwargs):
        """Answer so once the answers before ran out (see L{Answer.times})."""
        self.answers.append(Answer(**kwargs))

    def _next_answer(self):
        answer = self.answers[0]
        if answer.times is not None:
            answer.times -= 1
            if answer.times <= 0 and len(self.answers) > 1:
                self.answers.pop(0)
        return answer

    def render_GET(self, request):
        """Health (the process's start waits for it)."""
        return b"ok"

    def render_POST(self, request):
        """Check, record, answer."""
        body = request.content.read()
        headers = {name.decode("latin-1").lower(): values[-1].decode("latin-1")
                   for name, values in request.requestHeaders.getAllRawHeaders()}
        try:
            self.webhook.verify(body, headers)
            verified, error = True, None
        except (WebhookVerificationError, ValueError) as e:
            verified, error = False, str(e)
        answer = self._next_answer()
        received = Received(headers.get("webhook-id"), body, headers, verified, error,
                            answer.status, request.path.decode("latin-1"))
        self.received.append(received)
        if self.on_received is not None:
            self.on_received(received)
        request.setResponseCode(answer.status)
        if answer.retry_after is not None:
            request.setHeader(b"Retry-After", answer.retry_after.encode())
        if answer.location is not None:
            request.setHeader(b"Location", answer.location.encode())
        text = f"answered {answer.status}".encode()
        if not answer.delay:
            return text
        self.in_flight += 1
        self.most_at_once = max(self.most_at_once, self.in_flight)

        def late():
            self.in_flight -= 1
            if not request.finished and not request._disconnected:
                request.write(text)
                request.finish()
        call = self.reactor.callLater(answer.delay, late)

        def gone(_):
            # (the sender gave up: no answer is written, nothing stays behind)
            if call.active():
                call.cancel()
                self.in_flight -= 1
        request.notifyFinish().addErrback(gone)
        return NOT_DONE_YET


class _QuietSite(Site):
    noisy = False

    def log(self, request):
        """No access log line."""


class ReceiverServer:
    """The receiver in this process's reactor, on a fixed port once started."""

    def __init__(self, resource, reactor, port=0, interface=HOST):
        self.resource = resource
        self.port = port
        self.interface = interface
        self._reactor = reactor
        self._site = _QuietSite(resource)
        self._listening = None

    @property
    def url(self):
        """Where deliveries go."""
        host = f"[{self.interface}]" if ":" in self.interface else self.interface
        return f"http://{host}:{self.port}/hooks/pypid"

    def start(self):
        """Listen (again, on the same port); the Deferred fires with self."""
        if self._listening is not None:
            return succeed(self)

        def listening(port):
            self._listening = port
            self.port = port.getHost().port
            return self
        endpoint = (TCP6ServerEndpoint if ":" in self.interface else TCP4ServerEndpoint)(
            self._reactor, self.port, interface=self.interface)
        return endpoint.listen(self._site).addCallback(listening)

    def stop(self):
        """Stop listening (the receiver is down)."""
        if self._listening is None:
            return succeed(None)
        listening, self._listening = self._listening, None
        return listening.stopListening()


def start_in_reactor(secret, reactor, port=0, interface=HOST):
    """A L{ReceiverServer} listening in C{reactor}; the Deferred fires with it."""
    return ReceiverServer(ReceiverResource(secret, reactor), reactor, port, interface).start()


class ControlResource(Resource):
    """C{POST /_control/answer} (JSON: L{Answer}'s fields; C{"then": true} to queue it)."""

    isLeaf = True

    def __init__(self, receiver):
        super().__init__()
        self.receiver = receiver

    def render_GET(self, request):
        """Health."""
        return b"ok"

    def render_POST(self, request):
        """Set the answers."""
        fields = json.loads(request.content.read())
        queued = fields.pop("then", False)
        (self.receiver.then if queued else self.receiver.answer)(**fields)
        return b"{}"


class _Root(Resource):
    def __init__(self, receiver, control):
        super().__init__()
        self.receiver, self.control = receiver, control

    def getChildWithDefault(self, name, request):
        return self.control if name == b"_control" else self.receiver


def main(argv=None):
    """Run the receiver as a process, each delivery a JSON line in C{--log}."""
    from twisted.internet import reactor

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--log", required=True)
    options = parser.parse_args(argv)
    out = open(options.log, "a", encoding="utf-8")

    def write(received):
        out.write(json.dumps(received.to_json()) + "\n")
        out.flush()
    receiver = ReceiverResource(options.secret, reactor, write)
    site = _QuietSite(_Root(receiver, ControlResource(receiver)))

    def listening(port):
        print(f"receiver listening on http://{HOST}:{port.getHost().port}/", flush=True)
    TCP4ServerEndpoint(reactor, options.port, interface=HOST).listen(site).addCallbacks(
        listening, lambda f: (print(f"cannot listen: {f.getErrorMessage()}", flush=True),
                              reactor.stop()))
    reactor.run()


class ReceiverProcess(ChildProcess):
    """The receiver as a process, for the blocking end-to-end tests."""

    what = "webhook receiver"

    def __init__(self, directory, secret):
        self.directory = directory
        self.secret = secret
        self.log_path = os.path.join(directory, "received.jsonl")
        self.out_path = os.path.join(directory, "receiver.out")
        #: chosen now: a daemon is told the URL before the receiver is up
        self.port = free_port()

    @property
    def url(self):
        """Where deliveries go."""
        return f"http://{HOST}:{self.port}/hooks/pypid"

    def start(self, timeout=30.0):
        """Start it (on its port after a stop) and wait until it answers; return self."""
        with open(self.out_path, "ab") as out:
            spawn(
                self, [sys.executable, "-m", "tests.harness.webhook_receiver", "--port",
                 str(self.port), "--secret", self.secret, "--log", self.log_path],
                cwd=CHECKOUT, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=clean_env(self.directory, PYTHONUNBUFFERED="1"), start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise E2EFailure(f"the receiver exited: {self._output()}")
            try:
                if http("GET", f"http://{HOST}:{self.port}/_control/", timeout=1).status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        self.kill()
        raise E2EFailure(f"the receiver did not answer within {timeout} s: {self._output()}")

    def _output(self):
        with open(self.out_path, encoding="utf-8", errors="replace") as f:
            return f.read()[-2000:]

    def answer(self, then=False, **fields):
        """How it answers from now on (or, with C{then}, after the answers set before)."""
        response = http("POST", f"http://{HOST}:{self.port}/_control/answer",
                        {"Content-Type": "application/json"},
                        json.dumps(dict(fields, then=then)).encode())
        if response.status != 200:
            raise E2EFailure(f"the receiver's control answered {response.status}")

    def received(self):
        """Every delivery so far, in order (L{Received})."""
        try:
            with open(self.log_path, encoding="utf-8") as f:
                return [Received.from_json(json.loads(line)) for line in f if line.strip()]
        except FileNotFoundError:
            return []


if __name__ == "__main__":
    main()
