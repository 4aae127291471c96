"""
The console in real Chromium (issue 44), as the end-to-end tests of
single sign-on (L{tests.e2e.test_sso}) and of the directory
(L{tests.e2e.test_ldap}) drive it: a person logged in issues a token on
"My tokens", uses it, and revokes it, each step checked in the API and
the audit log as an admin sees them.
"""

import json

from tests.harness.browser import artifacts_dir
from tests.harness.e2e import http


def tokens_of(daemon, admin):
    """The token ids C{GET /api/tokens} lists to the admin C{(user, password)}."""
    response = http("GET", daemon.url + "api/tokens", auth=admin)
    assert response.status == 200, response.body
    return {record["id"]: record for record in json.loads(response.body)["tokens"]}


def audit_events(daemon, admin, event):
    """The audit log's entries of C{event}, as C{GET /api/audit} shows them to C{admin}."""
    response = http("GET", daemon.url + f"api/audit?event={event}", auth=admin)
    assert response.status == 200, response.body
    return json.loads(response.body)["entries"]


def token_round_trip(testcase, page, daemon, person, admin, readable, screenshot=None):
    """
    On C{page} (logged in as C{person}), issue a read token on "My tokens"
    with the keyboard-free form, read it once, use it on the simple
    page C{readable} (a path), revoke it with its button; check each step
    in C{GET /api/tokens} and the audit log as the C{admin}.

    @param screenshot: a name to keep the page with the new token under
        (light and dark), or L{None}.
    """
    page.goto(daemon.url + "console/tokens")
    testcase.assertEqual(page.page.inner_text("header .person"), person)
    page.page.fill("#description", "laptop")
    page.page.select_option("#actions", "read")
    page.page.select_option("#expires", "30d")
    with page.page.expect_navigation():
        page.page.get_by_role("button", name="Issue token").click()
    secret = page.page.inner_text("#new-token").strip()
    testcase.assertTrue(secret.startswith("pypid-"), secret)
    if screenshot is not None:
        for scheme in ("light", "dark"):
            page.page.emulate_media(color_scheme=scheme)
            page.page.screenshot(path=f"{artifacts_dir()}/{screenshot}-{scheme}.png",
                                 full_page=True)
        page.page.emulate_media(color_scheme="light")
    listed = tokens_of(daemon, admin)
    (token_id,) = [tid for tid, record in listed.items() if record["user"] == person]
    testcase.assertEqual(listed[token_id]["description"], "laptop")
    testcase.assertEqual(http("GET", daemon.url + readable,
                              auth=("__token__", secret)).status, 200)
    issued = [e for e in audit_events(daemon, admin, "token-issued")
              if e.get("target") == token_id]
    testcase.assertEqual([e["user"] for e in issued], [person])
    # the page again: the token listed, its secret not
    page.goto(daemon.url + "console/tokens")
    testcase.assertNotIn(secret, page.page.content())
    with page.page.expect_navigation():
        page.page.get_by_role("button", name=f"Revoke token {token_id}").click()
    testcase.assertTrue(page.page.url.endswith("/console/tokens"), page.page.url)
    testcase.assertIn("no tokens", page.page.inner_text("main"))
    testcase.assertNotIn(token_id, tokens_of(daemon, admin))
    testcase.assertEqual(http("GET", daemon.url + readable,
                              auth=("__token__", secret)).status, 401)
    revoked = [e for e in audit_events(daemon, admin, "token-revoked")
               if e.get("target") == token_id]
    testcase.assertEqual([(e["user"], e["outcome"]) for e in revoked], [(person, "ok")])
    return token_id
