"""
What the webhooks' tests share: a subscription, entries of changes, and a
sender that answers as a script says (for the deliveries' logic on a
L{Clock}; the real sender is tested against the real receiver,
L{tests.harness.webhook_receiver}).
"""

import attrs
from twisted.internet.defer import Deferred, succeed

from pypid.config.webhook_settings import WebhookConfig
from pypid.core.records.audit_chain import Entry, format_time
from pypid.core.records.webhook_events import Filter, new_secret, parse_secret
from pypid.webhooks.sender import Attempt

KEY = bytes(range(32))
SECRET = new_secret(KEY)


def subscription(name="builds", url="https://receiver.example/hook", **kwargs):
    """A subscription (L{WebhookConfig}) with the tests' secret."""
    kwargs.setdefault("filter", Filter())
    kwargs.setdefault("key", parse_secret(SECRET))
    return WebhookConfig(name=name, url=url, **kwargs)


def change(event="upload", when=0.0, filename="widget-1.0-py3-none-any.whl", **fields):
    """An entry of a change done by alice."""
    defaults = dict(user="alice", login="password", project="widget", version="1.0",
                    filename=filename, sha256="ab" * 32)
    defaults.update(fields)
    return Entry(format_time(when), event, **defaults)


@attrs.define
class ScriptedSender:
    """
    A sender whose answers are scripted: C{answers} are L{Attempt}s
    given in turn (the last one stays); C{sent} is what it was given, as
    C{(subscription name, event)}; with C{hold}, each send waits for the
    test to fire C{waiting[i]}; C{held}: the texts its last reset gave.
    """

    answers: list = attrs.field(factory=lambda: [Attempt(200, None)])
    sent: list = attrs.field(factory=list)
    hold: bool = False
    waiting: list = attrs.field(factory=list)
    closed: bool = False
    held: object = None

    def send(self, subscription, event):
        self.sent.append((subscription.name, event))
        attempt = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if not self.hold:
            return succeed(attempt)
        d = Deferred()
        self.waiting.append((d, attempt))
        return d

    def release(self):
        """Fire every held send with its answer."""
        waiting, self.waiting = self.waiting, []
        for d, attempt in waiting:
            d.callback(attempt)

    def close(self):
        self.closed = True
        return succeed(None)

    def reset(self, held=None):
        self.held = held
        return succeed(None)

    def ids(self, name=None):
        """The ids sent (to C{name}), in order."""
        return [event.id for sent_to, event in self.sent if name in (None, sent_to)]
