"""
Tests for the advisories' compact form and its cache beside the snapshot
(issue 43): L{pypid.core.security.compact_advisories} (what is kept of the
records, read back as it was, and nothing else accepted),
L{pypid.advisories.compact_cache} (the file: named by its sources, whole
or refused, never trusted when truncated, damaged or stale) and
L{pypid.advisories.compile_child} (the export read in a child process).
"""

import json
import os
import sys

from twisted.trial.unittest import SynchronousTestCase

from pypid.advisories.compact_cache import (
    MAGIC,
    CacheUnusable,
    CompileTask,
    LocalCompiler,
    cache_key,
    compile_sources,
    read_cache,
    read_sources,
    write_cache,
)
from pypid.advisories.compile_child import ChildCompiler, CompileFailed, child_command
from pypid.advisories.osv_archive import ArchiveLimits, signature
from pypid.core.security.advisories import AdvisoryBoard, AdvisoryPolicy, AdvisoryRules
from pypid.core.security.compact_advisories import CompactError, decode, encode
from tests.harness.osv_records import CRITICAL, LOW, osv_record, write_folder, write_zip

RECORDS = [
    osv_record("PYSEC-2026-1", "Widget_Pro", aliases=["GHSA-aaaa-bbbb-0001"], cvss=CRITICAL,
               events=[{"introduced": "1.0"}, {"fixed": "1.2"}, {"introduced": "2.0"},
                       {"last_affected": "2.1"}],
               summary="Widgets\tleak\x1b[31m"),
    osv_record("GHSA-aaaa-bbbb-0001", "widget-pro", aliases=["PYSEC-2026-1"],
               versions=["0.9", "0.9.1", "not a version"], severity="HIGH"),
    osv_record("PYSEC-2026-2", "gadget", events=[{"introduced": "0"}], cvss=LOW),
    osv_record("PYSEC-2026-3", "gadget", versions=[f"3.{i}" for i in range(40)]),
    osv_record("PYSEC-2026-4", "gone", versions=["1.0"], withdrawn="2026-11-02T00:00:00Z"),
]

#: Releases asked about: every kind of match, and none.
RELEASES = [("widget-pro", v) for v in ("0.9", "0.9.1", "1.0", "1.1", "1.2", "2.0", "2.1",
                                         "2.2", "not a version", "NOT A VERSION")] + \
           [("gadget", v) for v in ("0.1", "3.7", "99")] + [("gone", "1.0"), ("other", "1.0")]


def _shape(db):
    """Everything C{db} holds, as plain values (each advisory once, by project)."""
    return {project: [(a.id, a.aliases, a.summary, a.details, a.severity, a.score, a.fixed_in,
                       a.link, [(f.project, f.spans, tuple(f.versions)) for f in a.affected])
                      for a in found]
            for project, found in db.by_project.items()}


def _verdicts(db):
    policy = AdvisoryPolicy(AdvisoryRules.parse("deny"), AdvisoryBoard(db))
    return {(p, v): (policy.verdict(p, v).ids if policy.verdict(p, v) else ())
            for p, v in RELEASES}


class CompactFormTests(SynchronousTestCase):
    """L{encode} and L{decode}: the database as it was, from lines of JSON."""

    def setUp(self):
        folder = write_folder(os.path.abspath(self.mktemp()), RECORDS)
        self.db = read_sources(folder, None, ArchiveLimits()).db

    def test_round_trip(self):
        """Decoded, the lines give the same advisories, spans and verdicts."""
        lines = list(encode(self.db))
        self.assertEqual(len(lines), 3)   # (two records merged, one withdrawn)
        self.assertTrue(all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in lines))
        again = decode(lines, "the source", "d1")
        self.assertEqual(_shape(again), _shape(self.db))
        self.assertEqual(_verdicts(again), _verdicts(self.db))
        self.assertEqual((again.source, again.digest), ("the source", "d1"))
        self.assertIn(("widget-pro", "1.1"), [k for k, v in _verdicts(again).items() if v])

    def test_shared_values(self):
        """Equal version texts are one string, equal spans one object."""
        line = json.loads(list(encode(self.db))[0])
        line[0] = "PYSEC-2026-9"
        twin = json.dumps(line).encode()
        db = decode([*encode(self.db), twin])
        first, second = db.by_project["widget-pro"]
        self.assertEqual(second.id, "PYSEC-2026-9")
        self.assertIs(first.affected[0].versions[0], second.affected[0].versions[0])
        self.assertIs(first.affected[0].spans[0], second.affected[0].spans[0])

    def refused(self, change):
        """The message of decoding the first line once C{change(row)} edited it."""
        row = json.loads(list(encode(self.db))[0])
        change(row)
        with self.assertRaises(CompactError) as caught:
            decode([json.dumps(row).encode()])
        return str(caught.exception)

    def test_refused(self):
        """Each field is checked; anything but what encode writes is refused, naming the line."""
        cases = [
            lambda r: r.pop(),
            lambda r: r.__setitem__(0, "<script>"),
            lambda r: r.__setitem__(1, ["a b"]),
            lambda r: r.__setitem__(2, "x" * 301),
            lambda r: r.__setitem__(2, "bell\x07"),
            lambda r: r.__setitem__(3, 7),
            lambda r: r.__setitem__(4, "urgent"),
            lambda r: r.__setitem__(5, 11),
            lambda r: r.__setitem__(5, True),
            lambda r: r.__setitem__(7, "javascript:alert(1)"),
            lambda r: r.__setitem__(8, []),
            lambda r: r[8][0].__setitem__(0, "Widget_Pro"),
            lambda r: r[8][0][1].append(["1.0", "not pep 440", False]),
            lambda r: r[8][0][1].append(["1.0", None, "yes"]),
            lambda r: r[8][0][2].append("x" * 101),
            lambda r: r[8][0][2].append(None),
        ]
        for change in cases:
            self.assertTrue(self.refused(change).startswith("line 1: "))
        with self.assertRaises(CompactError) as caught:
            decode([b"{nope"])
        self.assertEqual(str(caught.exception), "line 1: not JSON")
        with self.assertRaises(CompactError):
            decode([b"[" * 100_000])
        line = list(encode(self.db))[0]
        with self.assertRaises(CompactError) as caught:
            decode([line, line])
        self.assertIn("twice", str(caught.exception))

    def test_items_bounded(self):
        """The versions and ranges of all lines together are bounded, as a reading's are."""
        from pypid.core.security import compact_advisories
        self.patch(compact_advisories, "MAX_ITEMS", 10)
        with self.assertRaises(CompactError) as caught:
            decode(list(encode(self.db)))
        self.assertIn("more than 10 versions and ranges", str(caught.exception))


class CacheFileTests(SynchronousTestCase):
    """The cache file: written whole, read only when it is the one written for these sources."""

    def setUp(self):
        self.folder = write_folder(os.path.abspath(self.mktemp()), RECORDS)
        self.path = os.path.join(os.path.abspath(self.mktemp()), "index.json.d",
                                 "advisories.cache")
        self.result = read_sources(self.folder, None, ArchiveLimits())
        self.key = self.key_now()
        self.header = write_cache(self.path, self.key, self.result)

    def key_now(self, limits=None):
        return cache_key([self.folder], signature([self.folder]), limits or ArchiveLimits())

    def test_round_trip(self):
        """Read back, the cache gives the database read, its digest and source."""
        cached = read_cache(self.path, self.key)
        self.assertEqual(cached.header, self.header)
        self.assertEqual(_shape(cached.db), _shape(self.result.db))
        self.assertEqual((cached.db.digest, cached.db.source),
                         (self.result.db.digest, self.folder))
        self.assertEqual((self.header.records, self.header.withdrawn), (5, 1))
        self.assertFalse(os.path.exists(self.path + ".part"))

    def test_in_force_not_decoded(self):
        """A cache of the records in force (their digest) is not decoded."""
        cached = read_cache(self.path, self.key, unless_digest=self.result.db.digest)
        self.assertEqual((cached.header, cached.db), (self.header, None))

    def test_missing_and_stale(self):
        """No cache, or one of other sources, bounds or records: L{None}."""
        self.assertIsNone(read_cache(self.path + "-none", self.key))
        self.assertIsNone(read_cache(self.path, self.key_now(ArchiveLimits(max_size=10 << 20))))
        write_folder(self.folder, [osv_record("PYSEC-2026-5", "new", versions=["1"])])
        self.assertNotEqual(self.key_now(), self.key)
        self.assertIsNone(read_cache(self.path, self.key_now()))

    def test_code_changed(self):
        """A cache made by other code (another pypid) is stale."""
        from pypid.advisories import compact_cache
        self.patch(compact_cache, "code_digest", lambda: "another pypid")
        self.assertNotEqual(self.key_now(), self.key)

    def damaged(self, data):
        with open(self.path, "wb") as f:
            f.write(data)
        with self.assertRaises(CacheUnusable) as caught:
            read_cache(self.path, self.key)
        return str(caught.exception)

    def test_truncated(self):
        """A cache cut short anywhere is refused, never half read."""
        with open(self.path, "rb") as f:
            data = f.read()
        body = data.index(b"\n", len(MAGIC)) + 1
        cuts = [0, 5, len(MAGIC), len(MAGIC) + 10, body, body + 1, len(data) - 1]
        cuts += [data.index(b"\n", body) + 1]   # (at a line's end: the lines all decode)
        for cut in cuts:
            self.damaged(data[:cut])

    def test_damaged(self):
        """A byte changed, bytes added, a foreign file: refused, saying why in one line."""
        with open(self.path, "rb") as f:
            data = f.read()
        changed = data.replace(b"Widgets leak", b"Widgets lEak")   # (still valid: a summary)
        self.assertEqual(self.damaged(changed), "its body is not the one written")
        at = data.rindex(b"]]")
        self.assertEqual(self.damaged(data[:at] + b"}" + data[at + 1:]), "line 3: not JSON")
        self.assertEqual(self.damaged(data + b"[]\n"), "its body is not the one written")
        self.assertEqual(self.damaged(b"PK\x03\x04"), "it is not a cache of this pypid's")
        self.assertEqual(self.damaged(MAGIC + b"{nope\n"), "its header is not JSON")
        self.assertEqual(self.damaged(MAGIC + b'{"key": 1}\n'), "its header is not one")

    def test_hostile_body(self):
        """A body rewritten with its digest fixed up is still checked field by field."""
        with open(self.path, "rb") as f:
            f.readline()
            header = json.loads(f.readline())
        body = b'["<img>",[],"","",null,null,[],null,[["x",[],["1"]]]]\n'
        import hashlib
        header.update(size=len(body), body=hashlib.sha256(body).hexdigest())
        message = self.damaged(MAGIC + json.dumps(header).encode() + b"\n" + body)
        self.assertEqual(message, "line 1: an identifier that is none")

    def test_over_bound(self):
        """A cache bigger than the bound is not read at all."""
        from pypid.advisories import compact_cache
        self.patch(compact_cache, "MAX_CACHE", 100)
        self.assertIn("more than 100", self.damaged(open(self.path, "rb").read()))


class CompileTests(SynchronousTestCase):
    """L{compile_sources}: the sources read within bounds into the cache, here or in a child."""

    def setUp(self):
        self.folder = write_folder(os.path.abspath(self.mktemp()), RECORDS)
        self.cache = os.path.join(os.path.abspath(self.mktemp()), "advisories.cache")

    def task(self, path=None, saved=None, limits=None):
        limits = limits or ArchiveLimits()
        path = self.folder if path is None else path
        sources = [p for p in (path, saved) if p]
        return CompileTask(path or None, saved, self.cache,
                           cache_key(sources, signature(sources), limits), limits)

    def test_written(self):
        """The cache is written, and says what was read and skipped."""
        write_folder(self.folder, [osv_record("PYSEC-2026-8", "x", versions=["1"])])
        with open(os.path.join(self.folder, "bad.json"), "w") as f:
            f.write("{nope")
        task = self.task()
        compiled = LocalCompiler().compile(task)
        self.assertEqual((compiled.refused, compiled.copy_refused), (None, None))
        self.assertEqual(compiled.skipped, "1 not JSON")
        cached = read_cache(self.cache, task.key)
        self.assertEqual(cached.header, compiled.header)
        self.assertIn("x", cached.db.by_project)

    def test_refused(self):
        """A path refused writes nothing; a kept copy refused is left out, the path read."""
        path = write_zip(os.path.abspath(self.mktemp()),
                         [osv_record(f"PYSEC-9-{i}", "w", versions=["1"]) for i in range(4)])
        compiled = compile_sources(self.task(path, limits=ArchiveLimits(max_entries=3)))
        self.assertIn("has 4 entries, more than 3", compiled.refused)
        self.assertIsNone(compiled.header)
        self.assertFalse(os.path.exists(self.cache))
        saved = os.path.abspath(self.mktemp())
        with open(saved, "wb") as f:
            f.write(b"damaged")
        compiled = compile_sources(self.task(saved=saved))
        self.assertIn("is not a zip archive", compiled.copy_refused)
        self.assertEqual(read_cache(self.cache, compiled.header.key).db.source, self.folder)
        alone = compile_sources(self.task(path="", saved=saved))
        self.assertEqual((alone.header, alone.refused), (None, None))
        self.assertIsNotNone(alone.copy_refused)

    def test_child(self):
        """The child reads the sources and writes the cache; its answer is the same."""
        task = self.task()
        compiled = ChildCompiler().compile(task)
        self.assertEqual(compiled.header, read_cache(self.cache, task.key).header)
        self.assertEqual(compiled.header.records, len(RECORDS))

    def test_child_fails(self):
        """A child that fails, answers nonsense, or takes too long raises L{CompileFailed}."""
        def command(code):
            return lambda: ([sys.executable, "-c", code], child_command()[1])

        cases = [("import sys; sys.stderr.write('boom\\n'); sys.exit(3)", "status 3: boom"),
                 ("print('[1, 2')", "answered nonsense"),
                 ("import time; time.sleep(30)", "took more than 0.5 s")]
        for code, message in cases:
            with self.assertRaises(CompileFailed) as caught:
                ChildCompiler(timeout=0.5, command=command(code)).compile(self.task())
            self.assertIn(message, str(caught.exception))

    def test_child_stopped(self):
        """Stopped, a compiler kills the child running, and starts no other."""
        import threading
        import time
        compiler = ChildCompiler(command=lambda: (
            [sys.executable, "-c", "import time; time.sleep(60)"], child_command()[1]))
        failures = []

        def compile():
            try:
                compiler.compile(self.task())
            except CompileFailed as e:
                failures.append(str(e))

        thread = threading.Thread(target=compile, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not compiler._running and time.monotonic() < deadline:
            time.sleep(0.01)
        compiler.stop()
        thread.join(30)
        self.assertEqual(len(failures), 1)
        self.assertIn("ended with status -9", failures[0])
        with self.assertRaises(CompileFailed) as caught:
            compiler.compile(self.task())
        self.assertEqual(str(caught.exception), "the server is stopping")
