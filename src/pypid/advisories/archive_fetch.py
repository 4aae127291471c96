"""
Fetching the advisories' archive from C{[advisories] url}: a conditional
GET (the kept copy's C{ETag} and C{Last-Modified}, or after a restart its
date), within a timeout to start, a deadline to finish and a size, and the
answer kept beside the snapshot whole or not at all, only once it reads
within the archive's limits (L{pypid.advisories.osv_archive}).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from email.utils import formatdate, parsedate_to_datetime

from twisted.internet.defer import CancelledError
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.client import ResponseFailed
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent

from pypid.advisories.osv_archive import ArchiveLimits, ArchiveRefused, Tally, records
from pypid.http.bodies import BodyError, describe, discard, read_body
from pypid.jobs.run import Run

#: (the namespace its lines had before it was a module of its own)
log = Logger(namespace="pypid.advisories.feed")

#: Seconds an answer of the URL may take to start, and its body may be silent.
FETCH_TIMEOUT = 60.0

#: Seconds one fetch of the URL may take in all, however steadily it trickles.
FETCH_DEADLINE = 600.0


class ArchiveFetch:
    """The fetches of the URL's archive into C{saved}, counted by their result with C{count}."""

    def __init__(self, run: Run, clock: IReactorTime, saved: str,
                 agent: Callable[[], IAgent] | None, count: Callable[[str], None]) -> None:
        """
        @param agent: makes the HTTP agent, when one is first needed
            (L{None}: the URL is never fetched).
        """
        self._run = run
        self._clock = clock
        self._saved = saved
        self._make_agent = agent
        self._agent: IAgent | None = None
        self._count = count
        #: the validators of the kept copy's answer; L{None} until one is
        #: fetched (the kept copy's date is then its C{If-Modified-Since})
        self._validators: dict[str, str] | None = None

    def forget(self) -> None:
        """The kept copy was refused: the next fetch takes the URL's archive whole."""
        self._validators = {}

    async def fetch(self, url: str, max_size: int, limits: ArchiveLimits) -> None:
        """Fetch the URL's archive if it changed, and keep it beside the snapshot."""
        if self._agent is None:
            if self._make_agent is None:
                return
            self._agent = self._make_agent()
        headers = Headers({b"user-agent": [b"pypid"]})
        validators = self._validators
        kept = await self._run(kept_copy, self._saved, url)
        if kept is None:
            # (a copy of another URL's, or none: this one's is fetched whole)
            validators = {}
        elif validators is None:
            # (after a restart: the kept copy is dated by its answer's Last-Modified)
            validators = {"modified": formatdate(kept, usegmt=True)}
        for name, key in ((b"if-none-match", "etag"), (b"if-modified-since", "modified")):
            if key in validators:
                headers.setRawHeaders(name, [validators[key].encode("latin-1")])
        request = self._agent.request(b"GET", url.encode("ascii"), headers)
        timeout = self._clock.callLater(FETCH_TIMEOUT, request.cancel)
        # (a server that trickles its answer is cut off at the deadline:
        # while a fetch runs, every other read waits)
        deadline = self._clock.seconds() + FETCH_DEADLINE
        try:
            response = await request
        except Exception as e:
            self._count("unreachable")
            log.warn("Cannot fetch the advisories from {url}: {error}", url=url,
                     error=describe(e) if isinstance(e, (BodyError, ResponseFailed)) else str(e))
            return
        finally:
            if timeout.active():
                timeout.cancel()
        if response.code == 304:
            return
        if response.code != 200:
            self._count("unreachable")
            log.warn("Cannot fetch the advisories from {url}: {code}", url=url, code=response.code)
            discard(response, self._clock, FETCH_TIMEOUT)
            return
        reading = read_body(response, max_size, self._clock, FETCH_TIMEOUT)
        cutoff = self._clock.callLater(max(deadline - self._clock.seconds(), 0), reading.cancel)
        try:
            body = await reading
        except CancelledError:
            self._count("unreachable")
            log.warn("Cannot fetch the advisories from {url}: no answer whole within "
                     "{deadline:g} s", url=url, deadline=FETCH_DEADLINE)
            return
        except BodyError as e:
            self._count("refused")
            log.error("Not taking the advisories of {url}: {error}", url=url, error=describe(e))
            return
        finally:
            if cutoff.active():
                cutoff.cancel()
        validators = {}
        for name, key in ((b"etag", "etag"), (b"last-modified", "modified")):
            value = response.headers.getRawHeaders(name, [None])[0]
            if value is not None and len(value) < 200:
                validators[key] = value.decode("latin-1")
        try:
            await self._run(_keep_checked, self._saved, body, limits,
                            _date(validators.get("modified")), url)
        except ArchiveRefused as e:
            self._count("refused")
            log.error("Not taking the advisories of {url}: {error}", url=url, error=str(e))
            return
        self._validators = validators


def _date(header: str | None) -> float | None:
    """The Unix time of an HTTP date, or L{None}."""
    if header is None:
        return None
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return when.timestamp() if when.tzinfo is not None else None


def _keep_checked(path: str, data: bytes, limits: ArchiveLimits,
                  modified: float | None, url: str) -> None:
    """
    Write the archive C{data} to C{path} whole or not at all, and only if
    it is read within C{limits} (else L{ArchiveRefused}), dated C{modified}
    (its answer's C{Last-Modified}: a restart asks from that date).
    """
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = f"{path}.part"
    try:
        with open(temporary, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            for _ in records(temporary, limits, Tally()):
                pass
        except ArchiveRefused as e:
            raise ArchiveRefused(f"the answer is refused: {str(e).replace(temporary, 'it')}")
        if modified is not None:
            os.utime(temporary, (modified, modified))
        os.replace(temporary, path)
        # (which URL the copy is of: a copy of another is never read for
        # this one; written after the copy, so a crash between leaves a
        # copy that is fetched again whole)
        with open(f"{path}.url.part", "wb") as f:
            f.write(url.encode("utf-8"))
        os.replace(f"{path}.url.part", f"{path}.url")
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def kept_copy(saved: str, url: str) -> float | None:
    """
    The time of the kept copy C{saved} when it is C{url}'s (the URL it was
    fetched from is kept beside it), or L{None} (in the thread pool).
    """
    try:
        with open(f"{saved}.url", "rb") as f:
            if f.read(4096).decode("utf-8", "replace") != url:
                return None
        return os.stat(saved).st_mtime
    except OSError:
        return None
