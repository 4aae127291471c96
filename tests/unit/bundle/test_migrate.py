"""
Tests of the readers of what other servers leave behind (L{pypid.bundle.devpi},
L{pypid.bundle.sources}' pypiserver folder, L{pypid.bundle.pypicloud}),
each imported into a memory storage through L{pypid.bundle.ingest}: what
comes across (upload times, uploaders), what is ignored, and what is
refused or in conflict. The layouts are those the real tools write (the
end-to-end tests run the real devpi-server and pypiserver).
"""

import calendar
import hashlib
import json
import os
from functools import partial

from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pypid.auth.hashes import MATCH, verify_hash
from pypid.bundle.devpi import DevpiSource, parse_dataindex
from pypid.bundle.ingest import Ingest
from pypid.bundle.manifest import BundleError
from pypid.bundle.pypicloud import (
    PypicloudBucketSource,
    PypicloudFolderSource,
    parse_bucket_url,
)
from pypid.bundle.sources import NOT_FOLLOWED, PypiserverSource, detect
from pypid.core.access.credential_syntax import parse_hash
from pypid.core.dists.details import Details
from pypid.http.client import make_http
from pypid.storage.s3.api import S3Client
from pypid.storage.s3.credentials import CredentialSource
from pypid.storage.s3.sign import Bucket, Credentials
from tests.harness import s3server
from tests.harness.admin import run_admin
from tests.harness.distributions import make_sdist, make_wheel, metadata_text
from tests.harness.fakes import run_now, write_file
from tests.harness.memory_storage import MemoryStorage

MAX = 1 << 20
WHEN = [2026, 11, 22, 23, 21, 53]


def sha256(data):
    """Hex sha256 of C{data}."""
    return hashlib.sha256(data).hexdigest()


def devpi_entry(relpath, data, who="alice", when=WHEN, kind="releasefile", log=True):
    """A file entry as devpi-server 6.20's export writes it."""
    entry = {
        "version": "1.0",
        "entrymapping": {
            "last_modified": "Sun, 22 Nov 2026 23:21:57 GMT",
            "hash_spec": f"sha256={sha256(data)}",
            "hashes": {"sha256": sha256(data)},
        },
        "log": [{"what": "upload", "who": who, "when": when, "dst": "alice/dev"}] if log else [],
        "type": kind,
        "projectname": "holy-grail",
        "relpath": relpath,
    }
    return entry


def dataindex(indexes):
    """A C{dataindex.json} of C{{name: (type, [entries])}}."""
    return {
        "dumpversion": "2",
        "devpi_server": "6.20.3",
        "users": {"alice": {"username": "alice"}},
        "indexes": {name: {"indexconfig": {"type": kind, "bases": []}, "projects": {},
                           "files": entries}
                    for name, (kind, entries) in indexes.items()},
    }


async def ingested(storage, source, run=run_now):
    """Import C{source} into C{storage}; return the report."""
    offer = await source.read()
    scanned = await storage.scan({}, 0.0, (), False)
    ingest = Ingest(storage, run, MAX, scanned.records, scanned.tombstones)
    ingest.report.refused.extend(offer.refused)
    ingest.report.ignored.extend(offer.ignored)
    await ingest.take_all(offer.arrivals)
    return ingest.report


class DataindexTests(SynchronousTestCase):
    """Reading devpi's C{dataindex.json}: pure."""

    def test_files(self):
        """Release files carry devpi's sha256, the upload's time and its uploader."""
        data = b"wheel"
        files, ignored, refused = parse_dataindex(dataindex({
            "alice/dev": ("stage", [devpi_entry("alice/dev/h/1.0/h-1.0.tar.gz", data)]),
        }))
        self.assertEqual((ignored, refused), ([], []))
        [item] = files
        self.assertEqual((item.index, item.filename, item.sha256, item.uploader),
                         ("alice/dev", "h-1.0.tar.gz", sha256(data), "alice"))
        self.assertEqual(item.upload_time, calendar.timegm((2026, 11, 22, 23, 21, 53)))

    def test_last_modified(self):
        """Without an upload in the log, the time is devpi's last_modified."""
        files, _, _ = parse_dataindex(dataindex({"a/b": ("stage", [
            devpi_entry("a/b/h/1.0/h-1.0.tar.gz", b"x", log=False)])}))
        self.assertEqual(files[0].upload_time, calendar.timegm((2026, 11, 22, 23, 21, 57)))
        self.assertIsNone(files[0].uploader)

    def test_ignored(self):
        """Mirrors, documentation and tox results are ignored, with the reason."""
        _, ignored, _ = parse_dataindex(dataindex({
            "root/pypi": ("mirror", [devpi_entry("root/pypi/+f/x/h-1.0.tar.gz", b"x")]),
            "alice/dev": ("stage", [
                devpi_entry("alice/dev/h-1.0.doc.zip", b"d", kind="doczip"),
                devpi_entry("alice/dev/h/x/toxreport.json", b"t", kind="toxresult"),
            ]),
        }))
        self.assertEqual([origin for origin, _ in ignored],
                         ["alice/dev/h-1.0.doc.zip", "alice/dev/h/x/toxreport.json",
                          "root/pypi"])
        self.assertIn("--index", ignored[2][1])

    def test_chosen_indexes(self):
        """C{--index} takes only those named (a mirror too); an unknown one is an error."""
        data = dataindex({
            "root/pypi": ("mirror", [devpi_entry("root/pypi/+f/h-1.0.tar.gz", b"x")]),
            "alice/dev": ("stage", [devpi_entry("alice/dev/h/1.0/h-1.1.tar.gz", b"y")]),
        })
        files, _, _ = parse_dataindex(data, ("root/pypi",))
        self.assertEqual([f.index for f in files], ["root/pypi"])
        with self.assertRaises(BundleError) as caught:
            parse_dataindex(data, ("bob/prod",))
        self.assertIn("no index bob/prod (it has: alice/dev, root/pypi)", str(caught.exception))

    def test_devpi_password_hashes(self):
        """
        The password hashes devpi-server 6.20 keeps (and exports) are argon2id
        hashes that pypid's C{[users]} takes as they are (this one is of "pw").
        """
        devpi_hash = ("$argon2id$v=19$m=65536,t=3,p=4$bI2RUqr1PocQAoAwxrhXqg$"
                      "SI0nefVZBagr9D3PDCaPm8NSoQ2JCwHoG2YfGjDf2H0")
        parse_hash(devpi_hash)
        self.assertIs(verify_hash(devpi_hash, "pw"), MATCH)

    def test_hostile_paths(self):
        """A path that leaves the export is refused."""
        _, _, refused = parse_dataindex(dataindex({"a/b": ("stage", [
            devpi_entry("/etc/passwd", b"x"), devpi_entry("a/../../x.whl", b"x"),
            devpi_entry("a\\b.whl", b"x")])}))
        self.assertEqual(len(refused), 3)
        self.assertRaises(BundleError, parse_dataindex, {"users": {}})


class SourceTests(TestCase):
    """The readers of folders, imported into a memory storage."""

    def setUp(self):
        self.clock = Clock()
        self.storage = MemoryStorage(os.path.abspath(self.mktemp()), self.clock)
        self.storage.prepare()
        self.root = os.path.abspath(self.mktemp())

    def put(self, relpath, data):
        """Write a file of the source folder."""
        path = os.path.join(self.root, *relpath.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return write_file(path, data)

    async def test_devpi(self):
        """
        Files of every stage index come across once; the same filename with
        other bytes in another index is a conflict; devpi's sha256 is checked.
        """
        name, data = make_wheel("holy-grail", "1.0")
        other = make_wheel("holy-grail", "1.0", module_text="X = 2\n")[1]
        sdist_name, sdist = make_sdist("holy-grail", "1.0")
        entries = {
            "alice/dev": [devpi_entry(f"alice/dev/holy-grail/1.0/{name}", data),
                          devpi_entry(f"alice/dev/holy-grail/1.0/{sdist_name}", sdist,
                                      who="bob")],
            "alice/prod": [devpi_entry(f"alice/prod/holy-grail/1.0/{name}", data)],
            "bob/dev": [devpi_entry(f"bob/dev/holy-grail/1.0/{name}", other)],
            "bob/lies": [devpi_entry("bob/lies/holy-grail/2.0/holy_grail-2.0.tar.gz", b"x")],
        }
        for index, items in entries.items():
            for item in items:
                self.put(item["relpath"], {"bob/dev": other}.get(index, data)
                         if item["relpath"].endswith(".whl") else sdist)
        self.put("bob/lies/holy-grail/2.0/holy_grail-2.0.tar.gz", sdist)
        self.put("dataindex.json", json.dumps(dataindex(
            {index: ("stage", items) for index, items in entries.items()})).encode())
        self.assertEqual(detect(self.root), "devpi")
        report = await ingested(self.storage, DevpiSource(self.root, run_now))
        self.assertEqual(sorted(report.imported), sorted([name, sdist_name]))
        self.assertEqual(report.present, [name])
        self.assertEqual([n for n, _ in report.conflicts], [name])
        self.assertIn("from alice/dev/holy-grail/1.0/", report.conflicts[0][1])
        self.assertEqual([o for o, _ in report.refused],
                         ["bob/lies/holy-grail/2.0/holy_grail-2.0.tar.gz"])
        records = (await self.storage.scan({}, 0.0, (), False)).records
        self.assertEqual(records[sdist_name].uploader, "bob")
        self.assertEqual(records[name].upload_time,
                         calendar.timegm((2026, 11, 22, 23, 21, 53)))
        self.assertIsNone(records[name].yanked)

    async def test_devpi_link_out(self):
        """A devpi file that is a link out of the export is refused."""
        name, data = make_wheel("holy-grail", "1.0")
        outside = write_file(os.path.abspath(self.mktemp()), data)
        os.makedirs(os.path.join(self.root, "a", "b"))
        os.symlink(outside, os.path.join(self.root, "a", "b", name))
        self.put("dataindex.json", json.dumps(dataindex(
            {"a/b": ("stage", [devpi_entry(f"a/b/{name}", data)])})).encode())
        report = await ingested(self.storage, DevpiSource(self.root, run_now))
        self.assertEqual(report.refused, [(f"a/b/{name}", "a link leads out of the export")])

    async def test_pypiserver(self):
        """
        Every distribution of a nested folder comes across with its
        modification time; what is no distribution is refused, with the
        reason; dot names are skipped, as pypiserver skips them.
        """
        name, data = make_wheel("holy-grail", "1.0")
        sdist_name, sdist = make_sdist("holy-grail", "1.0")
        os.utime(self.put(name, data), (1700000000, 1700000000))
        self.put("nested/deeper/" + sdist_name, sdist)
        self.put("README.txt", b"hello")
        self.put("broken-1.0-py3-none-any.whl", b"not a zip")
        self.put(".hidden/x-1.0.tar.gz", sdist)
        self.put(".x-2.0.tar.gz", sdist)
        self.assertEqual(detect(self.root), "pypiserver")
        report = await ingested(self.storage, PypiserverSource(self.root, run_now))
        self.assertEqual(sorted(report.imported), sorted([name, sdist_name]))
        self.assertEqual(sorted(o for o, _ in report.refused),
                         ["README.txt", "broken-1.0-py3-none-any.whl"])
        records = (await self.storage.scan({}, 0.0, (), False)).records
        self.assertEqual(records[name].upload_time, 1700000000)
        self.assertIsNone(records[name].uploader)
        again = await ingested(self.storage, PypiserverSource(self.root, run_now))
        self.assertEqual((again.imported, sorted(again.present)), ([], sorted([name, sdist_name])))

    async def test_folder_links_out(self):
        """
        A link in a pypiserver or pypicloud folder (to a file outside, to a
        folder outside, or a .meta leading out) is refused, never followed.
        """
        name, data = make_wheel("holy-grail", "1.0")
        other, other_data = make_wheel("holy-grail", "2.0")
        outside = os.path.abspath(self.mktemp())
        write_file(os.path.join(outside, name), data)
        write_file(os.path.join(outside, other), other_data)
        write_file(os.path.join(outside, "secret.meta"),
                   json.dumps({"uploader": "mallory"}).encode())
        os.makedirs(os.path.join(self.root, "holy-grail", "1.0"))
        os.symlink(os.path.join(outside, name), os.path.join(self.root, "holy-grail", "1.0", name))
        os.symlink(outside, os.path.join(self.root, "holy-grail", "linked"))
        self.put(f"holy-grail/2.0/{other}", other_data)
        os.symlink(os.path.join(outside, "secret.meta"),
                   os.path.join(self.root, "holy-grail", "2.0", other + ".meta"))
        for source in (PypiserverSource(self.root, run_now),
                       PypicloudFolderSource(self.root, run_now)):
            storage = MemoryStorage(os.path.abspath(self.mktemp()), Clock())
            storage.prepare()
            report = await ingested(storage, source)
            self.assertIn((f"holy-grail/1.0/{name}", NOT_FOLLOWED), report.refused)
            self.assertNotIn(name, report.imported)
            self.assertEqual(report.imported, [other])
            records = (await storage.scan({}, 0.0, (), False)).records
            self.assertIsNone(records[other].uploader)

    async def test_unrenderable_description(self):
        """
        A file whose description cannot render (a 300-deep list: a
        RecursionError in docutils) is imported with it as plain text, and
        the import goes on past it (issue 31).
        """
        deep = "".join("  " * i + "- x\n\n" for i in range(300))
        metadata = metadata_text("deep-rst", "1.0",
                                 extra_headers=["Description-Content-Type: text/x-rst"])
        name, data = make_wheel("deep-rst", "1.0",
                                metadata=metadata.partition("\n\n")[0] + "\n\n" + deep)
        other, other_data = make_wheel("after-it", "1.0")
        self.put(name, data)
        self.put(other, other_data)
        report = await ingested(self.storage, PypiserverSource(self.root, run_now))
        self.assertEqual(sorted(report.imported), sorted([name, other]))
        records = (await self.storage.scan({}, 0.0, (), False)).records
        details = Details.from_bytes(await self.storage.read_details(records[name]))
        self.assertTrue(details.fell_back)
        self.assertIn("- x", details.html)

    async def test_pypicloud_folder(self):
        """
        A pypicloud folder's files come across with the uploader of their
        C{.meta}; a sha256 there that the bytes do not have is refused.
        """
        name, data = make_wheel("holy-grail", "1.0")
        sdist_name, sdist = make_sdist("holy-grail", "1.0")
        self.put(f"holy-grail/1.0/{name}", data)
        self.put(f"holy-grail/1.0/{name}.meta", json.dumps(
            {"summary": "s", "uploader": "carol", "hash_sha256": sha256(data)}).encode())
        self.put(f"holy-grail/1.0/{sdist_name}", sdist)
        self.put(f"holy-grail/1.0/{sdist_name}.meta", json.dumps(
            {"uploader": "dave", "hash_sha256": "0" * 64}).encode())
        self.assertEqual(detect(self.root), "pypicloud")
        report = await ingested(self.storage, PypicloudFolderSource(self.root, run_now))
        self.assertEqual(report.imported, [name])
        self.assertEqual([o for o, _ in report.refused], [f"holy-grail/1.0/{sdist_name}"])
        records = (await self.storage.scan({}, 0.0, (), False)).records
        self.assertEqual(records[name].uploader, "carol")


class PypicloudBucketTests(TestCase):
    """A pypicloud bucket on a real S3-compatible server (moto's)."""

    def setUp(self):
        self.pool = ThreadPool(minthreads=1, maxthreads=2, name="test-migrate")
        self.pool.start()
        self.addCleanup(self.pool.stop)
        self.run = partial(deferToThreadPool, reactor, self.pool)
        self.bucket = s3server.new_bucket()
        http, pool = make_http(reactor, 10.0)
        self.addCleanup(pool.closeCachedConnections)
        credentials = CredentialSource(Credentials(s3server.ACCESS_KEY, s3server.SECRET_KEY),
                                       self.run, reactor)
        self.client = S3Client(Bucket(s3server.endpoint(), self.bucket, s3server.REGION),
                               credentials, http, reactor, 10.0, run=self.run)
        self.storage = MemoryStorage(os.path.abspath(self.mktemp()), Clock())
        self.storage.prepare()

    def put(self, key, data, **metadata):
        """Put an object as pypicloud does: its user metadata."""
        s3server.client().put_object(Bucket=self.bucket, Key=key, Body=data,
                                     Metadata=metadata)

    async def test_bucket(self):
        """
        Objects under the prefix (hashed folders or not) come across with
        their uploader and the object's time; a wrong sha256 is refused;
        other prefixes and dot folders are not read.
        """
        name, data = make_wheel("holy-grail", "1.0")
        sdist_name, sdist = make_sdist("holy-grail", "1.0")
        other_name, other = make_wheel("holy-grail", "2.0")
        self.put(f"pypi/3f2a/holy-grail/{name}", data, name="holy-grail", version="1.0",
                 summary="s", uploader="erin", **{"hash-sha256": sha256(data)})
        self.put(f"pypi/holy-grail/{sdist_name}", sdist, name="holy-grail", version="1.0")
        self.put(f"pypi/holy-grail/{other_name}", other, name="holy-grail", version="2.0",
                 **{"hash-sha256": "0" * 64})
        self.put(f"pypi/.pypid/{name}", data)
        self.put(f"elsewhere/{name}", data)
        self.assertEqual(parse_bucket_url(f"s3://{self.bucket}/pypi/"),
                         ("s3", self.bucket, "pypi/"))
        source = PypicloudBucketSource(self.client, "pypi/", self.run)
        report = await ingested(self.storage, source, self.run)
        self.assertEqual(sorted(report.imported), sorted([name, sdist_name]))
        self.assertEqual([o for o, _ in report.refused],
                         [f"s3://{self.bucket}/pypi/holy-grail/{other_name}"])
        records = (await self.storage.scan({}, 0.0, (), False)).records
        self.assertEqual(records[name].uploader, "erin")
        listed = s3server.client().head_object(Bucket=self.bucket,
                                               Key=f"pypi/3f2a/holy-grail/{name}")
        self.assertEqual(records[name].upload_time, listed["LastModified"].timestamp())
        self.assertEqual(self.storage.objects[name], data)


class DevpiIndexesTests(TestCase):
    """
    A devpi export of a user with two indexes, C{dev} based on C{prod}
    (based on the C{root/pypi} mirror), imported by C{pypid-admin import}:
    each devpi index into the pypid index of its name, the bases printed.
    """

    def setUp(self):
        self.folder = os.path.abspath(self.mktemp())
        self.root = os.path.join(self.folder, "devpi-export")
        self.storage = os.path.join(self.folder, "packages")
        os.makedirs(self.storage)
        self.prod_name, prod = make_wheel("holy-grail", "1.0")
        self.dev_name, dev = make_wheel("holy-grail", "1.1.dev1")
        self.sdist_name, sdist = make_sdist("spam", "2.0")
        files = {"alice/prod": [(f"alice/prod/holy-grail/1.0/{self.prod_name}", prod)],
                 "alice/dev": [(f"alice/dev/holy-grail/1.1.dev1/{self.dev_name}", dev),
                               (f"alice/dev/spam/2.0/{self.sdist_name}", sdist)]}
        data = dataindex({"root/pypi": ("mirror", []),
                          **{index: ("stage", [devpi_entry(path, body) for path, body in items])
                             for index, items in files.items()}})
        data["indexes"]["alice/prod"]["indexconfig"]["bases"] = ["root/pypi"]
        data["indexes"]["alice/dev"]["indexconfig"]["bases"] = ["alice/prod"]
        for items in files.values():
            for relpath, body in items:
                path = os.path.join(self.root, *relpath.split("/"))
                os.makedirs(os.path.dirname(path), exist_ok=True)
                write_file(path, body)
        write_file(os.path.join(self.root, "dataindex.json"), json.dumps(data).encode())

    def config(self, sections=""):
        """A configuration file of a local storage, with C{sections} added."""
        path = os.path.join(self.folder, "pypid.ini")
        write_file(path, (f"[storage]\npath = {self.storage}\n[pypid]\n"
                          f"snapshot = {self.folder}/index.json\n{sections}").encode())
        return path

    def held(self, index):
        """The distribution files the storage of C{index} holds on disk."""
        root = (self.storage if index == "default"
                else os.path.join(self.storage, ".indexes", index))
        if not os.path.isdir(root):
            return []
        return sorted(name for name in os.listdir(root) if not name.startswith("."))

    async def test_kept_as_indexes(self):
        """With the indexes configured, each devpi index's projects go into its own."""
        config = self.config("[index:alice-prod]\n[index:alice-dev]\nbases = alice-prod\n")
        code, out, err = await run_admin(config, "import", source=self.root)
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(self.held("alice-prod"), [self.prod_name])
        self.assertEqual(self.held("alice-dev"), sorted([self.dev_name, self.sdist_name]))
        self.assertEqual(self.held("default"), [])
        self.assertIn("Into the index alice-dev:", out)
        self.assertIn("Into the index alice-prod:", out)

    async def test_sections_printed(self):
        """
        Indexes not configured yet: nothing is imported, the sections to paste
        are printed (bases translated, the mirror as upstream:default), and
        the error names the missing sections.
        """
        config = self.config("[index:other]\n")
        code, out, err = await run_admin(config, "import", source=self.root)
        self.assertEqual(code, 1)
        self.assertIn("[index:alice-dev]   ; alice/dev\nbases = alice-prod\n", out)
        self.assertIn("[index:alice-prod]   ; alice/prod\nbases = upstream:default\n", out)
        self.assertIn("[index:alice-dev], [index:alice-prod]", err)
        self.assertIn("nothing was imported", err)
        self.assertEqual((self.held("alice-dev"), self.held("alice-prod"),
                          self.held("default")), ([], [], []))

    async def test_map(self):
        """--map names the pypid index of a devpi index; its bases follow the map."""
        config = self.config("[index:prod]\n[index:staging]\nbases = prod\n")
        code, out, err = await run_admin(
            config, "import", source=self.root,
            map=["alice/prod=prod", "alice/dev=staging"])
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(self.held("prod"), [self.prod_name])
        self.assertEqual(self.held("staging"), sorted([self.dev_name, self.sdist_name]))

    async def test_flatten_by_default(self):
        """
        With no [index:NAME] configured, the export is flattened into the
        default index as before, and the sections that would keep the
        indexes are printed.
        """
        code, out, err = await run_admin(self.config(), "import", source=self.root)
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(self.held("default"),
                         sorted([self.prod_name, self.dev_name, self.sdist_name]))
        self.assertFalse(os.path.exists(os.path.join(self.storage, ".indexes")))
        self.assertIn("[index:alice-dev]   ; alice/dev\nbases = alice-prod\n", out)

    async def test_flatten(self):
        """--flatten keeps today's import though indexes are configured."""
        config = self.config("[index:alice-prod]\n")
        code, out, err = await run_admin(config, "import", source=self.root, flatten=True)
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(self.held("default"),
                         sorted([self.prod_name, self.dev_name, self.sdist_name]))
        self.assertEqual(self.held("alice-prod"), [])

    async def test_bad_map(self):
        """A --map that is not USER/NAME=INDEX, or names no index, is one line."""
        config = self.config("[index:prod]\n")
        for text, reason in (("alice=prod", "expected USER/NAME=INDEX"),
                             ("alice/prod=Prod", "is not an index name"),
                             ("alice/prod=simple", "is a path of the server")):
            code, out, err = await run_admin(config, "import", source=self.root, map=[text])
            self.assertEqual(code, 1, text)
            self.assertIn(reason, err)
