"""
Tests for the machine's side of C{/metrics}
(L{pypid.web.admin.exposition.MachineMetrics}): each worker's families
labelled by it, written for the others and read back fresh, the
machine's own series; and the families' JSON.
"""

import os

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pypid.core.records.metrics import (
    Histogram,
    by_label,
    dump_families,
    gauge,
    histograms,
    labelled,
    load_families,
)
from pypid.jobs.run import run_at_once
from pypid.machine.ring import ChangeRing
from pypid.machine.topics import Hub
from pypid.web.admin import exposition
from pypid.web.admin.exposition import STALE, WRITE_INTERVAL, Collector, MachineMetrics


class _Source:
    def __init__(self, families):
        self.families = families

    def metric_families(self):
        return iter(self.families)


class FamiliesTests(SynchronousTestCase):
    """Families as a worker leaves them for the others."""

    def test_round_trip(self):
        """Gauges, counters by label and histograms read back as they were written."""
        histogram = Histogram((0.1, 1.0))
        histogram.observe(0.5)
        families = [gauge("pypid_up", "Up.", 1), by_label("pypid_hits", "Hits.", "kind",
                                                           {"a": 2, "b": 3}),
                    histograms("pypid_took", "Took.", "route", {"/": histogram})]
        self.assertEqual(load_families(dump_families(families)), families)
        self.assertRaises(ValueError, load_families, b'[["gauge", "x", "h", [], [[[], "s"]]]]')
        self.assertRaises(ValueError, load_families, b"{}")

    def test_labelled(self):
        """A worker's label comes first, on every sample."""
        family = labelled(by_label("pypid_hits", "Hits.", "kind", {"a": 2}), "worker", "3")
        self.assertEqual((family.labels, family.samples), (("worker", "kind"), ((("3", "a"), 2),)))


class MachineMetricsTests(SynchronousTestCase):
    """Two workers' sides on one ring and one folder."""

    def setUp(self):
        self.clock = Clock()
        self.folder = os.path.join(os.path.abspath(self.mktemp()), "metrics")
        ring = ChangeRing.create(slots=4, slot_size=64, tally=4)
        self.addCleanup(ring.close)
        ring.set_workers(2, 2, 3, 4, 1)
        self.sides, self.collectors = [], []
        for number in (1, 2):
            worker = ChangeRing.attach(ring.fileno(), number)
            self.addCleanup(worker.close)
            side = MachineMetrics(self.folder, Hub(worker), run_at_once, self.clock)
            collector = Collector((_Source([gauge("pypid_up", "Up.", number)]),), side)
            side.watch(collector.families)
            side.startService()
            self.sides.append(side)
            self.collectors.append(collector)

    def test_the_machine(self):
        """
        A scrape of one worker has its own series and the other's as last
        written, each labelled by its worker, and the machine's own.
        """
        one, two = self.sides
        self.clock.advance(WRITE_INTERVAL)
        others = self.successResultOf(one.others())
        self.assertEqual([f.samples for f in others], [((("2",), 2),)])
        collector = self.collectors[0]
        collector.others = others
        self.assertEqual([f.samples for f in collector.families()], [((("1",), 1),)])
        merged = {f.name: f.samples for f in
                  exposition.merged([*collector.families(), *others, *one.own_families()])}
        self.assertEqual(merged["pypid_up"], ((("1",), 1), (("2",), 2)))
        self.assertEqual(merged["pypid_workers_running"], (((), 2),))
        self.assertEqual(merged["pypid_worker_restarts"], (((), 3),))
        self.assertEqual((merged["pypid_worker_silences"], merged["pypid_worker_hangs"]),
                         ((((), 4),), (((), 1),)))

    def test_gone(self):
        """A worker that stopped removed its file; one not written for L{STALE} is left out."""
        one, two = self.sides
        self.clock.advance(WRITE_INTERVAL)
        self.successResultOf(two.stopService())
        self.assertEqual(self.successResultOf(one.others()), [])
        self.clock.advance(WRITE_INTERVAL)
        path = os.path.join(self.folder, "worker-1.json")
        old = os.stat(path).st_mtime - STALE - 1
        os.utime(path, (old, old))
        self.assertEqual(self.successResultOf(two.others()), [])
        one.stopService()
