"""
Tests of the static export (C{pypid-export}): the pure plan, the two
targets against one contract (a folder, and a bucket of moto's S3 server),
the exporter over in-memory and on-disk storage, the seam for the pages for
people, and the command line.

Everything but the S3 cases runs synchronously: the storages and the folder
target do their work at once, so each export's Deferred has fired when
C{export()} returns.
"""

import hashlib
import io
import json
import os
import re
from functools import partial

import attrs
from twisted.internet import reactor
from twisted.internet.defer import maybeDeferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pypid.cli import export as cli
from pypid.core.dists.details import Details
from pypid.core.dists.distribution import inspect
from pypid.core.dists.provenance import Publisher, provenance_document
from pypid.core.dists.version_order import release_key
from pypid.core.indexes.project_status import ProjectStatus
from pypid.core.security.advisories import (
    Advisory,
    AdvisoryBoard,
    AdvisoryDB,
    AdvisoryPolicy,
    AdvisoryRules,
)
from pypid.core.security.advisory_waivers import Waivers, parse_waiver
from pypid.core.security.affected_releases import Affected
from pypid.export import outputs as outs
from pypid.export import plan as plans
from pypid.export.plan import ExportError, ExportManifest, ExportSettings, People
from pypid.export.target import FileMismatch, LocalTarget, S3Target
from pypid.http.client import make_http
from pypid.storage.base import snapshot as snapshots
from pypid.storage.base.reading import BINARY_TYPE
from pypid.storage.bucket.layout import Layout
from pypid.storage.bucket.storage import BucketSettings, BucketStorage
from pypid.storage.folder.local import LocalStorage
from pypid.storage.s3.api import S3Client
from pypid.storage.s3.credentials import CredentialSource
from pypid.storage.s3.sign import Bucket, Credentials
from tests import CHECKOUT
from tests.harness import s3server
from tests.harness.distributions import make_wheel
from tests.harness.export import (
    ALPHA_OLD,
    ALPHA_SDIST,
    ALPHA_WHEEL,
    BETA_WHEEL,
    FILES,
    ExportCase,
    make_record,
)
from tests.harness.fakes import read_file, run_now, write_file
from tests.harness.osv_records import osv_record, write_folder
from tests.harness.sigstore_root import TestSigstore, github_claims

ORIGIN = "http://pypi.test"
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"

#: An advisory naming Alpha 1.0 (its wheel and sdist), not 0.9.
ALPHA_1 = Advisory("GHSA-alph-0000-0001", summary="alpha 1.0 steals keys", severity="high",
                   affected=(Affected("alpha", (), frozenset({release_key("1.0")})),))


def index_of(*records, tombstones=()):
    """An export's index of C{records}."""
    return plans.build_index(records, tombstones, ExportSettings().page_file_url())


async def run_command(*argv):
    """Run C{pypid-export} with C{argv} in this process: C{(status, stdout, stderr)}."""
    out, err = io.StringIO(), io.StringIO()
    code = await cli.export_command(cli.parse_options(list(argv)), reactor, out, err)
    return code, out.getvalue(), err.getvalue()


# -- the plan -------------------------------------------------------------------------



def by_files(legacy):
    """
    The daemon's legacy JSON with its files linked as the export links them:
    by project and filename (C{/files/...}), not by digest (C{/packages/...},
    a path a static site has no files at).
    """
    return re.sub(rb'"/packages/[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{60}/'
                  rb'((?P<project>[A-Za-z0-9._]+?)-[^"/]*)"',
                  lambda m: b'"/files/' + re.sub(rb"[-_.]+", b"-", m["project"]).lower()
                  + b"/" + m[1] + b'"', legacy)

class PlanTests(SynchronousTestCase):
    """The pure part: fingerprints, what is rendered and removed, the manifest."""

    def test_fingerprint_follows_what_pages_show(self):
        """A yank changes a project's fingerprint; where storage keeps a file does not."""
        record = make_record("alpha-1.0-py3-none-any.whl")
        base = plans.fingerprint(index_of(record).project("alpha"))
        yanked = plans.fingerprint(index_of(record.replace(yanked="")).project("alpha"))
        moved = plans.fingerprint(index_of(record.replace(path="sub/x")).project("alpha"))
        self.assertNotEqual(base, yanked)
        self.assertEqual(base, moved)

    def test_plan_without_manifest_renders_all(self):
        """Without a manifest every project is rendered, and none is removed."""
        index = index_of(make_record("alpha-1.0-py3-none-any.whl"),
                         make_record("beta-1.0-py3-none-any.whl", project="beta"))
        plan = plans.plan(index, None, ExportSettings())
        self.assertEqual(plan.changed, ("alpha", "beta"))
        self.assertTrue(plan.rebuild)
        self.assertEqual(plan.serial, 1)

    def test_plan_changed_and_removed(self):
        """Only projects whose fingerprint moved are rendered; those gone are removed."""
        alpha = make_record("alpha-1.0-py3-none-any.whl")
        beta = make_record("beta-1.0-py3-none-any.whl", project="beta")
        index = index_of(alpha, beta)
        previous = ExportManifest(ExportSettings().key(), 4, {
            "alpha": plans.ProjectState(plans.fingerprint(index.project("alpha")), 4, None, {}),
            "beta": plans.ProjectState("other", 3, None, {}),
            "gamma": plans.ProjectState("x", 2, None, {}),
        })
        plan = plans.plan(index, previous, ExportSettings())
        self.assertEqual((plan.changed, plan.removed, plan.serial, plan.rebuild),
                         (("beta",), ("gamma",), 5, False))

    def test_plan_other_settings_render_all(self):
        """Another --files-url (or markup) makes every project rendered again."""
        index = index_of(make_record("alpha-1.0-py3-none-any.whl"))
        previous = ExportManifest(ExportSettings().key(), 1, {
            "alpha": plans.ProjectState(plans.fingerprint(index.project("alpha")), 1, None, {})})
        self.assertEqual(plans.plan(index, previous, ExportSettings()).changed, ())
        other = ExportSettings(files_url="https://files.example/")
        self.assertEqual(plans.plan(index, previous, other).changed, ("alpha",))
        self.assertEqual(plans.plan(index, previous, ExportSettings(), full=True).changed, ("alpha",))

    def test_stale_paths(self):
        """What is no longer written goes, but not a path that passed to another owner."""
        previous = ExportManifest({}, 1, {
            "a": plans.ProjectState("1", 1, None, {"files/a/x": "s", "shared.html": "s"}),
            "b": plans.ProjectState("1", 1, None, {"files/b/y": "s"}),
            "gone": plans.ProjectState("1", 1, None, {"simple/gone/index.html": "s"}),
        }, {"simple/index.html": "s", "old.css": "s"})
        kept_b = previous.projects["b"]
        current = ExportManifest({}, 2, {
            "a": plans.ProjectState("2", 2, None, {"files/a/z": "s"}),
            "b": attrs.evolve(kept_b, paths={"files/b/y": "s", "shared.html": "t"}),
        }, {"simple/index.html": "t"})
        self.assertEqual(plans.stale_paths(previous, current, {"files/a/ghost", "files/a/z"}),
                         # (pages first: none links a file already gone)
                         ["old.css", "simple/gone/index.html", "files/a/ghost", "files/a/x"])
        self.assertEqual(plans.stale_paths(None, current), [])

    def test_no_path_outside(self):
        """An output, or a manifest's path, that would leave DEST is refused."""
        for path in ("../victim.txt", "/etc/passwd", "files/../../x", "a/./b", ".hidden"):
            self.assertRaises(ExportError, plans.Output.page, path, b"x", "text/plain")
            data = ExportManifest({}, 1, {}, {path: "s"}).to_bytes()
            self.assertRaises(ExportError, ExportManifest.from_bytes, data)
            data = ExportManifest({}, 1, {"a": plans.ProjectState("f", 1, None, {path: "s"})},
                            {}).to_bytes()
            self.assertRaises(ExportError, ExportManifest.from_bytes, data)

    def test_undescribed(self):
        """Files rendered without details are kept, and looked at again a window at a time."""
        previous = ExportManifest({}, 3, {
            name: plans.ProjectState("f", 1, None, {}, tuple(f"{name}-{n}.whl" for n in range(3)))
            for name in ("a", "b", "c")}, {})
        again = ExportManifest.from_bytes(previous.to_bytes())
        self.assertEqual(again.projects["a"].undescribed, ("a-0.whl", "a-1.whl", "a-2.whl"))
        self.assertEqual(plans.undescribed_files(again, {"b"}, 1),
                         [(n, f"{n}-{i}.whl") for n in "ac" for i in range(3)])
        seen = set()
        for serial in range(4):
            window = plans.undescribed_files(again, set(), serial, limit=4)
            self.assertEqual(len(window), 4)
            seen.update(window)
        self.assertEqual(len(seen), 9)
        self.assertEqual(plans.undescribed_files(None, set(), 1), [])

    def test_manifest_round_trip(self):
        """A manifest reads back as it was written; anything else is refused."""
        manifest = ExportManifest(ExportSettings().key(), 3, {
            "alpha": plans.ProjectState("f", 2, {"name": "alpha"}, {"files/alpha/x": "s"})},
            {"packages.json": "t"})
        self.assertEqual(ExportManifest.from_bytes(manifest.to_bytes()), manifest)
        for bad in (b"[]", b"{", json.dumps({"format": 99}).encode(),
                    json.dumps({"format": plans.FORMAT, "settings": {}, "serial": 1,
                                "root": {}, "projects": {"a": [1, 2]}}).encode()):
            self.assertRaises(ExportError, ExportManifest.from_bytes, bad)

    def test_check_path(self):
        """Paths that could leave DEST or hide in it are refused."""
        for good in ("index.html", "project/alpha/index.html", "static/a.b.css"):
            self.assertEqual(plans.check_path(good), good)
        for bad in ("", "/etc/passwd", "../x", "a/../b", "a//b", "a/./b", ".hidden",
                    "a/.pypid-export.json", "a\\b", "a\nb", "dir/"):
            self.assertRaises(ExportError, plans.check_path, bad)

    def test_people_outputs(self):
        """Pages for people are typed by extension and kept out of the export's own paths."""
        outputs = outs.people_outputs([("index.html", b"<p>"), ("static/app.js", b"1"),
                                        ("static/logo.svg", b"<svg/>"), ("data", b"x")])
        self.assertEqual([o.content_type for o in outputs],
                         [outs.HTML_TYPE, "text/javascript; charset=utf-8", "image/svg+xml",
                          BINARY_TYPE])
        self.assertEqual(outputs[0].sha256, hashlib.sha256(b"<p>").hexdigest())
        for bad in ([("simple/x.html", b"")], [("packages.json", b"")],
                    [("files/a/b", b"")], [("a.html", b""), ("a.html", b"")],
                    [("a.html", "text")], [("../a.html", b"")]):
            self.assertRaises(ExportError, outs.people_outputs, bad)

    def test_links(self):
        """Simple pages link relatively (as the daemon does) or under --files-url."""
        record = make_record("alpha-1.0+local-py3-none-any.whl")
        self.assertEqual(ExportSettings().page_file_url()(record),
                         "../../files/alpha/alpha-1.0%2Blocal-py3-none-any.whl")
        self.assertEqual(ExportSettings().legacy_file_url()(record),
                         "/files/alpha/alpha-1.0%2Blocal-py3-none-any.whl")
        self.assertEqual(ExportSettings(base_url="https://pypi.example/").legacy_file_url()(record),
                         "https://pypi.example/files/alpha/alpha-1.0%2Blocal-py3-none-any.whl")
        remote = ExportSettings(files_url="https://files.example/f/")
        self.assertEqual(remote.page_file_url()(record),
                         "https://files.example/f/alpha/alpha-1.0%2Blocal-py3-none-any.whl")
        self.assertEqual(remote.legacy_file_url()(record), remote.page_file_url()(record))
        self.assertFalse(remote.writes_files)

    def test_package_entry(self):
        """packages.json names the latest final release and its summary (wheels first)."""
        index = index_of(
            make_record("alpha-1.0.tar.gz", packagetype="sdist", summary="from the sdist"),
            make_record("alpha-1.0-py3-none-any.whl", summary="from the wheel"),
            make_record("alpha-2.0b1-py3-none-any.whl", version="2.0b1", summary="beta"),
            tombstones=["gone-1.0-py3-none-any.whl"])
        alpha = index.project("alpha")
        self.assertEqual(outs.package_entry(alpha, alpha.latest_version()),
                         {"name": "alpha", "display_name": "alpha",
                          "summary": "from the wheel", "version": "1.0"})
        gone = index.project("gone")
        self.assertIsNone(outs.package_entry(gone, gone.latest_version()))

    def test_announced(self):
        """Metadata is announced only with bytes of the announced digest."""
        record = make_record("alpha-1.0-py3-none-any.whl",
                             metadata_sha256=hashlib.sha256(b"meta").hexdigest())
        self.assertIs(outs.announced(record, {record.filename: b"meta"}), record)
        self.assertIsNone(outs.announced(record, {record.filename: b"other"}).metadata_sha256)
        self.assertIsNone(outs.announced(record, {}).metadata_sha256)


# -- the targets -------------------------------------------------------------------------------


class TargetContractMixin:
    """
    What every target does. A test case mixing this in provides
    L{make_target} (a new, empty target, not opened) and L{stored}.
    """

    def make_target(self):
        """A new, empty target."""
        raise NotImplementedError()

    def stored(self, path):
        """C{(bytes or None, Content-Type or None)} at C{path}, read behind the target's back."""
        raise NotImplementedError()

    #: whether the target keeps a Content-Type with each path
    typed = True

    async def opened(self):
        target = self.make_target()
        await target.open()
        self.addCleanup(lambda: maybeDeferred(target.close))
        return target

    async def test_write_read(self):
        """What is written at a (nested) path reads back, and replaces what was there."""
        target = await self.opened()
        await target.write("simple/alpha/index.html", b"one", outs.HTML_TYPE)
        await target.write("simple/alpha/index.html", b"two", outs.HTML_TYPE)
        self.assertEqual(await target.read("simple/alpha/index.html"), b"two")
        data, content_type = self.stored("simple/alpha/index.html")
        self.assertEqual(data, b"two")
        if self.typed:
            self.assertEqual(content_type, outs.HTML_TYPE)

    async def test_read_missing(self):
        """A path that holds nothing reads as L{None}."""
        target = await self.opened()
        self.assertIsNone(await target.read(".pypid-export.json"))

    async def test_remove(self):
        """A removed path holds nothing; removing nothing is no error."""
        target = await self.opened()
        await target.write("pypi/alpha/json", b"{}", outs.JSON_TYPE)
        await target.remove("pypi/alpha/json")
        await target.remove("pypi/alpha/json")
        self.assertIsNone(await target.read("pypi/alpha/json"))
        self.assertEqual(self.stored("pypi/alpha/json"), (None, None))

    async def test_put_spooled(self):
        """A spool file is taken into place, binary-typed, and is gone from the spool."""
        target = await self.opened()
        spool = write_file(target.spool(), b"wheel bytes")
        await target.put_file("files/alpha/a.whl", spool, hashlib.sha256(b"wheel bytes")
                              .hexdigest(), True)
        data, content_type = self.stored("files/alpha/a.whl")
        self.assertEqual(data, b"wheel bytes")
        if self.typed:
            self.assertEqual(content_type, BINARY_TYPE)
        self.assertFalse(os.path.exists(spool))

    async def test_put_storage_file(self):
        """A storage file is put in place and left as it was."""
        target = await self.opened()
        source = write_file(os.path.abspath(self.mktemp()), b"stored")
        await target.put_file("files/alpha/b.whl", source, hashlib.sha256(b"stored")
                              .hexdigest(), False)
        self.assertEqual(self.stored("files/alpha/b.whl")[0], b"stored")
        self.assertEqual(read_file(source), b"stored")


class LocalTargetTests(TargetContractMixin, TestCase):
    """The contract, and what only a folder does (links, lock, empty folders)."""

    typed = False

    def make_target(self, links="auto"):
        self.root = os.path.abspath(self.mktemp())
        return LocalTarget(self.root, links)

    def stored(self, path):
        full = os.path.join(self.root, path)
        return (read_file(full), None) if os.path.exists(full) else (None, None)

    async def test_links(self):
        """Storage files readable by everyone are hard-linked; others copied (auto)."""
        target = await self.opened()
        shared = write_file(os.path.abspath(self.mktemp()), b"shared")
        os.chmod(shared, 0o644)
        private = write_file(os.path.abspath(self.mktemp()), b"private")
        os.chmod(private, 0o600)
        await target.put_file("files/a/shared", shared, hashlib.sha256(b"shared").hexdigest(),
                              False)
        await target.put_file("files/a/private", private,
                              hashlib.sha256(b"private").hexdigest(), False)
        self.assertTrue(os.path.samefile(shared, os.path.join(self.root, "files/a/shared")))
        copied = os.path.join(self.root, "files/a/private")
        self.assertFalse(os.path.samefile(private, copied))
        self.assertEqual(os.stat(copied).st_mode & 0o777, 0o666 & ~_umask())

    async def test_link_modes(self):
        """C{always} links a private file; C{never} copies a shared one."""
        for links, linked in (("always", True), ("never", False)):
            target = self.make_target(links)
            await target.open()
            self.addCleanup(target.close)
            source = write_file(os.path.abspath(self.mktemp()), b"x")
            os.chmod(source, 0o600 if links == "always" else 0o644)
            await target.put_file("files/a/x", source, hashlib.sha256(b"x").hexdigest(), False)
            self.assertEqual(os.path.samefile(source, os.path.join(self.root, "files/a/x")),
                             linked)

    async def test_copy_checks_sha256(self):
        """A copied file whose bytes are not its sha256 is refused, and nothing is left."""
        target = self.make_target("never")
        await target.open()
        self.addCleanup(target.close)
        source = write_file(os.path.abspath(self.mktemp()), b"tampered")
        with self.assertRaises(FileMismatch):
            await target.put_file("files/a/x", source, hashlib.sha256(b"original").hexdigest(),
                                  False)
        self.assertFalse(os.path.exists(os.path.join(self.root, "files/a/x")))
        self.assertEqual(os.listdir(os.path.join(self.root, ".pypid-export-tmp")), [])

    async def test_remove_prunes_folders(self):
        """Removing a folder's last file removes the folder, so no empty listing is served."""
        target = await self.opened()
        await target.write("simple/gone/index.html", b"x", outs.HTML_TYPE)
        await target.write("simple/index.html", b"x", outs.HTML_TYPE)
        await target.remove("simple/gone/index.html")
        self.assertFalse(os.path.exists(os.path.join(self.root, "simple", "gone")))
        self.assertTrue(os.path.exists(os.path.join(self.root, "simple", "index.html")))

    async def test_lock(self):
        """Two exports never write one folder at once."""
        target = await self.opened()
        other = LocalTarget(target.root)
        with self.assertRaises(ExportError) as caught:
            await other.open()
        self.assertIn("another pypid-export", str(caught.exception))


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


class S3Case(TestCase):
    """A bucket of the shared moto server, reached as pypid reaches S3."""

    def setUp(self):
        self.pool = ThreadPool(minthreads=1, maxthreads=2, name="test-export")
        self.pool.start()
        self.addCleanup(self.pool.stop)
        self.run_in_thread = partial(deferToThreadPool, reactor, self.pool)
        self.bucket = s3server.new_bucket()

    def client(self, bucket=None):
        http, pool = make_http(reactor, 10.0)
        self.addCleanup(pool.closeCachedConnections)
        credentials = CredentialSource(Credentials(s3server.ACCESS_KEY, s3server.SECRET_KEY),
                                       self.run_in_thread, reactor)
        return S3Client(Bucket(s3server.endpoint(), bucket or self.bucket, s3server.REGION),
                        credentials, http, reactor, 10.0, run=self.run_in_thread)

    def object(self, key):
        """C{(bytes, Content-Type, Cache-Control)} of an object, or C{(None, None, None)}."""
        s3 = s3server.client()
        try:
            answer = s3.get_object(Bucket=self.bucket, Key=key)
        except s3.exceptions.NoSuchKey:
            return None, None, None
        return answer["Body"].read(), answer["ContentType"], answer.get("CacheControl")


class S3TargetTests(TargetContractMixin, S3Case):
    """The contract for a bucket under a prefix, and its caching headers."""

    def make_target(self):
        return S3Target(self.client(), "site/", self.run_in_thread)

    def stored(self, path):
        data, content_type, _cache = self.object("site/" + path)
        return data, content_type

    async def test_cache_control(self):
        """Files and their metadata are immutable; pages are revalidated."""
        target = await self.opened()
        await target.write("files/a/x.metadata", b"m", BINARY_TYPE)
        await target.write("simple/a/index.json", b"{}", SIMPLE_JSON)
        spool = write_file(target.spool(), b"w")
        await target.put_file("files/a/x", spool, hashlib.sha256(b"w").hexdigest(), True)
        self.assertEqual(self.object("site/files/a/x.metadata")[2], "max-age=365000000, immutable")
        self.assertEqual(self.object("site/files/a/x")[2], "max-age=365000000, immutable")
        self.assertEqual(self.object("site/simple/a/index.json")[1:],
                         (SIMPLE_JSON, "max-age=0, must-revalidate"))

    async def test_no_bucket(self):
        """A bucket that does not exist is one line, not a traceback."""
        target = S3Target(self.client(bucket="pypid-no-such-bucket-here"), "",
                          self.run_in_thread)
        self.addCleanup(target.close)
        with self.assertRaises(ExportError) as caught:
            await target.open()
        self.assertIn("NoSuchBucket", str(caught.exception))


# -- the exporter -------------------------------------------------------------------------------


class SmallPeople:
    """A small, real renderer of pages for people, counting what it is asked for."""

    def __init__(self, version="1"):
        self.projects = []
        self.sites = 0
        self.version = version

    def site(self, index):
        self.sites += 1
        names = ", ".join(p.display_name for p in index.projects())
        return [("index.html", f"<p>{len(index.projects())} projects: {names}</p>".encode()),
                ("static/site.css", b"body{margin:0}")]

    def project(self, index, project, details):
        self.projects.append(project.name)
        summaries = sorted({Details.from_bytes(data).get("summary") or ""
                            for data in details.values() if data is not None})
        body = f"<h1>{project.display_name}</h1><p>{' / '.join(summaries)}</p>"
        return [(f"project/{project.name}/index.html", body.encode())]

    def seam(self):
        return People(self.site, self.project, self.version)


@attrs.define
class DeletedAfterScan:
    """A storage in which a file is deleted right after the scan lists it (a race)."""

    storage: object
    filename: str

    def scan(self, *args):
        def then(result):
            self.storage.delete(result.records[self.filename])
            return result
        return self.storage.scan(*args).addCallback(then)

    def __getattr__(self, name):
        return getattr(self.storage, name)


class ExporterTests(ExportCase):
    """What a full export writes, and how the next ones follow the storage."""

    def get(self, client, path, accept="text/html"):
        response = self.successResultOf(client.get(ORIGIN + path, headers={"Accept": accept}))
        self.assertEqual(response.code, 200, path)
        return self.successResultOf(response.content())

    def test_same_bytes_as_the_daemon(self):
        """Every page, file and metadata is what the daemon serves at the same path."""
        storage = self.memory(*FILES)
        report = self.export(storage)
        self.assertEqual((report.projects, report.changed, report.removed, report.problems),
                         (2, 2, 0, []))
        client = self.daemon(storage)
        for kind, accept in (("html", "text/html"), ("json", SIMPLE_JSON)):
            self.assertEqual(self.read(f"simple/index.{kind}"),
                             self.get(client, "/simple/", accept))
            for project in ("alpha", "beta"):
                self.assertEqual(self.read(f"simple/{project}/index.{kind}"),
                                 self.get(client, f"/simple/{project}/", accept))
        for filename, data in FILES:
            project = "beta" if filename.startswith("beta") else "alpha"
            self.assertEqual(self.read(f"files/{project}/{filename}"), data)
            if filename.endswith(".whl"):
                self.assertEqual(self.read(f"files/{project}/{filename}.metadata"),
                                 self.get(client, f"/files/{project}/{filename}.metadata"))
        for project in ("alpha", "beta"):
            exported = json.loads(self.read(f"pypi/{project}/json"))
            # (the daemon's links are under the origin it was asked by, the
            # export's from the host's root: it knows no host)
            served = json.loads(by_files(self.get(client, f"/pypi/{project}/json").replace(
                b'"http://pypi.test/', b'"/')))
            self.assertEqual(exported.pop("last_serial"), 1)
            served.pop("last_serial")
            self.assertEqual(exported, served)
        self.assertEqual(json.loads(self.read("packages.json")), [
            {"name": "alpha", "display_name": "Alpha", "summary": "The first letter",
             "version": "1.0"},
            {"name": "beta", "display_name": "beta", "summary": "Test project beta",
             "version": "2.0"}])

    def test_provenance(self):
        """
        A file's provenance is written where the Integrity API serves it, the
        same bytes as the daemon's; one kept later is written by the next export.
        """
        storage = self.memory(*FILES)
        self.export(storage)
        filename, data = FILES[0]
        record = self.records(storage)[filename]
        # (one of this very file: the daemon serves no other, issue 45)
        provenance = provenance_document([(Publisher("GitHub"), [TestSigstore().attest(
            filename, record.sha256, claims=github_claims())])])
        self.successResultOf(storage.keep_provenance(record, provenance))
        self.export(storage)
        project = "beta" if filename.startswith("beta") else "alpha"
        path = f"integrity/{project}/{record.version}/{filename}/provenance"
        self.assertEqual(self.read(path), provenance)
        self.assertEqual(self.get(self.daemon(storage), "/" + path, "*/*"), provenance)

    def test_nothing_changed(self):
        """An export of an unchanged storage writes nothing, not even its manifest."""
        storage = self.memory(*FILES)
        self.export(storage)
        manifest = os.stat(os.path.join(self.dest, plans.MANIFEST))
        report = self.export(storage)
        self.assertEqual((report.changed, report.written, report.deleted), (0, 0, 0))
        self.assertEqual(os.stat(os.path.join(self.dest, plans.MANIFEST)).st_mtime_ns,
                         manifest.st_mtime_ns)

    def test_yank_rewrites_its_project_only(self):
        """A yank renders its project's pages again, and leaves every other path alone."""
        storage = self.memory(*FILES)
        self.export(storage)
        before = {path: os.stat(os.path.join(self.dest, path)).st_ino
                  for path in ("simple/beta/index.html", "simple/index.html", "packages.json",
                               f"files/alpha/{ALPHA_OLD[0]}")}
        record = self.records(storage)[ALPHA_OLD[0]]
        self.successResultOf(storage.update(record.replace(yanked="broken")))
        report = self.export(storage)
        self.assertEqual((report.changed, report.written, report.deleted), (1, 3, 0))
        self.assertIn(b'data-yanked="broken"', self.read("simple/alpha/index.html"))
        yanked = json.loads(self.read("simple/alpha/index.json"))["files"]
        self.assertEqual([f["yanked"] for f in yanked if f["filename"] == ALPHA_OLD[0]],
                         ["broken"])
        self.assertEqual(json.loads(self.read("pypi/alpha/json"))["last_serial"], 2)
        for path, inode in before.items():
            self.assertEqual(os.stat(os.path.join(self.dest, path)).st_ino, inode, path)

    def test_delete_removes_file_and_metadata(self):
        """A deleted file and its metadata leave the export, after the pages stop listing it."""
        storage = self.memory(*FILES)
        self.export(storage)
        self.successResultOf(storage.delete(self.records(storage)[ALPHA_OLD[0]]))
        report = self.export(storage)
        self.assertEqual(report.deleted, 2)
        self.assertFalse(self.exists(f"files/alpha/{ALPHA_OLD[0]}"))
        self.assertFalse(self.exists(f"files/alpha/{ALPHA_OLD[0]}.metadata"))
        self.assertNotIn(ALPHA_OLD[0].encode(), self.read("simple/alpha/index.html"))

    def test_project_with_every_file_deleted(self):
        """A project whose files are all deleted stays listed, empty, as the daemon lists it."""
        storage = self.memory(*FILES)
        self.export(storage)
        self.successResultOf(storage.delete(self.records(storage)[BETA_WHEEL[0]]))
        self.export(storage)
        self.assertIn(b'href="beta/"', self.read("simple/index.html"))
        self.assertEqual(json.loads(self.read("simple/beta/index.json"))["files"], [])
        self.assertFalse(self.exists("pypi/beta"))
        self.assertFalse(self.exists("files/beta"))
        self.assertEqual([p["name"] for p in json.loads(self.read("packages.json"))], ["alpha"])

    def test_project_gone(self):
        """A project the storage no longer holds at all leaves no path behind."""
        self.export(self.memory(*FILES))
        report = self.export(self.memory(ALPHA_WHEEL, ALPHA_SDIST, ALPHA_OLD))
        self.assertEqual(report.removed, 1)
        for path in ("simple/beta", "pypi/beta", "files/beta"):
            self.assertFalse(self.exists(path), path)
        self.assertNotIn(b"beta", self.read("simple/index.html"))

    def test_files_url(self):
        """With --files-url no file is written and links (and metadata) point there."""
        settings = ExportSettings(files_url="https://files.example/pypi/")
        self.export(self.memory(*FILES), settings=settings)
        self.assertFalse(self.exists("files"))
        page = json.loads(self.read("simple/beta/index.json"))
        [entry] = page["files"]
        self.assertEqual(entry["url"], f"https://files.example/pypi/beta/{BETA_WHEEL[0]}")
        self.assertIn("sha256", entry["core-metadata"])
        legacy = json.loads(self.read("pypi/beta/json"))
        self.assertEqual(legacy["urls"][0]["url"], entry["url"])
        self.assertEqual(legacy["info"]["requires_dist"], ["alpha>=1.0"])

    def test_switching_to_files_url_removes_files(self):
        """Files written by an export without --files-url go when it is given."""
        storage = self.memory(*FILES)
        self.export(storage)
        report = self.export(storage, settings=ExportSettings(files_url="https://files.example/"))
        self.assertTrue(report.rebuilt)
        self.assertFalse(self.exists("files"))

    def test_base_url(self):
        """--base-url makes the legacy JSON's links absolute; the simple pages stay relative."""
        self.export(self.memory(BETA_WHEEL), settings=ExportSettings(base_url="https://pypi.example/"))
        legacy = json.loads(self.read("pypi/beta/json"))
        self.assertEqual(legacy["urls"][0]["url"],
                         f"https://pypi.example/files/beta/{BETA_WHEEL[0]}")
        self.assertEqual(legacy["info"]["project_url"], "https://pypi.example/project/beta/")
        self.assertIn(b'href="../../files/beta/', self.read("simple/beta/index.html"))

    def test_metadata_missing(self):
        """A file whose stored metadata is gone is exported without announcing any."""
        storage = self.folder(*FILES)
        os.remove(os.path.join(storage.root, ".pypid", "files", ALPHA_OLD[0] + ".metadata"))
        report = self.export(storage)
        self.assertEqual(report.problems, [])
        self.assertFalse(self.exists(f"files/alpha/{ALPHA_OLD[0]}.metadata"))
        page = json.loads(self.read("simple/alpha/index.json"))
        files = {f["filename"]: f for f in page["files"]}
        self.assertIs(files[ALPHA_OLD[0]]["core-metadata"], False)
        self.assertIn("sha256", files[ALPHA_WHEEL[0]]["core-metadata"])

    def test_hard_links_from_folder(self):
        """Files of a storage folder on the same filesystem are hard-linked, not copied."""
        storage = self.folder(*FILES)
        self.export(storage)
        for filename, _ in FILES:
            project = "beta" if filename.startswith("beta") else "alpha"
            self.assertTrue(os.path.samefile(os.path.join(storage.root, filename),
                                             os.path.join(self.dest, "files", project, filename)))

    def test_tampered_file_left_out(self):
        """A stored file whose bytes are not its record's is left out, and tried again."""
        storage = self.folder(*FILES)
        path = os.path.join(storage.root, BETA_WHEEL[0])
        data = bytearray(read_file(path))
        data[-1] ^= 0xFF
        write_file(path, bytes(data))
        report = self.export(storage, links="never")
        [problem] = report.problems
        self.assertIn(BETA_WHEEL[0], problem)
        self.assertFalse(self.exists(f"files/beta/{BETA_WHEEL[0]}"))
        # The project keeps its name in the list, with no files (so uv never
        # looks for it on another index).
        self.assertEqual(json.loads(self.read("simple/beta/index.json"))["files"], [])
        self.assertIn(b'href="beta/"', self.read("simple/index.html"))
        self.assertEqual(self.export(storage, links="never").changed, 1)

    def test_file_deleted_during_export(self):
        """A file deleted after the scan listed it is left out, and no page links to it."""
        storage = DeletedAfterScan(self.memory(*FILES), ALPHA_OLD[0])
        report = self.export(storage)
        self.assertEqual(len(report.problems), 1)
        self.assertFalse(self.exists(f"files/alpha/{ALPHA_OLD[0]}"))
        self.assertNotIn(ALPHA_OLD[0].encode(), self.read("simple/alpha/index.html"))
        self.assertIn(ALPHA_WHEEL[0].encode(), self.read("simple/alpha/index.html"))

    def test_cut_short(self):
        """Paths an interrupted export was writing are written again or removed."""
        storage = self.memory(*FILES)
        self.export(storage)
        good = self.read("simple/alpha/index.html")
        write_file(os.path.join(self.dest, "simple/alpha/index.html"), b"half")
        write_file(os.path.join(self.dest, "files/alpha/ghost-1.0-py3-none-any.whl"), b"x")
        write_file(os.path.join(self.dest, plans.PENDING), json.dumps(
            ["simple/alpha/index.html", "files/alpha/ghost-1.0-py3-none-any.whl",
             "../outside"]).encode())
        report = self.export(storage)
        self.assertEqual(report.changed, 1)
        self.assertEqual(self.read("simple/alpha/index.html"), good)
        self.assertFalse(self.exists("files/alpha/ghost-1.0-py3-none-any.whl"))
        self.assertFalse(self.exists(plans.PENDING))

    def test_bad_manifest(self):
        """An unreadable manifest stops the export, unless --full."""
        storage = self.memory(*FILES)
        write_file(os.path.join(self.dest, plans.MANIFEST), b"{not json")
        failure = self.failureResultOf(self.exporter(storage).export(), ExportError)
        self.assertIn("--full", str(failure.value))
        report = self.export(storage, full=True)
        self.assertTrue(report.rebuilt)
        self.assertIsNotNone(ExportManifest.from_bytes(self.read(plans.MANIFEST)))

    def test_snapshot_used(self):
        """The daemon's snapshot gives the records; what changed since is read again."""
        storage = self.folder(*FILES)
        records = self.records(storage)
        snapshot = os.path.abspath(self.mktemp())
        yanked = records[BETA_WHEEL[0]].replace(yanked="old state")
        snapshots.write(snapshot, snapshots.encode(
            [*[r for r in records.values() if r.filename != BETA_WHEEL[0]], yanked], [],
            self.clock.seconds() - 3600, storage=storage.identity()))
        self.export(storage, snapshot=snapshot)
        # (the folder changed after the snapshot's time: its records win)
        self.assertNotIn(b"data-yanked", self.read("simple/beta/index.html"))


class StatusExportTests(ExportCase):
    """
    Issue 45: the export applies the projects' statuses (PEP 792) as the
    daemon does for an anonymous reader: a quarantined project's pages
    carry the marker and list no file, and none of its files, metadata,
    provenance or legacy JSON is written; archived and deprecated carry
    their markers.
    """

    def set_status(self, storage, project, status, reason=None):
        self.successResultOf(storage.keep_status(
            project, ProjectStatus(status, reason).to_bytes() if status else None))

    def test_quarantined(self):
        """
        A quarantined project's pages are the daemon's (the marker, no file);
        its files, metadata, provenance and legacy JSON are not written, and
        the other projects are exported as before.
        """
        storage = self.memory(*FILES)
        record = self.records(storage)[ALPHA_WHEEL[0]]
        self.successResultOf(storage.keep_provenance(record, b'{"version": 1}'))
        self.set_status(storage, "alpha", "quarantined", "malware reported")
        report = self.export(storage)
        self.assertEqual(report.problems, [])
        client = self.daemon(storage)
        for kind, accept in (("html", "text/html"), ("json", SIMPLE_JSON)):
            code, body = self.served(client, "/simple/alpha/", accept)
            self.assertEqual((code, self.read(f"simple/alpha/index.{kind}")), (200, body))
        html = self.read("simple/alpha/index.html")
        self.assertIn(b'<meta name="pypi:project-status" content="quarantined">', html)
        self.assertNotIn(b"files/alpha", html)
        page = json.loads(self.read("simple/alpha/index.json"))
        self.assertEqual(page["project-status"],
                         {"status": "quarantined", "reason": "malware reported"})
        self.assertEqual(page["files"], [])
        self.assertFalse(self.exists("files/alpha"))
        self.assertFalse(self.exists("integrity/alpha"))
        # (the daemon answers 404 for its legacy JSON: no path is written)
        self.assertEqual(self.served(client, "/pypi/alpha/json")[0], 404)
        self.assertFalse(self.exists("pypi/alpha"))
        self.assertEqual(self.read(f"files/beta/{BETA_WHEEL[0]}"), BETA_WHEEL[1])
        self.assertTrue(self.exists("pypi/beta/json"))

    def test_quarantine_follows_the_storage(self):
        """
        A project quarantined after an export loses its files at the next
        (incremental) one, after its pages stopped listing them; released,
        they come back.
        """
        storage = self.memory(*FILES)
        self.export(storage)
        self.assertTrue(self.exists(f"files/alpha/{ALPHA_WHEEL[0]}"))
        self.set_status(storage, "alpha", "quarantined")
        report = self.export(storage)
        self.assertEqual(report.changed, 1)
        self.assertFalse(self.exists("files/alpha"))
        self.assertFalse(self.exists("pypi/alpha"))
        self.assertIn(b'content="quarantined"', self.read("simple/alpha/index.html"))
        self.set_status(storage, "alpha", None)
        report = self.export(storage)
        self.assertEqual(report.changed, 1)
        self.assertEqual(self.read(f"files/alpha/{ALPHA_WHEEL[0]}"), ALPHA_WHEEL[1])
        self.assertNotIn(b"project-status", self.read("simple/alpha/index.html"))

    def test_quarantine_removes_provenance(self):
        """
        A provenance written by an export is removed once its project is
        quarantined (as are its file and metadata), and when its file is deleted.
        """
        storage = self.memory(*FILES)
        records = self.records(storage)
        for filename in (ALPHA_WHEEL[0], BETA_WHEEL[0]):
            self.successResultOf(storage.keep_provenance(records[filename], b'{"version": 1}'))
        self.export(storage)
        alpha = f"integrity/alpha/1.0/{ALPHA_WHEEL[0]}/provenance"
        beta = f"integrity/beta/2.0/{BETA_WHEEL[0]}/provenance"
        self.assertTrue(self.exists(alpha))
        self.set_status(storage, "alpha", "quarantined")
        self.successResultOf(storage.delete(self.records(storage)[BETA_WHEEL[0]]))
        self.export(storage)
        self.assertFalse(self.exists(alpha))
        self.assertFalse(self.exists(beta))

    def test_archived_and_deprecated(self):
        """An archived or deprecated project's pages carry the daemon's markers; its files stay."""
        storage = self.memory(*FILES)
        self.set_status(storage, "alpha", "archived", "moved to alpha2")
        self.set_status(storage, "beta", "deprecated")
        self.export(storage)
        client = self.daemon(storage)
        for project in ("alpha", "beta"):
            for kind, accept in (("html", "text/html"), ("json", SIMPLE_JSON)):
                code, body = self.served(client, f"/simple/{project}/", accept)
                self.assertEqual((code, self.read(f"simple/{project}/index.{kind}")),
                                 (200, body))
        html = self.read("simple/alpha/index.html")
        self.assertIn(b'<meta name="pypi:project-status" content="archived">', html)
        self.assertIn(b'<meta name="pypi:project-status-reason" content="moved to alpha2">',
                      html)
        self.assertEqual(json.loads(self.read("simple/beta/index.json"))["project-status"],
                         {"status": "deprecated"})
        self.assertEqual(self.read(f"files/alpha/{ALPHA_WHEEL[0]}"), ALPHA_WHEEL[1])
        self.assertTrue(self.exists("pypi/alpha/json"))

    def test_status_change_renders_again(self):
        """A status set or changed after an export renders its project again."""
        storage = self.memory(*FILES)
        self.export(storage)
        self.set_status(storage, "beta", "archived")
        self.assertEqual(self.export(storage).changed, 1)
        self.assertIn(b'content="archived"', self.read("simple/beta/index.html"))
        self.set_status(storage, "beta", "deprecated", "use alpha")
        self.assertEqual(self.export(storage).changed, 1)
        self.assertIn(b'content="deprecated"', self.read("simple/beta/index.html"))

    def test_pages_for_people(self):
        """
        A quarantined project's page for people is the daemon's page for
        readers (its status, no file); an archived one's says so first thing.
        """
        from pypid.export.people_files import make_people
        storage = self.memory(*FILES)
        self.set_status(storage, "alpha", "quarantined", "malware reported")
        self.set_status(storage, "beta", "archived")
        self.export(storage, people=make_people())
        page = self.read("project/alpha/index.html")
        self.assertIn(b"This project is quarantined", page)
        self.assertIn(b"malware reported", page)
        self.assertNotIn(ALPHA_WHEEL[0].encode(), page)
        self.assertFalse(self.exists("project/alpha/1.0"))
        self.assertIn(b"status-archived", self.read("project/beta/index.html"))
        self.assertIn(BETA_WHEEL[0].encode(), self.read("project/beta/index.html"))


class AdvisoryExportTests(ExportCase):
    """
    Issue 45: the export applies the index's advisories as the daemon
    does: a release its rules deny is listed yanked and its files are not
    written; one they hide is not listed; the legacy JSON names them.
    """

    def policy(self, mode, *advisories):
        board = AdvisoryBoard()
        board.replace(AdvisoryDB.of(advisories))
        return AdvisoryPolicy(AdvisoryRules.parse(mode), board)

    def test_denied_release(self):
        """
        Under C{deny}, a denied release's pages are the daemon's (listed
        yanked, naming the advisory), and its files and metadata are not
        written; the other releases are.
        """
        storage = self.memory(*FILES)
        policy = self.policy("deny", ALPHA_1)
        self.export(storage, advisories=policy)
        client = self.daemon(storage, policy)
        for kind, accept in (("html", "text/html"), ("json", SIMPLE_JSON)):
            code, body = self.served(client, "/simple/alpha/", accept)
            self.assertEqual((code, self.read(f"simple/alpha/index.{kind}")), (200, body))
        self.assertIn(b"denied by advisory GHSA-alph-0000-0001",
                      self.read("simple/alpha/index.html"))
        for filename in (ALPHA_WHEEL[0], ALPHA_SDIST[0]):
            self.assertEqual(self.served(client, f"/files/alpha/{filename}")[0], 403)
            self.assertFalse(self.exists(f"files/alpha/{filename}"), filename)
        self.assertFalse(self.exists(f"files/alpha/{ALPHA_WHEEL[0]}.metadata"))
        self.assertEqual(self.read(f"files/alpha/{ALPHA_OLD[0]}"), ALPHA_OLD[1])
        exported = json.loads(self.read("pypi/alpha/json"))
        # (the daemon's links under the origin it was asked by: see above)
        served = json.loads(by_files(self.served(client, "/pypi/alpha/json")[1].replace(
            b'"http://pypi.test/', b'"/')))
        exported.pop("last_serial")
        served.pop("last_serial")
        self.assertEqual(exported, served)
        self.assertEqual([v["id"] for v in exported["vulnerabilities"]],
                         ["GHSA-alph-0000-0001"])

    def test_hidden_release(self):
        """Under C{hide}, the release is left off the pages, as the daemon leaves it."""
        storage = self.memory(*FILES)
        policy = self.policy("hide", ALPHA_1)
        self.export(storage, advisories=policy)
        client = self.daemon(storage, policy)
        for kind, accept in (("html", "text/html"), ("json", SIMPLE_JSON)):
            code, body = self.served(client, "/simple/alpha/", accept)
            self.assertEqual((code, self.read(f"simple/alpha/index.{kind}")), (200, body))
        html = self.read("simple/alpha/index.html")
        self.assertNotIn(ALPHA_WHEEL[0].encode(), html)
        self.assertIn(ALPHA_OLD[0].encode(), html)

    def test_advisory_later(self):
        """An advisory that comes after an export renders its project again, files removed."""
        storage = self.memory(*FILES)
        self.export(storage, advisories=self.policy("deny"))
        self.assertTrue(self.exists(f"files/alpha/{ALPHA_WHEEL[0]}"))
        report = self.export(storage, advisories=self.policy("deny", ALPHA_1))
        self.assertEqual(report.changed, 1)
        self.assertFalse(self.exists(f"files/alpha/{ALPHA_WHEEL[0]}"))
        self.assertIn(b"denied by advisory", self.read("simple/alpha/index.html"))

    def test_pages_for_people(self):
        """A denied release's page for people names the advisory, as the daemon's does."""
        from pypid.export.people_files import make_people
        storage = self.memory(*FILES)
        self.export(storage, advisories=self.policy("deny", ALPHA_1), people=make_people())
        page = self.read("project/alpha/1.0/index.html")
        self.assertIn(b"Known vulnerabilities in 1.0", page)
        self.assertIn(b"GHSA-alph-0000-0001", page)
        other = self.read("project/alpha/0.9/index.html")
        self.assertNotIn(b"Known vulnerabilities", other)
        self.assertIn(b"vulnerable: GHSA-alph-0000-0001", other)  # (1.0 in its history)


class PeopleSeamTests(ExportCase):
    """The pages for people: the whole site every time, each project when it changes."""

    def test_rendered_when_changed(self):
        """Project pages are rendered for changed projects only; the site's every time."""
        people = SmallPeople()
        storage = self.memory(*FILES)
        self.export(storage, people=people.seam())
        self.assertEqual(people.projects, ["alpha", "beta"])
        self.assertEqual(self.read("index.html"), b"<p>2 projects: Alpha, beta</p>")
        self.assertEqual(self.read("project/beta/index.html"),
                         b"<h1>beta</h1><p>Test project beta</p>")
        record = self.records(storage)[BETA_WHEEL[0]]
        self.successResultOf(storage.update(record.replace(yanked="")))
        report = self.export(storage, people=people.seam())
        self.assertEqual(people.projects, ["alpha", "beta", "beta"])
        self.assertEqual(people.sites, 2)
        self.assertEqual(report.written, 3 + 1 - 1)  # beta's 3 pages, its people page unchanged

    def test_project_gone(self):
        """A gone project's page for people goes with it."""
        people = SmallPeople()
        self.export(self.memory(*FILES), people=people.seam())
        self.export(self.memory(ALPHA_WHEEL), people=people.seam())
        self.assertFalse(self.exists("project/beta"))
        self.assertTrue(self.exists("project/alpha/index.html"))
        self.assertEqual(self.read("index.html"), b"<p>1 projects: Alpha</p>")

    def test_new_version_renders_all(self):
        """Another version of the pages renders every project again."""
        storage = self.memory(*FILES)
        self.export(storage, people=SmallPeople("1").seam())
        people = SmallPeople("2")
        self.export(storage, people=people.seam())
        self.assertEqual(people.projects, ["alpha", "beta"])

    def test_refused_paths(self):
        """A page for people under the export's own folders stops the export."""
        def bad(index, project, details):
            return [(f"simple/{project.name}/extra.html", b"")]
        people = People(lambda index: [], bad)
        failure = self.failureResultOf(
            self.exporter(self.memory(*FILES), people=people).export(), ExportError)
        self.assertIn("may not write", str(failure.value))

    def test_two_owners(self):
        """Two projects (or a project and the site) may not write one path."""
        people = People(lambda index: [("shared.html", b"site")],
                        lambda index, project, details: [("shared.html", b"project")])
        failure = self.failureResultOf(
            self.exporter(self.memory(BETA_WHEEL), people=people).export(), ExportError)
        self.assertIn("shared.html", str(failure.value))


# -- the command line ------------------------------------------------------------------------------


class CommandLineTests(SynchronousTestCase):
    """Arguments: a bad one is one line and exit status 2."""

    def run_main(self, *argv):
        out, err = io.StringIO(), io.StringIO()
        code = cli.main(list(argv), out, err)
        return code, out.getvalue(), err.getvalue()

    def test_usage_errors(self):
        """Each bad command line says why in one line, with the usage, and exits 2."""
        for argv, reason in (
            ((), "say where to write"),
            (("dest", "--s3-bucket", "b"), "either DEST or --s3-bucket"),
            (("s3://bucket/p", "--s3-bucket", "b"), "give the bucket once"),
            (("s3://bucket/p", "--s3-prefix", "q"), "give the prefix once"),
            (("dest", "--s3-region", "us-east-1"), "--s3-region is for an export to a bucket"),
            (("s3://bucket", "--links", "never"), "--links is for an export to a folder"),
            (("s3://Bad_Bucket",), "the bucket"),
            (("s3://bucket/a//b",), "the prefix"),
            (("dest", "--files-url", "ftp://x"), "--files-url"),
            (("dest", "--base-url", "nope"), "--base-url"),
            (("dest", "--set", "nodot"), "section.key=value"),
            (("dest", "--links", "maybe"), "invalid choice"),
            (("dest", "--s3-endpoint", "x"), "--s3-endpoint"),
        ):
            code, out, err = self.run_main(*argv)
            self.assertEqual(code, 2, argv)
            self.assertEqual(out, "")
            self.assertTrue(err.startswith("usage: pypid-export"), err)
            last = err.strip().splitlines()[-1]
            self.assertTrue(last.startswith("pypid-export: error: "), err)
            self.assertIn(reason, last, argv)
            self.assertNotIn("Traceback", err)

    def test_options(self):
        """DEST as s3://bucket/prefix, URLs given their trailing slash."""
        options = cli.parse_options(["s3://pypi-site/static/index", "--files-url",
                                     "https://files.example/f"])
        self.assertEqual((options.bucket, options.prefix, options.dest, options.files_url),
                         ("pypi-site", "static/index/", None, "https://files.example/f/"))
        options = cli.parse_options(["out", "--full"])
        self.assertEqual((options.dest, options.bucket, options.full, options.links),
                         ("out", None, True, "auto"))


class CommandTests(TestCase):
    """L{cli.export_command}: configuration to exit status, with the real reactor."""

    def setUp(self):
        self.folder = os.path.abspath(self.mktemp())
        os.makedirs(self.folder)

    def config(self, text):
        path = os.path.join(self.folder, "pypid.ini")
        write_file(path, text.encode())
        return path

    command = staticmethod(run_command)

    async def test_folder_to_folder(self):
        """A storage folder is exported, and the summary says so."""
        storage = os.path.join(self.folder, "packages")
        write_file(os.path.join(storage, BETA_WHEEL[0]), BETA_WHEEL[1])
        config = self.config(f"[storage]\npath = {storage}\n[pypid]\n"
                             f"snapshot = {self.folder}/index.json\n")
        dest = os.path.join(self.folder, "site")
        code, out, err = await self.command(dest, "--config", config)
        self.assertEqual((code, err), (0, ""))
        self.assertIn("Exported 1 project to", out)
        self.assertEqual(read_file(os.path.join(dest, "files", "beta", BETA_WHEEL[0])),
                         BETA_WHEEL[1])

    async def test_private_server_warned(self):
        """Exporting a server that limits reading warns that the export does not."""
        storage = os.path.join(self.folder, "packages")
        os.makedirs(storage)
        config = self.config(f"[storage]\npath = {storage}\n[auth]\nread = authenticated\n")
        code, out, err = await self.command(os.path.join(self.folder, "site"), "--config",
                                            config)
        self.assertEqual(code, 0)
        self.assertIn("warning: the server limits who may read", err)
        self.assertIn("Exported 0 projects", out)

    async def test_failures(self):
        """A bad configuration, a missing storage folder, an overlap: one line, status 1."""
        storage = os.path.join(self.folder, "packages")
        os.makedirs(storage)
        good = self.config(f"[storage]\npath = {storage}\n")
        for argv, reason in (
            (("out", "--config", os.path.join(self.folder, "missing.ini")),
             "cannot read the configuration file"),
            (("out", "--config", good, "--set", "storage.path=/nonexistent/pypid"),
             "does not exist"),
            ((os.path.join(storage, "site"), "--config", good), "must not be inside"),
            (("out", "--config", good, "--set", "pypid.nokey=1"), "unknown key"),
        ):
            code, out, err = await self.command(*argv)
            self.assertEqual((code, out), (1, ""), argv)
            self.assertEqual(len(err.splitlines()), 1, err)
            self.assertIn(reason, err)
            self.assertTrue(err.startswith("pypid-export: "))

    async def test_problems_exit_1(self):
        """An export that left a file out completes, names it, and exits 1."""
        storage = os.path.join(self.folder, "packages")
        write_file(os.path.join(storage, BETA_WHEEL[0]), BETA_WHEEL[1])
        self.successResultOf(LocalStorage(storage, run_now).scan())
        data = bytearray(BETA_WHEEL[1])
        data[-1] ^= 0xFF
        write_file(os.path.join(storage, BETA_WHEEL[0]), bytes(data))
        config = self.config(f"[storage]\npath = {storage}\n")
        code, out, err = await self.command(os.path.join(self.folder, "site"), "--config",
                                            config, "--links", "never")
        self.assertEqual(code, 1)
        self.assertIn(f"left out {BETA_WHEEL[0]}", err)
        self.assertIn("Exported 1 project to", out)

    def advised(self, mode, source=None):
        """A storage of Alpha 1.0 and 0.9, a configuration that acts on an advisory of 1.0."""
        storage = os.path.join(self.folder, "packages")
        for filename, data in (ALPHA_WHEEL, ALPHA_OLD):
            write_file(os.path.join(storage, filename), data)
        if source is None:
            source = write_folder(os.path.join(self.folder, "osv"), [osv_record(
                "GHSA-alph-0000-0001", "Alpha", versions=["1.0"], severity="high")])
        return self.config(f"[storage]\npath = {storage}\n[pypid]\n"
                           f"snapshot = {self.folder}/index.json\nadvisories = {mode}\n"
                           f"[advisories]\npath = {source}\n")

    async def test_advisories_applied(self):
        """
        Issue 45: the command reads the advisories a daemon of the
        configuration puts in force and applies the index's rules: a
        denied release's files are not written, and the output says what
        was applied.
        """
        dest = os.path.join(self.folder, "site")
        code, out, err = await self.command(dest, "--config", self.advised("deny"))
        self.assertEqual((code, err), (0, ""))
        self.assertIn("Advisories applied ([pypid] advisories = deny): 1 advisory from", out)
        self.assertFalse(os.path.exists(os.path.join(dest, "files", "alpha", ALPHA_WHEEL[0])))
        self.assertTrue(os.path.exists(os.path.join(dest, "files", "alpha", ALPHA_OLD[0])))
        self.assertIn(b"denied by advisory GHSA-alph-0000-0001",
                      read_file(os.path.join(dest, "simple", "alpha", "index.html")))

    async def test_waivers_applied(self):
        """
        The waivers admins keep (issue 44) are applied as the daemon
        applies them: a waived release's files are written; an unreadable
        document is warned about, and none applied.
        """
        config = self.advised("deny")
        waivers = os.path.join(self.folder, "packages", ".pypid", "waivers.json")
        write_file(waivers, Waivers((parse_waiver({
            "index": "default", "project": "alpha", "advisory": "GHSA-alph-0000-0001"}),
        )).to_bytes())
        dest = os.path.join(self.folder, "site")
        code, out, err = await self.command(dest, "--config", config)
        self.assertEqual((code, err), (0, ""))
        self.assertIn("osv, 1 waiver kept through the API", out)
        self.assertTrue(os.path.exists(os.path.join(dest, "files", "alpha", ALPHA_WHEEL[0])))
        write_file(waivers, b"{broken")
        dest = os.path.join(self.folder, "site-2")
        code, out, err = await self.command(dest, "--config", config)
        self.assertEqual(code, 0)
        self.assertIn("the advisory waivers kept are unreadable", err)
        self.assertFalse(os.path.exists(os.path.join(dest, "files", "alpha", ALPHA_WHEEL[0])))

    async def test_advisories_unreadable(self):
        """
        Advisories that cannot be read stop an export of an index that
        denies or hides by them (one line, status 1, nothing written); one
        that warns is exported, with a warning.
        """
        broken = write_file(os.path.join(self.folder, "osv.zip"), b"not a zip")
        for mode in ("deny", "hide"):
            dest = os.path.join(self.folder, f"site-{mode}")
            code, out, err = await self.command(dest, "--config", self.advised(mode, broken))
            self.assertEqual((code, out), (1, ""), mode)
            self.assertEqual(len(err.splitlines()), 1, err)
            self.assertIn(f"advisories = {mode}, but the advisories cannot be read", err)
            self.assertFalse(os.path.exists(os.path.join(dest, "files")))
        code, out, err = await self.command(os.path.join(self.folder, "site-warn"), "--config",
                                            self.advised("warn", broken))
        self.assertEqual(code, 0)
        self.assertIn("warning: the advisories cannot be read", err)

    async def test_advisories_url_never_fetched(self):
        """An advisory URL without a kept copy is not fetched: the export says so."""
        storage = os.path.join(self.folder, "packages")
        write_file(os.path.join(storage, BETA_WHEEL[0]), BETA_WHEEL[1])
        config = self.config(f"[storage]\npath = {storage}\n[pypid]\n"
                             f"snapshot = {self.folder}/index.json\nadvisories = deny\n"
                             "[advisories]\nurl = https://advisories.example/all.zip\n")
        code, out, err = await self.command(os.path.join(self.folder, "site"), "--config",
                                            config)
        self.assertEqual(code, 0)
        self.assertIn("warning: [advisories] url was never fetched here", err)
        self.assertIn("Advisories applied ([pypid] advisories = deny): 0 advisories", out)


class S3ExportTests(S3Case):
    """Exports from a bucket (the S3 storage) and to a bucket (the S3 target)."""

    def s3_config(self, storage_path, bucket_section=True):
        text = (f"[storage]\npath = {storage_path}\n"
                f"[s3]\nendpoint_url = {s3server.endpoint()}\n"
                f"access_key = {s3server.ACCESS_KEY}\nsecret_key = {s3server.SECRET_KEY}\n")
        path = os.path.abspath(self.mktemp())
        write_file(path, text.encode())
        return path

    command = staticmethod(run_command)

    async def test_folder_to_bucket(self):
        """A storage folder is exported to s3://bucket/prefix, each object typed."""
        storage = os.path.abspath(self.mktemp())
        for filename, data in FILES:
            write_file(os.path.join(storage, filename), data)
        config = self.s3_config(storage)
        code, out, err = await self.command(f"s3://{self.bucket}/site", "--config", config)
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(self.object(f"site/files/beta/{BETA_WHEEL[0]}")[:2],
                         (BETA_WHEEL[1], "application/octet-stream"))
        self.assertEqual(self.object("site/simple/beta/index.html")[1], outs.HTML_TYPE)
        self.assertEqual(self.object("site/simple/beta/index.json")[1], SIMPLE_JSON)
        self.assertEqual(self.object("site/pypi/beta/json")[1], "application/json")
        self.assertEqual(self.object(f"site/files/beta/{BETA_WHEEL[0]}.metadata")[1],
                         "application/octet-stream")
        # Again, after a delete in the storage: incremental, and the file goes.
        os.remove(os.path.join(storage, ALPHA_OLD[0]))
        code, out, err = await self.command(f"s3://{self.bucket}/site", "--config", config)
        self.assertEqual((code, err), (0, ""))
        self.assertIn("1 changed", out)
        self.assertEqual(self.object(f"site/files/alpha/{ALPHA_OLD[0]}"), (None, None, None))
        self.assertNotIn(ALPHA_OLD[0].encode(), self.object("site/simple/alpha/index.html")[0])

    async def test_bucket_to_folder(self):
        """
        An S3 storage is read from the daemon's snapshot and a listing of
        the bucket (which writes nothing there), and its files are
        downloaded into the export.
        """
        http, pool = make_http(reactor, 10.0)
        self.addCleanup(pool.closeCachedConnections)
        credentials = CredentialSource(Credentials(s3server.ACCESS_KEY, s3server.SECRET_KEY),
                                       self.run_in_thread, reactor)
        client = S3Client(Bucket(s3server.endpoint(), self.bucket, s3server.REGION),
                          credentials, http, reactor, 10.0, run=self.run_in_thread)
        spool = os.path.abspath(self.mktemp())
        storage = BucketStorage(client, Layout("pkgs/"), self.run_in_thread, reactor,
                                spool, BucketSettings(clock_margin=0.0, replay_window=0.0))
        await storage.prepare()
        self.addCleanup(storage.close)
        async def publish(filename, data):
            temp = write_file(os.path.join(spool, "up-" + filename), data)
            inspected = inspect(temp, filename, filename, 1767225600.0)
            return await storage.publish(temp, inspected.record, inspected.metadata)
        # The daemon's snapshot knows beta; alpha came after it, through
        # another server: the export finds it by listing the bucket.
        beta = await publish(*BETA_WHEEL)
        snapshot = os.path.abspath(self.mktemp())
        snapshots.write(snapshot, snapshots.encode([beta], [], reactor.seconds(),
                                                   storage=storage.identity()))
        await publish(*ALPHA_WHEEL)
        await storage.settle()
        config = self.s3_config(os.path.abspath(self.mktemp()))
        dest = os.path.abspath(self.mktemp())
        code, out, err = await self.command(
            dest, "--config", config, "--set", "storage.backend=s3",
            "--set", f"s3.bucket={self.bucket}", "--set", "s3.prefix=pkgs/",
            "--set", f"pypid.snapshot={snapshot}")
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(read_file(os.path.join(dest, "files", "beta", BETA_WHEEL[0])),
                         BETA_WHEEL[1])
        self.assertTrue(os.path.exists(os.path.join(dest, "files", "alpha",
                                                    ALPHA_WHEEL[0] + ".metadata")))
        self.assertIn(b"data-core-metadata", read_file(os.path.join(dest, "simple", "alpha",
                                                                    "index.html")))


class DocumentationTests(SynchronousTestCase):
    """The documentation shows what the tests run."""

    def test_nginx_configuration(self):
        """docs/export.rst includes the nginx configuration the end-to-end tests serve with."""
        checkout = CHECKOUT
        with open(os.path.join(checkout, "docs", "export.rst"), encoding="utf-8") as f:
            doc = f.read()
        self.assertIn(".. literalinclude:: ../etc/nginx-export.conf\n", doc)
        with open(os.path.join(checkout, "docs", "index.rst"), encoding="utf-8") as f:
            self.assertIn("\n   export\n", f.read())
        with open(os.path.join(checkout, "etc", "nginx-export.conf"), encoding="utf-8") as f:
            conf = f.read()
        self.assertIn("index $pypid_simple_index;", conf)
        self.assertIn("application/vnd.pypi.simple.v1+json  json;", conf)


class StorageLeftAsItWasTests(ExportCase, TestCase):
    """
    An export only reads the storage: a folder of files copied in by hand
    (no records beside them) is exported without a byte written into it,
    even where nothing can be (a read-only mount).
    """

    def copied_in(self, *files, extra=()):
        """A storage folder holding C{files} (and C{extra}) as copied in by hand."""
        from tests.harness.storage import folder_state
        root = os.path.abspath(self.mktemp())
        for filename, data in (*files, *extra):
            write_file(os.path.join(root, filename), data)
        return root, folder_state(root)

    def same_folder(self, root, before):
        """Assert that the storage folder is exactly as it was."""
        from tests.harness.storage import folder_state
        self.assertEqual(folder_state(root), before)

    def test_copied_in_folder_left_as_it_was(self):
        """
        Exporting a folder of wheels copied in by hand exports every file
        and its metadata, makes no .pypid/ in the folder and writes nothing
        there; the next export neither. Their descriptions come once the
        daemon has kept them (its own scan).
        """
        root, before = self.copied_in(*FILES)
        people = SmallPeople()
        report = self.export(LocalStorage(root, run_now, self.clock), people=people.seam())
        self.assertEqual((report.projects, report.problems), (2, []))
        self.same_folder(root, before)
        self.assertFalse(os.path.exists(os.path.join(root, ".pypid")))
        for filename, data in FILES:
            project = "beta" if filename.startswith("beta") else "alpha"
            self.assertEqual(self.read(f"files/{project}/{filename}"), data)
        metadata = self.read(f"files/alpha/{ALPHA_WHEEL[0]}.metadata")
        self.assertIn(b"Requires-Python: >=3.8", metadata)
        page = self.read("simple/alpha/index.html").decode()
        self.assertIn(f'data-core-metadata="sha256={hashlib.sha256(metadata).hexdigest()}"',
                      page)
        self.assertEqual(self.read("project/beta/index.html"), b"<h1>beta</h1><p></p>")

        self.export(LocalStorage(root, run_now, self.clock), people=people.seam())
        self.same_folder(root, before)

        # The daemon's scan keeps the records and describes the newest
        # files: the next export finds the same records, and the description.
        daemon = self.successResultOf(LocalStorage(root, run_now, self.clock).scan())
        self.successResultOf(daemon.settled)
        report = self.export(LocalStorage(root, run_now, self.clock), people=people.seam())
        self.assertEqual(report.problems, [])
        self.assertEqual(self.read("project/beta/index.html"),
                         b"<h1>beta</h1><p>Test project beta</p>")
        self.assertEqual(self.read(f"files/alpha/{ALPHA_WHEEL[0]}.metadata"), metadata)

    async def test_where_nothing_can_be_written(self):
        """
        pypid-export reads a storage folder where .pypid/ cannot be made (a
        read-only mount; here a file in its place, which stops root too),
        and exits 0 with the folder as it was.
        """
        root, before = self.copied_in(BETA_WHEEL, extra=[(".pypid", b"not a folder")])
        config = os.path.abspath(self.mktemp())
        write_file(config, f"[storage]\npath = {root}\n".encode())
        code, out, err = await run_command(self.dest, "--config", config)
        self.assertEqual((code, err), (0, ""))
        self.assertIn("Exported 1 project to", out)
        self.assertEqual(self.read(f"files/beta/{BETA_WHEEL[0]}"), BETA_WHEEL[1])
        self.assertTrue(self.exists(f"files/beta/{BETA_WHEEL[0]}.metadata"))
        self.same_folder(root, before)


def tree_digest(root):
    """Every file under C{root} but the export's manifest, by path: its sha256."""
    found = {}
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            relative = os.path.relpath(path, root)
            if relative != plans.MANIFEST:
                found[relative] = hashlib.sha256(read_file(path)).hexdigest()
    return found


class IndexExportTests(TestCase):
    """
    C{pypid-export --index NAME} (issue 26): a named index exported as its
    pages list it, composed of its hosted sources; the default unchanged.
    """

    def setUp(self):
        self.folder = os.path.abspath(self.mktemp())
        self.storage = os.path.join(self.folder, "packages")
        self.default = make_wheel("beta", "1.0")
        self.release_old = make_wheel("holy-grail", "1.0")
        self.spam = make_wheel("spam", "1.0")
        self.staging_old = make_wheel("holy-grail", "1.0", module_text="X = 2\n")
        self.staging_new = make_wheel("holy-grail", "2.0")
        write_file(os.path.join(self.storage, self.default[0]), self.default[1])
        for index, (filename, data) in (("release", self.release_old), ("release", self.spam),
                                        ("staging", self.staging_old),
                                        ("staging", self.staging_new)):
            write_file(os.path.join(self.storage, ".indexes", index, filename), data)

    def config(self, sections="[index:release]\n[index:staging]\nbases = release\n"
                              "[index:prod]\nview = yes\nbases = release\nexclude = spam\n"):
        path = os.path.join(self.folder, "pypid.ini")
        write_file(path, (f"[storage]\npath = {self.storage}\n[pypid]\n"
                          f"snapshot = {self.folder}/index.json\n{sections}").encode())
        return path

    def served(self, dest, project):
        """The files the export lists and holds for C{project}: filename -> bytes."""
        folder = os.path.join(dest, "files", project)
        if not os.path.isdir(folder):
            return {}
        return {name: read_file(os.path.join(folder, name)) for name in os.listdir(folder)
                if not name.endswith(".metadata")}

    async def test_hosted_with_bases(self):
        """An index exports its own files, then its bases' not shadowed by its own."""
        dest = os.path.join(self.folder, "staging-site")
        code, out, err = await run_command(dest, "--config", self.config(), "--index",
                                           "staging")
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(self.served(dest, "holy-grail"),
                         dict([self.staging_old, self.staging_new]))
        self.assertEqual(self.served(dest, "spam"), dict([self.spam]))
        self.assertEqual(self.served(dest, "beta"), {})
        page = read_file(os.path.join(dest, "simple", "holy-grail", "index.html"))
        self.assertIn(self.staging_new[0].encode(), page)

    async def test_view(self):
        """A view exports its bases' files through its filters."""
        dest = os.path.join(self.folder, "prod-site")
        code, out, err = await run_command(dest, "--config", self.config(), "--index", "prod")
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(self.served(dest, "holy-grail"), dict([self.release_old]))
        self.assertEqual(self.served(dest, "spam"), {})
        self.assertFalse(os.path.exists(os.path.join(dest, "simple", "spam")))

    async def test_default_unchanged(self):
        """
        Without --index, the export is byte for byte the one of a server with
        no named index: the named indexes' files are not in it.
        """
        plain = os.path.join(self.folder, "plain")
        code, _, err = await run_command(plain, "--config", self.config(""))
        self.assertEqual((code, err), (0, ""))
        named = os.path.join(self.folder, "named")
        code, _, err = await run_command(named, "--config", self.config())
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(tree_digest(named), tree_digest(plain))
        self.assertEqual(self.served(named, "beta"), dict([self.default]))
        self.assertEqual(self.served(named, "holy-grail"), {})

    async def test_quarantined_in_a_base(self):
        """
        Issue 45: a project quarantined in a hosted base of the exported
        index is quarantined in it (as the daemon composes it): its page
        carries the marker and lists no file, and none of its files, the
        index's own included, is written.
        """
        release = LocalStorage(os.path.join(self.storage, ".indexes", "release"), run_now)
        self.successResultOf(release.keep_status(
            "holy-grail", ProjectStatus("quarantined", "under review").to_bytes()))
        dest = os.path.join(self.folder, "staging-site")
        code, out, err = await run_command(dest, "--config", self.config(), "--index",
                                           "staging")
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(self.served(dest, "holy-grail"), {})
        page = read_file(os.path.join(dest, "simple", "holy-grail", "index.html"))
        self.assertIn(b'<meta name="pypi:project-status" content="quarantined">', page)
        self.assertNotIn(b".whl", page)
        self.assertFalse(os.path.exists(os.path.join(dest, "pypi", "holy-grail")))
        self.assertEqual(self.served(dest, "spam"), dict([self.spam]))

    async def test_unknown_index(self):
        """--index of an index not configured: one line, status 1."""
        code, out, err = await run_command(os.path.join(self.folder, "x"), "--config",
                                           self.config(), "--index", "nope")
        self.assertEqual(code, 1)
        self.assertIn("--index nope: no [index:nope] is configured", err)
