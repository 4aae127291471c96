"""
Tests of the browser harness (L{tests.harness.browser}) against real pages: a
loopback HTTP server in a thread serves small pages under a strict
Content-Security-Policy, and the distribution's Chromium loads them.

They prove what the page tests will lean on: a clean page passes, and an
inline script blocked by the policy, an exception, a request without an
answer each fail it; the keyboard walk reaches links in order; screenshots
come out at both widths, logged in as the page was; only the names given to
the browser resolve; closing it leaves trial's thread as it found it.
"""

import asyncio
import base64
import os
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from playwright.sync_api import Error as PlaywrightError
from twisted.trial.unittest import SynchronousTestCase

from tests.harness.browser import (
    DESKTOP,
    PHONE,
    Browser,
    BrowserTestCase,
    Focused,
    artifacts_dir,
    close_browser,
    focusable_links,
    screenshot,
    shared_browser,
    tab_order,
)

#: The policy pypid's pages are meant to carry: nothing but our own scripts
#: and stylesheets.
CSP = "default-src 'none'; script-src 'self'; style-src 'self'"


def _html(body, head=""):
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>harness</title><link rel=\"stylesheet\" href=\"/style.css\">{head}"
            f"</head>\n<body>\n{body}\n</body></html>\n")


def _script(path):
    return f'<script src="{path}" defer></script>'


PAGES = {
    "/style.css": ("text/css", "#styled { color: rgb(0, 128, 0); }\n"
                               ".hidden { display: none; }\n"
                               ".tall { height: 3000px; background: #36c; }\n"),
    "/clean.js": ("text/javascript",
                  'document.getElementById("marker").textContent = "external script ran";\n'
                  'console.log("clean script ran");\n'),
    "/throws.js": ("text/javascript", 'throw new Error("harness test error");\n'),
    "/narrow.js": ("text/javascript",
                   'if (window.innerWidth < 600) { throw new Error("narrow only"); }\n'),
    "/clean": ("text/html", _html('<p id="marker">not run</p>\n<p id="styled">styled</p>',
                                  head=_script("/clean.js"))),
    "/inline": ("text/html", _html(
        '<p id="marker">not run</p>\n'
        '<script>document.getElementById("marker").textContent = "inline script ran";</script>')),
    "/throws": ("text/html", _html("<p>throws</p>", head=_script("/throws.js"))),
    "/narrow": ("text/html", _html("<p>narrow</p>", head=_script("/narrow.js"))),
    "/broken": ("text/html", _html("<p>broken</p>", head=_script("/broken.js"))),
    "/private": ("text/html", _html("<p>private</p>")),
    "/links": ("text/html", _html(
        '<nav><a href="/one">One</a> <button type="button">Menu</button>'
        ' <a href="/two">Two</a> <a class="hidden" href="/hidden">Hidden</a>'
        ' <a id="last" href="/three">Three</a></nav>')),
    "/skipped": ("text/html", _html(
        '<a href="/one">One</a> <a href="/two" tabindex="-1">Two</a>')),
    "/tall": ("text/html", _html('<h1>tall</h1><div class="tall"></div>')),
}


#: The credentials C{/private} asks for.
CREDENTIALS = {"username": "reader", "password": "pässword"}
PRIVATE_AUTH = "Basic " + base64.b64encode("reader:pässword".encode()).decode("ascii")


class _Handler(BaseHTTPRequestHandler):
    """
    Serves L{PAGES} with the policy; C{/private} only with L{PRIVATE_AUTH},
    and C{/broken.js} gets no answer at all.
    """

    def do_GET(self):
        if self.path == "/private" and self.headers.get("Authorization") != PRIVATE_AUTH:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="harness"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/broken.js":
            self.close_connection = True
            return
        content_type, text = PAGES.get(self.path, ("text/plain", "not found\n"))
        body = text.encode("utf-8")
        self.send_response(200 if self.path in PAGES else 404)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def png_size(path):
    """The width and height in a PNG's header."""
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise AssertionError(f"{path} is not a PNG: {head!r}")
    return struct.unpack(">II", head[16:24])


def serve(testcase):
    """Serve L{PAGES} on a loopback port until C{testcase} ends; the port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    testcase.addCleanup(server.server_close)
    testcase.addCleanup(server.shutdown)
    return server.server_address[1]


class HarnessTests(BrowserTestCase):
    """The harness against pages served with a strict policy."""

    def setUp(self):
        super().setUp()
        self.base = f"http://127.0.0.1:{serve(self)}"

    def test_clean_page(self):
        """Our own script and stylesheet work under the policy, and the page passes."""
        page = self.open_page(self.base + "/clean")
        self.assertEqual(page.page.text_content("#marker"), "external script ran")
        self.assertEqual(page.page.eval_on_selector("#styled", "e => getComputedStyle(e).color"),
                         "rgb(0, 128, 0)")
        self.assertIn(("log", "clean script ran"), [(m.type, m.text) for m in page.console])
        self.assertEqual(page.console[-1].url, self.base + "/clean.js")
        self.assertEqual((page.csp_violations(), page.errors, page.failed_requests), ([], [], []))
        self.assert_clean(page)

    def test_inline_script_blocked(self):
        """
        An inline script does not run, and the init script (not itself
        subject to the policy) reports the violation, beside Chromium's
        console error; the page fails L{assert_clean} naming it.
        """
        page = self.open_page(self.base + "/inline")
        self.assertEqual(page.page.text_content("#marker"), "not run")
        [violation] = page.csp_violations()
        self.assertTrue(violation.violated_directive.startswith("script-src"), violation)
        self.assertEqual(violation.effective_directive, "script-src-elem")
        self.assertEqual(violation.blocked_uri, "inline")
        self.assertEqual(violation.source_file, self.base + "/inline")
        self.assertGreater(violation.line_number, 0)
        [console] = page.console_errors()
        self.assertIn("Content Security Policy", console.text)
        failure = self.assertRaises(self.failureException, self.assert_clean, page)
        self.assertIn("2 problems", str(failure))
        self.assertIn("CSP violation: script-src-elem blocked inline", str(failure))
        self.assert_clean(page, allow=["Content Security Policy", "CSP violation"])

    def test_violation_survives_navigation(self):
        """A violation is still reported after the page has moved to another document."""
        page = self.open_page(self.base + "/inline")
        page.goto(self.base + "/clean")
        self.assertEqual(page.page.text_content("#marker"), "external script ran")
        self.assertEqual([v.document_uri for v in page.csp_violations()], [self.base + "/inline"])

    def test_thrown_error(self):
        """An exception no script catches is a page error, with its stack."""
        page = self.open_page(self.base + "/throws")
        page.page.wait_for_load_state("load")
        [error] = page.errors
        self.assertEqual((error.name, error.message), ("Error", "harness test error"))
        self.assertIn(self.base + "/throws.js:1", error.stack)
        failure = self.assertRaises(self.failureException, self.assert_clean, page)
        self.assertIn("page error: Error: harness test error", str(failure))

    def test_failed_request(self):
        """A script request that gets no answer is a failed request."""
        page = self.open_page(self.base + "/broken")
        [failed] = [r for r in page.failed_requests if r.url.endswith("/broken.js")]
        self.assertEqual((failed.method, failed.resource_type), ("GET", "script"))
        self.assertEqual(failed.failure, "net::ERR_EMPTY_RESPONSE")
        failure = self.assertRaises(self.failureException, self.assert_clean, page)
        self.assertIn(f"failed request: GET {self.base}/broken.js", str(failure))

    def test_keyboard_reaches_links(self):
        """
        Tab reaches the three visible links in document order (the button
        between them too), again after focus has moved elsewhere.
        """
        page = self.open_page(self.base + "/links")
        links = focusable_links(page)
        self.assertEqual(links, [Focused("a", "/one", "One", None),
                                 Focused("a", "/two", "Two", None),
                                 Focused("a", "/three", "Three", "last")])
        order = tab_order(page)
        self.assertEqual([(f.tag, f.text) for f in order],
                         [("a", "One"), ("button", "Menu"), ("a", "Two"), ("a", "Three")])
        self.assertEqual([f for f in order if f.tag == "a"], links)
        page.page.focus("#last")
        self.assertEqual(tab_order(page), order)
        self.assert_clean(page)

    def test_link_out_of_tab_order(self):
        """A visible link with C{tabindex=-1} is listed but not reached, so a test sees it."""
        page = self.open_page(self.base + "/skipped")
        self.assertEqual([link.href for link in focusable_links(page)], ["/one", "/two"])
        self.assertEqual([f.href for f in tab_order(page)], ["/one"])

    def test_screenshots(self):
        """
        Full-page PNGs at desktop and phone widths land in the artifacts
        folder, the phone one at twice its CSS width; the phone page's
        problems count as the page's.
        """
        page = self.open_page(self.base + "/tall")
        desktop = screenshot(page, "harness tall", DESKTOP.width)
        phone = screenshot(page, "harness tall", PHONE.width)
        self.assertEqual(os.path.dirname(desktop), artifacts_dir())
        self.assertEqual(os.path.basename(desktop), "harness-tall-1280.png")
        self.assertEqual(os.path.basename(phone), "harness-tall-390.png")
        desktop_width, desktop_height = png_size(desktop)
        phone_width, phone_height = png_size(phone)
        self.assertEqual(desktop_width, 1280)
        self.assertGreater(desktop_height, 3000)
        self.assertEqual(phone_width, 780)
        self.assertGreater(phone_height, 6000)
        self.assertEqual([s.viewport for s in page.siblings], [PHONE])
        self.assert_clean(page)

    def test_phone_page_keeps_credentials(self):
        """The phone page of a screenshot logs in as the page did, so it loads cleanly."""
        page = self.open_page(self.base + "/private", http_credentials=CREDENTIALS)
        self.assertEqual(page.page.text_content("p"), "private")
        screenshot(page, "harness private", PHONE.width)
        self.assertEqual(len(page.siblings), 1)
        self.assert_clean(page)

    def test_phone_problems_count(self):
        """A script that fails at phone width only fails the page through its screenshot."""
        page = self.open_page(self.base + "/narrow")
        self.assertEqual(page.problems(), [])
        screenshot(page, "harness narrow", PHONE.width)
        [problem] = page.problems()
        self.assertIn("[phone] page error: Error: narrow only", problem)


class LifecycleTests(SynchronousTestCase):
    """The browser's own life and its resolver."""

    def test_close_leaves_no_loop(self):
        """
        A browser launched from Debian's binary runs, and closing it leaves
        the thread without a running asyncio loop, as trial expects.
        """
        with Browser.launch() as browser:
            self.assertTrue(browser.executable.startswith("/usr/"), browser.executable)
            self.assertRegex(browser.version, r"^\d+\.")
            page = browser.new_page()
            self.assertEqual(page.page.evaluate("() => 6 * 7"), 42)
        self.assertRaises(RuntimeError, asyncio.get_running_loop)

    def test_names_resolve_only_as_mapped(self):
        """
        A name given to the browser reaches its loopback address; any other
        name fails at once, without a DNS query.
        """
        port = serve(self)
        with Browser.launch(hosts={"pypi.example": "127.0.0.1"}) as browser:
            page = browser.new_page()
            page.goto(f"http://pypi.example:{port}/clean")
            self.assertEqual(page.page.text_content("#marker"), "external script ran")
            started = time.monotonic()
            error = self.assertRaises(PlaywrightError, page.goto,
                                      f"http://other.example:{port}/clean")
            # (not found, rather than the navigation's timeout; and sooner
            # than a resolver that is asked and does not answer gives up,
            # 5 s a try, with room for a loaded machine)
            self.assertIn("net::ERR_NAME_NOT_RESOLVED", str(error))
            self.assertLess(time.monotonic() - started, 10.0)

    def test_shared_browser_outlives_a_class(self):
        """
        The process's shared browser is the same for every test that asks
        with the same names; asked with other names, it is another.
        """
        self.addCleanup(close_browser)
        first = shared_browser()
        self.assertIs(shared_browser(), first)
        mapped = shared_browser({"pypi.example": "127.0.0.1"})
        self.assertIsNot(mapped, first)
        self.assertEqual(mapped.hosts, (("pypi.example", "127.0.0.1"),))
        self.assertIs(shared_browser({"pypi.example": "127.0.0.1"}), mapped)

    def test_own_browser_while_shared_open(self):
        """
        A test launches a browser of its own while the shared one of an
        earlier class is still open in this process (as a worker of C{trial
        -j} has it): the shared one is closed first, and launched again
        when asked for.
        """
        self.addCleanup(close_browser)
        shared = shared_browser()
        with Browser.launch() as own:
            page = own.new_page()
            self.assertEqual(page.page.evaluate("() => 6 * 7"), 42)
        self.assertRaises(RuntimeError, asyncio.get_running_loop)
        again = shared_browser()
        self.assertIsNot(again, shared)
        self.assertEqual(again.new_page().page.evaluate("() => 6 * 7"), 42)
