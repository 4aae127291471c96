"""
The index-level C{{name}-{version}-variants.json} (PEP 825) of each
release a page lists variant wheels of: made from what that page lists,
linked beside the release's files, and kept with the page so that its URL
serves the very bytes the page's hash names.

PEP 825 asks for it "in all the responses where the variant wheels are
included", listing "all variants available on the package index": so each
page makes its own from the wheels it lists (a view's after its filters),
and a view that leaves a variant wheel out leaves its variant out. It is
generated and may change, so its link's hash changes with the page. Its
entry has none of the attributes PEP 825 calls meaningless for it
(C{requires-python}, C{core-metadata}, C{yanked}, a provenance), and
installers that do not read variants skip it: its name is no distribution's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Protocol, TypeVar
from urllib.parse import quote

import attrs

from pypid.core.dists.names import InvalidName, canonical_version, is_valid_name, normalize
from pypid.core.dists.version_order import release_key
from pypid.core.dists.wheel_variants import index_level, variants_filename

#: the bodies of a page without variant wheels
NO_VARIANTS: Mapping[str, bytes] = MappingProxyType({})

#: how an index-level file's name ends
SUFFIX = "-variants.json"

#: the packagetype of an index-level file an upstream's page lists
#: (L{pypid.upstream.page_model.UpstreamPage.variants}): no distribution's
VARIANTS = "variants"


class VariantListed(Protocol):
    """What a page lists of a file that this module reads."""

    @property
    def project(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def filename(self) -> str: ...
    @property
    def upload_time(self) -> float | None: ...
    @property
    def variant(self) -> str | None: ...


F = TypeVar("F", bound=VariantListed)


@attrs.frozen
class VariantsFile:
    """
    A release's index-level file as a page lists it (a
    L{pypid.core.indexes.render.ListedFile}): its name, digest and size; none of
    the attributes of a distribution.
    """

    filename: str
    project: str
    version: str
    sha256: str
    size: int
    requires_python: None = None
    yanked: None = None
    metadata_sha256: None = None
    upload_time: None = None
    variant: None = None
    has_provenance: bool = False


def is_variants_filename(filename: str) -> bool:
    """Whether C{filename} could name a release's index-level file (not a distribution's)."""
    return filename.endswith(SUFFIX)


def variants_version(filename: str, project: str) -> str | None:
    """
    The normalized version an index-level file of C{project} names
    (C{foo_bar-1.0-variants.json}: L{variants_filename} read back), or
    L{None} when it is not one of C{project}'s (another name, a version
    that is not PEP 440's).
    """
    name, _, version = filename[: -len(SUFFIX)].rpartition("-")
    if not is_valid_name(name) or normalize(name) != project:
        return None
    try:
        return canonical_version(version)
    except InvalidName:
        return None


def variants_link(project: str, filename: str) -> str:
    """
    The link a page gives an index-level file: relative to the page, so
    that it leads to the index that made it, wherever the distributions'
    own links lead (a C{base_url}, an export's C{--files-url}).
    """
    return f"../../files/{project}/{quote(filename)}"


def with_variant_files(pairs: Sequence[tuple[F, str]],
                       ) -> tuple[Sequence[tuple[F | VariantsFile, str]], Mapping[str, bytes]]:
    """
    The C{(file, link)} pairs of a page with, after the last file of each
    version that lists a variant wheel, that version's index-level file
    (L{variants_link}), and the files' bodies by filename; C{pairs} itself
    and L{NO_VARIANTS} when no file is a variant wheel.

    A file is made of the variant wheels of the whole release (C{1.0} and
    C{1.0.0} are one: L{release_key}); a release spelled two ways has a
    file under each, the same bytes. A wheel whose data disagrees with
    those uploaded before it is left out of the file and of the page
    (L{index_level}), never failing the page.
    """
    releases: dict[str, list[F]] = {}
    for f, _url in pairs:
        if f.variant is not None:
            releases.setdefault(release_key(f.version), []).append(f)
    if not releases:
        return pairs, NO_VARIANTS
    made: dict[str, tuple[VariantsFile, str]] = {}
    bodies: dict[str, bytes] = {}
    left_out: set[str] = set()
    for wheels in releases.values():
        wheels.sort(key=lambda w: (w.upload_time or 0.0, w.filename))
        meta, out_of_it = index_level(w.variant for w in wheels if w.variant is not None)
        if meta is None:
            continue
        left_out.update(wheels[i].filename for i in out_of_it)
        body = meta.to_bytes()
        digest = hashlib.sha256(body).hexdigest()
        project = wheels[0].project
        for version in sorted({w.version for i, w in enumerate(wheels) if i not in out_of_it}):
            name = variants_filename(project, version)
            made[version] = (VariantsFile(name, project, version, digest, len(body)),
                             variants_link(project, name))
            bodies[name] = body
    if left_out:
        pairs = [pair for pair in pairs if pair[0].filename not in left_out]
    out: list[tuple[F | VariantsFile, str]] = []
    last = {f.version: i for i, (f, _url) in enumerate(pairs) if f.version in made}
    for i, pair in enumerate(pairs):
        out.append(pair)
        version = pair[0].version
        if last.get(version) == i:
            out.append(made[version])
    return out, MappingProxyType(bodies)
