"""
Tests for variant wheels served (PEP 825, issue 46, part 1): what an
upload, a promotion and an import take and refuse, what a record keeps
(snapshot, sidecar, S3 user metadata), and the index-level
C{{name}-{version}-variants.json} every page links and every index and
view serves, over the whole server in memory.
"""

import hashlib
import io
import json
import os
import time

import attrs
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pypid.auth.hashes import hash_password
from pypid.core.dists.distribution import inspect
from pypid.core.dists.model import VARIANT_BYTES, FileRecord
from pypid.core.dists.variant_files import NO_VARIANTS, VARIANTS, VariantsFile, with_variant_files
from pypid.core.dists.wheel_variants import InvalidVariant, check_joins, index_level
from pypid.core.indexes.render import CONTENT_TYPES, HTML, JSON, Page
from pypid.core.indexes.rendered_pages import page_bytes
from pypid.core.util.s3_limits import MAX_USER_METADATA
from pypid.daemon.pools import ThreadPools
from pypid.daemon.server import build_service
from pypid.export.plan import ExportSettings
from pypid.storage.base import snapshot, snapshot_reading
from pypid.storage.bucket.layout import record_from_metadata, user_metadata
from pypid.storage.folder.local import LocalStorage
from pypid.upstream.cached_page import CachedPage, entry_from_json, entry_to_json
from pypid.upstream.parser import parse_page
from tests.harness.admin import run_admin
from tests.harness.distributions import VARIANT_SCHEMA, make_wheel, variant_document
from tests.harness.export import ExportCase
from tests.harness.fakes import FAST, multipart_body, run_now, twine_fields, write_file
from tests.harness.indexes import _ServerMixin, site_treq
from tests.harness.tap import AtOncePool, FakeThreadPool

PASSWORD = "correct horse"
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
JSON_TYPE_UPSTREAM = SIMPLE_JSON
TAG = "cp313-cp313-linux_x86_64"


def wheel(label=None, version="1.0", **kwargs):
    """C{(filename, bytes)} of a wheel of C{demo}, a variant one given a C{label}."""
    return make_wheel("demo", version, tag=TAG, variant=label, **kwargs)


def record_of(label, version="1.0", when=1.0, **kwargs):
    """The record an upload of L{wheel} makes."""
    filename, data = wheel(label, version, **kwargs)
    return inspect(io.BytesIO(data), filename, filename, when).record


def biggest(label="v3"):
    """The longest variant.json of C{label} a record keeps (L{VARIANT_BYTES} once compact)."""
    values = []
    while True:
        document = variant_document(label, {"x86_64": {"level": [*values, f"v{len(values)}"]}})
        if len(json.dumps(document, separators=(",", ":"))) > VARIANT_BYTES:
            return variant_document(label, {"x86_64": {"level": values}})
        values.append(f"v{len(values)}")


def v(level, namespaces=("x86_64",)):
    """A compact C{variant.json} of the label C{level} (C{x86_64 :: level :: <level>})."""
    return json.dumps(variant_document(level, namespaces=namespaces), separators=(",", ":"))


class RecordTests(SynchronousTestCase):
    """What a record keeps of a variant wheel, and where."""

    def test_inspected(self):
        """An upload's record keeps the wheel's variant.json, compact; a plain wheel's none."""
        record = record_of("v3")
        self.assertEqual(json.loads(record.variant), variant_document("v3"))
        self.assertIsNone(record_of(None).variant)
        self.assertEqual(FileRecord.from_json(record.to_json()), record)

    def test_refused_records(self):
        """A sidecar (or bundle) saying a variant that could not be is refused."""
        record = record_of("v3")
        plain = record_of(None)
        for data, why in (
                ({**plain.to_json(), "variant": record.variant}, "only a variant wheel's"),
                ({**record.to_json(), "variant": v("v4")}, "the filename's label 'v3'"),
                ({**record.to_json(), "variant": 3}, "must be text"),
                ({**record.to_json(), "variant": "x" * (VARIANT_BYTES + 1)}, "must be text")):
            with self.assertRaises(ValueError) as caught:
                FileRecord.from_json(data)
            self.assertIn(why, str(caught.exception))

    def test_snapshot(self):
        """The snapshot keeps it in a column of its own, left out without variant wheels."""
        records = [record_of("v3"), record_of(None)]
        data = b"".join(snapshot.lines(records, [], 1.0))
        read = snapshot_reading.decode(data)
        self.assertEqual(sorted(read.records.values()), sorted(records))
        plain = b"".join(snapshot.lines([records[1]], [], 1.0))
        self.assertNotIn(b'"variant"', plain)
        damaged = data.replace(b'{\\"v3\\":', b'{\\"v9\\":')
        self.assertNotEqual(damaged, data)
        with self.assertRaises(snapshot.SnapshotError) as caught:
            snapshot_reading.decode(damaged)
        self.assertIn("variant", str(caught.exception))

    def test_s3_headers(self):
        """
        An S3 object's user metadata carries it and gives it back; with a
        record at every cap at once, the summary is cut in the header so
        that the whole stays within S3's 2 KB, and the variant is whole.
        """
        record = record_of("v3")
        headers = {k.lower(): val for k, val in user_metadata(record).items()}
        self.assertEqual(record_from_metadata(record.filename, record.size, headers), record)
        full = record_of("v3", variant_json=biggest()).replace(
            summary="\N{LATIN SMALL LETTER E WITH ACUTE}" * 150, uploader="\u00fc" * 50,
            requires_python=", ".join([">=3.8", "!=3.9.*", "<4"] * 4),
            name="d" * 120, version="1" + ".0" * 40, blake2_256="0" * 64, md5="0" * 32,
            provenance_sha256="0" * 64)
        headers = {k.lower(): val for k, val in user_metadata(full).items()}
        self.assertLessEqual(sum(len(k) + len(val)
                                 for k, val in headers.items()), MAX_USER_METADATA)
        back = record_from_metadata(full.filename, full.size, headers)
        self.assertEqual(back.variant, full.variant)
        self.assertEqual(back.requires_python, full.requires_python)
        # (near every cap at once: the summary cut in the header)
        self.assertTrue(full.summary.startswith(back.summary))
        self.assertLess(len(back.summary), len(full.summary))
        self.assertEqual(back.uploader, full.uploader)

    def test_too_big(self):
        """A variant.json over what a record keeps is refused, naming the bound."""
        self.assertIsNotNone(record_of("v3", variant_json=biggest()).variant)
        big = biggest()
        big["variants"]["v3"]["x86_64"]["level"].append("w" * 20)
        filename, data = wheel("v3", variant_json=big)
        with self.assertRaises(ValueError) as caught:
            inspect(io.BytesIO(data), filename, filename, 1.0)
        self.assertIn(f"at most {VARIANT_BYTES}", str(caught.exception))

    def test_upstream_index_level_files_kept_apart(self):
        """
        An upstream page's index-level files (PEP 825) are read apart from
        its distributions, with their version and digest, and kept with
        the cached page; another project's is refused.
        """
        names = ("Demo-1.0.0-variants.json", "demo-2.0-variants.json",
                 "other-1.0-variants.json", "demo-x.y-variants.json")
        page = json.dumps({"meta": {"api-version": "1.1"}, "name": "demo", "files": [
            {"filename": name, "url": f"https://upstream.example/f/{name}",
             "hashes": {"sha256": f"{i}" * 64}, "size": 100 + i}
            for i, name in enumerate(names)]}).encode()
        parsed = parse_page(page, JSON_TYPE_UPSTREAM, "https://upstream.example/simple/demo/",
                            "demo")
        self.assertEqual(parsed.files, ())
        self.assertEqual([(f.filename, f.version, f.sha256, f.size, f.packagetype)
                          for f in parsed.variants],
                         [("Demo-1.0.0-variants.json", "1.0.0", "0" * 64, 100, VARIANTS),
                          ("demo-2.0-variants.json", "2.0", "1" * 64, 101, VARIANTS)])
        self.assertEqual(sorted(dict(parsed.skipped)),
                         ["demo-x.y-variants.json", "other-1.0-variants.json"])
        kept = entry_from_json(json.loads(json.dumps(entry_to_json(CachedPage(parsed, 5.0)))))
        # (the cache keeps what it serves again, not the page's refusals)
        self.assertEqual(kept.page, attrs.evolve(parsed, skipped=(), refused=0))
        plain = parse_page(json.dumps({"meta": {"api-version": "1.1"}, "name": "demo",
                                       "files": []}).encode(), JSON_TYPE_UPSTREAM,
                           "https://upstream.example/simple/demo/", "demo")
        self.assertNotIn("variants", entry_to_json(CachedPage(plain, 5.0))["page"])


class _Listed:
    def __init__(self, filename, version, variant=None, upload_time=1.0, project="demo"):
        self.filename, self.version, self.variant = filename, version, variant
        self.upload_time, self.project = upload_time, project


class PageFilesTests(SynchronousTestCase):
    """The index-level files a page lists (pure)."""

    def test_none(self):
        """A page without a variant wheel is given back as it is."""
        pairs = [(_Listed("demo-1.0.tar.gz", "1.0"), "u")]
        shown, bodies = with_variant_files(pairs)
        self.assertIs(shown, pairs)
        self.assertIs(bodies, NO_VARIANTS)

    def test_after_each_release(self):
        """
        Each release's file comes after its last file, linked beside its
        first variant wheel, hashed as served; its body is the combination.
        """
        pairs = [(_Listed(f"demo-1.0-{TAG}-v3.whl", "1.0", v("v3"), 2.0), "../a/x-v3.whl"),
                 (_Listed(f"demo-1.0-{TAG}.whl", "1.0"), "../a/x.whl"),
                 (_Listed(f"demo-1.0-{TAG}-v2.whl", "1.0", v("v2"), 1.0), "../a/x-v2.whl"),
                 (_Listed("demo-2.0.tar.gz", "2.0"), "../a/y"),
                 (_Listed(f"demo-3.0-{TAG}-v2.whl", "3.0", v("v2")), "../b/z.whl")]
        shown, bodies = with_variant_files(pairs)
        names = [f.filename for f, _ in shown]
        self.assertEqual(names, [f"demo-1.0-{TAG}-v3.whl", f"demo-1.0-{TAG}.whl",
                                 f"demo-1.0-{TAG}-v2.whl", "demo-1.0-variants.json",
                                 "demo-2.0.tar.gz", f"demo-3.0-{TAG}-v2.whl",
                                 "demo-3.0-variants.json"])
        entry, url = shown[3]
        self.assertIsInstance(entry, VariantsFile)
        # (relative to the page, wherever the distributions' links lead)
        self.assertEqual(url, "../../files/demo/demo-1.0-variants.json")
        body = bodies["demo-1.0-variants.json"]
        self.assertEqual(entry.sha256, hashlib.sha256(body).hexdigest())
        self.assertEqual(entry.size, len(body))
        self.assertEqual(sorted(json.loads(body)["variants"]), ["v2", "v3"])
        self.assertEqual(shown[6][1], "../../files/demo/demo-3.0-variants.json")

    def test_one_release_two_spellings(self):
        """
        C{1.0} and C{1.0.0} are one release: one combination, a file under
        each spelling its variant wheels have, the same bytes.
        """
        pairs = [(_Listed(f"demo-1.0-{TAG}-v3.whl", "1.0", v("v3"), 1.0), "a"),
                 (_Listed(f"demo-1.0.0-1-{TAG}-v4.whl", "1.0.0", v("v4"), 2.0), "b")]
        shown, bodies = with_variant_files(pairs)
        self.assertEqual([f.filename for f, _ in shown][1::2],
                         ["demo-1.0-variants.json", "demo-1.0.0-variants.json"])
        self.assertEqual(bodies["demo-1.0-variants.json"], bodies["demo-1.0.0-variants.json"])
        self.assertEqual(sorted(json.loads(bodies["demo-1.0-variants.json"])["variants"]),
                         ["v3", "v4"])

    def test_counted_in_the_budget(self):
        """A JSON page keeps its index-level files' pages, counted against the page budget."""
        pairs = [(_Listed(f"demo-1.0-{TAG}-v3.whl", "1.0", v("v3")), "a")]
        _shown, bodies = with_variant_files(pairs)
        page = Page.of(b"{}", CONTENT_TYPES[JSON], bodies)
        kept = page.variants["demo-1.0-variants.json"]
        self.assertEqual(kept.body, bodies["demo-1.0-variants.json"])
        self.assertEqual(page_bytes(page), 2 + page_bytes(kept))
        self.assertEqual(Page.of(b"<a>", CONTENT_TYPES[HTML], bodies).variants, {})

    def test_disagreeing_left_out(self):
        """
        Of two wheels that disagree (two servers on one bucket each took
        one; two upstreams), the one uploaded later is left out of the
        file and of the page, which would misstate it; a third spelling of
        the release with only that wheel gets no file.
        """
        other = json.dumps(variant_document("v3", {"x86_64": {"level": ["v9"]}}))
        first = _Listed(f"demo-1.0-{TAG}-v3.whl", "1.0", v("v3"), 1.0)
        pairs = [(first, "u/a"),
                 (_Listed(f"demo-1.0-1-{TAG}-v3.whl", "1.0", other, 2.0), "u/b"),
                 (_Listed(f"demo-1.0.0-{TAG}-v3.whl", "1.0.0", other, 3.0), "u/c")]
        shown, bodies = with_variant_files(pairs)
        self.assertEqual([f.filename for f, _ in shown], [first.filename,
                                                         "demo-1.0-variants.json"])
        self.assertEqual(json.loads(bodies["demo-1.0-variants.json"])["variants"],
                         {"v3": {"x86_64": {"level": ["v3"]}}})
        meta, left_out = index_level([other, v("v3")])
        self.assertEqual((meta.variants["v3"], left_out), ({"x86_64": {"level": ("v9",)}},
                                                           {1}))

    def test_joins(self):
        """A newcomer is held to each wheel of its release, and blamed alone."""
        check_joins(v("v3"), [v("v2"), v("v4", ("x86_64", "cpu"))])
        for newcomer, why in (
                (json.dumps(variant_document("v3", {"x86_64": {"level": ["v9"]}})),
                 "variant label v3: other properties"),
                (v("v5", ("cpu", "x86_64")), "default-priorities.namespace")):
            with self.assertRaises(InvalidVariant) as caught:
                check_joins(newcomer, [v("v3"), v("v4")])
            self.assertIn(why, str(caught.exception))


class ServerTests(_ServerMixin, SynchronousTestCase):
    """Variant wheels through the whole server, in memory."""

    def setUp(self):
        super().setUp()
        self.at_wall_time()
        self.users = "".join(f"{name} = {hash_password(PASSWORD, FAST)}\n"
                             for name in ("admin", "bob"))
        self.service = self.start()

    def text(self):
        return self.config("[auth]\nadmins = admin\n[users]\n" + self.users
                           + "[index:release]\nupload = user:bob\n"
                           + "[index:stable]\nview = yes\nbases = default\nyanked = hide\n")

    def start(self):
        service, self.treq = self.served(self.text)
        return service

    def call(self, method, path, user="admin", **kwargs):
        response = self.successResultOf(getattr(self.treq, method)(
            "http://127.0.0.1" + path, auth=(user, PASSWORD) if user else None, **kwargs))
        return response, self.successResultOf(self.treq.content(response))

    def upload(self, made, path="/"):
        filename, data = made
        ctype, body = multipart_body(twine_fields("demo", filename.split("-")[1], data),
                                     [("content", filename, data)])
        response, text = self.call("post", path, data=body, headers={"Content-Type": ctype})
        self.reactor.advance(5)
        return response.code, text.decode()

    def page(self, index=""):
        response, body = self.call("get", f"{index}/simple/demo/", user=None,
                                   headers={"Accept": SIMPLE_JSON})
        self.assertEqual(response.code, 200, body)
        return json.loads(body)

    def variants(self, index="", version="1.0"):
        """The index-level file the page links, checked against it; L{None} if none."""
        page = self.page(index)
        listed = [f for f in page["files"] if f["filename"] == f"demo-{version}-variants.json"]
        if not listed:
            response, _ = self.call("get", f"{index}/files/demo/demo-{version}-variants.json",
                                    user=None)
            self.assertEqual(response.code, 404)
            return None
        (entry,) = listed
        self.assertEqual(entry["url"], f"../../files/demo/demo-{version}-variants.json")
        self.assertEqual((entry["core-metadata"], entry["yanked"], entry["provenance"]),
                         (False, False, None))
        self.assertNotIn("requires-python", entry)
        response, body = self.call("get", f"{index}/files/demo/demo-{version}-variants.json",
                                   user=None)
        self.assertEqual(response.code, 200, body)
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["application/json"])
        self.assertEqual(hashlib.sha256(body).hexdigest(), entry["hashes"]["sha256"])
        self.assertEqual(len(body), entry["size"])
        html = self.call("get", f"{index}/simple/demo/", user=None,
                         headers={"Accept": "text/html"})[1].decode()
        anchor = f'demo-{version}-variants.json#sha256={entry["hashes"]["sha256"]}" data-size='
        self.assertIn(f'{anchor}"{entry["size"]}">demo-{version}-variants.json</a>', html)
        self.assertNotIn("upload-time", entry)
        return json.loads(body)

    def test_served(self):
        """
        A plain wheel and two variant wheels are taken; every page links
        the release's index-level file, the union of their variants, and
        serves it as the page hashes it; a view too.
        """
        for label in (None, "v3", "v4"):
            self.assertEqual(self.upload(wheel(label)), (200, "OK\n"))
        served = self.variants()
        self.assertEqual(served, {"$schema": VARIANT_SCHEMA,
                                  "default-priorities": {"namespace": ["x86_64"]},
                                  "variants": {"v3": {"x86_64": {"level": ["v3"]}},
                                               "v4": {"x86_64": {"level": ["v4"]}}}})
        self.assertEqual(self.variants("/stable"), served)
        names = [f["filename"] for f in self.page()["files"]]
        self.assertEqual(names[-1], "demo-1.0-variants.json")
        self.assertEqual(self.page()["versions"], ["1.0"])

    def test_refused(self):
        """Each rule broken is a 400 naming it, and nothing is kept."""
        self.assertEqual(self.upload(wheel("v3"))[0], 200)
        broken = [
            (wheel("v4", variant_json=b"{"), "variant.json: not UTF-8 JSON"),
            (wheel("v4", variant_json=variant_document("v5")),
             "variants has exactly one entry, the filename's label 'v4'"),
            (wheel("v4", variant_json={**variant_document("v4"), "$schema": "https://x/v1.0.0"}),
             "version 1.0.0 is not supported"),
            ((f"demo-1.0-{TAG}-V4.whl", wheel("v4")[1]), "variant label 'V4'"),
            (wheel("v3b", variant_json=variant_document("v3b", {"x86_64": {"level": ["v3"]}},
                                                        namespaces=("cpu", "x86_64"))),
             "variant.json: default-priorities.namespace: [cpu, x86_64] is not "
             "consistent with [x86_64]"),
            (wheel("v4", variant_json=b"[" * 30000 + b"]" * 30000),
             "variant.json: nested too deeply"),
            (wheel("v4", variant_json=json.dumps(variant_document("v4"))[:-1].encode()
                   + b', "variants": {}}'), "variant.json: the key 'variants' is given "
                                            "twice"),
            (wheel("v4", variant_json={**variant_document("v4"),
                                       "$schema": "https://x/%41/v0.1.1.json"}),
             "variant.json: $schema: the https URL"),
            (wheel("v4", variant_json={**variant_document("v4"),
                                       "$schema": "https://x/v0.2.0.json"}),
             "variant.json: $schema: format version 0.2.0 beside 0.1.1"),
        ]
        for made, why in broken:
            code, text = self.upload(made)
            self.assertEqual(code, 400, (made[0], text))
            self.assertIn(why, text)
        # (no variant.json at all)
        filename, data = make_wheel("demo", "1.0", tag=TAG)
        ctype, body = multipart_body(twine_fields("demo", "1.0", data),
                                     [("content", filename.replace(".whl", "-v6.whl"), data)])
        response, text = self.call("post", "/", data=body, headers={"Content-Type": ctype})
        self.assertEqual(response.code, 400)
        self.assertIn(b"must hold demo-1.0.dist-info/variant.json", text)
        self.assertEqual(list(self.variants()["variants"]), ["v3"])

    def test_label_means_one_thing(self):
        """
        A label means one set of properties across the release's wheels,
        the recycle bin's included; another build of a label is taken.
        """
        self.assertEqual(self.upload(wheel("v3"))[0], 200)
        response, _ = self.call("delete", f"/api/files/demo-1.0-{TAG}-v3.whl")
        self.assertEqual(response.code, 200)
        self.assertIsNone(self.variants())
        other = make_wheel("demo", "1.0", tag="1-" + TAG, variant="v3",
                           variant_json=variant_document("v3", {"x86_64": {"level": ["v9"]}}))
        code, text = self.upload(other)
        self.assertEqual(code, 400)
        self.assertIn("variant label v3: other properties than the version's other wheels", text)
        self.assertEqual(self.upload(make_wheel("demo", "1.0", tag="1-" + TAG,
                                                variant="v3"))[0], 200)
        response, _ = self.call("post", f"/api/files/demo-1.0-{TAG}-v3.whl/restore")
        self.assertEqual(response.code, 200)
        self.assertEqual(list(self.variants()["variants"]), ["v3"])

    def test_follows_the_listing(self):
        """
        A delete or a restore changes the file; a view that hides a yanked
        wheel leaves its variant out; with none listed there is none.
        """
        for label in ("v3", "v4"):
            self.assertEqual(self.upload(wheel(label))[0], 200)
        response, _ = self.call("post", f"/api/files/demo-1.0-{TAG}-v4.whl/yank")
        self.assertEqual(response.code, 200)
        self.assertEqual(list(self.variants()["variants"]), ["v3", "v4"])
        self.assertEqual(list(self.variants("/stable")["variants"]), ["v3"])
        self.call("delete", f"/api/files/demo-1.0-{TAG}-v3.whl")
        self.assertEqual(list(self.variants()["variants"]), ["v4"])
        self.assertIsNone(self.variants("/stable"))
        self.call("post", f"/api/files/demo-1.0-{TAG}-v3.whl/restore")
        self.assertEqual(list(self.variants("/stable")["variants"]), ["v3"])

    def test_restart(self):
        """A restart, from the snapshot or from the files alone, serves the same file."""
        for label in ("v3", "v4", None):
            self.assertEqual(self.upload(wheel(label))[0], 200)
        before = self.variants()
        for drop_snapshot in (False, True):
            self.successResultOf(self.service.stopService())
            if drop_snapshot:
                os.remove(os.path.join(self.folder, "index.json"))
            self.reactor.advance(60)
            self.service = self.start()
            self.reactor.advance(60)
            self.assertEqual(self.variants(), before)

    def test_promotion(self):
        """
        A promotion brings the variants along; one that disagrees with the
        target's is refused (409), as an upload there would be.
        """
        for label in ("v3", "v4"):
            self.assertEqual(self.upload(wheel(label))[0], 200)
        self.assertEqual(self.upload(make_wheel(
            "demo", "1.0", tag="1-" + TAG, variant="v4",
            variant_json=variant_document("v4", {"x86_64": {"level": ["v9"]}})),
            "/release/")[0], 200)
        response, body = self.call("post", "/api/promote", json={
            "from": "default", "to": "release", "project": "demo", "version": "1.0"})
        self.assertEqual(response.code, 409, body)
        self.assertIn(b"variant label v4: other properties", body)
        self.assertEqual(list(self.variants("/release")["variants"]), ["v4"])
        # (without the wheel that disagreed, the rest is promoted)
        self.call("delete", f"/api/files/demo-1.0-{TAG}-v4.whl")
        response, body = self.call("post", "/api/promote", json={
            "from": "default", "to": "release", "project": "demo", "version": "1.0"})
        self.assertEqual(response.code, 200, body)
        self.assertEqual(self.variants("/release")["variants"],
                         {"v3": {"x86_64": {"level": ["v3"]}},
                          "v4": {"x86_64": {"level": ["v9"]}}})

    def test_one_release_any_spelling(self):
        """C{1.0.0} is the release C{1.0}: its variant wheels are held to one another."""
        self.assertEqual(self.upload(wheel("v3"))[0], 200)
        other = make_wheel("demo", "1.0.0", tag="1-" + TAG, variant="v3",
                           variant_json=variant_document("v3", {"x86_64": {"level": ["v9"]}}))
        code, text = self.upload(other)
        self.assertEqual(code, 400, text)
        self.assertIn("variant label v3: other properties", text)
        self.assertEqual(self.upload(make_wheel("demo", "1.0.0", tag="1-" + TAG,
                                                variant="v4"))[0], 200)
        self.assertEqual(self.variants(), self.variants(version="1.0.0"))
        self.assertEqual(sorted(self.variants()["variants"]), ["v3", "v4"])

    def test_folder_disagreement_promoted_no_further(self):
        """
        Two wheels a folder holds that disagree (put there by hand) are
        both listed, the later one left out of the file; a promotion of
        the release is refused (409) rather than carry the disagreement on.
        """
        self.successResultOf(self.service.stopService())
        packages = os.path.join(self.folder, "packages")
        first = wheel("v3")
        second = make_wheel("demo", "1.0", tag="1-" + TAG, variant="v3",
                            variant_json=variant_document("v3", {"x86_64": {"level": ["v9"]}}))
        os.makedirs(packages, exist_ok=True)
        for (filename, data), when in ((first, 1000), (second, 2000)):
            path = os.path.join(packages, filename)
            with open(path, "wb") as f:
                f.write(data)
            os.utime(path, (time.time() - when, time.time() - when))
        self.service = self.start()
        self.reactor.advance(60)
        names = {f["filename"] for f in self.page()["files"]}
        self.assertIn(second[0], names)
        self.assertEqual(len(self.variants()["variants"]), 1)
        response, body = self.call("post", "/api/promote", json={
            "from": "default", "to": "release", "project": "demo", "version": "1.0"})
        self.assertEqual(response.code, 409, body)
        self.assertIn(b"variant label v3: other properties", body)
        response, _ = self.call("get", "/release/simple/demo/", user=None)
        self.assertEqual(response.code, 404)


class ExportTests(ExportCase):
    """The static export writes the index-level files its pages link."""

    def test_written_and_linked(self):
        """
        The file is written under C{files/}, linked relative to the page
        with its hash, as the daemon serves it; with C{--files-url} too,
        where the distributions are not written; gone with its wheels.
        """
        storage = self.memory(wheel(None), wheel("v3"), wheel("v4"))
        for settings in (None, ExportSettings(files_url="https://files.example/pypi/")):
            self.export(storage, settings=settings)
            page = json.loads(self.read("simple/demo/index.json"))
            (entry,) = [f for f in page["files"] if f["filename"] == "demo-1.0-variants.json"]
            self.assertEqual(entry["url"], "../../files/demo/demo-1.0-variants.json")
            body = self.read("files/demo/demo-1.0-variants.json")
            self.assertEqual(hashlib.sha256(body).hexdigest(), entry["hashes"]["sha256"])
            self.assertIn(b"demo-1.0-variants.json#sha256=" + entry["hashes"]["sha256"].encode(),
                          self.read("simple/demo/index.html"))
        self.assertFalse(self.exists(f"files/demo/{wheel(None)[0]}"))
        self.assertEqual(self.served(self.daemon(storage), "/files/demo/demo-1.0-variants.json"),
                         (200, body))
        for name in (wheel("v3")[0], wheel("v4")[0]):
            self.successResultOf(storage.delete(self.records(storage)[name]))
        self.export(storage)
        self.assertFalse(self.exists("files/demo/demo-1.0-variants.json"))


class _Gate:
    """
    The io pool's C{run}, held at will: what it is given waits until
    L{step} runs it (so that an upload can be stopped half way).
    """

    def __init__(self):
        self.hold = False
        self.queue = []

    def run(self, f, *args):
        if not self.hold:
            return maybeDeferred(f, *args)
        d = Deferred()
        self.queue.append((f, args, d))
        return d

    def step(self):
        f, args, d = self.queue.pop(0)
        maybeDeferred(f, *args).chainDeferred(d)
        return f.__qualname__


class RaceTests(_ServerMixin, SynchronousTestCase):
    """An upload and a promotion of one release's variant wheels, at once."""

    def setUp(self):
        super().setUp()
        self.at_wall_time()
        self.users = f"admin = {hash_password(PASSWORD, FAST)}\n"
        self.gate = _Gate()

    def text(self):
        return self.config("[auth]\nadmins = admin\n[users]\n" + self.users
                           + "[index:release]\n")

    def served(self, text):
        pools = ThreadPools(FakeThreadPool(name="io"), AtOncePool(name="hash"), self.gate.run)
        service = build_service(text(), self.reactor, pools=pools, load_config=text)
        self.addCleanup(lambda: service.stopService() if service.running else None)
        service.startService()
        self.successResultOf(service.ready)
        return service, site_treq(service.getServiceNamed("web").web.site)

    def post(self, path, made):
        filename, data = made
        ctype, body = multipart_body(twine_fields("demo", "1.0", data),
                                     [("content", filename, data)])
        return self.treq.post("http://127.0.0.1" + path, data=body, auth=("admin", PASSWORD),
                              headers={"Content-Type": ctype})

    def test_upload_and_promotion(self):
        """
        A promotion that comes while an upload of a disagreeing wheel into
        its target is past its checks waits for it, then is refused (409):
        the target never holds both.
        """
        _service, self.treq = self.served(self.text)
        first = self.successResultOf(self.post("/", wheel("v3")))
        self.assertEqual(first.code, 200)
        other = make_wheel("demo", "1.0", tag="1-" + TAG, variant="v3",
                           variant_json=variant_document("v3", {"x86_64": {"level": ["v9"]}}))
        self.gate.hold = True
        upload = self.post("/release/", other)
        ran = []
        while self.gate.queue and not (ran and "inspect" in ran[-1]):
            ran.append(self.gate.step())
        self.assertTrue(any("inspect" in name for name in ran), ran)
        promotion = self.treq.post("http://127.0.0.1/api/promote", auth=("admin", PASSWORD),
                                   json={"from": "default", "to": "release", "project": "demo",
                                         "version": "1.0"})
        self.gate.hold = False
        for _ in range(20):
            while self.gate.queue:
                self.gate.step()
            self.reactor.advance(1)
            self.treq.flush()
        self.assertEqual(self.successResultOf(upload).code, 200)
        refused = self.successResultOf(promotion)
        self.assertEqual(refused.code, 409)
        self.assertIn(b"variant label v3: other properties",
                      self.successResultOf(self.treq.content(refused)))
        page = json.loads(self.successResultOf(self.treq.content(self.successResultOf(
            self.treq.get("http://127.0.0.1/release/simple/demo/",
                          headers={"Accept": SIMPLE_JSON})))))
        self.assertEqual([f["filename"] for f in page["files"]],
                         [other[0], "demo-1.0-variants.json"])


class BundleTests(TestCase):
    """
    A bundle carries each variant wheel's record, variant.json and all
    (PEP 825); an import holds what it brings to the target's release.
    """

    def setUp(self):
        self.folder = os.path.abspath(self.mktemp())

    def config(self, name, wheels):
        """A configuration of a storage folder C{name} holding C{wheels}."""
        storage = os.path.join(self.folder, name)
        os.makedirs(storage)
        for filename, data in wheels:
            write_file(os.path.join(storage, filename), data)
        return write_file(os.path.join(self.folder, name + ".ini"), (
            f"[storage]\npath = {storage}\n[pypid]\n"
            f"snapshot = {self.folder}/{name}.json\n").encode()), storage

    async def test_round_trip(self):
        """
        Exported and imported, the wheels keep their variant.json in the
        target's records (what its pages make the index-level file of); a
        wheel that disagrees with the target's release is refused, saying
        why, and the others are taken.
        """
        source, _ = self.config("source", [wheel(None), wheel("v3"), wheel("v4")])
        disagreeing = make_wheel("demo", "1.0", tag="1-" + TAG, variant="v4",
                                 variant_json=variant_document("v4", {"x86_64": {"level": ["v9"]}}))
        config, target = self.config("target", [disagreeing])
        bundle = os.path.join(self.folder, "bundle.tar.gz")
        code, out, err = await run_admin(source, "export", to=bundle)
        self.assertEqual((code, err), (0, ""), out)
        code, out, err = await run_admin(config, "import", source=bundle)
        self.assertEqual(code, 1, out)
        self.assertIn(f"{wheel('v4')[0]}: variant.json: variant label v4: other properties",
                      out)
        records = (await LocalStorage(target, run_now).scan({}, 0.0)).records
        self.assertEqual(sorted(records), sorted([wheel(None)[0], wheel("v3")[0],
                                                  disagreeing[0]]))
        self.assertEqual(json.loads(records[wheel("v3")[0]].variant),
                         variant_document("v3"))
