"""
Tests for L{pypid.upstream.parser}: reading an upstream project page, in its
PEP 691 JSON and PEP 503 HTML forms, into checked values, and the cooldown
that hides recent uploads.
"""

import datetime
import hashlib
import json

from twisted.trial.unittest import SynchronousTestCase

from pypid.core.dists.model import FileRecord, format_upload_time
from pypid.core.dists.names import SDIST, WHEEL
from pypid.core.indexes.render import project_html, project_json
from pypid.upstream.page_model import (
    UpstreamFile,
    UpstreamPage,
    UpstreamPageError,
    effective_files,
)
from pypid.upstream.parser import parse_page
from tests.harness.upstream_pages import (
    FILES,
    HTML_TYPE,
    JSON_TYPE,
    PAGE_URL,
    PROJECT,
    SHA,
    SHA_WHEEL,
    WHEEL_NAME,
    anchor,
    html_body,
    json_body,
    json_file,
)

SDIST_NAME = "sample_project-1.0.tar.gz"
OLD_WHEEL = "sample_project-0.9-py3-none-any.whl"

SHA_SDIST = hashlib.sha256(b"the 1.0 sdist").hexdigest()
SHA_OLD = hashlib.sha256(b"the 0.9 wheel").hexdigest()
SHA_META = hashlib.sha256(b"Metadata-Version: 2.1\n").hexdigest()
UPLOAD_TIME = "2025-01-02T03:04:05.123456Z"
UPLOADED = datetime.datetime(
    2025, 1, 2, 3, 4, 5, 123456, tzinfo=datetime.UTC
).timestamp()


def parse_json(files, project=PROJECT, **kwargs):
    """Parse a JSON page holding C{files}."""
    return parse_page(json_body(files, **kwargs), JSON_TYPE, PAGE_URL, project)


def parse_html(anchors, project=PROJECT, content_type=HTML_TYPE, **kwargs):
    """Parse an HTML page holding C{anchors}."""
    return parse_page(html_body(anchors, **kwargs), content_type, PAGE_URL, project)


class _Helpers:
    """Assertions shared by the test cases."""

    def only_file(self, page):
        """Return the page's single file, failing if it has skipped entries."""
        self.assertEqual(page.skipped, ())
        self.assertEqual(len(page.files), 1)
        return page.files[0]

    def only_skip(self, page):
        """Return the page's single skipped entry, failing if any file was kept."""
        self.assertEqual(page.files, ())
        self.assertEqual(len(page.skipped), 1)
        return page.skipped[0]


# The same page, with every field set somewhere, in both forms.
SAMPLE_JSON = json.dumps(
    {
        "meta": {"api-version": "1.4", "_last-serial": 27182818},
        "name": "sample-project",
        "versions": ["0.9", "1.0"],
        "files": [
            {
                "filename": OLD_WHEEL,
                "url": FILES + "ab/cd/" + OLD_WHEEL,
                "hashes": {"sha256": SHA_OLD, "blake2b_256": "00" * 32},
                "requires-python": ">=3.7",
                "size": 2048,
                "upload-time": "2024-06-01T10:00:00.000000Z",
                "yanked": "broken entry point",
                "core-metadata": False,
                "dist-info-metadata": False,
            },
            {
                "filename": WHEEL_NAME,
                "url": FILES + "ef/01/" + WHEEL_NAME,
                "hashes": {"sha256": SHA_WHEEL},
                "requires-python": "<4,>=3.8",
                "size": 4096,
                "upload-time": UPLOAD_TIME,
                "yanked": False,
                "core-metadata": {"sha256": SHA_META},
                "dist-info-metadata": {"sha256": SHA_META},
                "provenance": None,
            },
            {
                "filename": SDIST_NAME,
                "url": FILES + "23/45/" + SDIST_NAME,
                "hashes": {"sha256": SHA_SDIST},
                "requires-python": "<4,>=3.8",
                "size": 1024,
                "upload-time": UPLOAD_TIME,
                "yanked": True,
                "core-metadata": True,
            },
        ],
    }
).encode("utf-8")

SAMPLE_HTML = html_body(
    anchor(
        f"{FILES}ab/cd/{OLD_WHEEL}#sha256={SHA_OLD}",
        ' data-requires-python="&gt;=3.7" data-yanked="broken entry point"'
        ' data-size="2048" data-upload-time="2024-06-01T10:00:00.000000Z"',
    )
    + anchor(
        f"{FILES}ef/01/{WHEEL_NAME}#sha256={SHA_WHEEL}",
        ' data-requires-python="&lt;4,&gt;=3.8"'
        f' data-dist-info-metadata="sha256={SHA_META}"'
        f' data-core-metadata="sha256={SHA_META}"'
        f' data-size="4096" data-upload-time="{UPLOAD_TIME}"',
    )
    + anchor(
        f"{FILES}23/45/{SDIST_NAME}#sha256={SHA_SDIST}",
        ' data-requires-python="&lt;4,&gt;=3.8" data-yanked=""'
        ' data-core-metadata="true"'
        f' data-size="1024" data-upload-time="{UPLOAD_TIME}"',
    ),
    tail="<!--SERIAL 27182818-->\n",
)


class EquivalenceTests(SynchronousTestCase):
    """The two serializations of one page give one result."""

    def test_json_and_html_equal(self):
        """A page read from JSON equals the same page read from HTML."""
        from_json = parse_page(SAMPLE_JSON, JSON_TYPE, PAGE_URL, PROJECT)
        from_html = parse_page(SAMPLE_HTML, HTML_TYPE, PAGE_URL, PROJECT)
        self.assertEqual(from_json, from_html)

    def test_sample_values(self):
        """Every field of the sample page arrives as documented."""
        page = parse_page(SAMPLE_JSON, JSON_TYPE, PAGE_URL, PROJECT)
        self.assertEqual(page.project, PROJECT)
        self.assertEqual(page.name, "sample-project")
        self.assertEqual(page.last_serial, 27182818)
        self.assertEqual(page.skipped, ())
        self.assertEqual(
            page.files,
            (
                UpstreamFile(
                    filename=OLD_WHEEL,
                    url=FILES + "ab/cd/" + OLD_WHEEL,
                    sha256=SHA_OLD,
                    project=PROJECT,
                    version="0.9",
                    packagetype=WHEEL,
                    requires_python=">=3.7",
                    yanked="broken entry point",
                    metadata_sha256=None,
                    size=2048,
                    upload_time=datetime.datetime(
                        2024, 6, 1, 10, tzinfo=datetime.UTC
                    ).timestamp(),
                ),
                UpstreamFile(
                    filename=WHEEL_NAME,
                    url=FILES + "ef/01/" + WHEEL_NAME,
                    sha256=SHA_WHEEL,
                    project=PROJECT,
                    version="1.0",
                    packagetype=WHEEL,
                    requires_python="<4,>=3.8",
                    yanked=None,
                    metadata_sha256=SHA_META,
                    size=4096,
                    upload_time=UPLOADED,
                ),
                UpstreamFile(
                    filename=SDIST_NAME,
                    url=FILES + "23/45/" + SDIST_NAME,
                    sha256=SHA_SDIST,
                    project=PROJECT,
                    version="1.0",
                    packagetype=SDIST,
                    requires_python="<4,>=3.8",
                    yanked="",
                    metadata_sha256="",
                    size=1024,
                    upload_time=UPLOADED,
                ),
            ),
        )

    def test_files_sorted_by_filename(self):
        """Files come out sorted by filename, whatever order the page lists them in."""
        files = [json_file(SDIST_NAME), json_file(WHEEL_NAME), json_file(OLD_WHEEL)]
        page = parse_json(files)
        self.assertEqual(
            [f.filename for f in page.files], [OLD_WHEEL, WHEEL_NAME, SDIST_NAME]
        )

    def test_pypid_as_upstream(self):
        """Pages rendered by pypid itself read back into the records they were made from."""
        records = [
            FileRecord(
                filename=WHEEL_NAME, project=PROJECT, name="Sample.Project",
                version="1.0", packagetype=WHEEL, path="x", size=4096,
                sha256=SHA_WHEEL, upload_time=UPLOADED,
                requires_python="<4,>=3.8", metadata_sha256=SHA_META,
            ),
            FileRecord(
                filename=SDIST_NAME, project=PROJECT, name="Sample.Project",
                version="1.0", packagetype=SDIST, path="y", size=1024,
                sha256=SHA_SDIST, upload_time=UPLOADED, yanked="",
            ),
            FileRecord(
                filename=OLD_WHEEL, project=PROJECT, name="Sample.Project",
                version="0.9", packagetype=WHEEL, path="z", size=2048,
                sha256=SHA_OLD, upload_time=UPLOADED, yanked="<bad> & \"worse\"",
            ),
        ]
        files = [(r, f"../../files/{r.filename}") for r in records]
        from_html = parse_page(
            project_html(PROJECT, files), HTML_TYPE, PAGE_URL, PROJECT
        )
        from_json = parse_page(
            project_json(PROJECT, files, ["0.9", "1.0"]), JSON_TYPE, PAGE_URL, PROJECT
        )
        self.assertEqual(from_html, from_json)
        self.assertEqual(from_html.skipped, ())
        for upstream, record in zip(from_html.files, sorted(records, key=lambda r: r.filename), strict=True):
            self.assertEqual(
                (upstream.filename, upstream.url, upstream.sha256, upstream.size,
                 upstream.requires_python, upstream.yanked, upstream.metadata_sha256,
                 upstream.upload_time),
                (record.filename, "https://upstream.example/files/" + record.filename,
                 record.sha256, record.size, record.requires_python, record.yanked,
                 record.metadata_sha256, record.upload_time),
            )


class ContentTypeTests(SynchronousTestCase):
    """The content type picks the form, and only the simple API's types are read."""

    def test_json_types(self):
        """The PEP 691 JSON type and plain C{application/json} are read as JSON."""
        for content_type in (
            JSON_TYPE,
            "application/json",
            "Application/VND.PyPI.Simple.v1+JSON; charset=utf-8",
        ):
            page = parse_page(SAMPLE_JSON, content_type, PAGE_URL, PROJECT)
            self.assertEqual(len(page.files), 3, content_type)

    def test_html_types(self):
        """C{text/html} and the v1 HTML type are read as HTML, parameters or not."""
        for content_type in (
            "text/html",
            "text/html; charset=utf-8",
            "TEXT/HTML;charset=UTF-8",
            "application/vnd.pypi.simple.v1+html",
        ):
            page = parse_page(SAMPLE_HTML, content_type, PAGE_URL, PROJECT)
            self.assertEqual(len(page.files), 3, content_type)

    def test_unsupported_type(self):
        """Any other type is refused with an error naming it."""
        for content_type in (
            "text/plain",
            "application/octet-stream",
            "application/vnd.pypi.simple.latest+json",
            "text_html",
            "",
        ):
            e = self.assertRaises(
                UpstreamPageError, parse_page, SAMPLE_HTML, content_type, PAGE_URL, PROJECT
            )
            self.assertIn(repr(content_type), str(e))

    def test_long_type_cut_short(self):
        """An absurd content type is quoted only in part, as the upstream chose it."""
        e = self.assertRaises(
            UpstreamPageError, parse_page, SAMPLE_HTML, "x/" + "y" * 5000, PAGE_URL, PROJECT
        )
        self.assertLess(len(str(e)), 200)

    def test_error_is_value_error(self):
        """L{UpstreamPageError} is a L{ValueError}, as bad input is."""
        self.assertTrue(issubclass(UpstreamPageError, ValueError))

    def test_html_charset(self):
        """An HTML page's charset parameter is used to decode it."""
        body = SAMPLE_HTML.replace(b"sample-project</title>", b"sample-project\xe9</title>")
        page = parse_page(body, "text/html; charset=latin-1", PAGE_URL, PROJECT)
        self.assertEqual(len(page.files), 3)
        self.assertRaises(UpstreamPageError, parse_page, body, HTML_TYPE, PAGE_URL, PROJECT)


class MalformedTests(SynchronousTestCase):
    """A page that cannot be read at all raises L{UpstreamPageError}."""

    def assertMalformed(self, body, content_type, reason):
        """Parsing C{body} raises an error whose message contains C{reason}."""
        e = self.assertRaises(UpstreamPageError, parse_page, body, content_type, PAGE_URL, PROJECT)
        self.assertIn(reason, str(e))

    def test_invalid_json(self):
        """A body that is not JSON is refused."""
        self.assertMalformed(b'{"meta": ', JSON_TYPE, "not valid JSON")
        self.assertMalformed(b"<!DOCTYPE html>", JSON_TYPE, "not valid JSON")

    def test_json_not_utf8(self):
        """A JSON body that is not valid Unicode is refused."""
        self.assertMalformed(b'{"name": "\xff"}', JSON_TYPE, "not valid JSON")

    def test_json_too_deep(self):
        """Absurdly nested JSON is refused, not a crash."""
        self.assertMalformed(b"[" * 200000, JSON_TYPE, "not valid JSON")

    def test_json_not_object(self):
        """A JSON page must be an object."""
        self.assertMalformed(b"[]", JSON_TYPE, "not a JSON object")

    def test_json_no_meta(self):
        """A JSON page without C{meta.api-version} is refused."""
        self.assertMalformed(b'{"name": "sample-project", "files": []}', JSON_TYPE,
                             "no meta.api-version")
        self.assertMalformed(b'{"meta": {}, "files": []}', JSON_TYPE, "no meta.api-version")
        self.assertMalformed(b'{"meta": "1.0", "files": []}', JSON_TYPE, "no meta.api-version")

    def test_json_no_files(self):
        """A JSON page without a C{files} list is refused."""
        self.assertMalformed(
            json.dumps({"meta": {"api-version": "1.0"}, "name": PROJECT}).encode(),
            JSON_TYPE, "no files list",
        )
        self.assertMalformed(
            json.dumps({"meta": {"api-version": "1.0"}, "files": {}}).encode(),
            JSON_TYPE, "no files list",
        )

    def test_json_other_project(self):
        """A JSON page whose name is another project's is refused as a whole."""
        self.assertMalformed(json_body([], name="other-project"), JSON_TYPE,
                             "is for project 'other-project', not 'sample-project'")

    def test_json_name_not_string(self):
        """A JSON page whose name is not a string is refused."""
        self.assertMalformed(json_body([], name=7), JSON_TYPE, "name is not a string")

    def test_html_not_utf8(self):
        """An HTML page that does not decode in its charset is refused."""
        self.assertMalformed(b"<html>\xff\xfe</html>", HTML_TYPE, "not valid utf-8")

    def test_html_unknown_charset(self):
        """An HTML page in a charset Python does not know is refused."""
        self.assertMalformed(SAMPLE_HTML, "text/html; charset=klingon", "unknown charset")

    def test_html_broken_markup(self):
        """Markup that stops html.parser is refused, not a crash."""
        self.assertMalformed(b"<html><![foo[ x ]]></html>", HTML_TYPE, "not valid HTML")


class ApiVersionTests(SynchronousTestCase):
    """Only major version 1 of the simple API is read (PEP 629)."""

    def test_json_minor_versions(self):
        """Any 1.x JSON page is read."""
        for version in ("1.0", "1.1", "1.4", "1.99", "1"):
            page = parse_json([json_file()], meta={"api-version": version})
            self.assertEqual(len(page.files), 1, version)

    def test_json_other_major(self):
        """A JSON page of another major version is refused."""
        for version in ("2.0", "0.9", "10.1"):
            e = self.assertRaises(UpstreamPageError, parse_json, [],
                                  meta={"api-version": version})
            self.assertIn("only major version 1", str(e))

    def test_json_malformed_version(self):
        """A JSON api-version that is not a version string is refused."""
        for version in (1.0, 1, "one", "", None, "v1"):
            e = self.assertRaises(UpstreamPageError, parse_json, [],
                                  meta={"api-version": version})
            self.assertIn("invalid api-version", str(e))

    def test_html_other_major(self):
        """An HTML page announcing another major version is refused."""
        body = SAMPLE_HTML.replace(b'content="1.4"', b'content="2.0"')
        e = self.assertRaises(UpstreamPageError, parse_page, body, HTML_TYPE, PAGE_URL, PROJECT)
        self.assertIn("pypi:repository-version", str(e))

    def test_html_malformed_version(self):
        """An HTML repository version that is not a version string is refused."""
        body = SAMPLE_HTML.replace(b'content="1.4"', b'content="latest"')
        self.assertRaises(UpstreamPageError, parse_page, body, HTML_TYPE, PAGE_URL, PROJECT)

    def test_html_without_version(self):
        """An HTML page without the meta tag is read as 1.0, as PEP 629 says."""
        body = SAMPLE_HTML.replace(
            b'    <meta name="pypi:repository-version" content="1.4">\n', b""
        )
        self.assertNotEqual(body, SAMPLE_HTML)
        page = parse_page(body, HTML_TYPE, PAGE_URL, PROJECT)
        self.assertEqual(len(page.files), 3)


class URLTests(_Helpers, SynchronousTestCase):
    """File URLs come out absolute, http(s), and without fragment."""

    def test_absolute(self):
        """An absolute URL is kept as it is."""
        url = FILES + "ab/cd/" + WHEEL_NAME
        self.assertEqual(self.only_file(parse_json([json_file(url=url)])).url, url)
        self.assertEqual(
            self.only_file(parse_html(anchor(f"{url}#sha256={SHA}"))).url, url
        )

    def test_relative(self):
        """Relative URLs are resolved against the page URL, in both forms."""
        expected = "https://upstream.example/packages/" + WHEEL_NAME
        ref = "../../packages/" + WHEEL_NAME
        self.assertEqual(self.only_file(parse_json([json_file(url=ref)])).url, expected)
        self.assertEqual(
            self.only_file(parse_html(anchor(f"{ref}#sha256={SHA}"))).url, expected
        )

    def test_relative_same_directory(self):
        """A bare filename resolves inside the page's own directory."""
        self.assertEqual(
            self.only_file(parse_html(anchor(f"{WHEEL_NAME}#sha256={SHA}"))).url,
            PAGE_URL + WHEEL_NAME,
        )

    def test_root_relative(self):
        """A root-relative URL keeps the page's scheme and host."""
        self.assertEqual(
            self.only_file(parse_json([json_file(url="/packages/" + WHEEL_NAME)])).url,
            "https://upstream.example/packages/" + WHEEL_NAME,
        )

    def test_scheme_relative(self):
        """A scheme-relative URL takes the page's scheme."""
        url = "//files.upstream.example/packages/" + WHEEL_NAME
        self.assertEqual(
            self.only_file(parse_json([json_file(url=url)])).url, "https:" + url
        )

    def test_http(self):
        """Plain http URLs are accepted: the host list is the cache's policy, not the parser's."""
        url = "http://files.upstream.example/packages/" + WHEEL_NAME
        self.assertEqual(self.only_file(parse_json([json_file(url=url)])).url, url)

    def test_fragment_removed(self):
        """The hash fragment is not part of the URL, in JSON as in HTML."""
        url = FILES + WHEEL_NAME
        self.assertEqual(
            self.only_file(parse_json([json_file(url=f"{url}#sha256={SHA}")])).url, url
        )
        self.assertEqual(self.only_file(parse_html(anchor(f"{url}#sha256={SHA}"))).url, url)

    def test_query_kept_out_of_filename(self):
        """A query string stays in the URL but not in the filename."""
        url = f"{FILES}{WHEEL_NAME}?token=abc"
        f = self.only_file(parse_html(anchor(f"{url}#sha256={SHA}", text=WHEEL_NAME)))
        self.assertEqual((f.filename, f.url), (WHEEL_NAME, url))

    def test_percent_decoded_filename(self):
        """The filename is the last path segment, percent-decoded."""
        name = "sample_project-1.0+cpu-py3-none-any.whl"
        f = self.only_file(parse_html(anchor(
            f"{FILES}sample_project-1.0%2Bcpu-py3-none-any.whl#sha256={SHA}", text=name
        )))
        self.assertEqual((f.filename, f.version), (name, "1.0+cpu"))
        self.assertEqual(f.url, f"{FILES}sample_project-1.0%2Bcpu-py3-none-any.whl")

    def test_anchor_text_ignored(self):
        """The anchor's text does not name the file; the href does, as uv reads it."""
        f = self.only_file(parse_html(anchor(f"{FILES}{WHEEL_NAME}#sha256={SHA}",
                                             text="click here")))
        self.assertEqual(f.filename, WHEEL_NAME)

    def test_surrounding_whitespace(self):
        """Whitespace around an href is ignored, as browsers and pip do."""
        f = self.only_file(parse_html(anchor(f"  {FILES}{WHEEL_NAME}#sha256={SHA}\n",
                                             text=WHEEL_NAME)))
        self.assertEqual(f.url, FILES + WHEEL_NAME)

    def test_base_href_absolute(self):
        """C{<base href>} on another host is where relative hrefs point."""
        page = parse_html(
            anchor(f"ab/{WHEEL_NAME}#sha256={SHA}"),
            head=f'    <base href="{FILES}">\n',
        )
        self.assertEqual(self.only_file(page).url, f"{FILES}ab/{WHEEL_NAME}")

    def test_base_href_relative(self):
        """A relative C{<base href>} is itself resolved against the page URL."""
        page = parse_html(
            anchor(f"{WHEEL_NAME}#sha256={SHA}"),
            head='    <base href="../../files/">\n',
        )
        self.assertEqual(
            self.only_file(page).url, "https://upstream.example/files/" + WHEEL_NAME
        )

    def test_first_base_wins(self):
        """Only the first C{<base href>} counts, as in a browser."""
        page = parse_html(
            anchor(f"{WHEEL_NAME}#sha256={SHA}"),
            head=f'    <base href="{FILES}"><base href="https://elsewhere.example/">\n',
        )
        self.assertEqual(self.only_file(page).url, FILES + WHEEL_NAME)

    def test_base_without_href(self):
        """A C{<base>} without href (only a target) changes nothing."""
        page = parse_html(
            anchor(f"{WHEEL_NAME}#sha256={SHA}"),
            head=f'    <base target="_blank"><base href="{FILES}">\n',
        )
        self.assertEqual(self.only_file(page).url, FILES + WHEEL_NAME)

    def test_base_does_not_affect_absolute(self):
        """An absolute href ignores C{<base href>}."""
        url = "https://mirror.upstream.example/" + WHEEL_NAME
        page = parse_html(anchor(f"{url}#sha256={SHA}"), head=f'<base href="{FILES}">')
        self.assertEqual(self.only_file(page).url, url)

    def test_anchor_without_href(self):
        """Anchors without href (named anchors) are not entries at all."""
        page = parse_html('<a name="top">top</a>' + anchor(f"{FILES}{WHEEL_NAME}#sha256={SHA}"))
        self.assertEqual(self.only_file(page).filename, WHEEL_NAME)


class HashTests(_Helpers, SynchronousTestCase):
    """Every file carries a valid sha256, lowercased."""

    def test_uppercase_lowered(self):
        """An uppercase digest is accepted and lowercased."""
        self.assertEqual(
            self.only_file(parse_json([json_file(sha256=SHA.upper())])).sha256, SHA
        )
        self.assertEqual(
            self.only_file(parse_html(anchor(f"{FILES}{WHEEL_NAME}#sha256={SHA.upper()}"))).sha256,
            SHA,
        )

    def test_other_hashes_ignored(self):
        """Other hashes beside sha256 are ignored."""
        entry = json_file()
        entry["hashes"] = {"md5": "0" * 32, "sha256": SHA, "blake2b_256": "1" * 64}
        self.assertEqual(self.only_file(parse_json([entry])).sha256, SHA)

    def test_fragment_with_other_pairs(self):
        """A fragment with other C{&}-separated pairs still yields its sha256."""
        f = self.only_file(parse_html(anchor(
            f"{FILES}{WHEEL_NAME}#egg=sample_project&sha256={SHA}"
        )))
        self.assertEqual(f.sha256, SHA)


class YankedTests(_Helpers, SynchronousTestCase):
    """PEP 592's yank flag and reason, in every form they come in."""

    def test_json_forms(self):
        """JSON true, a reason, an empty string, false, null and absence map as PEP 592 says."""
        cases = [(True, ""), ("broken", "broken"), ("", ""), (False, None), (None, None)]
        for value, expected in cases:
            f = self.only_file(parse_json([json_file(yanked=value)]))
            self.assertEqual(f.yanked, expected, value)
        self.assertIsNone(self.only_file(parse_json([json_file()])).yanked)

    def test_html_forms(self):
        """C{data-yanked} present means yanked, its value (maybe empty) the reason."""
        href = f"{FILES}{WHEEL_NAME}#sha256={SHA}"
        cases = [
            ("", None),
            (" data-yanked", ""),
            (' data-yanked=""', ""),
            (' data-yanked="broken"', "broken"),
            (' data-yanked="use &lt;2 &amp; &quot;fix&quot;"', 'use <2 & "fix"'),
        ]
        for attributes, expected in cases:
            f = self.only_file(parse_html(anchor(href, attributes)))
            self.assertEqual(f.yanked, expected, attributes)


class MetadataTests(_Helpers, SynchronousTestCase):
    """PEP 658/714 core metadata: advertised with a hash, without one, or not at all."""

    def json_metadata(self, **fields):
        """Return C{metadata_sha256} of a JSON entry with C{fields}."""
        entry = json_file()
        entry.update(fields)
        return self.only_file(parse_json([entry])).metadata_sha256

    def html_metadata(self, attributes):
        """Return C{metadata_sha256} of an anchor with C{attributes}."""
        page = parse_html(anchor(f"{FILES}{WHEEL_NAME}#sha256={SHA}", attributes))
        return self.only_file(page).metadata_sha256

    def test_json_core_metadata(self):
        """JSON C{core-metadata}: a sha256 dict, true, false, or absence."""
        self.assertEqual(self.json_metadata(**{"core-metadata": {"sha256": SHA_META}}), SHA_META)
        self.assertEqual(
            self.json_metadata(**{"core-metadata": {"sha256": SHA_META.upper()}}), SHA_META
        )
        self.assertEqual(self.json_metadata(**{"core-metadata": True}), "")
        self.assertIsNone(self.json_metadata(**{"core-metadata": False}))
        self.assertIsNone(self.json_metadata())

    def test_json_without_sha256(self):
        """A JSON hash dict without sha256 (or empty) advertises metadata without a hash."""
        self.assertEqual(self.json_metadata(**{"core-metadata": {"md5": "0" * 32}}), "")
        self.assertEqual(self.json_metadata(**{"core-metadata": {}}), "")

    def test_json_bad_digest(self):
        """A malformed sha256 advertises nothing, since it could never be checked."""
        self.assertIsNone(self.json_metadata(**{"core-metadata": {"sha256": "xyz"}}))
        self.assertIsNone(self.json_metadata(**{"core-metadata": {"sha256": 7}}))
        self.assertIsNone(self.json_metadata(**{"core-metadata": "true"}))

    def test_json_dist_info_fallback(self):
        """Without C{core-metadata}, PEP 658's C{dist-info-metadata} is read."""
        self.assertEqual(
            self.json_metadata(**{"dist-info-metadata": {"sha256": SHA_META}}), SHA_META
        )
        self.assertEqual(self.json_metadata(**{"dist-info-metadata": True}), "")
        self.assertEqual(
            self.json_metadata(**{"data-dist-info-metadata": {"sha256": SHA_META}}), SHA_META
        )

    def test_json_core_metadata_wins(self):
        """C{core-metadata}, even false, wins over C{dist-info-metadata} (PEP 714)."""
        self.assertIsNone(self.json_metadata(**{
            "core-metadata": False, "dist-info-metadata": {"sha256": SHA_META}}))
        self.assertEqual(self.json_metadata(**{
            "core-metadata": True, "dist-info-metadata": {"sha256": SHA_META}}), "")

    def test_html_core_metadata(self):
        """C{data-core-metadata}: a sha256, true, or absence."""
        self.assertEqual(self.html_metadata(f' data-core-metadata="sha256={SHA_META}"'), SHA_META)
        self.assertEqual(
            self.html_metadata(f' data-core-metadata="sha256={SHA_META.upper()}"'), SHA_META
        )
        self.assertEqual(self.html_metadata(' data-core-metadata="true"'), "")
        self.assertIsNone(self.html_metadata(""))

    def test_html_without_sha256(self):
        """Another algorithm's hash advertises metadata without a sha256."""
        self.assertEqual(self.html_metadata(f' data-core-metadata="md5={"0" * 32}"'), "")

    def test_html_unreadable(self):
        """Values that are neither true nor a hash advertise nothing."""
        for value in ("false", "", "sha256=xyz", "yes", "sha256="):
            self.assertIsNone(self.html_metadata(f' data-core-metadata="{value}"'), value)
        self.assertIsNone(self.html_metadata(" data-core-metadata"))

    def test_html_dist_info_fallback(self):
        """Without C{data-core-metadata}, C{data-dist-info-metadata} is read."""
        self.assertEqual(
            self.html_metadata(f' data-dist-info-metadata="sha256={SHA_META}"'), SHA_META
        )
        self.assertEqual(self.html_metadata(' data-dist-info-metadata="true"'), "")

    def test_html_core_metadata_wins(self):
        """C{data-core-metadata} wins over C{data-dist-info-metadata}."""
        self.assertEqual(
            self.html_metadata(
                f' data-dist-info-metadata="sha256={SHA_META}" data-core-metadata="true"'
            ),
            "",
        )


class UploadTimeTests(_Helpers, SynchronousTestCase):
    """PEP 700 upload times become POSIX timestamps, or L{None}."""

    def json_time(self, value):
        """Return C{upload_time} of a JSON entry with C{upload-time} C{value}."""
        return self.only_file(parse_json([json_file(upload_time=value)])).upload_time

    def test_pep700_format(self):
        """The PEP 700 format is read exactly, microseconds included."""
        self.assertEqual(self.json_time(UPLOAD_TIME), UPLOADED)
        self.assertEqual(format_upload_time(self.json_time(UPLOAD_TIME)), UPLOAD_TIME)

    def test_without_fraction(self):
        """Seconds without a fraction are read."""
        self.assertEqual(
            self.json_time("2025-01-02T03:04:05Z"),
            datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=datetime.UTC).timestamp(),
        )

    def test_offset_and_naive(self):
        """A numeric offset is honoured; a time without zone is taken as UTC."""
        self.assertEqual(self.json_time("2025-01-02T04:04:05.123456+01:00"), UPLOADED)
        self.assertEqual(self.json_time("2025-01-02T03:04:05.123456"), UPLOADED)

    def test_long_fraction(self):
        """Digits beyond microseconds are dropped rather than refused."""
        self.assertEqual(self.json_time("2025-01-02T03:04:05.123456789Z"), UPLOADED)

    def test_unparseable(self):
        """Anything else gives L{None}, and the file is kept."""
        for value in ("yesterday", "2025-13-40T00:00:00Z", "2025-01-02", "", 1735787045, None):
            self.assertIsNone(self.json_time(value), value)
        self.assertIsNone(self.only_file(parse_json([json_file()])).upload_time)

    def test_html(self):
        """uv's C{data-upload-time} attribute is read from HTML."""
        page = parse_html(anchor(f"{FILES}{WHEEL_NAME}#sha256={SHA}",
                                 f' data-upload-time="{UPLOAD_TIME}"'))
        self.assertEqual(self.only_file(page).upload_time, UPLOADED)
        page = parse_html(anchor(f"{FILES}{WHEEL_NAME}#sha256={SHA}",
                                 ' data-upload-time="soon"'))
        self.assertIsNone(self.only_file(page).upload_time)


class SizeTests(_Helpers, SynchronousTestCase):
    """Sizes are non-negative integers, or L{None}."""

    def test_json(self):
        """A JSON integer is the size; other values give L{None}."""
        self.assertEqual(self.only_file(parse_json([json_file(size=4096)])).size, 4096)
        self.assertEqual(self.only_file(parse_json([json_file(size=0)])).size, 0)
        for value in (-1, True, "4096", 4096.0, None):
            self.assertIsNone(self.only_file(parse_json([json_file(size=value)])).size, value)
        self.assertIsNone(self.only_file(parse_json([json_file()])).size)

    def test_html(self):
        """uv's C{data-size} attribute is read from HTML when it is all digits."""
        href = f"{FILES}{WHEEL_NAME}#sha256={SHA}"
        self.assertEqual(self.only_file(parse_html(anchor(href, ' data-size="4096"'))).size, 4096)
        for value in ("-1", "4k", ""):
            self.assertIsNone(
                self.only_file(parse_html(anchor(href, f' data-size="{value}"'))).size, value
            )


class RequiresPythonTests(_Helpers, SynchronousTestCase):
    """Requires-Python is passed through, unescaped."""

    def test_entity_escaped(self):
        """HTML entities in C{data-requires-python} are unescaped."""
        href = f"{FILES}{WHEEL_NAME}#sha256={SHA}"
        for attribute, expected in (
            ("&gt;=3.8", ">=3.8"),
            ("&lt;4,&gt;=3.8", "<4,>=3.8"),
            ("&#62;=3.8", ">=3.8"),
            (">=3.8,!=3.9.*", ">=3.8,!=3.9.*"),
        ):
            f = self.only_file(parse_html(anchor(href, f' data-requires-python="{attribute}"')))
            self.assertEqual(f.requires_python, expected, attribute)

    def test_json(self):
        """JSON's C{requires-python} is taken as it is, without unescaping."""
        f = self.only_file(parse_json([json_file(requires_python="&gt;=3.8")]))
        self.assertEqual(f.requires_python, "&gt;=3.8")
        f = self.only_file(parse_json([json_file(requires_python=">=3.8")]))
        self.assertEqual(f.requires_python, ">=3.8")

    def test_empty(self):
        """An empty or missing Requires-Python is L{None} in both forms."""
        for value in ("", None):
            f = self.only_file(parse_json([json_file(requires_python=value)]))
            self.assertIsNone(f.requires_python, value)
        href = f"{FILES}{WHEEL_NAME}#sha256={SHA}"
        self.assertIsNone(
            self.only_file(parse_html(anchor(href, ' data-requires-python=""'))).requires_python
        )


class FilenameTests(_Helpers, SynchronousTestCase):
    """What a filename tells about the file, and which files a page may list."""

    def test_parsed_fields(self):
        """Project, version and package type come from the filename, normalized."""
        f = self.only_file(parse_json([json_file("Sample.Project-1.0.0rc01.tar.gz")]))
        self.assertEqual((f.project, f.version, f.packagetype),
                         (PROJECT, "1.0.0rc1", SDIST))
        filename = "Sample_Project-2.0-cp311-cp311-manylinux_2_17_x86_64.whl"
        f = self.only_file(parse_json([json_file(filename)]))
        self.assertEqual((f.project, f.version, f.packagetype), (PROJECT, "2.0", WHEEL))

    def test_legacy_sdists(self):
        """Old sdist extensions and pre-PEP 625 names, as old releases have them, are kept."""
        for filename in ("sample-project-0.1.tar.bz2", "sample-project-0.2.tgz",
                         "Sample-Project-0.3.zip", "sample-project-0.4.tar.gz"):
            f = self.only_file(parse_json([json_file(filename)]))
            self.assertEqual((f.project, f.packagetype), (PROJECT, SDIST), filename)

    def test_project_argument_normalized(self):
        """The project asked for may be spelled any way."""
        page = parse_page(SAMPLE_JSON, JSON_TYPE, PAGE_URL, "Sample_Project")
        self.assertEqual(page.project, PROJECT)
        self.assertEqual(len(page.files), 3)

    def test_other_project_refused(self):
        """A file of another project is refused, even one whose name starts alike."""
        for filename, other in (
            ("evil_package-1.0-py3-none-any.whl", "evil-package"),
            ("sample_project_extra-1.0-py3-none-any.whl", "sample-project-extra"),
            ("sample-project-extra-1.0.tar.gz", "sample-project-extra"),
        ):
            page = parse_json([json_file(filename)])
            self.assertEqual(
                self.only_skip(page),
                (filename, f"the file belongs to project {other!r}, not 'sample-project'"),
            )
            page = parse_html(anchor(f"{FILES}{filename}#sha256={SHA}"))
            self.assertEqual(
                self.only_skip(page),
                (filename, f"the file belongs to project {other!r}, not 'sample-project'"),
            )


class SkipTests(_Helpers, SynchronousTestCase):
    """Each refused entry is listed with its reason, and the rest of the page survives."""

    def assertSkippedJSON(self, entry, label, reason):
        """A JSON page with C{entry} and a good file keeps the good one and skips C{entry}."""
        page = parse_json([entry, json_file(SDIST_NAME, sha256=SHA_SDIST)])
        self.assertEqual([f.filename for f in page.files], [SDIST_NAME])
        self.assertEqual(len(page.skipped), 1)
        self.assertEqual(page.skipped[0][0], label)
        self.assertIn(reason, page.skipped[0][1])

    def assertSkippedHTML(self, anchors, label, reason):
        """An HTML page with C{anchors} and a good file keeps the good one and skips the rest."""
        page = parse_html(anchors + anchor(f"{FILES}{SDIST_NAME}#sha256={SHA_SDIST}"))
        self.assertEqual([f.filename for f in page.files], [SDIST_NAME])
        self.assertEqual(len(page.skipped), 1)
        self.assertEqual(page.skipped[0][0], label)
        self.assertIn(reason, page.skipped[0][1])

    def test_entry_not_object(self):
        """A JSON entry that is not an object is skipped, labelled by position."""
        self.assertSkippedJSON("sample_project-1.0-py3-none-any.whl", "files[0]",
                               "not a JSON object")

    def test_no_filename(self):
        """A JSON entry without a filename is skipped, labelled by its URL."""
        entry = json_file()
        del entry["filename"]
        self.assertSkippedJSON(entry, FILES + WHEEL_NAME, "has no filename")
        self.assertSkippedJSON({"filename": 3}, "files[0]", "has no filename")

    def test_no_url(self):
        """A JSON entry without a URL is skipped."""
        entry = json_file()
        del entry["url"]
        self.assertSkippedJSON(entry, WHEEL_NAME, "has no url")
        self.assertSkippedJSON(json_file() | {"url": None}, WHEEL_NAME, "has no url")

    def test_not_http(self):
        """URLs that are not http(s) are skipped, in both forms."""
        for ref in (
            "javascript:alert(1)",
            "data:application/zip;base64,UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==",
            "ftp://files.upstream.example/" + WHEEL_NAME,
            "file:///etc/passwd",
            "mailto:root@upstream.example",
            "http:///" + WHEEL_NAME,
        ):
            self.assertSkippedJSON(json_file(url=ref), WHEEL_NAME, "not an absolute http(s) URL")
            self.assertSkippedHTML(anchor(ref, text=WHEEL_NAME), ref,
                                   "not an absolute http(s) URL")

    def test_not_http_base(self):
        """A non-http C{<base href>} makes every relative href unusable."""
        page = parse_html(anchor(f"{WHEEL_NAME}#sha256={SHA}"),
                          head='<base href="ftp://files.upstream.example/">')
        self.assertEqual(self.only_skip(page)[1], "not an absolute http(s) URL")

    def test_bad_url_characters(self):
        """URLs with inner whitespace or control characters are skipped."""
        ref = f"{FILES}sample project/{WHEEL_NAME}"
        self.assertSkippedJSON(json_file(url=ref), WHEEL_NAME, "whitespace or control")
        self.assertSkippedJSON(json_file(url=FILES + "\x00" + WHEEL_NAME), WHEEL_NAME,
                               "whitespace or control")

    def test_malformed_url(self):
        """URLs Python cannot split are skipped."""
        for ref in ("https://[upstream.example/" + WHEEL_NAME,
                    "https://files.upstream.example:99999/" + WHEEL_NAME):
            self.assertSkippedJSON(json_file(url=ref), WHEEL_NAME, "malformed")

    def test_no_filename_in_url(self):
        """An href ending in a slash names no file."""
        self.assertSkippedHTML(anchor(FILES + "#sha256=" + SHA, text="files"),
                               FILES + "#sha256=" + SHA, "does not end in a filename")

    def test_not_distribution(self):
        """Filenames that are not wheels or sdists are skipped, with packaging's reason."""
        for filename in ("sample_project-1.0.win32.exe", "sample_project-1.0-py3.8.egg",
                         "README.txt", "sample_project-1.0-py3-none.whl",
                         "sample_project-one-py3-none-any.whl", "sample_project.tar.gz"):
            self.assertSkippedJSON(json_file(filename), filename, "not a distribution filename")
            self.assertSkippedHTML(anchor(f"{FILES}{filename}#sha256={SHA}"), filename,
                                   "not a distribution filename")

    def test_unsafe_characters(self):
        """Filenames with path separators or control characters are skipped."""
        for filename in ("../sample_project-1.0.tar.gz", "a\\sample_project-1.0.tar.gz",
                         "sample_project-1.0\x00.tar.gz", ".sample_project-1.0.tar.gz"):
            self.assertSkippedJSON(json_file(filename, url=FILES + "x.tar.gz"), filename,
                                   "not a distribution filename")

    def test_encoded_slash(self):
        """A percent-encoded slash cannot smuggle a path into an HTML filename."""
        href = f"{FILES}..%2Fsample_project-1.0.tar.gz#sha256={SHA}"
        self.assertSkippedHTML(anchor(href), "../sample_project-1.0.tar.gz", "'/'")

    def test_no_sha256(self):
        """A file without a sha256 is skipped, whatever other hashes it has."""
        self.assertSkippedJSON(json_file() | {"hashes": {}}, WHEEL_NAME, "no sha256 hash")
        self.assertSkippedJSON(json_file() | {"hashes": {"md5": "0" * 32}}, WHEEL_NAME,
                               "no sha256 hash")
        self.assertSkippedHTML(anchor(f"{FILES}{WHEEL_NAME}#md5={'0' * 32}"), WHEEL_NAME,
                               "no sha256 hash")
        self.assertSkippedHTML(anchor(f"{FILES}{WHEEL_NAME}"), WHEEL_NAME, "no sha256 hash")

    def test_invalid_sha256(self):
        """A sha256 that is not 64 hex digits is skipped."""
        for value in (SHA[:-1], SHA + "0", "g" * 64, ""):
            self.assertSkippedJSON(json_file(sha256=value), WHEEL_NAME, "not 64 hex digits")
            self.assertSkippedHTML(anchor(f"{FILES}{WHEEL_NAME}#sha256={value}"), WHEEL_NAME,
                                   "not 64 hex digits")
        self.assertSkippedJSON(json_file(sha256=None), WHEEL_NAME, "no sha256 hash")
        self.assertSkippedJSON(json_file(sha256=12), WHEEL_NAME, "not 64 hex digits")

    def test_hashes_not_object(self):
        """A JSON entry whose hashes are not an object is skipped."""
        self.assertSkippedJSON(json_file() | {"hashes": ["sha256", SHA]}, WHEEL_NAME,
                               "hashes are not a JSON object")
        entry = json_file()
        del entry["hashes"]
        self.assertSkippedJSON(entry, WHEEL_NAME, "hashes are not a JSON object")

    def test_requires_python_not_string(self):
        """A JSON requires-python that is not a string is skipped."""
        self.assertSkippedJSON(json_file(requires_python=3.8), WHEEL_NAME,
                               "requires-python is not a string")

    def test_yanked_wrong_type(self):
        """A JSON yanked that is neither a boolean nor a string is skipped."""
        for value in (1, 0, [], {"reason": "x"}):
            self.assertSkippedJSON(json_file(yanked=value), WHEEL_NAME,
                                   "neither a boolean nor a string")

    def test_duplicates(self):
        """Only the first entry of a filename is kept; later ones are skipped."""
        first = FILES + "a/" + WHEEL_NAME
        page = parse_json([json_file(url=first), json_file(url=FILES + "b/" + WHEEL_NAME)])
        expected = (first, (WHEEL_NAME, "duplicate filename"))
        self.assertEqual(self.only_skip_and_file(page), expected)
        page = parse_html(anchor(f"{first}#sha256={SHA}")
                          + anchor(f"{FILES}b/{WHEEL_NAME}#sha256={SHA_OLD}"))
        self.assertEqual(self.only_skip_and_file(page), expected)

    def only_skip_and_file(self, page):
        """Return the URL of the page's one file and its one skipped entry."""
        self.assertEqual((len(page.files), len(page.skipped)), (1, 1))
        return page.files[0].url, page.skipped[0]

    def test_refused_first_decides(self):
        """When the first entry of a filename is refused, later ones are refused too."""
        page = parse_json([json_file(sha256="bad"), json_file()])
        self.assertEqual(page.files, ())
        self.assertEqual(
            [reason for _, reason in page.skipped],
            ["the sha256 hash is not 64 hex digits", "duplicate filename"],
        )

    def test_spellings_not_duplicates(self):
        """Two spellings of a filename are two files, as the index keys them by filename."""
        page = parse_json([json_file("Sample.Project-1.0.tar.gz"), json_file(SDIST_NAME)])
        self.assertEqual(len(page.files), 2)

    def test_skipped_in_page_order(self):
        """Skipped entries are listed in the order the page gives them."""
        page = parse_html(
            anchor("javascript:void(0)", text="x")
            + anchor(f"{FILES}{WHEEL_NAME}#md5={'0' * 32}")
            + anchor(f"{FILES}evil-1.0.tar.gz#sha256={SHA}")
        )
        self.assertEqual(
            [label for label, _ in page.skipped],
            ["javascript:void(0)", WHEEL_NAME, "evil-1.0.tar.gz"],
        )


class NameTests(SynchronousTestCase):
    """The display name comes from the page when it names this project."""

    def test_json_name(self):
        """JSON's C{name} is the display name, as given."""
        page = parse_json([], name="Sample.Project")
        self.assertEqual((page.project, page.name), (PROJECT, "Sample.Project"))

    def test_json_without_name(self):
        """A JSON page without C{name} is named by the normalized project."""
        body = json.dumps({"meta": {"api-version": "1.0"}, "files": []}).encode()
        self.assertEqual(parse_page(body, JSON_TYPE, PAGE_URL, "Sample_Project").name, PROJECT)

    def test_html_title(self):
        """HTML's title, C{Links for <name>}, gives the display name."""
        page = parse_html("", title="Sample.Project")
        self.assertEqual((page.project, page.name), (PROJECT, "Sample.Project"))

    def test_html_heading(self):
        """Without a title, the first heading gives the display name."""
        body = b"<html><body><h1>Links for Sample_Project</h1><h1>Links for x</h1></body></html>"
        self.assertEqual(parse_page(body, HTML_TYPE, PAGE_URL, PROJECT).name, "Sample_Project")

    def test_html_other_name(self):
        """A title or heading naming something else is not taken as the name."""
        page = parse_html("", title="another-project")
        self.assertEqual(page.name, PROJECT)
        body = b"<html><head><title>Simple index</title></head><body></body></html>"
        self.assertEqual(parse_page(body, HTML_TYPE, PAGE_URL, PROJECT).name, PROJECT)

    def test_html_bare_title(self):
        """A title that is just the name is read too."""
        body = b"<html><head><title> Sample.Project </title></head></html>"
        self.assertEqual(parse_page(body, HTML_TYPE, PAGE_URL, PROJECT).name, "Sample.Project")


class SerialTests(SynchronousTestCase):
    """The upstream's last serial, from the body or the header."""

    def test_json_meta(self):
        """JSON's C{meta._last-serial} is the serial, and wins over the header."""
        page = parse_page(SAMPLE_JSON, JSON_TYPE, PAGE_URL, PROJECT, "1")
        self.assertEqual(page.last_serial, 27182818)

    def test_html_comment(self):
        """Warehouse's C{<!--SERIAL n-->} comment is the serial of an HTML page."""
        page = parse_page(SAMPLE_HTML, HTML_TYPE, PAGE_URL, PROJECT, "1")
        self.assertEqual(page.last_serial, 27182818)

    def test_header(self):
        """Without a serial in the body, the header's is used."""
        page = parse_page(json_body([], meta={"api-version": "1.1"}), JSON_TYPE, PAGE_URL,
                          PROJECT, "314159")
        self.assertEqual(page.last_serial, 314159)
        page = parse_page(html_body(""), HTML_TYPE, PAGE_URL, PROJECT, " 314159 ")
        self.assertEqual(page.last_serial, 314159)

    def test_none(self):
        """Without a usable serial anywhere, the serial is L{None}."""
        for header in (None, "", "abc", "-5", "1.5"):
            page = parse_page(html_body(""), HTML_TYPE, PAGE_URL, PROJECT, header)
            self.assertIsNone(page.last_serial, header)
        for serial in (True, -1, "12", 1.5):
            page = parse_page(json_body([], meta={"api-version": "1.1", "_last-serial": serial}),
                              JSON_TYPE, PAGE_URL, PROJECT)
            self.assertIsNone(page.last_serial, serial)


NOW = 1_800_000_000.0
DAY = 86400.0


def timed(filename, upload_time):
    """Return an upstream file of the sample project uploaded at C{upload_time}."""
    return UpstreamFile(
        filename=filename, url=FILES + filename, sha256=SHA, project=PROJECT,
        version=filename.split("-")[1], packagetype=WHEEL, upload_time=upload_time,
    )


class EffectiveFilesTests(SynchronousTestCase):
    """The cooldown hides files too recent to trust."""

    def setUp(self):
        """A page with an old file, a new one, one at the boundary and one of unknown age."""
        self.old = timed("sample_project-1.0-py3-none-any.whl", NOW - 30 * DAY)
        self.edge = timed("sample_project-1.1-py3-none-any.whl", NOW - 7 * DAY)
        self.new = timed("sample_project-1.2-py3-none-any.whl", NOW - DAY)
        self.unknown = timed("sample_project-1.3-py3-none-any.whl", None)
        self.page = UpstreamPage(
            project=PROJECT, name=PROJECT,
            files=(self.old, self.edge, self.new, self.unknown),
        )

    def test_no_cooldown(self):
        """With C{min_age} 0 every file is kept, even those of unknown age."""
        self.assertEqual(effective_files(self.page, NOW, 0), (self.page.files, ()))

    def test_cooldown(self):
        """Files newer than C{min_age} are hidden; one exactly that old is kept."""
        kept, hidden = effective_files(self.page, NOW, 7 * DAY)
        self.assertEqual(kept, (self.old, self.edge))
        self.assertEqual(hidden, (self.new, self.unknown))

    def test_unknown_age_hidden(self):
        """A file without upload time is hidden by any cooldown, as its age cannot be shown."""
        kept, hidden = effective_files(self.page, NOW, 1)
        self.assertIn(self.unknown, hidden)
        self.assertNotIn(self.unknown, kept)

    def test_future_upload_hidden(self):
        """A file claiming an upload time in the future is hidden."""
        page = UpstreamPage(project=PROJECT, name=PROJECT,
                            files=(timed("sample_project-2.0-py3-none-any.whl", NOW + DAY),))
        self.assertEqual(effective_files(page, NOW, 1), ((), page.files))

    def test_negative(self):
        """A negative C{min_age} is a programming error."""
        self.assertRaises(ValueError, effective_files, self.page, NOW, -1)

    def test_from_parsed_page(self):
        """The cooldown works on a parsed page's upload times."""
        page = parse_page(SAMPLE_JSON, JSON_TYPE, PAGE_URL, PROJECT)
        kept, hidden = effective_files(page, UPLOADED + DAY, 7 * DAY)
        self.assertEqual([f.filename for f in kept], [OLD_WHEEL])
        self.assertEqual([f.filename for f in hidden], [WHEEL_NAME, SDIST_NAME])
