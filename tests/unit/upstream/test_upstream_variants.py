"""
Tests for an upstream's variant wheels passed on (PEP 825, issue 46, part
1): the index-level C{{name}-{version}-variants.json} an upstream's page
lists is read (once per sha256, bounded, checked), each variant wheel
listed with its label's data, and pypid's pages make their own index-level
file of what they show (a view's cooldown included), served as their hash
names it; a variant wheel without readable data is left out, and one
whose own C{variant.json} disagrees is not served. In memory, through the
web (L{tests.harness.upstream}).
"""

import hashlib
import json

import attrs
from twisted.trial.unittest import SynchronousTestCase

from pypid.core.dists.model import VARIANT_BYTES
from pypid.core.dists.variant_files import VARIANTS
from pypid.core.dists.wheel_variants import read_variant_json
from pypid.upstream.cache import FILE_COST, page_cost
from pypid.upstream.cached_page import CachedPage, entry_from_json, entry_to_json
from pypid.upstream.page_model import UpstreamFile, UpstreamPage
from pypid.upstream.parser import parse_page, upstream_status
from pypid.upstream.quarantines import Quarantines
from pypid.upstream.variant_data import MAX_READS_PER_PAGE, completed, to_read
from pypid.web.serving.upstream_pages import WITHOUT_DATA
from tests.harness.distributions import VARIANT_SCHEMA, make_wheel, variant_document
from tests.harness.upstream import DAY, INDEX_A, INDEX_B, ORIGIN_A, ORIGIN_B, Server

TAG = "cp313-cp313-linux_x86_64"
PLAIN = make_wheel("demo", "1.0", tag=TAG)
V3 = make_wheel("demo", "1.0", tag=TAG, variant="x86_64_v3")
V4 = make_wheel("demo", "1.0", tag=TAG, variant="x86_64_v4")
INDEX_LEVEL_NAME = "demo-1.0-variants.json"
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
OLD = "2023-01-02T03:04:05Z"
NEW = "2025-12-30T00:00:00Z"


def sha(data):
    return hashlib.sha256(data).hexdigest()


def index_level(*labels, namespaces=("x86_64",)):
    """An upstream's index-level file listing C{labels} (bytes, not compact)."""
    document = variant_document(labels[0], namespaces=namespaces)
    for label in labels[1:]:
        document["variants"].update(variant_document(label)["variants"])
    return json.dumps(document, indent=2).encode()


def upstream_page(files, claimed=None):
    """A PEP 691 page of C{files}: C{(filename, bytes, upload time)}; C{claimed}: sha256s to give."""
    claimed = claimed or {}
    return json.dumps({
        "meta": {"api-version": "1.1"}, "name": "demo",
        "files": [{"filename": name, "url": f"http://{ORIGIN_A}/f/{name}",
                   "hashes": {"sha256": claimed.get(name, sha(data))}, "size": len(data),
                   **({"upload-time": when} if when else {})}
                  for name, data, when in files],
    }).encode()


class _Upstream:
    """The L{Server} of L{tests.harness.upstream}, its first upstream given C{demo}."""

    def setUp(self):
        self.server = Server(self)

    def serve(self, files, index_level_bytes=None, claimed=None, when=OLD):
        """
        The upstream lists C{files} (C{(filename, bytes)} or with an upload
        time) and, when given, the release's index-level file; each is served.
        """
        listed = [(*f, when) if len(f) == 2 else f for f in files]
        if index_level_bytes is not None:
            listed.append((INDEX_LEVEL_NAME, index_level_bytes, None))
        self.server.origins.route(INDEX_A + "demo/", upstream_page(listed, claimed))
        for name, data, _when in listed:
            self.server.origins.route(f"http://{ORIGIN_A}/f/{name}", data)

    def page(self, index="/staging"):
        return self.server.json_page(f"{index}/simple/demo/")

    def names(self, index="/staging"):
        return [f["filename"] for f in self.page(index)["files"]]

    def served_index_level(self, index="/staging"):
        """The index-level file the page links, checked against the page's hash."""
        (entry,) = [f for f in self.page(index)["files"] if f["filename"] == INDEX_LEVEL_NAME]
        self.assertEqual(entry["url"], f"../../files/demo/{INDEX_LEVEL_NAME}")
        code, headers, body = self.server.request(f"{index}/files/demo/{INDEX_LEVEL_NAME}")
        self.assertEqual(code, 200, body)
        self.assertEqual(headers.getRawHeaders("content-type"), ["application/json"])
        self.assertEqual((sha(body), len(body)), (entry["hashes"]["sha256"], entry["size"]))
        return json.loads(body)

    def asked_for(self, name):
        return self.server.asked().count((ORIGIN_A, f"/f/{name}"))

    def cached(self):
        return self.server.sources["public"].pages.entries["demo"].page


class PassedOnTests(_Upstream, SynchronousTestCase):
    """An upstream's variant wheels, listed with their index-level file."""

    def test_listed(self):
        """
        The plain wheel and both variant wheels are listed, then pypid's own
        index-level file, whose data is the upstream's; HTML pages link it
        too. The upstream's file is read once: a refreshed page that lists
        it unchanged reads it no more.
        """
        self.serve([PLAIN, V3, V4], index_level("x86_64_v3", "x86_64_v4"))
        self.assertEqual(self.names(), sorted([PLAIN[0], V3[0], V4[0]]) + [INDEX_LEVEL_NAME])
        served = self.served_index_level()
        self.assertEqual(read_variant_json(json.dumps(served).encode()),
                         read_variant_json(index_level("x86_64_v3", "x86_64_v4")))
        self.assertEqual(served["$schema"], VARIANT_SCHEMA)
        code, _, html = self.server.request("/staging/simple/demo/",
                                            {"Accept": "text/html"})
        self.assertEqual(code, 200)
        self.assertIn(f'href="../../files/demo/{INDEX_LEVEL_NAME}#sha256=', html.decode())
        self.assertEqual(self.asked_for(INDEX_LEVEL_NAME), 1)
        self.server.clock.advance(3600)
        self.assertEqual(self.names()[-1], INDEX_LEVEL_NAME)
        self.assertEqual(self.server.asked().count((ORIGIN_A, "/simple/demo/")), 2)
        self.assertEqual(self.asked_for(INDEX_LEVEL_NAME), 1)

    def test_download(self):
        """A variant wheel is fetched, checked against its data, kept and served."""
        self.serve([PLAIN, V3, V4], index_level("x86_64_v3", "x86_64_v4"))
        code, _, body = self.server.request(f"/staging/files/demo/{V3[0]}")
        self.assertEqual((code, body), (200, V3[1]))
        kept = self.server.sources["public"].kept.get(V3[0])
        self.assertEqual(read_variant_json(kept.variant.encode()),
                         read_variant_json(json.dumps(variant_document("x86_64_v3")).encode()))

    def test_download_disagreeing(self):
        """
        A variant wheel whose own variant.json gives its label other
        properties than the release's index-level file is refused (502),
        and not kept.
        """
        liar = make_wheel("demo", "1.0", tag=TAG, variant="x86_64_v3",
                          variant_json=variant_document("x86_64_v3",
                                                        {"x86_64": {"level": ["v9"]}}))
        self.serve([PLAIN, liar], index_level("x86_64_v3"))
        self.refused(liar, b"disagrees with its release's index-level file")

    def refused(self, wheel, reason):
        """C{wheel} is refused at download (502 with C{reason}), and not kept."""
        code, _, body = self.server.request(f"/staging/files/demo/{wheel[0]}")
        self.assertEqual(code, 502, body)
        self.assertIn(reason, body)
        self.assertIsNone(self.server.sources["public"].kept.get(wheel[0]))

    def test_kept_held_to_new_data(self):
        """
        A kept variant wheel is held to its release's index-level file as
        the page gives it now: once the upstream's file gives its label
        other properties, the kept copy answers 502, not its bytes.
        """
        self.serve([PLAIN, V3], index_level("x86_64_v3"))
        self.assertEqual(self.server.request(f"/staging/files/demo/{V3[0]}")[0], 200)
        other = json.dumps(variant_document("x86_64_v3", {"x86_64": {"level": ["v9"]}}))
        self.serve([PLAIN, V3], other.encode())
        self.server.clock.advance(3600)
        self.assertIn(V3[0], self.names())
        code, _, body = self.server.request(f"/staging/files/demo/{V3[0]}")
        self.assertEqual(code, 502, body)
        self.assertIn(b"disagrees with its release's index-level file", body)

    def test_download_longer_priorities(self):
        """A wheel whose priorities are longer than its file's (not a prefix of them): 502."""
        longer = make_wheel("demo", "1.0", tag=TAG, variant="x86_64_v3",
                            variant_json=variant_document("x86_64_v3",
                                                          namespaces=("x86_64", "aarch64")))
        self.serve([PLAIN, longer], index_level("x86_64_v3"))
        self.refused(longer, b"is not a prefix of [x86_64]")

    def test_upstreams_disagree(self):
        """
        Two upstreams of a chain whose files give one label other
        properties: the page lists the first wheel (oldest) with its data,
        and leaves the other out, which the file would misstate.
        """
        cp312 = make_wheel("demo", "1.0", tag="cp312-cp312-linux_x86_64", variant="x86_64_v3")
        other = json.dumps(variant_document("x86_64_v3", {"x86_64": {"level": ["v9"]}}))
        self.serve([(*V3, OLD)], index_level("x86_64_v3"))
        listed = [(*cp312, NEW), (INDEX_LEVEL_NAME, other.encode(), None)]
        self.server.origins.route(INDEX_B + "demo/", upstream_page(listed).replace(
            ORIGIN_A.encode(), ORIGIN_B.encode()))
        for name, data, _when in listed:
            self.server.origins.route(f"http://{ORIGIN_B}/f/{name}", data)
        self.assertEqual(self.names(), [V3[0], INDEX_LEVEL_NAME])
        self.assertEqual(self.served_index_level()["variants"],
                         {"x86_64_v3": {"x86_64": {"level": ["x86_64_v3"]}}})

    def test_file_before_page(self):
        """The index-level file asked for before any page: the page is fetched, then it."""
        self.serve([PLAIN, V3], index_level("x86_64_v3"))
        code, _, body = self.server.request(f"/staging/files/demo/{INDEX_LEVEL_NAME}")
        self.assertEqual(code, 200, body)
        self.assertEqual(sorted(json.loads(body)["variants"]), ["x86_64_v3"])
        code, _, _ = self.server.request("/staging/files/demo/demo-2.0-variants.json")
        self.assertEqual(code, 404)

    def test_file_upstream_down(self):
        """The index-level file of a page the upstream cannot give: 502, as the page."""
        self.server.origins.route(INDEX_A + "demo/", b"down", status=503)
        self.server.origins.route(INDEX_B + "demo/", b"down", status=503)
        code, _, body = self.server.request(f"/staging/files/demo/{INDEX_LEVEL_NAME}")
        self.assertEqual(code, 502, body)
        self.assertEqual(self.server.request("/staging/simple/demo/")[0], 502)

    def test_cooldown(self):
        """
        A view's cooldown hides the young variant wheel from its page and
        from its index-level file alike; the index without one lists both.
        """
        self.serve([(*PLAIN, OLD), (*V3, OLD), (*V4, NEW)],
                   index_level("x86_64_v3", "x86_64_v4"))
        self.server.clock.advance(200 * DAY)  # (OLD is older than the 800 days of cool)
        self.assertEqual(self.names("/cool"), sorted([PLAIN[0], V3[0]]) + [INDEX_LEVEL_NAME])
        self.assertEqual(sorted(self.served_index_level("/cool")["variants"]), ["x86_64_v3"])
        self.assertEqual(sorted(self.served_index_level("/staging")["variants"]),
                         ["x86_64_v3", "x86_64_v4"])
        code, _, _ = self.server.request(f"/cool/files/demo/{V4[0]}")
        self.assertEqual(code, 404)

    def test_kept_across_a_restart(self):
        """
        The cache's saved page keeps each variant wheel's data (and no
        C{variant} key for the others); data a record could not keep makes
        the saved page unreadable.
        """
        self.serve([PLAIN, V3], index_level("x86_64_v3"))
        self.page()
        saved = json.loads(json.dumps(entry_to_json(CachedPage(self.cached(), 5.0))))
        self.assertEqual([("variant" in f) for f in saved["page"]["files"]], [True, False])
        self.assertEqual(entry_from_json(saved).page, attrs.evolve(self.cached(), skipped=(),
                                                                  refused=0))
        saved["page"]["files"][0]["variant"] = json.dumps(variant_document("other"))
        with self.assertRaises(ValueError):
            entry_from_json(saved)
        del saved["page"]["files"][0]["variant"]
        with self.assertRaises(ValueError):
            entry_from_json(saved)


class LeftOutTests(_Upstream, SynchronousTestCase):
    """Variant wheels without data are left out; their plain siblings are served."""

    def left_out(self, reason):
        page = self.cached()
        self.assertNotIn(V3[0], [f.filename for f in page.files])
        self.assertIn(reason, dict(page.skipped)[V3[0]])

    def test_no_index_level_file(self):
        self.serve([PLAIN, V3])
        self.assertEqual(self.names(), [PLAIN[0]])
        self.left_out("lists no index-level file")

    def test_hash_mismatch(self):
        self.serve([PLAIN, V3], index_level("x86_64_v3"), claimed={INDEX_LEVEL_NAME: "0" * 64})
        self.assertEqual(self.names(), [PLAIN[0]])
        self.left_out("do not match the sha256 its page gives")
        code, _, _ = self.server.request(f"/staging/files/demo/{INDEX_LEVEL_NAME}")
        self.assertEqual(code, 404)
        code, _, _ = self.server.request(f"/staging/files/demo/{V3[0]}")
        self.assertEqual(code, 404)

    def test_not_found_upstream(self):
        self.serve([PLAIN, V3], index_level("x86_64_v3"))
        del self.server.origins.routes[(ORIGIN_A, f"/f/{INDEX_LEVEL_NAME}")]
        self.assertEqual(self.names(), [PLAIN[0]])
        self.left_out("the upstream has no such file")

    def test_invalid(self):
        bad = json.dumps({"$schema": VARIANT_SCHEMA, "variants": {}}).encode()
        self.serve([PLAIN, V3], bad)
        self.assertEqual(self.names(), [PLAIN[0]])
        self.left_out("variant.json: exactly the keys")

    def test_too_large(self):
        """Read up to 64 KiB, as a wheel's variant.json."""
        self.serve([PLAIN, V3], index_level("x86_64_v3") + b" " * (64 << 10))
        self.assertEqual(self.names(), [PLAIN[0]])
        self.left_out(f"{INDEX_LEVEL_NAME}: the file was more than 65536 bytes")

    def test_label_not_listed(self):
        """Only the wheel whose label the file does not name is left out."""
        self.serve([PLAIN, V3, V4], index_level("x86_64_v4"))
        self.assertEqual(self.names(), sorted([PLAIN[0], V4[0]]) + [INDEX_LEVEL_NAME])
        self.left_out(f"its label x86_64_v3 is not in {INDEX_LEVEL_NAME}")
        # (read once: the same file cannot say otherwise at a refresh)
        self.server.clock.advance(3600)
        self.assertEqual(self.names(), sorted([PLAIN[0], V4[0]]) + [INDEX_LEVEL_NAME])
        self.assertEqual(self.asked_for(INDEX_LEVEL_NAME), 1)

    def test_kept_then_unreadable(self):
        """
        A variant wheel kept here whose release's index-level file then
        cannot be read is not served (404 saying why), and not taken down
        (the upstream lists it still); it is served again once readable.
        """
        self.serve([PLAIN, V3], index_level("x86_64_v3"))
        self.assertEqual(self.server.request(f"/staging/files/demo/{V3[0]}")[0], 200)
        changed = index_level("x86_64_v3") + b"\n"
        self.serve([PLAIN, V3], changed, claimed={INDEX_LEVEL_NAME: "0" * 64})
        self.server.clock.advance(3600)
        self.assertEqual(self.names(), [PLAIN[0]])
        code, _, body = self.server.request(f"/staging/files/demo/{V3[0]}")
        self.assertEqual(code, 404)
        self.assertEqual(body.decode().strip(), WITHOUT_DATA)
        self.assertEqual(self.server.sources["public"].withheld(), [])
        self.serve([PLAIN, V3], changed)
        self.server.clock.advance(3600)
        self.assertEqual(self.server.request(f"/staging/files/demo/{V3[0]}")[1:][1], V3[1])

    def test_read_at_the_next_refresh(self):
        """A file that failed is read again at the page's next refresh."""
        self.serve([PLAIN, V3], index_level("x86_64_v3"))
        route = self.server.origins.routes.pop((ORIGIN_A, f"/f/{INDEX_LEVEL_NAME}"))
        self.assertEqual(self.names(), [PLAIN[0]])
        self.server.origins.routes[(ORIGIN_A, f"/f/{INDEX_LEVEL_NAME}")] = route
        self.server.clock.advance(3600)
        self.assertEqual(self.names(), sorted([PLAIN[0], V3[0]]) + [INDEX_LEVEL_NAME])


def _entry(version, digest):
    name = f"demo-{version}-variants.json"
    return UpstreamFile(filename=name, url=f"https://upstream.example/f/{name}", sha256=digest,
                        project="demo", version=version, packagetype=VARIANTS)


def _wheel(version, label):
    name = f"demo-{version}-{TAG}-{label}.whl"
    return UpstreamFile(filename=name, url=f"https://upstream.example/f/{name}",
                        sha256="a" * 64, project="demo", version=version,
                        packagetype="bdist_wheel")


class DataTests(SynchronousTestCase):
    """What is read of a page and what its wheels get (pure)."""

    def page(self, versions, labels=("a", "b")):
        return UpstreamPage(project="demo", name="demo",
                            variants=tuple(_entry(v, f"{n:064x}")
                                           for n, v in enumerate(versions)),
                            variant_wheels=tuple(_wheel(v, label) for v in versions
                                                 for label in labels))

    def test_to_read_bounded(self):
        """
        The newest releases first, at most L{MAX_READS_PER_PAGE}; those not
        read this time wait for a later fetch, and say so; what the page
        before gave is taken over, not read again.
        """
        count = MAX_READS_PER_PAGE + 5
        versions = [f"{n}.0" for n in range(1, count + 1)]
        page = self.page(versions)
        wanted = to_read(page, None)
        self.assertEqual([e.version for e in wanted], versions[::-1][:MAX_READS_PER_PAGE])
        known = read_variant_json(index_level("a", "b"))
        done, waiting = completed(page, None, {e.sha256: known for e in wanted}, {})
        self.assertEqual(len(done.files), 2 * MAX_READS_PER_PAGE)
        self.assertIn("is not read yet", waiting[_wheel("1.0", "a").filename])
        self.assertEqual(len(done.variant_wheels), 2 * 5)
        # (the next fetch, the page unchanged: only the five left)
        again = to_read(page, done)
        self.assertEqual([e.version for e in again], versions[:5][::-1])
        done, waiting = completed(page, done, {e.sha256: known for e in again}, {})
        self.assertEqual((len(done.files), waiting, to_read(page, done)), (2 * count, {}, []))

    def test_failed_tried_last(self):
        """
        Files that could not be read are tried after those never tried,
        the least recently tried first: files failing for ever neither
        stop older releases listing nor one another being tried again.
        """
        count = MAX_READS_PER_PAGE + 1
        versions = [f"{n}.0" for n in range(1, count + 1)]
        page = self.page(versions, labels=("a",))
        known = read_variant_json(index_level("a"))
        gone = "the upstream has no such file"
        first = to_read(page, None)
        self.assertEqual(first[0].version, versions[-1])
        done, _ = completed(page, None, {}, {e.sha256: gone for e in first})
        self.assertEqual(len(done.variants_failed), MAX_READS_PER_PAGE)
        second = to_read(page, done)
        self.assertEqual([e.version for e in second],
                         ["1.0", *[e.version for e in sorted(first, key=lambda e: e.sha256)]
                          ][:MAX_READS_PER_PAGE])
        done, waiting = completed(page, done, {second[0].sha256: known},
                                  {e.sha256: gone for e in second[1:]})
        self.assertEqual([f.version for f in done.files], ["1.0"])
        left = versions[-1]  # (the one failed before and not tried again)
        self.assertIn("could not be read before", waiting[_wheel(left, "a").filename])
        self.assertIn(gone, waiting[_wheel("2.0", "a").filename])
        self.assertEqual(to_read(page, done)[0].version, left)

    def test_unusable_not_read_again(self):
        """
        A file read that gives a wheel's label no data is not read again
        for it while its sha256 stays (it cannot say otherwise), nor does
        it stop other releases being read.
        """
        versions = [f"{n}.0" for n in range(1, MAX_READS_PER_PAGE + 2)]
        page = self.page(versions, labels=("b",))
        only_a = read_variant_json(index_level("a"))
        done, waiting = completed(page, None, {e.sha256: only_a for e in to_read(page, None)},
                                  {})
        self.assertIn("its label b is not in", waiting[_wheel("33.0", "b").filename])
        self.assertEqual([e.version for e in to_read(page, done)], ["1.0"])
        done, waiting = completed(page, done, {}, {})
        self.assertIn("read before, gives its label b no data",
                      waiting[_wheel("33.0", "b").filename])
        self.assertEqual(len(done.variants_unusable), MAX_READS_PER_PAGE)

    def test_over_what_a_record_keeps(self):
        """A label's data over L{VARIANT_BYTES} once compact is left out."""
        values = [f"v{n}" for n in range(VARIANT_BYTES // 4)]
        big = read_variant_json(json.dumps(variant_document("a", {"x86_64": {"level": values}}))
                                .encode())
        page = self.page(["1.0"], labels=("a",))
        done, waiting = completed(page, None, {page.variants[0].sha256: big}, {})
        self.assertEqual(done.files, ())
        self.assertIn(f"over {VARIANT_BYTES} bytes", waiting[page.variant_wheels[0].filename])

    def test_one_release_two_spellings(self):
        """
        C{1.0.0}'s wheels take the data of the file named C{1.0} (one
        release), unless a file is named C{1.0.0} too: then its own.
        """
        page = UpstreamPage(project="demo", name="demo", variants=(_entry("1.0", "1" * 64),),
                            variant_wheels=(_wheel("1.0.0", "a"),))
        done, _ = completed(page, None, {"1" * 64: read_variant_json(index_level("a"))}, {})
        self.assertEqual(read_variant_json(done.files[0].variant.encode(), "a").variants,
                         {"a": {"x86_64": {"level": ("a",)}}})
        both = attrs.evolve(page, variants=(_entry("1.0", "1" * 64), _entry("1.0.0", "2" * 64)),
                            variant_wheels=(_wheel("1.0", "a"), _wheel("1.0.0", "b")))
        self.assertEqual(sorted(e.filename for e in to_read(both, None)),
                         ["demo-1.0-variants.json", "demo-1.0.0-variants.json"])
        done, waiting = completed(both, None, {"1" * 64: read_variant_json(index_level("a")),
                                               "2" * 64: read_variant_json(index_level("b"))},
                                  {})
        self.assertEqual((len(done.files), waiting), (2, {}))

    def test_parsed_apart(self):
        """The parser keeps variant wheels out of the files until their data is given."""
        body = upstream_page([(PLAIN[0], PLAIN[1], OLD), (V3[0], V3[1], OLD),
                              (INDEX_LEVEL_NAME, b"{}", None)])
        parsed = parse_page(body, SIMPLE_JSON, INDEX_A + "demo/", "demo")
        self.assertEqual([f.filename for f in parsed.files], [PLAIN[0]])
        self.assertEqual([f.filename for f in parsed.variant_wheels], [V3[0]])
        self.assertEqual([f.filename for f in parsed.variants], [INDEX_LEVEL_NAME])
        self.assertEqual(parsed.refused, 0)

    def test_parsed_apart_html(self):
        """The same from the HTML form."""
        anchors = "".join(f'<a href="/f/{name}#sha256={sha(data)}">{name}</a>'
                          for name, data in (PLAIN, V3, (INDEX_LEVEL_NAME, b"{}")))
        parsed = parse_page(f"<html><body>{anchors}</body></html>".encode(), "text/html",
                            INDEX_A + "demo/", "demo")
        self.assertEqual([f.filename for f in parsed.files], [PLAIN[0]])
        self.assertEqual([f.filename for f in parsed.variant_wheels], [V3[0]])
        self.assertEqual([(f.filename, f.sha256) for f in parsed.variants],
                         [(INDEX_LEVEL_NAME, sha(b"{}"))])

    def test_taken_over_after_a_restart(self):
        """The page saved and read back gives its wheels' data: nothing is read again."""
        page = self.page(["1.0", "2.0"])
        known = read_variant_json(index_level("a", "b"))
        done, _ = completed(page, None, {e.sha256: known for e in to_read(page, None)}, {})
        back = entry_from_json(json.loads(json.dumps(entry_to_json(CachedPage(done, 1.0)))))
        self.assertEqual(to_read(page, back.page), [])
        self.assertEqual(completed(page, back.page, {}, {})[0].files, done.files)

    def test_counted(self):
        """A page's cost counts its variant wheels, with or without their data, and files."""
        page = self.page([f"{n}.0" for n in range(100)])
        empty = UpstreamPage(project="demo", name="demo")
        self.assertGreater(page_cost(page) - page_cost(empty), 100 * 3 * FILE_COST)

    def test_quarantine_lifted(self):
        """A page listing only variant wheels, without their data yet, lifts a quarantine."""
        quarantines = Quarantines()
        status = upstream_status("quarantined", "malware")
        quarantines.seen("demo", UpstreamPage(project="demo", name="demo", status=status), 1.0)
        waiting = self.page(["1.0"])
        self.assertIs(quarantines.seen("demo", waiting, 2.0), waiting)
        self.assertIsNone(quarantines.get("demo"))
