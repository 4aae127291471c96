"""
An upstream project page as pypid keeps it, whichever form it arrived in,
and which of its files a cooldown hides. Apart from the parser, so that
the many modules that only hold such pages do not load it.
"""

from __future__ import annotations

import attrs

from pypid.core.indexes.project_status import ProjectStatus

#: The refused entries kept, with their reasons, as examples for the log.
SKIPPED_EXAMPLES = 20


class UpstreamPageError(ValueError):
    """An upstream project page that cannot be read at all."""


@attrs.frozen(kw_only=True)
class UpstreamFile:
    """
    One file an upstream page lists, checked and ready to be cached: the
    fields of L{pypid.core.dists.model.FileRecord} an upstream tells before
    the file is fetched, so that pypid serves the page again with nothing
    lost, and checks the bytes against C{sha256} at the first download.

    @ivar filename: the distribution's filename, safe as a storage name;
        C{project} and C{version}, normalized, are read from it.
    @ivar url: the absolute http(s) URL to fetch it from, without fragment.
    @ivar sha256: the lowercase hex digest the upstream promises; required,
        since a file that cannot be checked must not be cached.
    @ivar yanked: L{None} when not yanked, otherwise the reason (possibly
        empty); PEP 592 forbids mirroring a yanked file without its flag.
    @ivar metadata_sha256: L{None} when the upstream offers no separate core
        metadata, C{""} when it offers it without a sha256, else its digest.
    @ivar provenance_url: where the upstream serves the file's provenance
        (PEP 740), or L{None}; checked against C{sha256} before pypid serves it.
    @ivar variant: a variant wheel's data (PEP 825), as a record keeps it
        (L{pypid.upstream.variant_data}); L{None} for any other file.
    """

    filename: str
    url: str
    sha256: str
    project: str
    version: str
    packagetype: str
    requires_python: str | None = None
    yanked: str | None = None
    metadata_sha256: str | None = None
    size: int | None = None
    upload_time: float | None = None
    provenance_url: str | None = None
    variant: str | None = None

    @property
    def has_provenance(self) -> bool:
        """Whether the upstream offers a provenance (pypid's pages link its own copy)."""
        return self.provenance_url is not None


@attrs.frozen(kw_only=True)
class UpstreamPage:
    """
    An upstream project page, reduced to what pypid serves again.

    @ivar name: the display name as the upstream spells it (else C{project}).
    @ivar files: the accepted L{UpstreamFile}s, sorted by filename so that
        two fetches of an unchanged page compare equal.
    @ivar skipped: C{(filename or href, reason)} of the first
        L{SKIPPED_EXAMPLES} refused entries, for the log; C{refused} counts all.
    @ivar status: the project's status upstream (PEP 792); L{None}: active.
    @ivar variants: the index-level files of variants (PEP 825) the page
        lists: kept apart, so that no download, listing or legacy JSON of
        the upstream's files takes them for a distribution.
    @ivar variant_wheels: the variant wheels the page lists, without their
        data: a variant wheel is never listed without it, so they stay out of
        C{files} until L{pypid.upstream.variant_data} moves in those it could read.
    @ivar variants_failed: the sha256s of the index-level files that could
        not be read, the least recently tried first: tried after those never
        tried, so that files that keep failing hold up no other.
    @ivar variants_unusable: C{"<sha256> <label>"} of each variant wheel
        whose index-level file gives its label no data a wheel keeps: final
        for that sha256, so not read again.
    """

    project: str
    name: str
    files: tuple[UpstreamFile, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()
    refused: int = 0
    last_serial: int | None = None
    status: ProjectStatus | None = None
    variants: tuple[UpstreamFile, ...] = ()
    variant_wheels: tuple[UpstreamFile, ...] = ()
    variants_failed: tuple[str, ...] = ()
    variants_unusable: tuple[str, ...] = ()

    @property
    def quarantined(self) -> bool:
        """Whether the upstream quarantined the project: none of its files is offered."""
        return self.status is not None and self.status.quarantined


def quoted(value: object, limit: int = 80) -> str:
    """
    Quote an upstream-supplied value for an error message, cut short: such
    messages end up in logs and 502 bodies, and the upstream controls them.
    """
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def effective_files(page: UpstreamPage, now: float, min_age: float
                    ) -> tuple[tuple[UpstreamFile, ...], tuple[UpstreamFile, ...]]:
    """
    Split a page's files into those old enough to serve and those hidden by
    the cooldown, which protects clients from freshly published releases.

    With C{min_age > 0}, a file whose upload time is unknown is hidden: a
    cooldown that a server could skip by leaving out C{upload-time} would
    protect nothing. (pip's C{--uploaded-prior-to} and uv's
    C{--exclude-newer} make the same choice.)

    @param min_age: the cooldown in seconds; C{0} hides nothing.
    @return: C{(kept, hidden)}, in page order.
    @raise ValueError: if C{min_age} is negative.
    """
    if min_age < 0:
        raise ValueError(f"min_age must not be negative, not {min_age!r}")
    if min_age == 0:
        return tuple(page.files), ()
    newest = now - min_age
    kept = tuple(f for f in page.files if f.upload_time is not None and f.upload_time <= newest)
    return kept, tuple(f for f in page.files if f.upload_time is None or f.upload_time > newest)
