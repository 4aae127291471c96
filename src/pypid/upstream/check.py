"""
C{pypid-upstream check}: one page and one file fetched through an
upstream's client, as the cache would fetch them, and one line that says
what works and what to set (a new user's first question is "why
does nothing come through", and the answer is a key of C{[upstream]}).
Nothing is cached, so a check never changes what the server serves.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

import attrs

from pypid.upstream.fetch import (
    AccessRefused,
    TransferFailed,
    UpstreamClient,
    UpstreamError,
    UpstreamNotFound,
)
from pypid.upstream.page_model import UpstreamFile, UpstreamPage

#: The project checked when none is named: the installer itself, which
#: every public index and most mirrors hold.
DEFAULT_PROJECT = "pip"


@attrs.frozen
class UpstreamCheck:
    """What one upstream's check found."""

    #: the upstream's name (C{default} for C{[upstream]})
    name: str
    #: whether a page and a file came through
    ok: bool
    line: str
    #: the file fetched (or tried), or L{None}
    filename: str | None = None

    def to_json(self) -> dict[str, object]:
        """The JSON object of the answer."""
        return attrs.asdict(self)


def _advice(error: Exception, section: str) -> str:
    """What to set for an upstream that did not answer with a page."""
    if isinstance(error, AccessRefused):
        return error.advice
    if isinstance(error, TransferFailed):
        return (f"check [{section}] url and the network (and [pypid] ca_bundle if its "
                "certificate comes from a private CA)")
    return f"check [{section}] url"


def smallest(page: UpstreamPage) -> UpstreamFile | None:
    """The file of C{page} cheapest to fetch: the smallest that says its size, else the last."""
    sized = [f for f in page.files if f.size is not None]
    if sized:
        return min(sized, key=lambda f: (f.size, f.filename))
    return page.files[-1] if page.files else None


async def check(client: UpstreamClient, name: str, section: str, project: str,
                max_size: int) -> UpstreamCheck:
    """
    Fetch the page of C{project} and its smallest file through C{client};
    the file is read whole (up to C{max_size}) and held to the page's hash.
    """
    def failed(line: str, filename: str | None = None) -> UpstreamCheck:
        return UpstreamCheck(name, False, f"{name}: {line}", filename)

    try:
        page = await client.page(project)
    except UpstreamNotFound:
        return failed(f"the upstream at {client.index_url} answers, but has no project "
                      f"{project}: check one it has (pypid-upstream check PROJECT)")
    except UpstreamError as e:
        return failed(f"the page of {project} cannot be fetched: {e}; {_advice(e, section)}")
    count = len(page.files)
    listed = f"the page of {project} lists {count:,} file{'' if count == 1 else 's'}"
    entry = smallest(page)
    if entry is None:
        return failed(f"{listed}: no file to fetch; check another project "
                      "(pypid-upstream check PROJECT)")
    host = urlsplit(entry.url).netloc
    try:
        body = await client.small(entry.url, max_size, f"the file {entry.filename}")
    except UpstreamNotFound:
        return failed(f"{listed}, but {host} has no {entry.filename} (404): the upstream's "
                      "pages and files disagree", entry.filename)
    except UpstreamError as e:
        return failed(f"{listed}, but its files cannot be fetched: {e}", entry.filename)
    if hashlib.sha256(body).hexdigest() != entry.sha256:
        return failed(f"{listed}, but {entry.filename} from {host} is not what the page's "
                      "sha256 says", entry.filename)
    return UpstreamCheck(name, True, f"{name}: works: {listed}, and {entry.filename} came "
                                     f"whole from {host} ({len(body):,} bytes, sha256 checked)",
                         entry.filename)
