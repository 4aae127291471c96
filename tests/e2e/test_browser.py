"""
The pages for people in a real browser: Debian's Chromium, driven by
playwright (L{tests.harness.browser}), against the real daemon.

What a person does: finds a project by a part of its name or by its
summary (as they type, and with script turned off), reads its README
rendered, sees why a version was yanked, and moves through every link with
the keyboard alone; and what must never happen: a script of a README
running, a console error, a Content-Security-Policy violation, or a project
the reader may not read showing up. Screenshots at desktop and phone widths
are saved as test artifacts (L{tests.harness.browser.artifacts_dir}).
"""

from tests.harness.browser import (
    PHONE,
    BrowserTestCase,
    focusable_links,
    screenshot,
    screenshots,
    tab_order,
)
from tests.harness.distributions import make_sdist, make_wheel
from tests.harness.e2e import PASSWORD, USER, DaemonTestCase, form, http, upload
from tests.harness.people import HOSTILE, rich_metadata

#: The README a project page must show rendered: a heading, a code block, a link.
README = """# Holy Grail

Seek it with `grail.seek()`:

```python
import grail
grail.seek(knights=3)
```

Read [the guide](https://docs.example/grail/) first.
"""

#: Hostile markup the sanitizer must make inert, with what a script that
#: ran would leave behind.
TRAP = HOSTILE + """
<img src="x" onerror="window.__owned = 1">
<a href="javascript:window.__owned = 2">press</a>
<svg onload="window.__owned = 3"></svg>
<details open ontoggle="window.__owned = 4"><summary>s</summary></details>
<img src="https://img.example/wide.png" width="30000" height="20">
"""

#: Everything readers may not see is named so.
SECRET = "secret-sauce"


class BrowserTests(BrowserTestCase, DaemonTestCase):
    """The pages for people in Chromium."""

    users = {USER: PASSWORD, "alice": "alice-pw"}

    def prepare(self, daemon):
        with open(daemon.config_path, "a", encoding="utf-8") as f:
            f.write(f"[acl]\n{SECRET} = user:alice rw\n")
        daemon.restart()
        for name, version, summary, readme in (
                ("Holy.Grail", "1.0", "Finds the holy grail", README),
                ("Holy.Grail", "1.1", "Finds the holy grail, faster", README),
                ("Holy.Grail", "2.0rc1", "Finds the holy grail, rewritten", README),
                ("shrubbery", "0.3", "A nice one, not too expensive", "Just a shrubbery."),
                ("trap", "1.0", "Hostile markup", TRAP)):
            metadata = rich_metadata(name, version, summary, readme)
            answer = upload(daemon, *make_wheel(name, version, metadata=metadata))
            self.assertEqual(answer.status, 200, answer.body)
        self.assertEqual(upload(daemon, *make_sdist("Holy.Grail", "1.0")).status, 200)
        answer = upload(daemon, *make_wheel(SECRET, "1.0", metadata=rich_metadata(
            SECRET, "1.0", "The holy grail recipe")), auth=("alice", "alice-pw"))
        self.assertEqual(answer.status, 200, answer.body)
        headers, body = form(reason="broken on Python 3.13")
        answer = http("POST", daemon.url + "api/projects/holy-grail/1.0/yank",
                      headers=headers, body=body, auth=(USER, PASSWORD))
        self.assertEqual(answer.status, 200, answer.body)

    def suggestions(self, page, some=True):
        """
        The names the suggestions list shows, once it shows some (C{some}:
        the list of an earlier keystroke, or of a query still on its way,
        may be empty first on a busy machine), else once it is there.
        """
        page.page.wait_for_selector("#suggestions ul")
        if some:
            page.page.wait_for_function(
                "() => document.querySelectorAll('#suggestions li a').length > 0")
        return page.page.locator("#suggestions li a").all_inner_texts()

    def test_search_as_you_type_by_name(self):
        """A part of a name, typed on the landing page, suggests the project; Enter lists it."""
        page = self.open_page(self.daemon.url)
        page.page.locator("#q").press_sequentially("rubb", delay=30)
        self.assertEqual(self.suggestions(page), ["shrubbery"])
        page.page.locator("#q").press("Enter")
        page.page.wait_for_url("**/search?q=rubb")
        self.assertEqual(page.page.locator("ol.results li > a").all_inner_texts(),
                         ["shrubbery"])
        self.assertIn("1 project matches", page.page.locator(".count").inner_text())
        screenshots(page, "search")
        self.assert_clean(page)

    def test_search_by_summary(self):
        """Words of a summary find the project, as one types and on the results page."""
        page = self.open_page(self.daemon.url + "project/holy-grail/")
        page.page.locator("#q").press_sequentially("expensive", delay=20)
        self.assertEqual(self.suggestions(page), ["shrubbery"])
        page.page.locator("#q").press("Enter")
        page.page.wait_for_url("**/search?q=expensive")
        self.assertEqual(page.page.locator("ol.results li > a").all_inner_texts(),
                         ["shrubbery"])
        self.assert_clean(page)

    def test_search_page_as_you_type(self):
        """On the search page, its results follow the query as one types, and its URL too."""
        page = self.open_page(self.daemon.url + "search?q=grail")
        self.assertEqual(page.page.locator("ol.results li > a").all_inner_texts(),
                         ["Holy.Grail"])
        page.page.locator("#q").fill("")
        page.page.locator("#q").press_sequentially("expens", delay=20)
        page.page.wait_for_function(
            "() => document.querySelector('.count').textContent.includes('expens')")
        self.assertEqual(page.page.locator("ol.results li > a").all_inner_texts(),
                         ["shrubbery"])
        self.assertTrue(page.page.url.endswith("search?q=expens"), page.page.url)
        self.assert_clean(page)

    def test_search_without_script(self):
        """With script turned off the search form still works, as a GET."""
        page = self.open_page(self.daemon.url, java_script_enabled=False)
        page.page.locator("#q").fill("grail")
        page.page.locator("form.search button").click()
        page.page.wait_for_url("**/search?q=grail")
        self.assertEqual(page.page.locator("ol.results li > a").all_inner_texts(),
                         ["Holy.Grail"])
        # (no script: the snippet keeps its placeholder rather than a wrong host)
        self.assert_clean(page)

    def test_readme_rendered(self):
        """The project page shows the README rendered: its heading, code block and link."""
        page = self.open_page(self.daemon.url + "project/holy-grail/")
        article = page.page.locator("article.description")
        self.assertEqual(article.locator("h1").inner_text().strip(), "Holy Grail")
        self.assertIn("grail.seek(knights=3)", article.locator("pre").inner_text())
        link = article.locator("a", has_text="the guide")
        self.assertEqual(link.get_attribute("href"), "https://docs.example/grail/")
        self.assertEqual(page.page.locator("h1").first.inner_text(), "Holy.Grail 1.1")
        snippet = page.page.locator(".snippet pre").first.inner_text()
        self.assertIn(f"--index-url {self.daemon.url}simple/ holy-grail==1.1", snippet)
        screenshots(page, "project")
        self.assert_clean(page)

    def test_dark_mode(self):
        """The page follows a dark system theme: light text on a dark background."""
        page = self.open_page(self.daemon.url + "project/holy-grail/", color_scheme="dark")
        colours = page.page.evaluate(
            "() => [getComputedStyle(document.body).backgroundColor,"
            " getComputedStyle(document.body).color]")
        background, text = (_luminance(c) for c in colours)
        self.assertLess(background, 0.1)
        self.assertGreater(text, 0.6)
        screenshot(page, "project-dark")
        self.assert_clean(page)

    def test_hostile_readme_inert(self):
        """No script of a README runs; its wide image stays inside the column."""
        page = self.open_page()
        dialogs = []
        page.page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(self.daemon.url + "project/trap/")
        for link in page.page.locator("article.description a").all():
            link.click(no_wait_after=True) if link.is_visible() else None
        page.page.wait_for_timeout(300)
        self.assertEqual(dialogs, [])
        self.assertEqual(page.page.evaluate("() => window.__owned"), None)
        self.assertEqual(page.page.title(), "trap 1.0 - pypid")
        self.assertEqual(page.page.evaluate(
            "() => [...document.querySelectorAll('article.description *')]"
            ".flatMap(e => [...e.attributes].map(a => a.name))"
            ".filter(n => n.startsWith('on') || n === 'style')"), [])
        widths = page.page.evaluate(
            "() => [document.querySelector('article.description').clientWidth,"
            " Math.max(...[...document.querySelectorAll('article.description img')]"
            ".map(i => i.getBoundingClientRect().width))]")
        self.assertLessEqual(widths[1], widths[0])
        screenshot(page, "hostile")
        # (the images point at hosts this machine cannot reach, or at nothing)
        self.assert_clean(page, allow=("img.example", "/project/trap/x",
                                       "the server responded with a status of 404"))

    def test_yanked_reason(self):
        """A yanked version says why, in its page and in the release history."""
        page = self.open_page(self.daemon.url + "project/holy-grail/1.0/")
        badge = page.page.locator(".project-head .badge-yanked")
        self.assertEqual(badge.inner_text(), "yanked: broken on Python 3.13")
        history = page.page.locator(".releases li").all_inner_texts()
        self.assertEqual(len(history), 3)
        self.assertIn("pre-release", history[0])
        self.assertIn("latest", history[1])
        self.assertIn("yanked: broken on Python 3.13", history[2])
        self.assert_clean(page)

    def test_hidden_project(self):
        """A project the reader may not read is not counted, listed, suggested or shown."""
        page = self.open_page(self.daemon.url)
        self.assertIn("3 projects", page.page.locator(".lead").inner_text())
        self.assertNotIn(SECRET, page.page.content())
        page.page.locator("#q").press_sequentially("recipe", delay=20)
        self.assertEqual(self.suggestions(page, some=False), [])
        page.page.locator("#q").fill("")
        page.page.locator("#q").press_sequentially("holy grail", delay=20)
        self.assertEqual(self.suggestions(page), ["Holy.Grail"])
        answer = page.page.goto(self.daemon.url + f"project/{SECRET}/")
        self.assertEqual(answer.status, 404)
        self.assert_clean(page, allow=("status of 404",))
        # Anonymous readers may read here, so nobody is asked for a password
        # until they log in through the form: then they see it.
        alice = self.open_page(self.daemon.url + "search?q=recipe")
        self.assertEqual(alice.page.locator("ol.results li > a").all_inner_texts(), [])
        alice.page.get_by_role("link", name="Log in").click()
        alice.page.fill("#user", "alice")
        alice.page.fill("#password", "alice-pw")
        alice.page.click("button[type=submit]")
        alice.page.wait_for_url(self.daemon.url)
        self.assertIn("4 projects", alice.page.locator(".lead").inner_text())
        alice.goto(self.daemon.url + "search?q=recipe")
        self.assertEqual(alice.page.locator("ol.results li > a").all_inner_texts(), [SECRET])
        self.assertEqual(alice.goto(self.daemon.url + f"project/{SECRET}/").status, 200)
        self.assert_clean(alice)

    def test_keyboard_reaches_every_link(self):
        """Tab alone reaches every link a person sees, on each kind of page."""
        for path in ("", "search?q=grail", "project/holy-grail/", "project/holy-grail/1.0/"):
            page = self.open_page(self.daemon.url + path)
            reached = [f.href for f in tab_order(page) if f.href]
            links = [f.href for f in focusable_links(page)]
            self.assertTrue(links, path)
            self.assertEqual([h for h in links if h not in reached], [], path)
            first = tab_order(page)[0]
            self.assertEqual(first.text.strip(), "Skip to the content", path)
            self.assert_clean(page)

    def test_login_form_by_keyboard(self):
        """
        The login form (issue 44) with the keyboard alone: its fields are
        labelled and reached in order, the wrong password's reason is tied
        to the name's field, and the account page's button is reached too;
        light and dark keep their contrast there too.
        """
        page = self.open_page(self.daemon.url + "login")
        reached = [(f.tag, f.id) for f in tab_order(page) if f.tag in ("input", "button")]
        self.assertEqual(reached, [("input", "user"), ("input", "password"), ("button", None)])
        for field in ("user", "password"):
            self.assertEqual(page.page.locator(f"label[for={field}]").count(), 1)
        page.page.focus("#user")
        page.page.keyboard.type("alice")
        page.page.keyboard.press("Tab")
        page.page.keyboard.type("not-it")
        page.page.keyboard.press("Enter")
        page.page.wait_for_selector("#login-error")
        self.assertEqual(page.page.get_attribute("#user", "aria-describedby"), "login-error")
        screenshot(page, "login-refused")
        page.page.fill("#password", "alice-pw")
        page.page.keyboard.press("Enter")
        page.page.wait_for_url(self.daemon.url)
        for scheme in ("light", "dark"):
            page.page.emulate_media(color_scheme=scheme)
            page.goto(self.daemon.url + "logout")
            worst = page.page.evaluate(_CONTRAST)
            self.assertGreaterEqual(worst[0], 4.5, (scheme, worst))
            screenshot(page, f"account-{scheme}")
        reached = [f.tag for f in tab_order(page) if f.tag == "button"]
        self.assertEqual(reached, ["button"])
        self.assert_clean(page, allow=("status of 401",))

    def test_contrast(self):
        """Every text on the pages, light or dark, has a contrast of 4.5:1 at least (WCAG AA)."""
        for scheme in ("light", "dark"):
            for path in ("", "search?q=grail", "project/holy-grail/", "project/holy-grail/1.0/",
                         "login"):
                page = self.open_page(self.daemon.url + path, color_scheme=scheme)
                worst = page.page.evaluate(_CONTRAST)
                self.assertGreaterEqual(worst[0], 4.5, (scheme, path, worst))

    def test_phone_width(self):
        """At a phone's width no page is wider than the screen (tables and code scroll)."""
        for path in ("", "search?q=grail", "project/holy-grail/", "project/trap/", "login"):
            page = self.open_page(self.daemon.url + path, viewport=PHONE)
            self.assertLessEqual(page.page.evaluate("document.documentElement.scrollWidth"),
                                 PHONE.width, path)

    def test_landing(self):
        """The landing page: counts, recent uploads with who and when, snippets for here."""
        page = self.open_page(self.daemon.url)
        rows = page.page.locator("table.uploads tbody tr").all_inner_texts()
        self.assertEqual(len(rows), 5)
        self.assertTrue(rows[0].startswith("Holy.Grail\t1.0\t"), rows[0])
        self.assertIn(USER, rows[1])
        snippets = page.page.locator(".snippet pre").all_inner_texts()
        self.assertIn(f"twine upload --repository-url {self.daemon.url} dist/*", snippets)
        screenshots(page, "landing")
        self.assert_clean(page)


def _luminance(css_colour):
    """Relative luminance (0 to 1) of an C{rgb(r, g, b)} colour."""
    values = [int(v) / 255 for v in css_colour[css_colour.index("(") + 1:-1].split(",")[:3]]
    linear = [v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4 for v in values]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


#: The lowest contrast of a page's visible text against the background it
#: sits on (the nearest opaque one up the tree), with the text and colours.
_CONTRAST = """() => {
  const rgb = c => c.match(/[\\d.]+/g).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map(v => v / 255)
    .map(v => v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4))
    .reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
  const background = el => {
    for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length < 4 || c[3] > 0) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  let worst = [99, "", "", ""];
  for (const el of document.querySelectorAll("body *")) {
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    const box = el.getBoundingClientRect();
    if (!own || !box.width || !box.height || el.closest(".visually-hidden")) continue;
    const fg = rgb(getComputedStyle(el).color).slice(0, 3), bg = background(el);
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    if (ratio < worst[0]) worst = [ratio, el.textContent.trim().slice(0, 40), String(fg), String(bg)];
  }
  return worst;
}"""
