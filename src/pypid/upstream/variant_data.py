"""
An upstream's variant wheels (PEP 825), passed on with their data: what
each page's C{{name}-{version}-variants.json} says of them, read, checked
and given to each wheel, so that pypid's pages make their index-level file
of what they list, as for hosted wheels. Pure: the reading itself is the
client's (L{pypid.upstream.fetch.UpstreamClient.page}).

A proxy passing the upstream's file on byte for byte would list variants
its page does not (a cooldown's hidden wheels, a view's filters, an
advisory's verdicts, a hosted file shadowing one); so, as PEP 825's
"Index-level metadata" lets an index, the data is the upstream's and the
file pypid's. Each wheel keeps its label's entry, at most
L{pypid.core.dists.model.VARIANT_BYTES}, and a wheel fetched or served
later is held to it.

A variant wheel is never listed without its data: one whose data cannot be
had is left out (counted with the page's refused entries; a copy kept here
is not served, nor taken down), and its plain siblings are served. A
refreshed page takes each wheel's data over from the page before wherever
the release's file has the same sha256, so a page refreshed unchanged
reads none again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import attrs

from pypid.core.dists.model import VARIANT_BYTES
from pypid.core.dists.version_order import release_key, version_key
from pypid.core.dists.wheel_variants import (
    InvalidVariant,
    VariantMetadata,
    read_variant_json,
    split_label,
)
from pypid.upstream.page_model import SKIPPED_EXAMPLES, UpstreamFile, UpstreamPage

#: The most index-level files read for one fetch of a page: a page may list
#: thousands of releases, each with its file.
MAX_READS_PER_PAGE = 32

#: C{(sha256 of an index-level file, label) -> a wheel's data}: what a page
#: gave its wheels, to be taken over (L{_given_before})
_Given = dict[tuple[str, str], str]


@attrs.frozen
class _Files:
    """A page's index-level files, by exact version and by release."""

    by_version: dict[str, UpstreamFile]
    by_release: dict[str, UpstreamFile]

    @classmethod
    def of(cls, page: UpstreamPage) -> _Files:
        by_version: dict[str, UpstreamFile] = {}
        by_release: dict[str, UpstreamFile] = {}
        for entry in page.variants:
            by_version.setdefault(entry.version, entry)
            by_release.setdefault(release_key(entry.version), entry)
        return cls(by_version, by_release)

    def of_wheel(self, wheel: UpstreamFile) -> UpstreamFile | None:
        """
        The index-level file describing C{wheel}: its version's own (a release
        spelled two ways may have a file under each), else its release's.
        """
        return self.by_version.get(wheel.version) or self.by_release.get(release_key(wheel.version))


def _label(wheel: UpstreamFile) -> str:
    _plain, label = split_label(wheel.filename)
    assert label is not None  # (the parser's variant wheels have one)
    return label


def _given_before(previous: UpstreamPage | None) -> _Given:
    """What C{previous} gave its variant wheels, by its file's sha256 and label."""
    if previous is None:
        return {}
    files = _Files.of(previous)
    given: _Given = {}
    for f in previous.files:
        if f.variant is not None:
            entry = files.of_wheel(f)
            if entry is not None:
                given[(entry.sha256, _label(f))] = f.variant
    return given


def _pair(sha256: str, label: str) -> str:
    """How L{UpstreamPage.variants_unusable} names a file's label."""
    return f"{sha256} {label}"


def to_read(page: UpstreamPage, previous: UpstreamPage | None) -> list[UpstreamFile]:
    """
    The index-level files of C{page} to read for its variant wheels: those
    whose data the page before neither gave nor found unusable; those never
    tried first, the newest release first, then those that failed, the
    least recently tried first.
    """
    files = _Files.of(page)
    before = _given_before(previous)
    unusable = frozenset(previous.variants_unusable if previous is not None else ())
    failed = previous.variants_failed if previous is not None else ()
    wanted: dict[str, UpstreamFile] = {}
    for wheel in page.variant_wheels:
        entry = files.of_wheel(wheel)
        if entry is None:
            continue
        label = _label(wheel)
        if (entry.sha256, label) not in before and _pair(entry.sha256, label) not in unusable:
            wanted.setdefault(entry.sha256, entry)
    tried = frozenset(failed)
    never = sorted((e for e in wanted.values() if e.sha256 not in tried),
                   key=lambda e: version_key(e.version), reverse=True)
    again = [wanted[sha256] for sha256 in failed if sha256 in wanted]
    return (never + again)[:MAX_READS_PER_PAGE]


def read_index_level(entry: UpstreamFile, data: bytes) -> VariantMetadata:
    """The metadata of C{entry}'s bytes, checked against the page's sha256 and PEP 825's rules."""
    if hashlib.sha256(data).hexdigest() != entry.sha256:
        raise InvalidVariant("its bytes do not match the sha256 its page gives")
    return read_variant_json(data)


def completed(page: UpstreamPage, previous: UpstreamPage | None,
              read: Mapping[str, VariantMetadata],
              failed: Mapping[str, str]) -> tuple[UpstreamPage, dict[str, str]]:
    """
    C{page} with its variant wheels given their data and listed among its
    files; those that cannot stay in C{variant_wheels}, counted refused (the
    upstream lists them still: no takedown).

    @param read: the index-level files read now, by sha256.
    @param failed: why those that could not be read were not, by sha256.
    @return: the page, and why each wheel left waiting is, by filename.
    """
    if not page.variant_wheels:
        return page, {}
    files = _Files.of(page)
    before = _given_before(previous)
    failed_before = previous.variants_failed if previous is not None else ()
    unusable_before = frozenset(previous.variants_unusable if previous is not None else ())
    given: list[UpstreamFile] = []
    waiting: dict[str, tuple[UpstreamFile, str]] = {}
    unusable: set[str] = set()
    for wheel in page.variant_wheels:
        entry = files.of_wheel(wheel)
        if entry is None:
            waiting[wheel.filename] = (
                wheel, "a variant wheel (PEP 825) whose release lists no index-level file")
            continue
        label = _label(wheel)
        text = before.get((entry.sha256, label))
        if text is None:
            text, reason, final = _read_for(entry, label, read.get(entry.sha256),
                                            _pair(entry.sha256, label) in unusable_before)
            if text is None:
                if final:
                    # (read: final for that sha256, not read again for it)
                    unusable.add(_pair(entry.sha256, label))
                elif entry.sha256 in failed:
                    reason = f"{entry.filename}: {failed[entry.sha256]}"
                elif entry.sha256 in failed_before:
                    reason = (f"{entry.filename} could not be read before (tried again at a "
                              "later refresh)")
                waiting[wheel.filename] = (wheel, reason)
                continue
        given.append(attrs.evolve(wheel, variant=text))
    listed = {entry.sha256 for entry in page.variants}
    # (those failed before and not tried again keep their turn, then those tried now)
    still_failed = [sha256 for sha256 in failed_before
                    if sha256 in listed and sha256 not in read and sha256 not in failed]
    reasons = {name: reason for name, (_wheel, reason) in waiting.items()}
    skipped = (*page.skipped, *list(reasons.items())[:SKIPPED_EXAMPLES - len(page.skipped)])
    return attrs.evolve(
        page, files=tuple(sorted((*page.files, *given), key=lambda f: f.filename)),
        variant_wheels=tuple(wheel for wheel, _reason in waiting.values()),
        variants_failed=(*still_failed, *sorted(sha256 for sha256 in failed if sha256 in listed)),
        variants_unusable=tuple(sorted(unusable)),
        skipped=skipped, refused=page.refused + len(waiting)), reasons


def _read_for(entry: UpstreamFile, label: str, meta: VariantMetadata | None,
              unusable: bool) -> tuple[str | None, str, bool]:
    """
    C{(data, "", False)} of the wheel of C{label} that C{entry} (read now:
    C{meta}; found C{unusable} before) describes; else C{(None, why not,
    final)}: final when C{entry} was read and gives none a wheel keeps.
    """
    if unusable:
        return None, (f"{entry.filename}, read before, gives its label {label} no data "
                      f"pypid keeps (none, or over {VARIANT_BYTES} bytes)"), True
    if meta is None:
        return None, (f"{entry.filename} is not read yet (at most {MAX_READS_PER_PAGE} a "
                      "fetch: at a later refresh)"), False
    own = meta.of_label(label)
    if own is None:
        return None, f"its label {label} is not in {entry.filename}", True
    text = own.to_text()
    if len(text) > VARIANT_BYTES:
        return None, (f"its variant data in {entry.filename} is over {VARIANT_BYTES} bytes, "
                      "what pypid keeps of a wheel's"), True
    return text, "", False
