"""
The webhooks' admin API and console pages (L{pypid.web.admin.webhook_admin},
L{pypid.web.pages.console_admin.ConsoleWebhooks}), in memory: admins only, never a
secret, redeliveries and tests audited, the console's forms behind the
session's CSRF token.
"""

import json
import re

from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.policy import AccessModel
from pypid.webhooks.delivery import Deliveries
from pypid.webhooks.ledger import Ledger
from pypid.webhooks.part import WebhookPart
from pypid.webhooks.sender import Attempt
from tests.harness.memory_records import MemoryRecords
from tests.harness.web import PASSWORD, NoCookieJar, basic
from tests.harness.webhooks import SECRET, ScriptedSender, change, subscription

DOCUMENT = {"Sec-Fetch-Dest": "document"}
ADMIN = basic("dave")


class _WebhookSite(NoCookieJar):
    """dave is an admin; C{builds} a subscription whose receiver the test scripts."""

    def access_model(self):
        return AccessModel(read="everyone", admins=frozenset({"dave"}))

    def webhook_part(self):
        self.store = MemoryRecords()
        self.sender = ScriptedSender()
        self.part = WebhookPart(Ledger(self.store, self.clock, "a"), self.sender,
                                {"builds": subscription("builds",
                                                        url="https://builds.example/h?t=x")},
                                self.clock)
        return self.part

    def give_up_one(self):
        """An event of C{builds} given up after two tries; its key."""
        self.sender.answers = [Attempt(500, "HTTP 500 (failed): down")]
        journal = self.audit_trail.log
        deliveries = Deliveries(journal, self.part.ledger, self.sender, self.part.current,
                                self.clock, look_every=1.0, jitter=lambda: 0.0)
        deliveries.startService()
        self.addCleanup(deliveries.stopService)
        self.clock.advance(0)
        self.successResultOf(journal.append([change(when=self.clock.seconds())]))
        self.clock.advance(1)
        self.clock.advance(86400)
        [failed] = self.successResultOf(self.part.ledger.given_up("builds"))
        self.event_id = failed.event.id
        self.clock.advance(2)
        return failed.key

    def api(self, method, path, auth=ADMIN, body=None):
        response, text = self.request(method, path, headers={"Authorization": auth} if auth
                                      else {}, data=body)
        return response.code, text

    def audited(self):
        return [json.loads(line) for data in self.audit_trail.log.files.values()
                for line in data.splitlines()]


class WebhookAPITests(_WebhookSite, SynchronousTestCase):

    def test_admins_only(self):
        """Without credentials 401; a user who is not an admin 403."""
        self.assertEqual(self.api("GET", "/api/webhooks", auth=None)[0], 401)
        self.assertEqual(self.api("GET", "/api/webhooks", auth=basic("alice"))[0], 403)
        self.assertEqual(self.api("POST", "/api/webhooks/builds/test", auth=basic("alice"))[0],
                         403)
        self.assertEqual(self.sender.sent, [])

    def test_listed_without_secret(self):
        """What each wants and how it goes; never the secret, nor the URL's query."""
        code, text = self.api("GET", "/api/webhooks")
        self.assertEqual(code, 200, text)
        [hook] = json.loads(text)["webhooks"]
        self.assertEqual((hook["name"], hook["url"], hook["events"], hook["pending"]),
                         ("builds", "https://builds.example/h/...", ["*"], None))
        self.assertNotIn(SECRET[len("whsec_"):].encode(), text)
        self.assertNotIn(b"t=x", text)

    def test_failures_redelivered(self):
        """Given up, listed with its error and key, sent again by key; audited."""
        key = self.give_up_one()
        code, text = self.api("GET", "/api/webhooks/builds")
        self.assertEqual(code, 200, text)
        hook = json.loads(text)
        self.assertEqual(hook["given_up"], 1)
        self.assertEqual(hook["failures"][0]["key"], key)
        # (times as the deliveries' are written, not POSIX seconds)
        self.assertRegex(hook["failures"][0]["given_up"],
                         r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
        self.assertRegex(hook["deliveries"][0]["time"], r"^\d{4}-\d\d-\d\dT")
        self.assertEqual(hook["deliveries"][0]["error"], "HTTP 500 (failed): down")
        code, text = self.api("POST", "/api/webhooks/builds/redeliver",
                              body=json.dumps({"key": self.event_id}).encode())
        self.assertEqual((code, json.loads(text)), (200, {"redelivered": 1}))
        self.assertEqual(self.successResultOf(self.part.ledger.given_up("builds")), [])
        self.assertEqual([(e["event"], e["target"], e["outcome"]) for e in self.audited()
                          if e["event"] == "webhook-redeliver"],
                         [("webhook-redeliver", "builds", "ok")])

    def test_refusals(self):
        """An unknown webhook 404; a key that is not text 400; one not given up 404."""
        code, text = self.api("GET", "/api/webhooks/nope")
        self.assertEqual(code, 404)
        self.assertIn(b"no webhook 'nope'", text)
        code, text = self.api("POST", "/api/webhooks/builds/redeliver", body=b'{"key": 5}')
        self.assertEqual(code, 400)
        self.assertIn(b"key: expected the key", text)
        code, text = self.api("POST", "/api/webhooks/builds/redeliver", body=b'{"key": "x"}')
        self.assertEqual(code, 404)
        code, text = self.api("POST", "/api/webhooks/builds/redeliver", body=b"[")
        self.assertEqual(code, 400)

    def test_test_event(self):
        """A test event goes now, outside the journal; what came of it is said and audited."""
        code, text = self.api("POST", "/api/webhooks/builds/test")
        answer = json.loads(text)
        self.assertEqual((code, answer["delivered"], answer["status"]), (200, True, 200))
        [(name, event)] = self.sender.sent
        self.assertEqual((name, event.type, event.id, event.data["actor"]["name"]),
                         ("builds", "test", answer["id"], "dave"))
        self.assertEqual(self.store.records, {})
        self.sender.answers = [Attempt(0, "cannot reach https://builds.example:443: refused")]
        answer = json.loads(self.api("POST", "/api/webhooks/builds/test")[1])
        self.assertFalse(answer["delivered"])
        self.assertEqual([(e["event"], e["outcome"]) for e in self.audited()],
                         [("webhook-test", "ok"), ("webhook-test", "failed")])


class WebhookConsoleTests(_WebhookSite, SynchronousTestCase):

    def log_in(self, user="dave"):
        response, body = self.request("POST", "/login", data={"user": user,
                                                               "password": PASSWORD})
        self.assertEqual(response.code, 303, body)
        cookie = {"Cookie": response.headers.getRawHeaders(b"set-cookie")[0].decode()
                  .split(";")[0]}
        _, page = self.get("/console/webhooks/builds", headers=cookie)
        csrf = re.search(rb'name="csrf" value="([^"]+)"', page).group(1).decode()
        return cookie, csrf

    def test_pages(self):
        """The list and one webhook's page; no secret; a user who is not an admin 403."""
        key = self.give_up_one()
        cookie, _ = self.log_in()
        response, page = self.get("/console/webhooks", headers=cookie)
        self.assertEqual(response.code, 200)
        self.assertIn(b'href="../console/webhooks/builds"', page)
        self.assertNotIn(SECRET[len("whsec_"):].encode(), page)
        response, page = self.get("/console/webhooks/builds", headers=cookie)
        self.assertIn(b"HTTP 500 (failed): down", page)
        self.assertIn(f'name="key" value="{key}"'.encode(), page)
        cookie_alice = self.login_cookie("alice")
        self.assertEqual(self.get("/console/webhooks", headers=cookie_alice)[0].code, 403)

    def login_cookie(self, user):
        response, _ = self.request("POST", "/login", data={"user": user, "password": PASSWORD})
        return {"Cookie": response.headers.getRawHeaders(b"set-cookie")[0].decode()
                .split(";")[0]}

    def test_forms(self):
        """Test and redeliver from the page, with the session's CSRF token (none: refused)."""
        key = self.give_up_one()
        self.sender.answers = [Attempt(200, None)]
        cookie, csrf = self.log_in()
        response, page = self.request("POST", "/console/webhooks/builds/test", headers=cookie,
                                      data={"csrf": csrf})
        self.assertEqual(response.code, 200, page)
        self.assertIn(b"delivered", page)
        response, page = self.request("POST", "/console/webhooks/builds/redeliver",
                                      headers=cookie, data={"csrf": csrf, "key": key})
        self.assertIn(b"1 event to send again", page)
        response, _ = self.request("POST", "/console/webhooks/builds/test", headers=cookie,
                                   data={"csrf": "forged"})
        self.assertEqual(response.code, 403)
        self.assertEqual(len([s for s in self.sender.sent if s[1].type == "test"]), 1)
