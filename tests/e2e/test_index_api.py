"""
End-to-end tests of publishing and of the read API: the real daemon, with
twine, C{uv publish} and raw HTTP.

The other end-to-end themes live beside this module in
C{tests/test_e2e_*.py}; the harness is L{tests.harness.e2e}.
"""

import gzip
import hashlib
import io
import re
import signal
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote, urljoin

from twisted.trial.unittest import SynchronousTestCase

from tests.harness import e2e
from tests.harness.distributions import make_sdist, make_wheel, make_zip, metadata_text, zip_members
from tests.harness.e2e import (
    PASSWORD,
    USER,
    DaemonTestCase,
    anchors,
    file_url,
    files_by_name,
    http,
    sha256,
    upload,
    wait_for,
)

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "text/html; charset=utf-8"
PIP_ACCEPT = ("application/vnd.pypi.simple.v1+json, "
              "application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01")
UV_ACCEPT = ("application/vnd.pypi.simple.v1+json, "
             "application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01")
UPLOAD_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z\Z")

REQUIRES_PYTHON = ">=3.8,<4"
WHEEL_1 = make_wheel("Foo_Bar", "1.0", requires_python=REQUIRES_PYTHON,
                     requires_dist=["attrs>=20"])
SDIST_1 = make_sdist("Foo_Bar", "1.0", requires_python=REQUIRES_PYTHON)
WHEEL_2 = make_wheel("Foo_Bar", "2.0", requires_python=">=3.9")
METADATA_1 = metadata_text("Foo_Bar", "1.0", REQUIRES_PYTHON, ["attrs>=20"]).encode()


def wheel_metadata(data):
    """The exact bytes of a wheel's C{.dist-info/METADATA}."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        [name] = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        return zf.read(name)


class PublishTests(DaemonTestCase):
    """Uploads with twine and C{uv publish}, each test on its own project."""

    settings = {"pypid.access_log": "access.log"}

    def posts(self):
        """How many upload POSTs the access log holds."""
        try:
            with open(f"{self.daemon.directory}/access.log", "rb") as f:
                return sum(1 for line in f if b'"POST / HTTP/1.1"' in line)
        except FileNotFoundError:
            return 0

    def test_twine_upload_lists_wheel_and_sdist(self):
        """A wheel and an sdist uploaded with twine appear in the HTML and JSON pages with their sha256."""
        wheel = make_wheel("twine-one", "1.0")
        sdist = make_sdist("twine-one", "1.0")
        self.clients.twine_upload(self.daemon, self.dist_dir(wheel, sdist))

        page = http("GET", self.daemon.index_url + "twine-one/")
        self.assertEqual(page.status, 200)
        links = anchors(page.body)
        self.assertEqual(sorted(links), sorted([wheel[0], sdist[0]]))
        for filename, data in (wheel, sdist):
            href = links[filename]["href"]
            self.assertTrue(href.endswith(f"/{filename}#sha256={sha256(data)}"), href)

        entries = files_by_name(self.daemon, "twine-one")
        self.assertEqual(sorted(entries), sorted([wheel[0], sdist[0]]))
        for filename, data in (wheel, sdist):
            self.assertEqual(entries[filename]["hashes"], {"sha256": sha256(data)})
            self.assertEqual(entries[filename]["size"], len(data))
            got = http("GET", file_url(self.daemon, "twine-one", filename))
            self.assertEqual((got.status, got.body), (200, data))

        root = http("GET", self.daemon.index_url)
        self.assertIn("twine-one", anchors(root.body))

    def test_twine_shows_the_remedy(self):
        """
        twine shows only the reason phrase: it starts with what is wrong and
        ends with the remedy, however long the detail (cut before the
        remedy); the body has the whole.
        """
        name = "tagged-" + "x" * 60
        filename, data = make_wheel(name, "1.0")
        data = make_zip([(member, content.replace(b"Tag: py3-none-any",
                                                  b"Tag: cp36-cp36m-manylinux2010_x86_64"))
                         for member, content in zip_members(data)])
        refused = self.clients.twine_upload(self.daemon, self.dist_dir((filename, data)),
                                            check=False)
        self.assertNotEqual(refused.returncode, 0, refused.output)
        # (twine wraps its lines wherever: compared without white space)
        shown = "".join(refused.output.split())
        self.assertIn(f"400BadRequestfrom{self.daemon.url}theTaglinesdonotmatchthefilename"
                      "(thefilename'spy3-none-anynotinWHEEL", shown)
        self.assertIn(f"...;totakeit,name{name}in[pypid]allow_tag_mismatch", shown)
        verbose = self.clients.twine_upload(self.daemon, self.dist_dir((filename, data)),
                                            "--verbose", check=False)
        member = filename.split("-py3")[0] + ".dist-info/WHEEL"
        self.assertIn(f"notinthefilename;in{member});totakeit", "".join(verbose.output.split()))
        changed = make_wheel(name, "1.0")
        self.assertEqual(upload(self.daemon, *changed).status, 200)
        again = self.clients.twine_upload(
            self.daemon, self.dist_dir(make_wheel(name, "1.0", module_text="X = 1\n")),
            check=False)
        squeezed = "".join(again.output.split())
        self.assertIn(f"Filealreadyexists('{changed[0]}',withsha256hash", squeezed)
        self.assertIn(";uploadchangedfilesunderanewversion", squeezed)

    def test_reupload_identical_succeeds_different_conflicts(self):
        """Identical bytes re-upload fine; other bytes under the same name get 400 'File already exists' and change nothing."""
        original = make_wheel("conflict", "1.0")
        changed = make_wheel("conflict", "1.0", module_text="CHANGED = True\n")
        self.assertEqual(original[0], changed[0])
        self.assertNotEqual(original[1], changed[1])
        self.clients.twine_upload(self.daemon, self.dist_dir(original))
        again = self.clients.twine_upload(self.daemon, self.dist_dir(original))
        self.assertEqual(again.returncode, 0)

        refused = self.clients.twine_upload(self.daemon, self.dist_dir(changed), check=False)
        self.assertNotEqual(refused.returncode, 0, refused.output)
        self.assertIn("400", refused.output)
        self.assertIn("File already exists", refused.output)

        raw = upload(self.daemon, *changed)
        self.assertEqual(raw.status, 400)
        self.assertTrue(raw.reason.startswith("File already exists"), raw.reason)
        self.assertTrue(raw.body.startswith(b"File already exists"), raw.body)

        stored = http("GET", file_url(self.daemon, "conflict", original[0]))
        self.assertEqual(stored.body, original[1])
        self.assertEqual(files_by_name(self.daemon, "conflict")[original[0]]["hashes"]["sha256"],
                         sha256(original[1]))

    def test_upload_to_legacy_path(self):
        """twine can upload to C{/legacy/} as it does to the public index."""
        wheel = make_wheel("legacy-path", "1.0")
        self.clients.twine_upload(self.daemon, self.dist_dir(wheel),
                                  "--repository-url", self.daemon.url + "legacy/")
        self.assertIn(wheel[0], files_by_name(self.daemon, "legacy-path"))

    def test_uv_publish_then_check_url_skips(self):
        """C{uv publish} uploads new files, and with C{--check-url} skips the files already there without uploading."""
        wheel = make_wheel("uv-published", "1.0")
        sdist = make_sdist("uv-published", "1.0")
        paths = self.dist_dir(wheel, sdist)
        self.clients.uv_publish(self.daemon, paths)
        entries = files_by_name(self.daemon, "uv-published")
        self.assertEqual(entries[wheel[0]]["hashes"]["sha256"], sha256(wheel[1]))
        self.assertEqual(entries[sdist[0]]["hashes"]["sha256"], sha256(sdist[1]))

        before = wait_for(lambda: self.posts() >= 2 and self.posts(), 5,
                          "the access log does not show the uploads")
        done = self.clients.uv_publish(self.daemon, paths, "--check-url",
                                       self.daemon.index_url)
        self.assertEqual(done.returncode, 0)
        self.assertIn("skipping", done.output.lower())
        self.assertEqual(self.posts(), before, "uv publish --check-url uploaded again")
        self.assertEqual(sorted(files_by_name(self.daemon, "uv-published")),
                         sorted([wheel[0], sdist[0]]))

    def test_uv_publish_check_url_refuses_different_file(self):
        """C{uv publish --check-url} fails for a file whose name is taken by other bytes."""
        original = make_wheel("uv-conflict", "1.0")
        changed = make_wheel("uv-conflict", "1.0", module_text="CHANGED = True\n")
        self.clients.uv_publish(self.daemon, self.dist_dir(original))
        refused = self.clients.uv_publish(self.daemon, self.dist_dir(changed), "--check-url",
                                          self.daemon.index_url, check=False)
        self.assertNotEqual(refused.returncode, 0, refused.output)
        stored = http("GET", file_url(self.daemon, "uv-conflict", original[0]))
        self.assertEqual(stored.body, original[1])


    def test_pages_change_after_upload_yank_and_delete(self):
        """Every change to a project gives its pages a new ETag, so a cached copy is never answered 304."""
        first = make_wheel("changing", "1.0")
        self.assertEqual(upload(self.daemon, *first).status, 200)
        url = self.daemon.index_url + "changing/"
        seen = []

        def check(expected_files):
            for accept in ("text/html", JSON_TYPE):
                old = [etag for a, etag in seen if a == accept]
                resp = http("GET", url, {"Accept": accept, "If-None-Match": ", ".join(old)}
                            if old else {"Accept": accept})
                self.assertEqual(resp.status, 200, f"a stale copy was validated ({accept})")
                seen.append((accept, resp.header("ETag")))
            self.assertEqual(sorted(files_by_name(self.daemon, "changing")), sorted(expected_files))

        check([first[0]])
        root_etag = http("GET", self.daemon.index_url).header("ETag")
        second = make_wheel("changing", "2.0")
        self.assertEqual(upload(self.daemon, *second).status, 200)
        check([first[0], second[0]])
        auth = (USER, PASSWORD)
        self.assertEqual(http("POST", f"{self.daemon.url}api/files/{second[0]}/yank",
                              auth=auth).status, 200)
        check([first[0], second[0]])
        self.assertEqual(http("DELETE", f"{self.daemon.url}api/files/{first[0]}",
                              auth=auth).status, 200)
        check([second[0]])
        self.assertEqual(upload(self.daemon, *make_wheel("another-new-project", "1.0")).status, 200)
        resp = http("GET", self.daemon.index_url, {"If-None-Match": root_etag})
        self.assertEqual(resp.status, 200, "the root page was not re-rendered")
        self.assertIn("another-new-project", anchors(resp.body))

    def test_concurrent_uploads_of_one_filename(self):
        """Of several simultaneous uploads of different bytes under one filename, exactly one is stored and the others get 400."""
        versions = [make_wheel("racing", "1.0", module_text=f"N = {i}\n") for i in range(6)]
        self.assertEqual(len({name for name, _ in versions}), 1)
        self.assertEqual(len({data for _, data in versions}), 6)
        with ThreadPoolExecutor(len(versions)) as pool:
            answers = list(pool.map(lambda dist: upload(self.daemon, *dist), versions))
        statuses = sorted(a.status for a in answers)
        self.assertEqual(statuses, [200] + [400] * 5, [(a.status, a.body) for a in answers])
        [winner] = [data for (_, data), a in zip(versions, answers, strict=True) if a.status == 200]
        for answer in answers:
            if answer.status == 400:
                self.assertTrue(answer.body.startswith(b"File already exists"), answer.body)
        self.assertEqual(http("GET", file_url(self.daemon, "racing", versions[0][0])).body, winner)
        self.assertEqual(files_by_name(self.daemon, "racing")[versions[0][0]]["hashes"]["sha256"],
                         sha256(winner))
        self.assertEqual(self.daemon.temp_files(), [])

    def test_bad_uploads_are_400_and_store_nothing(self):
        """A wrong digest, a broken archive, a name that does not match and a malformed body answer 400 and leave nothing behind."""
        wheel = make_wheel("bad-uploads", "1.0")
        cases = [
            ("digest", upload(self.daemon, *wheel, fields={"sha256_digest": "0" * 64})),
            ("archive", upload(self.daemon, wheel[0], b"PK\x03\x04 this is no zip" * 50)),
            ("name", upload(self.daemon, *wheel, fields={"name": "other-project"})),
            ("version", upload(self.daemon, *wheel, fields={"version": "2.0"})),
            ("filename", upload(self.daemon, "../../bad_uploads-1.0-py3-none-any.whl", wheel[1])),
            ("extension", upload(self.daemon, "bad_uploads-1.0.exe", wheel[1])),
            ("body", http("POST", self.daemon.url,
                          {"Content-Type": "multipart/form-data; boundary=xyz"},
                          b"--xyz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nb\r\n--xy",
                          auth=(USER, PASSWORD))),
            ("not a form", http("POST", self.daemon.url, {"Content-Type": "application/json"},
                                b"{}", auth=(USER, PASSWORD))),
        ]
        for what, resp in cases:
            self.assertEqual(resp.status, 400, f"{what}: {resp.status} {resp.body!r}")
            self.assertNotIn(b"Traceback", resp.body)
            self.assertTrue(resp.body.strip(), what)
        self.assertEqual(http("GET", self.daemon.index_url + "bad-uploads/").status, 404)
        self.assertEqual(http("GET", self.daemon.index_url + "other-project/").status, 404)
        self.assertNotIn(wheel[0], self.daemon.stored_names())
        self.assertEqual(self.daemon.temp_files(), [])
        self.assertEqual(upload(self.daemon, *wheel).status, 200)


class SimpleApiTests(DaemonTestCase):
    """The simple index, metadata and file downloads, read with raw HTTP."""

    def prepare(self, daemon):
        for dist in (WHEEL_1, SDIST_1, WHEEL_2):
            resp = upload(daemon, *dist)
            self.assertEqual(resp.status, 200, resp.body)

    def get(self, path, **headers):
        """GET a path of the daemon with headers given as keyword arguments (C{_} for C{-})."""
        return http("GET", self.daemon.url + path.lstrip("/"),
                    {k.replace("_", "-"): v for k, v in headers.items()})

    def test_json_project_page_fields(self):
        """The PEP 691 project page carries every field clients read, with the right values."""
        resp = self.get("simple/foo-bar/", Accept=JSON_TYPE)
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.header("Content-Type"), JSON_TYPE)
        page = resp.json()
        # (1.4: no namespace is reserved, so no PEP 752 key and no 1.5, which
        # clients that know 1.4 warn of: issue 60; the HTML stays at 1.4)
        # (_last-serial: the project's last serial, as the public index
        # serves it, and the same as the page's X-PyPI-Last-Serial)
        serial = page["meta"].pop("_last-serial")
        self.assertEqual(page["meta"], {"api-version": "1.4"})
        self.assertEqual(str(serial), resp.header("X-PyPI-Last-Serial"))
        self.assertNotIn("namespaces", page)
        self.assertEqual(page["name"], "foo-bar")
        self.assertEqual(page["versions"], ["1.0", "2.0"])
        files = {f["filename"]: f for f in page["files"]}
        self.assertEqual(sorted(files), sorted([WHEEL_1[0], SDIST_1[0], WHEEL_2[0]]))
        for filename, data in (WHEEL_1, SDIST_1, WHEEL_2):
            entry = files[filename]
            self.assertEqual(entry["hashes"], {"sha256": sha256(data)})
            self.assertEqual(entry["size"], len(data))
            self.assertRegex(entry["upload-time"], UPLOAD_TIME)
            self.assertIs(entry["yanked"], False)
            self.assertEqual(urljoin(self.daemon.index_url + "foo-bar/", entry["url"]),
                             f"{self.daemon.url}files/foo-bar/{filename}")
            self.assertEqual(entry["core-metadata"], entry["dist-info-metadata"])
        wheel = files[WHEEL_1[0]]
        self.assertEqual(wheel["requires-python"], REQUIRES_PYTHON)
        self.assertEqual(wheel["core-metadata"], {"sha256": sha256(wheel_metadata(WHEEL_1[1]))})
        self.assertEqual(files[WHEEL_2[0]]["requires-python"], ">=3.9")
        # Metadata 2.2 with nothing dynamic: the sdist's PKG-INFO is served too.
        self.assertEqual(files[SDIST_1[0]]["core-metadata"],
                         {"sha256": hashlib.sha256(metadata_text(
                             "Foo_Bar", "1.0", REQUIRES_PYTHON,
                             metadata_version="2.2").encode()).hexdigest()})

    def test_html_project_page(self):
        """The HTML project page is PEP 503/629/658/714 markup with Requires-Python escaped."""
        resp = self.get("simple/foo-bar/")
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.header("Content-Type"), HTML_TYPE)
        text = resp.body.decode("utf-8")
        self.assertTrue(text.startswith("<!DOCTYPE html>"), text[:40])
        self.assertIn('<meta name="pypi:repository-version" content="1.4">', text)
        self.assertIn('data-requires-python="&gt;=3.8,&lt;4"', text)
        links = anchors(resp.body)
        self.assertEqual(sorted(links), sorted([WHEEL_1[0], SDIST_1[0], WHEEL_2[0]]))
        wheel = links[WHEEL_1[0]]
        self.assertEqual(wheel["data-requires-python"], REQUIRES_PYTHON)
        meta = "sha256=" + sha256(wheel_metadata(WHEEL_1[1]))
        self.assertEqual(wheel["data-core-metadata"], meta)
        self.assertEqual(wheel["data-dist-info-metadata"], meta)
        self.assertEqual(wheel["href"],
                         f"../../files/foo-bar/{WHEEL_1[0]}#sha256={sha256(WHEEL_1[1])}")
        self.assertNotIn("data-yanked", wheel)

    def test_negotiation(self):
        """pip's and uv's Accept headers get JSON, no Accept gets HTML, ?format= wins, nothing acceptable gets 406."""
        for accept in (PIP_ACCEPT, UV_ACCEPT, "application/vnd.pypi.simple.latest+json"):
            resp = self.get("simple/foo-bar/", Accept=accept)
            self.assertEqual((resp.status, resp.header("Content-Type")), (200, JSON_TYPE), accept)
        for accept in (None, "*/*", "text/html", "application/vnd.pypi.simple.v1+html"):
            headers = {} if accept is None else {"Accept": accept}
            resp = self.get("simple/foo-bar/", **headers)
            self.assertEqual((resp.status, resp.header("Content-Type")), (200, HTML_TYPE), accept)
        resp = self.get(f"simple/foo-bar/?format={quote(JSON_TYPE)}", Accept="text/html")
        self.assertEqual(resp.header("Content-Type"), JSON_TYPE)
        self.assertEqual(resp.json()["name"], "foo-bar")
        resp = self.get("simple/foo-bar/", Accept="application/xml")
        self.assertEqual(resp.status, 406)
        root = self.get("simple/", Accept=PIP_ACCEPT)
        self.assertEqual(root.header("Content-Type"), JSON_TYPE)
        # (each project and the page with its last serial, as the public index)
        self.assertIn({"name": "Foo_Bar", "_last-serial": 4}, root.json()["projects"])
        self.assertEqual(root.json()["meta"], {"api-version": "1.4", "_last-serial": 4})

    def test_head_on_pages(self):
        """HEAD on a page answers its headers without a body."""
        get = self.get("simple/foo-bar/")
        head = http("HEAD", self.daemon.url + "simple/foo-bar/")
        self.assertEqual((head.status, head.body), (200, b""))
        self.assertEqual(head.header("Content-Type"), HTML_TYPE)
        self.assertEqual(head.header("ETag"), get.header("ETag"))

    def test_etag_and_not_modified(self):
        """Each page has an ETag, C{If-None-Match} with it answers 304, and the two forms have different tags."""
        tags = set()
        for path in ("simple/", "simple/foo-bar/"):
            for accept in ("text/html", JSON_TYPE):
                first = self.get(path, Accept=accept)
                etag = first.header("ETag")
                self.assertTrue(etag and etag.startswith('"'), etag)
                tags.add(etag)
                again = self.get(path, Accept=accept, If_None_Match=etag)
                self.assertEqual((again.status, again.body), (304, b""))
                self.assertEqual(again.header("ETag"), etag)
                other = self.get(path, Accept=accept, If_None_Match='"something-else"')
                self.assertEqual(other.status, 200)
        self.assertEqual(len(tags), 4)

    def test_vary_and_gzip(self):
        """Pages say C{Vary: Accept}, and are gzip-compressed when asked, decompressing to the same bytes."""
        for accept in ("text/html", JSON_TYPE):
            plain = self.get("simple/foo-bar/", Accept=accept)
            vary = [v.strip().lower() for v in plain.header("Vary").split(",")]
            self.assertIn("accept", vary)
            self.assertIsNone(plain.header("Content-Encoding"))
            packed = self.get("simple/foo-bar/", Accept=accept, Accept_Encoding="gzip")
            self.assertEqual(packed.status, 200)
            self.assertEqual(packed.header("Content-Encoding"), "gzip")
            self.assertEqual(packed.header("Content-Type"), plain.header("Content-Type"))
            self.assertEqual(gzip.decompress(packed.body), plain.body)
            self.assertNotEqual(packed.header("ETag"), plain.header("ETag"))

    def test_metadata_sidecar(self):
        """C{<file URL>.metadata} answers the wheel's exact METADATA bytes, whose sha256 is the advertised one."""
        entry = files_by_name(self.daemon, "foo-bar")[WHEEL_1[0]]
        url = urljoin(self.daemon.index_url + "foo-bar/", entry["url"]) + ".metadata"
        resp = http("GET", url)
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.body, wheel_metadata(WHEEL_1[1]))
        self.assertEqual(resp.body, METADATA_1)
        self.assertEqual(sha256(resp.body), entry["core-metadata"]["sha256"])
        self.assertEqual(resp.header("Content-Type"), "application/octet-stream")
        sdist = files_by_name(self.daemon, "foo-bar")[SDIST_1[0]]
        got = http("GET", urljoin(self.daemon.index_url + "foo-bar/", sdist["url"]) + ".metadata")
        self.assertEqual(sha256(got.body), sdist["core-metadata"]["sha256"])
        missing = http("GET", f"{self.daemon.url}files/foo-bar/foo_bar-9.0-py3-none-any.whl.metadata")
        self.assertEqual(missing.status, 404)

    def test_name_normalization_redirects(self):
        """Other spellings of a name and the slash-less URL answer 301 to the normalized URL, on this origin."""
        for path in ("simple/Foo_Bar/", "simple/foo.bar/", "simple/FOO--bar/", "simple/foo-bar"):
            resp = self.get(path)
            self.assertEqual(resp.status, 301, path)
            self.assertEqual(resp.header("Location"), "/simple/foo-bar/", path)
        resp = self.get(f"simple/Foo_Bar/?format={quote(JSON_TYPE)}")
        self.assertEqual(resp.status, 301)
        self.assertEqual(resp.header("Location"), f"/simple/foo-bar/?format={quote(JSON_TYPE)}")
        resp = self.get("simple")
        self.assertEqual((resp.status, resp.header("Location")), (301, "/simple/"))

    def test_unknown_project_is_404(self):
        """An unknown project answers 404 in every spelling, never a redirect."""
        for path in ("simple/no-such-project/", "simple/No_Such_Project/", "simple/no-such-project",
                     "files/no-such-project/no_such_project-1.0-py3-none-any.whl",
                     f"files/other-project/{WHEEL_1[0]}", f"files/foo-bar/{WHEEL_1[0]}/x",
                     "files/foo-bar/", "files/foo-bar/foo_bar-1.0-py3-none-any.whl.json"):
            self.assertEqual(self.get(path).status, 404, path)

    def test_file_download_headers(self):
        """A file answers its exact bytes with an octet-stream type, its length, an ETag and immutable caching."""
        url = file_url(self.daemon, "foo-bar", WHEEL_1[0])
        resp = http("GET", url)
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.body, WHEEL_1[1])
        self.assertEqual(resp.header("Content-Type"), "application/octet-stream")
        self.assertEqual(resp.header("Content-Length"), str(len(WHEEL_1[1])))
        self.assertIn("immutable", resp.header("Cache-Control"))
        self.assertEqual(resp.header("Accept-Ranges"), "bytes")
        etag = resp.header("ETag")
        self.assertTrue(etag, "no ETag")
        self.assertIsNone(resp.header("Content-Encoding"))
        self.assertIsNone(resp.header("Server"))
        self.assertTrue(resp.header("Date"))
        again = http("GET", url, {"If-None-Match": etag})
        self.assertEqual(again.status, 304)
        packed = http("GET", url, {"Accept-Encoding": "gzip"})
        self.assertEqual(packed.body, WHEEL_1[1])

    def test_file_ranges(self):
        """Single byte ranges answer 206 with the right bytes and Content-Range; an unsatisfiable one answers 416."""
        data = WHEEL_1[1]
        size = len(data)
        url = file_url(self.daemon, "foo-bar", WHEEL_1[0])
        first = http("GET", url, {"Range": "bytes=0-9"})
        self.assertEqual(first.status, 206)
        self.assertEqual(first.body, data[:10])
        self.assertEqual(first.header("Content-Range"), f"bytes 0-9/{size}")
        self.assertEqual(first.header("Content-Length"), "10")
        suffix = http("GET", url, {"Range": "bytes=-5"})
        self.assertEqual(suffix.status, 206)
        self.assertEqual(suffix.body, data[-5:])
        self.assertEqual(suffix.header("Content-Range"), f"bytes {size - 5}-{size - 1}/{size}")
        rest = http("GET", url, {"Range": f"bytes={size - 3}-"})
        self.assertEqual((rest.status, rest.body), (206, data[-3:]))
        beyond = http("GET", url, {"Range": f"bytes={size + 10}-{size + 20}"})
        self.assertEqual(beyond.status, 416)
        self.assertEqual(beyond.header("Content-Range"), f"bytes */{size}")
        etag = http("HEAD", url).header("ETag")
        matching = http("GET", url, {"Range": "bytes=0-9", "If-Range": etag})
        self.assertEqual((matching.status, matching.body), (206, data[:10]))
        stale = http("GET", url, {"Range": "bytes=0-9", "If-Range": '"stale"'})
        self.assertEqual((stale.status, stale.body), (200, data))

    def test_open_range_past_the_end_is_416(self):
        """C{Range: bytes=<size>-} (an open range starting at the end) answers 416, not the whole file."""
        size = len(WHEEL_1[1])
        url = file_url(self.daemon, "foo-bar", WHEEL_1[0])
        for header in (f"bytes={size}-", f"bytes={size + 100}-"):
            resp = http("GET", url, {"Range": header})
            self.assertEqual(resp.status, 416, f"{header}: {resp.status}, {len(resp.body)} bytes")
            self.assertEqual(resp.header("Content-Range"), f"bytes */{size}")

    def test_file_head(self):
        """HEAD on a file answers its headers and length without a body."""
        url = file_url(self.daemon, "foo-bar", SDIST_1[0])
        resp = http("HEAD", url)
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.body, b"")
        self.assertEqual(resp.header("Content-Length"), str(len(SDIST_1[1])))
        self.assertEqual(resp.header("Accept-Ranges"), "bytes")
        self.assertEqual(resp.header("Content-Type"), "application/octet-stream")

    def test_legacy_json_api(self):
        """C{/pypi/<project>/json} describes the latest release and every release's files."""
        resp = self.get("pypi/foo-bar/json")
        self.assertEqual(resp.status, 200)
        body = resp.json()
        self.assertEqual(body["info"]["version"], "2.0")
        self.assertEqual(sorted(body["releases"]), ["1.0", "2.0"])
        self.assertEqual([f["filename"] for f in body["urls"]], [WHEEL_2[0]])
        self.assertEqual(body["urls"][0]["digests"]["sha256"], sha256(WHEEL_2[1]))
        one = self.get("pypi/foo-bar/1.0/json").json()
        self.assertEqual(one["info"]["requires_python"], REQUIRES_PYTHON)
        self.assertNotIn("releases", one)
        self.assertEqual(self.get("pypi/Foo_Bar/json").status, 301)
        self.assertEqual(self.get("pypi/no-such-project/json").status, 404)


class BaseUrlTests(DaemonTestCase):
    """A daemon behind a proxy, with C{base_url} set."""

    settings = {"pypid.base_url": "https://pypi.example.test/"}

    def test_links_and_redirects_use_base_url(self):
        """With C{base_url}, pages link files and redirects point under that URL."""
        wheel = make_wheel("Behind_Proxy", "1.0")
        self.assertEqual(upload(self.daemon, *wheel).status, 200)
        entry = files_by_name(self.daemon, "behind-proxy")[wheel[0]]
        self.assertEqual(entry["url"], f"https://pypi.example.test/files/behind-proxy/{wheel[0]}")
        resp = http("GET", self.daemon.index_url + "Behind_Proxy/")
        self.assertEqual(resp.status, 301)
        self.assertEqual(resp.header("Location"), "https://pypi.example.test/simple/behind-proxy/")
        # The file itself is still served here, at the path the link names.
        got = http("GET", f"{self.daemon.url}files/behind-proxy/{wheel[0]}")
        self.assertEqual(got.body, wheel[1])


#: A child that prints the signal it gets when its parent thread ends (0: none).
_PDEATHSIG = ("import ctypes; libc = ctypes.CDLL(None); sig = ctypes.c_int(); "
              "libc.prctl(2, ctypes.byref(sig)); print(sig.value)")


class ChildProcessTests(SynchronousTestCase):
    """The harness's child processes and the thread that starts them."""

    def death_signal(self):
        done = subprocess.run([sys.executable, "-c", _PDEATHSIG], capture_output=True,
                              text=True, check=True, preexec_fn=e2e._die_with_parent)
        return int(done.stdout)

    def test_from_the_main_thread(self):
        """A child started from trial's thread is stopped when the test process dies."""
        self.assertEqual(self.death_signal(), signal.SIGTERM)

    def test_from_another_thread(self):
        """
        A child started from another thread (a test's pool asking first
        for the class's daemon) is not stopped when that thread ends:
        Linux sends the signal when the thread that forked it ends, not
        the process. It is killed at exit all the same.
        """
        with ThreadPoolExecutor(1) as pool:
            self.assertEqual(pool.submit(self.death_signal).result(), 0)
