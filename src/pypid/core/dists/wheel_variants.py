"""
Wheel variants (PEP 825, provisionally accepted): what a variant wheel's
filename and its C{*.dist-info/variant.json} must be, and the index-level
C{{name}-{version}-variants.json} hosted beside them, made of theirs.

The PEP asks an index to refuse invalid variant data as it enters (a
SHOULD) and to host the index-level file, linked in every response that
lists a version's variant wheels (a MUST). Its rules are checked by hand
(half are not in its JSON Schema), each message naming the one broken.
Across a version's wheels, a label must mean the same properties and the
priority lists be prefixes of one another; the index-level file is their
union with the longest list, whatever their order (L{combine}).

Read from the PEP at python/peps ba4deeb, format 0.1.1.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence

import attrs

#: The label of the variant with no properties.
NULL = "null"

#: The major version of the format pypid reads (PEP 825: 0.x until final;
#: a tool must refuse a major version it does not support).
MAJOR = 0

#: The most bytes of a wheel's C{variant.json}: far above a real one (a
#: few hundred bytes), and what an index-level file of many wheels sums.
MAX_VARIANT_JSON = 64 << 10

_LABEL = re.compile(r"[0-9a-z_.]+\Z")
_NAME = re.compile(r"[a-z0-9_]+\Z")
_VALUE = re.compile(r"[a-z0-9_.]+\Z")
#: printable ASCII but space, "%", quotes and backslash: a URL that JSON
#: and an S3 header carry as it is (L{pypid.storage.bucket.layout})
_URL = re.compile(r"https://[!#$&(-\[\]-~]{1,192}\Z", re.ASCII)
_SCHEMA_VERSION = re.compile(r"v(\d+)\.(\d+)\.(\d+)")
_TOP = frozenset({"$schema", "default-priorities", "variants"})

#: C{namespace -> feature -> values}: one variant's properties, values sorted.
Properties = Mapping[str, Mapping[str, tuple[str, ...]]]


class InvalidVariant(ValueError):
    """Variant data that breaks a rule of PEP 825; the message names the rule."""


def labelled(tail: Sequence[str]) -> bool:
    """
    Whether a wheel filename's parts after its name and version
    (C{[build-]python-abi-platform[-label]}) end in a variant label: five
    of them, or four whose first is no build tag (which starts with a
    digit, as a variant wheel's Python tag never does).
    """
    return len(tail) == 5 or (len(tail) == 4 and not tail[0][:1].isdigit())


def split_label(filename: str) -> tuple[str, str | None]:
    """
    A wheel's filename without its variant label, and the label (L{None}:
    not a variant wheel): C{numpy-2.3.2-cp313-cp313-linux_x86_64-x86_64_v3.whl}
    is C{numpy-2.3.2-cp313-cp313-linux_x86_64.whl} and C{x86_64_v3}. Six
    parts whose third starts with a digit are a build tag's, not a label's.

    @raise InvalidVariant: a label that is not C{^[0-9a-z_.]+$}.
    """
    if not filename.endswith(".whl"):
        return filename, None
    parts = filename[:-4].split("-")
    if labelled(parts[2:]):
        label = parts[-1]
        if not _LABEL.match(label):
            raise InvalidVariant(f"variant label {label!r}: only 0-9, a-z, _ and . (PEP 825)")
        return "-".join(parts[:-1]) + ".whl", label
    return filename, None


@attrs.frozen
class VariantMetadata:
    """
    What a C{variant.json} (a wheel's, or an index-level file) says.

    @ivar schema: C{$schema}, the URL of the format's schema.
    @ivar namespaces: C{default-priorities.namespace}, in priority order.
    @ivar variants: label -> its L{Properties}.
    """

    schema: str
    namespaces: tuple[str, ...]
    variants: Mapping[str, Properties]

    def to_json(self) -> dict[str, object]:
        """The document, labels, namespaces and features sorted (the same data, the same bytes)."""
        return {
            "$schema": self.schema,
            "default-priorities": {"namespace": list(self.namespaces)},
            "variants": {label: {ns: {feature: list(values)
                                      for feature, values in sorted(features.items())}
                                 for ns, features in sorted(props.items())}
                         for label, props in sorted(self.variants.items())},
        }

    def to_text(self) -> str:
        """L{to_json} as compact JSON (ASCII): what a record keeps of a wheel's C{variant.json}."""
        return json.dumps(self.to_json(), separators=(",", ":"))

    def to_bytes(self) -> bytes:
        """L{to_text} as bytes: what the index-level file serves."""
        return self.to_text().encode("ascii")

    def of_label(self, label: str) -> VariantMetadata | None:
        """
        What a wheel of C{label} carries of an index-level file's metadata
        (L{None}: the file does not list it): its label's entry alone, with
        the file's C{$schema} and priorities.
        """
        props = self.variants.get(label)
        if props is None:
            return None
        return VariantMetadata(self.schema, self.namespaces, {label: props})


def schema_version(url: object) -> tuple[int, int, int]:
    """
    The version a C{$schema} URL names (C{.../v0.1.1.json}); L{InvalidVariant}
    unless an https URL naming a version pypid reads.
    """
    if not isinstance(url, str) or not _URL.match(url):
        raise InvalidVariant("variant.json: $schema: the https URL of the variant schema "
                             "(printable ASCII without %, quotes or backslashes, at most 200 "
                             "characters)")
    found = _SCHEMA_VERSION.findall(url)
    if not found:
        raise InvalidVariant("variant.json: $schema: its URL names no version "
                             "(v<major>.<minor>.<patch>)")
    major, minor, patch = (int(n) for n in found[-1])
    if major != MAJOR:
        raise InvalidVariant(f"variant.json: $schema: version {major}.{minor}.{patch} is not "
                             f"supported (pypid reads {MAJOR}.x)")
    return major, minor, patch


def read_variant_json(data: bytes, label: str | None = None) -> VariantMetadata:
    """
    The metadata of a C{variant.json}: a wheel's when C{label} (its
    filename's) is given, else an index-level file's (any labels).

    @raise InvalidVariant: naming the rule broken.
    """
    if len(data) > MAX_VARIANT_JSON:
        raise InvalidVariant(f"variant.json: over {MAX_VARIANT_JSON} bytes")
    try:
        found = json.loads(data.decode("utf-8"), object_pairs_hook=_once)
    except _Twice as e:
        raise InvalidVariant(f"variant.json: the key {e.args[0]!r} is given twice (readers "
                             "would disagree on which holds)") from None
    except RecursionError:
        raise InvalidVariant("variant.json: nested too deeply") from None
    except (UnicodeDecodeError, ValueError):
        raise InvalidVariant("variant.json: not UTF-8 JSON") from None
    if not isinstance(found, dict) or set(found) != _TOP:
        raise InvalidVariant("variant.json: exactly the keys $schema, default-priorities "
                             "and variants")
    schema_version(found["$schema"])
    priorities = found["default-priorities"]
    if not isinstance(priorities, dict) or set(priorities) != {"namespace"}:
        raise InvalidVariant("variant.json: default-priorities has exactly the key namespace")
    namespaces = _names(priorities["namespace"], "default-priorities.namespace", _NAME)
    if not namespaces:
        raise InvalidVariant("variant.json: default-priorities.namespace is empty")
    variants = found["variants"]
    if not isinstance(variants, dict):
        raise InvalidVariant("variant.json: variants is an object of labels")
    if label is not None and list(variants) != [label]:
        raise InvalidVariant(f"variant.json: variants has exactly one entry, the filename's "
                             f"label {label!r}")
    read: dict[str, Properties] = {}
    for key, props in variants.items():
        if not isinstance(key, str) or not _LABEL.match(key):
            raise InvalidVariant(f"variant.json: variant label {key!r}: only 0-9, a-z, _ and .")
        read[key] = _properties(key, props)
        unlisted = sorted(set(read[key]) - set(namespaces))
        if unlisted:
            raise InvalidVariant(f"variant.json: {key}: namespace {unlisted[0]} is not in "
                                 "default-priorities.namespace")
    return VariantMetadata(found["$schema"], tuple(namespaces), read)


class _Twice(ValueError):
    """A JSON object that gives a key twice."""


def _once(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """An object of JSON, each key given once (a reader keeps the first, another the last)."""
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                raise _Twice(key[:40])
            seen.add(key)
    return found


def _names(value: object, where: str, pattern: re.Pattern[str]) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidVariant(f"variant.json: {where} is a list of strings")
    for v in value:
        if not pattern.match(v):
            raise InvalidVariant(f"variant.json: {where}: {v!r} does not match "
                                 f"{pattern.pattern[:-2]}$")
    if len(set(value)) != len(value):
        raise InvalidVariant(f"variant.json: {where} lists a name twice")
    return value


def _properties(label: str, props: object) -> Properties:
    if not isinstance(props, dict):
        raise InvalidVariant(f"variant.json: variants.{label} is an object of namespaces")
    if label == NULL and props:
        raise InvalidVariant("variant.json: the null variant has no properties")
    read: dict[str, dict[str, tuple[str, ...]]] = {}
    for ns, features in props.items():
        if not _NAME.match(ns):
            raise InvalidVariant(f"variant.json: {label}: namespace {ns!r} does not match "
                                 "^[a-z0-9_]+$")
        if not isinstance(features, dict) or not features:
            raise InvalidVariant(f"variant.json: {label}.{ns} is a non-empty object of features")
        read[ns] = {}
        for feature, values in features.items():
            if not _NAME.match(feature):
                raise InvalidVariant(f"variant.json: {label}.{ns}: feature {feature!r} does "
                                     "not match ^[a-z0-9_]+$")
            listed = _names(values, f"{label}.{ns}.{feature}", _VALUE)
            if not listed:
                raise InvalidVariant(f"variant.json: {label}.{ns}.{feature} lists no value")
            read[ns][feature] = tuple(sorted(listed))
    return read


def combine(metadatas: Iterable[VariantMetadata]) -> VariantMetadata | None:
    """
    The index-level metadata of a version's wheels' (L{None}: none): the
    union of their variants and the longest priority list, whatever their
    order; the newest C{$schema} of their (one) major version.

    @raise InvalidVariant: PEP 825's "Metadata consistency" broken, or two
        draft formats (0.x: no compatibility may be assumed between them).
    """
    schema: tuple[tuple[int, int, int], str] | None = None
    namespaces: tuple[str, ...] = ()
    variants: dict[str, Properties] = {}
    for meta in metadatas:
        version = schema_version(meta.schema)
        if schema is not None and version != schema[0] and 0 in (version[0], schema[0][0]):
            raise InvalidVariant(
                "variant.json: $schema: format version " + ".".join(map(str, version))
                + " beside " + ".".join(map(str, schema[0])) + " of the version's other "
                "wheels (draft formats, 0.x, are not compatible with one another)")
        if schema is None or version > schema[0] or (
                version == schema[0] and meta.schema > schema[1]):
            schema = (version, meta.schema)
        shorter, longer = sorted((namespaces, meta.namespaces), key=len)
        if longer[:len(shorter)] != shorter:
            raise InvalidVariant(
                "variant.json: default-priorities.namespace: [" + ", ".join(meta.namespaces)
                + "] is not consistent with [" + ", ".join(namespaces)
                + "] of the version's other wheels (one must start with the other)")
        namespaces = longer
        for label, props in meta.variants.items():
            known = variants.get(label)
            if known is not None and _plain(known) != _plain(props):
                raise InvalidVariant(f"variant.json: variant label {label}: other properties "
                                     "than the version's other wheels with that label")
            variants[label] = props
    if schema is None:
        return None
    return VariantMetadata(schema[1], namespaces, variants)


def check_joins(variant: str, others: Iterable[str]) -> None:
    """
    Refuse the wheel whose C{variant} (a record's: L{VariantMetadata.to_text})
    would make its version's variant data inconsistent with C{others}, the
    variants of the version's wheels the index holds: held to each in turn
    (consistent pairwise is consistent together), so that the refusal
    blames only the newcomer.

    @raise InvalidVariant: naming the rule and the label.
    """
    new = read_variant_json(variant.encode("utf-8"))
    for other in others:
        combine((read_variant_json(other.encode("utf-8")), new))


def check_described(variant: str, described: str) -> None:
    """
    Refuse a wheel whose C{variant} (its own C{variant.json}, as a record
    keeps it) is not what C{described}, its label's entry of the
    index-level file it was listed with (L{VariantMetadata.of_label}),
    says: its label's properties, and priorities that are a prefix of the
    file's (the union: the longest list).
    """
    own = read_variant_json(variant.encode("utf-8"))
    listed = read_variant_json(described.encode("utf-8"))
    combine((listed, own))
    if listed.namespaces[:len(own.namespaces)] != own.namespaces:
        raise InvalidVariant(
            "variant.json: default-priorities.namespace: [" + ", ".join(own.namespaces)
            + "] is not a prefix of [" + ", ".join(listed.namespaces)
            + "], which the release's index-level file gives")


def index_level(variants: Iterable[str]) -> tuple[VariantMetadata | None, frozenset[int]]:
    """
    The index-level metadata of a version's listed variant wheels, from
    their C{variant} texts (L{None}: none), and the positions of those
    left out of it. Given first uploaded first: a wheel whose data does not
    join those before it (two servers on one bucket, two upstreams
    disagreeing) is left out rather than failing the page, and the page
    leaves it out too (L{pypid.core.dists.variant_files}).
    """
    combined: VariantMetadata | None = None
    left_out: set[int] = set()
    for i, text in enumerate(variants):
        meta = read_variant_json(text.encode("utf-8"))
        try:
            # (combining is associative: the union so far stands for those before)
            combined = combine((combined, meta)) if combined is not None else meta
        except InvalidVariant:
            left_out.add(i)
    return combined, frozenset(left_out)


def _plain(props: Properties) -> dict[str, dict[str, tuple[str, ...]]]:
    return {ns: dict(features) for ns, features in props.items()}


def variants_filename(project: str, version: str) -> str:
    """
    The index-level file's name, C{{name}-{version}-variants.json}, its
    name and version escaped as in a wheel's filename (C{foo_bar-1.0-variants.json}).
    """
    return f"{re.sub(r'[-_.]+', '_', project).lower()}-{version}-variants.json"
