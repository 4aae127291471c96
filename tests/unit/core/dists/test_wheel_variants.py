"""
Tests for wheel variants' rules (PEP 825, issue 46, part 1): labels in
filenames, a wheel's C{variant.json}, and the index-level file combined
from a version's wheels.
"""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from pypid.core.dists.wheel_variants import (
    MAX_VARIANT_JSON,
    NULL,
    InvalidVariant,
    VariantMetadata,
    combine,
    read_variant_json,
    split_label,
    variants_filename,
)

SCHEMA = "https://variants-schema.wheelnext.example/peps/825/v0.1.1.json"


def document(variants, namespaces=("x86_64",), schema=SCHEMA, **extra):
    return json.dumps({"$schema": schema, "default-priorities": {"namespace": list(namespaces)},
                       "variants": variants, **extra}).encode()


V3 = {"x86_64": {"level": ["v3"]}}


class LabelTests(SynchronousTestCase):
    def test_split(self):
        for filename, expected in (
                ("numpy-2.3.2-cp313-cp313t-musllinux_1_2_x86_64.whl",
                 ("numpy-2.3.2-cp313-cp313t-musllinux_1_2_x86_64.whl", None)),
                ("numpy-2.3.2-cp313-cp313t-musllinux_1_2_x86_64-x86_64_v3.whl",
                 ("numpy-2.3.2-cp313-cp313t-musllinux_1_2_x86_64.whl", "x86_64_v3")),
                ("numpy-2.3.2-cp313-cp313t-musllinux_1_2_x86_64-null.whl",
                 ("numpy-2.3.2-cp313-cp313t-musllinux_1_2_x86_64.whl", NULL)),
                # (a build tag starts with a digit: not a label)
                ("numpy-2.3.2-1-cp313-cp313t-linux_x86_64.whl",
                 ("numpy-2.3.2-1-cp313-cp313t-linux_x86_64.whl", None)),
                ("numpy-2.3.2-1-cp313-cp313t-linux_x86_64-cu12.1.whl",
                 ("numpy-2.3.2-1-cp313-cp313t-linux_x86_64.whl", "cu12.1")),
                ("numpy-2.3.2.tar.gz", ("numpy-2.3.2.tar.gz", None))):
            self.assertEqual(split_label(filename), expected, filename)

    def test_bad_label(self):
        for label in ("X86", "a+b", "", "é"):
            with self.assertRaises(InvalidVariant) as caught:
                split_label(f"numpy-2.3.2-cp313-cp313-linux_x86_64-{label}.whl")
            self.assertIn("variant label", str(caught.exception))

    def test_parsed(self):
        """
        A variant wheel's filename is read as the plain wheel's with its
        label; a label is its own distribution (beside the plain wheel of
        the same tags); a bad label is refused saying so.
        """
        from pypid.core.dists.names import InvalidName, filename_key, parse_filename
        plain = "numpy-2.3.2-cp313-cp313-linux_x86_64.whl"
        for filename, label in (
                ("numpy-2.3.2-cp313-cp313-linux_x86_64-x86_64_v3.whl", "x86_64_v3"),
                ("numpy-2.3.2-1-cp313-cp313-linux_x86_64-null.whl", "null"),
                (plain, None)):
            parsed = parse_filename(filename)
            self.assertEqual((parsed.project, parsed.version, parsed.pyversion, parsed.variant),
                             ("numpy", "2.3.2", "cp313", label))
            # (twice: the second read is answered from the parts remembered)
            self.assertEqual(parse_filename(filename), parsed)
        keys = {filename_key(f) for f in (
            plain, "numpy-2.3.2-cp313-cp313-linux_x86_64-x86_64_v3.whl",
            "numpy-2.3.2-cp313-cp313-linux_x86_64-x86_64_v4.whl",
            "numpy-2.3.2-1-cp313-cp313-linux_x86_64-x86_64_v3.whl")}
        self.assertEqual(len(keys), 4)
        self.assertEqual(filename_key("NumPy-2.3.2.0-cp313-cp313-linux_x86_64-x86_64_v3.whl"),
                         filename_key("numpy-2.3.2-cp313-cp313-linux_x86_64-x86_64_v3.whl"))
        for filename, why in (
                ("numpy-2.3.2-cp313-cp313-linux_x86_64-X.whl", "variant label 'X'"),
                ("numpy-2.3.2-1-2-cp313-cp313-linux_x86_64-a.whl", "5 or 6 parts between dashes")):
            with self.assertRaises(InvalidName) as caught:
                parse_filename(filename)
            self.assertIn(why, str(caught.exception))

    def test_filename(self):
        self.assertEqual(variants_filename("Foo.Bar-baz", "1.0"), "foo_bar_baz-1.0-variants.json")


class ReadTests(SynchronousTestCase):
    def test_read(self):
        meta = read_variant_json(document({"x86_64_v3": V3}), "x86_64_v3")
        self.assertEqual(meta.namespaces, ("x86_64",))
        self.assertEqual(meta.variants, {"x86_64_v3": {"x86_64": {"level": ("v3",)}}})
        self.assertEqual(read_variant_json(meta.to_bytes(), "x86_64_v3"), meta)
        null = read_variant_json(document({"null": {}}), NULL)
        self.assertEqual(null.variants, {"null": {}})

    def test_refused(self):
        """Each rule, named in the refusal."""
        for data, label, said in (
                (b"{", "a", "not UTF-8 JSON"),
                (b"\xff", "a", "not UTF-8 JSON"),
                (b"[]", "a", "exactly the keys"),
                (document({"a": V3}, extra=1), "a", "exactly the keys"),
                (document({"a": V3}, schema="http://x/v0.1.1.json"), "a", "https URL"),
                (document({"a": V3}, schema="https://x/schema.json"), "a", "names no version"),
                (document({"a": V3}, schema="https://x/v1.0.0.json"), "a", "1.0.0 is not supported"),
                (json.dumps({"$schema": SCHEMA, "default-priorities": {"namespace": ["x86_64"],
                                                                       "feature": []},
                             "variants": {"a": V3}}).encode(), "a", "exactly the key namespace"),
                (document({"a": V3}, namespaces=()), "a", "is empty"),
                (document({"a": V3}, namespaces=("x86_64", "x86_64")), "a", "twice"),
                (document({"a": V3}, namespaces=("X",)), "a", "does not match"),
                (document({"a": V3}), "b", "the filename's label 'b'"),
                (document({"a": V3, "b": V3}), "a", "exactly one entry"),
                (document({"null": V3}), "null", "null variant has no properties"),
                (document({"a": {"gpu": {"cuda": ["12"]}}}), "a", "namespace gpu is not in"),
                (document({"a": {"x86_64": {}}}), "a", "non-empty object of features"),
                (document({"a": {"x86_64": {"Level": ["v3"]}}}), "a", "feature 'Level'"),
                (document({"a": {"x86_64": {"level": []}}}), "a", "lists no value"),
                (document({"a": {"x86_64": {"level": ["v3", "v3"]}}}), "a", "twice"),
                (document({"a": {"x86_64": {"level": ["V3"]}}}), "a", "does not match"),
                (document({"a": {"x86_64": {"level": "v3"}}}), "a", "list of strings"),
                (document({"a": []}), "a", "object of namespaces"),
                (document({"A": V3}), None, "variant label 'A'"),
                (b" " * (MAX_VARIANT_JSON + 1), "a", "over")):
            with self.assertRaises(InvalidVariant, msg=data[:80]) as caught:
                read_variant_json(data, label)
            self.assertIn(said, str(caught.exception), data[:80])


_names = st.from_regex(r"\A[a-z][a-z0-9_]{0,5}\Z")
_props = st.dictionaries(_names, st.dictionaries(
    _names, st.lists(st.from_regex(r"\A[a-z0-9_.]{1,4}\Z"), min_size=1, max_size=3,
                     unique=True).map(lambda v: tuple(sorted(v))), min_size=1, max_size=2),
    max_size=2)


class CombineTests(SynchronousTestCase):
    def wheel(self, label, props, namespaces, schema=SCHEMA):
        return VariantMetadata(schema, tuple(namespaces), {label: props})

    # (no deadline, nor a health check on speed: the machine's speed is no property)
    @settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(st.tuples(st.from_regex(r"\A[a-z0-9_.]{1,6}\Z"), _props), min_size=1,
                    max_size=6, unique_by=lambda t: t[0]), st.data())
    def test_order_does_not_matter(self, wheels, data):
        """The union and the longest list, the same whatever order the wheels come in."""
        named = sorted({ns for _, props in wheels for ns in props})
        # (and one namespace no wheel has: longer than any name drawn)
        chain = named + ["z" * (max(map(len, named), default=0) + 1)]
        # (each wheel's list: a prefix of one chain, holding its namespaces, never empty)
        metas = [self.wheel(label, props, chain[:data.draw(st.integers(
            max([chain.index(ns) + 1 for ns in props] + [1]), len(chain)))])
            for label, props in wheels]
        combined = combine(metas)
        self.assertEqual(combine(data.draw(st.permutations(metas))).to_bytes(), combined.to_bytes())
        self.assertEqual(set(combined.variants), {label for label, _ in wheels})
        self.assertEqual(combined.namespaces, max((m.namespaces for m in metas), key=len))
        self.assertEqual(read_variant_json(combined.to_bytes()), combined)

    def test_inconsistent(self):
        a = self.wheel("v3", {"x86_64": {"level": ("v3",)}}, ["x86_64"])
        other = self.wheel("v3", {"x86_64": {"level": ("v4",)}}, ["x86_64"])
        for metas in ([a, other], [other, a]):
            with self.assertRaises(InvalidVariant) as caught:
                combine(metas)
            self.assertIn("variant label v3: other properties", str(caught.exception))
        b = self.wheel("cu", {"gpu": {"cuda": ("12",)}}, ["gpu", "x86_64"])
        with self.assertRaises(InvalidVariant) as caught:
            combine([a, b])
        self.assertIn("is not consistent with", str(caught.exception))
        # (the same label, the same properties: one variant, more wheels)
        self.assertEqual(combine([a, a]).variants, a.variants)
        self.assertIsNone(combine([]))

    def test_draft_schemas(self):
        """
        Two draft formats (0.x) are not combined: PEP 825 says no
        compatibility may be assumed between them. One format at two URLs
        gives the same one whatever the order.
        """
        old = self.wheel("a", {}, ["x"], "https://s.example/v0.1.0.json")
        new = self.wheel("b", {}, ["x"], "https://s.example/v0.1.1.json")
        for pair in ([new, old], [old, new]):
            with self.assertRaises(InvalidVariant) as caught:
                combine(pair)
            self.assertIn("draft formats, 0.x, are not compatible", str(caught.exception))
        other = self.wheel("c", {}, ["x"], "https://t.example/v0.1.1.json")
        self.assertEqual(combine([new, other]).schema, combine([other, new]).schema)
