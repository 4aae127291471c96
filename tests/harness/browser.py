"""
The harness of the browser tests: the distribution's Chromium, driven by
playwright's blocking API, looking at pypid's pages the way a person's
browser does.

What a page test must see, a person never reads off the bytes: whether the
Content-Security-Policy blocks one of our own scripts, whether a script
throws, whether a stylesheet fails to load, whether every link can be
reached with the keyboard, how the page looks on a phone. L{Browser}
launches one headless Chromium; each L{WatchedPage} lives in a context of
its own and records, from the moment it opens, every console message,
uncaught exception, failed request and CSP violation, so that
L{assert_clean} can fail naming all of them at once. L{tab_order} and
L{focusable_links} walk the keyboard path; L{screenshot} keeps PNGs in
L{artifacts_dir} for a person to look at after the run.
L{BrowserTestCase} shares one browser among the tests of a process (all
its classes): starting
playwright's driver and Chromium takes about 0.5 s here, a new page in a
context of its own about 0.2 s (most of it Chromium starting the page's
renderer), so a test that loads and checks one page costs 0.2 to 0.4 s.

Chromium comes from Debian's C{chromium} package through
L{tests.harness.system.require}; playwright never downloads a browser of its own.
The machine's network is closed, so every switch that makes Chromium call
home is turned off (L{CHROMIUM_ARGS}); the tests only ever talk to
loopback.

Playwright's blocking API runs an asyncio loop of its own in a greenlet and
refuses to start in a thread whose asyncio loop is running; trial's default
reactor (epoll) is not asyncio and a L{SynchronousTestCase} never runs the
reactor, so the two get along. While a L{Browser} is open, the thread's
C{asyncio.get_running_loop()} returns playwright's loop: use the harness
from L{SynchronousTestCase} tests only. The shared browser stays open until
the process exits (or a test launches its own), so a later test of the
process that runs an asyncio loop in trial's thread must first close it
with L{close_browser} (L{Browser.launch} does).
"""

import asyncio
import atexit
import os
import re
import shutil
import tempfile
import time

import attrs
from playwright.sync_api import sync_playwright
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests import CHECKOUT
from tests.harness.system import require

#: Seconds a navigation or an action (click, fill, wait) may take: a hung
#: page fails the test quickly instead of waiting for trial's timeout.
ACTION_TIMEOUT = 15.0
#: Seconds Chromium gets to start (the driver and Chromium take about 0.5 s
#: once the binaries are in the page cache).
LAUNCH_TIMEOUT = 30.0
#: Tab presses after which L{tab_order} gives up: no page of ours has as many
#: focusable elements, so reaching it means focus is trapped in a loop that
#: the cycle check does not see.
MAX_TABS = 500

#: Chromium's switches besides C{--headless} (playwright's C{headless=True}).
#: C{--no-sandbox}: the tests run as root in CI, where Chromium refuses to
#: start sandboxed. C{--disable-gpu}: there is no GPU; software rendering
#: is what the screenshots show anyway. The others stop the calls home
#: (QUIC probes, component and variation updates, sync, first-run
#: promotions): on a closed network they are refused connections retried
#: for the whole run. Some services call home all the same (measured with
#: strace: DNS queries for an update host and an accounts host at every
#: start), hence L{resolver_rules}. C{--no-proxy-server}: a developer's
#: proxy variables must not route loopback requests.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
)

#: Debian's C{/usr/bin/chromium} is a shell script that sources
#: C{/etc/chromium.d} (extra switches, API keys that make Chromium call
#: Google's services, a C{/dev/shm} check that prints a shell error on this
#: machine) and then runs this binary; the tests run the binary with their
#: own switches only.
DEBIAN_BINARY = "/usr/lib/chromium/chromium"

#: Name of the window array the init script fills with CSP violations.
CSP_ARRAY = "__pypidCSPViolations"
#: Name of the binding through which the init script also reports each
#: violation at once, so a violation survives a navigation away from its
#: document (the window array does not).
CSP_BINDING = "__pypidReportCSP"

# Injected by playwright into every document before the page's own scripts.
# Playwright's init scripts are not subject to the page's CSP (the tests
# check it against a page with a strict policy). Each record carries a key
# unique to its document, so a violation seen both through the binding and
# in the array is counted once.
_CSP_SCRIPT = """
(() => {
  const documentKey = Math.random().toString(36).slice(2) + ":" + performance.timeOrigin;
  const records = [];
  window.%(array)s = records;
  document.addEventListener("securitypolicyviolation", (event) => {
    const record = {
      key: documentKey + ":" + records.length,
      violatedDirective: event.violatedDirective,
      effectiveDirective: event.effectiveDirective,
      blockedURI: event.blockedURI,
      sourceFile: event.sourceFile,
      lineNumber: event.lineNumber,
      documentURI: event.documentURI,
    };
    records.push(record);
    const report = window.%(binding)s;
    if (typeof report === "function") {
      report(record).catch(() => {});
    }
  }, true);
})();
""" % {"array": CSP_ARRAY, "binding": CSP_BINDING}

# How an element is described, the same for the focus walk and the link list
# so that their results compare equal.
_DESCRIBE = """
const describe = (e) => ({
  tag: e.tagName.toLowerCase(),
  href: e.getAttribute("href"),
  text: (e.getAttribute("aria-label") || e.innerText || e.value || "")
          .replace(/\\s+/g, " ").trim().slice(0, 100),
  id: e.id || null,
});
"""

# Puts the sequential focus navigation starting point at the top of the
# document: blur() alone leaves it where the focus was, so the next Tab
# would go on from there. A throwaway element focused at the top and
# removed leaves the starting point where it stood.
_RESET_FOCUS = """
() => {
  const marker = document.createElement("span");
  marker.tabIndex = -1;
  (document.body || document.documentElement).prepend(marker);
  marker.focus({preventScroll: true});
  marker.remove();
  window.scrollTo(0, 0);
  window.__pypidTabSeen = new WeakSet();
}
"""

# The focused element after a Tab: null once focus has left the document,
# with "seen" set when focus came back to an element already visited.
_FOCUSED = """
() => {
  %s
  let e = document.activeElement;
  while (e && e.shadowRoot && e.shadowRoot.activeElement) {
    e = e.shadowRoot.activeElement;
  }
  if (!document.hasFocus() || !e || e === document.body || e === document.documentElement) {
    return null;
  }
  const seen = window.__pypidTabSeen.has(e);
  window.__pypidTabSeen.add(e);
  return Object.assign(describe(e), {seen});
}
""" % _DESCRIBE

_LINKS = """
() => {
  %s
  return Array.from(document.querySelectorAll("a[href]"))
    .filter((a) => a.getClientRects().length > 0
                   && a.checkVisibility({visibilityProperty: true}))
    .map(describe);
}
""" % _DESCRIBE


# -- where Chromium is and where pictures go -------------------------------------------------


def chromium_path():
    """
    The Chromium binary the tests run, installing Debian's C{chromium}
    package when it is missing.

    @raise SkipTest: when it cannot be installed here.
    """
    wrapper = require({"chromium": "chromium"})["chromium"]
    return DEBIAN_BINARY if os.access(DEBIAN_BINARY, os.X_OK) else wrapper


def resolver_rules(hosts=None):
    """
    The value of Chromium's C{--host-resolver-rules}: the names of C{hosts}
    (C{{name: loopback address}}, for a certificate's name, say) go to their
    address, C{localhost} and loopback addresses stay as they are, and every
    other name is "not found" at once, without a DNS query.
    """
    rules = [f"MAP {name} {address}" for name, address in sorted((hosts or {}).items())]
    rules += ["MAP * ~NOTFOUND", "EXCLUDE localhost", "EXCLUDE 127.*", "EXCLUDE [::1]"]
    return ", ".join(rules)


def artifacts_dir():
    """
    The folder screenshots go to, created: C{$PYPID_ARTIFACTS}, or
    C{artifacts} in this run's trial folder of the checkout (C{_trial_temp},
    or C{_trial_temp-1} while another run holds that one), which trial only
    wipes when the next run starts: the pictures of a run can be looked at
    after it.
    """
    folder = os.environ.get("PYPID_ARTIFACTS")
    if not folder:
        top = os.path.relpath(os.getcwd(), CHECKOUT).split(os.sep)[0]
        folder = os.path.join(CHECKOUT, top if top.startswith("_trial_temp") else "_trial_temp",
                              "artifacts")
    os.makedirs(folder, exist_ok=True)
    return folder


# -- what a page records ---------------------------------------------------------------------


@attrs.frozen
class Viewport:
    """
    The window a page is shown in: a width and height in CSS pixels, the
    device pixels per CSS pixel, and whether it is a phone (C{is_mobile}
    makes Chromium honour C{<meta name=viewport>}; phones have touch).
    """

    name: str
    width: int
    height: int
    scale: float = 1
    mobile: bool = False

    def context_options(self):
        """The options of C{Browser.new_context} that give this window."""
        return {"viewport": {"width": self.width, "height": self.height},
                "device_scale_factor": self.scale, "is_mobile": self.mobile,
                "has_touch": self.mobile}


#: A laptop's window.
DESKTOP = Viewport("desktop", 1280, 800)
#: A current phone's screen (CSS pixels; its screenshots are twice as wide).
PHONE = Viewport("phone", 390, 844, scale=2, mobile=True)


def viewport_for(width):
    """The viewport of C{width} CSS pixels: ours by name, else a phone under 768."""
    for known in (DESKTOP, PHONE):
        if known.width == width:
            return known
    if width < 768:
        return Viewport(f"{width}px", width, PHONE.height, scale=PHONE.scale, mobile=True)
    return Viewport(f"{width}px", width, DESKTOP.height)


@attrs.frozen
class ConsoleMessage:
    """A console message; C{line} and C{column} count from 0, as Chromium's do."""

    type: str
    text: str
    url: str
    line: int
    column: int

    def __str__(self):
        where = f" (at {self.url}:{self.line + 1}:{self.column + 1})" if self.url else ""
        return f"console {self.type}: {self.text}{where}"


@attrs.frozen
class PageError:
    """An exception no script caught (or a crash of the page)."""

    name: str
    message: str
    stack: str

    def __str__(self):
        return f"page error: {self.stack or f'{self.name}: {self.message}'}"


@attrs.frozen
class FailedRequest:
    """A request that got no HTTP response (refused, reset, blocked, aborted)."""

    method: str
    url: str
    resource_type: str
    failure: str

    def __str__(self):
        return f"failed request: {self.method} {self.url} ({self.resource_type}): {self.failure}"


@attrs.frozen
class CSPViolation:
    """One C{securitypolicyviolation} event, as the document saw it."""

    violated_directive: str
    effective_directive: str
    blocked_uri: str
    source_file: str
    line_number: int
    document_uri: str

    @classmethod
    def from_json(cls, record):
        """A violation from the init script's record."""
        return cls(violated_directive=record.get("violatedDirective") or "",
                   effective_directive=record.get("effectiveDirective") or "",
                   blocked_uri=record.get("blockedURI") or "",
                   source_file=record.get("sourceFile") or "",
                   line_number=record.get("lineNumber") or 0,
                   document_uri=record.get("documentURI") or "")

    def __str__(self):
        return (f"CSP violation: {self.violated_directive} blocked {self.blocked_uri or '?'}"
                f" at {self.source_file or self.document_uri}:{self.line_number}")


@attrs.frozen
class Focused:
    """An element as the keyboard walk or the link list describes it."""

    tag: str
    href: str | None
    text: str
    id: str | None


#: Failures of requests that are not problems of the page: Chromium aborts
#: the requests of a document it navigates away from.
BENIGN_FAILURES = ("net::ERR_ABORTED",)


# Not slotted: playwright keeps the wrapper of a bound-method handler on its
# instance.
@attrs.define(eq=False, slots=False)
class WatchedPage:
    """
    A page in a browser context of its own, with everything that went wrong
    in it since it opened.

    @ivar page: playwright's page, for everything the harness does not wrap.
    @ivar console: every console message, errors and the rest.
    @ivar errors: uncaught exceptions and crashes.
    @ivar failed_requests: requests that got no response.
    @ivar siblings: the pages opened for screenshots at other widths, whose
        problems count as this page's.
    @ivar context_options: the options its context was made with besides
        the viewport's (credentials, certificate errors), for its siblings.
    """

    page: object
    context: object
    viewport: Viewport
    browser: "Browser"
    context_options: dict = attrs.Factory(dict)
    console: list = attrs.Factory(list)
    errors: list = attrs.Factory(list)
    failed_requests: list = attrs.Factory(list)
    siblings: list = attrs.Factory(list)
    _csp: dict = attrs.Factory(dict)
    _watched: list = attrs.Factory(list)

    def watch(self, page):
        """Record what happens in C{page} (the page itself or a popup of it)."""
        if any(p is page for p in self._watched):
            return
        self._watched.append(page)
        page.on("console", self._on_console)
        page.on("pageerror", self._on_error)
        page.on("requestfailed", self._on_request_failed)
        page.on("crash", lambda _: self.errors.append(PageError("crash", "the page crashed", "")))

    def _on_console(self, message):
        location = message.location or {}
        self.console.append(ConsoleMessage(
            type=message.type, text=message.text, url=location.get("url") or "",
            line=location.get("lineNumber") or 0, column=location.get("columnNumber") or 0))

    def _on_error(self, error):
        self.errors.append(PageError(name=error.name or "", message=error.message or "",
                                     stack=error.stack or ""))

    def _on_request_failed(self, request):
        self.failed_requests.append(FailedRequest(
            method=request.method, url=request.url, resource_type=request.resource_type,
            failure=request.failure or ""))

    def _on_csp(self, source, record):
        self._csp.setdefault(record.get("key"), record)

    def goto(self, url, **options):
        """Load C{url}; playwright's response (L{None} for same-document moves)."""
        return self.page.goto(url, **options)

    def csp_violations(self):
        """
        Every CSP violation so far: those the binding reported, and those
        still only in the documents' arrays (reading them also lets pending
        reports arrive).
        """
        for frame in self.page.frames:
            try:
                records = frame.evaluate(f"() => window.{CSP_ARRAY} || []")
            except Exception:
                continue  # a frame that went away while it was read
            for record in records:
                self._csp.setdefault(record.get("key"), record)
        return [CSPViolation.from_json(r) for r in self._csp.values()]

    def console_errors(self):
        """The console messages of type error (Chromium logs CSP refusals there too)."""
        return [m for m in self.console if m.type == "error"]

    def problems(self):
        """What went wrong, one line each, this page's then its siblings'."""
        found = [str(m) for m in self.console_errors()]
        found += [str(e) for e in self.errors]
        found += [str(v) for v in self.csp_violations()]
        found += [str(r) for r in self.failed_requests if r.failure not in BENIGN_FAILURES]
        for sibling in self.siblings:
            found += [f"[{sibling.viewport.name}] {p}" for p in sibling.problems()]
        return found

    def close(self):
        """Close its context (and with it every page of the context)."""
        try:
            self.context.close()
        except Exception:
            pass  # the browser is already gone


# -- the browser ------------------------------------------------------------------------------


#: The browser of this process while it is open (playwright's blocking API
#: runs one per thread), closed at exit whatever happens.
_open = set()
#: Why a launch with the names of C{hosts} failed in this process, by
#: L{_hosts_key}: the next tests that need it fail at once.
_launch_failed = {}


@atexit.register
def close_browser():
    """Close the browser of this process, if one is open."""
    for browser in list(_open):
        try:
            browser.close()
        except Exception:
            pass


def _hosts_key(hosts):
    return tuple(sorted((hosts or {}).items()))


def shared_browser(hosts=None):
    """
    The browser this process keeps for the tests, launched on first use:
    the one open if it resolves the same C{hosts}, else a new one (which
    closes the other first, see L{Browser.launch}). It stays open for the
    tests of the next classes, and is closed at exit.

    @raise SkipTest: when Chromium cannot be installed here.
    @raise RuntimeError: an earlier launch with the same C{hosts} failed.
    """
    key = _hosts_key(hosts)
    for browser in _open:
        if browser.hosts == key:
            return browser
    if key in _launch_failed:
        raise RuntimeError(f"the browser could not be launched: {_launch_failed[key]}")
    try:
        return Browser.launch(hosts=hosts)
    except SkipTest:
        raise  # not kept: require() remembers it, and every test skips
    except Exception as e:
        _launch_failed[key] = str(e).splitlines()[0] if str(e) else repr(e)
        raise


@attrs.define(eq=False)
class Browser:
    """
    One headless Chromium, launched by playwright from Debian's binary with
    a fresh temporary profile and home folder (so a run neither reads nor
    writes the developer's certificates, caches or settings).

    Playwright's blocking API runs one per thread, so there is one per
    process: L{launch} closes the one open before it starts another.

    @ivar executable: the binary it runs.
    @ivar launch_seconds: how long the driver and Chromium took to start.
    @ivar hosts: the names it resolves, as C{((name, address), ...)}.
    """

    executable: str
    launch_seconds: float
    hosts: tuple
    _playwright: object
    _browser: object
    _home: str

    @classmethod
    def launch(cls, executable=None, hosts=None):
        """
        Start playwright's driver and Chromium, once the browser this
        process has open (a test's, or L{shared_browser}'s) is closed.

        @param hosts: names Chromium may resolve, to loopback addresses (see
            L{resolver_rules}); no other name resolves.

        @raise SkipTest: when Chromium cannot be installed here.
        @raise RuntimeError: when an asyncio loop runs in this thread, where
            playwright's blocking API cannot work.
        """
        executable = executable or chromium_path()
        close_browser()
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError("the browser harness is blocking code: it cannot run while an "
                               "asyncio loop runs in this thread (use a SynchronousTestCase)")
        home = tempfile.mkdtemp(prefix="pypid-chromium-home-")
        env = dict(os.environ, HOME=home, XDG_CONFIG_HOME=os.path.join(home, ".config"),
                   XDG_CACHE_HOME=os.path.join(home, ".cache"))
        started = time.monotonic()
        playwright = sync_playwright().start()
        try:
            browser = playwright.chromium.launch(
                executable_path=executable, headless=True,
                args=[*CHROMIUM_ARGS, f"--host-resolver-rules={resolver_rules(hosts)}"],
                env=env, timeout=LAUNCH_TIMEOUT * 1000)
        except BaseException:
            playwright.stop()
            shutil.rmtree(home, ignore_errors=True)
            raise
        self = cls(executable=executable, launch_seconds=time.monotonic() - started,
                   hosts=_hosts_key(hosts), playwright=playwright, browser=browser, home=home)
        _open.add(self)
        return self

    @property
    def version(self):
        """Chromium's version, as C{156.0.8078.79}."""
        return self._browser.version

    def new_page(self, viewport=DESKTOP, **context_options):
        """
        A blank page in a new context (its own cookies and storage), watched
        from before its first script runs.

        @param context_options: more options of C{Browser.new_context}, as
            C{http_credentials}, C{ignore_https_errors=True} or
            C{storage_state}.
        """
        context = self._browser.new_context(**viewport.context_options(), **context_options)
        context.set_default_timeout(ACTION_TIMEOUT * 1000)
        context.set_default_navigation_timeout(ACTION_TIMEOUT * 1000)
        try:
            watched = WatchedPage(page=None, context=context, viewport=viewport, browser=self,
                                  context_options=context_options)
            context.expose_binding(CSP_BINDING, watched._on_csp)
            context.add_init_script(script=_CSP_SCRIPT)
            context.on("page", watched.watch)
            watched.page = context.new_page()
            watched.watch(watched.page)
        except BaseException:
            context.close()
            raise
        return watched

    def close(self):
        """Close Chromium and playwright's driver; the thread has no asyncio loop after."""
        if self not in _open:
            return
        _open.discard(self)
        try:
            self._browser.close()
        finally:
            self._playwright.stop()
            shutil.rmtree(self._home, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


# -- checks ---------------------------------------------------------------------------------


def _foreign_favicon(problem, origin):
    """
    Whether C{problem} is the browser's own request of another site's
    C{/favicon.ico} (a test's OpenID provider has none): Chromium asks for
    it by itself, and it failed a test when it came before the page moved
    on. pypid's own favicon is still checked.
    """
    return "/favicon.ico" in problem and f"(at {origin}favicon.ico" not in problem


def assert_clean(testcase, page, allow=()):
    """
    Fail C{testcase} listing every console error, uncaught exception, CSP
    violation and failed request of C{page} (and of its screenshot siblings).

    @param allow: substrings of problem lines that a test expects (a 404
        page logs its own status as a console error, for instance).
    """
    origin = "/".join(page.page.url.split("/")[:3]) + "/"
    problems = [p for p in page.problems() if not any(a in p for a in allow)
                and not _foreign_favicon(p, origin)]
    if problems:
        lines = "\n".join(f"  {p}" for p in problems)
        testcase.fail(f"{page.page.url} is not clean ({len(problems)} problems):\n{lines}")


def tab_order(page, limit=MAX_TABS):
    """
    The elements the Tab key reaches, from the top of the page, until focus
    leaves the document or comes back to an element already reached.

    The walk moves the focus (and puts a throwaway element at the top of
    the body for an instant, to start from there). An C{iframe} counts as
    one stop and ends the walk when focus moves inside it: pypid's pages
    have none.

    @raise AssertionError: after C{limit} presses without an end.
    """
    page.page.evaluate(_RESET_FOCUS)
    order = []
    for _ in range(limit):
        page.page.keyboard.press("Tab")
        focused = page.page.evaluate(_FOCUSED)
        if focused is None or focused.pop("seen"):
            return order
        order.append(Focused(**focused))
    raise AssertionError(f"Tab never left {page.page.url} in {limit} presses: {order[-5:]}")


def focusable_links(page):
    """
    Every visible C{a[href]} of the page in document order: the links a
    person sees. A link taken out of the tab order (C{tabindex=-1}, inert)
    is listed all the same, so comparing this with the links of
    L{tab_order} shows it.
    """
    return [Focused(**link) for link in page.page.evaluate(_LINKS)]


def _safe(name):
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "page"


def screenshot(page, name, width=None):
    """
    Save a full-page PNG of C{page} at C{width} CSS pixels in
    L{artifacts_dir}, as C{<name>-<width>.png}; return its path.

    At another width than the page's own, the page's URL is loaded in a
    new page of that viewport (same context options, cookies and storage),
    whose problems then count as C{page}'s: a layout can break, or a script
    fail, at one width only.
    """
    viewport = page.viewport if width in (None, page.viewport.width) else viewport_for(width)
    path = os.path.join(artifacts_dir(), f"{_safe(name)}-{viewport.width}.png")
    if viewport == page.viewport:
        page.page.screenshot(path=path, full_page=True, animations="disabled", caret="hide")
        return path
    options = dict(page.context_options, storage_state=page.context.storage_state())
    sibling = page.browser.new_page(viewport, **options)
    try:
        sibling.goto(page.page.url)
        sibling.page.screenshot(path=path, full_page=True, animations="disabled", caret="hide")
        sibling.csp_violations()  # read while the document is there
    finally:
        page.siblings.append(sibling)
        sibling.close()
    return path


def screenshots(page, name, widths=(DESKTOP.width, PHONE.width)):
    """Screenshots of C{page} at each width (desktop and phone by default); their paths."""
    return [screenshot(page, name, width) for width in widths]


# -- test cases --------------------------------------------------------------------------------


class BrowserTestCase(SynchronousTestCase):
    """
    A test case whose tests share the browser of the process
    (L{shared_browser}), launched on first use; every page a test opens is
    closed after it.

    The browser outlives the class: under C{trial -j} a class's tests are
    spread over the worker processes, and no process knows which test of
    the class is its last (see L{tests.harness.shared}). It is closed at
    exit, or when a test launches one of its own.
    """

    #: The viewport of the pages L{open_page} opens.
    viewport = DESKTOP
    #: Names the browser may resolve (see L{resolver_rules}).
    hosts = None

    @property
    def browser(self):
        """The browser of this process, for this class's C{hosts}."""
        return shared_browser(self.hosts)

    def open_page(self, url=None, viewport=None, **context_options):
        """A new watched page (closed after the test), loaded from C{url} if given."""
        page = self.browser.new_page(viewport or self.viewport, **context_options)
        self.addCleanup(page.close)
        if url is not None:
            page.goto(url)
        return page

    def assert_clean(self, page, allow=()):
        """Fail listing every problem of C{page} (see L{assert_clean})."""
        assert_clean(self, page, allow)
