"""
Tests for the wheels whose C{WHEEL} Tag lines differ from their
filename's tags (issue 46, part 5): refused by default with a message
naming C{allow_tag_mismatch}; taken, audited and said so for the projects
an index names there; applied per file by imports, which go on; and
reloaded at C{SIGHUP}.
"""

import io
import json
import os
import time

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.hashes import hash_password
from pypid.bundle.archive import copy_hashed
from pypid.bundle.ingest import Arrival, Ingest
from pypid.config import ConfigError
from pypid.core.access.upload_rules import UploadRules, parse_projects
from pypid.core.dists.dist_archive import extract
from pypid.core.dists.metadata import InvalidDistribution
from pypid.core.dists.names import parse_filename
from tests.harness.distributions import make_wheel, make_zip, zip_members
from tests.harness.fakes import FAST, config_of, multipart_body, run_now, twine_fields
from tests.harness.indexes import _ServerMixin
from tests.harness.memory_storage import MemoryStorage
from tests.harness.tap import ThreadedReactor

PASSWORD = "correct horse"


def mismatched(name, version):
    """A wheel of C{name} whose WHEEL says cp36-cp36m-manylinux2010_x86_64, its name py3-none-any."""
    filename, data = make_wheel(name, version)
    return filename, make_zip([
        (member, content.replace(b"Tag: py3-none-any",
                                 b"Tag: cp36-cp36m-manylinux2010_x86_64"))
        for member, content in zip_members(data)])


class ExtractTests(SynchronousTestCase):
    """What the archive check does with such a wheel, by what it is asked."""

    def setUp(self):
        self.filename, self.data = mismatched("decord", "0.6.0")
        self.parsed = parse_filename(self.filename)

    def extract(self, **kwargs):
        return extract(io.BytesIO(self.data), self.parsed, self.filename, **kwargs)

    def test_refused_when_strict(self):
        with self.assertRaises(InvalidDistribution) as caught:
            self.extract(strict=True)
        self.assertTrue(caught.exception.tag_mismatch)
        self.assertIn("the Tag lines do not match the filename", str(caught.exception))
        with self.assertRaises(InvalidDistribution):
            self.extract(wheel_tags="refuse")

    def test_noted(self):
        found = self.extract(strict=True, wheel_tags="note")
        self.assertIn("cp36-cp36m-manylinux2010_x86_64", found.tag_mismatch)
        self.assertIsNone(self.extract(strict=True, wheel_tags="note").metadata.requires_python)

    def test_lenient_reads_no_tags(self):
        """A folder read leniently, as before, is not asked about tags."""
        self.assertIsNone(self.extract().tag_mismatch)

    def test_other_refusals_stay(self):
        """A wrong build number is refused even for a project that may differ in tags."""
        filename, data = make_wheel("decord", "0.6.0")
        data = make_zip([(m, c + b"Build: 1\n" if m.endswith("/WHEEL") else c)
                         for m, c in zip_members(data)])
        with self.assertRaises(InvalidDistribution) as caught:
            extract(io.BytesIO(data), parse_filename(filename), filename, strict=True,
                    wheel_tags="note")
        self.assertFalse(caught.exception.tag_mismatch)


class RulesTests(SynchronousTestCase):
    def test_patterns(self):
        rules = UploadRules(parse_projects("Decord, packse-*\nfoo_bar"))
        self.assertEqual(rules.tag_mismatch, ("decord", "packse-*", "foo-bar"))
        for name, allowed in (("decord", True), ("packse-scenario-1", True), ("foo-bar", True),
                              ("packse", False), ("decordx", False)):
            self.assertEqual(rules.allows_tag_mismatch(name), allowed, name)
        self.assertRaises(ValueError, parse_projects, "ok not/ok")


class ConfigTests(SynchronousTestCase):
    def load(self, text):
        return config_of(self, text)

    def test_inherited(self):
        config = self.load("[pypid]\nallow_tag_mismatch = decord\n[index:a]\n"
                           "[index:b]\nallow_tag_mismatch = other\n")
        self.assertEqual(config.server.upload_rules.tag_mismatch, ("decord",))
        self.assertEqual(config.indexes["a"].upload_rules.tag_mismatch, ("decord",))
        self.assertEqual(config.indexes["b"].upload_rules.tag_mismatch, ("other",))

    def test_refused(self):
        for text, said in (
                ("[index:a]\n[index:v]\nview = yes\nbases = a\nallow_tag_mismatch = x\n",
                 "[index:v] allow_tag_mismatch: a view takes no uploads"),
                ("[index:default]\nallow_tag_mismatch = x\n",
                 "[index:default] allow_tag_mismatch: the default index's allow_tag_mismatch "
                 "is set in [pypid]"),
                ("[pypid]\nallow_tag_mismatch = a/b\n", "[pypid] allow_tag_mismatch")):
            with self.assertRaises(ConfigError) as caught:
                self.load(text)
            self.assertIn(said, str(caught.exception), text)


class UploadTests(_ServerMixin, SynchronousTestCase):
    """Uploads to the whole server in memory: the default index and a named one."""

    def setUp(self):
        super().setUp()
        self.reactor = ThreadedReactor()
        self.users = f"alice = {hash_password(PASSWORD, FAST)}\n"
        self.service = self.start("allow_tag_mismatch = packse-*\n",
                                  "allow_tag_mismatch = decord\n")

    def text(self):
        return self.config("[auth]\nadmins = alice\n[users]\n" + self.users
                           + "[index:mirror]\n" + self.mirror, self.server)

    def start(self, server, mirror):
        self.server, self.mirror = server, mirror
        self.reactor.advance(time.time() - self.reactor.seconds())
        service, self.treq = self.served(self.text)
        return service

    def upload(self, wheel, path="/"):
        filename, data = wheel
        name, version = filename.split("-")[:2]
        ctype, body = multipart_body(twine_fields(name, version, data),
                                     [("content", filename, data)])
        response = self.successResultOf(self.treq.post(
            "http://127.0.0.1" + path, data=body, auth=("alice", PASSWORD),
            headers={"Content-Type": ctype}))
        return response.code, self.successResultOf(self.treq.content(response))

    def events(self):
        response = self.successResultOf(self.treq.get(
            "http://127.0.0.1/api/audit?event=upload", auth=("alice", PASSWORD)))
        return json.loads(self.successResultOf(self.treq.content(response)))["entries"]

    def test_refused_naming_the_setting(self):
        code, body = self.upload(mismatched("decord", "0.6.0"))
        self.assertEqual(code, 400)
        self.assertIn(b"the Tag lines do not match the filename (", body)
        self.assertIn(b"; to take it, name decord in [pypid] allow_tag_mismatch", body)
        code, body = self.upload(mismatched("other", "1.0"), "/mirror/")
        self.assertEqual(code, 400)
        self.assertIn(b"name other in [index:mirror] allow_tag_mismatch", body)

    def test_taken_when_named(self):
        code, body = self.upload(mismatched("packse-scenario", "1.0"))
        self.assertEqual(code, 200, body)
        self.assertIn(b"accepted although", body)
        self.assertIn(b"allow_tag_mismatch names this project", body)
        code, body = self.upload(mismatched("decord", "0.6.0"), "/mirror/")
        self.assertEqual(code, 200, body)
        details = [e.get("detail", "") for e in self.events()]
        self.assertEqual(len(details), 2)
        self.assertTrue(all(d.startswith("accepted by allow_tag_mismatch: ") for d in details))
        # (a wheel whose tags match is answered as ever)
        self.assertEqual(self.upload(make_wheel("packse-scenario", "2.0")), (200, b"OK\n"))

    def test_promotion_keeps_the_targets_rule(self):
        """
        A promotion into an index whose key does not name the project is
        refused when the source's does (its wheels may differ in tags), as
        the target's own uploads would refuse them; the key named there, it passes.
        """
        self.assertEqual(self.upload(mismatched("packse-scenario", "1.0"))[0], 200)
        response = self.successResultOf(self.treq.post(
            "http://127.0.0.1/api/promote", auth=("alice", PASSWORD),
            json={"from": "default", "to": "mirror", "project": "packse-scenario",
                  "version": "1.0"}))
        body = self.successResultOf(self.treq.content(response))
        self.assertEqual(response.code, 409, body)
        self.assertIn(b"name the project in [index:mirror] allow_tag_mismatch", body)
        self.mirror = "allow_tag_mismatch = packse-*\n"
        self.service.reload()
        response = self.successResultOf(self.treq.post(
            "http://127.0.0.1/api/promote", auth=("alice", PASSWORD),
            json={"from": "default", "to": "mirror", "project": "packse-scenario",
                  "version": "1.0"}))
        self.assertEqual(response.code, 200, self.successResultOf(self.treq.content(response)))

    def test_reloaded(self):
        """C{SIGHUP} takes the key: a project named since is taken, one no longer named refused."""
        self.server, self.mirror = "allow_tag_mismatch = decord\n", ""
        self.service.reload()
        self.assertEqual(self.upload(mismatched("decord", "0.6.0"))[0], 200)
        self.assertEqual(self.upload(mismatched("packse-x", "1.0"))[0], 400)
        self.assertEqual(self.upload(mismatched("decord", "0.7.0"), "/mirror/")[0], 200)


class IngestTests(SynchronousTestCase):
    """An import applies the rule per file, and goes on."""

    def ingest(self, rules):
        storage = MemoryStorage(os.path.abspath(self.mktemp()), Clock())
        storage.prepare()
        return Ingest(storage, run_now, 1 << 20, {}, (), uploads=rules)

    def arrivals(self):
        found = []
        for filename, data in (mismatched("decord", "0.6.0"), make_wheel("fine", "1.0")):
            def fetch(path, limit, data=data):
                return run_now(copy_hashed, io.BytesIO(data), path, limit)
            found.append(Arrival(filename, "origin/" + filename, fetch, 1767225600.0))
        return found

    def test_refused_and_goes_on(self):
        ingest = self.ingest(UploadRules())
        for arrival in self.arrivals():
            self.successResultOf(ingest.take(arrival))
        report = ingest.report
        self.assertEqual(report.imported, ["fine-1.0-py3-none-any.whl"])
        [(origin, why)] = report.refused
        self.assertIn("the Tag lines do not match", why)
        self.assertIn("name the project in allow_tag_mismatch", why)

    def test_taken_and_reported(self):
        ingest = self.ingest(UploadRules(("decord",)))
        for arrival in self.arrivals():
            self.successResultOf(ingest.take(arrival))
        report = ingest.report
        self.assertEqual(sorted(report.imported),
                         ["decord-0.6.0-py3-none-any.whl", "fine-1.0-py3-none-any.whl"])
        self.assertEqual([name for name, _ in report.tag_mismatches],
                         ["decord-0.6.0-py3-none-any.whl"])
        self.assertIn("taken although their tags differ from the filename "
                      "(allow_tag_mismatch): 1", report.lines())

    def test_lenient_otherwise(self):
        """An import reads a wheel's WHEEL leniently but for its tags, as before."""
        ingest = self.ingest(UploadRules())
        filename, data = make_wheel("loose", "1.0")
        loose = make_zip([(m, c.replace(b"Root-Is-Purelib: true\n", b"") + b"Build: 1\n"
                           if m.endswith("/WHEEL") else c) for m, c in zip_members(data)])

        def fetch(path, limit):
            return run_now(copy_hashed, io.BytesIO(loose), path, limit)
        self.successResultOf(ingest.take(Arrival(filename, "origin/" + filename, fetch,
                                                 1767225600.0)))
        self.assertEqual((ingest.report.imported, ingest.report.refused), ([filename], []))
