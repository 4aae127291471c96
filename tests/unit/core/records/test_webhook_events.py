"""
The webhooks' events: which entries make one, the bodies, the signature
(checked with the C{standardwebhooks} package, Standard Webhooks'
reference implementation), the secrets, and the retry schedule.
"""

import base64
import json
import time
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from twisted.trial.unittest import SynchronousTestCase

from pypid.core.records.audit_chain import FAILED, REFUSED, Entry, event_id, is_event
from pypid.core.records.webhook_events import (
    MAX_DELAY,
    MAX_RETRY_AFTER,
    Filter,
    WebhookEvent,
    events_of,
    index_of,
    make_test_event,
    new_secret,
    next_try,
    parse_retry_after,
    parse_secret,
    signature,
)

KEY = bytes(range(32))
SECRET = new_secret(KEY)
TIME = "2026-11-28T01:00:00.000000Z"


def entry(event="upload", **fields):
    """An entry of a change, with an id."""
    defaults = dict(user="alice", login="password", project="widget", version="1.0",
                    filename="widget-1.0-py3-none-any.whl", sha256="ab" * 32, id="evt_1")
    defaults.update(fields)
    return Entry(TIME, event, **defaults)


class SignatureTests(SynchronousTestCase):
    """The signature is Standard Webhooks': the reference implementation checks it."""

    def test_verified_by_the_reference(self):
        """C{standardwebhooks.Webhook.verify} accepts a signature made here."""
        body = WebhookEvent("evt_1", "upload", TIME, {"a": "é"}).body()
        now = int(time.time())
        headers = {"webhook-id": "evt_1", "webhook-timestamp": str(now),
                   "webhook-signature": signature(KEY, "evt_1", now, body)}
        self.assertEqual(Webhook(SECRET).verify(body, headers)["data"], {"a": "é"})

    def test_same_as_the_reference(self):
        """Byte for byte the reference's C{sign}."""
        body = b'{"type":"x"}'
        stamp = 1790000000
        expected = Webhook(SECRET).sign("evt_9", datetime.fromtimestamp(stamp, UTC),
                                        body.decode())
        self.assertEqual(signature(KEY, "evt_9", stamp, body), expected)

    def test_tampered_refused(self):
        """A body changed after signing is refused by the reference."""
        now = int(time.time())
        headers = {"webhook-id": "evt_1", "webhook-timestamp": str(now),
                   "webhook-signature": signature(KEY, "evt_1", now, b'{"a":1}')}
        self.assertRaises(WebhookVerificationError, Webhook(SECRET).verify, b'{"a":2}',
                          headers)

    @given(st.binary(min_size=24, max_size=64), st.text(min_size=1, max_size=40),
           st.binary(max_size=200))
    def test_any_secret_and_body(self, key, id, body):
        """For any key, id and body, the reference's signature is this one."""
        stamp = 1790000000
        expected = Webhook(key).sign(id, datetime.fromtimestamp(stamp, UTC),
                                     body.decode("latin-1"))
        self.assertEqual(signature(key, id, stamp, body.decode("latin-1").encode()),
                         expected)


class SecretTests(SynchronousTestCase):
    """A secret is written as Standard Webhooks writes one."""

    def test_round_trip(self):
        """C{new_secret}'s text is read back to its bytes, with or without its prefix."""
        self.assertEqual(parse_secret(SECRET), KEY)
        self.assertEqual(parse_secret(SECRET[len("whsec_"):]), KEY)

    def test_refused(self):
        """Too short, too long or not base64: refused, never echoed."""
        for text in (new_secret(b"x" * 23), new_secret(b"x" * 65), "whsec_not base64!!",
                     ""):
            with self.assertRaises(ValueError) as caught:
                parse_secret(text)
            self.assertNotIn(text or "@", str(caught.exception))
            self.assertIn("whsec_", str(caught.exception))


class EventTests(SynchronousTestCase):
    """Which entries are events, and what their bodies say."""

    def test_changes_only(self):
        """An entry of a change done is an event; a refusal, a login, a failure is not."""
        self.assertTrue(is_event(entry()))
        self.assertFalse(is_event(entry(outcome=REFUSED)))
        self.assertFalse(is_event(entry(outcome=FAILED)))
        self.assertFalse(is_event(entry("login-failed")))
        self.assertFalse(is_event(entry("refresh")))
        # (a reload refused is one: an operator wants to know)
        self.assertTrue(is_event(entry("reload", outcome=REFUSED)))

    def test_body(self):
        """Type, timestamp and data, as Standard Webhooks shapes a payload; sorted JSON."""
        [event] = events_of([entry(detail="bad build", event="yank")])
        body = json.loads(event.body())
        self.assertEqual(body, {"type": "yank", "timestamp": TIME, "data": {
            "id": "evt_1", "index": "default", "project": "widget", "version": "1.0",
            "files": [{"filename": "widget-1.0-py3-none-any.whl", "sha256": "ab" * 32}],
            "actor": {"name": "alice", "source": "password", "token": None},
            "detail": "bad build", "target": None, "outcome": "ok"}})
        self.assertEqual(event.body(), json.dumps(body, sort_keys=True,
                                                  separators=(",", ":")).encode())

    def test_server_actor(self):
        """A change no person made (a purge) is the server's."""
        [event] = events_of([entry("purge", user=None, login=None)])
        self.assertEqual(event.data["actor"], {"name": None, "source": "server",
                                               "token": None})

    def test_promotion_one_event(self):
        """The entries of one id (a release's files promoted) make one event naming each file."""
        files = [entry("promote", filename=f"widget-1.0-{tag}.whl", sha256=tag * 32,
                       target="staging", index="prod") for tag in ("a", "b")]
        other = entry("upload", id="evt_2")
        events = events_of([*files, other])
        self.assertEqual([e.type for e in events], ["promote", "upload"])
        self.assertEqual([f["filename"] for f in events[0].data["files"]],
                         ["widget-1.0-a.whl", "widget-1.0-b.whl"])
        self.assertEqual(events[0].data["index"], "prod")
        self.assertEqual(events[0].data["target"], "staging")

    def test_no_index(self):
        """A token's or a reload's event names no index; a file's the default's."""
        self.assertIsNone(index_of(entry("token-issued", project=None)))
        self.assertIsNone(index_of(entry("reload", project=None)))
        self.assertEqual(index_of(entry("upload")), "default")
        self.assertEqual(index_of(entry("upload", index="prod")), "prod")

    def test_kept_and_read(self):
        """An event kept in the outbox is read back as it was; junk is refused."""
        event = make_test_event("evt_3", TIME, "builds", "admin")
        self.assertEqual(WebhookEvent.from_json(json.loads(json.dumps(event.to_json()))), event)
        for junk in ([], {"id": 1}, {"id": "a", "type": "b", "time": "c", "data": []}):
            self.assertRaises(ValueError, WebhookEvent.from_json, junk)

    def test_ids_sort(self):
        """Ids of later milliseconds sort after; they name the time."""
        self.assertLess(event_id(999, "ff"), event_id(1000, "00"))
        self.assertEqual(event_id(1764291600123, "0a"), "evt_1764291600123_0a")


class FilterTests(SynchronousTestCase):
    """What a subscription wants."""

    def test_everything(self):
        """An empty filter wants every event, those of no index or project too."""
        self.assertTrue(Filter().wants("reload", None, None))
        self.assertTrue(Filter().wants("upload", "prod", "widget"))

    def test_by_type_index_project(self):
        """Types, indexes and project globs all must match."""
        wanted = Filter(frozenset({"upload"}), frozenset({"prod"}), ("acme-*",))
        self.assertTrue(wanted.wants("upload", "prod", "acme-lib"))
        self.assertFalse(wanted.wants("yank", "prod", "acme-lib"))
        self.assertFalse(wanted.wants("upload", "default", "acme-lib"))
        self.assertFalse(wanted.wants("upload", "prod", "other"))
        # (an event of no index or project is not one of those named)
        self.assertFalse(Filter(indexes=frozenset({"prod"})).wants("token-issued", None, None))
        self.assertFalse(Filter(projects=("acme-*",)).wants("reload", None, None))


class RetryTests(SynchronousTestCase):
    """When a failed delivery is tried again."""

    def test_doubling(self):
        """The wait doubles from the first, without jitter; up to L{MAX_DELAY}."""
        waits = [next_try(n, 100.0, 100.0, 1e9, 5.0, 0.0) - 100.0 for n in (1, 2, 3)]
        self.assertEqual(waits, [5.0, 10.0, 20.0])
        self.assertEqual(next_try(60, 0.0, 0.0, 1e9, 5.0, 0.0), MAX_DELAY)

    def test_jitter(self):
        """Jitter cuts a wait by up to half."""
        self.assertEqual(next_try(1, 0.0, 0.0, 1e9, 8.0, 1.0), 4.0)

    def test_retry_after(self):
        """A receiver's Retry-After is never waited less than; it is bounded."""
        self.assertEqual(next_try(1, 0.0, 0.0, 1e9, 1.0, 0.0, retry_after=30.0), 30.0)
        self.assertEqual(next_try(1, 0.0, 0.0, 1e9, 1.0, 0.0, retry_after=1e9),
                         MAX_RETRY_AFTER)

    def test_given_up(self):
        """The last try is at the end of C{retry_for}; after it, none."""
        self.assertEqual(next_try(3, 90.0, 0.0, 100.0, 50.0, 0.0), 100.0)
        self.assertIsNone(next_try(4, 100.0, 0.0, 100.0, 50.0, 0.0))

    @given(st.integers(1, 100), st.floats(0, 1), st.floats(0.01, 100),
           st.one_of(st.none(), st.floats(0, 1e6)))
    def test_bounds(self, failures, jitter, first, retry_after):
        """Never before now, never after the end, whatever the numbers."""
        due = next_try(failures, 50.0, 0.0, 3600.0, first, jitter, retry_after)
        self.assertTrue(due is not None and 50.0 < due <= 3600.0)

    def test_retry_after_forms(self):
        """Seconds, or an HTTP date from now; junk is none."""
        self.assertEqual(parse_retry_after("120", 0.0), 120.0)
        now = datetime(2026, 11, 28, 1, 0, 0, tzinfo=UTC).timestamp()
        self.assertEqual(parse_retry_after("Sat, 28 Nov 2026 01:01:00 GMT", now), 60.0)
        self.assertEqual(parse_retry_after("Sat, 28 Nov 2026 00:59:00 GMT", now), 0.0)
        self.assertIsNone(parse_retry_after("soon", now))
        # (a number of any length is bounded, never an error)
        self.assertEqual(parse_retry_after("9" * 5000, now), MAX_RETRY_AFTER)
        self.assertIsNone(parse_retry_after("-5", now))


class SecretBytesTests(SynchronousTestCase):
    """The secrets made are the specification's."""

    def test_new(self):
        """C{whsec_} and the base64 of the bytes."""
        self.assertEqual(new_secret(b"\0" * 24), "whsec_" + base64.b64encode(b"\0" * 24).decode())


class AuditLookupTests(SynchronousTestCase):
    """A receiver looks an event up in the audit log by its id."""

    def test_query_by_id(self):
        """C{?id=} keeps the event's entries, read from a minute before it to a day after."""
        from pypid.core.records.audit_chain import AuditError, format_time
        from pypid.core.records.audit_query import make_query

        id = event_id(1790000000000, "0a1b")
        query = make_query(id=id)
        self.assertEqual((query.since, query.before),
                         (format_time(1790000000 - 60), format_time(1790000000 + 86400)))
        made = Entry(format_time(1790000000.2), "upload", id=id)
        self.assertTrue(query.wants(made))
        self.assertFalse(query.wants(Entry(made.time, "upload", id="evt_1790000000000_ffff")))
        self.assertEqual(make_query(id=id, since="2026-01-01").since,
                         "2026-01-01T00:00:00.000000Z")
        with self.assertRaises(AuditError) as caught:
            make_query(id="../x")
        self.assertIn("id: expected a webhook event's id", str(caught.exception))
