"""
Tables within a count, as every memory keyed by what clients choose
(project names, filenames, addresses, credentials) must be: L{put_newest}
keeps the newest entries, L{remember} empties a full memo.
"""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


def put_newest(table: dict[K, V], key: K, value: V, cap: int) -> None:
    """
    Put C{key} last in C{table} with C{value}, then forget the oldest
    entries past C{cap}: a dict keeps insertion order, so moving a key to
    its end on each touch makes it the order of last use.
    """
    table.pop(key, None)
    table[key] = value
    while len(table) > cap:
        del table[next(iter(table))]


def remember(memo: dict[K, V], key: K, value: V, cap: int) -> V:
    """
    Keep C{value} in C{memo} under C{key}, and give it back; a memo of
    C{cap} entries is emptied first (cheaper on a hot path than keeping the
    newest, and what clients send repeats, so it fills again at once).
    """
    if len(memo) >= cap:
        memo.clear()
    memo[key] = value
    return value
