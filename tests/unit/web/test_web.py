"""
Tests for the HTTP interface through L{treq.testing.StubTreq}: the real
resource tree (simple pages, files, the Klein application) over in-memory
collaborators, with real HTTP bytes and no sockets.
"""

import gzip
import hashlib
import json
import os

import attrs
from klein import Klein
from twisted.internet import _producer_helpers
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock, Cooperator
from twisted.logger import LogLevel, capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseFailed

from pypid.auth.policy import AccessModel
from pypid.auth.tokens import TokenBook
from pypid.auth.verifier import PasswordVerifier
from pypid.core.access.access_rules import parse_rule
from pypid.core.dists.details import Details
from pypid.core.dists.distribution import inspect
from pypid.core.indexes.index import Index
from pypid.core.util.http_errors import REASON_LIMIT
from pypid.storage.base.interface import (
    MemoryFile,
    RecordRefused,
    Redirect,
    RemoteBytes,
    StorageError,
)
from pypid.storage.folder import sidecars
from pypid.web.changes.upload_store import _deleted
from pypid.web.server.areas import Areas
from tests.harness.distributions import (
    make_sdist,
    make_sdist_zip,
    make_wheel,
    make_zip,
    zip_members,
)
from tests.harness.fakes import (
    FakeRemote,
    PendingPool,
    QueuedRun,
    multipart_body,
    read_file,
    run_in_pool_now,
    twine_fields,
    write_file,
)
from tests.harness.web import (
    JSON_TYPE,
    ORIGIN,
    SDIST,
    SDIST_NAME,
    USERS,
    WHEEL,
    WHEEL_META,
    WHEEL_NAME,
    NoCookieJar,
    _ServerMixin,
    basic,
)

PIP_ACCEPT = ("application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; "
              "q=0.1, text/html; q=0.01")


@attrs.frozen
class _Area:
    """An area of L{pypid.web.app} reduced to its Klein C{app}."""

    app: Klein


class UploadTests(_ServerMixin, SynchronousTestCase):
    """Tests for uploads (the legacy API twine and C{uv publish} use)."""

    def test_success(self):
        """A twine upload is stored, indexed and acknowledged with 200."""
        response, body = self.upload()
        self.assertEqual(response.code, 200)
        self.assertEqual(body, b"OK\n")
        record = self.index.get_file(WHEEL_NAME)
        self.assertEqual(record.sha256, hashlib.sha256(WHEEL).hexdigest())
        self.assertEqual(record.name, "Holy.Grail")
        self.assertEqual(record.upload_time, self.clock.seconds())
        self.assertEqual(record.metadata_sha256,
                         hashlib.sha256(WHEEL_META.encode()).hexdigest())
        self.assertEqual(self.stored(record), WHEEL)
        self.assertEqual(os.listdir(self.storage.temp_dir), [])
        scanned = self.successResultOf(self.storage.scan({}, 0)).records
        self.assertEqual(scanned, {WHEEL_NAME: record})

    def test_uploader_summary_and_details(self):
        """
        An upload keeps who sent it and its summary in its record, and its
        details, the description rendered, beside it.
        """
        self.uploaded()
        record = self.index.get_file(WHEEL_NAME)
        self.assertEqual((record.uploader, record.summary), ("alice", "The grail"))
        details = Details.from_bytes(self.successResultOf(self.storage.read_details(record)))
        self.assertEqual(details.get("requires_dist"), ["attrs"])
        self.assertIn("A test project.", details.html)

    def test_sdist(self):
        """An sdist upload is accepted too."""
        self.uploaded(SDIST_NAME, SDIST)
        self.assertEqual(self.index.get_file(SDIST_NAME).packagetype, "sdist")

    def test_upload_paths(self):
        """Uploads are taken at C{/}, C{/legacy} and C{/legacy/}."""
        for path, (name, data) in (("/", make_wheel("Holy.Grail", "1.0")),
                                   ("/legacy", make_sdist("Holy.Grail", "1.0")),
                                   ("/legacy/", make_wheel("Holy.Grail", "2.0"))):
            fields = twine_fields("Holy.Grail", name.split("-")[1].removesuffix(".tar.gz"), data,
                                  **({} if name.endswith(".whl") else
                                     {"filetype": "sdist", "pyversion": "source"}))
            response, body = self.upload(name, data, path=path, fields=fields)
            self.assertEqual(response.code, 200, (path, body))
        self.assertEqual(len(self.index), 3)

    def test_same_bytes_again(self):
        """Uploading the same file again is a 200 no-op."""
        self.uploaded()
        serial = self.index.serial
        response, body = self.upload()
        self.assertEqual(response.code, 200)
        self.assertIn(b"already uploaded", body)
        self.assertEqual(self.index.serial, serial)
        self.assertEqual(os.listdir(self.storage.temp_dir), [])

    def test_other_spelling(self):
        """A filename that names a stored distribution under another spelling gets 400."""
        self.uploaded()
        _, other = make_wheel("Holy.Grail", "1.0", metadata=WHEEL_META, module_text="X = 2\n")
        response, body = self.upload("Holy.Grail-1.0-py3-none-any.whl", other)
        self.assertEqual(response.code, 400)
        self.assertTrue(body.startswith(b"File already exists ('" + WHEEL_NAME.encode()), body)
        self.assertEqual(len(self.index), 1)

    def test_second_sdist(self):
        """A release holds one sdist: a .zip beside a .tar.gz is refused."""
        self.uploaded(SDIST_NAME, SDIST)
        name, data = make_sdist_zip("Holy.Grail", "1.0")
        response, body = self.upload(name, data, filetype="sdist", pyversion="source")
        self.assertEqual(response.code, 400, body)
        self.assertIn(b"one sdist", body)

    def test_different_bytes(self):
        """Different bytes under a taken name get 400 "File already exists", and change nothing."""
        self.uploaded()
        _, other = make_wheel("Holy.Grail", "1.0", metadata=WHEEL_META, module_text="X = 2\n")
        response, body = self.upload(WHEEL_NAME, other)
        self.assertEqual(response.code, 400)
        sha = hashlib.sha256(WHEEL).hexdigest()
        self.assertTrue(response.phrase.startswith(b"File already exists"), response.phrase)
        self.assertTrue(body.startswith(b"File already exists"), body)
        self.assertIn(sha.encode(), body)
        self.assertEqual(self.stored(self.index.get_file(WHEEL_NAME)),
                         WHEEL)
        self.assertEqual(os.listdir(self.storage.temp_dir), [])

    def test_deleted_name(self):
        """A deleted filename cannot be uploaded again."""
        self.uploaded()
        response, _ = self.request("DELETE", f"/api/files/{WHEEL_NAME}", auth=True)
        self.assertEqual(response.code, 200)
        response, body = self.upload()
        self.assertEqual(response.code, 400)
        self.assertTrue(body.startswith(b"File already exists"))
        self.assertIn(b"deleted", body)
        # (what to do instead, last, in twine's status line too)
        self.assertTrue(body.endswith(b"; upload it under a new version\n"), body)
        self.assertTrue(response.phrase.endswith(b"; upload it under a new version"),
                        response.phrase)
        self.assertNothingStored()

    def test_deleted_long_name(self):
        """
        The remedy of a deleted filename's refusal stays in the status line
        however long the filename: the message is cut before it.
        """
        filename = "a" * 150 + "-1.0-py3-none-any.whl"
        reason = _deleted(filename).reason
        self.assertLessEqual(len(reason), REASON_LIMIT)
        self.assertTrue(reason.startswith(b"File already exists ('aaa"), reason)
        self.assertTrue(reason.endswith(b"...; upload it under a new version"), reason)

    def assertRefused(self, response, body, field, code=400):
        """
        Assert a 4xx whose body and reason phrase both start with C{field}
        (L{None}: what is wrong with the file itself, which names no field).
        """
        self.assertEqual(response.code, code, body)
        if field is None:
            self.assertFalse(body.startswith(b"content: "), body)
            self.assertEqual(response.phrase[:60], body.rstrip(b"\n")[:60])  # (what is wrong)
        else:
            self.assertTrue(body.startswith(field.encode() + b": "), body)
            self.assertTrue(response.phrase.startswith(field.encode() + b": "), response.phrase)
        self.assertNotIn(b"\n", response.phrase)
        self.assertNothingStored()

    def test_validation_errors(self):
        """Each invalid form field is refused with 400 naming the field in body and reason."""
        cases = [
            (":action", {":action": "doc_upload"}),
            ("protocol_version", {"protocol_version": "2"}),
            ("name", {"name": "-Holy"}),
            ("version", {"version": "one"}),
            ("filetype", {"filetype": "bdist_egg"}),
            ("filetype", {"filetype": "sdist"}),
            (None, {"name": "other"}),
            (None, {"version": "2.0"}),
            ("sha256_digest", {"sha256_digest": "0" * 64}),
            ("blake2_256_digest", {"blake2_256_digest": "0" * 64}),
            ("md5_digest", {"md5_digest": "0" * 32}),
            ("sha256_digest", {"sha256_digest": "xyz"}),
            ("sha256_digest", {"sha256_digest": None, "blake2_256_digest": None}),
        ]
        for field, extra in cases:
            response, body = self.upload(**extra)
            self.assertRefused(response, body, field)

    def test_upload_rules_through_the_site(self):
        """The upload rules (form, archive, WHEEL) answer 400 naming the field or member, and store nothing."""
        wrong_tags = make_zip([(name, data.replace(b"Tag: py3-none-any", b"Tag: py3-none-xyz"))
                               for name, data in zip_members(WHEEL)])
        commented = WHEEL[:-2] + b"\x02\x00hi"
        cases = [
            (None, {"data": wrong_tags}, b"the Tag lines do not match the filename"),
            (None, {"data": commented}, b"comment"),
            (None, {"data": WHEEL + b"appended"}, b""),
            ("metadata_version", {"metadata_version": "3.0"}, b"not a metadata version"),
            ("summary", {"summary": "two\nlines"}, b"one line"),
            ("summary", {"summary": "x" * 513}, b"512"),
            ("name", {"name": "Holy.Grail "}, b"whitespace"),
            ("author", {"author": "nul\x00"}, b"NUL"),
        ]
        for field, extra, words in cases:
            data = extra.pop("data", WHEEL)
            fields = twine_fields("Holy.Grail", "1.0", data, **extra)
            response, body = self.upload(data=data, fields=fields)
            self.assertRefused(response, body, field)
            self.assertIn(words, body)
            self.assertNothingStored()
        fields = twine_fields("Holy.Grail", "1.0", WHEEL) + [("version", "2.0")]
        response, body = self.upload(fields=fields)
        self.assertRefused(response, body, "version")
        self.assertIn(b"sent more than once with different values", body)
        self.assertNothingStored()

    def test_bad_filenames(self):
        """Filenames with separators or foreign extensions are refused, saying what is wrong."""
        for filename in ("../" + WHEEL_NAME, "holy_grail-1.0-py3.8.egg", ".hidden-1.0.tar.gz"):
            response, body = self.upload(filename=filename, filetype=None)
            self.assertRefused(response, body, None)

    def test_empty_file(self):
        """An empty file is refused."""
        response, body = self.upload(data=b"")
        self.assertRefused(response, body, None)

    def test_broken_archive(self):
        """A file that is not a valid wheel is refused with 400, not 500."""
        response, body = self.upload(data=b"this is not a zip file")
        self.assertRefused(response, body, None)

    def test_no_content_part(self):
        """A form without a file part is refused."""
        ctype, body = multipart_body(twine_fields("Holy.Grail", "1.0", WHEEL))
        response, body = self.request("POST", "/legacy/", headers={"Content-Type": ctype},
                                      auth=True, data=body)
        self.assertRefused(response, body, "content")

    def test_not_multipart(self):
        """A body that is not multipart/form-data is refused with 400."""
        response, body = self.request("POST", "/legacy/", auth=True, data=b"x=1",
                                      headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertRefused(response, body, "Content-Type")

    def test_no_credentials(self):
        """An upload without credentials gets 401 with a Basic challenge, and nothing is stored."""
        response, body = self.upload(auth=False)
        self.assertEqual(response.code, 401)
        self.assertEqual(self.header(response, "WWW-Authenticate"), b'Basic realm="pypid"')
        self.assertNothingStored()

    def test_wrong_password(self):
        """An upload with a wrong password gets 401, and nothing is stored."""
        response, body = self.upload(auth=basic(password="wrong"))
        self.assertEqual(response.code, 401)
        self.assertIsNotNone(self.header(response, "WWW-Authenticate"))
        self.assertIn(b"wrong user name or password", body)
        self.assertNothingStored()

    def test_unknown_user(self):
        """An upload by an unknown user gets 401."""
        response, _ = self.upload(auth=basic(user="mallory"))
        self.assertEqual(response.code, 401)
        self.assertNothingStored()

    def test_remove_pkg(self):
        """pypiserver's C{:action=remove_pkg} deletes every file of a release."""
        self.uploaded()
        self.uploaded(SDIST_NAME, SDIST)
        ctype, body = multipart_body([(":action", "remove_pkg"), ("name", "holy.grail"),
                                      ("version", "1.0")])
        response, body = self.request("POST", "/", headers={"Content-Type": ctype}, auth=True,
                                      data=body)
        self.assertEqual(response.code, 200, body)
        self.assertEqual(len(self.index), 0)
        self.assertTrue(self.index.is_deleted(WHEEL_NAME))
        self.assertTrue(self.index.is_deleted(SDIST_NAME))

    def test_remove_pkg_form_rules(self):
        """remove_pkg follows the form rules too: a repeated action, name or version, or a NUL, deletes nothing."""
        self.uploaded()
        for fields, field in (
            ([(":action", "remove_pkg"), (":action", "file_upload"), ("name", "holy.grail"),
              ("version", "1.0")], ":action"),
            ([(":action", "remove_pkg"), ("name", "holy.grail"), ("name", "innocent"),
              ("version", "1.0")], "name"),
            ([(":action", "remove_pkg"), ("name", "holy.grail"), ("version", "1.0"),
              ("version", "2.0")], "version"),
            ([(":action", "remove_pkg"), ("name", "holy.grail"), ("version", "1.0"),
              ("summary", "a\x00b")], "summary"),
        ):
            ctype, body = multipart_body(fields)
            response, body = self.request("POST", "/", headers={"Content-Type": ctype}, auth=True,
                                          data=body)
            self.assertEqual(response.code, 400, body)
            self.assertTrue(body.startswith(field.encode() + b": "), body)
            self.assertIsNotNone(self.index.get_file(WHEEL_NAME))


class SimplePageTests(_ServerMixin, SynchronousTestCase):
    """Tests for C{/simple/} and C{/simple/<project>/}."""

    def setUp(self):
        super().setUp()
        self.uploaded()

    def test_root_html(self):
        """The root page is HTML by default and links each project."""
        response, body = self.get("/simple/")
        self.assertEqual(response.code, 200)
        self.assertEqual(self.header(response, "Content-Type"), b"text/html; charset=utf-8")
        self.assertIn(b'<meta name="pypi:repository-version" content="1.4">', body)
        self.assertIn(b'<a href="holy-grail/">Holy.Grail</a>', body)
        self.assertIn(b"Accept", self.header(response, "Vary"))
        self.assertIsNotNone(self.header(response, "ETag"))
        self.assertEqual(self.header(response, "Cache-Control"), b"max-age=0, must-revalidate")

    def test_root_json(self):
        """pip's Accept header gets the JSON root page."""
        response, body = self.get("/simple/", headers={"Accept": PIP_ACCEPT})
        self.assertEqual(self.header(response, "Content-Type"), JSON_TYPE.encode())
        self.assertEqual(json.loads(body), {"meta": {"api-version": "1.4"},
                                            "projects": [{"name": "Holy.Grail"}]})

    def test_project_html(self):
        """The project page links the file relative to itself, with its hash and metadata."""
        response, body = self.get("/simple/holy-grail/")
        self.assertEqual(response.code, 200)
        sha = hashlib.sha256(WHEEL).hexdigest()
        self.assertIn(f'href="../../files/holy-grail/{WHEEL_NAME}#sha256={sha}"'.encode(), body)
        self.assertIn(b'data-requires-python="&gt;=3.8"', body)
        self.assertIn(b"data-core-metadata=", body)
        self.assertIn(f">{WHEEL_NAME}</a>".encode(), body)

    def test_project_json(self):
        """The JSON project page follows PEP 691 and PEP 700."""
        response, body = self.get("/simple/holy-grail/", headers={"Accept": JSON_TYPE})
        self.assertEqual(self.header(response, "Content-Type"), JSON_TYPE.encode())
        data = json.loads(body)
        self.assertEqual(data["name"], "holy-grail")
        self.assertEqual(data["versions"], ["1.0"])
        [entry] = data["files"]
        self.assertEqual(entry["filename"], WHEEL_NAME)
        self.assertEqual(entry["url"], f"../../files/holy-grail/{WHEEL_NAME}")
        self.assertEqual(entry["hashes"], {"sha256": hashlib.sha256(WHEEL).hexdigest()})
        self.assertEqual(entry["size"], len(WHEEL))
        self.assertEqual(entry["upload-time"], "2026-01-01T00:00:00.000000Z")
        self.assertEqual(entry["yanked"], False)

    def test_format_param(self):
        """C{?format=} picks the serialization over Accept."""
        quoted = JSON_TYPE.replace("+", "%2B")
        response, body = self.get(f"/simple/holy-grail/?format={quoted}",
                                  headers={"Accept": "text/html"})
        self.assertEqual(self.header(response, "Content-Type"), JSON_TYPE.encode())
        response, _ = self.get("/simple/?format=text/html", headers={"Accept": JSON_TYPE})
        self.assertEqual(self.header(response, "Content-Type"), b"text/html; charset=utf-8")

    def test_not_acceptable(self):
        """An Accept (or format) naming nothing served gets 406."""
        response, body = self.get("/simple/", headers={"Accept": "application/xml"})
        self.assertEqual(response.code, 406)
        self.assertTrue(body.startswith(b"Accept: "))
        response, _ = self.get("/simple/holy-grail/?format=application/xml")
        self.assertEqual(response.code, 406)

    def test_redirect_non_normalized(self):
        """A non-normalized name is redirected (301) to the normalized URL on the same origin."""
        for name in ("Holy.Grail", "holy_grail", "HOLY--GRAIL"):
            response, _ = self.get(f"/simple/{name}/")
            self.assertEqual(response.code, 301, name)
            self.assertEqual(self.header(response, "Location"), b"/simple/holy-grail/")

    def test_redirect_keeps_query(self):
        """The redirect keeps the query string (C{?format=})."""
        response, _ = self.get(f"/simple/Holy.Grail/?format={JSON_TYPE}")
        self.assertEqual(self.header(response, "Location"),
                         f"/simple/holy-grail/?format={JSON_TYPE}".encode())

    def test_redirect_slash(self):
        """Slash-less URLs are redirected to the slash-terminated ones."""
        response, _ = self.get("/simple/holy-grail")
        self.assertEqual((response.code, self.header(response, "Location")),
                         (301, b"/simple/holy-grail/"))
        response, _ = self.get("/simple/Holy.Grail")
        self.assertEqual(self.header(response, "Location"), b"/simple/holy-grail/")
        response, _ = self.get("/simple")
        self.assertEqual((response.code, self.header(response, "Location")),
                         (301, b"/simple/"))

    def test_redirect_followed(self):
        """Following the redirect reaches the page."""
        response, body = self.get("/simple/Holy.Grail/", allow_redirects=True)
        self.assertEqual(response.code, 200)
        self.assertIn(WHEEL_NAME.encode(), body)

    def test_not_found(self):
        """Unknown projects, invalid names and deeper paths are 404, never a redirect."""
        for path in ("/simple/nope/", "/simple/nope", "/simple/-bad-/", "/simple/holy-grail/x/",
                     "/simple/Nope.Thing/"):
            response, _ = self.get(path)
            self.assertEqual(response.code, 404, path)
            self.assertIsNone(self.header(response, "Location"))
        # (a path that is no UTF-8 is refused before any route: issue 31)
        response, body = self.get("/simple/%ff/")
        self.assertEqual((response.code, body), (400, b"path: not valid UTF-8\n"))
        self.assertIsNone(self.header(response, "Location"))

    def test_not_modified(self):
        """A matching If-None-Match gets 304; a stale one the page."""
        response, _ = self.get("/simple/holy-grail/")
        etag = self.header(response, "ETag")
        response, body = self.get("/simple/holy-grail/", headers={"If-None-Match": etag})
        self.assertEqual((response.code, body), (304, b""))
        self.uploaded(SDIST_NAME, SDIST)
        response, body = self.get("/simple/holy-grail/", headers={"If-None-Match": etag})
        self.assertEqual(response.code, 200)
        self.assertNotEqual(self.header(response, "ETag"), etag)

    def test_gzip(self):
        """A client that takes gzip gets the page compressed, with its own ETag; others get it plain."""
        plain_response, plain = self.raw("GET", "/simple/holy-grail/")
        self.assertIsNone(self.header(plain_response, "Content-Encoding"))
        self.assertIn(WHEEL_NAME.encode(), plain)
        response, body = self.raw("GET", "/simple/holy-grail/", {"Accept-Encoding": "gzip"})
        self.assertEqual(self.header(response, "Content-Encoding"), b"gzip")
        self.assertEqual(gzip.decompress(body), plain)
        etag = self.header(response, "ETag")
        self.assertEqual(etag, self.header(plain_response, "ETag")[:-1] + b'-gz"')
        response, _ = self.raw("GET", "/simple/holy-grail/",
                               {"Accept-Encoding": "gzip", "If-None-Match": etag.decode()})
        self.assertEqual(response.code, 304)

    def test_files_never_gzipped(self):
        """Distribution files are sent as they are, even to a client that takes gzip."""
        response, body = self.raw("GET", f"/files/holy-grail/{WHEEL_NAME}",
                                  {"Accept-Encoding": "gzip"})
        self.assertIsNone(self.header(response, "Content-Encoding"))
        self.assertEqual(body, WHEEL)

    def test_head(self):
        """HEAD answers like GET, without a body."""
        response, body = self.request("HEAD", "/simple/holy-grail/")
        self.assertEqual((response.code, body), (200, b""))

    def test_tombstoned_project(self):
        """A project whose files were all deleted still has a (empty) page."""
        self.request("DELETE", f"/api/files/{WHEEL_NAME}", auth=True)
        response, body = self.get("/simple/holy-grail/", headers={"Accept": JSON_TYPE})
        self.assertEqual(response.code, 200)
        self.assertEqual(json.loads(body)["files"], [])


class UploadLimitTests(_ServerMixin, SynchronousTestCase):
    """Tests for the upload size limit."""

    max_upload_size = 512

    def test_too_large(self):
        """An upload over the limit gets 413 naming C{content}, and nothing is stored."""
        self.assertGreater(len(WHEEL), self.max_upload_size)
        response, body = self.upload()
        self.assertEqual(response.code, 413)
        self.assertTrue(body.startswith(b"the upload is larger than the limit of 512 bytes "
                                        b"([pypid] max_upload_size)"), body)
        self.assertNothingStored()


class LargeFileTests(_ServerMixin, SynchronousTestCase):
    """Tests for files large enough to be streamed by a producer."""

    on_disk = True

    def setUp(self):
        super().setUp()
        # Twisted drives a pull producer (what streams a large file) with the
        # global cooperator, on the global reactor; drive it with a clock here.
        self.cooperator_clock = Clock()
        cooperator = Cooperator(scheduler=lambda f: self.cooperator_clock.callLater(0, f),
                                started=True)
        self.patch(_producer_helpers, "cooperate", cooperator.cooperate)
        blob = os.urandom(600 << 10)
        self.name, self.data = make_wheel("Holy.Grail", "3.0", extra_files=[("holy_grail/blob.bin", blob)])
        fields = twine_fields("Holy.Grail", "3.0", self.data)
        response, body = self.upload(self.name, self.data, fields=fields)
        self.assertEqual(response.code, 200, body)
        self.path = f"/files/holy-grail/{self.name}"

    def fetch(self, headers=None):
        """GET the large file, pumping the in-memory connection until it is done."""
        d = self.client.request("GET", ORIGIN + self.path, headers=headers or {})
        d.addCallback(lambda response: response.content().addCallback(
            lambda body: (response, body)))
        done = []
        d.addBoth(done.append)
        for _ in range(1000):
            if done:
                break
            self.cooperator_clock.advance(0)
            self.client.flush()
        self.assertEqual(len(done), 1, "the download did not finish")
        if isinstance(done[0], Failure):
            done[0].raiseException()
        return done[0]

    def test_whole(self):
        """A large file arrives whole and intact."""
        response, body = self.fetch()
        self.assertEqual(response.code, 200)
        self.assertEqual(body, self.data)

    def test_range(self):
        """A range of a large file arrives exactly."""
        response, body = self.fetch({"Range": "bytes=1000-299999"})
        self.assertEqual(response.code, 206)
        self.assertEqual(body, self.data[1000:300000])


class ImportedFolderTests(_ServerMixin, SynchronousTestCase):
    """Tests for files found in the storage folder, served before their sidecars are written."""

    on_disk = True

    def make_storage_run(self):
        """Storage work waits until the test runs it."""
        self.run = QueuedRun()
        return self.run

    def stored(self, record):
        """The bytes the storage keeps for C{record}, whichever backend it is."""
        location = self.storage.locate(record)
        return location.data if isinstance(location, MemoryFile) else read_file(location.path)

    def finish_storage_work(self):
        """Run the storage work queued so far."""
        self.run.run_all()

    def setUp(self):
        super().setUp()
        write_file(os.path.join(self.storage.root, "legacy", WHEEL_NAME), WHEEL)
        d = self.storage.scan({}, 0)
        self.run.run()
        self.index.load(self.successResultOf(d).records.values())
        self.assertEqual(len(self.run.pending), 1)
        self.path = f"/files/holy-grail/{WHEEL_NAME}"

    def test_file(self):
        """An imported file is served from where it lies."""
        response, body = self.get(self.path)
        self.assertEqual((response.code, body), (200, WHEEL))

    def test_metadata_from_memory(self):
        """Its metadata is served (whole, in ranges, and to HEAD) before its sidecar exists."""
        response, body = self.get(self.path + ".metadata")
        self.assertEqual((response.code, body), (200, WHEEL_META.encode()))
        etag = f'"{hashlib.sha256(body).hexdigest()}"'.encode()
        self.assertEqual(self.header(response, "ETag"), etag)
        response, body = self.get(self.path + ".metadata", headers={"Range": "bytes=0-9"})
        self.assertEqual((response.code, body), (206, WHEEL_META.encode()[:10]))
        response, body = self.request("HEAD", self.path + ".metadata")
        self.assertEqual((response.code, body), (200, b""))
        response, _ = self.get(self.path + ".metadata", headers={"If-None-Match": etag})
        self.assertEqual(response.code, 304)

    def test_metadata_after_write(self):
        """Once the sidecars are written, the same metadata is served from disk."""
        _, before = self.get(self.path + ".metadata")
        self.run.run_all()
        response, after = self.get(self.path + ".metadata")
        self.assertEqual((response.code, after), (200, before))

    def test_legacy_json(self):
        """The legacy JSON API reads the imported file's metadata too."""
        response, body = self.get("/pypi/holy-grail/json")
        self.assertEqual(response.code, 200)
        self.assertEqual(json.loads(body)["info"]["summary"], "The grail")


class BaseUrlTests(_ServerMixin, SynchronousTestCase):
    """Tests for a server with a configured public URL."""

    base_url = "https://pypi.example/"

    def test_redirect_to_base(self):
        """Redirects go to the configured public URL."""
        self.uploaded()
        response, _ = self.get("/simple/Holy.Grail/")
        self.assertEqual(self.header(response, "Location"),
                         b"https://pypi.example/simple/holy-grail/")

    def test_absolute_file_urls(self):
        """Pages link files by absolute URLs under the public URL."""
        self.uploaded()
        _, body = self.get("/simple/holy-grail/", headers={"Accept": JSON_TYPE})
        self.assertEqual(json.loads(body)["files"][0]["url"],
                         f"https://pypi.example/files/holy-grail/{WHEEL_NAME}")


class FilesTests(_ServerMixin, SynchronousTestCase):
    """Tests for C{/files/<project>/<filename>} and its C{.metadata}."""

    def setUp(self):
        super().setUp()
        self.uploaded()
        self.path = f"/files/holy-grail/{WHEEL_NAME}"
        self.etag = f'"{hashlib.sha256(WHEEL).hexdigest()}"'.encode()

    def test_whole(self):
        """A file is sent whole, as bytes, with immutable caching and its ETag."""
        response, body = self.get(self.path)
        self.assertEqual(response.code, 200)
        self.assertEqual(body, WHEEL)
        self.assertEqual(self.header(response, "Content-Type"), b"application/octet-stream")
        self.assertEqual(self.header(response, "ETag"), self.etag)
        self.assertEqual(self.header(response, "Accept-Ranges"), b"bytes")
        self.assertEqual(response.length, len(WHEEL))
        self.assertIn(b"immutable", self.header(response, "Cache-Control"))

    def test_range(self):
        """A single range gets 206 with the bytes and their Content-Range."""
        response, body = self.get(self.path, headers={"Range": "bytes=0-9"})
        self.assertEqual(response.code, 206)
        self.assertEqual(body, WHEEL[:10])
        self.assertEqual(self.header(response, "Content-Range"),
                         f"bytes 0-9/{len(WHEEL)}".encode())
        response, body = self.get(self.path, headers={"Range": "bytes=-22"})
        self.assertEqual((response.code, body), (206, WHEEL[-22:]))

    def test_unsatisfiable(self):
        """A range past the end gets 416 with the size."""
        response, _ = self.get(self.path, headers={"Range": f"bytes={len(WHEEL) + 10}-{len(WHEEL) + 20}"})
        self.assertEqual(response.code, 416)
        self.assertEqual(self.header(response, "Content-Range"), f"bytes */{len(WHEEL)}".encode())

    def test_resume_complete(self):
        """A resumed download that has every byte (C{bytes=<size>-}) gets 416."""
        response, _ = self.get(self.path, headers={"Range": f"bytes={len(WHEEL)}-"})
        self.assertEqual(response.code, 416)

    def test_if_range(self):
        """A range with a stale If-Range gets the whole file; with the current ETag, the range."""
        response, body = self.get(self.path, headers={"Range": "bytes=0-9", "If-Range": '"old"'})
        self.assertEqual((response.code, body), (200, WHEEL))
        response, body = self.get(self.path, headers={"Range": "bytes=0-9", "If-Range": self.etag})
        self.assertEqual((response.code, body), (206, WHEEL[:10]))

    def test_head(self):
        """HEAD gives the length and range support without the body."""
        response, body = self.request("HEAD", self.path)
        self.assertEqual(response.code, 200)
        self.assertEqual(body, b"")
        self.assertEqual(self.header(response, "Content-Length"), str(len(WHEEL)).encode())
        self.assertEqual(self.header(response, "Accept-Ranges"), b"bytes")

    def test_not_modified(self):
        """A matching If-None-Match gets 304."""
        response, body = self.get(self.path, headers={"If-None-Match": self.etag})
        self.assertEqual((response.code, body), (304, b""))

    def test_metadata(self):
        """C{<file>.metadata} is the wheel's METADATA, byte for byte."""
        response, body = self.get(self.path + ".metadata")
        self.assertEqual(response.code, 200)
        self.assertEqual(body, WHEEL_META.encode())
        sha = hashlib.sha256(body).hexdigest()
        self.assertEqual(self.header(response, "ETag"), f'"{sha}"'.encode())
        self.assertEqual(self.index.get_file(WHEEL_NAME).metadata_sha256, sha)

    def test_no_metadata(self):
        """An sdist whose metadata is not served has no C{.metadata}."""
        name, data = make_sdist("Holy.Grail", "1.0", metadata_version="2.1")
        self.uploaded(name, data)
        response, _ = self.get(f"/files/holy-grail/{name}.metadata")
        self.assertEqual(response.code, 404)
        response, body = self.get(f"/files/holy-grail/{name}")
        self.assertEqual((response.code, body), (200, data))

    def test_not_found(self):
        """Unknown files, the wrong project and other shapes of path are 404."""
        for path in ("/files/holy-grail/nope-1.0.tar.gz", f"/files/other/{WHEEL_NAME}",
                     f"/files/{WHEEL_NAME}", f"/files/a/holy-grail/{WHEEL_NAME}", "/files/"):
            response, _ = self.get(path)
            self.assertEqual(response.code, 404, path)

    def test_gone(self):
        """A deleted file (and its metadata) answers 410."""
        self.request("DELETE", f"/api/files/{WHEEL_NAME}", auth=True)
        response, _ = self.get(self.path)
        self.assertEqual(response.code, 410)
        response, _ = self.get(self.path + ".metadata")
        self.assertEqual(response.code, 404)


class ChangeApiTests(_ServerMixin, SynchronousTestCase):
    """Tests for the yank, unyank and delete API."""

    def setUp(self):
        super().setUp()
        self.uploaded()
        self.uploaded(SDIST_NAME, SDIST)

    def files(self):
        """The files of the JSON project page."""
        _, body = self.get("/simple/holy-grail/", headers={"Accept": JSON_TYPE})
        return {f["filename"]: f for f in json.loads(body)["files"]}

    def test_yank_file(self):
        """Yanking a file with a reason shows it on the page and persists in storage."""
        response, body = self.request("POST", f"/api/files/{WHEEL_NAME}/yank", auth=True,
                                      data={"reason": "broken build"})
        self.assertEqual((response.code, body), (200, b"OK\n"))
        self.assertEqual(self.files()[WHEEL_NAME]["yanked"], "broken build")
        self.assertEqual(self.files()[SDIST_NAME]["yanked"], False)
        scanned = self.successResultOf(self.storage.scan({}, 0)).records
        self.assertEqual(scanned[WHEEL_NAME].yanked, "broken build")

    def test_yank_reason_bounded(self):
        """
        A yank reason longer than YANK_REASON_BYTES is refused, naming the
        field, for a file and for a release; one of that length is taken.
        """
        from pypid.core.dists.model import YANK_REASON_BYTES
        for path in (f"/api/files/{WHEEL_NAME}/yank", "/api/projects/holy-grail/1.0/yank"):
            response, body = self.request("POST", path, auth=True,
                                          data={"reason": "\N{SNOWMAN}" * 101})
            self.assertEqual((response.code, body),
                             (400, f"reason: longer than {YANK_REASON_BYTES} bytes\n".encode()))
        self.assertEqual(self.files()[WHEEL_NAME]["yanked"], False)
        response, _ = self.request("POST", f"/api/files/{WHEEL_NAME}/yank", auth=True,
                                   data={"reason": "x" * YANK_REASON_BYTES})
        self.assertEqual(response.code, 200)
        self.assertEqual(self.files()[WHEEL_NAME]["yanked"], "x" * YANK_REASON_BYTES)

    def test_yank_without_reason(self):
        """A yank without a reason is C{true} in JSON and an empty data-yanked in HTML."""
        self.request("POST", f"/api/files/{WHEEL_NAME}/yank", auth=True)
        self.assertIs(self.files()[WHEEL_NAME]["yanked"], True)
        _, body = self.get("/simple/holy-grail/")
        self.assertIn(b'data-yanked=""', body)

    def test_unyank_file(self):
        """Unyanking undoes the yank."""
        self.request("POST", f"/api/files/{WHEEL_NAME}/yank", auth=True)
        response, _ = self.request("POST", f"/api/files/{WHEEL_NAME}/unyank", auth=True)
        self.assertEqual(response.code, 200)
        self.assertIs(self.files()[WHEEL_NAME]["yanked"], False)
        scanned = self.successResultOf(self.storage.scan({}, 0)).records
        self.assertIsNone(scanned[WHEEL_NAME].yanked)

    def test_delete_file(self):
        """Deleting a file removes it from the page and storage, keeping the others."""
        response, _ = self.request("DELETE", f"/api/files/{WHEEL_NAME}", auth=True)
        self.assertEqual(response.code, 200)
        self.assertEqual(list(self.files()), [SDIST_NAME])
        result = self.successResultOf(self.storage.scan({}, 0))
        self.assertEqual(list(result.records), [SDIST_NAME])
        self.assertEqual(result.tombstones, frozenset([WHEEL_NAME]))

    def test_release(self):
        """A release is yanked, unyanked and deleted as a whole."""
        response, _ = self.request("POST", "/api/projects/holy-grail/1.0/yank", auth=True,
                                   data={"reason": "CVE"})
        self.assertEqual(response.code, 200)
        self.assertEqual({f["yanked"] for f in self.files().values()}, {"CVE"})
        self.request("POST", "/api/projects/Holy.Grail/1.0/unyank", auth=True)
        self.assertEqual({f["yanked"] for f in self.files().values()}, {False})
        response, _ = self.request("DELETE", "/api/projects/holy-grail/1.0", auth=True)
        self.assertEqual(response.code, 200)
        self.assertEqual(self.files(), {})
        self.assertEqual(len(self.index), 0)

    def test_not_found(self):
        """Unknown files and releases are 404."""
        for method, path in (("POST", "/api/files/nope-1.0.tar.gz/yank"),
                             ("DELETE", "/api/files/nope-1.0.tar.gz"),
                             ("POST", "/api/projects/holy-grail/9.9/yank"),
                             ("DELETE", "/api/projects/nope/1.0")):
            response, _ = self.request(method, path, auth=True)
            self.assertEqual(response.code, 404, path)

    def test_needs_credentials(self):
        """Changes without (valid) credentials get 401 and change nothing."""
        for auth in (False, basic(password="wrong")):
            for method, path in (("POST", f"/api/files/{WHEEL_NAME}/yank"),
                                 ("DELETE", f"/api/files/{WHEEL_NAME}"),
                                 ("DELETE", "/api/projects/holy-grail/1.0")):
                response, _ = self.request(method, path, auth=auth)
                self.assertEqual(response.code, 401, path)
                self.assertIsNotNone(self.header(response, "WWW-Authenticate"))
        self.assertEqual(len(self.index), 2)
        self.assertEqual({f["yanked"] for f in self.files().values()}, {False})


class LegacyJsonTests(_ServerMixin, SynchronousTestCase):
    """Tests for C{/pypi/<project>/json} and C{/pypi/<project>/<version>/json}."""

    def setUp(self):
        super().setUp()
        self.uploaded()
        self.uploaded(SDIST_NAME, SDIST)
        name, data = make_wheel("Holy.Grail", "2.0b1")
        fields = twine_fields("Holy.Grail", "2.0b1", data)
        self.upload(name, data, fields=fields)

    def test_version_spelling_redirects(self):
        """Another spelling of a version redirects to the normalized one."""
        response, _ = self.get("/pypi/holy-grail/1.00/json")
        self.assertEqual(response.code, 301)
        self.assertEqual(self.header(response, "Location"), b"/pypi/holy-grail/1.0/json")

    def test_no_client_text_in_location(self):
        """A version that is not one is 404: nothing of it reaches a header."""
        response, _ = self.get("/pypi/Holy.Grail/1.0%0d%0aX-Injected:%20yes/json")
        self.assertEqual(response.code, 404)
        self.assertIsNone(self.header(response, "X-Injected"))

    def test_cached_and_revalidated(self):
        """The JSON carries an ETag, answers 304 to it, and changes after an upload."""
        response, body = self.get("/pypi/holy-grail/json")
        etag = self.header(response, "ETag")
        self.assertEqual(self.get("/pypi/holy-grail/json",
                                  headers={"If-None-Match": etag})[0].code, 304)
        name, data = make_wheel("Holy.Grail", "3.0")
        self.upload(name, data, fields=twine_fields("Holy.Grail", "3.0", data))
        response, body = self.get("/pypi/holy-grail/json")
        self.assertNotEqual(self.header(response, "ETag"), etag)
        self.assertEqual(json.loads(body)["info"]["version"], "3.0")

    def test_project(self):
        """The project endpoint describes the latest final release and lists every release."""
        response, body = self.get("/pypi/holy-grail/json")
        self.assertEqual(response.code, 200)
        self.assertEqual(self.header(response, "Content-Type"), b"application/json")
        data = json.loads(body)
        self.assertTrue({"info", "releases", "urls", "last_serial", "vulnerabilities"}
                        <= set(data))
        info = data["info"]
        self.assertEqual(info["name"], "Holy.Grail")
        self.assertEqual(info["version"], "1.0")
        self.assertEqual(info["summary"], "The grail")
        self.assertEqual(info["requires_python"], ">=3.8")
        self.assertEqual(info["requires_dist"], ["attrs"])
        self.assertEqual(sorted(data["releases"]), ["1.0", "2.0b1"])
        self.assertEqual(sorted(u["filename"] for u in data["urls"]),
                         sorted([WHEEL_NAME, SDIST_NAME]))
        wheel = next(u for u in data["urls"] if u["filename"] == WHEEL_NAME)
        self.assertEqual(wheel["packagetype"], "bdist_wheel")
        self.assertEqual(wheel["python_version"], "py3")
        self.assertEqual(wheel["digests"]["sha256"], hashlib.sha256(WHEEL).hexdigest())
        # (absolute, as the public index gives them: issue 60)
        # (by its digest, as the public index's file host names files)
        blake = hashlib.blake2b(WHEEL, digest_size=32).hexdigest()
        self.assertEqual(wheel["url"],
                         f"{ORIGIN}/packages/{blake[:2]}/{blake[2:4]}/{blake[4:]}/{WHEEL_NAME}")
        self.assertEqual(wheel["size"], len(WHEEL))
        # (the project's serial in the journal, as its header says)
        self.assertEqual(data["last_serial"], int(self.header(response, "X-PyPI-Last-Serial")))

    def test_file_url_works(self):
        """The legacy API's file URLs lead to the files."""
        _, body = self.get("/pypi/holy-grail/json")
        for entry in json.loads(body)["urls"]:
            self.assertTrue(entry["url"].startswith(ORIGIN + "/"), entry["url"])
            response, data = self.get(entry["url"][len(ORIGIN):])
            self.assertEqual(response.code, 200)
            self.assertEqual(hashlib.sha256(data).hexdigest(), entry["digests"]["sha256"])

    def test_version(self):
        """The version endpoint describes that release, without C{releases}."""
        response, body = self.get("/pypi/holy-grail/2.0b1/json")
        self.assertEqual(response.code, 200)
        data = json.loads(body)
        self.assertNotIn("releases", data)
        self.assertEqual(data["info"]["version"], "2.0b1")
        self.assertEqual([u["filename"] for u in data["urls"]],
                         ["holy_grail-2.0b1-py3-none-any.whl"])

    def test_redirect(self):
        """A non-normalized name is redirected (301) to the normalized one."""
        response, _ = self.get("/pypi/Holy.Grail/json")
        self.assertEqual((response.code, self.header(response, "Location")),
                         (301, b"/pypi/holy-grail/json"))
        response, _ = self.get("/pypi/Holy_Grail/1.0/json")
        self.assertEqual((response.code, self.header(response, "Location")),
                         (301, b"/pypi/holy-grail/1.0/json"))

    def test_not_found(self):
        """Unknown projects, invalid names and unknown versions are 404."""
        for path in ("/pypi/nope/json", "/pypi/-bad/json", "/pypi/holy-grail/9.0/json"):
            response, _ = self.get(path)
            self.assertEqual(response.code, 404, path)

    def test_all_deleted(self):
        """A project with no files left is 404."""
        self.request("DELETE", "/api/projects/holy-grail/1.0", auth=True)
        self.request("DELETE", "/api/projects/holy-grail/2.0b1", auth=True)
        response, _ = self.get("/pypi/holy-grail/json")
        self.assertEqual(response.code, 404)


class WriteOnlyTests(_ServerMixin, SynchronousTestCase):
    """
    A write grant without read (issue 15, 3 and 7): dave may upload to,
    yank, unyank and delete in holy-grail without reading it; eve may do
    neither, and is refused alike whether what she names exists or not,
    before anything is looked up.
    """

    def access_model(self):
        from pypid.core.access.access_rules import parse_rule
        return AccessModel(read=self.read, rules=(parse_rule("holy-grail", "user:dave w"),))

    def setUp(self):
        super().setUp()
        response, body = self.upload(auth=basic("dave"))
        self.assertEqual(response.code, 200, body)

    def test_writer_changes_without_read(self):
        """Yank, unyank and delete, of a file and of a release, answer 200 for dave."""
        dave = basic("dave")
        self.assertEqual(self.get("/simple/holy-grail/", auth=dave)[0].code, 404)
        for method, path in (("POST", f"/api/files/{WHEEL_NAME}/yank"),
                             ("POST", f"/api/files/{WHEEL_NAME}/unyank"),
                             ("POST", "/api/projects/holy-grail/1.0/yank"),
                             ("POST", "/api/projects/holy-grail/1.0/unyank"),
                             ("DELETE", "/api/projects/holy-grail/1.0")):
            response, body = self.request(method, path, auth=dave)
            self.assertEqual(response.code, 200, (path, body))
        self.assertTrue(self.index.is_deleted(WHEEL_NAME))
        # (a writer learns whether what it names exists)
        self.assertEqual(self.request("DELETE", "/api/projects/holy-grail/1.0",
                                      auth=dave)[0].code, 404)

    def test_neither_refused_alike(self):
        """
        eve gets the same 404 for a file or release that exists and one
        that does not, and the index is not asked (so the time does not
        tell them apart either).
        """
        eve = basic("eve")
        asked = []
        self.patch(Index, "get_file", lambda *a, **k: asked.append(a[1:]))
        self.patch(Index, "project", lambda *a, **k: asked.append(a[1:]))
        answers = set()
        for method, path in (("POST", f"/api/files/{WHEEL_NAME}/yank"),
                             ("POST", "/api/files/holy_grail-9.9-py3-none-any.whl/yank"),
                             ("DELETE", "/api/projects/holy-grail/1.0"),
                             ("DELETE", "/api/projects/holy-grail/9.9"),
                             ("POST", "/api/projects/holy-grail/1.0/unyank")):
            response, body = self.request(method, path, auth=eve)
            answers.add((response.code, body))
        self.assertEqual(answers, {(404, b"no such file or release\n")})
        self.assertEqual(asked, [])


#: names no project may have, to send every route (issue 15, 4): lookalikes of
#: ASCII letters, other scripts, invisible and control characters, and URL tricks
CONFUSABLE_NAMES = (
    "\u017fecret-thing", "\u212aey", "caf\u00e9", "\uff21\uff22", "a\u200bb", "\u0130x",
    "x\u0661", "holy\u2010grail", "holy\u00adgrail", "\U0001d5c1oly", "a\x00b", "a\r\nb",
    "..", ".", "-", "_x_", "x" * 300, "a/b", "a%2fb", "holy grail",
)


class HostileNameTests(_ServerMixin, SynchronousTestCase):
    """Every route given names no project may have answers 4xx, never 5xx."""

    def setUp(self):
        super().setUp()
        self.uploaded()

    def test_every_route(self):
        from urllib.parse import quote
        answers = {}
        for name in CONFUSABLE_NAMES:
            q = quote(name, safe="")
            for method, path in (
                    ("GET", f"/simple/{q}/"), ("GET", f"/simple/{q}"),
                    ("GET", f"/project/{q}/"), ("GET", f"/project/{q}"),
                    ("GET", f"/project/{q}/1.0/"), ("GET", f"/pypi/{q}/json"),
                    ("GET", f"/pypi/{q}/1.0/json"), ("GET", f"/files/{q}/{q}-1.0.tar.gz"),
                    ("GET", f"/files/holy-grail/{q}-1.0.tar.gz.metadata"),
                    ("GET", f"/search?q={q}"), ("GET", f"/api/search?q={q}"),
                    ("POST", f"/api/projects/{q}/1.0/yank"),
                    ("DELETE", f"/api/projects/{q}/1.0"),
                    ("POST", f"/api/files/{q}-1.0.tar.gz/yank")):
                response, body = self.request(method, path, auth=method != "GET")
                answers[(method, path)] = response.code
                self.assertLess(response.code, 500, (method, path, body[:200]))
            # An upload under such a name is refused, saying why.
            filename = f"{name.replace('/', '_')}-1.0.tar.gz"
            fields = twine_fields(name, "1.0", SDIST, filetype="sdist", pyversion="source")
            ctype, body = multipart_body(fields, [("content", filename, SDIST)])
            response, body = self.request("POST", "/legacy/", headers={"Content-Type": ctype},
                                          auth=True, data=body)
            self.assertEqual(response.code, 400, (name, body))
        self.assertEqual(len(self.index), 1)
        # (the searches answer 200, with nothing found; everything else is 4xx)
        self.assertEqual({code for (_, path), code in answers.items()
                          if "search" not in path} - {400, 404, 405}, set())


class MiscTests(_ServerMixin, SynchronousTestCase):
    """Tests for C{/health} and the landing page."""

    on_disk = True

    def test_health(self):
        """
        C{/health} says the server and its storage are up, uncached, and
        nothing of the index: an upload does not change its answer (issue
        15: its counts and serial told anyone of private uploads).
        """
        response, before = self.get("/health")
        self.assertEqual(response.code, 200)
        self.assertEqual(self.header(response, "Content-Type"), b"application/json")
        self.assertEqual(self.header(response, "Cache-Control"), b"no-store")
        self.assertEqual(json.loads(before), {"status": "ok", "storage": "ok"})
        self.uploaded()
        self.assertEqual(self.get("/health")[1], before)

    def test_landing(self):
        """C{/} is a page for people saying how to install and publish."""
        response, body = self.get("/")
        self.assertEqual(response.code, 200)
        self.assertEqual(self.header(response, "Content-Type"), b"text/html; charset=utf-8")
        self.assertIn(b"pypid", body)
        self.assertIn(b"0 projects, 0 files", body)
        self.assertIn(b"twine upload", body)

    def test_unknown_path(self):
        """Paths the server does not have are 404, in plain text."""
        response, body = self.get("/nope")
        self.assertEqual(response.code, 404)
        self.assertEqual(self.header(response, "Content-Type"), b"text/plain; charset=utf-8")
        self.assertEqual(body, b"no such page\n")

    def test_wrong_method(self):
        """A method a route does not take is 405 in plain text, with Allow."""
        response, body = self.request("PUT", "/health")
        self.assertEqual(response.code, 405)
        self.assertEqual(self.header(response, "Content-Type"), b"text/plain; charset=utf-8")
        self.assertIn(b"GET", self.header(response, "Allow"))

    def test_root_wrong_method(self):
        """
        C{/} is split between two areas by method; one neither takes is 405
        naming the methods of both.
        """
        response, body = self.request("PUT", "/")
        self.assertEqual(response.code, 405)
        self.assertEqual(self.header(response, "Allow"), b"GET, HEAD, POST")
        self.assertEqual(body, b"this URL does not take PUT; it takes GET, HEAD, POST\n")

    def test_areas_claim_distinct_paths(self):
        """
        Two areas with routes under the same first segment, or a route
        starting with a variable, cannot be dispatched: building the tree
        says so rather than leaving a route nobody reaches.
        """
        first, second, variable = Klein(), Klein(), Klein()
        first.route("/health/a")(lambda request: b"")
        second.route("/health/b")(lambda request: b"")
        variable.route("/<string:name>")(lambda request: b"")
        for areas in ([first, second], [variable]):
            self.assertRaises(ValueError, Areas, [_Area(app) for app in areas])

    def test_health_storage_down(self):
        """When the storage folder is gone, C{/health} answers 503 and says so."""
        os.rename(self.storage.root, self.storage.root + ".away")
        self.addCleanup(os.rename, self.storage.root + ".away", self.storage.root)
        response, body = self.get("/health")
        self.assertEqual(response.code, 503)
        self.assertEqual(json.loads(body)["storage"], "down")

    def test_redirects_ignore_host(self):
        """
        A URL without its last slash, or naming a project otherwise than
        normalized, redirects within this server, whatever C{Host} says
        (issue 15, 6: C{/project/x} was said to answer with C{Host}'s URL).
        """
        self.uploaded()
        evil = {"Host": "evil.example"}
        for path, target in (("/project/holy-grail", b"/project/holy-grail/"),
                             ("/project/Holy.Grail/", b"/project/holy-grail/"),
                             ("/project/holy-grail/1.0", b"/project/holy-grail/1.0/"),
                             ("/simple", b"/simple/"),
                             ("/simple/holy-grail", b"/simple/holy-grail/"),
                             ("/simple/Holy_Grail/", b"/simple/holy-grail/")):
            response, _ = self.get(path, headers=evil)
            self.assertEqual((response.code, self.header(response, "Location")), (301, target),
                             path)

    def test_project_page(self):
        """C{/project/<p>/} shows people the project's files, escaped, with its own CSP."""
        self.uploaded()
        response, body = self.get("/project/holy-grail/")
        self.assertEqual(response.code, 200)
        self.assertIn(WHEEL_NAME.encode(), body)
        self.assertIn(b"pip install --index-url", body)
        self.assertIn(b"default-src 'none'", self.header(response, "Content-Security-Policy"))
        self.assertEqual(self.header(response, "X-Content-Type-Options"), b"nosniff")
        self.assertEqual(self.get("/project/nothing-here/")[0].code, 404)


class PrivateReadTests(_ServerMixin, SynchronousTestCase):
    """Tests for C{[auth] read = authenticated}."""

    read = "authenticated"

    def setUp(self):
        super().setUp()
        self.uploaded()

    def test_anonymous_refused(self):
        """Anonymous reads of pages, files, metadata, JSON and the landing page get 401 + challenge."""
        for path in ("/simple/", "/simple/holy-grail/", f"/files/holy-grail/{WHEEL_NAME}",
                     f"/files/holy-grail/{WHEEL_NAME}.metadata", "/pypi/holy-grail/json", "/"):
            response, body = self.get(path)
            self.assertEqual(response.code, 401, path)
            self.assertEqual(self.header(response, "WWW-Authenticate"), b'Basic realm="pypid"')
            self.assertNotIn(WHEEL_NAME.encode(), body)

    def test_wrong_password_refused(self):
        """Reads with a wrong password get 401."""
        response, _ = self.get("/simple/holy-grail/", auth=basic(password="nope"))
        self.assertEqual(response.code, 401)

    def test_authenticated(self):
        """Reads with valid credentials are served."""
        for path in ("/simple/", "/simple/holy-grail/", f"/files/holy-grail/{WHEEL_NAME}",
                     "/pypi/holy-grail/json", "/"):
            response, _ = self.get(path, auth=True)
            self.assertEqual(response.code, 200, path)
        response, body = self.get(f"/files/holy-grail/{WHEEL_NAME}", auth=True)
        self.assertEqual(body, WHEEL)

    def test_not_modified_has_no_length(self):
        """A 304 behind the read gate gives no Content-Length of its own."""
        auth = {"Authorization": basic().decode()}
        response, _ = self.raw("GET", "/simple/holy-grail/", headers=auth)
        etag = self.header(response, "ETag").decode()
        response, _ = self.raw("GET", "/simple/holy-grail/", headers=dict(auth, **{"If-None-Match": etag}))
        self.assertEqual(response.code, 304)
        self.assertIsNone(self.header(response, "Content-Length"))

    def test_head_length(self):
        """A HEAD of a page behind the read gate still says the page's length."""
        _, body = self.raw("GET", "/simple/holy-grail/", headers={"Authorization": basic().decode()})
        response, empty = self.raw("HEAD", "/simple/holy-grail/",
                                   headers={"Authorization": basic().decode()})
        self.assertEqual((response.code, empty), (200, b""))
        self.assertEqual(self.header(response, "Content-Length"), b"%d" % len(body))

    def test_unknown_project_hidden(self):
        """Without credentials an unknown project is 401 too, so names do not leak."""
        response, _ = self.get("/simple/nope/")
        self.assertEqual(response.code, 401)


class ConcurrencyTests(_ServerMixin, SynchronousTestCase):
    """
    Tests for requests on one distribution that overlap: storage work waits
    until the test runs it, so the test decides how the work interleaves.
    """

    on_disk = True

    def make_storage_run(self):
        """Storage work waits until the test runs it."""
        self.run = QueuedRun()
        return self.run

    def stored(self, record):
        """The bytes the storage keeps for C{record}, whichever backend it is."""
        location = self.storage.locate(record)
        return location.data if isinstance(location, MemoryFile) else read_file(location.path)

    def finish_storage_work(self):
        """Run the storage work queued so far."""
        self.run.run_all()

    def start_upload(self, filename=WHEEL_NAME, data=WHEEL, **fields):
        """Begin an upload; return the Deferred of its response."""
        values = {} if filename.endswith(".whl") else {"filetype": "sdist",
                                                        "pyversion": "source"}
        values.update(fields)
        ctype, body = multipart_body(twine_fields("Holy.Grail", "1.0", data, **values),
                                     [("content", filename, data)])
        return self.client.request("POST", ORIGIN + "/legacy/", data=body,
                                   headers={"Content-Type": ctype, "Authorization": basic()})

    def code(self, d):
        """The status of a finished response."""
        self.client.flush()
        response = self.successResultOf(d)
        self.successResultOf(response.content())
        return response.code

    def test_identical_uploads(self):
        """
        Of two identical uploads at once, the second answers only once the
        file is indexed: a 200 always means the file is served.
        """
        first, second = self.start_upload(), self.start_upload()
        self.assertEqual(len(self.run.pending), 1)
        self.assertNoResult(second)
        self.run.run_all()
        self.assertEqual((self.code(first), self.code(second)), (200, 200))
        self.assertIsNotNone(self.index.get_file(WHEEL_NAME))
        self.assertEqual(os.listdir(self.storage.temp_dir), [])

    def test_two_sdists_at_once(self):
        """Two sdists of one release uploaded at once: one is stored, the other refused."""
        zip_name, zip_data = make_sdist_zip("Holy.Grail", "1.0")
        first, second = self.start_upload(SDIST_NAME, SDIST), self.start_upload(zip_name, zip_data)
        self.run.run_all()
        self.assertEqual(sorted([self.code(first), self.code(second)]), [200, 400])
        self.assertEqual([r.filename for r in self.index.records()], [SDIST_NAME])

    def test_yank_and_delete_at_once(self):
        """A yank and a delete of one file at once: the file ends deleted, for good."""
        d = self.start_upload()
        self.run.run_all()
        self.assertEqual(self.code(d), 200)
        yank = self.client.request("POST", ORIGIN + f"/api/files/{WHEEL_NAME}/yank",
                                   headers={"Authorization": basic()})
        delete = self.client.request("DELETE", ORIGIN + f"/api/files/{WHEEL_NAME}",
                                     headers={"Authorization": basic()})
        self.assertEqual(len(self.run.pending), 1)
        self.run.run_all()
        self.assertEqual(self.code(yank), 200)
        self.assertIn(self.code(delete), (200, 404))
        self.assertIsNone(self.index.get_file(WHEEL_NAME))
        self.assertTrue(self.index.is_deleted(WHEEL_NAME))
        scanned = self.storage.scan({}, 0)
        self.run.run_all()
        self.assertEqual(self.successResultOf(scanned).tombstones, frozenset([WHEEL_NAME]))


class ChangedCredentialsTests(_ServerMixin, SynchronousTestCase):
    """
    Tests for changes whose credentials are revoked, or whose user is
    removed, while they are under way (a password being hashed, a body
    arriving or inspected): the change is refused as it commits, and
    nothing is changed (issue 25, defect 7: before, each answered 200).
    """

    def hashing_pool(self):
        """Hashes wait until the test finishes them."""
        self.pool = PendingPool()
        return self.pool

    def make_run(self):
        """Bodies and inspections wait until the test runs them."""
        self.run = QueuedRun()
        return self.run

    def token_book(self):
        """Tokens of alice's."""
        self.tokens = TokenBook(self.clock)
        return self.tokens

    def start(self, method, path, headers=None, data=None, auth=None):
        """Begin a request; return the Deferred of its response."""
        headers = dict(headers or {})
        headers["Authorization"] = auth or basic()
        return self.client.request(method, ORIGIN + path, headers=headers, data=data)

    def start_upload(self, auth=None):
        """Begin an upload of the wheel."""
        ctype, body = multipart_body(twine_fields("Holy.Grail", "1.0", WHEEL),
                                     [("content", WHEEL_NAME, WHEEL)])
        return self.start("POST", "/legacy/", {"Content-Type": ctype}, body, auth)

    def finish(self, d):
        """Run every step still waiting; return C{(code, body)} of C{d}'s response."""
        for _ in range(10):
            self.pool.finish()
            self.run.run_all()
            self.client.flush()
        response = self.successResultOf(d)
        return response.code, self.successResultOf(response.content())

    def reload(self, users=USERS, model=None):
        """Reload the users and rules, as SIGHUP does."""
        verifier = PasswordVerifier(users, self.clock, None, run_in_pool=run_in_pool_now)
        self.access.reconfigure(model or self.access_model(), verifier, self.tokens)

    def test_yank_by_user_removed_during_check(self):
        """A yank whose user is removed while the password is hashed is refused."""
        self.assertEqual(self.finish(self.start_upload())[0], 200)
        yank = self.start("POST", f"/api/files/{WHEEL_NAME}/yank", auth=basic("dave"))
        self.assertEqual(len(self.pool.pending), 1)
        self.reload({name: USERS[name] for name in ("alice", "eve")})
        code, body = self.finish(yank)
        self.assertEqual(code, 401, body)
        self.assertIn(b"revoked", body)
        self.assertIsNone(self.index.get_file(WHEEL_NAME).yanked)

    def test_upload_by_user_removed_while_under_way(self):
        """An upload whose user is removed while its body is read is refused, and not stored."""
        self.pool.finish()
        upload = self.start_upload()
        self.pool.finish()  # (checked before the body)
        self.reload({"eve": USERS["eve"]})
        code, body = self.finish(upload)
        self.assertEqual(code, 401, body)
        self.assertIsNone(self.index.get_file(WHEEL_NAME))

    def test_upload_by_token_revoked_while_under_way(self):
        """An upload whose token is revoked while its body is read is refused, and not stored."""
        text, token = self.tokens.issue("alice", ["upload"])
        upload = self.start_upload(basic("__token__", text))
        self.tokens.revoke(token.id)
        code, body = self.finish(upload)
        self.assertEqual(code, 401, body)
        self.assertIsNone(self.index.get_file(WHEEL_NAME))

    def inspecting(self):
        """Run the steps waiting until the upload's inspection is the one left waiting."""
        self.pool.finish()
        self.client.flush()
        while self.run.pending and self.run.pending[0][1] is not inspect:
            self.run.run()
            self.client.flush()
        self.assertEqual([f for _, f, _ in self.run.pending], [inspect])

    def test_upload_whose_rights_are_withdrawn(self):
        """
        An upload whose user loses the right to write while its file is
        inspected (after the rights were checked) is refused.
        """
        upload = self.start_upload()
        self.inspecting()
        self.reload(model=AccessModel(rules=(parse_rule("holy-grail", "user:eve rw"),)))
        code, body = self.finish(upload)
        self.assertEqual(code, 403, body)
        self.assertIsNone(self.index.get_file(WHEEL_NAME))

    def test_reload_keeping_the_user(self):
        """A reload that keeps the user and its rights lets the change through."""
        upload = self.start_upload()
        self.pool.finish()
        self.reload()
        self.assertEqual(self.finish(upload)[0], 200)
        text, token = self.tokens.issue("alice", ["upload"])
        yank = self.start("POST", f"/api/files/{WHEEL_NAME}/yank",
                          auth=basic("__token__", text))
        self.assertEqual(self.finish(yank)[0], 200)
        self.assertIsNotNone(self.index.get_file(WHEEL_NAME).yanked)


class TokenIndexScopeTests(_ServerMixin, SynchronousTestCase):
    """
    A token kept to other indexes (issue 26) neither uploads to nor reads
    the index of today's URLs; one kept to C{default} does.
    """

    read = "authenticated"

    def token_book(self):
        """Tokens of alice's."""
        self.tokens = TokenBook(self.clock)
        return self.tokens

    def token(self, *indexes):
        text, token = self.tokens.make("alice", {"read", "upload"}, indexes=indexes)
        self.tokens.tokens[token.id] = token
        return basic("__token__", text)

    def test_kept_elsewhere(self):
        """A token kept to staging: 403 on upload, 404 on a read of the default index."""
        elsewhere = self.token("staging")
        response, body = self.upload(auth=elsewhere)
        self.assertEqual(response.code, 403, body)
        self.uploaded()
        response, _ = self.get("/simple/holy-grail/", auth=elsewhere)
        self.assertEqual(response.code, 404)
        response, body = self.get("/simple/", auth=elsewhere)
        self.assertNotIn(b"holy-grail", body)

    def test_kept_to_default(self):
        """A token kept to the default index works there as an unscoped one does."""
        here = self.token("default")
        response, body = self.upload(auth=here)
        self.assertEqual(response.code, 200, body)
        response, _ = self.get("/simple/holy-grail/", auth=here)
        self.assertEqual(response.code, 200)


class StorageFailureTests(_ServerMixin, SynchronousTestCase):
    """Tests for storage failures: 503 with Retry-After, and nothing half done."""

    on_disk = True

    def break_record_writes(self):
        """Make record writes fail as on a full disk, until the returned undo is called."""
        real = sidecars._write_atomic

        def failing(path, data, tmp_dir, durable=True):
            if path.endswith(".json"):
                raise OSError(28, "No space left on device")
            return real(path, data, tmp_dir, durable)
        self.patch(sidecars, "_write_atomic", failing)
        return lambda: self.patch(sidecars, "_write_atomic", real)

    def test_publish_failure_rolled_back(self):
        """A publish that fails after the link takes the file back, so a retry stores it."""
        undo = self.break_record_writes()
        response, body = self.upload()
        self.assertEqual(response.code, 503, body)
        self.assertEqual(self.header(response, "Retry-After"), b"30")
        self.assertFalse(os.path.exists(os.path.join(self.storage.root, WHEEL_NAME)))
        undo()
        self.uploaded()
        self.assertIsNotNone(self.index.get_file(WHEEL_NAME))

    def test_record_refused(self):
        """
        A record the storage cannot keep (S3's 2 KB of user metadata) is a
        400 saying why, not a 503 to retry; nothing is indexed.
        """
        self.patch(type(self.storage), "publish", lambda storage, *args: fail(RecordRefused(
            "its record needs 2100 bytes of S3 user metadata")))
        response, body = self.upload()
        self.assertEqual(response.code, 400, body)
        self.assertIn(b"its record needs 2100 bytes of S3 user metadata", body)
        self.assertIsNone(self.index.get_file(WHEEL_NAME))

    def test_yank_failure(self):
        """A yank the storage cannot write answers 503, and the index is unchanged."""
        self.uploaded()
        self.break_record_writes()
        response, body = self.request("POST", f"/api/files/{WHEEL_NAME}/yank", auth=True)
        self.assertEqual(response.code, 503, body)
        self.assertIsNone(self.index.get_file(WHEEL_NAME).yanked)



class _Relocated:
    """
    A storage that keeps its files in a L{LocalStorage} but hands out the
    locations a test sets, as a remote backend (S3) would: a redirect, a
    relay or bytes fetched first.

    @ivar files: C{record -> location} for files, or L{None} for the local one.
    @ivar metadata: the same for metadata.
    @ivar metadata_error: an exception L{read_metadata} fails with, if any.
    """

    def __init__(self, storage):
        self._storage = storage
        self.files = None
        self.metadata = None
        self.metadata_error = None

    def __getattr__(self, name):
        return getattr(self._storage, name)

    def locate(self, record):
        """The test's location for the file, else the local one."""
        return (self.files or self._storage.locate)(record)

    def locate_metadata(self, record):
        """The test's location for the metadata, else the local one."""
        return (self.metadata or self._storage.locate_metadata)(record)

    def read_metadata(self, record):
        """The local metadata, unless the test made reading it fail."""
        if self.metadata_error is not None:
            return fail(self.metadata_error)
        return self._storage.read_metadata(record)


class RemoteFilesTests(_ServerMixin, SynchronousTestCase):
    """
    Tests for C{/files/} when the storage keeps files elsewhere: redirects to
    them, relays from them, and metadata fetched before it is sent.
    """

    on_disk = True

    SIGNED = "https://bucket.example/{}?X-Amz-Expires=300&X-Amz-Signature=0ff1ce"

    def served_storage(self, storage):
        """The local storage behind a L{_Relocated} one."""
        self.relocated = _Relocated(storage)
        return self.relocated

    def setUp(self):
        super().setUp()
        self.uploaded()
        self.path = f"/files/holy-grail/{WHEEL_NAME}"
        self.etag = f'"{hashlib.sha256(WHEEL).hexdigest()}"'.encode()
        self.meta = WHEEL_META.encode()
        self.meta_etag = f'"{hashlib.sha256(self.meta).hexdigest()}"'.encode()

    def remote(self, **kwargs):
        """Serve the wheel from a L{FakeRemote}; return it."""
        remote = FakeRemote(WHEEL, **kwargs)
        self.relocated.files = lambda record: remote.location()
        return remote

    def remote_metadata(self, read):
        """Serve the metadata as L{RemoteBytes} read by C{read}; return the reads made."""
        reads = []

        def counted():
            reads.append(True)
            return read()
        self.relocated.metadata = lambda record: RemoteBytes(counted)
        return reads

    def test_redirect(self):
        """A file kept elsewhere is a 302 to its URL, never cached; HEAD too."""
        self.relocated.files = lambda record: Redirect(self.SIGNED.format(record.filename))
        location = self.SIGNED.format(WHEEL_NAME).encode()
        for method in ("GET", "HEAD"):
            response, _ = self.request(method, self.path)
            self.assertEqual(response.code, 302, method)
            self.assertEqual(self.header(response, "Location"), location)
            self.assertEqual(self.header(response, "Cache-Control"), b"no-store")
            self.assertIsNone(self.header(response, "ETag"))

    def test_redirect_metadata(self):
        """A file's metadata kept elsewhere is a 302 to its own URL; HEAD too."""
        self.relocated.metadata = lambda record: Redirect(
            self.SIGNED.format(record.filename + ".metadata"))
        for method in ("GET", "HEAD"):
            response, _ = self.request(method, self.path + ".metadata")
            self.assertEqual(response.code, 302, method)
            self.assertEqual(self.header(response, "Location"),
                             self.SIGNED.format(WHEEL_NAME + ".metadata").encode())
            self.assertEqual(self.header(response, "Cache-Control"), b"no-store")

    def test_redirect_refused(self):
        """A redirect URL that would break the header is refused: no Location, no injected header."""
        self.relocated.files = lambda record: Redirect("https://bucket.example/x\r\nSet-Cookie: a=b")
        with capturedLogs():
            response, body = self.get(self.path)
        self.assertEqual(response.code, 500)
        self.assertIsNone(self.header(response, "Location"))
        self.assertIsNone(self.header(response, "Set-Cookie"))
        self.assertNotIn(b"Traceback", body)

    def test_relay(self):
        """A file relayed from the store arrives whole, with its headers, in one fetch."""
        remote = self.remote()
        response, body = self.get(self.path)
        self.assertEqual((response.code, body), (200, WHEEL))
        self.assertEqual(remote.fetched, [(0, len(WHEEL))])
        self.assertEqual(self.header(response, "ETag"), self.etag)
        self.assertEqual(response.length, len(WHEEL))
        self.assertIn(b"immutable", self.header(response, "Cache-Control"))

    def test_relay_range(self):
        """A Range GET fetches just that range and answers 206 with its Content-Range."""
        remote = self.remote()
        response, body = self.get(self.path, headers={"Range": "bytes=100-199"})
        self.assertEqual((response.code, body), (206, WHEEL[100:200]))
        self.assertEqual(remote.fetched, [(100, 100)])
        self.assertEqual(self.header(response, "Content-Range"),
                         f"bytes 100-199/{len(WHEEL)}".encode())

    def test_relay_without_fetch(self):
        """HEAD, a matching If-None-Match and an unsatisfiable range never ask the store."""
        remote = self.remote()
        response, body = self.request("HEAD", self.path)
        self.assertEqual((response.code, body), (200, b""))
        self.assertEqual(self.header(response, "Content-Length"), str(len(WHEEL)).encode())
        response, body = self.get(self.path, headers={"If-None-Match": self.etag})
        self.assertEqual((response.code, body), (304, b""))
        response, _ = self.get(self.path, headers={"Range": f"bytes={len(WHEEL)}-"})
        self.assertEqual(response.code, 416)
        self.assertEqual(remote.fetched, [])

    def test_relay_later(self):
        """A store that answers later: the response waits for it, then carries the file."""
        remote = self.remote(pending=True)
        d = self.client.get(ORIGIN + self.path)
        self.client.flush()
        self.assertNoResult(d)
        remote.answer()
        self.client.flush()
        response = self.successResultOf(d)
        self.assertEqual((response.code, self.successResultOf(response.content())), (200, WHEEL))

    def test_relay_cut_short(self):
        """A body the store cuts short reaches the client as a failed download, not a short file."""
        remote = self.remote(hold=True)
        d = self.client.get(ORIGIN + self.path)
        self.client.flush()
        upstream = remote.responses[0]
        upstream.send(WHEEL[:100])
        with capturedLogs():
            upstream.end(ResponseFailed([Failure(ConnectionLost())]))
        self.client.flush()
        response = self.successResultOf(d)
        self.assertEqual(response.code, 200)
        self.failureResultOf(response.content(), ResponseFailed)

    def test_relay_storage_error(self):
        """A store that is unavailable gets 503 with Retry-After, not a 500 or a traceback."""
        self.remote(error=StorageError("bucket down"))
        with capturedLogs():
            response, body = self.get(self.path)
        self.assertEqual(response.code, 503)
        self.assertEqual(self.header(response, "Retry-After"), b"30")
        self.assertEqual(body, b"the storage is unavailable: bucket down\n")
        self.assertIsNone(self.header(response, "ETag"))

    def test_relay_missing(self):
        """A file missing from the store gets 404 and an error in the log."""
        self.remote(error=FileNotFoundError("no such key"))
        with capturedLogs() as events:
            response, body = self.get(self.path)
        self.assertEqual((response.code, body), (404, b"the stored file is missing\n"))
        self.assertIn(LogLevel.error, [e["log_level"] for e in events])

    def test_remote_metadata(self):
        """Metadata fetched from the store is sent like any other: whole, in ranges, to HEAD, 304."""
        self.remote_metadata(lambda: succeed(self.meta))
        response, body = self.get(self.path + ".metadata")
        self.assertEqual((response.code, body), (200, self.meta))
        self.assertEqual(self.header(response, "ETag"), self.meta_etag)
        response, body = self.get(self.path + ".metadata", headers={"Range": "bytes=0-9"})
        self.assertEqual((response.code, body), (206, self.meta[:10]))
        response, body = self.request("HEAD", self.path + ".metadata")
        self.assertEqual((response.code, body), (200, b""))
        self.assertEqual(self.header(response, "Content-Length"), str(len(self.meta)).encode())
        response, _ = self.get(self.path + ".metadata", headers={"If-None-Match": self.meta_etag})
        self.assertEqual(response.code, 304)

    def test_remote_metadata_later(self):
        """Metadata the store delivers later is sent once it comes."""
        later = Deferred()
        self.remote_metadata(lambda: later)
        d = self.client.get(ORIGIN + self.path + ".metadata")
        self.client.flush()
        self.assertNoResult(d)
        later.callback(self.meta)
        self.client.flush()
        response = self.successResultOf(d)
        self.assertEqual(self.successResultOf(response.content()), self.meta)

    def test_remote_metadata_failure(self):
        """Metadata the store cannot give is 503 (store down) or 404 (missing), in plain text."""
        for error, code, retry in ((StorageError("bucket down"), 503, b"30"),
                                   (FileNotFoundError("no such key"), 404, None)):
            reads = self.remote_metadata(lambda error=error: fail(error))
            with capturedLogs():
                response, body = self.get(self.path + ".metadata")
            self.assertEqual(len(reads), 1)
            self.assertEqual(response.code, code, error)
            self.assertEqual(self.header(response, "Retry-After"), retry)
            self.assertEqual(self.header(response, "Content-Type"), b"text/plain; charset=utf-8")
            self.assertIsNone(self.header(response, "ETag"))

    def test_legacy_json_storage_down(self):
        """The legacy JSON API answers 503 with Retry-After when the metadata cannot be read."""
        self.relocated.metadata_error = StorageError("bucket down")
        with capturedLogs():
            response, body = self.get("/pypi/holy-grail/json")
        self.assertEqual(response.code, 503, body)
        self.assertEqual(self.header(response, "Retry-After"), b"30")
        self.relocated.metadata_error = None
        response, body = self.get("/pypi/holy-grail/json")
        self.assertEqual(json.loads(body)["info"]["summary"], "The grail")

    def test_legacy_json_metadata_missing(self):
        """A file whose metadata is missing is passed over by the legacy JSON API, not a failure."""
        self.relocated.metadata_error = FileNotFoundError("no such key")
        with capturedLogs():
            response, body = self.get("/pypi/holy-grail/json")
        self.assertEqual(response.code, 200, body)
        info = json.loads(body)["info"]
        self.assertEqual((info["version"], info["requires_python"]), ("1.0", ">=3.8"))
        self.assertNotEqual(info["summary"], "The grail")


class PrivateRemoteFilesTests(RemoteFilesTests):
    """The same, behind the read gate: the answers complete after the credentials are checked."""

    read = "authenticated"

    def request(self, method, path, headers=None, auth=True, **kwargs):
        """Make a request with valid credentials."""
        return super().request(method, path, headers, auth, **kwargs)

    def setUp(self):
        super().setUp()
        self.client = _Authenticated(self.client)

    def test_anonymous(self):
        """Without credentials, neither a redirect nor a relay is given, and the store is not asked."""
        remote = self.remote()
        response, _ = super().request("GET", self.path, auth=False)
        self.assertEqual(response.code, 401)
        self.relocated.files = lambda record: Redirect(self.SIGNED.format(record.filename))
        response, _ = super().request("GET", self.path, auth=False)
        self.assertEqual(response.code, 401)
        self.assertIsNone(self.header(response, "Location"))
        self.assertEqual(remote.fetched, [])


class _Authenticated:
    """A L{StubTreq} that sends valid credentials with every request."""

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name):
        return getattr(self._client, name)

    def get(self, url, headers=None, **kwargs):
        """GET with credentials."""
        return self._client.get(url, headers=dict(headers or {}, Authorization=basic()),
                                **kwargs)


class ReleaseSpellingTests(_ServerMixin, SynchronousTestCase):
    """
    A second file for a stored distribution under another spelling of its
    version or of its wheel tags is refused, naming the stored file.
    """

    def send(self, version, name_and_data, sdist=False):
        """Upload C{(filename, bytes)} of Holy.Grail C{version} and return C{(response, body)}."""
        filename, data = name_and_data
        extra = {"filetype": "sdist", "pyversion": "source"} if sdist else {}
        return self.upload(filename, data, fields=twine_fields("Holy.Grail", version, data, **extra))

    def assertRefusedFor(self, stored, response, body):
        """Assert a 400 that names C{stored} as the same distribution, with one file indexed."""
        self.assertEqual(response.code, 400, body)
        self.assertTrue(body.startswith(
            f"File already exists ('{stored}'): it names the same distribution ".encode()), body)
        self.assertEqual([r.filename for r in self.index.records()], [stored])
        self.assertEqual(os.listdir(self.storage.temp_dir), [])

    def test_wheel_version_spelling(self):
        """A wheel for 1.0.0 is refused beside the stored wheel for 1.0."""
        stored = make_wheel("Holy.Grail", "1.0")
        self.assertEqual(self.send("1.0", stored)[0].code, 200)
        self.assertRefusedFor(stored[0], *self.send("1.0.0", make_wheel("Holy.Grail", "1.0.0")))

    def test_wheel_tag_order(self):
        """A C{py3.py2} wheel is refused beside the stored C{py2.py3} one: the same tag set."""
        stored = make_wheel("Holy.Grail", "1.0", tag="py2.py3-none-any")
        self.assertEqual(self.send("1.0", stored)[0].code, 200)
        self.assertRefusedFor(stored[0], *self.send(
            "1.0", make_wheel("Holy.Grail", "1.0", tag="py3.py2-none-any")))

    def test_sdist_version_spelling(self):
        """An sdist for 1.0.0 is refused beside the stored sdist for 1.0: one sdist a release."""
        stored = make_sdist("Holy.Grail", "1.0")
        self.assertEqual(self.send("1.0", stored, sdist=True)[0].code, 200)
        self.assertRefusedFor(stored[0], *self.send("1.0.0", make_sdist("Holy.Grail", "1.0.0"),
                                                    sdist=True))

    def test_other_tags_accepted(self):
        """A wheel with another tag set for the same release, even an overlapping one, is stored."""
        self.assertEqual(self.send("1.0", make_wheel("Holy.Grail", "1.0"))[0].code, 200)
        for tag in ("py2.py3-none-any", "py3-none-linux_x86_64"):
            response, body = self.send("1.0.0", make_wheel("Holy.Grail", "1.0.0", tag=tag))
            self.assertEqual(response.code, 200, (tag, body))
        self.assertEqual(len(self.index), 3)


class IndexServerTests(SynchronousTestCase):
    """L{pypid.web.app.IndexServer}: every index's answers, made alike."""

    def test_mount(self):
        """
        The default index's answers come first; the named ones' answer under
        their names (none without any), each hosted one with its own uploads.
        """
        from pypid.core.indexes.links import file_url_for
        from pypid.web.app import build_web
        from pypid.web.changes.publish import Publish
        from pypid.web.identity.gates import Gates
        from pypid.web.serving.index_root import IndexRoot
        from pypid.web.web_inputs import SiteSettings
        from tests.harness.fakes import one_index, run_now
        from tests.harness.memory_storage import MemoryStorage
        clock = Clock()
        storage = MemoryStorage(os.path.abspath(self.mktemp()), clock)
        access = Gates(AccessModel(), PasswordVerifier({}, clock, None))
        default = one_index(Index(file_url_for("/")), storage, clock)
        web = build_web(default, access, run_now, clock,
                        SiteSettings(max_upload_size=1000))
        self.assertIsNone(web.indexes)
        self.assertIsNone(web.serve_index.mount(default)[1])
        staging = one_index(Index(file_url_for("/staging/")), storage, clock, name="staging")
        served, named = web.serve_index.mount(default + staging)
        self.assertEqual(served.name, "default")
        self.assertIsInstance(named, IndexRoot)
        self.assertEqual(sorted(named.served), [b"staging"])
        self.assertEqual(named.served[b"staging"].name, "staging")
        self.assertTrue(any(isinstance(area, Publish)
                            for area in named.served[b"staging"].areas))


class PypiserverPathTests(NoCookieJar, SynchronousTestCase):
    """
    Issue 60, item 5: pypiserver's project URL C{/<project>/} moves to
    C{/simple/<project>/}, so a pip.conf that named the root keeps working.
    """

    def test_moved(self):
        self.uploaded()
        for path in ("/holy-grail/", "/Holy.Grail/", "/holy_grail/"):
            response, body = self.get(path)
            self.assertEqual((response.code, self.header(response, "Location")),
                             (301, b"/simple/holy-grail/"), path)
        response, _ = self.get("/holy-grail/?format=json")
        self.assertEqual(self.header(response, "Location"), b"/simple/holy-grail/?format=json")
        # (a name the index does not hold, a route's own path, a file path: as before)
        self.assertEqual(self.get("/nosuch/")[0].code, 404)
        self.assertEqual(self.get("/holy-grail")[0].code, 404)
        self.assertEqual(self.get("/holy-grail/x")[0].code, 404)
        self.assertNotEqual(self.get("/login/")[0].code, 301)


class PypiserverPathClosedTests(NoCookieJar, SynchronousTestCase):
    """A project only some may read is not moved for anonymous clients (its name kept)."""

    read = "authenticated"

    def test_not_moved(self):
        self.uploaded()
        self.assertNotEqual(self.get("/holy-grail/")[0].code, 301)


class PypiserverPathNamedIndexesTests(SynchronousTestCase):
    """With named indexes, C{/<name>/} is theirs: a project of the default index is not moved."""

    def test_not_moved(self):
        from tests.harness.indexes import _ServerMixin as IndexServer

        class Server(IndexServer, SynchronousTestCase):
            def runTest(self):
                pass
        server = Server()
        server.setUp()
        server.at_wall_time()
        self.addCleanup(server.doCleanups)
        service, client = server.served(lambda: server.config(
            "[users]\nalice = " + USERS["alice"] + "\n[index:prod]\n"))
        ctype, body = multipart_body(twine_fields("Holy.Grail", "1.0", WHEEL),
                                     [("content", WHEEL_NAME, WHEEL)])
        response = self.successResultOf(client.post(
            ORIGIN + "/", data=body, headers={"Content-Type": ctype,
                                              "Authorization": basic("alice")}))
        self.assertEqual(response.code, 200)
        response = self.successResultOf(client.get(ORIGIN + "/simple/holy-grail/"))
        self.assertEqual(response.code, 200)
        for path in ("/holy-grail/", "/prod/"):
            response = self.successResultOf(client.get(ORIGIN + path, allow_redirects=False))
            self.assertNotEqual(response.code, 301, path)
