"""
The static export's fixtures (they were L{tests.unit.export.test_export}'s): the
distributions exported (C{FILES}), records made up for the pure plan
(L{make_record}), and L{ExportCase}, exports of in-memory and on-disk
storages into a folder.
"""

import hashlib
import os

from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pypid.export.exporter import Exporter
from pypid.export.plan import ExportSettings
from pypid.export.target import LocalTarget
from pypid.storage.folder.local import LocalStorage
from tests.harness.distributions import make_sdist, make_wheel, metadata_text
from tests.harness.fakes import read_file, run_now, write_file
from tests.harness.memory_storage import MemoryStorage

ALPHA_WHEEL = make_wheel("Alpha", "1.0", metadata=metadata_text(
    "Alpha", "1.0", requires_python=">=3.8", summary="The first letter"))
ALPHA_SDIST = make_sdist("Alpha", "1.0")
ALPHA_OLD = make_wheel("Alpha", "0.9")
BETA_WHEEL = make_wheel("beta", "2.0", requires_dist=["alpha>=1.0"])
FILES = (ALPHA_WHEEL, ALPHA_SDIST, ALPHA_OLD, BETA_WHEEL)
#: Where the daemon that exports are compared with is asked.
ORIGIN = "http://pypi.test"


def make_record(filename, project="alpha", version="1.0", **fields):
    """A record made up for the pure tests."""
    values = dict(filename=filename, project=project, name=project, version=version,
                  packagetype="bdist_wheel", path=filename, size=3,
                  sha256=hashlib.sha256(filename.encode()).hexdigest(),
                  upload_time=1767225600.0)
    values.update(fields)
    from pypid.core.dists.model import FileRecord
    return FileRecord(**values)


class ExportCase(SynchronousTestCase):
    """Exports of in-memory and on-disk storages into a folder."""

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1767225600)
        self.dest = os.path.abspath(self.mktemp())

    def memory(self, *files):
        """A memory storage holding C{files} (found by its scan)."""
        storage = MemoryStorage(os.path.abspath(self.mktemp()), self.clock)
        for filename, data in files:
            storage.objects[filename] = data
        # (read once, as the daemon would: the export's own scan writes nothing)
        self.successResultOf(storage.scan())
        return storage

    def folder(self, *files, mode=0o644):
        """A storage folder holding C{files}, read once (its sidecars written)."""
        root = os.path.abspath(self.mktemp())
        for filename, data in files:
            os.chmod(write_file(os.path.join(root, filename), data), mode)
        storage = LocalStorage(root, run_now, self.clock)
        self.successResultOf(storage.scan())
        return LocalStorage(root, run_now, self.clock)

    def records(self, storage):
        return self.successResultOf(storage.scan()).records

    def daemon(self, storage, policy=None):
        """
        The daemon's web side over C{storage} (served without a base URL),
        its statuses read as a start reads them, acting on the advisories'
        C{policy} when given: what an export must match.
        """
        from pypid.auth.policy import AccessModel
        from pypid.auth.verifier import PasswordVerifier
        from pypid.core.indexes.index import Index
        from pypid.core.indexes.links import file_url_for
        from pypid.storage.base.reading import read_statuses
        from pypid.web.app import build_web
        from pypid.web.identity.gates import Gates
        from pypid.web.web_inputs import SiteSettings
        from tests.harness.fakes import one_index, run_in_pool_now, site_treq

        more = {} if policy is None else {"advisories": policy}
        index = Index(file_url_for(None), **more)
        index.load(sorted(self.records(storage).values(),
                          key=lambda r: (r.upload_time, r.filename)))
        index.statuses.take(self.successResultOf(ensureDeferred(read_statuses(storage))))
        verifier = PasswordVerifier({}, self.clock, None, run_in_pool=run_in_pool_now)
        web = build_web(one_index(index, storage, self.clock),
                        Gates(AccessModel(read="everyone"), verifier), run_now, self.clock,
                        SiteSettings(max_upload_size=1 << 20))
        return site_treq(web.site)

    def served(self, client, path, accept="text/html"):
        """C{(code, body)} of the daemon's answer to an anonymous C{GET path}."""
        response = self.successResultOf(client.get(ORIGIN + path, headers={"Accept": accept}))
        return response.code, self.successResultOf(response.content())

    def exporter(self, storage, settings=None, people=None, full=False, links="auto",
                 snapshot=None, advisories=None):
        """An exporter of C{storage} into C{self.dest}, acting on C{advisories} when given."""
        more = {} if advisories is None else {"advisories": advisories}
        return Exporter(storage, LocalTarget(self.dest, links), settings or ExportSettings(),
                        run_now, snapshot, people=people, full=full, **more)

    def export(self, storage, **kwargs):
        return self.successResultOf(self.exporter(storage, **kwargs).export())

    def read(self, path):
        full = os.path.join(self.dest, path)
        return read_file(full) if os.path.exists(full) else None

    def exists(self, path):
        return os.path.exists(os.path.join(self.dest, path))
