"""
An upstream's variant wheels (PEP 825; issue 46, part 1), passed on with
their data: what each page's C{{name}-{version}-variants.json} says of
them, read, checked and given to each wheel, so that pypid's own pages
make their index-level file of what they list, as for hosted wheels
(L{pypid.core.variant_files}).

PEP 825 wants an index that lists a variant wheel to link its release's
index-level file beside it, listing every variant it offers. A proxy that
passed the upstream's file on byte for byte would list variants its page
does not (a cooldown's hidden wheels, a view's filters, an advisory's
verdicts, a hosted file shadowing one); so, as the PEP's "Index-level
metadata" lets an index, the data is the upstream's and the file is
pypid's, made by each page of the wheels it shows. The upstream's file is
read as a wheel's C{variant.json} is on upload
(L{pypid.core.wheel_variants.read_variant_json}: 64 KiB at most, its
sha256 the page's, each rule of the PEP); each wheel keeps its label's
entry (L{pypid.core.wheel_variants.VariantMetadata.of_label}), at most
what a record keeps (L{pypid.core.model.VARIANT_BYTES}), and a wheel
fetched later is held to it (L{pypid.upstream.downloads}).

A variant wheel is never listed without its data: one whose release lists
no index-level file, whose label the file does not name, or whose file
could not be read is left out (counted with the page's refused entries,
its reason among their examples; a copy kept here is not served, but not
taken down either: L{pypid.upstream.takedowns}), and its plain siblings
are served.

Bounded: at most L{MAX_READS_PER_PAGE} files are read for one fetch of a
page, the newest releases first (the rest at its next refresh); files read
are remembered by sha256 (L{MEMORY} bytes as L{held} counts them), so a
page refreshed unchanged reads none again. Pure: the reading itself is the client's
(L{pypid.upstream.fetch.UpstreamClient.page}).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping

import attrs

from pypid.core.advisories import release_key
from pypid.core.model import VARIANT_BYTES
from pypid.core.version_order import version_key
from pypid.core.wheel_variants import (
    InvalidVariant,
    VariantMetadata,
    read_variant_json,
    split_label,
)
from pypid.upstream.parser import SKIPPED_EXAMPLES, UpstreamFile, UpstreamPage

#: The most index-level files read for one fetch of a page: a page may list
#: thousands of releases, each with its file.
MAX_READS_PER_PAGE = 32

#: The most bytes the index-level files remembered (by sha256, across
#: pages) may hold, as L{held} counts them.
MEMORY = 16 << 20

#: What a file read holds in memory per byte of it, once read into a
#: L{VariantMetadata} (tracemalloc: 4.7 to 4.9, files of 1 to 64 variants).
HELD_PER_BYTE = 5


def held(data: bytes) -> int:
    """What the index-level file C{data}, once read, is counted in memory."""
    return HELD_PER_BYTE * len(data)

#: C{known(sha256)}: an index-level file already read, or L{None}.
Known = Callable[[str], VariantMetadata | None]


def _releases(page: UpstreamPage) -> dict[str, UpstreamFile]:
    """The index-level file of each release (L{release_key}) the page lists, the first by name."""
    found: dict[str, UpstreamFile] = {}
    for entry in page.variants:
        found.setdefault(release_key(entry.version), entry)
    return found


def to_read(page: UpstreamPage, known: Known) -> list[UpstreamFile]:
    """
    The index-level files of C{page} to read for its variant wheels: those
    not C{known} by their sha256, the newest release first, at most
    L{MAX_READS_PER_PAGE}.
    """
    files = _releases(page)
    wanted: dict[str, UpstreamFile] = {}
    for wheel in sorted(page.variant_wheels, key=lambda w: version_key(w.version),
                        reverse=True):
        entry = files.get(release_key(wheel.version))
        if entry is not None and entry.sha256 not in wanted and known(entry.sha256) is None:
            wanted[entry.sha256] = entry
            if len(wanted) == MAX_READS_PER_PAGE:
                break
    return list(wanted.values())


def read_index_level(entry: UpstreamFile, data: bytes) -> VariantMetadata:
    """
    The metadata of C{entry}'s bytes, C{data}, checked against the page's
    sha256 and PEP 825's rules.

    @raise InvalidVariant: naming what is wrong.
    """
    if hashlib.sha256(data).hexdigest() != entry.sha256:
        raise InvalidVariant("its bytes do not match the sha256 its page gives")
    return read_variant_json(data)


def completed(page: UpstreamPage, known: Known,
              failed: Mapping[str, str] | None = None) -> UpstreamPage:
    """
    C{page} with its variant wheels given their data and listed among its
    files; those that cannot stay in C{variant_wheels}, counted refused,
    with their reasons among the examples (the upstream lists them still:
    no takedown); C{page} itself when it lists none.

    @param known: the index-level files read, by sha256.
    @param failed: why a file could not be read, by its filename.
    """
    if not page.variant_wheels:
        return page
    failed = failed or {}
    files = _releases(page)
    given: list[UpstreamFile] = []
    waiting: list[UpstreamFile] = []
    skipped = list(page.skipped)
    refused = page.refused
    for wheel in page.variant_wheels:
        entry = files.get(release_key(wheel.version))
        reason = None
        if entry is None:
            reason = "a variant wheel (PEP 825) whose release lists no index-level file"
        else:
            meta = known(entry.sha256)
            if meta is None:
                reason = (f"{entry.filename}: {failed[entry.filename]}"
                          if entry.filename in failed
                          else f"{entry.filename} is not read yet (at most "
                               f"{MAX_READS_PER_PAGE} a fetch: at a later refresh)")
            else:
                reason, wheel = _given(wheel, entry, meta)
        if reason is None:
            given.append(wheel)
            continue
        waiting.append(wheel)
        refused += 1
        if len(skipped) < SKIPPED_EXAMPLES:
            skipped.append((wheel.filename, reason))
    return attrs.evolve(page, files=tuple(sorted((*page.files, *given),
                                                 key=lambda f: f.filename)),
                        variant_wheels=tuple(waiting), skipped=tuple(skipped), refused=refused)


def _given(wheel: UpstreamFile, entry: UpstreamFile,
           meta: VariantMetadata) -> tuple[str | None, UpstreamFile]:
    """C{(None, wheel with its data)}, or C{(why not, wheel)}."""
    _plain, label = split_label(wheel.filename)
    assert label is not None  # (the parser's variant wheels have one)
    own = meta.of_label(label)
    if own is None:
        return f"its label {label} is not in {entry.filename}", wheel
    text = own.to_text()
    if len(text) > VARIANT_BYTES:
        return (f"its variant data in {entry.filename} is over {VARIANT_BYTES} bytes, "
                "what pypid keeps of a wheel's"), wheel
    return None, attrs.evolve(wheel, variant=text)
