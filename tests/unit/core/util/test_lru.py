"""
Tests for L{pypid.core.util.lru}: against a simple model (lists in recency
order), under random operations, and a few cases by hand.
"""

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from pypid.core.util.lru import ByteLRU

KEYS = st.sampled_from("abcdefgh")
COSTS = st.integers(min_value=0, max_value=40)

OPERATIONS = st.lists(st.one_of(
    st.tuples(st.just("put"), KEYS, COSTS, st.booleans(), st.booleans(), st.integers(0, 1)),
    st.tuples(st.just("get"), KEYS),
    st.tuples(st.just("peek"), KEYS),
    st.tuples(st.just("pop"), KEYS),
    st.tuples(st.just("retier"), KEYS, st.integers(0, 1)),
    st.tuples(st.just("resize"), st.integers(min_value=0, max_value=120)),
), max_size=60)


class Model:
    """
    What a L{ByteLRU} should hold: one list per tier of C{[key, value,
    cost]}, least recently used first, and what it evicted.
    """

    def __init__(self, budget, max_entries, tiers):
        self.budget = budget
        self.max_entries = max_entries
        self.tiers = [[] for _ in range(tiers)]
        self.evicted = []

    def entries(self):
        """Every entry, the next to be evicted first."""
        return [entry for tier in self.tiers for entry in tier]

    def find(self, key):
        """C{(tier, index)} of C{key}, or L{None}."""
        for t, tier in enumerate(self.tiers):
            for i, entry in enumerate(tier):
                if entry[0] == key:
                    return t, i
        return None

    def total(self):
        return sum(entry[2] for entry in self.entries())

    def over(self):
        count = len(self.entries())
        return self.total() > self.budget or (
            self.max_entries is not None and count > self.max_entries)

    def shrink(self, spared=None):
        while self.over():
            victims = [(t, i) for t, tier in enumerate(self.tiers)
                       for i, entry in enumerate(tier) if entry[0] != spared]
            if not victims:
                return
            t, i = victims[0]
            key, value, _ = self.tiers[t].pop(i)
            self.evicted.append((key, value))

    def put(self, key, value, cost, keep, move, tier):
        found = self.find(key)
        if found is not None:
            t, i = found
            if move or t != tier:
                self.tiers[t].pop(i)
            else:
                self.tiers[t][i] = [key, value, cost]
        if cost > self.budget and not keep:
            found = self.find(key)
            if found is not None:
                self.tiers[found[0]].pop(found[1])
            self.evicted.append((key, value))
            return
        if self.find(key) is None:
            self.tiers[tier].append([key, value, cost])
        self.shrink(key if keep else None)

    def get(self, key):
        found = self.find(key)
        if found is None:
            return None
        entry = self.tiers[found[0]].pop(found[1])
        self.tiers[found[0]].append(entry)
        return entry[1]

    def peek(self, key):
        found = self.find(key)
        return None if found is None else self.tiers[found[0]][found[1]][1]

    def pop(self, key):
        found = self.find(key)
        return None if found is None else self.tiers[found[0]].pop(found[1])[1]

    def retier(self, key, tier):
        found = self.find(key)
        if found is not None and found[0] != tier:
            self.tiers[tier].append(self.tiers[found[0]].pop(found[1]))

    def resize(self, budget):
        self.budget = budget
        self.shrink()


class PropertyTests(SynchronousTestCase):
    """L{ByteLRU} under random operations, step by step against L{Model}."""

    def check(self, lru, model, kept):
        """Everything the table tells agrees with the model, and the budget holds."""
        entries = model.entries()
        self.assertEqual(lru.bytes, sum(entry[2] for entry in entries))
        self.assertEqual(list(lru), [entry[0] for entry in entries])
        self.assertEqual(list(lru.items()), [(entry[0], entry[1]) for entry in entries])
        self.assertEqual(len(lru), len(entries))
        for key in "abcdefgh":
            self.assertEqual(key in lru, any(entry[0] == key for entry in entries))
        if lru.bytes > lru.max_bytes or (lru.max_entries is not None
                                         and len(lru) > lru.max_entries):
            # (only the entry last put, with keep=True, stays past the budget, alone)
            self.assertEqual(list(lru), [kept])

    @settings(max_examples=500, deadline=None)
    @given(budget=st.integers(min_value=0, max_value=120),
           max_entries=st.one_of(st.none(), st.integers(min_value=1, max_value=5)),
           tiers=st.integers(min_value=1, max_value=2), operations=OPERATIONS)
    def test_against_model(self, budget, max_entries, tiers, operations):
        """Every step keeps the count, order, evictions and budget the model says."""
        evicted = []
        lru = ByteLRU(budget, max_entries=max_entries, tiers=tiers,
                      on_evict=lambda key, value: evicted.append((key, value)))
        model = Model(budget, max_entries, tiers)
        kept = None  # (the last entry put with keep=True, while nothing else was put)
        for step, operation in enumerate(operations):
            kind, *args = operation
            if kind == "put":
                key, cost, keep, move, tier = args
                tier = min(tier, tiers - 1)
                lru.put(key, step, cost, keep=keep, move=move, tier=tier)
                model.put(key, step, cost, keep, move, tier)
                if keep or cost <= lru.max_bytes:
                    # (a put refused for its cost evicts nothing: what was kept stays)
                    kept = key if keep else None
            elif kind == "retier":
                lru.retier(args[0], min(args[1], tiers - 1))
                model.retier(args[0], min(args[1], tiers - 1))
            elif kind == "resize":
                lru.max_bytes = args[0]
                model.resize(args[0])
            else:
                self.assertEqual(getattr(lru, kind)(*args), getattr(model, kind)(*args))
            self.assertEqual(evicted, model.evicted)
            self.check(lru, model, kept)


class ByteLRUTests(SynchronousTestCase):
    """L{ByteLRU}, case by case."""

    def test_least_recently_used_first(self):
        """Past the budget the entry used longest ago goes, not the one just read."""
        lru = ByteLRU(30)
        for key in "abc":
            lru.put(key, key.upper(), 10)
        self.assertEqual(lru.get("a"), "A")
        lru.put("d", "D", 10)
        self.assertEqual(list(lru), ["c", "a", "d"])
        self.assertEqual(lru.bytes, 30)

    def test_peek_does_not_mark(self):
        """L{ByteLRU.peek} reads without changing the order of eviction."""
        lru = ByteLRU(20)
        lru.put("a", 1, 10)
        lru.put("b", 2, 10)
        self.assertEqual(lru.peek("a"), 1)
        lru.put("c", 3, 10)
        self.assertNotIn("a", lru)
        self.assertIsNone(lru.peek("a"))

    def test_over_budget_refused(self):
        """An entry costing more than the whole budget is evicted at once, the others kept."""
        evicted = []
        lru = ByteLRU(20, on_evict=lambda key, value: evicted.append(key))
        lru.put("a", 1, 10)
        lru.put("b", 2, 21)
        self.assertEqual((list(lru), evicted, lru.bytes), (["a"], ["b"], 10))

    def test_keep_spares_the_entry_put(self):
        """With C{keep}, the entry put stays, however big, and the others make room."""
        lru = ByteLRU(20)
        lru.put("a", 1, 10)
        lru.put("b", 2, 10)
        lru.put("c", 3, 25, keep=True)
        self.assertEqual((list(lru), lru.bytes), (["c"], 25))

    def test_max_entries(self):
        """Past C{max_entries} the oldest entries go, whatever their cost."""
        lru = ByteLRU(1000, max_entries=2)
        for key in "abc":
            lru.put(key, key, 0)
        self.assertEqual(list(lru), ["b", "c"])

    def test_tiers(self):
        """An entry of the later tier goes only after every entry of the earlier one."""
        lru = ByteLRU(30, tiers=2)
        lru.put("pinned", 0, 10, tier=1)
        lru.put("a", 1, 10)
        lru.put("b", 2, 10)
        lru.put("c", 3, 10)
        self.assertEqual(list(lru), ["b", "c", "pinned"])
        lru.retier("b", 1)
        lru.put("d", 4, 10)
        self.assertEqual(list(lru), ["d", "pinned", "b"])

    def test_move_false_keeps_place(self):
        """A put with C{move=False} changes an entry's cost where it stands."""
        lru = ByteLRU(100)
        lru.put("a", 1, 10)
        lru.put("b", 2, 10)
        lru.put("a", 3, 50, move=False)
        self.assertEqual((list(lru.items()), lru.bytes), ([("a", 3), ("b", 2)], 60))

    def test_pop_and_clear_not_evictions(self):
        """Popping or clearing forgets entries and their bytes without telling C{on_evict}."""
        evicted = []
        lru = ByteLRU(100, on_evict=lambda key, value: evicted.append(key))
        lru.put("a", 1, 10)
        lru.put("b", 2, 20)
        self.assertEqual(lru.pop("a"), 1)
        self.assertIsNone(lru.pop("a"))
        self.assertEqual((lru.bytes, len(lru), "b" in lru, "a" in lru), (20, 1, True, False))
        lru.clear()
        self.assertEqual((lru.bytes, len(lru), evicted), (0, 0, []))

    def test_budget_changes(self):
        """A smaller budget evicts at once; a negative one, or cost, raises L{ValueError}."""
        lru = ByteLRU(100)
        for key in "abcd":
            lru.put(key, key, 20)
        lru.max_bytes = 45
        self.assertEqual(list(lru), ["c", "d"])
        self.assertRaises(ValueError, setattr, lru, "max_bytes", -1)
        self.assertEqual(lru.max_bytes, 45)
        self.assertRaises(ValueError, ByteLRU, -1)
        self.assertRaises(ValueError, lru.put, "e", "e", -1)

    def test_touch(self):
        """L{ByteLRU.touch} marks a kept key used and tells whether it is kept."""
        lru = ByteLRU(20)
        lru.put("a", 1, 10)
        lru.put("b", 2, 10)
        self.assertTrue(lru.touch("a"))
        self.assertFalse(lru.touch("z"))
        lru.put("c", 3, 10)
        self.assertEqual(list(lru), ["a", "c"])
