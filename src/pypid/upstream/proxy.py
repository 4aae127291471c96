"""
Serving projects that are not hosted here from the upstream index.

In C{cache} mode an upstream project's page is fetched (through the
L{PageCache}: one request per miss, stale pages while refreshing), shown
as pypid's own page in both forms with file links to pypid, and a file is
fetched on its first download, checked against the page's sha256 (and
size), kept in the cache storage, and served from there ever after. Only
files listed by a cached page are ever fetched, from the upstream's hosts
only (L{pypid.upstream.fetch}). What may be asked upstream at all is
decided by L{pypid.upstream.confusion}.
"""

import hashlib
import os
import secrets

import attrs
from twisted.internet.defer import Deferred, ensureDeferred, fail, succeed
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss

from pypid.core import render
from pypid.core.bounded import put_newest
from pypid.core.distribution import file_digests, inspect
from pypid.core.index import version_key
from pypid.core.lru import ByteLRU
from pypid.core.metadata import InvalidDistribution
from pypid.core.metrics import Timings, by_label, gauge, timing_families
from pypid.core.model import FileRecord
from pypid.core.names import InvalidName, normalize
from pypid.core.render import CONTENT_TYPES, HTML, Page
from pypid.core.rendered_pages import page_bytes
from pypid.http import bodies
from pypid.storage.disk import remove_file
from pypid.storage.interface import FileExists, FilenameDeleted, StorageError
from pypid.upstream.admission import Admission
from pypid.upstream.budget import MissBudget
from pypid.upstream.cache import Offline, again, recent, remembered
from pypid.upstream.confusion import merged
from pypid.upstream.fetch import TransferFailed, UpstreamError, UpstreamNotFound
from pypid.upstream.requirements import select

log = Logger()

#: Upstream core metadata kept in memory (bytes, all files together).
METADATA_MEMORY = 32 << 20

#: How often, with a cooldown, what a cached page shows is worked out again.
RECHECK = 60.0

#: The most bytes of upstream core metadata read for one file.
METADATA_LIMIT = 16 << 20

#: The most upstream projects whose rendered pages (and the files they show)
#: are kept; past it the oldest rendered is forgotten, and rendered again
#: from its cached entry when asked. Clients choose the
#: names, so without a cap this grew with every project ever asked for, and
#: kept pages alive after the L{PageCache} had dropped their entries.
MAX_RENDERED = 2000

#: The most bytes of rendered upstream pages kept (both forms and their
#: gzip copies, all projects together): a few big projects' pages are
#: megabytes each, so the count alone does not bound the memory.
RENDERED_MEMORY = 64 << 20


#: The most upstream files whose failed download is remembered
#: (L{pypid.upstream.cache.FAILURE_MEMORY}); past it the oldest are forgotten.
MAX_FAILED_FILES = 2000

#: The most changes of an upstream file's hash remembered as logged.
MAX_CHANGES_LOGGED = 2000

#: Downloads that may wait for a turn, per download allowed at once
#: (C{[upstream] max_downloads}); past it a new one is answered 503.
WAITING_PER_DOWNLOAD = 10


class DownloadsBusy(Exception):
    """Too many upstream downloads wait already: try again shortly (503)."""


def _held(filename, data):
    """What one kept metadata file (and its digest) costs against L{METADATA_MEMORY}."""
    return len(data) + len(filename) + 300


class VerifyError(UpstreamError):
    """What the upstream sent is not what its page promised; nothing is kept."""


def _open_temp(folder):
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"upstream-{secrets.token_hex(8)}")
    return path, open(path, "wb")


def _metadata_url(url):
    """PEP 658: the metadata is at the file's URL plus C{.metadata} (before any query)."""
    path, sep, query = url.partition("?")
    return path + ".metadata" + sep + query


class _ToFile(Protocol):
    """
    Writes a body to a file in the thread pool, in order, pausing the
    transfer while too much waits to be written, with an idle deadline.
    """

    def __init__(self, f, run, clock, idle, limit, done, high=4 << 20, tee=None):
        self._tee = tee
        self._holds = set()
        self._client_timer = None
        self._f = f
        self._run = run
        self._clock = clock
        self._idle = idle
        self._limit = limit
        self._done = done
        self._high = high
        self._queued = 0
        self._size = 0
        self._paused = False
        self._chain = None
        self._error = None
        self._deadline = bodies.Deadline(clock, idle, self._stalled)

    def connectionMade(self):
        self._chain = succeed(None)
        self._deadline.arm()
        if self._tee is not None:
            self._tee.start(self)

    def dataReceived(self, data):
        if self._error is not None:
            return
        self._size += len(data)
        if self._size > self._limit:
            self._fail(VerifyError(f"the upstream sent more than {self._limit} bytes"))
            return
        self._deadline.arm()
        if self._tee is not None:
            self._tee.write(data)
        self._queued += len(data)
        if self._queued > self._high:
            self.hold("disk")
        self._chain.addCallback(lambda _: self._run(self._f.write, data))
        self._chain.addCallback(self._written, len(data))

    def _written(self, _, length):
        self._queued -= length
        if self._queued < self._high // 4:
            self.release("disk")

    def hold(self, reason):
        """Pause the transfer (the disk, or the client being fed, is behind)."""
        if not self._holds and self._error is None:
            self._deadline.disarm()
            self.transport.pauseProducing()
        self._holds.add(reason)
        if reason == "client" and self._client_timer is None:
            # The download is shared (the cache, other clients wait for it):
            # a client that stops reading is dropped after a while.
            self._client_timer = self._clock.callLater(self._idle, self._drop_client)

    def _drop_client(self):
        self._client_timer = None
        tee, self._tee = self._tee, None
        if tee is not None:
            log.warn("Dropping a client that stopped reading while its file was fetched")
            tee.abort()
        self.release("client")

    def release(self, reason):
        """Let the transfer go on once nothing holds it."""
        if reason == "client" and self._client_timer is not None:
            if self._client_timer.active():
                self._client_timer.cancel()
            self._client_timer = None
        if reason not in self._holds:
            return
        self._holds.discard(reason)
        if not self._holds and self._error is None:
            self._deadline.arm()
            self.transport.resumeProducing()

    def connectionLost(self, reason):
        self._deadline.disarm()
        if self._client_timer is not None and self._client_timer.active():
            self._client_timer.cancel()
        self._client_timer = None
        if self._error is None and not reason.check(ResponseDone, PotentialDataLoss):
            self._error = TransferFailed(
                f"the download was cut short: {bodies.describe(reason.value)}")
        error = self._error

        def finished(_):
            if error is not None:
                raise error
            return self._size
        self._chain.addCallback(finished)
        self._chain.chainDeferred(self._done)

    def _fail(self, error):
        self._error = error
        self._deadline.disarm()
        self.transport.stopProducing()

    def _stalled(self):
        self._fail(TransferFailed(f"the upstream sent nothing for {self._idle:g} s"))

    def overdue(self, deadline):
        """The whole download took too long, however steadily bytes came."""
        if self._error is None and self.transport is not None:
            self._fail(TransferFailed(f"the download took longer than {deadline:g} s "
                                      "([upstream] fetch_deadline)"))


@attrs.define
class UpstreamProxy:
    """
    The upstream side of the index.

    @ivar config: the L{pypid.config.upstream_settings.UpstreamConfig}.
    @ivar policy: the L{pypid.upstream.confusion.UpstreamPolicy}.
    @ivar pages: the L{pypid.upstream.cache.PageCache}.
    @ivar client: the L{pypid.upstream.fetch.UpstreamClient}.
    @ivar storage: where fetched files are kept (an L{IStorage} of its own).
    @ivar index: the hosted L{pypid.core.index.Index} (what is hosted is never
        asked upstream).
    @ivar file_url: C{file_url(record) -> str}, as for hosted files.
    @ivar cached: C{{filename: FileRecord}} of the files kept in C{storage}.
    """

    config: object
    policy: object
    pages: object
    client: object
    storage: object
    index: object
    file_url: object
    run: object
    clock: object
    on_close: object = None
    #: called (without arguments) when a file was kept, so that the
    #: snapshot is saved soon (the L{PageCache} is given the same)
    on_change: object = None
    cached: dict = attrs.field(factory=dict)
    # project -> (entry, {kind: Page}, shown files, when worked out), the
    # oldest worked out first, counted the bytes of its pages
    _rendered: ByteLRU = attrs.field(
        factory=lambda: ByteLRU(RENDERED_MEMORY, max_entries=MAX_RENDERED))
    _downloads: dict = attrs.field(factory=dict)
    # filename -> (metadata, its sha256), the oldest fetched first
    _metadata: ByteLRU = attrs.field(factory=lambda: ByteLRU(METADATA_MEMORY))
    _merges: dict = attrs.field(factory=dict)
    _admission: object = attrs.field(init=False, default=None)
    #: the per-address budget of requests that ask the upstream
    misses: object = attrs.field(init=False, default=None)
    # filename -> (when, error) of downloads that failed, but not on the way
    # (FAILURE_MEMORY)
    _failed: dict = attrs.field(factory=dict)
    # (filename, upstream sha256) whose change of hash was logged
    _changed: dict = attrs.field(factory=dict)
    # project -> the filenames the cooldown hid when last logged
    _hidden: dict = attrs.field(factory=dict)
    _cached_count: int = 0
    #: how files were served, for C{/metrics}: C{hit} (kept already),
    #: C{miss} (fetched from the upstream), C{unavailable} (offline)
    files_served: dict = attrs.field(factory=lambda: {"hit": 0, "miss": 0, "unavailable": 0})
    #: the upstream fetches of files: count, failures, latency
    timings: Timings = attrs.field(factory=Timings)

    def __attrs_post_init__(self):
        self._admission = Admission(self.config.max_downloads, self.config.download_space)
        self.misses = MissBudget(self.config.max_misses_per_address)
        # (a page the cache forgot is not kept alive by its rendered forms)
        self.pages.on_drop = self._dropped

    def _dropped(self, project):
        self._rendered.pop(project)

    def charge(self, address, project, filename=None, metadata=False):
        """
        Charge C{address} for a request about C{project} (or its file
        C{filename}, or that file's C{metadata}) if answering it means
        asking the upstream now (L{pypid.upstream.budget}).

        @return: L{None}, or the seconds to wait before asking again.
        """
        if filename is None:
            asks = self.pages.would_fetch(project)
        else:
            asks = (not self.config.offline and filename not in self.cached
                    and not (metadata and filename in self._metadata)
                    and filename not in self._downloads
                    and self._failed_lately(filename) is None
                    and (self.listed(project, filename) is not None
                         or self.pages.would_fetch(project)))
        return self.misses.charge(address, self.clock.seconds()) if asks else None

    def _failed_lately(self, filename):
        """The failure of C{filename}'s download still remembered (L{remembered}), or L{None}."""
        failed = self._failed.get(filename)
        if failed is not None and recent(failed[0], self.clock.seconds()):
            return failed[1]
        return None

    @property
    def mode(self):
        """C{none}, C{redirect} or C{cache}."""
        return self.config.mode

    def merges(self, project):
        """Whether the hosted C{project} shows upstream files too (C{merge})."""
        found = self._merges.get(project)
        if found is None:
            found = self._merges[project] = (self.mode == "cache"
                                             and self.policy.decide(project, True).merge)
        return found

    def close(self):
        """Drop the connections to the upstream (at the end of the service's life)."""
        if self.on_close is not None:
            self.on_close()

    def may_serve(self, record):
        """
        Whether a kept upstream file may be served now: its project is not
        hosted, or merges upstream files and no hosted file shadows it.
        """
        hosted = self.index.project(record.project)
        if hosted is None:
            return self.decide(record.project).allowed
        return self.merges(record.project) and bool(merged(hosted.files.values(), [record]))

    def redirect_url(self, project):
        """Where C{redirect} mode sends a client for C{project}'s page."""
        return f"{self.client.index_url}{project}/"

    def kept(self, filename):
        """The L{FileRecord} of an upstream file kept in the cache, or L{None}."""
        return self.cached.get(filename)

    def locate(self, record):
        """Where a kept file is served from (see L{IStorage.locate})."""
        return self.storage.locate(record)

    def decide(self, name):
        """May the upstream be asked about C{name}? (a L{Decision})"""
        hosted = self.index.project(normalize(name)) is not None
        return self.policy.decide(name, hosted)

    # -- pages ---------------------------------------------------------------------

    async def upstream_page(self, project, kind):
        """
        The page of an upstream project, rendered as pypid's own.

        @return: C{(Page, age in seconds, stale)}, or L{None} when the
            upstream has no such project.
        @raise UpstreamError: not cached and the upstream failed.
        @raise pypid.upstream.cache.Offline: not cached, offline.
        """
        entry, stale = await self.pages.get(project)
        if entry.page is None:
            return None
        return (self._render(project, entry, kind),
                max(self.clock.seconds() - entry.fetched_at, 0.0), stale)

    async def merged_page(self, hosted, kind):
        """
        The page of a hosted project that C{merge} allows upstream files
        into: the hosted files, and the upstream files that no hosted file
        shadows (same filename, or the same distribution spelled otherwise).
        While the upstream cannot be reached, the hosted files alone.

        @param hosted: the hosted L{pypid.core.index.Project}.
        @return: C{(Page, stale)}.
        """
        try:
            entry, stale = await self.pages.get(hosted.name)
        except (UpstreamError, Offline) as e:
            log.warn("Showing {project} without its upstream files: {error}",
                     project=hosted.name, error=str(e))
            entry, stale = None, True
        key = ("merged", kind)
        page = self.index.rendered.extra_page(hosted, key)
        if page is not None and page[1] is entry:
            return page[0], stale
        records = hosted.sorted_files()
        extra = ()
        if entry is not None and entry.page is not None:
            shown = self._shown_of(hosted.name, entry)
            extra = merged(records, shown.values())
        files = sorted([*records, *extra], key=lambda f: (version_key(f.version), f.filename))
        pairs = [(f, self.file_url(f)) for f in files]
        if kind == HTML:
            body = render.project_html(hosted.name, pairs)
        else:
            versions = sorted({f.version for f in files}, key=version_key)
            body = render.project_json(hosted.name, pairs, versions)
        page = Page.of(body, CONTENT_TYPES[kind])
        self.index.rendered.keep_page(hosted, key, (page, entry))
        return page, stale

    def _shown_of(self, project, entry):
        return self._memo(project, entry)[2]

    def _memo(self, project, entry):
        """
        The files of an entry clients see, and its rendered pages; worked
        out again for a new entry, and every minute with a cooldown (a file
        becomes visible once it is old enough, not only at a refresh).
        """
        memo = self._rendered.peek(project)
        now = self.clock.seconds()
        if (memo is None or memo[0] is not entry
                or (self.policy.min_age and now - memo[3] >= RECHECK)):
            memo = (entry, {}, self._shown(entry), now)
            # (the newest, past the oldest: L{MAX_RENDERED}, L{RENDERED_MEMORY})
            self._rendered.put(project, memo, 0, keep=True)
        return memo

    def _render(self, project, entry, kind):
        memo = self._memo(project, entry)
        page = memo[1].get(kind)
        if page is None:
            files = [(f, self.file_url(f)) for f in memo[2].values()]
            if kind == HTML:
                body = render.project_html(project, files)
            else:
                versions = sorted({f.version for f in memo[2].values()}, key=version_key)
                body = render.project_json(project, files, versions)
            page = memo[1][kind] = Page.of(body, CONTENT_TYPES[kind])
            # (counted where it stands; the page just rendered is kept, however big)
            self._rendered.put(project, memo, sum(page_bytes(p) for p in memo[1].values()),
                               keep=True, move=False)
        return page

    def _shown(self, entry):
        """The files of an entry clients see, by filename, in page order."""
        kept, hidden = self.policy.visible(entry.page, self.clock.seconds())
        names = frozenset(f.filename for f in hidden)
        if hidden and self._hidden.get(entry.page.project) != names:
            # (a project forgotten here only logs its hidden files once more)
            put_newest(self._hidden, entry.page.project, names, MAX_RENDERED)
            log.info("Hiding {count} files of {project} uploaded upstream less than "
                     "{min_age:g} s ago (min_age): {names}", count=len(hidden),
                     project=entry.page.project, min_age=self.policy.min_age,
                     names=" ".join(f.filename for f in hidden))
        ordered = sorted(kept, key=lambda f: (version_key(f.version), f.filename))
        return {f.filename: self._as_kept(f) for f in ordered}

    def _as_kept(self, f):
        """
        A listed file as clients are shown it: when a file of that name is
        kept with other bytes than the page now gives, the kept file's hash,
        size and metadata, so that page and bytes always agree.

        The bytes once checked and kept win over the upstream's new claim:
        a file that changes under its name is what a compromised or
        careless upstream does, and an index that followed it would pass a
        replaced file to every client whose lock file did not pin it. The
        change is logged as an error, once per new hash. A filename is never
        reused on the public index either, so an upstream that does it is
        broken or compromised; an operator who trusts the new bytes removes
        the kept file from the cache's folder while pypid is stopped.
        """
        stored = self.cached.get(f.filename)
        if stored is None or stored.sha256 == f.sha256:
            return f
        key = (f.filename, f.sha256)
        if key not in self._changed:
            put_newest(self._changed, key, True, MAX_CHANGES_LOGGED)
            log.error("The upstream now gives {filename} the sha256 {new}, but the file kept "
                      "here has {old}: serving the kept file, as checked when it was "
                      "fetched (docs/operations.rst, \"A file that changes upstream\").",
                      filename=f.filename, new=f.sha256, old=stored.sha256)
        return attrs.evolve(f, sha256=stored.sha256, size=stored.size,
                            metadata_sha256=stored.metadata_sha256)

    def known(self, project):
        """
        What the cache knows of an upstream project, without asking the
        upstream (for the pages for people): C{(entry, files)}, the files
        clients are shown of the cached page, or L{None}.
        """
        if self.mode != "cache":
            return None
        entry = self.pages.entries.get(project)
        if entry is None or entry.page is None:
            return None
        return entry, tuple(self._shown_of(project, entry).values())

    def listed(self, project, filename):
        """The upstream file C{filename} if a cached page of C{project} shows it."""
        entry = self.pages.entries.get(project)
        if entry is None or entry.page is None:
            return None
        found = self._shown_of(project, entry).get(filename)
        hosted = self.index.project(project)
        if found is not None and hosted is not None and not merged(hosted.files.values(),
                                                                   [found]):
            return None  # a hosted file wins
        return found

    # -- files ---------------------------------------------------------------------

    def fetch(self, upstream_file, tee=None):
        """
        The stored record of an upstream file, fetching it first if needed:
        one download per file however many ask at once.

        @param tee: when this call starts the download, the bytes are also
            given to C{tee} as they arrive (see L{pypid.web.upstream_pages}): the
            first client is served while the file is fetched. Its C{start},
            C{write}, C{finish} and C{abort} are called; C{started} says
            whether it was used.
        @rtype: L{Deferred} firing with a L{FileRecord}
        """
        stored = self.cached.get(upstream_file.filename)
        if stored is not None:
            self.files_served["hit"] += 1
            return succeed(stored)
        if self.config.offline:
            self.files_served["unavailable"] += 1
            return fail(Offline(upstream_file.filename))
        self.files_served["miss"] += 1
        d = Deferred()
        waiting = self._downloads.get(upstream_file.filename)
        if waiting is not None:
            waiting.append(d)
            return d
        failed = self._failed_lately(upstream_file.filename)
        if failed is not None:
            # (a file that just failed its hash is not asked for again at
            # every request: each would stream the wrong bytes)
            return fail(again(failed))
        if self._admission.waiting >= WAITING_PER_DOWNLOAD * self.config.max_downloads:
            return fail(DownloadsBusy(f"{self._admission.waiting} upstream downloads are waiting "
                             "already; try again shortly"))
        self._downloads[upstream_file.filename] = [d]
        done = ensureDeferred(self._download(upstream_file, tee))
        done.addBoth(self._downloaded, upstream_file.filename)
        return d

    def _downloaded(self, result, filename):
        if (isinstance(result, Failure) and result.check(UpstreamError)
                and not result.check(TransferFailed)):
            # (bytes that were wrong, more than allowed, or an answer that is
            # not a file: asking again at once would stream them again; a
            # transfer cut short or too slow is tried again at the next
            # request, as pip's retries expect)
            put_newest(self._failed, filename,
                       (self.clock.seconds(), remembered(result.value)), MAX_FAILED_FILES)
        for d in self._downloads.pop(filename):
            if isinstance(result, Failure):
                d.errback(result)
            else:
                d.callback(result)

    async def _download(self, f, tee=None):
        started = self.clock.seconds()
        try:
            stored = await self._download_to_storage(f, tee)
        except BaseException:
            self.timings.record("file", self.clock.seconds() - started, failed=True)
            if tee is not None:
                tee.abort()
            raise
        self.timings.record("file", self.clock.seconds() - started)
        if tee is not None:
            tee.finish()
        return stored

    async def _download_to_storage(self, f, tee):
        # The cap is the smaller of the page's claim and max_file_size: a
        # page claiming a terabyte once lifted it, and an endless body
        # streamed gigabytes. A body longer than its claim is cut there.
        most = self.config.max_file_size
        if f.size is not None and f.size > most:
            raise VerifyError(f"{f.filename} is {f.size} bytes, more than [upstream] "
                              f"max_file_size ({most})")
        limit = f.size if f.size is not None else most
        await self._admission.acquire(limit)
        try:
            return await self._transfer(f, tee, limit)
        finally:
            self._admission.release(limit)

    async def _transfer(self, f, tee, limit):
        started = self.clock.seconds()
        response = await self.client.open(f.url)
        try:
            temp, handle = await self.run(_open_temp, self.storage.temp_dir)
        except BaseException:
            bodies.discard(response, self.clock, self.config.timeout)
            raise
        try:
            try:
                done = Deferred()
                transfer = _ToFile(handle, self.run, self.clock, self.config.timeout, limit,
                                   done, tee=tee)
                left = max(self.config.fetch_deadline - (self.clock.seconds() - started), 0.0)
                timer = self.clock.callLater(left, transfer.overdue,
                                             self.config.fetch_deadline)
                response.deliverBody(transfer)
                try:
                    await done
                finally:
                    if timer.active():
                        timer.cancel()
            finally:
                await self.run(handle.close)
            digests = await self.run(file_digests, temp)
            size, sha256 = digests[0], digests[1]
            if sha256 != f.sha256 or (f.size is not None and size != f.size):
                log.warn("Not keeping {filename} from the upstream: it has sha256 {got} "
                         "and {size} bytes, its page said {want}", filename=f.filename,
                         got=sha256, size=size, want=f.sha256)
                raise VerifyError(f"{f.filename} from the upstream does not match the "
                                  "hash its page gives")
            upload_time = f.upload_time if f.upload_time is not None else self.clock.seconds()
            try:
                # (with its details: the page of an upstream project shows
                # the description of the files the cache keeps)
                inspected = await self.run(inspect, temp, f.filename, f.filename,
                                           upload_time, digests, True, True)
            except (InvalidName, InvalidDistribution) as e:
                raise VerifyError(f"{f.filename} from the upstream is not a valid "
                                  f"distribution: {e}")
            record = inspected.record.replace(yanked=f.yanked)
            try:
                stored = await self.storage.publish(temp, record, inspected.metadata,
                                                    inspected.details)
            except FileExists as e:
                # (another server sharing the cache, or an earlier run, kept
                # it: what storage holds is the truth, not these bytes)
                if e.record is not None:
                    stored = e.record
                elif e.sha256 in (None, record.sha256):
                    stored = record
                else:
                    raise VerifyError(f"another file named {f.filename} is kept already "
                                      f"(sha256 {e.sha256})")
            except FilenameDeleted:
                raise VerifyError(f"{f.filename} was deleted from the cache's storage; "
                                  "it is not kept again")
            self._keep(stored)
            log.info("Cached {filename} from the upstream ({size} bytes)",
                     filename=f.filename, size=size)
            return stored
        finally:
            await self.run(remove_file, temp)

    async def metadata(self, project, upstream_file):
        """
        The core metadata of an upstream file: from the stored file when it
        was fetched, else the upstream's C{.metadata}, checked against the
        page's hash and kept in memory.

        @return: bytes, or L{None} when the upstream offers none.
        """
        stored = self.cached.get(upstream_file.filename)
        if stored is not None and stored.metadata_sha256 is not None:
            data = await self.storage.read_metadata(stored)
            if upstream_file.metadata_sha256 in ("", hashlib.sha256(data).hexdigest()):
                return data
        if upstream_file.metadata_sha256 is None:
            return None
        kept = self._metadata.peek(upstream_file.filename)
        if kept is not None and upstream_file.metadata_sha256 in ("", kept[1]):
            # (kept under the hash it has: a page that now gives another is
            # answered with the metadata fetched anew)
            return kept[0]
        if self.config.offline:
            raise Offline(upstream_file.filename)
        data = await self.client.small(_metadata_url(upstream_file.url), METADATA_LIMIT,
                                       f"the upstream's metadata of {upstream_file.filename}")
        digest = hashlib.sha256(data).hexdigest()
        if upstream_file.metadata_sha256 and digest != upstream_file.metadata_sha256:
            raise VerifyError(f"the upstream's metadata of {upstream_file.filename} does not "
                              "match the hash its page gives")
        self._keep_metadata(upstream_file.filename, data, digest)
        return data

    def _keep_metadata(self, filename, data, digest=None):
        # (each entry costs its dictionary slot and name too, so that many
        # tiny metadata files cannot grow the count without bound)
        self._metadata.put(filename, (data, digest or hashlib.sha256(data).hexdigest()),
                           _held(filename, data), keep=True)

    # -- pre-caching and refreshing -------------------------------------------------

    async def refresh(self, project):
        """
        Fetch a project's page again now (an administrator asked).

        @return: the new L{CachedPage}.
        @raise UpstreamError: the upstream failed (the old page stays).
        """
        return await self.pages.refresh(project)

    async def precache(self, pins):
        """
        Fetch into the cache every file the pins select (and with it its
        metadata), checking hashes as for any download.

        @param pins: L{pypid.upstream.requirements.Pin}s.
        @return: a report: one dict per project or file, with C{status}
            C{cached} (fetched now), C{kept} (cached before), C{refused},
            C{missing} or C{failed}, and a C{reason} for the last three.
        """
        report = []
        for pin in pins:
            decision = self.decide(pin.project)
            if not decision.allowed:
                report.append({"project": pin.project, "status": "refused",
                               "reason": decision.reason})
                continue
            try:
                entry, _ = await self.pages.get(pin.project)
            except (UpstreamError, Offline) as e:
                report.append({"project": pin.project, "status": "failed",
                               "reason": str(e) or "the server is offline"})
                continue
            if entry.page is None:
                report.append({"project": pin.project, "status": "missing",
                               "reason": "the upstream has no such project"})
                continue
            shown = list(self._shown_of(pin.project, entry).values())
            hosted = self.index.project(pin.project)
            if hosted is not None:
                shown = list(merged(hosted.files.values(), shown))
            chosen = select(pin, shown)
            if not chosen:
                report.append({"project": pin.project, "status": "missing",
                               "reason": "no upstream file matches "
                               + (f"version {pin.version}" if pin.version else "it")})
                continue
            for f in chosen:
                known = f.filename in self.cached
                try:
                    await self.fetch(f)
                except (UpstreamError, UpstreamNotFound, StorageError, Offline,
                        DownloadsBusy) as e:
                    report.append({"project": pin.project, "filename": f.filename,
                                   "status": "failed", "reason": str(e)})
                    continue
                report.append({"project": pin.project, "filename": f.filename,
                               "status": "kept" if known else "cached"})
        return report

    # -- start-up and the snapshot ------------------------------------------------

    async def load(self, state=None, since=0.0):
        """
        Prepare the cache storage and learn what it holds, starting from the
        records and pages of a snapshot's C{state} (storage stays the truth:
        what changed since C{since} is read again).
        """
        known = {}
        if isinstance(state, dict):
            for data in state.get("files") or ():
                try:
                    record = FileRecord.from_json(data)
                except (TypeError, ValueError):
                    continue
                known[record.filename] = record
                # (before the pages: those of kept files are kept last)
                self.pages.pin(record.project)
            self.pages.load_json(state.get("pages"))
        await self.storage.prepare()
        result = await self.storage.scan(known, since if known else 0.0, ())
        self.cached = {}
        for record in result.records.values():
            self._keep(record, announce=False)
        log.info("Upstream cache: {count} files kept", count=len(self.cached))

    def _keep(self, record, announce=True):
        """A file is kept: its page is kept past every other (L{PageCache.pin})."""
        self.cached[record.filename] = record
        self.pages.pin(record.project)
        memo = self._rendered.peek(record.project)
        if memo is not None:
            shown = memo[2].get(record.filename)
            if shown is not None and shown.sha256 != record.sha256:
                # (kept with other bytes than the page listed: the page
                # shows what is kept from now on, L{_as_kept})
                self._rendered.pop(record.project)
        if announce and self.on_change is not None:
            self.on_change()

    def state(self):
        """The cached pages and files, JSON-ready, for the snapshot."""
        self.pages.changed = False
        self._cached_count = len(self.cached)
        return {"pages": self.pages.to_json(),
                "files": [record.to_json() for record in self.cached.values()]}

    def metric_families(self):
        """Pages and files asked for and how they were served, what is kept, and the fetches."""
        yield by_label("pypid_upstream_pages", "Upstream project pages asked for, by how they "
                       "were served (hit, stale, miss, unavailable).", "result",
                       self.pages.served)
        yield by_label("pypid_upstream_files", "Upstream files asked for, by how they were "
                       "served (hit: kept already, miss: fetched, unavailable: offline).",
                       "result", self.files_served)
        yield gauge("pypid_upstream_cached_pages", "Upstream project pages cached.",
                    len(self.pages.entries))
        yield gauge("pypid_upstream_cached_files", "Upstream files kept.", len(self.cached))
        yield from timing_families(("pypid_upstream_fetches", "pypid_upstream_fetch_errors",
                                    "pypid_upstream_fetch_duration_seconds"),
                                   "Fetches from the upstream", ("kind",),
                                   [((), self.pages.timings), ((), self.timings)])

    def state_changed(self):
        """Whether pages or files were fetched since the last L{state}."""
        return self.pages.changed or len(self.cached) != self._cached_count
