"""
The stylesheet, script and icon of the pages for people, served by pypid
itself under names that carry their digest (C{static/pypid.1a2b3c4d.css}),
so a browser keeps them for a year and a new release is fetched at once.

Nothing comes from elsewhere: the pages work offline and under a policy of
C{script-src 'self'; style-src 'self'}. This module only reads them;
L{pypid.web.pages.people.AssetsResource} serves them and the static export
writes them. A package below C{web/} and C{export/}, importing only
C{core/}, so both take the same files from below.
"""

from __future__ import annotations

import hashlib
from importlib import resources

import attrs

from pypid.core.indexes.render import Page

#: The assets, by their name in the package, and their content types.
_ASSETS = {
    "pypid.css": b"text/css; charset=utf-8",
    "pypid.js": b"text/javascript; charset=utf-8",
    "pypid.svg": b"image/svg+xml",
}


@attrs.frozen
class Assets:
    """
    The assets as served: C{css}, C{js} and C{icon} are their paths from the
    site's root; C{pages}, C{{served name: Page}}.
    """

    css: str
    js: str
    icon: str
    pages: dict[str, Page]

    @classmethod
    def load(cls) -> Assets:
        """Read the assets from the package (once, at start-up)."""
        pages: dict[str, Page] = {}
        paths: dict[str, str] = {}
        folder = resources.files("pypid.assets").joinpath("static")
        for name, content_type in _ASSETS.items():
            data = folder.joinpath(name).read_bytes()
            stem, _, ext = name.rpartition(".")
            served = f"{stem}.{hashlib.sha256(data).hexdigest()[:12]}.{ext}"
            pages[served] = Page.of(data, content_type)
            paths[ext] = "static/" + served
        return cls(css=paths["css"], js=paths["js"], icon=paths["svg"], pages=pages)

    def files(self) -> list[tuple[str, bytes]]:
        """C{(path from the site's root, bytes)} of every asset, for a static copy."""
        return [("static/" + name, page.body) for name, page in sorted(self.pages.items())]
