"""
Tests of the bundle (L{pypid.bundle}): the manifest and the layout's names,
writing and reading bundles as folders and tar files (hostile archives
included), and a storage exported to a bundle and imported into another,
in memory, with every outcome of an import: imported, already there,
conflicts, refused.
"""

import hashlib
import io
import json
import os
import tarfile

import attrs
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pypid.bundle import archive
from pypid.bundle import manifest as m
from pypid.bundle.archive import (
    FileMismatch,
    SourceTooLarge,
    copy_hashed,
    open_reader,
    open_writer,
)
from pypid.bundle.ingest import Arrival, Ingest, import_entries
from pypid.bundle.pack import pack_bundle
from pypid.bundle.sources import BundleSource, detect
from pypid.core.dists.distribution import inspect
from pypid.core.dists.provenance import Publisher, provenance_document
from pypid.core.dists.readme import render_description
from pypid.core.indexes.index import Index
from pypid.core.indexes.project_status import ProjectStatus
from pypid.core.records.audit_chain import Entry
from pypid.storage.base.interface import FilenameDeleted, StorageError
from pypid.storage.base.reading import read_statuses
from pypid.storage.folder.journal_files import MemoryJournal
from tests.harness.distributions import make_sdist, make_wheel
from tests.harness.fakes import run_now, write_file
from tests.harness.memory_storage import MemoryStorage
from tests.harness.sigstore_root import TestSigstore, github_claims

SIGSTORE = TestSigstore()

UPLOAD_TIME = 1767225600.5
MAX = 1 << 20


def digest(data):
    """The L{m.Digest} of C{data}."""
    return m.Digest(hashlib.sha256(data).hexdigest(), len(data))


class ManifestTests(SynchronousTestCase):
    """The manifest and the names of the layout."""

    def test_round_trip(self):
        """A manifest reads back as it was written, and its bytes do not depend on order."""
        manifest = m.BundleManifest({"a-1.0.tar.gz": digest(b"a")},
                              {m.RECORDS: digest(b"r"), "audit/2026-11-22.jsonl": digest(b"x")},
                              "2026-11-22T00:00:00.000000Z", "local:/srv/pypid")
        data = manifest.to_bytes()
        self.assertEqual(m.BundleManifest.parse(data), manifest)
        self.assertEqual(json.loads(data)["format"], "pypid-bundle")
        self.assertEqual(json.loads(data)["version"], 1)
        self.assertEqual(manifest.files["a-1.0.tar.gz"], digest(b"a"))
        self.assertEqual(manifest.members[m.RECORDS], digest(b"r"))

    def test_parse_errors(self):
        """A manifest that is not one is refused, naming what is wrong."""
        good = json.loads(m.BundleManifest({}, {}).to_bytes())
        cases = [
            (b"[", "not JSON"),
            (b"[]", "not a JSON object"),
            (dict(good, format="other"), "not a pypid bundle"),
            (dict(good, version=2), "bundle format version 2"),
            (dict(good, files=[]), "files and members must be JSON objects"),
            (dict(good, files={"a-1.0.tar.gz": {"sha256": "AB", "size": 1}}), "sha256 is not"),
            (dict(good, files={"a-1.0.tar.gz": {"sha256": "a" * 64, "size": -1}}),
             "size is not"),
            (dict(good, files={"../x": {"sha256": "a" * 64, "size": 1}}), "not a file"),
            (dict(good, members={"files/x.whl": {"sha256": "a" * 64, "size": 1}}),
             "belongs under files"),
        ]
        for data, message in cases:
            if isinstance(data, dict):
                data = json.dumps(data).encode()
            with self.assertRaises(m.BundleError) as caught:
                m.BundleManifest.parse(data)
            self.assertIn(message, str(caught.exception))

    def test_classify(self):
        """Names of the layout say what they are; anything else is refused."""
        self.assertEqual(m.classify("files/a-1.0.tar.gz"),
                         m.Member("files/a-1.0.tar.gz", "file", "a-1.0.tar.gz"))
        self.assertEqual(m.classify("metadata/a-1.0-py3-none-any.whl.metadata").filename,
                         "a-1.0-py3-none-any.whl")
        self.assertEqual(m.classify("details/a-1.0.tar.gz.details").kind, "details")
        self.assertEqual(m.classify("audit/2026/11.jsonl").kind, "audit")
        for name in ("/etc/passwd", "../x", "files/../x", "files/sub/x.whl", "files/.x",
                     "files/", "other/x", "audit/../x", "audit/.hidden", "metadata/x.json",
                     "manifest.json/x", "files/a\x01b.whl", "audit/a\\b"):
            with self.assertRaises(m.BundleError, msg=name):
                m.classify(name)

    def test_statuses(self):
        """
        statuses.json (issue 45) is a member of the layout, read back as
        written; an entry that is not a status is refused, naming it.
        """
        self.assertEqual(m.classify("statuses.json").kind, "statuses")
        self.assertEqual(m.classify("indexes/release/statuses.json"),
                         m.Member("indexes/release/statuses.json", "statuses", None, "release"))
        statuses = {"holy-grail": m.BundledStatus(ProjectStatus("quarantined", "why"),
                                                  "alice", "2026-11-20T10:00:00.000000Z"),
                    "spam": m.BundledStatus(ProjectStatus("deprecated"))}
        self.assertEqual(m.parse_statuses(m.statuses_bytes(statuses)), statuses)
        for data, message in [
            (b'{"statuses": []}', "statuses must be a JSON object"),
            (b'{"statuses": {"Holy_Grail": {"status": "archived"}}}',
             "not a normalized project name"),
            (b'{"statuses": {"spam": "archived"}}', "not a JSON object"),
            (b'{"statuses": {"spam": {"status": "gone"}}}', "status: one of"),
            (b'{"statuses": {"spam": {"status": "archived", "x": 1}}}', "x: unknown field"),
            (b'{"statuses": {"spam": {"status": "archived", "set_by": 1}}}', "set_by"),
        ]:
            with self.assertRaises(m.BundleError) as caught:
                m.parse_statuses(data)
            self.assertIn(message, str(caught.exception))
        self.assertEqual(m.parse_statuses(b'{"statuses": {"spam": {"status": "active"}}}'), {})

    def test_records_round_trip(self):
        """Records come back as they were, yank state, uploader and time included."""
        filename, data = make_wheel("holy-grail", "1.0")
        path = write_file(self.mktemp(), data)
        record = inspect(path, filename, filename, UPLOAD_TIME).record.replace(
                              yanked="broken", uploader="alice")
        self.assertEqual(m.parse_records(m.records_bytes([record])), {filename: record})
        self.assertEqual(m.parse_tombstones(m.tombstones_bytes(["b", "a"])),
                         frozenset(["a", "b"]))

    def test_records_errors(self):
        """A record that is not valid is refused, naming it."""
        for data, message in [
            (b'{"records": {}}', "records must be a list"),
            (b'{"records": [1]}', "record 1: not a JSON object"),
            (b'{"records": [{"filename": "x"}]}', "record 1: not a file record"),
        ]:
            with self.assertRaises(m.BundleError) as caught:
                m.parse_records(data)
            self.assertIn(message, str(caught.exception))
        for data in (b'{"tombstones": "x"}', b'{"tombstones": [1]}',
                     b'{"tombstones": ["a/b"]}'):
            self.assertRaises(m.BundleError, m.parse_tombstones, data)


def _tar(path, members, mode="w"):
    """Write a tar file of C{(TarInfo, bytes or None)} pairs."""
    with tarfile.open(path, mode) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def _member(name, kind=tarfile.REGTYPE, **fields):
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in fields.items():
        setattr(info, key, value)
    return info


class ArchiveTests(SynchronousTestCase):
    """Writing bundles, and reading them without trusting them."""

    def written(self, name):
        """Write a small bundle at C{name} (in the test's folder); return its path."""
        path = os.path.join(os.path.abspath(self.mktemp()), name)
        os.makedirs(os.path.dirname(path))
        writer = open_writer(path)
        source = write_file(self.mktemp(), b"wheel bytes")
        writer.add_file("files/a-1.0-py3-none-any.whl", source, hashlib.sha256(b"wheel bytes")
                        .hexdigest())
        writer.add_bytes(m.RECORDS, b"{}")
        writer.finish(b'{"manifest": true}')
        return path

    def test_round_trips(self):
        """A folder, a tar file and a gzipped one read back the same members and digests."""
        for name in ("bundle", "bundle.tar", "bundle.tar.gz", "bundle.tgz"):
            path = self.written(name)
            reader = open_reader(path)
            self.addCleanup(reader.close)
            self.assertEqual(reader.files, ["files/a-1.0-py3-none-any.whl"], name)
            self.assertEqual(reader.kept, {m.RECORDS: b"{}", m.MANIFEST: b'{"manifest": true}'})
            self.assertEqual(reader.digests[m.RECORDS], digest(b"{}"))
            with reader.open("files/a-1.0-py3-none-any.whl") as f:
                self.assertEqual(f.read(), b"wheel bytes")
            folder = os.path.dirname(path)
            self.assertEqual(sorted(os.listdir(folder)), [name], "no temporary file is left")
        with open(self.written("plain.tar"), "rb") as f:
            self.assertEqual(f.read(2), b"fi", "a .tar is not compressed")
        with open(self.written("packed.tar.gz"), "rb") as f:
            self.assertEqual(f.read(2), b"\x1f\x8b")

    def test_mismatch_leaves_nothing(self):
        """A file whose bytes are not the sha256 asked for is refused and leaves no member."""
        for name in ("bundle", "bundle.tar"):
            path = os.path.join(os.path.abspath(self.mktemp()), name)
            os.makedirs(os.path.dirname(path))
            writer = open_writer(path)
            source = write_file(self.mktemp(), b"other bytes")
            self.assertRaises(FileMismatch, writer.add_file, "files/a-1.0.tar.gz", source,
                              "0" * 64)
            writer.finish(b"{}")
            self.assertEqual(open_reader(path).files, [])

    def test_folder_must_be_empty(self):
        """A folder bundle is written only into a new or empty folder."""
        path = self.mktemp()
        os.makedirs(path)
        write_file(os.path.join(path, "x"), b"")
        self.assertRaises(m.BundleError, open_writer, path)

    def test_abort(self):
        """An aborted tar bundle leaves no file; an aborted folder bundle, no folder."""
        for name in ("bundle", "bundle.tar.gz"):
            folder = os.path.abspath(self.mktemp())
            os.makedirs(folder)
            writer = open_writer(os.path.join(folder, name))
            writer.add_bytes(m.RECORDS, b"{}")
            writer.abort()
            self.assertEqual(os.listdir(folder), [])

    def test_hostile_tar(self):
        """Links, devices, paths out of the layout, duplicates and huge members are refused."""
        cases = [
            ([(_member("files/a-1.0.tar.gz", tarfile.SYMTYPE, linkname="/etc/passwd"), None)],
             "a link"),
            ([(_member("files/a-1.0.tar.gz", tarfile.LNKTYPE, linkname=m.RECORDS), None)],
             "a link"),
            ([(_member("files/a-1.0.tar.gz", tarfile.CHRTYPE), None)], "not a regular file"),
            ([(_member("files/a-1.0.tar.gz", tarfile.FIFOTYPE), None)], "not a regular file"),
            ([(_member("/etc/cron.d/x"), b"x")], "not a file of a bundle"),
            ([(_member("../../x"), b"x")], "not a file of a bundle"),
            ([(_member("files/../../x"), b"x")], "not a file of a bundle"),
            ([(_member("elsewhere", tarfile.DIRTYPE), None)], "not a folder of a bundle"),
            ([(_member(m.RECORDS), b"{}"), (_member("./" + m.RECORDS), b"{}")],
             "two members are named"),
            ([(_member("metadata/a-1.0.tar.gz.metadata"), b"x" * (m.METADATA_LIMIT + 1))],
             "may have at most"),
        ]
        for members, message in cases:
            path = _tar(os.path.abspath(self.mktemp()) + ".tar", members)
            with self.assertRaises(m.BundleError, msg=message) as caught:
                open_reader(path)
            self.assertIn(message, str(caught.exception))

    def test_tar_before_python_3_11_4(self):
        """
        A tar bundle reads, and a hostile one is refused, on a Python whose
        tarfile has no extraction filters (before 3.11.4: Debian 12's
        3.11.2, the container image's when built from Debian).
        """
        for name in ("data_filter", "FilterError"):
            if hasattr(tarfile, name):
                self.addCleanup(setattr, tarfile, name, getattr(tarfile, name))
                delattr(tarfile, name)
        reader = open_reader(self.written("bundle.tar.gz"))
        self.addCleanup(reader.close)
        self.assertEqual(reader.files, ["files/a-1.0-py3-none-any.whl"])
        path = _tar(os.path.abspath(self.mktemp()) + ".tar", [(_member("files/../../x"), b"x")])
        self.assertRaises(m.BundleError, open_reader, path)

    def test_huge_tar_header(self):
        """
        A pax header of 128 KiB (23 s in Python 3.11.7's tarfile, and the
        square of its size) is refused at once, as in an sdist: from its
        header block, before tarfile reads or parses its records.
        """
        info = _member(m.RECORDS)
        info.pax_headers = {"comment": "x" * (128 << 10)}
        path = os.path.abspath(self.mktemp()) + ".tar"
        with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
            info.size = 2
            tar.addfile(info, io.BytesIO(b"{}"))
        parsed = []
        proc_pax = tarfile.TarInfo._proc_pax

        def counted(info, tar):
            parsed.append(info.size)
            return proc_pax(info, tar)

        self.patch(tarfile.TarInfo, "_proc_pax", counted)
        with self.assertRaises(m.BundleError) as caught:
            open_reader(path)
        self.assertIn("a tar header larger than 8192 bytes", str(caught.exception))
        self.assertEqual(parsed, [], "the pax header was read")
        # (the count sees pax headers: a small one is parsed)
        info = _member(m.RECORDS)
        info.pax_headers = {"comment": "x" * 100}
        path = os.path.abspath(self.mktemp()) + ".tar"
        with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
            info.size = 2
            tar.addfile(info, io.BytesIO(b"{}"))
        with tarfile.open(path) as tar:
            tar.getmembers()
        self.assertEqual(len(parsed), 1)

    def test_folders_count_as_members(self):
        """Folders count against MAX_MEMBERS, in a tar file and in a folder bundle."""
        self.patch(m, "MAX_MEMBERS", 5)
        self.patch(archive, "MAX_MEMBERS", 5)
        folders = [(_member(f"indexes/i{i}", tarfile.DIRTYPE), None) for i in range(3)]
        path = _tar(os.path.abspath(self.mktemp()) + ".tar",
                    [(_member("indexes", tarfile.DIRTYPE), None), *folders,
                     (_member(m.RECORDS), b"{}"), (_member(m.TOMBSTONES), b"{}")])
        with self.assertRaises(m.BundleError) as caught:
            open_reader(path)
        self.assertIn("more than 5 members", str(caught.exception))
        folder = os.path.abspath(self.mktemp())
        for i in range(6):
            os.makedirs(os.path.join(folder, "indexes", f"i{i}"))
        with self.assertRaises(m.BundleError) as caught:
            open_reader(folder)
        self.assertIn("more than 5 members", str(caught.exception))

    def test_json_members_bounded(self):
        """
        JSON members are bounded in total, and in how many values their
        bytes may hold (a list of empty objects takes 25 times its size
        in memory once parsed).
        """
        dense = b'{"records": [' + b",".join([b"{}"] * 100_000) + b"]}"
        with self.assertRaises(m.BundleError) as caught:
            m.parse_records(dense)
        self.assertIn("JSON values in", str(caught.exception))
        with self.assertRaises(m.BundleError):
            m.parse_tombstones(b'{"tombstones": [' + b",".join([b'"a"'] * 100_000) + b"]}")
        self.patch(archive, "MAX_KEPT", 1000)
        path = _tar(os.path.abspath(self.mktemp()) + ".tar",
                    [(_member(m.RECORDS), b" " * 600), (_member(m.TOMBSTONES), b" " * 600)])
        with self.assertRaises(m.BundleError) as caught:
            open_reader(path)
        self.assertIn("more than 1000 bytes in all", str(caught.exception))

    def test_tombstones_counted(self):
        """An index's tombstones are at most MAX_TOMBSTONES."""
        self.patch(m, "MAX_TOMBSTONES", 3)
        data = m.tombstones_bytes([f"a-1.{i}.tar.gz" for i in range(4)])
        with self.assertRaises(m.BundleError) as caught:
            m.parse_tombstones(data)
        self.assertIn("more than 3 tombstones", str(caught.exception))
        self.assertEqual(len(m.parse_tombstones(m.tombstones_bytes(["a-1.0.tar.gz"] * 3))), 1)

    def test_not_a_tar(self):
        """A file that is no tar archive is refused in one line."""
        path = write_file(self.mktemp(), b"not a tar file at all" * 100)
        with self.assertRaises(m.BundleError) as caught:
            open_reader(path)
        self.assertIn("neither a bundle folder nor a tar file", str(caught.exception))

    def test_dot_prefix_and_folders(self):
        """Members named C{./...} and folder entries of the layout, as tar(1) writes them, are read."""
        path = _tar(os.path.abspath(self.mktemp()) + ".tar", [
            (_member(".", tarfile.DIRTYPE), None),
            (_member("./files", tarfile.DIRTYPE), None),
            (_member("./files/a-1.0.tar.gz"), b"sdist"),
            (_member("./records.json"), b"{}"),
        ])
        reader = open_reader(path)
        self.addCleanup(reader.close)
        self.assertEqual(reader.files, ["files/a-1.0.tar.gz"])
        with reader.open("files/a-1.0.tar.gz") as f:
            self.assertEqual(f.read(), b"sdist")

    def test_hostile_folder(self):
        """A folder bundle holding a link, or a name outside the layout, is refused."""
        path = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(path, "files"))
        os.symlink("/etc/passwd", os.path.join(path, "files", "a-1.0.tar.gz"))
        with self.assertRaises(m.BundleError) as caught:
            open_reader(path)
        self.assertIn("symbolic link", str(caught.exception))
        other = os.path.abspath(self.mktemp())
        os.makedirs(other)
        os.symlink("/etc", os.path.join(other, "files"))
        self.assertRaises(m.BundleError, open_reader, other)
        third = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(third, "files"))
        write_file(os.path.join(third, "files", ".sneaky"), b"x")
        self.assertRaises(m.BundleError, open_reader, third)

    def test_copy_hashed(self):
        """A copy gives the digests an upload has, and stops past its limit."""
        destination = self.mktemp()
        digests = copy_hashed(io.BytesIO(b"abc"), destination, 3)
        self.assertEqual(digests[:2], (3, hashlib.sha256(b"abc").hexdigest()))
        self.assertRaises(SourceTooLarge, copy_hashed, io.BytesIO(b"abcd"), self.mktemp(), 3)

    def test_detect(self):
        """A tar file and a folder with a manifest are bundles."""
        self.assertEqual(detect(self.written("b.tar")), "bundle")
        self.assertEqual(detect(self.written("folder")), "bundle")
        self.assertRaises(m.BundleError, detect, self.mktemp())


def provenance_for(filename, data):
    """A provenance object of C{filename} whose bytes are C{data} (the test Sigstore's)."""
    attestation = SIGSTORE.attest(filename, hashlib.sha256(data).hexdigest(),
                                  claims=github_claims())
    return provenance_document([(Publisher("GitHub", (("repository", "acme/widgets"),)),
                                 [attestation])])


class BundleCase(TestCase):
    """Storages in memory, exported to bundles and imported into others."""

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(UPLOAD_TIME + 1000)

    def storage(self):
        """A new, prepared memory storage."""
        storage = MemoryStorage(os.path.abspath(self.mktemp()), self.clock)
        storage.prepare()
        return storage

    async def publish(self, storage, filename, data, **fields):
        """Publish C{data} as an upload does; return the record."""
        temp = write_file(os.path.join(storage.temp_dir, "up-" + filename), data)
        inspected = inspect(temp, filename, filename, UPLOAD_TIME, details=render_description)
        record = inspected.record.replace(**fields)
        stored = await storage.publish(temp, record, inspected.metadata, inspected.details)
        if record.yanked is not None:
            await storage.update(record)
        return stored

    async def source_storage(self):
        """A storage with a yanked file, a plain one, an sdist, and a deleted one."""
        storage = self.storage()
        self.yanked = await self.publish(storage, *make_wheel("holy-grail", "1.0"),
                                         uploader="alice", yanked="broken")
        self.plain = await self.publish(storage, *make_wheel("holy-grail", "2.0"),
                                        uploader="bob")
        self.sdist = await self.publish(storage, *make_sdist("holy-grail", "2.0"))
        gone = await self.publish(storage, *make_wheel("holy-grail", "0.9"))
        await storage.delete(gone)
        self.gone = gone.filename
        return storage

    async def exported(self, storage, name="bundle.tar.gz", audit=None):
        """Export C{storage} (and its C{audit} log) to a bundle; return its path and the report."""
        path = os.path.join(os.path.abspath(self.mktemp()), name)
        os.makedirs(os.path.dirname(path))
        writer = open_writer(path)
        report = await pack_bundle(storage, writer, None, run_now, self.clock, audit)
        return path, report

    async def imported(self, path, storage, max_size=MAX):
        """Import the bundle at C{path} into C{storage}; return the ingest's report."""
        source = BundleSource(path, run_now)
        try:
            offer = await source.read()
            scanned = await storage.scan({}, 0.0, (), False)
            ingest = Ingest(storage, run_now, max_size, scanned.records, scanned.tombstones,
                            statuses=await read_statuses(storage))
            ingest.report.refused.extend(offer.refused)
            # (as the command does: the statuses before the files)
            await ingest.take_statuses(offer.statuses)
            await ingest.take_all(offer.arrivals)
            for filename in sorted(offer.tombstones):
                await ingest.bury(filename)
        finally:
            source.close()
        return ingest.report


class RoundTripTests(BundleCase):
    """A storage exported to a bundle and imported into another, in memory."""

    async def test_everything_comes_across(self):
        """
        Files, records (yank state, uploader, upload time), metadata, details
        and tombstones come across; a second import changes nothing.
        """
        source = await self.source_storage()
        for name in ("bundle", "bundle.tar", "bundle.tar.gz"):
            path, exported = await self.exported(source, name)
            self.assertEqual((exported.files, exported.tombstones, exported.metadata,
                              exported.details, exported.problems), (3, 1, 3, 3, []))
            target = self.storage()
            report = await self.imported(path, target)
            self.assertEqual(sorted(report.imported), sorted(
                [self.yanked.filename, self.plain.filename, self.sdist.filename]))
            self.assertEqual((report.buried, report.failed), ([self.gone], False))
            before = await source.scan({}, 0.0, (), False)
            after = await target.scan({}, 0.0, (), False)
            self.assertEqual(after.records, before.records)
            self.assertEqual(after.tombstones, frozenset([self.gone]))
            self.assertEqual(after.records[self.yanked.filename].yanked, "broken")
            self.assertEqual(after.records[self.yanked.filename].uploader, "alice")
            self.assertEqual(after.records[self.plain.filename].upload_time, UPLOAD_TIME)
            for record in after.records.values():
                self.assertEqual((await target.read_metadata(record)),
                                 (await source.read_metadata(record)))
                self.assertEqual((await target.read_details(record)),
                                 (await source.read_details(record)))
                self.assertEqual(target.objects[record.path], source.objects[record.path])
            again = await self.imported(path, target)
            self.assertEqual((again.imported, sorted(again.present), again.buried,
                              again.buried_present, again.failed),
                             ([], sorted(before.records), [], 1, False))
            self.assertEqual((await target.scan({}, 0.0, (), False)).records, before.records)

    async def test_binned_name_kept(self):
        """
        Issue 41, defect 7: a file in the recycle bin is not carried, but
        its name is, as a tombstone: after the import, the name stays
        closed (an upload of other bytes under it is refused).
        """
        source = await self.source_storage()
        binned = await self.publish(source, *make_wheel("holy-grail", "3.0"))
        await source.update(binned.replace(binned=self.clock.seconds()))
        path, exported = await self.exported(source)
        self.assertEqual((exported.files, exported.tombstones), (3, 2))
        target = self.storage()
        report = await self.imported(path, target)
        self.assertEqual(sorted(report.buried), sorted([self.gone, binned.filename]))
        after = await target.scan({}, 0.0, (), False)
        self.assertNotIn(binned.filename, after.records)
        self.assertIn(binned.filename, after.tombstones)
        filename, data = make_wheel("holy-grail", "3.0", module_text="other bytes")
        with self.assertRaises(FilenameDeleted):
            await self.publish(target, filename, data)

    async def attested(self, storage, dist, provenance):
        """Publish C{dist} with C{provenance} kept beside it; return the record."""
        filename, data = dist
        temp = write_file(os.path.join(storage.temp_dir, "up-" + filename), data)
        inspected = inspect(temp, filename, filename, UPLOAD_TIME, details=render_description)
        record = inspected.record.replace(
            provenance_sha256=hashlib.sha256(provenance).hexdigest())
        return await storage.publish(temp, record, inspected.metadata, inspected.details,
                                     provenance)

    async def test_provenance_comes_across(self):
        """A file's provenance (PEP 740) is a member of the bundle, and kept again on import."""
        source = self.storage()
        dist = make_wheel("holy-grail", "3.0")
        provenance = provenance_for(*dist)
        record = await self.attested(source, dist, provenance)
        path, _ = await self.exported(source, "bundle")
        member = os.path.join(path, "provenance", dist[0] + ".provenance")
        with open(member, "rb") as f:
            self.assertEqual(f.read(), provenance)
        target = self.storage()
        report = await self.imported(path, target)
        self.assertEqual((report.imported, report.failed), ([dist[0]], False))
        [kept] = (await target.scan({}, 0.0, (), False)).records.values()
        self.assertEqual(kept.provenance_sha256, record.provenance_sha256)
        self.assertEqual(await target.read_provenance(kept), provenance)

    async def test_provenance_of_another_file(self):
        """A provenance member naming another sha256 than its file's refuses the file."""
        source = self.storage()
        dist = make_wheel("holy-grail", "3.0")
        await self.attested(source, dist, provenance_for(dist[0], b"other bytes"))
        path, _ = await self.exported(source, "bundle")
        target = self.storage()
        report = await self.imported(path, target)
        self.assertEqual(report.imported, [])
        [(origin, why)] = report.refused
        self.assertIn("its provenance is not one of this file", why)
        self.assertEqual((await target.scan({}, 0.0, (), False)).records, {})

    async def test_flipped_byte(self):
        """A file whose bytes were changed in the bundle is refused; the others come across."""
        path, _ = await self.exported(await self.source_storage(), "bundle")
        victim = os.path.join(path, "files", self.plain.filename)
        with open(victim, "r+b") as f:
            first = f.read(1)
            f.seek(0)
            f.write(bytes([first[0] ^ 1]))
        target = self.storage()
        report = await self.imported(path, target)
        self.assertTrue(report.failed)
        self.assertEqual([origin for origin, _ in report.refused],
                         [f"files/{self.plain.filename}"])
        self.assertIn("but the source says", report.refused[0][1])
        self.assertEqual(len(report.imported), 2)
        self.assertNotIn(self.plain.filename, (await target.scan({}, 0.0, (), False)).records)

    async def test_tampered_metadata(self):
        """A file whose metadata member was changed is refused with it."""
        path, _ = await self.exported(await self.source_storage(), "bundle")
        write_file(os.path.join(path, "metadata", self.sdist.filename + ".metadata"), b"x")
        report = await self.imported(path, self.storage())
        self.assertEqual([origin for origin, _ in report.refused],
                         [f"files/{self.sdist.filename}"])
        self.assertIn("the manifest says", report.refused[0][1])

    async def test_extra_member(self):
        """A file slipped into the bundle, not in its manifest, is refused."""
        path, _ = await self.exported(await self.source_storage(), "bundle")
        filename, data = make_wheel("intruder", "1.0")
        write_file(os.path.join(path, "files", filename), data)
        target = self.storage()
        report = await self.imported(path, target)
        self.assertEqual(report.refused, [(f"files/{filename}",
                                           f"files/{filename} is in the bundle but not in "
                                           "its manifest")])
        self.assertNotIn(filename, (await target.scan({}, 0.0, (), False)).records)

    async def test_tampered_records(self):
        """Records that do not match the manifest refuse the whole bundle: nothing is taken."""
        path, _ = await self.exported(await self.source_storage(), "bundle")
        records = os.path.join(path, m.RECORDS)
        with open(records, "rb") as f:
            data = f.read().replace(b'"broken"', b'"fixed!"')
        write_file(records, data)
        target = self.storage()
        with self.assertRaises(m.BundleError) as caught:
            await self.imported(path, target)
        self.assertIn("records.json has sha256", str(caught.exception))
        self.assertEqual(target.objects, {})

    async def test_records_missing_from_manifest(self):
        """A manifest that does not name the records or the tombstones refuses the bundle with a line."""
        for name in (m.RECORDS, m.TOMBSTONES):
            path, _ = await self.exported(await self.source_storage(), "bundle-" + name)
            manifest_path = os.path.join(path, m.MANIFEST)
            with open(manifest_path, "rb") as f:
                manifest = json.loads(f.read())
            del manifest["members"][name]
            write_file(manifest_path, json.dumps(manifest).encode())
            target = self.storage()
            with self.assertRaises(m.BundleError) as caught:
                await self.imported(path, target)
            self.assertIn(f"{name} is in the bundle but not in its manifest",
                          str(caught.exception))
            self.assertEqual(target.objects, {})

    async def test_unfinished_folder(self):
        """A folder without its manifest (an export that did not finish) is refused."""
        path, _ = await self.exported(await self.source_storage(), "bundle")
        os.unlink(os.path.join(path, m.MANIFEST))
        with self.assertRaises(m.BundleError) as caught:
            await self.imported(path, self.storage())
        self.assertIn("did not finish", str(caught.exception))

    async def test_conflicts(self):
        """
        Other bytes under a filename, a name deleted here, and a tombstone
        for a stored file are conflicts: nothing is overwritten.
        """
        path, _ = await self.exported(await self.source_storage())
        target = self.storage()
        other_bytes = make_wheel("holy-grail", "2.0", module_text="X = 1\n")[1]
        kept = await self.publish(target, self.plain.filename, other_bytes)
        deleted = await self.publish(target, *make_sdist("holy-grail", "2.0"))
        await target.delete(deleted)
        stays = await self.publish(target, *make_wheel("holy-grail", "0.9"))
        report = await self.imported(path, target)
        self.assertEqual(sorted(name for name, _ in report.conflicts),
                         sorted([self.plain.filename, self.sdist.filename, self.gone]))
        self.assertEqual(report.imported, [self.yanked.filename])
        after = await target.scan({}, 0.0, (), False)
        self.assertEqual(after.records[self.plain.filename], kept)
        self.assertEqual(after.records[stays.filename], stays)
        self.assertEqual(after.tombstones, frozenset([deleted.filename]))

    async def test_yank_state_differs(self):
        """A file already here whose yank state differs is reported, and this server's state kept."""
        source = await self.source_storage()
        path, _ = await self.exported(source)
        target = self.storage()
        await self.imported(path, target)
        unyanked = self.yanked.replace(yanked=None)
        await target.update(unyanked)
        report = await self.imported(path, target)
        self.assertEqual([name for name, _ in report.conflicts], [self.yanked.filename])
        self.assertIn("not yanked here and yanked (broken) in the source",
                      report.conflicts[0][1])
        self.assertIsNone((await target.scan({}, 0.0, (), False))
                          .records[self.yanked.filename].yanked)

    async def test_too_large(self):
        """
        A file bigger than the largest upload is refused alone, naming the
        setting: from the size the bundle gives, before it is read, or
        while it is read when the source gives none.
        """
        path, _ = await self.exported(await self.source_storage())
        source = BundleSource(path, run_now)
        self.addCleanup(source.close)
        offer = await source.read()
        target = self.storage()
        ingest = Ingest(target, run_now, 500, {}, ())
        fetched = []
        for arrival in offer.arrivals:
            if arrival.size > 500:
                arrival = attrs.evolve(arrival, fetch=lambda *args: fetched.append(args))
            await ingest.take(arrival)
        big = [a.filename for a in offer.arrivals if a.size > 500]
        self.assertEqual((len(big), fetched), (2, []))
        self.assertEqual(sorted(o for o, _ in ingest.report.refused),
                         sorted(f"files/{name}" for name in big))
        self.assertIn("max_upload_size", ingest.report.refused[0][1])
        unsized = attrs.evolve(next(a for a in offer.arrivals if a.size > 500), size=None,
                                sha256=None)
        await ingest.take(unsized)
        self.assertIn("larger than 500 bytes ([pypid] max_upload_size)",
                      ingest.report.refused[-1][1])
        self.assertEqual(os.listdir(target.temp_dir), [])

    async def test_left_out_file(self):
        """A file gone from the storage when it is copied is left out; the bundle is whole."""
        storage = await self.source_storage()
        scanned = await storage.scan({}, 0.0, (), False)
        del storage.objects[self.plain.path]

        path, report = await self.exported(_ScannedBefore(storage, scanned), "bundle.tar")
        self.assertEqual([name for name, _ in report.problems], [self.plain.filename])
        imported = await self.imported(path, self.storage())
        self.assertEqual((len(imported.imported), imported.failed), (2, False))


class StatusBundleTests(BundleCase):
    """
    Issue 45: a bundle carries the projects' statuses (PEP 792), and an
    import keeps them, before any file: a quarantined project arrives
    quarantined on the other server.
    """

    async def with_statuses(self):
        """The source storage, holy-grail quarantined, and spam (one file) archived."""
        storage = await self.source_storage()
        await self.publish(storage, *make_wheel("spam", "1.0"))
        await storage.keep_status("holy-grail",
                                  ProjectStatus("quarantined", "malware reported").to_bytes())
        await storage.keep_status("spam", ProjectStatus("archived").to_bytes())
        return storage

    async def test_round_trip_keeps_statuses(self):
        """
        The statuses, with who set them and when (the audit log's entry),
        come across; the quarantined project's files come too (a bundle is
        a backup), and arrive quarantined: the daemon's loader reads them so.
        """
        source = await self.with_statuses()
        audit = MemoryJournal(self.clock)
        audit.queue(Entry(time="2026-11-20T10:00:00.000000Z", event="status",
                           user="alice", project="holy-grail",
                           detail="quarantined: malware reported"))
        self.assertTrue(await audit.flush())
        path, exported = await self.exported(source, "bundle", audit)
        self.assertEqual((exported.statuses, exported.problems), (2, []))
        self.assertIn("2 project statuses", exported.summary(path))
        with open(os.path.join(path, m.STATUSES), "rb") as f:
            carried = m.parse_statuses(f.read())
        self.assertEqual(carried, {
            "holy-grail": m.BundledStatus(ProjectStatus("quarantined", "malware reported"),
                                          "alice", "2026-11-20T10:00:00.000000Z"),
            "spam": m.BundledStatus(ProjectStatus("archived"))})
        target = self.storage()
        report = await self.imported(path, target)
        self.assertFalse(report.failed)
        self.assertEqual(report.statuses, [
            ("holy-grail", "quarantined: malware reported (set by alice at "
                           "2026-11-20T10:00:00.000000Z)"),
            ("spam", "archived")])
        self.assertIn(self.plain.filename, report.imported)
        self.assertIn("project statuses: 2 kept, 0 already there", report.lines())
        index = Index(lambda record: "")
        index.statuses.take(await read_statuses(target))
        self.assertTrue(index.statuses.quarantined("holy-grail"))
        self.assertEqual(index.status("spam"), ProjectStatus("archived"))
        records = (await target.scan({}, 0.0, (), False)).records
        entries = import_entries(ImportedBy(report, records), "2026-11-25T00:00:00.000000Z",
                                 "root@host")
        [status] = [e for e in entries if e.event == "status" and e.project == "holy-grail"]
        self.assertTrue(status.detail.startswith("quarantined: malware reported (set by alice"))
        again = await self.imported(path, target)
        self.assertEqual((again.statuses, again.statuses_present, again.failed), ([], 2, False))

    async def test_statuses_before_files(self):
        """The import keeps the statuses before it publishes any file."""
        path, _ = await self.exported(await self.with_statuses())
        target = self.storage()
        calls = []
        watched = _Watching(target, calls)
        await self.imported(path, watched)
        self.assertEqual(calls[:2], [("status", "holy-grail"), ("status", "spam")])
        self.assertEqual({kind for kind, _ in calls[2:]}, {"publish"})

    async def test_without_statuses_unchanged(self):
        """
        A storage where no project has a status gives the bundle it always
        gave (no statuses.json), and such a bundle, from before issue 45
        too, imports as before, with nothing said of statuses.
        """
        path, exported = await self.exported(await self.source_storage(), "bundle")
        self.assertEqual(exported.statuses, 0)
        self.assertFalse(os.path.exists(os.path.join(path, m.STATUSES)))
        self.assertNotIn("project statuses", exported.summary(path))
        target = self.storage()
        report = await self.imported(path, target)
        self.assertEqual((report.statuses, report.statuses_present, report.failed),
                         ([], 0, False))
        self.assertFalse(any("statuses" in line for line in report.lines()))
        self.assertEqual(await target.statuses(), {})

    async def test_quarantine_wins(self):
        """
        A quarantine from the source replaces another status kept here (the
        report says so); another status differing from the one here is a
        conflict, and this server's stays.
        """
        path, _ = await self.exported(await self.with_statuses())
        target = self.storage()
        await target.keep_status("holy-grail", ProjectStatus("archived").to_bytes())
        await target.keep_status("spam", ProjectStatus("deprecated", "use eggs").to_bytes())
        report = await self.imported(path, target)
        self.assertEqual(report.statuses, [
            ("holy-grail", "quarantined: malware reported, was archived here")])
        self.assertIn(("spam", "its status is deprecated: use eggs here and archived in "
                               "the source: this server's is kept"), report.conflicts)
        self.assertTrue(report.failed)
        kept = await target.statuses()
        self.assertEqual(ProjectStatus.from_bytes(kept["holy-grail"]).status, "quarantined")
        self.assertEqual(ProjectStatus.from_bytes(kept["spam"]).status, "deprecated")

    async def test_statuses_tampered(self):
        """
        A statuses.json changed, or removed while the manifest names it,
        refuses the whole bundle: a status is never lost on the way.
        """
        path, _ = await self.exported(await self.with_statuses(), "bundle")
        member = os.path.join(path, m.STATUSES)
        with open(member, "rb") as f:
            original = f.read()
        write_file(member, original.replace(b"quarantined", b"deprecated"))
        target = self.storage()
        with self.assertRaises(m.BundleError) as caught:
            await self.imported(path, target)
        self.assertIn(f"{m.STATUSES} has sha256", str(caught.exception))
        os.remove(member)
        with self.assertRaises(m.BundleError) as caught:
            await self.imported(path, target)
        self.assertIn(f"has no {m.STATUSES}", str(caught.exception))
        self.assertEqual((await target.scan({}, 0.0, (), False)).records, {})


@attrs.define
class ImportedBy:
    """What L{import_entries} reads of an ingest: its report, no file imported."""

    report: object
    records: dict = attrs.field(factory=dict)
    origins: dict = attrs.field(factory=dict)


class _Watching:
    """A storage that notes each status kept and each file published, in order."""

    def __init__(self, storage, calls):
        self._storage = storage
        self._calls = calls

    def __getattr__(self, name):
        return getattr(self._storage, name)

    def keep_status(self, project, data):
        self._calls.append(("status", project))
        return self._storage.keep_status(project, data)

    def publish(self, temp, record, *args):
        self._calls.append(("publish", record.filename))
        return self._storage.publish(temp, record, *args)


class _ScannedBefore:
    """A storage whose scan gives what it held before (a delete came after the scan)."""

    def __init__(self, storage, scanned):
        self._storage = storage
        self._scanned = scanned

    def __getattr__(self, name):
        return getattr(self._storage, name)

    async def scan(self, *args):
        return self._scanned


class _Publishing(_ScannedBefore):
    """A storage whose publish() is another function."""

    def __init__(self, storage, publish):
        self._storage = storage
        self.publish = publish


class IngestTests(TestCase):
    """What the ingest refuses, whatever the source."""

    def setUp(self):
        self.clock = Clock()
        self.storage = MemoryStorage(os.path.abspath(self.mktemp()), self.clock)
        self.storage.prepare()
        self.ingest = Ingest(self.storage, run_now, MAX, {}, ())

    def arrival(self, filename, data, **fields):
        """An arrival of C{data} from memory."""
        def fetch(path, limit):
            return run_now(copy_hashed, io.BytesIO(data), path, limit)
        fields.setdefault("upload_time", UPLOAD_TIME)
        return Arrival(filename, "origin/" + filename, fetch, **fields)

    async def test_refused(self):
        """A broken archive, a name that is no distribution's, and a bad time are refused."""
        await self.ingest.take(self.arrival("holy_grail-1.0-py3-none-any.whl", b"not a zip"))
        await self.ingest.take(self.arrival("README.txt", b"hello"))
        await self.ingest.take(self.arrival(*make_wheel("holy-grail", "2.0"),
                                            upload_time=float("nan")))
        await self.ingest.take(self.arrival(*make_wheel("holy-grail", "3.0"),
                                            sha256="0" * 64))
        reasons = [why for _, why in self.ingest.report.refused]
        self.assertEqual(len(reasons), 4)
        self.assertIn("not a distribution", reasons[1])
        self.assertIn("is not a time", reasons[2])
        self.assertIn("but the source says", reasons[3])
        self.assertEqual(self.storage.objects, {})
        self.assertEqual(os.listdir(self.storage.temp_dir), [], "no spooled file is left")

    async def test_same_name_twice(self):
        """A source holding one filename twice: the same bytes once, other bytes a conflict."""
        filename, data = make_wheel("holy-grail", "1.0")
        other = make_wheel("holy-grail", "1.0", module_text="X = 2\n")[1]
        await self.ingest.take(self.arrival(filename, data))
        await self.ingest.take(self.arrival(filename, data))
        await self.ingest.take(self.arrival(filename, other))
        report = self.ingest.report
        self.assertEqual((report.imported, report.present), ([filename], [filename]))
        self.assertEqual([name for name, _ in report.conflicts], [filename])
        self.assertIn(f"(from origin/{filename})", report.conflicts[0][1])

    async def test_take_all(self):
        """
        Taking a source's files several at a time reads them in the source's
        order (a second file of a name once the first is taken), and gives
        the report a one-by-one import gives.
        """
        names = [make_wheel("holy-grail", f"1.{n}") for n in range(6)]
        twice = make_wheel("holy-grail", "1.0", module_text="X = 2\n")[1]
        read, arrivals = [], []
        for filename, data in names + [(names[0][0], twice)]:
            arrival = self.arrival(filename, data)
            arrivals.append(attrs.evolve(arrival, fetch=lambda path, limit, arrival=arrival: (
                read.append(arrival.filename), arrival.fetch(path, limit))[1]))
        await self.ingest.take_all(arrivals)
        report = self.ingest.report
        self.assertEqual(sorted(read), sorted(a.filename for a in arrivals))
        self.assertEqual(list(dict.fromkeys(read)), [name for name, _ in names],
                         "new names are read in the source's order")
        self.assertEqual(sorted(report.imported), sorted(name for name, _ in names))
        self.assertEqual([name for name, _ in report.conflicts], [names[0][0]])

    async def test_take_all_stops(self):
        """When the storage fails, no more files are begun and the failure is raised."""
        published = []

        def failing(temp, record, metadata, details=None, provenance=None):
            published.append(record.filename)
            raise StorageError("the storage is full")
        self.ingest = Ingest(_Publishing(self.storage, failing), run_now, MAX, {}, ())
        arrivals = [self.arrival(*make_wheel("holy-grail", f"1.{n}")) for n in range(10)]
        with self.assertRaises(StorageError):
            await self.ingest.take_all(arrivals, parallel=2)
        self.assertLessEqual(len(published), 2)

    async def test_uploader_cut(self):
        """An uploader's name is cut as an upload's record cuts it."""
        filename, data = make_wheel("holy-grail", "1.0")
        await self.ingest.take(self.arrival(filename, data, uploader="x" * 500))
        record = (await self.storage.scan({}, 0.0, (), False)).records[filename]
        self.assertLessEqual(len(record.uploader.encode()), 100)


class IndexBundleTests(TestCase):
    """
    C{pypid-admin export --index} and C{import} of bundles with named
    indexes (issue 26), on local storage folders, in this process.
    """

    def setUp(self):
        self.folder = os.path.abspath(self.mktemp())
        self.source = os.path.join(self.folder, "source")
        self.default_name, default = make_wheel("holy-grail", "1.0")
        self.release_name, release = make_wheel("holy-grail", "2.0")
        write_file(os.path.join(self.source, self.default_name), default)
        write_file(os.path.join(self.source, ".indexes", "release", self.release_name),
                   release)

    def config(self, name, storage, sections=""):
        """A configuration file of the local storage C{storage}."""
        path = os.path.join(self.folder, name + ".ini")
        write_file(path, (f"[storage]\npath = {storage}\n[pypid]\n"
                          f"snapshot = {self.folder}/{name}.json\n{sections}").encode())
        return path

    async def test_round_trip(self):
        """Two indexes packed, then imported each into its own storage."""
        from tests.harness.admin import run_admin

        source = self.config("source", self.source, "[index:release]\n")
        bundle = os.path.join(self.folder, "bundle.tar.gz")
        code, out, err = await run_admin(source, "export", to=bundle,
                                         index=["default", "release"])
        self.assertEqual((code, err), (0, ""))
        self.assertIn("Exported 2 files", out)
        target = os.path.join(self.folder, "target")
        os.makedirs(target)
        config = self.config("target", target, "[index:release]\n")
        code, out, err = await run_admin(config, "import", source=bundle)
        self.assertEqual((code, err), (0, ""), out)
        self.assertTrue(os.path.isfile(os.path.join(target, self.default_name)))
        self.assertFalse(os.path.exists(os.path.join(target, self.release_name)))
        self.assertTrue(os.path.isfile(os.path.join(target, ".indexes", "release",
                                                    self.release_name)))
        self.assertIn("Into the index release:", out)

    async def test_statuses_round_trip(self):
        """
        Issue 45: each index's project statuses go into the bundle and are
        kept by the import in each index's storage, with an audit entry;
        the command says so.
        """
        from pypid.storage.folder.local import LocalStorage
        from tests.harness.admin import run_admin

        default = LocalStorage(self.source, run_now)
        self.successResultOf(default.keep_status(
            "holy-grail", ProjectStatus("quarantined", "malware reported").to_bytes()))
        release = LocalStorage(os.path.join(self.source, ".indexes", "release"), run_now)
        self.successResultOf(release.keep_status("holy-grail",
                                                 ProjectStatus("archived").to_bytes()))
        source = self.config("source", self.source, "[index:release]\n")
        bundle = os.path.join(self.folder, "bundle.tar")
        code, out, err = await run_admin(source, "export", to=bundle,
                                         index=["default", "release"])
        self.assertEqual((code, err), (0, ""))
        self.assertIn("2 project statuses", out)
        target = os.path.join(self.folder, "target")
        os.makedirs(target)
        code, out, err = await run_admin(self.config("target", target, "[index:release]\n"),
                                         "import", source=bundle)
        self.assertEqual((code, err), (0, ""), out)
        self.assertIn("project statuses: 1 kept, 0 already there\n"
                      "  holy-grail: quarantined: malware reported\n", out)
        kept = self.successResultOf(LocalStorage(target, run_now).statuses())
        self.assertEqual(ProjectStatus.from_bytes(kept["holy-grail"]),
                         ProjectStatus("quarantined", "malware reported"))
        kept = self.successResultOf(LocalStorage(
            os.path.join(target, ".indexes", "release"), run_now).statuses())
        self.assertEqual(ProjectStatus.from_bytes(kept["holy-grail"]), ProjectStatus("archived"))
        audit = os.path.join(target, ".pypid", "audit")
        logged = b""
        for name in os.listdir(audit):
            if name.endswith(".jsonl"):
                with open(os.path.join(audit, name), "rb") as f:
                    logged += f.read()
        self.assertIn(b'"event":"status"', logged)
        self.assertIn(b'"detail":"quarantined: malware reported; imported, by ', logged)

    async def test_named_only(self):
        """--index NAME alone packs that index; the default's part is empty."""
        from tests.harness.admin import run_admin

        source = self.config("source", self.source, "[index:release]\n")
        bundle = os.path.join(self.folder, "bundle")
        code, out, err = await run_admin(source, "export", to=bundle, index=["release"])
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(sorted(os.listdir(os.path.join(bundle, "indexes", "release",
                                                        "files"))), [self.release_name])
        self.assertFalse(os.path.exists(os.path.join(bundle, "files")))
        with open(os.path.join(bundle, m.INDEXES_JSON), "rb") as f:
            self.assertEqual(m.parse_indexes(f.read()), (m.BundledIndex("release", ()),))

    async def test_not_configured(self):
        """
        A bundle of a named index imported where that index is not configured:
        one error naming the missing section, and nothing imported.
        """
        from tests.harness.admin import run_admin

        source = self.config("source", self.source, "[index:release]\n")
        bundle = os.path.join(self.folder, "bundle.tar")
        await run_admin(source, "export", to=bundle, index=["default", "release"])
        target = os.path.join(self.folder, "target")
        os.makedirs(target)
        code, out, err = await run_admin(self.config("target", target), "import",
                                         source=bundle)
        self.assertEqual(code, 1)
        self.assertIn("not configured: [index:release] (nothing was imported)", err)
        self.assertIn("[index:release]\n", out)
        self.assertEqual(sorted(n for n in os.listdir(target) if not n.startswith(".")), [])

    async def test_default_bundle_unchanged(self):
        """
        Without --index, the bundle is today's: the default index's files at
        the top, no indexes.json, no indexes/ (what the named index holds is
        not in it); and it imports as before.
        """
        from tests.harness.admin import run_admin

        source = self.config("source", self.source, "[index:release]\n")
        bundle = os.path.join(self.folder, "bundle")
        code, out, err = await run_admin(source, "export", to=bundle)
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(sorted(os.listdir(bundle)),
                         ["files", "manifest.json", "metadata", "records.json",
                          "tombstones.json"])
        self.assertEqual(os.listdir(os.path.join(bundle, "files")), [self.default_name])
        target = os.path.join(self.folder, "target")
        os.makedirs(target)
        code, out, err = await run_admin(self.config("target", target), "import",
                                         source=bundle)
        self.assertEqual((code, err), (0, ""))
        self.assertNotIn("Into the index", out)
        self.assertEqual(sorted(n for n in os.listdir(target) if not n.startswith(".")),
                         [self.default_name])

    async def test_refusals(self):
        """--index of an index not configured, or of a view: one line, status 1."""
        from tests.harness.admin import run_admin

        source = self.config("source", self.source,
                             "[index:release]\n[index:prod]\nview = yes\nbases = release\n")
        for name, reason in (("nope", "no [index:nope] is configured"),
                             ("prod", "a view holds no files")):
            code, out, err = await run_admin(source, "export",
                                             to=os.path.join(self.folder, name), index=[name])
            self.assertEqual(code, 1)
            self.assertIn(reason, err)


class IndexManifestTests(SynchronousTestCase):
    """The names of a named index's members, and C{indexes.json}."""

    def test_classify(self):
        """A named index's members say their index; others under indexes/ are refused."""
        self.assertEqual(m.classify("indexes/release/files/a-1.0.tar.gz"),
                         m.Member("indexes/release/files/a-1.0.tar.gz", "file",
                                  "a-1.0.tar.gz", "release"))
        self.assertEqual(m.classify("indexes/release/records.json").kind, "records")
        self.assertEqual(m.classify(m.INDEXES_JSON).kind, "indexes")
        for name in ("indexes/default/files/a-1.0.tar.gz", "indexes/Rel/records.json",
                     "indexes/release/audit/x.jsonl", "indexes/release/manifest.json",
                     "indexes/release/indexes/x/records.json", "indexes/release",
                     "indexes/../files/x.whl"):
            with self.assertRaises(m.BundleError, msg=name):
                m.classify(name)

    def test_indexes_json(self):
        """indexes.json round-trips; a view or a bad name is refused."""
        indexes = (m.BundledIndex("release", ("upstream:default",)),
                   m.BundledIndex("staging", ("release",)))
        self.assertEqual(m.parse_indexes(m.indexes_bytes(indexes)), indexes)
        for data, reason in (({"indexes": {"Bad": {}}}, "not the name"),
                             ({"indexes": {"p": {"view": True}}}, "a view holds no files"),
                             ({"indexes": {"p": {"bases": "x"}}}, "bases must be a list")):
            with self.assertRaises(m.BundleError) as caught:
                m.parse_indexes(json.dumps(data).encode())
            self.assertIn(reason, str(caught.exception))


class ReportTests(SynchronousTestCase):
    """The import report, printed on an operator's terminal."""

    def test_escaped(self):
        """Names and reasons a source chose are printed escaped, one line each."""
        from types import SimpleNamespace

        from pypid.cli.bundle import _report
        report = SimpleNamespace(lines=lambda verbose: [
            "refused evil\x1b[2J-1.0.tar.gz: yanked \u202ereason\nsecond line"])
        out = io.StringIO()
        _report(out, [("default", SimpleNamespace(report=report)),
                      ("release", SimpleNamespace(report=report))],
                SimpleNamespace(verbose=False))
        self.assertEqual(out.getvalue(), (
            "refused evil\\x1b[2J-1.0.tar.gz: yanked \\u202ereason\\nsecond line\n"
            "Into the index release:\n"
            "refused evil\\x1b[2J-1.0.tar.gz: yanked \\u202ereason\\nsecond line\n"))


class SummaryCountTests(SynchronousTestCase):
    """What C{pypid-admin export} and C{import} print count one thing in the singular."""

    def test_pack_summary(self):
        from pypid.bundle.pack import PackReport
        self.assertEqual(
            PackReport(files=1, bytes=1, metadata=1, details=1, tombstones=1, audit=1,
                       statuses=1).summary("out.tar"),
            "Exported 1 file (1 byte), 1 metadata, 1 detail, 1 project status, 1 tombstone "
            "and 1 audit log file to out.tar")
        self.assertEqual(
            PackReport(files=2, bytes=10, tombstones=0, audit=2).summary("out"),
            "Exported 2 files (10 bytes), 0 metadata, 0 details, 0 tombstones and 2 audit "
            "log files to out")

    def test_import_audit_line(self):
        from pypid.bundle.import_report import ImportReport
        report = ImportReport(audit_kept="imported/x", audit_files=1, audit_entries=1,
                              audit_broken=["line 2"])
        self.assertIn("audit log of the source: 1 file, 1 entry, already kept under "
                      "imported/x; its chain has 1 broken link", report.lines())


class ImportOptionTests(SynchronousTestCase):
    """C{pypid-admin import}'s S3 options go with an S3 bucket only."""

    def test_s3_options(self):
        import argparse

        from pypid.cli.bundle import _check_options
        from pypid.cli.server_client import CliError

        for source in ("s3://pkgs/prefix", "gs://pkgs/prefix", "azure://pkgs/p", "out.tar"):
            options = argparse.Namespace(command="import", kind=None, map=[], flatten=False,
                                         s3_endpoint=None, s3_region="eu-west-1",
                                         source=source)
            if source.startswith("s3://"):
                _check_options(options)
            else:
                e = self.assertRaises(CliError, _check_options, options)
                self.assertEqual(str(e), "--s3-region is for a pypicloud bucket "
                                         "(s3://BUCKET/PREFIX)")
