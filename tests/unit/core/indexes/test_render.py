"""
Tests for L{pypid.core.indexes.render}.
"""

import json
import re
from html.parser import HTMLParser

from twisted.trial.unittest import SynchronousTestCase

from pypid.core.dists.model import FileRecord
from pypid.core.indexes import links, render
from pypid.core.indexes.render import (
    etag,
    project_html,
    project_json,
    pypi_json,
    root_html,
    root_json,
)

SHA = "a" * 64
META_SHA = "b" * 64
BLAKE = "c" * 64
MD5 = "d" * 32
WHEN = 1767225600.123456  # 2026-01-01T00:00:00.123456Z
UPLOAD_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
NASTY = '<script>"x" & \'y\'</script>'


def record(filename="holygrail-1.0-py3-none-any.whl", version="1.0", **kwargs):
    """Return a file record of the project C{holygrail}, overridable field by field."""
    values = dict(
        filename=filename,
        project="holygrail",
        name="HolyGrail",
        version=version,
        packagetype="bdist_wheel" if filename.endswith(".whl") else "sdist",
        path=f"holygrail/{filename}",
        size=1337,
        sha256=SHA,
        upload_time=WHEN,
    )
    values.update(kwargs)
    return FileRecord(**values)


class _Page(HTMLParser):
    """Collects what the tests check in a page: tags in order, anchors, metas and texts."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.decl = None
        self.tags = []
        self.anchors = []
        self.metas = []
        self.texts = {}
        self._open = None

    def handle_decl(self, decl):
        self.decl = decl

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "a":
            self.anchors.append([dict(attrs), ""])
        elif tag == "meta":
            self.metas.append(dict(attrs))
        self._open = tag

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        self._open = None

    def handle_data(self, data):
        if self._open == "a":
            self.anchors[-1][1] += data
        elif self._open is not None:
            self.texts[self._open] = self.texts.get(self._open, "") + data


def parse(body):
    """Parse a rendered page back into a L{_Page}."""
    page = _Page()
    page.feed(body.decode("utf-8"))
    page.close()
    return page


class RootHTMLTests(SynchronousTestCase):
    """
    Tests for L{root_html}.
    """

    def test_document(self):
        """The root page is an HTML5 document that announces the repository version."""
        page = parse(root_html([]))
        self.assertEqual(page.decl, "DOCTYPE html")
        self.assertEqual(page.tags[0], ("html", {"lang": "en"}))
        self.assertEqual(
            page.metas, [{"name": "pypi:repository-version", "content": "1.4"}]
        )
        self.assertEqual(page.anchors, [])

    def test_anchors(self):
        """Each project links to its normalized name with a slash, named by its display name."""
        body = root_html([("foo-bar", "Foo_Bar"), ("zope-interface", "zope.interface")])
        self.assertEqual(
            parse(body).anchors,
            [[{"href": "foo-bar/"}, "Foo_Bar"], [{"href": "zope-interface/"}, "zope.interface"]],
        )

    def test_escaped(self):
        """Names are escaped, so no markup reaches the page."""
        body = root_html([(NASTY, NASTY)])
        self.assertNotIn(b"<script>", body)
        self.assertEqual(parse(body).anchors, [[{"href": NASTY + "/"}, NASTY]])

    def test_generator(self):
        """Any iterable of pairs is accepted."""
        body = root_html((n, n.upper()) for n in ["a", "b"])
        self.assertEqual([text for _, text in parse(body).anchors], ["A", "B"])


class RootJSONTests(SynchronousTestCase):
    """
    Tests for L{root_json}.
    """

    def test_shape(self):
        """The JSON project list has the 1.1 meta and the display names."""
        body = root_json([("foo-bar", "Foo_Bar"), ("baz", "baz")])
        self.assertEqual(
            json.loads(body),
            {
                "meta": {"api-version": "1.4"},
                "projects": [{"name": "Foo_Bar"}, {"name": "baz"}],
            },
        )

    def test_compact(self):
        """The JSON carries no whitespace between tokens."""
        self.assertEqual(
            root_json([("a", "a")]),
            b'{"meta":{"api-version":"1.4"},"projects":[{"name":"a"}]}',
        )

    def test_empty(self):
        """An index without projects is an empty list."""
        self.assertEqual(json.loads(root_json(iter([])))["projects"], [])


class ProjectHTMLTests(SynchronousTestCase):
    """
    Tests for L{project_html}.
    """

    def test_document(self):
        """The page is HTML5 with the repository version, a title and a heading."""
        page = parse(project_html("holygrail", []))
        self.assertEqual(page.decl, "DOCTYPE html")
        self.assertEqual(page.tags[0], ("html", {"lang": "en"}))
        self.assertEqual(
            page.metas, [{"name": "pypi:repository-version", "content": "1.4"}]
        )
        self.assertEqual(page.texts["title"], "Links for holygrail")
        self.assertEqual(page.texts["h1"], "Links for holygrail")

    def test_plain_anchor(self):
        """A plain file has its hash fragment, size and upload time, and nothing optional."""
        page = parse(project_html("holygrail", [(record(), "../../files/holygrail-1.0-py3-none-any.whl")]))
        self.assertEqual(
            page.anchors,
            [
                [
                    {
                        "href": "../../files/holygrail-1.0-py3-none-any.whl#sha256=" + SHA,
                        "data-size": "1337",
                        "data-upload-time": "2026-01-01T00:00:00.123456Z",
                    },
                    "holygrail-1.0-py3-none-any.whl",
                ]
            ],
        )

    def test_all_attributes(self):
        """A yanked file with metadata and Requires-Python carries every attribute."""
        r = record(requires_python=">=3.8", yanked="broken", metadata_sha256=META_SHA)
        body = project_html("holygrail", [(r, "https://files.example/h.whl")])
        self.assertIn(b'data-requires-python="&gt;=3.8"', body)
        [[attrs, text]] = parse(body).anchors
        self.assertEqual(
            attrs,
            {
                "href": "https://files.example/h.whl#sha256=" + SHA,
                "data-requires-python": ">=3.8",
                "data-yanked": "broken",
                "data-core-metadata": "sha256=" + META_SHA,
                "data-dist-info-metadata": "sha256=" + META_SHA,
                "data-size": "1337",
                "data-upload-time": "2026-01-01T00:00:00.123456Z",
            },
        )
        self.assertEqual(text, "holygrail-1.0-py3-none-any.whl")

    def test_yanked_without_reason(self):
        """A file yanked without a reason has an empty C{data-yanked}."""
        body = project_html("holygrail", [(record(yanked=""), "h.whl")])
        self.assertIn(b'data-yanked=""', body)
        [[attrs, _]] = parse(body).anchors
        self.assertEqual(attrs["data-yanked"], "")

    def test_not_yanked(self):
        """A file that is not yanked has no C{data-yanked} at all."""
        body = project_html("holygrail", [(record(), "h.whl")])
        self.assertNotIn(b"data-yanked", body)
        self.assertNotIn(b"data-requires-python", body)
        self.assertNotIn(b"metadata", body)

    def test_escaping(self):
        """C{<>&"} in Requires-Python, yank reasons, URLs and filenames are escaped."""
        r = record(filename=NASTY, requires_python=NASTY, yanked=NASTY)
        body = project_html("holygrail", [(r, NASTY)])
        self.assertNotIn(b"<script>", body)
        self.assertNotIn(b'"x"', body)
        [[attrs, text]] = parse(body).anchors
        self.assertEqual(attrs["href"], NASTY + "#sha256=" + SHA)
        self.assertEqual(attrs["data-requires-python"], NASTY)
        self.assertEqual(attrs["data-yanked"], NASTY)
        self.assertEqual(text, NASTY)

    def test_order_and_separators(self):
        """Files appear in the order given, each anchor followed by C{<br />}."""
        files = [
            (record(filename=f"holygrail-{v}.tar.gz", version=v), f"holygrail-{v}.tar.gz")
            for v in ["2.0", "1.0", "1.5"]
        ]
        body = project_html("holygrail", files)
        self.assertEqual(
            [text for _, text in parse(body).anchors],
            ["holygrail-2.0.tar.gz", "holygrail-1.0.tar.gz", "holygrail-1.5.tar.gz"],
        )
        self.assertEqual(body.count(b"</a><br />"), 3)

    def test_utf8(self):
        """Non-ASCII text is encoded as UTF-8."""
        body = project_html("holygrail", [(record(yanked="caf\u00e9"), "h.whl")])
        self.assertIn("caf\u00e9".encode("utf-8"), body)


class ProjectJSONTests(SynchronousTestCase):
    """
    Tests for L{project_json}.
    """

    def render(self, *records, versions=("1.0",)):
        """Render C{records}, each at C{files/<filename>}, and parse the JSON back."""
        files = [(r, "files/" + r.filename) for r in records]
        return json.loads(project_json("holygrail", files, list(versions)))

    def test_shape(self):
        """The page has the 1.1 meta, the normalized name, the versions and the files."""
        page = self.render(record(), versions=["1.0", "2.0"])
        self.assertEqual(sorted(page), ["files", "meta", "name", "versions"])
        self.assertEqual(page["meta"], {"api-version": "1.4"})
        self.assertEqual(page["name"], "holygrail")
        self.assertEqual(page["versions"], ["1.0", "2.0"])

    def test_plain_file(self):
        """A plain file has every mandatory field with the right types, and no requires-python."""
        [f] = self.render(record())["files"]
        self.assertEqual(
            f,
            {
                "filename": "holygrail-1.0-py3-none-any.whl",
                "url": "files/holygrail-1.0-py3-none-any.whl",
                "hashes": {"sha256": SHA},
                "size": 1337,
                "upload-time": "2026-01-01T00:00:00.123456Z",
                "yanked": False,
                "core-metadata": False,
                "dist-info-metadata": False,
                "provenance": None,
            },
        )
        self.assertIs(type(f["size"]), int)
        self.assertRegex(f["upload-time"], UPLOAD_TIME)

    def test_hashes_only_hashlib_names(self):
        """Only sha256 is listed in hashes, even when other digests are known."""
        [f] = self.render(record(md5=MD5, blake2_256=BLAKE))["files"]
        self.assertEqual(f["hashes"], {"sha256": SHA})

    def test_full_file(self):
        """Requires-Python (unescaped) and metadata hashes appear when set."""
        [f] = self.render(record(requires_python=">=3.8", metadata_sha256=META_SHA))["files"]
        self.assertEqual(f["requires-python"], ">=3.8")
        self.assertEqual(f["core-metadata"], {"sha256": META_SHA})
        self.assertEqual(f["dist-info-metadata"], {"sha256": META_SHA})

    def test_yanked_variants(self):
        """Yanked is false, true for an empty reason, or the reason."""
        files = self.render(record(), record(yanked=""), record(yanked="bad build"))["files"]
        self.assertEqual([f["yanked"] for f in files], [False, True, "bad build"])

    def test_upload_time_whole_second(self):
        """An upload time on a whole second still matches PEP 700's format."""
        [f] = self.render(record(upload_time=0))["files"]
        self.assertEqual(f["upload-time"], "1970-01-01T00:00:00.000000Z")
        self.assertRegex(f["upload-time"], UPLOAD_TIME)

    def test_compact_utf8(self):
        """The JSON is compact and non-ASCII text is sent as UTF-8, not escaped."""
        body = project_json("holygrail", [(record(yanked="caf\u00e9"), "h.whl")], ["1.0"])
        self.assertNotIn(b", ", body)
        self.assertNotIn(b'": ', body)
        self.assertIn("caf\u00e9".encode("utf-8"), body)

    def test_upload_time_memo_bounded(self):
        """Rendering many distinct upload times keeps the time memo bounded and the times right."""
        limit = render._ISO_MEMO_LIMIT
        for i in range(limit + 5):
            render._upload_time_iso(record(upload_time=i).upload_time)
        self.assertLessEqual(len(render._iso_memo), limit)
        [f] = self.render(record(upload_time=86400.5))["files"]
        self.assertEqual(f["upload-time"], "1970-01-02T00:00:00.500000Z")

    def test_lone_surrogate(self):
        """Text that UTF-8 cannot encode is replaced instead of failing the page."""
        body = project_json("holygrail", [(record(yanked="\udcff"), "h.whl")], ["1.0"])
        self.assertEqual(json.loads(body)["files"][0]["yanked"], "?")


PROVENANCE = "bb" * 32


class ProvenanceLinkTests(SynchronousTestCase):
    """
    PEP 740's links (simple API 1.3): JSON C{provenance} (always, a URL or
    null) and HTML C{data-provenance} (only with one), fully qualified, from
    L{links.provenance_url_for}.
    """

    def test_json_link(self):
        """A file with a provenance links it absolutely; one without says null."""
        signed = record(provenance_sha256=PROVENANCE)
        plain = record("holygrail-1.0.tar.gz")
        link = links.provenance_url_for("https://pypi.internal.example/staging/")
        page = json.loads(project_json("holygrail", [(signed, "a"), (plain, "b")], ["1.0"],
                                       provenance_url=link))
        self.assertEqual(
            [f["provenance"] for f in page["files"]],
            ["https://pypi.internal.example/staging/integrity/holygrail/1.0/"
             "holygrail-1.0-py3-none-any.whl/provenance", None])

    def test_html_link(self):
        """The anchor carries data-provenance (escaped, quoted) only when there is one."""
        signed = record("holygrail-1.0+local-py3-none-any.whl", version="1.0+local",
                        provenance_sha256=PROVENANCE)
        plain = record("holygrail-1.0.tar.gz")
        link = links.provenance_url_for("https://pypi.internal.example/")
        page = parse(project_html("holygrail", [(signed, "a"), (plain, "b")],
                                  provenance_url=link))
        self.assertEqual(
            [attrs.get("data-provenance") for attrs, _ in page.anchors],
            ["https://pypi.internal.example/integrity/holygrail/1.0%2Blocal/"
             "holygrail-1.0%2Blocal-py3-none-any.whl/provenance", None])

    def test_no_base_url_no_link(self):
        """Without a base URL no link is given (PEP 740 wants it fully qualified)."""
        signed = record(provenance_sha256=PROVENANCE)
        link = links.provenance_url_for(None)
        self.assertIsNone(link(signed))
        [f] = json.loads(project_json("holygrail", [(signed, "a")], ["1.0"],
                                      provenance_url=link))["files"]
        self.assertIsNone(f["provenance"])
        self.assertNotIn(b"data-provenance", project_html("holygrail", [(signed, "a")],
                                                          provenance_url=link))


class PypiJSONTests(SynchronousTestCase):
    """
    Tests for L{pypi_json}.
    """

    def releases(self):
        """Return two releases: 1.0 (an sdist and a wheel) and 2.0 (a wheel)."""
        return {
            "1.0": [
                (record(filename="holygrail-1.0.tar.gz", md5=MD5, blake2_256=BLAKE),
                 "https://x/files/holygrail-1.0.tar.gz"),
                (record(requires_python=">=3.8", metadata_sha256=META_SHA),
                 "https://x/files/holygrail-1.0-py3-none-any.whl"),
            ],
            "2.0": [
                (record(filename="holygrail-2.0-py2.py3-none-any.whl", version="2.0"),
                 "https://x/files/holygrail-2.0-py2.py3-none-any.whl"),
            ],
        }

    def render(self, **kwargs):
        """Render the legacy API for holygrail 2.0 and parse it back."""
        arguments = dict(
            project_display="HolyGrail",
            project="holygrail",
            info={"summary": "Seek it", "requires_dist": ["coconut>=1"], "name": "holy_grail"},
            releases=self.releases(),
            latest_version="2.0",
            last_serial=42,
            base_url="https://pypi.example",
        )
        arguments.update(kwargs)
        return json.loads(pypi_json(**arguments))

    def test_shape(self):
        """The project endpoint has info, releases, urls, last_serial and vulnerabilities."""
        page = self.render()
        self.assertEqual(
            sorted(page),
            ["info", "last_serial", "ownership", "releases", "urls", "vulnerabilities"],
        )
        self.assertEqual(page["last_serial"], 42)
        self.assertEqual(page["vulnerabilities"], [])
        self.assertEqual(list(page["releases"]), ["1.0", "2.0"])
        self.assertEqual(len(page["releases"]["1.0"]), 2)
        self.assertEqual(page["urls"], page["releases"]["2.0"])

    def test_version_endpoint(self):
        """Without releases, the version endpoint renders the requested version."""
        page = self.render(latest_version="1.0", include_releases=False)
        self.assertNotIn("releases", page)
        self.assertEqual(page["info"]["version"], "1.0")
        self.assertEqual(
            [f["filename"] for f in page["urls"]],
            ["holygrail-1.0.tar.gz", "holygrail-1.0-py3-none-any.whl"],
        )
        self.assertEqual(
            page["info"]["release_url"], "https://pypi.example/project/holygrail/1.0/"
        )

    def test_info(self):
        """Info merges the caller's metadata with the computed fields, which win."""
        info = self.render()["info"]
        self.assertEqual(info["name"], "HolyGrail")
        self.assertEqual(info["version"], "2.0")
        self.assertEqual(info["summary"], "Seek it")
        self.assertEqual(info["requires_dist"], ["coconut>=1"])
        self.assertEqual(info["package_url"], "https://pypi.example/project/holygrail/")
        self.assertEqual(info["project_url"], "https://pypi.example/project/holygrail/")
        self.assertEqual(info["release_url"], "https://pypi.example/project/holygrail/2.0/")
        self.assertEqual(
            info["downloads"], {"last_day": -1, "last_month": -1, "last_week": -1}
        )
        self.assertIs(info["yanked"], False)
        self.assertIsNone(info["yanked_reason"])
        self.assertIsNone(info["docs_url"])
        self.assertIsNone(info["bugtrack_url"])
        self.assertIsNone(info["description"])
        self.assertEqual(info["classifiers"], [])

    def test_info_not_shared(self):
        """The default classifiers list is fresh in every response."""
        page = json.loads(pypi_json("a", "a", {}, {"1": []}, "1", 1))
        self.assertEqual(page["info"]["classifiers"], [])
        self.assertEqual(page["urls"], [])
        self.assertEqual(page["info"]["package_url"], "/project/a/")

    def test_sdist_entry(self):
        """An sdist's entry has every legacy field, with all three digests when known."""
        f = self.render()["releases"]["1.0"][0]
        self.assertEqual(
            f,
            {
                "comment_text": "",
                "core-metadata": False,
                "digests": {"md5": MD5, "sha256": SHA, "blake2b_256": BLAKE},
                "downloads": -1,
                "filename": "holygrail-1.0.tar.gz",
                "has_sig": False,
                "md5_digest": MD5,
                "packagetype": "sdist",
                "python_version": "source",
                "requires_python": None,
                "size": 1337,
                "upload_time": "2026-01-01T00:00:00",
                "upload_time_iso_8601": "2026-01-01T00:00:00.123456Z",
                "url": "https://x/files/holygrail-1.0.tar.gz",
                "yanked": False,
                "yanked_reason": None,
            },
        )

    def test_wheel_entry(self):
        """A wheel's entry has its python tags, Requires-Python and metadata hash."""
        releases = self.render()["releases"]
        f = releases["1.0"][1]
        self.assertEqual(f["packagetype"], "bdist_wheel")
        self.assertEqual(f["python_version"], "py3")
        self.assertEqual(f["requires_python"], ">=3.8")
        self.assertEqual(f["core-metadata"], {"sha256": META_SHA})
        self.assertEqual(f["digests"], {"sha256": SHA})
        self.assertIsNone(f["md5_digest"])
        self.assertEqual(releases["2.0"][0]["python_version"], "py2.py3")

    def test_yanked_release(self):
        """A release whose files are all yanked is yanked, with the first reason given."""
        releases = {
            "1.0": [
                (record(filename="holygrail-1.0.tar.gz", yanked=""), "a"),
                (record(yanked="oops"), "b"),
            ]
        }
        page = self.render(releases=releases, latest_version="1.0")
        self.assertIs(page["info"]["yanked"], True)
        self.assertEqual(page["info"]["yanked_reason"], "oops")
        self.assertEqual(
            [(f["yanked"], f["yanked_reason"]) for f in page["urls"]],
            [(True, None), (True, "oops")],
        )

    def test_partly_yanked_release(self):
        """A release with one file still available is not yanked."""
        releases = {
            "1.0": [
                (record(filename="holygrail-1.0.tar.gz", yanked="x"), "a"),
                (record(), "b"),
            ]
        }
        page = self.render(releases=releases, latest_version="1.0")
        self.assertIs(page["info"]["yanked"], False)
        self.assertIsNone(page["info"]["yanked_reason"])


class ETagTests(SynchronousTestCase):
    """
    Tests for L{etag}.
    """

    def test_form(self):
        """An ETag is a strong, quoted tag of 32 hex digits."""
        self.assertRegex(etag(b"x").decode("ascii"), r'^"[0-9a-f]{32}"$')

    def test_stable(self):
        """The same body always has the same ETag."""
        self.assertEqual(etag(b"body"), etag(b"bo" + b"dy"))

    def test_different(self):
        """Different bodies have different ETags."""
        self.assertNotEqual(etag(b"body"), etag(b"body "))
        self.assertNotEqual(
            etag(project_html("holygrail", [])), etag(project_html("holygrai1", []))
        )
