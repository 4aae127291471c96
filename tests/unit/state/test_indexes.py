"""
Tests for L{pypid.state.indexes} and the storage of named indexes
(L{pypid.storage.factory.index_settings}, L{index_snapshot_path},
L{SharedBucket}): issue 26, stage 3.

The servers are built by L{pypid.daemon.server.build_service} on a
L{MemoryReactorClock} with blocking work done at once (nothing listens),
their parts started and stopped as the daemon does; the bucket is moto's
(L{tests.harness.s3server}), reached over loopback with the real reactor.

L{GoldenTests} compares a server of one index with what main's code made
before hosted stacks existed (C{tests/golden_single_index.json}, written by
a run of commit 3aecfd1's C{build_service}: its parts, its storage tree,
its snapshot's bytes and its C{/metrics} body, the few values that move
from run to run masked the same way on both sides). One deliberate change
since: the C{advisories} part (issue 27), which a server without
C{[advisories]} starts, so that C{SIGHUP} can add them, and which then
reads nothing and adds nothing to C{/metrics}.
"""

import json
import os
import re
import time
import types
import zipfile
from functools import partial

from treq.testing import StubTreq
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.internet.testing import MemoryReactorClock
from twisted.internet.threads import deferToThreadPool
from twisted.logger import capturedLogs, formatEvent
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pypid.config import load_config
from pypid.core.dists.distribution import inspect
from pypid.core.indexes.promotion import Promotion
from pypid.core.util.startup import StartupError
from pypid.daemon.server import build_service
from pypid.state.backfill import WAIT_LIMIT, Backfill
from pypid.state.hosted_stack import PART_KINDS, HostedStack
from pypid.state.index_reload import reload_indexes
from pypid.state.indexes import IndexRegistry
from pypid.storage.base import snapshot_reading
from pypid.storage.bucket.credential_life import SharedStarts
from pypid.storage.factory import (
    SharedBucket,
    Sharing,
    index_settings,
    index_snapshot_path,
    make_storage,
)
from pypid.storage.s3.credentials import CredentialSource
from pypid.storage.s3.sign import Credentials
from tests.harness import s3server
from tests.harness.distributions import make_wheel
from tests.harness.fakes import run_now, site_treq, write_file
from tests.harness.indexes import NAMED, UPLOAD_TIME, _ServerMixin
from tests.harness.tap import fake_pools

#: The parts of a server of L{NAMED}, in the order they start.
NAMED_PARTS = [
    "listen-check", "start-notes",
    "threads",
    "readme-sandbox", "journal",
    "storage", "storage:release", "storage:staging",
    "audit", "webhooks", "access", "advisories", "advisory-waivers", "running-mark",
    "index", "index:release", "index:staging", "namespace-grants", "journal-follower",
    "snapshot", "snapshot:release", "snapshot:staging",
    "readiness", "usage", "usage:release", "usage:staging", "web", "listeners",
    "snapshot-timer", "snapshot-timer:release", "snapshot-timer:staging",
    "follow-up", "follow-up:release", "follow-up:staging", "recycle-bin",
]


def fixed_wheel(name, version):
    """A wheel whose bytes are the same at every run (its members dated as main's golden run)."""
    real = zipfile.time
    zipfile.time = types.SimpleNamespace(
        time=lambda: 1700000000.0,
        localtime=lambda t=None: (2023, 11, 14, 22, 13, 20, 1, 318, 0))
    try:
        return make_wheel(name, version)
    finally:
        zipfile.time = real


def part_names(service):
    """The names of a built server's parts, in the order they start."""
    return [name for name, _ in service._parts]


def tree(root):
    """Every file under C{root}, relative, in a stable order."""
    found = []
    for path, folders, files in os.walk(root):
        folders.sort()
        found += [os.path.relpath(os.path.join(path, f), root) for f in sorted(files)]
    return found


class RegistryTests(_ServerMixin, SynchronousTestCase):
    """The parts, orders and views of several indexes."""

    def test_parts_named_and_ordered(self):
        """
        Each named hosted index's parts follow the default's of their kind,
        named C{kind:NAME}, bases before the indexes based on them; a view
        has no parts of its own.
        """
        self.assertEqual(part_names(self.service(NAMED)), NAMED_PARTS)

    def test_start_and_stop(self):
        """The parts start in that order and stop in reverse, each index loaded."""
        service = self.started(NAMED)
        for name in NAMED_PARTS:
            self.assertTrue(service.getServiceNamed(name).running, name)
        self.successResultOf(service.stopService())
        self.assertFalse(any(service.getServiceNamed(name).running for name in NAMED_PARTS))
        for name in ("release", "staging"):
            saved = snapshot_reading.read(os.path.join(self.folder, "index.json.d", f"{name}.json"))
            self.assertEqual(saved.records, {})

    def test_orders_and_views(self):
        """
        Every index has its sources in devpi's order and a view over its
        hosted ones, the same L{Index} objects as the stacks' (memory once).
        """
        registry = IndexRegistry.from_config(self.config(NAMED), run_now, self.reactor)
        self.assertEqual(list(registry.stacks), ["default", "release", "staging"])
        self.assertEqual([stack.name for stack in registry.named], ["release", "staging"])
        self.assertEqual(dict(registry.orders), {
            "default": ("default",), "staging": ("staging", "release"),
            "release": ("release",), "prod": ("staging", "release")})
        prod = registry.composed["prod"]
        self.assertEqual([source.hosted for source in prod.order],
                         [registry.stacks["staging"].index, registry.stacks["release"].index])
        self.assertEqual(prod.filters.exclude, ("experimental-*",))
        self.assertFalse(prod.filters.admits_project("experimental-thing"))
        self.assertIs(registry.composed["default"].order[0].hosted, registry.default.index)
        self.assertEqual(registry.composed["default"].filters.include, ("*",))

    def test_default_upstream_in_order(self):
        """With C{[upstream]}, the default index's order ends with it."""
        config = self.config("[upstream]\nmode = redirect\nurl = http://127.0.0.1:9/simple/\n")
        registry = IndexRegistry.from_config(config, run_now, self.reactor)
        self.assertEqual(registry.orders["default"], ("default", "upstream:default"))
        self.assertEqual(len(registry.composed["default"].order), 1)

    def test_stack_parts(self):
        """A stack lists its parts by kind, a sync only on storage shared with other servers."""
        stack = HostedStack.create(self.config(), "release", run_now, self.reactor)
        self.assertEqual([kind for kind, _ in stack.parts()],
                         [kind for kind in PART_KINDS if kind != "sync"])
        self.assertIsNone(stack.sync)
        self.assertIsNotNone(stack.backfill)
        self.assertEqual(stack.writer.path, f"{self.folder}/index.json.d/release.json")

    def test_worker_stacks(self):
        """
        In a worker of several (given the machine's ring), every hosted
        index's folder is shared with the other workers, and taken in by a
        sync; without, none is.
        """
        from pypid.machine.ring import ChangeRing
        from pypid.machine.topics import Hub
        from pypid.storage.base.capabilities import ISharedStorage
        from pypid.storage.folder.shared_folder import SharedFolder
        ring = ChangeRing.create(slots=4, slot_size=64)
        self.addCleanup(ring.close)
        registry = IndexRegistry.from_config(self.config(NAMED), run_now, self.reactor,
                                             sharing=Sharing(hub=Hub(ring)))
        for name, stack in registry.stacks.items():
            self.assertTrue(ISharedStorage.providedBy(stack.stored), name)
            self.assertIsInstance(stack.storage.storage.inner, SharedFolder)
            self.assertIsNotNone(stack.sync, name)
        registry = IndexRegistry.from_config(self.config(NAMED), run_now, self.reactor)
        self.assertFalse(any(ISharedStorage.providedBy(stack.stored)
                             for stack in registry.stacks.values()))

    def test_file_urls(self):
        """A named index's pages link its files under C{/NAME/}, with or without a base URL."""
        config = self.config(NAMED)
        registry = IndexRegistry.from_config(config, run_now, self.reactor)
        record = self.record()
        self.assertEqual(registry.stacks["release"].index.file_url(record),
                         "../../files/holy-grail/holy_grail-1.0-py3-none-any.whl")
        config = self.config(NAMED, server="base_url = https://pypi.internal.example/\n")
        registry = IndexRegistry.from_config(config, run_now, self.reactor)
        self.assertEqual(registry.default.index.file_url(record),
                         "https://pypi.internal.example/files/holy-grail/"
                         "holy_grail-1.0-py3-none-any.whl")
        self.assertEqual(registry.stacks["release"].index.file_url(record),
                         "https://pypi.internal.example/release/files/holy-grail/"
                         "holy_grail-1.0-py3-none-any.whl")

    def record(self):
        """The record of a wheel, as an upload describes it."""
        filename, data = make_wheel("holy-grail", "1.0")
        path = write_file(os.path.join(self.folder, "spool"), data)
        return inspect(path, filename, filename, UPLOAD_TIME).record


class NamedStorageTests(_ServerMixin, SynchronousTestCase):
    """A named index's files and snapshot live under its own root, on local disk."""

    def publish(self, service, name, filename, data):
        """Publish C{data} into index C{name}'s storage and index, as an upload does."""
        stack = service.getServiceNamed(f"index:{name}")
        storage = service.getServiceNamed(f"storage:{name}").storage
        temp = write_file(os.path.join(storage.temp_dir, "upload"), data)
        inspected = inspect(temp, filename, filename, UPLOAD_TIME)
        stored = self.successResultOf(storage.publish(temp, inspected.record,
                                                      inspected.metadata))
        stack.index.add(stored)
        return stored

    def test_files_and_snapshot_of_their_own(self):
        """
        A file published to C{release} is stored under
        C{.indexes/release/}, saved in C{index.json.d/release.json} and
        loaded back from it after a restart; the default index and its
        snapshot never see it, nor does C{staging}.
        """
        filename, data = make_wheel("holy-grail", "1.0")
        service = self.started(NAMED)
        stored = self.publish(service, "release", filename, data)
        self.successResultOf(service.stopService())
        packages = os.path.join(self.folder, "packages")
        self.assertIn(f".indexes/release/{filename}", tree(packages))
        self.assertIn(f".indexes/release/.pypid/files/{filename}.json", tree(packages))
        self.assertNotIn(filename, os.listdir(packages))
        saved = snapshot_reading.read(os.path.join(self.folder, "index.json.d", "release.json"))
        self.assertEqual(saved.records, {filename: stored})
        self.assertEqual(snapshot_reading.read(os.path.join(self.folder, "index.json")).records, {})

        with capturedLogs() as events:
            again = self.started(NAMED)
        self.assertEqual(again.getServiceNamed("index:release").index.records(), [stored])
        self.assertEqual(again.getServiceNamed("index").index.records(), [])
        self.assertEqual(again.getServiceNamed("index:staging").index.records(), [])
        loaded = [(e.get("how"), e.get("log_namespace")) for e in events if e.get("how")]
        self.assertEqual(len([how for how, _ in loaded
                              if how == "from the snapshot; storage is checked against it now"]),
                         3, loaded)

    def promote(self, service, filename, source="staging", target="release"):
        """Promote the file C{filename} of C{source} to C{target}, as C{POST /api/promote} does."""
        stored = service.getServiceNamed(f"index:{source}").index.get_file(filename)
        promotion = Promotion(source, "bob", UPLOAD_TIME + 60)
        backend = service.getServiceNamed(f"storage:{source}").storage.inner
        adopted = self.successResultOf(service.getServiceNamed(
            f"storage:{target}").storage.adopt(backend, stored, promotion))
        service.getServiceNamed(f"index:{target}").index.add_promoted(
            stored if adopted == stored else adopted, promotion)
        return promotion

    def test_promoted_after_restart(self):
        """
        A file promoted from C{staging} to C{release} is, after a restart
        from the snapshots, one record in both indexes (its memory taken
        once), and C{release} knows who promoted it before any scan.
        """
        filename, data = make_wheel("holy-grail", "1.0")
        service = self.started(NAMED)
        self.publish(service, "staging", filename, data)
        promotion = self.promote(service, filename)
        release = service.getServiceNamed("index:release").index
        staging = service.getServiceNamed("index:staging").index
        self.assertIs(release.get_file(filename), staging.get_file(filename))
        self.successResultOf(service.stopService())
        saved = snapshot_reading.read(os.path.join(self.folder, "index.json.d", "release.json"))
        self.assertEqual(saved.promotions, {filename: promotion})

        again = self.started(NAMED)
        release = again.getServiceNamed("index:release").index
        staging = again.getServiceNamed("index:staging").index
        self.assertEqual(release.promotions.get(filename), promotion)
        self.assertIsNotNone(staging.get_file(filename))
        self.assertIs(release.get_file(filename), staging.get_file(filename))

    def test_promoted_shared_whatever_loads_first(self):
        """
        A record promoted from C{release} to C{staging} (the base, loaded
        first, is the source) is shared too, and so is one made equal by a
        scan (no snapshot to start from).
        """
        filename, data = make_wheel("holy-grail", "1.0")
        service = self.started(NAMED)
        self.publish(service, "release", filename, data)
        self.promote(service, filename, source="release", target="staging")
        self.successResultOf(service.stopService())
        again = self.started(NAMED)
        self.assertIs(again.getServiceNamed("index:staging").index.get_file(filename),
                      again.getServiceNamed("index:release").index.get_file(filename))
        self.successResultOf(again.stopService())
        for name in ("release", "staging"):
            os.unlink(os.path.join(self.folder, "index.json.d", f"{name}.json"))
        third = self.started(NAMED)
        staging = third.getServiceNamed("index:staging").index
        self.assertEqual(staging.promotions.get(filename).source, "release")
        self.assertIs(staging.get_file(filename),
                      third.getServiceNamed("index:release").index.get_file(filename))

    def test_default_scan_ignores_named(self):
        """A file copied into C{.indexes/release/} by hand is release's, never the default's."""
        filename, data = make_wheel("holy-grail", "1.0")
        write_file(os.path.join(self.folder, "packages", ".indexes", "release", filename), data)
        service = self.started(NAMED)
        self.assertEqual(service.getServiceNamed("index").index.records(), [])
        self.assertEqual([r.filename for r in
                          service.getServiceNamed("index:release").index.records()], [filename])

    def test_index_settings(self):
        """A named index's storage is the default's, its root and prefix moved."""
        config = self.config("[s3]\nprefix = pypid\n")
        self.assertIs(index_settings(config, "default"), config)
        named = index_settings(config, "release")
        self.assertEqual(named.storage.path, f"{self.folder}/packages/.indexes/release")
        self.assertEqual(named.stores["s3"].prefix, "pypid/.indexes/release/")
        self.assertEqual(named.stores["s3"].bucket_snapshot, config.stores["s3"].bucket_snapshot)
        self.assertEqual(named.server, config.server)
        self.assertEqual(index_settings(self.config(), "release").stores["s3"].prefix,
                         ".indexes/release/")

    def test_snapshot_path(self):
        """The default's snapshot is C{[pypid] snapshot}; a named index's in C{<snapshot>.d/}."""
        self.assertEqual(index_snapshot_path("var/index.json", "default"), "var/index.json")
        self.assertEqual(index_snapshot_path("var/index.json", "release"),
                         "var/index.json.d/release.json")


class NamedBackfillTests(_ServerMixin, SynchronousTestCase):
    """
    A named hosted index started without its snapshot answers as the
    default does while its files are read again: a page or file of a
    project still to be read waits for it, in the index, in an index
    based on it, and in a view of it.
    """

    def setUp(self):
        super().setUp()
        self.filename, data = make_wheel("holy-grail", "1.0")
        service = self.started(NAMED)
        NamedStorageTests.publish(self, service, "release", self.filename, data)
        self.successResultOf(service.stopService())
        os.unlink(os.path.join(self.folder, "index.json.d", "release.json"))
        # (each backfill begins when the test says, not as the server starts)
        self.held = []
        begin = Backfill.begin
        self.patch(Backfill, "begin", lambda backfill, done=None: self.held.append(
            partial(begin, backfill, done)))
        self.service = self.started(NAMED)
        self.treq = StubTreq(self.service.getServiceNamed("web").web.site.resource)

    def get(self, path):
        """A Deferred of C{(status, body)} of C{GET path}."""
        d = self.treq.get("http://127.0.0.1" + path)
        d.addCallback(lambda response: self.treq.content(response).addCallback(
            lambda body: (response.code, body)))
        return d

    def test_pages_wait(self):
        """
        C{/NAME/simple/<p>/} and C{/NAME/files/<p>/<f>} of release, staging
        (based on it) and prod (a view of staging) wait for release's
        backfill, then answer with the file; a project that is no one's
        answers 404 at once.
        """
        release = self.service.getServiceNamed("index:release").index
        self.assertIsNone(release.get_file(self.filename))
        self.assertEqual([p.name for p in release.projects()], ["holy-grail"])
        paths = [f"/{name}/simple/holy-grail/" for name in ("release", "staging", "prod")]
        paths += [f"/{name}/files/holy-grail/{self.filename}" for name in ("release", "prod")]
        waiting = [self.get(path) for path in paths]
        for d in waiting:
            self.assertNoResult(d)
        self.assertEqual(self.successResultOf(self.get("/release/simple/spam/"))[0], 404)
        for begin in self.held:
            begin()
        self.treq.flush()
        for path, d in zip(paths, waiting, strict=True):
            code, body = self.successResultOf(d)
            self.assertEqual(code, 200, (path, body))
            if "/simple/" in path:
                self.assertIn(self.filename.encode(), body, path)
        self.assertIsNotNone(release.get_file(self.filename))

    def test_empty_index_page(self):
        """
        A project of deleted files only, in an index holding no live file
        (an empty L{Index} is falsy: it has a length), answers its page,
        with no file, in the index and in a view of it.
        """
        for begin in self.held:
            begin()
        release = self.service.getServiceNamed("index:release").index
        release.remove(self.filename)
        self.assertEqual(len(release), 0)
        for name in ("release", "prod"):
            code, body = self.successResultOf(self.get(f"/{name}/simple/holy-grail/"))
            self.assertEqual(code, 200, (name, body))
            self.assertNotIn(self.filename.encode(), body)

    def test_too_long(self):
        """A page still waiting after the backfill's wait answers 503, to be asked again."""
        d = self.get("/staging/simple/holy-grail/")
        self.assertNoResult(d)
        self.reactor.advance(WAIT_LIMIT + 1)
        self.treq.flush()
        code, body = self.successResultOf(d)
        self.assertEqual(code, 503, body)
        self.assertIn(b"holy-grail", body)


class GoldenTests(_ServerMixin, SynchronousTestCase):
    """A server of one index is exactly what main built before hosted stacks."""

    golden = os.path.join(os.path.dirname(__file__), "golden_single_index.json")

    #: the /metrics series whose values move from run to run (timings,
    #: free space, the process's own)
    volatile = ("pypid_storage_duration_seconds", "pypid_storage_free_bytes", "process_")

    def test_same_as_main(self):
        """
        The same parts in the same order, the same storage tree, the same
        snapshot bytes and the same C{/metrics} body as main's run.
        """
        with open(self.golden, encoding="utf-8") as f:
            expected = json.load(f)
        root = self.folder
        filename, data = fixed_wheel("holy-grail", "1.0")
        path = write_file(os.path.join(root, "packages", filename), data)
        os.utime(path, (1700000000, 1700000000))
        config = load_config(None, [("storage", "path", f"{root}/packages"),
                                    ("pypid", "snapshot", f"{root}/index.json"),
                                    ("pypid", "listen", "tcp:0:interface=127.0.0.1")])
        self.reactor.advance(1700000100)
        service = build_service(config, self.reactor, pools=fake_pools())
        self.assertEqual(part_names(service), expected["parts"])
        service.startService()
        self.successResultOf(service.ready)
        treq = StubTreq(service.getServiceNamed("web").web.site.resource)
        response = self.successResultOf(treq.get("http://127.0.0.1/metrics"))
        metrics = self.successResultOf(treq.content(response)).decode()
        self.successResultOf(service.stopService())
        self.assertEqual(tree(root), expected["tree"])
        with open(os.path.join(root, "index.json"), encoding="utf-8") as f:
            saved = f.read().replace(root, "ROOT")
        saved = re.sub(r'"boot":"[^"]*","since_boot":[0-9.]+', '"boot":"B","since_boot":0',
                       saved)
        self.assertEqual(saved, expected["snapshot"])
        masked = "".join((line.rsplit(" ", 1)[0] + " X\n") if line.startswith(self.volatile)
                         else line + "\n" for line in metrics.splitlines())
        self.assertEqual(masked, expected["metrics"])


class SharedStartsTests(SynchronousTestCase):
    """L{SharedStarts}: credentials found by the first start, refreshed until the last stop."""

    def test_counted(self):
        """Each user starts and stops them; only the last stop ends their refresh."""
        stops = []
        credentials = CredentialSource(Credentials("a", "s"), run_now, MemoryReactorClock())
        self.patch(CredentialSource, "stop", lambda self: stops.append(True))
        starts = SharedStarts(credentials, shared=True)
        for _ in range(2):
            self.successResultOf(ensureDeferred(starts.start()))
        starts.stop()
        self.assertEqual(stops, [])
        starts.stop()
        self.assertEqual(stops, [True])
        alone = SharedStarts(credentials, shared=False)
        for _ in range(2):
            self.successResultOf(ensureDeferred(alone.start()))
            alone.stop()
        self.assertEqual(stops, [True, True, True])


class S3NamedStorageTests(TestCase):
    """On moto's S3: a named index's keys under C{<prefix>.indexes/NAME/}, one client for all."""

    def setUp(self):
        self.pool = ThreadPool(minthreads=1, maxthreads=4, name="test-indexes")
        self.pool.start()
        self.addCleanup(self.pool.stop)
        self.run = partial(deferToThreadPool, reactor, self.pool)
        self.bucket = s3server.new_bucket()
        self.folder = os.path.abspath(self.mktemp())
        self.config = load_config(None, [
            ("storage", "backend", "s3"), ("storage", "path", self.folder),
            ("s3", "bucket", self.bucket), ("s3", "prefix", "packages/"),
            ("s3", "endpoint_url", s3server.endpoint()),
            ("s3", "access_key", s3server.ACCESS_KEY),
            ("s3", "secret_key", s3server.SECRET_KEY)])

    async def test_default_scan_ignores_named(self):
        """
        A file published to C{release} is at C{packages/.indexes/release/},
        found by release's scan and never by the default's, which finds the
        default's own file; both storages use one client, whose pool closes
        with the last.
        """
        bucket = SharedBucket.create(self.config, self.run, reactor)
        default = make_storage(self.config, self.run, reactor, sharing=Sharing(bucket))
        release = make_storage(index_settings(self.config, "release"), self.run, reactor,
                               sharing=Sharing(bucket))
        await default.prepare()
        await release.prepare()
        ours, theirs = make_wheel("holy-grail", "1.0"), make_wheel("holy-grail", "2.0")
        for storage, (filename, data) in ((default, ours), (release, theirs)):
            temp = write_file(os.path.join(storage.temp_dir, "upload"), data)
            inspected = inspect(temp, filename, filename, UPLOAD_TIME)
            await storage.publish(temp, inspected.record, inspected.metadata)
        listed = s3server.client().list_objects_v2(Bucket=self.bucket)["Contents"]
        keys = {item["Key"] for item in listed}
        self.assertIn(f"packages/{ours[0]}", keys)
        self.assertIn(f"packages/.indexes/release/{theirs[0]}", keys)
        self.assertEqual(list((await default.scan({}, 0.0, ())).records), [ours[0]])
        self.assertEqual(list((await release.scan({}, 0.0, ())).records), [theirs[0]])
        closes = []
        self.patch(bucket, "_close", lambda: closes.append(True))
        await release.close()
        self.assertEqual(closes, [])
        await default.close()
        self.assertEqual(closes, [True])

    async def test_stacks_on_a_bucket(self):
        """
        The stacks of two hosted indexes on one bucket load, take a file
        each to their own keys, save their snapshots to their own files and
        bucket copies, their requests counted in one client's timings.
        """
        folder = self.folder
        os.makedirs(folder)
        path = write_file(os.path.join(folder, "pypid.ini"), (
            f"[pypid]\nsnapshot = {folder}/index.json\n"
            f"[storage]\nbackend = s3\npath = {folder}/spool\n"
            f"[s3]\nbucket = {self.bucket}\nprefix = packages/\n"
            f"endpoint_url = {s3server.endpoint()}\naccess_key = {s3server.ACCESS_KEY}\n"
            f"secret_key = {s3server.SECRET_KEY}\n" + NAMED).encode())
        registry = IndexRegistry.from_config(load_config(path), self.run, reactor)
        stacks = list(registry.stacks.values())
        for stack in stacks:
            await stack.storage.startService()
        for stack in stacks:
            await stack.part.startService()
        filename, data = make_wheel("holy-grail", "1.0")
        release = registry.stacks["release"]
        temp = write_file(os.path.join(release.stored.temp_dir, "upload"), data)
        inspected = inspect(temp, filename, filename, UPLOAD_TIME)
        stored = await release.stored.publish(temp, inspected.record, inspected.metadata)
        release.index.add(stored)
        for stack in reversed(stacks):
            await stack.writer.stopService()
            stack.part.stopService()
        for stack in reversed(stacks):
            await stack.storage.stopService()
        keys = {item["Key"] for item in
                s3server.client().list_objects_v2(Bucket=self.bucket)["Contents"]}
        self.assertIn(f"packages/.indexes/release/{filename}", keys)
        self.assertIn("packages/.indexes/release/.pypid/snapshot.json.gz", keys)
        self.assertIn("packages/.indexes/staging/.pypid/snapshot.json.gz", keys)
        self.assertEqual(
            list(snapshot_reading.read(f"{folder}/index.json.d/release.json").records), [filename])
        self.assertEqual(snapshot_reading.read(f"{folder}/index.json").records, {})
        self.assertIsNotNone(registry.default.sync)
        self.assertIsNotNone(release.sync)
        self.assertEqual(release.storage.s3_timings, registry.default.storage.s3_timings)


#: A hosted index holding a project, and a view over it (the reload tests).
RELEASE = "[index:release]\n"
PROD = "[index:prod]\nview = yes\nbases = release\n"


class ReloadTests(_ServerMixin, SynchronousTestCase):
    """
    C{SIGHUP} with changed C{[index:NAME]} sections (issue 26, design
    §2.11): views come, go and change, and every index's grants change;
    a hosted index or an upstream added or removed, or a hosted index's
    sources changed, refuses the whole reload with one line naming the
    section, the server serving as before.
    """

    def setUp(self):
        super().setUp()
        self.text = ""
        for version in ("1.0", "2.0rc1"):
            filename, data = make_wheel("holy-grail", version)
            write_file(os.path.join(self.folder, "packages", ".indexes", "release", filename),
                       data)

    def serving(self, text):
        """A started server of C{text}; L{reload} reads C{self.text} as its configuration."""
        self.text = text
        self.reactor.advance(time.time() - self.reactor.seconds())
        service = build_service(self.config(text), self.reactor, pools=fake_pools(),
                                load_config=lambda: self.config(self.text))
        self.addCleanup(lambda: service.stopService() if service.running else None)
        service.startService()
        self.successResultOf(service.ready)
        self.treq = site_treq(service.getServiceNamed("web").web.site)
        return service

    def reload(self, service, text):
        """SIGHUP with C{text} as the configuration; the log lines it wrote."""
        self.text = text
        with capturedLogs() as events:
            service.reload()
        return [formatEvent(e) for e in events]

    def get(self, path):
        """C{(code, body)} of a GET of C{path}."""
        response = self.successResultOf(self.treq.get("http://127.0.0.1" + path))
        return response.code, self.successResultOf(self.treq.content(response))

    def page(self, index):
        """C{(code, filenames listed)} of C{holy-grail}'s page in C{index}."""
        code, body = self.get(f"/{index}/simple/holy-grail/")
        return code, sorted(set(re.findall(rb"holy_grail-[^#\"/]+\.whl", body)))

    def test_view_added(self):
        """A view added is served at once, its requests counted under its own label."""
        service = self.serving(RELEASE)
        self.assertEqual(self.page("prod")[0], 404)
        lines = self.reload(service, RELEASE + PROD)
        self.assertEqual(self.page("prod"), (200, [b"holy_grail-1.0-py3-none-any.whl",
                                                   b"holy_grail-2.0rc1-py3-none-any.whl"]))
        self.assertTrue([line for line in lines if "Reloaded the configuration" in line
                         and "prod added" in line], lines)
        stats = service.getServiceNamed("web").web.site.stats
        self.assertIn(("prod", "simple", "GET", "200"), stats.requests_by_index)

    def test_view_in_switcher(self):
        """A view added or removed comes and goes in the index switcher of the pages for people."""
        service = self.serving(RELEASE)
        link = b'<a href="../prod/">prod</a> <span class="badge">view</span>'
        self.assertNotIn(link, self.get("/release/search?q=grail")[1])
        self.reload(service, RELEASE + PROD)
        self.assertIn(link, self.get("/release/search?q=grail")[1])
        self.reload(service, RELEASE)
        self.assertNotIn(link, self.get("/release/search?q=grail")[1])

    def test_view_removed(self):
        """A view removed answers as a missing index does."""
        service = self.serving(RELEASE + PROD)
        self.assertEqual(self.page("prod")[0], 200)
        self.reload(service, RELEASE)
        self.assertEqual(self.get("/prod/simple/holy-grail/"),
                         self.get("/missing/simple/holy-grail/"))
        self.assertEqual(self.page("release")[0], 200)

    def test_filters_changed(self):
        """
        A view's filters changed change its pages at once: what it composed
        and kept under the old filters is not served again.
        """
        service = self.serving(RELEASE + PROD)
        self.assertEqual(len(self.page("prod")[1]), 2)
        self.reload(service, RELEASE + PROD + "prereleases = hide\n")
        self.assertEqual(self.page("prod"), (200, [b"holy_grail-1.0-py3-none-any.whl"]))
        self.reload(service, RELEASE + PROD + "exclude = holy-*\n")
        self.assertEqual(self.page("prod")[0], 404)
        self.assertEqual(self.get("/prod/files/holy-grail/holy_grail-1.0-py3-none-any.whl")[0],
                         404)

    def test_bases_of_a_view_changed(self):
        """A view's bases changed: it reads its new sources."""
        service = self.serving(RELEASE + "[index:other]\n" + PROD)
        self.assertEqual(len(self.page("prod")[1]), 2)
        self.reload(service, RELEASE + "[index:other]\n" + PROD.replace("release", "other"))
        self.assertEqual(self.page("prod")[0], 404)

    def test_grant_changed(self):
        """An index's read grant changed hides it: it answers as a missing index does."""
        service = self.serving(RELEASE + PROD)
        self.assertEqual(self.page("prod")[0], 200)
        self.reload(service, RELEASE + PROD + "read = authenticated\n")
        self.assertEqual(self.get("/prod/simple/holy-grail/"),
                         self.get("/missing/simple/holy-grail/"))
        self.assertEqual(self.get("/prod/simple/holy-grail/")[0], 401)
        self.reload(service, RELEASE + PROD)
        self.assertEqual(self.page("prod")[0], 200)

    def refused(self, before, after, line):
        """
        Reloading C{after} over a server of C{before} is refused with one
        line holding C{line}, and the server keeps serving C{before}.
        """
        service = self.serving(before)
        served = self.page("prod")
        lines = self.reload(service, after)
        refusals = [text for text in lines if "Not reloading the configuration" in text]
        self.assertEqual(len(refusals), 1, lines)
        self.assertIn(line, refusals[0])
        self.assertFalse([text for text in lines if "Reloaded" in text], lines)
        self.assertEqual(self.page("prod"), served)
        return service

    def test_hosted_added(self):
        """A hosted index added needs a restart."""
        self.refused(RELEASE + PROD, RELEASE + PROD + "[index:staging]\n",
                     "[index:staging]: adding a hosted index needs a restart")

    def test_hosted_removed(self):
        """A hosted index removed needs a restart."""
        self.refused(RELEASE + "[index:staging]\n" + PROD, RELEASE + PROD,
                     "[index:staging]: removing a hosted index needs a restart")

    def test_view_made_hosted(self):
        """A view turned into a hosted index is a hosted index added."""
        self.refused(RELEASE + PROD + "[index:qa]\nview = yes\nbases = release\n",
                     RELEASE + PROD + "[index:qa]\nbases = release\n",
                     "[index:qa]: adding a hosted index needs a restart")

    def test_hosted_bases_changed(self):
        """A hosted index's bases changed need a restart."""
        self.refused(RELEASE + "[index:staging]\n" + PROD,
                     RELEASE + "[index:staging]\nbases = release\n" + PROD,
                     "[index:staging] bases: a hosted index's bases change at the next restart")

    def test_upstream_added(self):
        """An C{[upstream:NAME]} added needs a restart."""
        self.refused(RELEASE + PROD, RELEASE + PROD + "[upstream:public]\nmode = redirect\n"
                     "url = http://127.0.0.1:9/simple/\n", "[upstream:public]")

    def test_first_hosted_index(self):
        """A server of one index takes its first hosted index at the next restart."""
        self.refused("", RELEASE, "[index:release]: adding a hosted index needs a restart")

    def test_first_view(self):
        """A server of one index takes its first view at the next restart."""
        self.refused("", "[index:prod]\nview = yes\nbases = default\n",
                     "[index:prod]: the first named index needs a restart")

    def test_unchanged_kept(self):
        """
        A reload that changes one view keeps every other index's answers
        (and the pages their views composed), and says what it changed.
        """
        service = self.serving(RELEASE + PROD + "[index:qa]\nview = yes\nbases = release\n")
        root = service.getServiceNamed("web").web.indexes
        before = dict(root.served)
        lines = self.reload(service, RELEASE + PROD + "[index:qa]\nview = yes\n"
                            "bases = release\nyanked = hide\n")
        self.assertIs(root.served[b"release"], before[b"release"])
        self.assertIs(root.served[b"prod"], before[b"prod"])
        self.assertIsNot(root.served[b"qa"], before[b"qa"])
        self.assertTrue([line for line in lines if "views qa changed" in line], lines)
        lines = self.reload(service, RELEASE + PROD + "[index:qa]\nview = yes\n"
                            "bases = release\nyanked = hide\n")
        self.assertFalse([line for line in lines if "views" in line], lines)


class ReloadPlanTests(_ServerMixin, SynchronousTestCase):
    """What L{reload_indexes} refuses that a server of these tests cannot start with yet."""

    UPSTREAM = "[upstream:public]\nmode = redirect\nurl = http://127.0.0.1:9/simple/\n"

    def plan(self, before, after):
        """L{reload_indexes} of C{after} over a registry of C{before}."""
        started = self.config(before)
        registry = IndexRegistry.from_config(started, run_now, self.reactor)
        return registry, reload_indexes(registry, started, self.config(after))

    def refusal(self, before, after):
        """The line refusing C{after} over a registry of C{before}."""
        return str(self.assertRaises(StartupError, self.plan, before, after))

    def test_upstreams_added_and_removed(self):
        """An upstream added or removed needs a restart."""
        self.assertIn("[upstream:public]: adding an upstream needs a restart",
                      self.refusal(RELEASE + PROD, RELEASE + PROD + self.UPSTREAM))
        self.assertIn("[upstream:public]: removing an upstream needs a restart",
                      self.refusal(RELEASE + PROD + self.UPSTREAM, RELEASE + PROD))

    def test_upstream_changed(self):
        """
        A running upstream's keys are not this plan's: those only a restart
        takes (a name made private) refuse the reload before it
        (L{pypid.config.reloading}, tests/unit/config/test_reloading.py), and its
        credentials are its part's.
        """
        before = RELEASE + PROD + self.UPSTREAM
        self.assertIsNone(self.plan(before, before + "private = acme-*\n")[1])
        self.assertIsNone(self.plan(before, before)[1])

    def test_view_over_an_upstream_not_run(self):
        """A view based on C{upstream:default} when C{[upstream]} is off needs a restart."""
        after = ("[upstream]\nmode = redirect\nurl = http://127.0.0.1:9/simple/\n" + RELEASE
                 + PROD.replace("release", "release, upstream:default"))
        self.assertIn("[index:prod] bases: upstream:default: the server runs no such upstream",
                      self.refusal(RELEASE + PROD, after))

    def test_hosted_sources_through_a_view(self):
        """A hosted index whose sources would change through a view's bases needs a restart."""
        before = RELEASE + "[index:other]\n" + PROD + "[index:staging]\nbases = prod\n"
        self.assertIn("[index:staging] bases: its sources would change through a view's bases "
                      "(from staging, release to staging, other)",
                      self.refusal(before, before.replace("bases = release", "bases = other")))

    def test_last_named_index(self):
        """Removing the last named index needs a restart."""
        self.assertIn("[index:prod]: removing the last named index needs a restart",
                      self.refusal("[index:prod]\nview = yes\nbases = default\n", ""))

    def test_nothing_changed(self):
        """The same views, or grants alone changed: nothing for the views to take."""
        self.assertIsNone(self.plan(RELEASE + PROD, RELEASE + PROD)[1])
        self.assertIsNone(self.plan(RELEASE + PROD, RELEASE + PROD + "read = authenticated\n")[1])

    def test_views_taken_in_place(self):
        """The registry takes the new views in place; its stacks are the same."""
        registry, reloaded = self.plan(RELEASE, RELEASE + PROD)
        orders, views, stacks = registry.orders, registry.composed, registry.stacks
        registry.take_views(reloaded.registry)
        self.assertIs(registry.orders, orders)
        self.assertIs(registry.composed, views)
        self.assertIs(registry.stacks, stacks)
        self.assertEqual(registry.orders["prod"], ("release",))
        self.assertEqual([s.hosted for s in registry.composed["prod"].order],
                         [stacks["release"].index])
        self.assertEqual(reloaded.summary(), "views prod added")
