"""
Tests for L{pypid.storage.base.snapshot}: the snapshot's bytes, reading and atomic
writing, the writer that saves only what changed, and the periodic service.
"""

import json
import os
import time

from twisted.internet.defer import Deferred, ensureDeferred, fail, succeed
from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from pypid.core.dists.model import FileRecord
from pypid.core.indexes.index import Index
from pypid.core.indexes.promotion import Promotion
from pypid.state import writer as snapshot_writer
from pypid.state.loader import IndexLoader
from pypid.state.writer import SnapshotTimer, SnapshotWriter
from pypid.storage.base import snapshot
from pypid.storage.base.interface import IStorage
from pypid.storage.base.snapshot import (
    FORMAT,
    REQUIRED,
    Snapshot,
    SnapshotError,
    encode,
    lines,
    write,
)
from pypid.storage.base.snapshot_reading import decode, read
from pypid.storage.folder import folder_scan
from tests.harness.fakes import QueuedRun, read_file, run_now, write_file
from tests.harness.records import LaterRecords


def make_record(version="1.0", **kwargs):
    """Return a record of a wheel of C{holy-grail}."""
    filename = f"holy_grail-{version}-py3-none-any.whl"
    values = dict(filename=filename, project="holy-grail", name="Holy.Grail", version=version,
                  packagetype="bdist_wheel", path=filename, size=10, sha256="a" * 64,
                  upload_time=1767225600.5)
    values.update(kwargs)
    return FileRecord(**values)


class EncodingTests(SynchronousTestCase):
    """Tests for L{encode} and L{decode}."""

    def test_round_trip(self):
        """Records, tombstones and the time survive encoding and decoding."""
        records = [make_record(), make_record("2.0", yanked="", metadata_sha256="b" * 64)]
        data = encode(records, ["gone-1.0.tar.gz"], 1767225700.0)
        self.assertIsInstance(data, bytes)
        self.assertEqual(decode(data), Snapshot(
            saved_at=1767225700.0,
            records={r.filename: r for r in records},
            tombstones=("gone-1.0.tar.gz",),
        ))

    def test_serial_and_storage(self):
        """The serial and the storage the snapshot describes survive encoding."""
        decoded = decode(encode([], [], 1.0, serial=7, storage="local:/srv/packages"))
        self.assertEqual((decoded.serial, decoded.storage), (7, "local:/srv/packages"))

    def test_empty(self):
        """An empty index round-trips."""
        self.assertEqual(decode(encode([], [], 0)), Snapshot(0.0, {}, ()))

    def test_format(self):
        """
        The bytes are JSON Lines: a first line naming the format, a line a
        project with its files as columns (hex digests; a column of nulls
        left out, and so is the name when the line's is every file's; the
        path null when it is the filename), the deleted filenames, and a
        last line counting what came before.
        """
        moved = make_record("2.0", path="sub/holy_grail-2.0-py3-none-any.whl", md5="c" * 32,
                            name="holy-grail")
        data = encode([make_record(), moved], ["x-1.0.tar.gz"], 5)
        self.assertNotIn(b" ", data)
        first, project, deleted, end = [json.loads(line) for line in data.splitlines()]
        self.assertEqual(first, {"format": FORMAT, "saved_at": 5, "serial": 0, "storage": None})
        self.assertEqual(project, {"project": "holy-grail", "name": "Holy.Grail", "files": {
            "filename": ["holy_grail-1.0-py3-none-any.whl", "holy_grail-2.0-py3-none-any.whl"],
            "name": ["Holy.Grail", "holy-grail"],
            "version": ["1.0", "2.0"],
            "packagetype": ["bdist_wheel", "bdist_wheel"],
            "path": [None, "sub/holy_grail-2.0-py3-none-any.whl"],
            "size": [10, 10],
            "sha256": ["a" * 64, "a" * 64],
            "upload_time": [1767225600.5, 1767225600.5],
            "md5": [None, "c" * 32],
        }})
        self.assertEqual(deleted, {"tombstones": ["x-1.0.tar.gz"]})
        self.assertEqual(end, {"end": {"projects": 1, "files": 2}})
        self.assertEqual(decode(data).records[moved.filename], moved)
        one = json.loads(encode([make_record()], [], 5).splitlines()[1])
        self.assertEqual(sorted(one["files"]), sorted(REQUIRED))

    def test_shared_strings(self):
        """
        Files read from one snapshot share one copy of the text they have in
        common (a project, a version, a summary): what a file costs in
        memory is what is its own.
        """
        records = [make_record(v, summary="The Holy Grail", requires_python=">=3.9",
                               filename=f"holy_grail-{v}-{tag}-none-any.whl")
                   for v in ("1.0", "2.0") for tag in ("py2", "py3")]
        read = list(decode(encode(records, [], 5)).records.values())
        self.assertEqual(read, records)
        for field in ("project", "name", "version", "summary", "requires_python"):
            self.assertIs(getattr(read[0], field), getattr(read[1], field), field)
        self.assertIs(read[0].summary, read[3].summary)

    def test_reads_format_1(self):
        """
        A snapshot the former version wrote (format 1: one JSON document, a
        dict a file) is still read, so that an upgrade starts from it.
        """
        records = [make_record(), make_record("2.0", yanked="")]
        old = json.dumps({"format": 1, "saved_at": 4.0, "serial": 3, "storage": "s",
                          "files": [r.to_json() for r in records],
                          "tombstones": ["gone-1.0.tar.gz"]}, indent=1).encode()
        self.assertEqual(decode(old), Snapshot(4.0, {r.filename: r for r in records},
                                               ("gone-1.0.tar.gz",), 3, "s", format=1))
        path = os.path.join(self.mktemp(), "index.json")
        write(path, old)
        self.assertEqual(read(path), decode(old))
        # (its serial, storage and files are checked as a format 2 snapshot's)
        for bad in ({"serial": "x"}, {"storage": 3}, {"files": [{"filename": 7}]}):
            broken = json.dumps({"format": 1, "saved_at": 4.0, "serial": 3, "storage": "s",
                                 "files": [r.to_json() for r in records], **bad}).encode()
            self.assertRaises(SnapshotError, decode, broken)

    def test_decode_errors(self):
        """Anything but a snapshot of a format this version reads raises L{SnapshotError}."""
        good = encode([make_record()], ["x-1.0.tar.gz"], 5).splitlines()
        first, project, deleted, end = [json.loads(line) for line in good]
        files = project["files"]

        def snap(first=first, project=project, deleted=deleted, end=end, extra=()):
            parts = [first, project, deleted, end, *extra]
            return b"\n".join(json.dumps(part).encode() for part in parts if part is not None)

        def with_files(**changes):
            changed = dict(files, **changes)
            return dict(project, files={k: v for k, v in changed.items() if v is not None})

        cases = [
            b"",
            b"{not json",
            b"\xff\xfe",
            b"[]",
            b"null",
            snap(first=dict(first, format=3)),
            snap(first={k: v for k, v in first.items() if k != "format"}),
            snap(first=dict(first, saved_at="yesterday")),
            snap(first=dict(first, serial="7")),
            snap(end=None),
            snap(end={"end": {"projects": 1, "files": 3}}),
            snap(deleted=None),
            snap(deleted={"tombstones": [1]}),
            snap(extra=[{"end": {}}]),
            snap(extra=[{"colour": "blue"}]),
            b"\n".join([good[0], good[1][:40], *good[2:]]),
            snap(project=dict(project, files=[42])),
            snap(project=dict(project, files=None)),
            snap(project=dict(project, name=None)),
            snap(project=dict(project, project=7)),
            snap(project=with_files(colour=["blue"])),
            snap(project=with_files(size=None)),
            snap(project=with_files(size=[10, 10])),
            snap(project=with_files(size="10")),
            snap(project=with_files(filename=None)),
            snap(project=with_files(filename=[3])),
            snap(project=with_files(packagetype=["egg"])),
            snap(project=with_files(packagetype=[["bdist_wheel"]])),
            snap(project=with_files(size=[-1])),
            snap(project=with_files(size=[True])),
            snap(project=with_files(size=["10"])),
            snap(project=with_files(sha256=["a" * 63])),
            snap(project=with_files(sha256=[None])),
            snap(project=with_files(sha256=["g" * 64])),
            snap(project=with_files(sha256=[7])),
            snap(project=with_files(md5=["c" * 64])),
            snap(project=with_files(md5=[7])),
            snap(project=with_files(metadata_sha256=[None, "a" * 64])),
            snap(project=with_files(upload_time=["now"])),
            snap(project=with_files(version=[1.0])),
            snap(project=with_files(yanked=[False])),
            snap(project=with_files(path=[["x"]])),
            snap(project=with_files(name=[None])),
            snap(project=with_files(summary=[{}])),
        ]
        self.assertEqual(decode(snap()).records, {files["filename"][0]: make_record()})
        self.assertEqual(decode(snap(project=with_files(md5=[None], yanked=[""]))).records,
                         {files["filename"][0]: make_record(yanked="")})
        for data in cases:
            self.assertRaises(SnapshotError, decode, data)

    def test_written_as_it_is_made(self):
        """
        L{write} takes the lines as they come: the writer never holds the
        whole snapshot (only a copy for a shared storage is made whole).
        """
        taken = []

        def parts():
            for line in lines([make_record()], [], 5):
                taken.append(line)
                yield line
        path = os.path.join(self.mktemp(), "index.json")
        write(path, parts())
        self.assertEqual(len(taken), 4)
        self.assertEqual(read_file(path), b"".join(taken))
        self.assertEqual(read(path), decode(b"".join(taken)))

    def test_unknown_format_named(self):
        """A snapshot from another format says which format it is."""
        e = self.assertRaises(SnapshotError, decode, b'{"format": 99}')
        self.assertIn("99", str(e))


class ReadWriteTests(SynchronousTestCase):
    """Tests for L{read} and L{write}."""

    def setUp(self):
        self.folder = os.path.abspath(self.mktemp())
        self.path = os.path.join(self.folder, "index.json")

    def test_missing(self):
        """A snapshot that does not exist reads as L{None}."""
        self.assertIsNone(read(self.path))

    def test_write_read(self):
        """What is written is read back, and the folder is created."""
        data = encode([make_record()], ["x-1.0.tar.gz"], 3.0)
        write(self.path, data)
        self.assertEqual(read_file(self.path), data)
        self.assertEqual(read(self.path), decode(data))

    def test_write_atomic(self):
        """Writing replaces the file and leaves no temporary file behind."""
        write(self.path, b"first")
        write(self.path, b"second")
        self.assertEqual(read_file(self.path), b"second")
        self.assertEqual(os.listdir(self.folder), ["index.json"])

    def test_write_failure_cleans_up(self):
        """A write that fails midway leaves the old snapshot and no temporary file."""
        write(self.path, b"old")
        self.patch(snapshot.os, "replace", lambda a, b: (_ for _ in ()).throw(OSError(28, "full")))
        self.assertRaises(OSError, write, self.path, b"new")
        self.assertEqual(read_file(self.path), b"old")
        self.assertEqual(os.listdir(self.folder), ["index.json"])

    def test_crash_leftovers_swept(self):
        """
        A read removes the temporary files a crash left beside the snapshot,
        but not one another process is writing (a machine's first worker
        saving while the second starts): that save still lands.
        """
        write(self.path, b"old")
        left = os.path.join(self.folder, ".index-crashed.tmp")
        write_file(left, b"half")
        seen = []

        def chunks():
            yield b"new, "
            seen.append({name for name in os.listdir(self.folder) if name.endswith(".tmp")})
            # (another process starts meanwhile: its read sweeps)
            snapshot.sweep(self.path)
            seen.append({name for name in os.listdir(self.folder) if name.endswith(".tmp")})
            yield b"whole"
        write(self.path, chunks())
        before, after = seen
        self.assertIn(".index-crashed.tmp", before)
        self.assertEqual(len(before), 2)
        self.assertEqual(after, before - {".index-crashed.tmp"})
        self.assertEqual(read_file(self.path), b"new, whole")
        self.assertEqual(os.listdir(self.folder), ["index.json"])

    def test_corrupt(self):
        """A corrupt snapshot raises L{SnapshotError} and is moved to C{.bad}."""
        write_file(self.path, b"{half a snap")
        e = self.assertRaises(SnapshotError, read, self.path)
        self.assertIn(self.path + ".bad", str(e))
        self.assertFalse(os.path.exists(self.path))
        self.assertEqual(read_file(self.path + ".bad"), b"{half a snap")
        self.assertIsNone(read(self.path))

    def test_unreadable(self):
        """A snapshot path that cannot be read (a folder) raises L{SnapshotError}."""
        os.makedirs(self.path)
        self.assertRaises(SnapshotError, read, self.path)


class LaterTests(SynchronousTestCase):
    """
    L{decode} and L{read} with C{later}: a project's line parsed for its
    name and filenames only, its records made by C{source()}.
    """

    def setUp(self):
        self.records = [make_record(), make_record("2.0", yanked="bad", md5="c" * 32),
                        make_record("0.1", project="spam", name="Spam",
                                    filename="spam-0.1.tar.gz", path="spam-0.1.tar.gz",
                                    packagetype="sdist")]
        self.data = encode(self.records, ["gone-1.0.tar.gz"], 5.0, serial=4)

    def made(self, snap):
        """Every record the snapshot's C{later} entries make, by filename."""
        return {r.filename: r for entry in snap.later for r in entry()}

    def written(self, data=None):
        """The path of a snapshot file holding C{data} (the setUp's by default)."""
        path = os.path.join(os.path.abspath(self.mktemp()), "index.json")
        write(path, self.data if data is None else data)
        return path

    def test_same_records(self):
        """The sources make the records a whole read makes; nothing else is read now."""
        snap = decode(self.data, later=True)
        self.assertEqual(snap.records, {})
        self.assertEqual([(entry.name, entry.display_name, entry.count) for entry in snap.later],
                         [("holy-grail", "Holy.Grail", 2), ("spam", "Spam", 1)])
        self.assertEqual((snap.tombstones, snap.serial, snap.saved_at),
                         (("gone-1.0.tar.gz",), 4, 5.0))
        self.assertEqual(self.made(snap), decode(self.data).records)

    def test_read(self):
        """L{read} takes it too, from a file."""
        self.assertEqual(self.made(read(self.written(), later=True)), decode(self.data).records)

    def test_lines_read_again_from_the_file(self):
        """
        The lines are not kept: each is read again from the file as it was
        read, when its records are made; a save since (another file renamed
        over it) changes nothing of them.
        """
        path = self.written()
        snap = read(path, later=True)
        write(path, encode([make_record("9.0")], [], 6.0))
        self.assertEqual(self.made(snap), decode(self.data).records)

    def test_file_changed_in_place(self):
        """
        A line that no longer reads as it did at the start (the file
        written over in place since) gives no records, said in a warning,
        and its project is noted as damaged; the others are read as they are.
        """
        path = self.written()
        snap = read(path, later=True)
        with open(path, "r+b") as f:
            data = f.read()
            f.seek(data.index(b"Holy.Grail"))
            f.write(b"Holy-Grail")
        with capturedLogs() as events:
            self.assertEqual(snap.later[0](), [])
        self.assertIn("holy-grail", " ".join(str(e.get("project")) for e in events))
        self.assertEqual(snap.damaged, ["holy-grail"])
        self.assertEqual(len(snap.later[1]()), 1)

    def test_file_closed_after_the_last_line(self):
        """
        The file stays open until the last project's line was read again,
        then is closed; at once when no project waits, or the read fails.
        """
        open_files = len(os.listdir("/proc/self/fd"))
        snap = read(self.written(), later=True)
        self.assertEqual(len(os.listdir("/proc/self/fd")), open_files + 1)
        snap.later[0]()
        self.assertEqual(len(os.listdir("/proc/self/fd")), open_files + 1)
        snap.later[1]()
        self.assertEqual(len(os.listdir("/proc/self/fd")), open_files)
        self.assertEqual(read(self.written(encode([], [], 5.0)), later=True).later, ())
        cut = b"".join(self.data.splitlines(keepends=True)[:-1])
        self.assertRaises(SnapshotError, read, self.written(cut), later=True)
        self.assertEqual(len(os.listdir("/proc/self/fd")), open_files)

    def test_made_once(self):
        """A project's records are made once: its source called again is a mistake, said."""
        snap = decode(self.data, later=True)
        snap.later[1]()
        self.assertRaises(RuntimeError, snap.later[1])

    def test_damaged_line_gives_none(self):
        """A line whose other columns are damaged gives no records, said in a warning."""
        data = self.data.replace(b'"' + b"a" * 64 + b'"', b'"zz"', 1)
        snap = decode(data, later=True)
        with capturedLogs() as events:
            self.assertEqual(snap.later[0](), [])
        self.assertIn("holy-grail", " ".join(str(e.get("project")) for e in events))
        self.assertEqual(len(snap.later[1]()), 1)
        self.assertRaises(SnapshotError, decode, data)

    def test_other_layout(self):
        """A line laid out otherwise (keys in another order, by hand) is parsed whole."""
        first, *rest = self.data.splitlines()
        line = json.loads(rest[0])
        mended = json.dumps({"files": line["files"], "name": line["name"],
                             "project": line["project"]}).encode()
        data = b"\n".join([first, mended, *rest[1:]]) + b"\n"
        self.assertEqual(self.made(decode(data, later=True)), decode(self.data).records)

    def test_bracket_in_a_filename(self):
        """
        A filename holding a C{]} (no distribution's does) ends the quick
        read of the filenames early; the line is then parsed whole.
        """
        odd = self.records[2].replace(filename="spam-0.1].tar.gz", path="spam-0.1].tar.gz")
        data = encode([odd], [], 5.0)
        snap = decode(data, later=True)
        self.assertEqual(snap.later[0].count, 1)
        self.assertEqual(self.made(snap), {odd.filename: odd})

    def test_cut_short(self):
        """A snapshot whose last line is missing is refused, read later or not."""
        cut = b"".join(self.data.splitlines(keepends=True)[:-1])
        self.assertRaises(SnapshotError, decode, cut, later=True)

    def test_bad_filenames(self):
        """A project line whose filenames are not strings is refused at once."""
        first, *rest = self.data.splitlines()
        line = json.loads(rest[0])
        line["files"]["filename"][0] = 7
        data = b"\n".join([first, json.dumps(line).encode(), *rest[1:]]) + b"\n"
        self.assertRaises(SnapshotError, decode, data, later=True)

    def test_format_1_read_whole(self):
        """A format 1 snapshot is read whole: nothing left for later."""
        data = json.dumps({"format": 1, "saved_at": 5.0, "serial": 4, "tombstones": [],
                           "files": [r.to_json() for r in self.records]}).encode()
        snap = decode(data, later=True)
        self.assertEqual((snap.later, snap.records), ((), decode(self.data).records))


class SnapshotWriterTests(SynchronousTestCase):
    """Tests for L{SnapshotWriter}."""

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1000)
        self.index = Index(lambda r: r.filename)
        self.path = os.path.join(os.path.abspath(self.mktemp()), "index.json")

    def writer(self, run=run_now):
        """Return a writer of this test's index."""
        return SnapshotWriter(self.index, self.path, run, self.clock)

    def test_dated_back_to_work_under_way(self):
        """A snapshot taken while a change is under way is dated when that change began."""
        writer = SnapshotWriter(self.index, self.path, run_now, self.clock, "local:/x",
                                lambda: 400.0)
        self.index.add(make_record())
        self.successResultOf(writer.save_if_changed())
        saved = read(self.path)
        self.assertEqual((saved.saved_at, saved.storage), (400.0, "local:/x"))

    def test_wanted_save(self):
        """L{SnapshotWriter.want_save} saves once more even when the index did not change."""
        writer = self.writer()
        self.successResultOf(writer.save_if_changed())
        os.unlink(self.path)
        self.successResultOf(writer.save_if_changed())
        self.assertFalse(os.path.exists(self.path))
        writer.want_save()
        self.successResultOf(writer.save_if_changed())
        self.assertTrue(os.path.exists(self.path))

    def test_soon(self):
        """
        L{SnapshotWriter.soon} saves within L{snapshot_writer.SOON} seconds (the
        upstream cache learnt something: a crash must not lose it), once
        for many calls, and not while a stop cancelled it.
        """
        writer = self.writer()
        self.index.add(make_record())
        writer.soon()
        writer.soon()
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(snapshot_writer.SOON - 0.1)
        self.assertFalse(os.path.exists(self.path))
        self.clock.advance(0.1)
        self.assertTrue(os.path.exists(self.path))
        writer.duration = 2.0  # (a save that takes long is not made every few seconds)
        writer.soon()
        self.assertEqual(self.clock.getDelayedCalls()[0].getTime(), self.clock.seconds() + 20)
        self.successResultOf(writer.stopService())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_copy_only_where_kept(self):
        """
        A shared storage that keeps a copy of the snapshot (a bucket) is given
        one at each save that changed the index; one that keeps none (a
        machine's folder, a bucket without C{bucket_snapshot}) is given none,
        and none is encoded for it.
        """
        encoded = []

        def encode(*args, **kwargs):
            encoded.append(args)
            return snapshot.encode(*args, **kwargs)
        self.patch(snapshot_writer, "encode", encode)
        for keeps, version in ((True, "1.0"), (False, "2.0")):
            del encoded[:]
            shared = _SharedStorage(keeps)
            writer = SnapshotWriter(self.index, self.path, run_now, self.clock, shared=shared)
            self.index.add(make_record(version))
            self.successResultOf(writer.save_if_changed())
            self.assertTrue(os.path.exists(self.path))
            if keeps:
                self.assertEqual(len(shared.kept), 1)
                self.assertIn(make_record("1.0").filename, decode(shared.kept[0]).records)
            else:
                self.assertEqual((shared.kept, encoded), ([], []))

    def test_saves_when_changed(self):
        """A changed index is saved with the time and serial of the call."""
        writer = self.writer()
        self.index.add(make_record())
        self.successResultOf(writer.save_if_changed())
        saved = read(self.path)
        self.assertEqual(saved.records, {make_record().filename: make_record()})
        self.assertEqual(saved.saved_at, 1000)
        self.assertTrue(writer.saved_up_to_now())

    def test_not_when_unchanged(self):
        """Nothing is written when the serial has not moved since the last save."""
        writer = self.writer()
        self.index.add(make_record())
        self.successResultOf(writer.save_if_changed())
        os.unlink(self.path)
        self.successResultOf(writer.save_if_changed())
        self.assertFalse(os.path.exists(self.path))

    def test_not_for_views_judged_again(self):
        """
        A reload judging the kept pages again moves the serial, not what a
        snapshot holds: a saved index is not written again; an unsaved
        one still is.
        """
        writer = self.writer()
        self.index.add(make_record())
        self.successResultOf(writer.save_if_changed())
        os.unlink(self.path)
        writer.views_judged_again(lambda: self.index.reconfigure(1 << 20))
        self.successResultOf(writer.save_if_changed())
        self.assertFalse(os.path.exists(self.path))
        self.index.add(make_record("2.0"))
        writer.views_judged_again(lambda: self.index.reconfigure(1 << 20))
        self.successResultOf(writer.save_if_changed())
        self.assertEqual(len(read(self.path).records), 2)

    def test_waits_for_projects_loaded_later(self):
        """
        While projects loaded later wait for their records, a tick saves
        nothing (the start's check makes them a batch at a time); a final
        save makes them all and saves.
        """
        writer = self.writer()
        record = make_record()
        self.index.load([], later=[LaterRecords("holy-grail", "Holy.Grail", 1,
                                                lambda: [record])])
        self.successResultOf(writer.save_if_changed())
        self.assertFalse(os.path.exists(self.path))
        self.successResultOf(writer.save_if_changed(final=True))
        self.assertEqual(read(self.path).records, {record.filename: record})

    def test_saves_again_after_change(self):
        """Each later change is saved by the next call."""
        writer = self.writer()
        self.index.add(make_record())
        self.successResultOf(writer.save_if_changed())
        self.index.add(make_record("2.0"))
        self.clock.advance(5)
        self.successResultOf(writer.save_if_changed())
        saved = read(self.path)
        self.assertEqual(len(saved.records), 2)
        self.assertEqual(saved.saved_at, 1005)
        self.index.remove(make_record().filename)
        self.successResultOf(writer.save_if_changed())
        self.assertEqual(read(self.path).tombstones, (make_record().filename,))

    def test_failure_logged_not_raised(self):
        """A failed save is logged, its Deferred succeeds, and a later call saves."""
        calls = []

        def flaky(f, *args):
            calls.append(f)
            if len(calls) == 1:
                return fail(OSError(28, "No space left on device"))
            return run_now(f, *args)

        writer = self.writer(flaky)
        self.index.add(make_record())
        with capturedLogs() as events:
            self.assertIsNone(self.successResultOf(writer.save_if_changed()))
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.assertTrue(any("Cannot save the snapshot" in e.get("log_format", "")
                            for e in events))
        self.assertFalse(os.path.exists(self.path))
        self.assertFalse(writer.saved_up_to_now())
        self.successResultOf(writer.save_if_changed())
        self.assertEqual(len(read(self.path).records), 1)

    def test_real_write_failure(self):
        """A save that cannot write the file (its folder is a file) does not fail the caller."""
        write_file(os.path.dirname(self.path), b"in the way")
        writer = self.writer()
        self.index.add(make_record())
        self.successResultOf(writer.save_if_changed())
        self.assertTrue(self.flushLoggedErrors(OSError))
        self.assertFalse(writer.saved_up_to_now())
        # (nothing counted as saved: once the folder can be written, it is)
        os.remove(os.path.dirname(self.path))
        os.makedirs(os.path.dirname(self.path))
        self.successResultOf(writer.save_if_changed())
        self.assertEqual(len(read(self.path).records), 1)
        self.assertTrue(writer.saved_up_to_now())

    def test_one_save_at_a_time(self):
        """A call while a save is under way gets that save rather than starting another."""
        run = QueuedRun()
        writer = self.writer(run)
        self.index.add(make_record())
        first = writer.save_if_changed()
        self.index.add(make_record("2.0"))
        second = writer.save_if_changed()
        self.assertIs(second, first)
        self.assertEqual(len(run.pending), 1)
        run.run_all()
        self.successResultOf(first)
        self.assertEqual(len(read(self.path).records), 1)
        third = writer.save_if_changed()
        self.assertEqual(len(run.pending), 1)
        run.run_all()
        self.successResultOf(third)
        self.assertEqual(len(read(self.path).records), 2)

    def test_records_taken_before_write(self):
        """The save writes the index as it was when called, not as it is when the write runs."""
        run = QueuedRun()
        writer = self.writer(run)
        self.index.add(make_record())
        d = writer.save_if_changed()
        self.index.add(make_record("2.0"))
        run.run_all()
        self.successResultOf(d)
        self.assertEqual(list(read(self.path).records), [make_record().filename])
        self.assertFalse(writer.saved_up_to_now())


class SnapshotTimerTests(SynchronousTestCase):
    """Tests for L{SnapshotTimer}, and the writer's last save as the server stops."""

    def setUp(self):
        self.clock = Clock()
        self.index = Index(lambda r: r.filename)
        self.path = os.path.join(os.path.abspath(self.mktemp()), "index.json")
        self.writer = SnapshotWriter(self.index, self.path, run_now, self.clock)
        self.service = SnapshotTimer(self.writer, 30, self.clock)

    def start(self):
        """Start the writer and its timer, as the server does."""
        self.writer.startService()
        self.service.startService()

    def stop(self):
        """Stop the timer, then the writer (its last save), as the server does."""
        d = self.service.stopService()
        d.addCallback(lambda _: self.writer.stopService())
        return d

    def test_periodic(self):
        """The service saves on every tick at which the index changed."""
        self.start()
        self.addCleanup(self.stop)
        self.index.add(make_record())
        self.clock.advance(30)
        self.assertEqual(len(read(self.path).records), 1)
        self.index.add(make_record("2.0"))
        self.clock.advance(29)
        self.assertEqual(len(read(self.path).records), 1)
        self.clock.advance(1)
        self.assertEqual(len(read(self.path).records), 2)

    def test_survives_failure(self):
        """A failed save does not stop the timer: the next tick saves."""
        broken = [True]

        def run(f, *args):
            if broken[0]:
                return fail(OSError(5, "I/O error"))
            return run_now(f, *args)

        self.writer = SnapshotWriter(self.index, self.path, run, self.clock)
        self.service = SnapshotTimer(self.writer, 30, self.clock)
        self.start()
        self.addCleanup(self.stop)
        self.index.add(make_record())
        self.clock.advance(30)
        self.flushLoggedErrors(OSError)
        self.assertIsNone(read(self.path))
        broken[0] = False
        self.clock.advance(30)
        self.assertEqual(len(read(self.path).records), 1)

    def test_saves_on_stop(self):
        """Stopping saves what changed since the last tick."""
        self.start()
        self.clock.advance(30)
        self.index.add(make_record())
        self.successResultOf(self.stop())
        self.assertEqual(len(read(self.path).records), 1)
        self.assertFalse(self.service.running)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop_during_save(self):
        """Stopping while a save is under way waits for it, then saves the later changes."""
        run = QueuedRun()
        self.writer = SnapshotWriter(self.index, self.path, run, self.clock)
        self.service = SnapshotTimer(self.writer, 30, self.clock)
        self.start()
        run.run_all()
        self.index.add(make_record())
        self.clock.advance(30)
        self.assertEqual(len(run.pending), 1)
        self.index.add(make_record("2.0"))
        d = self.stop()
        self.assertNoResult(d)
        run.run()
        self.assertNoResult(d)
        self.assertEqual(len(read(self.path).records), 1)
        run.run_all()
        self.successResultOf(d)
        self.assertEqual(len(read(self.path).records), 2)
        self.assertTrue(self.writer.saved_up_to_now())


class PromotionLineTests(SynchronousTestCase):
    """
    The promoted files' L{Promotion}s in the snapshot (issue 26): a
    C{promotions} line only when the index has any, so a snapshot without
    one is byte for byte what it was.
    """

    def records(self):
        return [make_record(), make_record("2.0"), make_record("3.0")]

    def test_round_trip(self):
        """
        The promotions survive encoding, grouped by promotion: the files of
        one promotion share one L{Promotion} as read back.
        """
        one, two, three = self.records()
        first = Promotion("staging", "bob", 1767225650.0)
        promotions = {one.filename: first, two.filename: Promotion("staging", "bob",
                                                                   1767225650.0),
                      three.filename: Promotion("qa", "alice", 1767225660.5)}
        data = encode([one, two, three], [], 5, promotions=promotions)
        line = json.loads(data.splitlines()[-2])
        self.assertEqual(line, {"promotions": [
            {"source": "staging", "by": "bob", "at": 1767225650.0,
             "filenames": [one.filename, two.filename]},
            {"source": "qa", "by": "alice", "at": 1767225660.5, "filenames": [three.filename]}]})
        for later in (False, True):
            decoded = decode(data, later)
            self.assertEqual(decoded.promotions, promotions)
            self.assertIs(decoded.promotions[one.filename], decoded.promotions[two.filename])

    def test_none_same_bytes(self):
        """Without promotions, no line: the bytes are those a snapshot always had."""
        records = self.records()
        self.assertEqual(encode(records, [], 5, promotions={}), encode(records, [], 5))
        self.assertNotIn(b"promotions", encode(records, [], 5, promotions={}))

    def test_older_snapshot(self):
        """A snapshot without the line (every older one) reads with no promotions."""
        self.assertEqual(decode(encode(self.records(), [], 5)).promotions, {})

    def test_bad_line(self):
        """A promotions line that is not one L{lines} writes makes the snapshot unusable."""
        data = encode(self.records(), [], 5, promotions={
            make_record().filename: Promotion("staging", "bob", 1.0)})
        for bad in (b'{"promotions":{}}', b'{"promotions":[{"source":"s"}]}',
                    b'{"promotions":[{"source":"s","by":"b","at":1,"filenames":[1]}]}'):
            damaged = b"\n".join(bad if line.startswith(b'{"promotions"') else line
                                  for line in data.splitlines())
            self.assertRaises(SnapshotError, decode, damaged)

    def test_saved_and_loaded(self):
        """
        The writer saves the index's promotions; a start from that snapshot
        (no scan of storage yet) knows them at once, its records loaded
        later.
        """
        clock = Clock()
        path = os.path.join(os.path.abspath(self.mktemp()), "index.json")
        index = Index(lambda r: r.filename)
        one, two, three = self.records()
        index.load([one, two])
        promotion = Promotion("staging", "bob", 1767225650.0)
        index.add_promoted(three, promotion)
        self.successResultOf(SnapshotWriter(index, path, run_now, clock).save_if_changed())
        again = Index(lambda r: r.filename)
        storage = _IdleStorage()
        self.successResultOf(ensureDeferred(IndexLoader(again, storage, path, run_now,
                                                        clock).load()))
        self.assertEqual(again.later.waiting, 1)
        self.assertEqual(again.live_promotions(), {three.filename: promotion})
        self.assertEqual(again.promotions.get(three.filename), promotion)
        self.assertIsNone(again.promotions.get(one.filename))


@implementer(IStorage)
class _SharedStorage:
    """What L{SnapshotWriter} asks of a shared storage; the copies it was given."""

    def __init__(self, keeps_snapshot):
        self.keeps_snapshot = keeps_snapshot
        self.kept = []

    def state(self):
        return None

    def state_changed(self):
        return False

    def changes_read(self):
        return None

    def synced_at(self):
        return None

    def keep_snapshot(self, data):
        self.kept.append(data)


class _IdleStorage:
    """A storage of this server's own that a start reads nothing from (no check runs)."""

    def identity(self):
        return None

    def statuses(self):
        return succeed({})


class UpgradeTests(SynchronousTestCase):
    """A snapshot of an older format is used, then written again in this one."""

    def folder(self):
        """
        A real-time clock (storage compares the snapshot's time with the
        files'), a storage folder holding one wheel, the wheel's name, and
        where the snapshot goes.
        """
        import types

        from tests.harness.distributions import make_wheel

        clock = types.SimpleNamespace(seconds=time.time)
        # The snapshot is saved right after the scan's own writes: with the
        # margin for the kernel's coarse clock, the next start would read the
        # folder once more. These tests are about the snapshot's format.
        self.patch(folder_scan, "CHANGE_TIME_MARGIN", 0.0)
        root = os.path.abspath(self.mktemp())
        os.makedirs(root)
        filename, data = make_wheel("holy-grail", "1.0")
        write_file(os.path.join(root, filename), data)
        return clock, root, filename, os.path.join(os.path.abspath(self.mktemp()), "index.json")

    def start(self, root, path, clock):
        """
        Load an index from the storage folder C{root} and the snapshot at
        C{path}, as start-up does, then save as the first tick would;
        whether that wrote the snapshot.
        """
        from pypid.storage.folder.local import LocalStorage

        index = Index(lambda r: r.filename)
        writer = SnapshotWriter(index, path, run_now, clock)
        storage = LocalStorage(root, run_now, clock)
        loader = IndexLoader(index, storage, path, run_now, clock, writer)
        self.successResultOf(loader.load())
        loader.follow_up()
        storage.close()
        before = os.stat(path).st_mtime_ns if os.path.exists(path) else None
        self.successResultOf(writer.save_if_changed())
        self.loaded = index
        return before != os.stat(path).st_mtime_ns

    def test_rewritten_after_start(self):
        """
        Start-up from a format 1 snapshot that storage agrees with loads it
        and then writes it again in format 2 (where a current snapshot that
        storage agrees with is not written again).
        """
        clock, root, filename, path = self.folder()
        self.assertTrue(self.start(root, path, clock))
        time.sleep(0.02)
        self.assertFalse(self.start(root, path, clock))
        current = read(path)
        write(path, json.dumps({
            "format": 1, "saved_at": current.saved_at, "serial": 5,
            "storage": current.storage, "tombstones": [],
            "files": [r.to_json() for r in current.records.values()]}).encode())
        time.sleep(0.02)
        self.assertTrue(self.start(root, path, clock))
        self.assertEqual(self.loaded.serial, 6)
        written = read_file(path)
        self.assertEqual(json.loads(written.splitlines()[0])["format"], FORMAT)
        self.assertEqual(read(path).serial, 6)

    def test_damaged_line_read_from_storage(self):
        """
        A project line damaged past its filenames (a digest) is found so
        when its records are made; the check then reads every record,
        though no folder changed since the snapshot, and the file is
        served; the snapshot is written again whole.
        """
        from tests.harness.distributions import make_wheel

        clock, root, filename, path = self.folder()
        other, data = make_wheel("spam", "1.0")
        write_file(os.path.join(root, other), data)
        self.start(root, path, clock)
        time.sleep(0.02)
        self.assertFalse(self.start(root, path, clock))  # (nothing read: trusted whole)
        good = read(path).records[filename].sha256.encode()
        write_file(path, read_file(path).replace(good, b"zz" * 32))
        time.sleep(0.02)
        with capturedLogs() as events:
            self.assertTrue(self.start(root, path, clock))
        self.assertIn("damaged", " ".join(str(e.get("log_format")) for e in events))
        self.assertEqual(sorted(r.filename for r in self.loaded.records()),
                         sorted([filename, other]))
        self.assertEqual(read(path).records[filename].sha256, good.decode())

    def test_rewritten_after_storage_changed(self):
        """
        A start that had to read records again (storage changed after the
        snapshot, even if back to what it held) writes the snapshot again,
        dated now, so that the next start trusts it without reading
        anything; a start that read nothing writes nothing.
        """
        clock, root, filename, path = self.folder()

        def start():
            time.sleep(0.02)
            changed = self.start(root, path, clock)
            self.assertEqual([r.filename for r in self.loaded.records()], [filename])
            return changed

        self.assertTrue(start())
        self.assertFalse(start())
        # A file copied in and taken out again: the folder changed since.
        write_file(os.path.join(root, "stray.txt"), b"x")
        os.unlink(os.path.join(root, "stray.txt"))
        self.assertTrue(start())
        self.assertFalse(start())


class HeldScanStorage:
    """
    A storage of this server's own whose scan answers when the test says
    (L{answer}), with what the test says: the window between the index
    served from the snapshot and the check of storage against it.
    """

    def __init__(self):
        self.scans = []

    def prepare(self):
        return succeed(None)

    def identity(self):
        return "held:"

    def statuses(self):
        return succeed({})

    def scan(self, known=None, since=0.0, tombstones=()):
        d = Deferred()
        self.scans.append((known, since, tombstones, d))
        return d

    def answer(self, records, tombstones=(), current=False):
        from pypid.storage.base.interface import ScanResult
        self.scans[-1][3].callback(ScanResult({r.filename: r for r in records},
                                              frozenset(tombstones), current=current))


class BackgroundCheckTests(SynchronousTestCase):
    """
    L{pypid.state.loader.IndexLoader} serves a snapshot at once and checks
    storage against it after; what changed through the server meanwhile
    wins over what the check saw.
    """

    def setUp(self):

        self.clock = Clock()
        self.clock.advance(2000)
        self.path = os.path.join(os.path.abspath(self.mktemp()), "index.json")
        self.kept, self.yanked_later, self.gone_later, self.deleted_later = (
            make_record(v) for v in ("1.0", "2.0", "3.0", "4.0"))
        write(self.path, encode([self.kept, self.yanked_later, self.gone_later,
                                 self.deleted_later], ["holy_grail-0.1.tar.gz"], 1500.0, 9,
                                "held:"))
        self.index = Index(lambda r: r.filename)
        self.storage = HeldScanStorage()
        self.writer = SnapshotWriter(self.index, self.path, run_now, self.clock, "held:")
        self.loader = IndexLoader(self.index, self.storage, self.path, run_now, self.clock,
                                  self.writer)
        self.successResultOf(self.loader.load())
        self.loader.follow_up()

    def test_later_a_batch_a_turn(self):
        """
        The projects the snapshot left for later have their records made
        a batch a turn of the reactor before the scan starts; the scan is
        given them, and requests in between find them all the same.
        """
        from pypid.state import loader as loading

        self.patch(loading, "LATER_BATCH", 2)
        others = [make_record("1.0", project=f"p{i}", name=f"P{i}", filename=f"p{i}-1.0.tar.gz",
                              path=f"p{i}-1.0.tar.gz", packagetype="sdist") for i in range(5)]
        write(self.path, encode([self.kept, *others], [], 1500.0, 9, "held:"))
        index = Index(lambda r: r.filename)
        storage = HeldScanStorage()
        loader = IndexLoader(index, storage, self.path, run_now, self.clock,
                             SnapshotWriter(index, self.path, run_now, self.clock, "held:"))
        self.successResultOf(loader.load())
        loader.follow_up()
        self.assertEqual(len(index.later.names()), 4)
        self.assertEqual(storage.scans, [])
        self.assertEqual(index.get_file("p4-1.0.tar.gz"), others[4])
        self.assertEqual(len(index.later.names()), 3)

        def turn():
            # (one turn: Clock.advance would also run the calls made while
            # it runs that are due)
            call = self.clock.calls.pop(0)
            call.called = True
            call.func(*call.args, **call.kw)
        turn()
        self.assertEqual(len(index.later.names()), 1)
        self.assertEqual(storage.scans, [])
        turn()
        self.assertEqual(index.later.names(), [])
        [(known, since, _, _)] = storage.scans
        self.assertEqual(known, {r.filename: r for r in [self.kept, *others]})
        storage.answer([self.kept, *others], current=True)
        self.successResultOf(loader.checked)
        self.assertEqual(len(index), 6)

    def test_check_waits_for_listening(self):
        """The check begins only when the load is followed up (the server listens)."""
        index = Index(lambda r: r.filename)
        storage = HeldScanStorage()
        loader = IndexLoader(index, storage, self.path, run_now, self.clock)
        self.successResultOf(loader.load())
        self.assertEqual(len(index), 4)
        self.assertEqual(storage.scans, [])
        loader.follow_up()
        self.assertEqual(len(storage.scans), 1)
        loader.follow_up()
        self.assertEqual(len(storage.scans), 1)

    def test_served_before_the_check(self):
        """The index holds the snapshot before storage answers; the scan is given it."""
        self.assertEqual(len(self.index), 4)
        self.assertTrue(self.index.is_deleted("holy_grail-0.1.tar.gz"))
        [(known, since, tombstones, _)] = self.storage.scans
        self.assertEqual((len(known), since, tombstones),
                         (4, 1500.0, ("holy_grail-0.1.tar.gz",)))
        self.assertNoResult(self.loader.checked)

    def test_merge(self):
        """
        Files copied in or removed by hand come and go, records changed in
        storage are taken; but not where the index changed meanwhile: an
        upload, a yank and a deletion through the server stay as they are.
        """
        uploaded = make_record("5.0")
        self.index.add(uploaded)
        self.index.add(self.yanked_later.replace(yanked="through the server"))
        self.index.remove(self.deleted_later.filename)
        by_hand = make_record("6.0")
        changed = self.kept.replace(yanked="in storage")
        # What the scan saw: the snapshot's files as they were (not the
        # server's changes, made after it looked), one changed, one copied
        # in, one gone by hand.
        self.storage.answer([changed, self.yanked_later, self.deleted_later, by_hand])
        self.successResultOf(self.loader.checked)
        files = {r.filename: r for r in self.index.records()}
        self.assertEqual(files, {
            changed.filename: changed,
            self.yanked_later.filename: self.yanked_later.replace(yanked="through the server"),
            uploaded.filename: uploaded,
            by_hand.filename: by_hand,
        })
        self.assertTrue(self.index.is_deleted(self.deleted_later.filename))
        self.assertFalse(self.index.is_deleted(self.gone_later.filename))

    def test_tombstone_in_storage(self):
        """A file storage holds a tombstone for is removed, and stays deleted."""
        self.storage.answer([self.kept, self.yanked_later, self.deleted_later],
                            ["holy_grail-0.1.tar.gz", self.gone_later.filename,
                             "holy_grail-7.0.tar.gz"])
        self.successResultOf(self.loader.checked)
        self.assertIsNone(self.index.get_file(self.gone_later.filename))
        self.assertTrue(self.index.is_deleted(self.gone_later.filename))
        self.assertTrue(self.index.is_deleted("holy_grail-7.0.tar.gz"))

    def test_saves_dated_before_the_check(self):
        """
        A save while the check runs is dated as the snapshot served (storage
        is known only as of then); after a check that found nothing to read
        (current), no save is due; after one that read storage, one is.
        """
        self.index.add(make_record("5.0"))
        self.clock.advance(10)
        self.successResultOf(self.writer.save_if_changed())
        self.assertEqual(read(self.path).saved_at, 1500.0)
        self.storage.answer(list(read(self.path).records.values()), current=True)
        self.successResultOf(self.loader.checked)
        self.clock.advance(10)
        before = read_file(self.path)
        self.successResultOf(self.writer.save_if_changed())
        self.assertEqual(read_file(self.path), before)
        self.index.add(make_record("6.0"))
        self.successResultOf(self.writer.save_if_changed())
        self.assertEqual(read(self.path).saved_at, 2020.0)

    def test_not_current_saved_again(self):
        """A check that had to read storage asks for a save, dated now."""
        self.storage.answer([self.kept, self.yanked_later, self.gone_later,
                             self.deleted_later])
        self.successResultOf(self.loader.checked)
        self.assertEqual(len(self.index), 4)
        self.successResultOf(self.writer.save_if_changed())
        self.assertEqual(read(self.path).saved_at, 2000.0)

    def test_check_fails(self):
        """
        A storage error in the check is logged and the snapshot's index is
        served, but storage is not taken as checked: a save still stands
        for storage as of the snapshot (before, it was dated now, and the
        next start trusted it without checking), and the check is tried
        again until it passes.
        """
        from pypid.state.loader import CHECK_RETRY
        from pypid.storage.base.interface import StorageError
        with capturedLogs() as events:
            self.storage.scans[-1][3].errback(StorageError("disk gone"))
            self.successResultOf(self.loader.checked)
        self.assertEqual(len(self.index), 4)
        self.assertIn("disk gone", " ".join(str(e.get("error")) for e in events))
        self.assertFalse(self.loader.storage_checked)
        self.index.add(make_record("5.0"))
        self.successResultOf(self.writer.save_if_changed())
        self.assertEqual(read(self.path).saved_at, 1500.0)
        self.assertEqual(len(self.storage.scans), 1)
        self.clock.advance(CHECK_RETRY)
        self.assertEqual(len(self.storage.scans), 2)
        self.storage.answer([self.kept, self.yanked_later, self.gone_later,
                             self.deleted_later])
        self.assertTrue(self.loader.storage_checked)
        self.index.add(make_record("6.0"))
        self.successResultOf(self.writer.save_if_changed())
        self.assertEqual(read(self.path).saved_at, self.clock.seconds())

    def test_no_retry_after_stop(self):
        """A server that stops tries no failed check again."""
        from pypid.state.loader import CHECK_RETRY
        from pypid.storage.base.interface import StorageError
        with capturedLogs():
            self.storage.scans[-1][3].errback(StorageError("disk gone"))
        self.loader.stop()
        self.clock.advance(CHECK_RETRY)
        self.assertEqual(len(self.storage.scans), 1)
