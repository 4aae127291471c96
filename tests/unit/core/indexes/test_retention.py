"""
Tests for the retention rules (issue 29): L{pypid.core.indexes.retention}'s plan
(keep the newest N, remove old pre-releases, keep what was downloaded,
protect, never the last release), the configuration's checks,
L{pypid.state.cleanup} applying a plan into the recycle bin (only what
a plan made now still lists; audited; on a schedule), and the API.
"""

import hashlib
import json
import os

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.policy import AccessModel
from pypid.config import ConfigError, load_config
from pypid.core.dists.model import FileRecord
from pypid.core.indexes.index import Index
from pypid.core.indexes.links import file_url_for
from pypid.core.indexes.retention import RetentionRules, make_plan
from pypid.state.cleanup import CountsNotRead, IndexCleanup, RetentionSchedule
from pypid.state.recycle_bin import RecycleBin
from pypid.state.usage_log import UsageLog
from pypid.storage.base.locks import KeyedLock
from pypid.storage.folder.journal_files import MemoryJournal
from tests.harness.distributions import make_wheel
from tests.harness.indexes import audit_entries
from tests.harness.memory_storage import MemoryStorage
from tests.harness.retention import RetainedIndex
from tests.harness.web import _ServerMixin, basic

NOW = 1767225600.0
DAY = 86400.0


def release(project, version, age_days=0.0, kinds=("whl",)):
    """The records of one release, uploaded C{age_days} before L{NOW}."""
    files = []
    for kind in kinds:
        name = (f"{project.replace('-', '_')}-{version}-py3-none-any.whl" if kind == "whl"
                else f"{project.replace('-', '_')}-{version}.tar.gz")
        files.append(FileRecord(name, project, project, version,
                                "bdist_wheel" if kind == "whl" else "sdist", name, 100,
                                hashlib.sha256(name.encode()).hexdigest(),
                                NOW - age_days * DAY))
    return files


def plan_of(projects, rules, last=None):
    by_project = {}
    for records in projects:
        for record in records:
            by_project.setdefault(record.project, []).append(record)
    return make_plan("default", sorted(by_project.items()), rules, NOW,
                     (last or {}).get)


def removed(plan):
    return [(r.project, r.version) for r in plan.removals]


def _filenames(plan):
    """Every file C{plan} removes."""
    return {record.filename for removal in plan.removals for record in removal.files}


class PlanTests(SynchronousTestCase):
    """What each rule removes, and keeps."""

    def test_off(self):
        self.assertEqual(removed(plan_of([release("a", "1.0")], RetentionRules())), [])

    def test_keep_releases(self):
        """The N newest releases by PEP 440 order stay (1.10 is newer than 1.9)."""
        projects = [release("a", v) for v in ("1.9", "1.10", "1.2", "2.0rc1")]
        plan = plan_of(projects, RetentionRules(keep_releases=2))
        self.assertEqual(removed(plan), [("a", "1.9"), ("a", "1.2")])
        self.assertEqual(plan.removals[0].reason, "not among the newest 2 releases")
        self.assertEqual(plan.size, 200)

    def test_prereleases(self):
        """Pre-releases and development releases older than the age go; finals stay."""
        projects = [release("a", "1.0", 100), release("a", "2.0a1", 40),
                    release("a", "2.0.dev3", 31, ("whl", "sdist")), release("a", "2.0b1", 5)]
        plan = plan_of(projects, RetentionRules(remove_prereleases_after=30 * DAY))
        self.assertEqual(removed(plan), [("a", "2.0a1"), ("a", "2.0.dev3")])
        self.assertEqual(len(plan.removals[1].files), 2)
        self.assertEqual(plan.removals[0].reason, "a pre-release older than 30 days")

    def test_keep_downloaded(self):
        """A release any file of which was downloaded within the time stays."""
        projects = [release("a", v) for v in ("1.0", "2.0", "3.0")]
        last = {projects[0][0].filename: NOW - 2 * DAY, projects[1][0].filename: NOW - 20 * DAY}
        plan = plan_of(projects, RetentionRules(keep_releases=1, keep_downloaded=7 * DAY), last)
        self.assertEqual(removed(plan), [("a", "2.0")])
        self.assertEqual(plan.kept["downloaded"], 1)

    def test_protect_and_last_release(self):
        """Protected projects are never touched; a project keeps its newest release."""
        projects = [release("corp-a", "1.0", 90), release("corp-a", "2.0", 90),
                    release("b", "1.0a1", 90), release("b", "1.0a2", 90)]
        rules = RetentionRules(keep_releases=1, remove_prereleases_after=DAY,
                               protect=("corp-*",))
        plan = plan_of(projects, rules)
        self.assertEqual(removed(plan), [("b", "1.0a1")])
        self.assertEqual(plan.kept, {"downloaded": 0, "protected": 1, "last release": 1})

    def test_json(self):
        plan = plan_of([release("a", "1.0"), release("a", "2.0")],
                       RetentionRules(keep_releases=1))
        data = plan.to_json()
        self.assertEqual(data["bytes"], 100)
        self.assertEqual(data["releases"][0]["files"][0]["filename"],
                         "a-1.0-py3-none-any.whl")
        self.assertEqual(_filenames(plan), {"a-1.0-py3-none-any.whl"})


class ConfigTests(SynchronousTestCase):
    """Rules that cannot hold together stop the start with one line."""

    def load(self, text):
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(text)
        return load_config(path, (), environ={})

    def test_read(self):
        config = self.load("[retention]\nkeep_releases = 5\nremove_prereleases_after = 30d\n"
                           "keep_downloaded = 14d\nprotect = Corp.* b\nschedule = 1d\n"
                           "[index:staging]\nkeep_releases = 2\n")
        self.assertEqual(config.retention.retention_rules,
                         RetentionRules(5, 30 * DAY, 14 * DAY, ("corp-*", "b")))
        self.assertEqual(config.retention.schedule, DAY)
        self.assertEqual(config.indexes["staging"].retention_rules,
                         RetentionRules(2, 30 * DAY, 14 * DAY, ("corp-*", "b")))

    def test_refused(self):
        for text, message in (
                ("[retention]\nkeep_releases = -1\n",
                 "[retention] keep_releases: expected a whole number from 0"),
                ("[retention]\nremove_prereleases_after = -3d\n",
                 "[retention] remove_prereleases_after: expected a duration"),
                ("[retention]\nkeep_downloaded = 7d\n",
                 "[retention] keep_downloaded: it keeps releases that no rule removes"),
                ("[retention]\nkeep_releases = 3\nkeep_downloaded = 100d\n",
                 "[retention] keep_downloaded: at most 90d"),
                ("[retention]\nschedule = 1d\n",
                 "[retention] schedule: no index has a rule that removes anything"),
                ("[index:a]\nkeep_downloaded = 1d\n",
                 "[index:a] keep_downloaded: it keeps releases that no rule removes"),
                ("[retention]\nprotect = a/b\n", "[retention] protect:"),
                ("[index:a]\n[index:v]\nview = yes\nbases = a\nkeep_releases = 2\n",
                 "[index:v] keep_releases: a view holds no files")):
            with self.assertRaises(ConfigError) as caught:
                self.load(text)
            self.assertIn(message, str(caught.exception), text)
            self.assertNotIn("\n", str(caught.exception))

    def test_schedule_with_a_named_rule(self):
        """A schedule is allowed when any index, a named one, has a rule."""
        config = self.load("[retention]\nschedule = 12h\n[index:nightly]\nkeep_releases = 3\n")
        self.assertEqual(config.retention.schedule, 12 * 3600.0)


class _Stored:
    """A memory storage and an index with a bin and rules, on a clock."""

    def build(self, rules, keep_for=7 * DAY):
        self.clock = Clock()
        self.clock.advance(NOW)
        self.storage = MemoryStorage(os.path.abspath(self.mktemp()), self.clock)
        self.successResultOf(self.storage.prepare())
        self.index = Index(file_url_for(None))
        self.bin = RecycleBin(self.index, self.storage, KeyedLock(self.clock), self.clock,
                              keep_for)
        self.usage = UsageLog(self.storage, self.clock, writer="test")
        self.successResultOf(self.usage.load())
        self.cleanup = IndexCleanup("default", self.bin, self.usage, rules)

    def store(self, version, age_days=0.0):
        name, data = make_wheel("Holy.Grail", version)
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(data)
        record = FileRecord(name, "holy-grail", "Holy.Grail", version, "bdist_wheel", name,
                            len(data), hashlib.sha256(data).hexdigest(),
                            self.clock.seconds() - age_days * DAY)
        stored = self.successResultOf(self.storage.publish(path, record, None))
        self.index.add(stored)
        return stored


class ApplyTests(_Stored, SynchronousTestCase):
    """L{IndexCleanup.apply}: into the bin, only what a plan made now lists."""

    def setUp(self):
        self.build(RetentionRules(keep_releases=2))
        self.records = [self.store(v) for v in ("1.0", "2.0", "3.0")]

    def test_apply(self):
        seen = []
        applied = self.successResultOf(self.cleanup.apply(None, lambda r, why: seen.append(
            (r.filename, why))))
        self.assertEqual([r.filename for r, _ in applied.removed], [self.records[0].filename])
        self.assertEqual(seen, [(self.records[0].filename, "not among the newest 2 releases")])
        self.assertEqual(self.index.binned(), [self.records[0].replace(binned=NOW)])
        self.assertEqual(self.storage._sidecars.records[self.records[0].filename].binned, NOW)
        self.assertEqual(applied.size, self.records[0].size)

    def test_upload_after_the_plan(self):
        """A release pushed out by an upload made after the plan is not removed."""
        plan = self.cleanup.plan()
        self.store("4.0")
        applied = self.successResultOf(self.cleanup.apply(_filenames(plan), lambda r, w: None))
        self.assertEqual([r.filename for r, _ in applied.removed], [self.records[0].filename])
        self.assertIsNotNone(self.index.get_file(self.records[1].filename))

    def test_changed_since(self):
        """A file downloaded, restored or removed since the plan is left."""
        self.build(RetentionRules(keep_releases=1, keep_downloaded=7 * DAY))
        records = [self.store(v) for v in ("1.0", "2.0", "3.0")]
        plan = self.cleanup.plan()
        self.assertEqual(_filenames(plan), {records[0].filename, records[1].filename})
        self.usage.count(records[0].filename)
        applied = self.successResultOf(self.cleanup.apply(
            _filenames(plan) | {"nothing-1.0.tar.gz"}, lambda r, w: None))
        self.assertEqual([r.filename for r, _ in applied.removed], [records[1].filename])
        self.assertEqual(sorted(applied.skipped), [
            ("holy_grail-1.0-py3-none-any.whl", "no rule removes it now"),
            ("nothing-1.0.tar.gz", "no rule removes it now")])

    def test_counts_not_read(self):
        """keep_downloaded waits for the counts: a plan would remove what they keep."""
        self.build(RetentionRules(keep_releases=1, keep_downloaded=7 * DAY))
        self.cleanup.usage = UsageLog(self.storage, self.clock)
        self.assertRaises(CountsNotRead, self.cleanup.plan)

    def test_schedule(self):
        """The schedule applies every index's rules each interval, audited."""
        audit = MemoryJournal(self.clock)
        schedule = RetentionSchedule({"default": self.cleanup}, audit, self.clock, DAY)
        schedule.startService()
        self.clock.advance(DAY - 1)
        self.assertEqual(self.index.binned(), [])
        self.clock.advance(1)
        self.assertEqual([r.filename for r in self.index.binned()], [self.records[0].filename])
        self.successResultOf(audit.flush())
        self.assertEqual([(e["event"], e["filename"], e["detail"]) for e in audit_entries(audit)],
                         [("retention", self.records[0].filename,
                           "not among the newest 2 releases")])
        self.successResultOf(schedule.stopService())


class APITests(RetainedIndex, _ServerMixin, SynchronousTestCase):
    """GET /api/retention, POST /api/retention/apply."""

    def access_model(self):
        return AccessModel(read=self.read, admins=frozenset({"alice"}))

    def test_plan_and_apply(self):
        old, new = self.upload_version("1.0"), self.upload_version("2.0")
        response, body = self.get("/api/retention", auth=True)
        self.assertEqual(response.code, 200, body)
        plan = json.loads(body)["indexes"][0]
        self.assertEqual(plan["index"], "default")
        self.assertEqual([f["filename"] for r in plan["releases"] for f in r["files"]], [old])
        self.assertEqual(plan["rules"]["keep_releases"], 1)
        self.assertIsNotNone(self.index.get_file(old))  # (a plan changes nothing)
        response, body = self.request(
            "POST", "/api/retention/apply", auth=True,
            headers={"Content-Type": "application/json"},
            data=json.dumps({"index": "default", "files": [old, new]}).encode())
        self.assertEqual(response.code, 200, body)
        applied = json.loads(body)
        self.assertEqual([f["filename"] for f in applied["removed"]], [old])
        self.assertEqual(applied["skipped"], [{"filename": new,
                                               "reason": "no rule removes it now"}])
        self.assertIsNotNone(self.index.binned_file(old))
        log = self.web.app.audit._trail.log
        self.successResultOf(log.flush())
        self.assertEqual([(e["event"], e.get("user"), e["filename"])
                          for e in audit_entries(log) if e["event"] == "retention"],
                         [("retention", "alice", old)])

    def test_refusals(self):
        self.assertEqual(self.get("/api/retention")[0].code, 401)
        self.assertEqual(self.get("/api/retention", auth=basic("dave"))[0].code, 403)
        self.assertEqual(self.get("/api/retention?index=nope", auth=True)[0].code, 404)
        for data, message in ((b"{", b"the body is not JSON"),
                              (b"[]", b"the body is not a JSON object"),
                              (b'{"files": "x"}', b"files: a list of filenames"),
                              (b'{"index": 3}', b"index: the name of a hosted index")):
            response, body = self.request("POST", "/api/retention/apply", auth=True,
                                          data=data)
            self.assertEqual((response.code, body.strip()), (400, message))
        response, _ = self.request("POST", "/api/retention/apply", auth=True,
                                   data=b'{"index": "nope"}')
        self.assertEqual(response.code, 404)
        self.assertEqual(self.request("POST", "/api/retention/apply", data=b"{}")[0].code, 401)
