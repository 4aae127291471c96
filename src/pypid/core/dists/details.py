"""
What the pages for people show about one file that the index does not keep
in memory: the release's metadata (licence, URLs, classifiers, dependencies)
and its description, rendered to HTML once, when the file arrives (a README
of a megabyte takes a second to render; a page must not), and kept beside
the file (L{IStorage.read_details}). A sidecar of its own, not the core
metadata: an old sdist's metadata is not served (PEP 643) but is worth showing.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from pypid.core.dists.metadata import CoreMetadata
from pypid.core.dists.readme import PLAIN, Renderer

#: The metadata fields the pages show, as L{CoreMetadata.to_json_info} names
#: them; the description is kept only as HTML.
_INFO_FIELDS = (
    "name", "version", "summary", "author", "author_email", "maintainer",
    "maintainer_email", "license", "license_expression", "keywords", "classifiers",
    "requires_dist", "requires_python", "provides_extra", "project_urls", "home_page",
    "download_url",
)

#: A licence text longer than this is cut on the page (old tools put the
#: whole licence in C{License}).
_LICENSE_LIMIT = 4096


@attrs.frozen
class Details:
    """
    One file's metadata as the pages show it: the fields of L{_INFO_FIELDS}
    (JSON-ready, absent values L{None}), and the description as
    L{pypid.core.dists.readme.RenderedDescription} rendered it ("" for none).
    """

    info: dict[str, Any]
    html: str = ""
    renderer: str = PLAIN
    fell_back: bool = False

    def get(self, field: str) -> Any:
        """A field of L{info}, or L{None}."""
        return self.info.get(field)

    def to_bytes(self) -> bytes:
        """The sidecar's bytes (UTF-8 JSON)."""
        return json.dumps(
            {"info": self.info, "html": self.html, "renderer": self.renderer,
             "fell_back": self.fell_back},
            ensure_ascii=False, separators=(",", ":"), sort_keys=True,
        ).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> Details:
        """Read a sidecar back; L{ValueError} when the bytes are not one."""
        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"not a details sidecar: {e}")
        if (not isinstance(doc, dict) or not isinstance(doc.get("info"), dict)
                or not isinstance(doc.get("html", ""), str)):
            raise ValueError("not a details sidecar")
        # Kept in storage, so read with care: a field of the wrong shape
        # (an old or a tampered sidecar) is dropped rather than shown.
        info = {field: _checked(field, doc["info"].get(field)) for field in _INFO_FIELDS}
        return cls(info=info, html=doc.get("html", ""),
                   renderer=str(doc.get("renderer", PLAIN)),
                   fell_back=bool(doc.get("fell_back", False)))


#: The fields that are lists of text, and the one that maps text to text.
_LISTS = frozenset({"classifiers", "requires_dist", "provides_extra"})
_MAPPING = "project_urls"


def _checked(field: str, value: object) -> object:
    """C{value} when it has its field's shape, else L{None}."""
    if field in _LISTS:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    elif field == _MAPPING:
        ok = isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    else:
        ok = isinstance(value, str)
    return value if ok else None


def describe(metadata: CoreMetadata, render: Renderer) -> Details:
    """
    The L{Details} of a distribution's L{CoreMetadata}, its description
    rendered as the public index renders it (slow: run in a worker thread).

    @param render: the L{Renderer}: L{pypid.core.dists.readme.render_description}
        here, or the daemon's sandbox.
    """
    full = metadata.to_json_info()
    info = {field: full.get(field) for field in _INFO_FIELDS}
    if info["license"] and len(info["license"]) > _LICENSE_LIMIT:
        info["license"] = info["license"][:_LICENSE_LIMIT] + "\N{HORIZONTAL ELLIPSIS}"
    rendered = render(metadata.description, metadata.description_content_type)
    return Details(info, rendered.html, rendered.renderer, rendered.fell_back)
