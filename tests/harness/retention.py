"""
A site in memory whose default index has a recycle bin and keeps one
release (C{keep_releases = 1}), as the tests of the retention API
(L{tests.unit.core.indexes.test_retention}) and of the console's retention page
(L{tests.unit.web.pages.test_console}) build it.
"""

from pypid.core.indexes.retention import RetentionRules
from pypid.state.cleanup import IndexCleanup
from pypid.state.indexes import IndexRegistry
from pypid.state.recycle_bin import RecycleBin
from pypid.storage.base.locks import KeyedLock
from tests.harness.distributions import make_wheel
from tests.harness.fakes import twine_fields
from tests.harness.indexes import Stack

DAY = 86400.0


class RetainedIndex:
    """A mixin of L{tests.harness.web._ServerMixin}: the bin, the registry, and uploads."""

    def recycle_bin(self):
        self.bin = RecycleBin(self.index, self.storage, KeyedLock(self.clock), self.clock,
                              7 * DAY)
        return self.bin

    def index_registry(self):
        cleanup = IndexCleanup("default", self.bin, None, RetentionRules(keep_releases=1))
        return IndexRegistry({"default": Stack("default", self.index, self.storage,
                                               self.bin.locks, bin=self.bin,
                                               cleanup=cleanup)},
                             {"default": ("default",)}, {})

    def upload_version(self, version):
        """Upload C{Holy.Grail} C{version}, which must be accepted; its filename."""
        name, data = make_wheel("Holy.Grail", version)
        response, body = self.upload(name, data, fields=twine_fields("Holy.Grail", version, data))
        self.assertEqual(response.code, 200, body)
        return name
