"""
Search over project names and summaries, in memory, for the pages for
people (C{/search?q=}, and results as one types).

No database: a query is a scan, one C{in} test per name and per summary in
list comprehensions, and a sort of plain ints: a few ms a query at 20,000
projects. A scan with C{str.find} over one joined string was slower: its
per-hit Python work outweighs the loop it saves.

Ranking, best first (ties: shorter name, then alphabetical): the
normalized query itself (C{Foo_Bar} finds C{foo-bar} first), a name that
starts with it, a word of the name that does, a name that holds it, a
summary that holds every word of the query.

Who may see what is the caller's C{visible(project)}: a hidden project is
never shown, counted or suggested.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import attrs

from pypid.core.dists.names import normalize

#: Results per page when the caller does not say.
DEFAULT_PAGE_SIZE = 20

#: Longest query taken, in characters: longer ones are cut.
MAX_QUERY_LENGTH = 200

#: Shortest query matched inside names and summaries; a shorter one (a
#: letter or two, as one starts typing) matches names by their start only.
MIN_SUBSTRING = 3

_WORD = re.compile(r"\w+")

# The ranks of L{SearchIndex.search}, best first.
EXACT, PREFIX, WORD_PREFIX, SUBSTRING, SUMMARY = range(5)


@attrs.frozen
class SearchEntry:
    """One project as search knows it: its normalized name, as spelt, and its summary."""

    project: str
    display_name: str
    summary: str | None = None


@attrs.frozen
class Hit:
    """One result: the entry and how it matched (a rank of the module)."""

    entry: SearchEntry
    rank: int


@attrs.frozen
class Results:
    """
    One page of results: C{total} visible projects match in all; C{hits},
    best first, on C{page} (from 1) of C{pages} (at least 1).
    """

    query: str
    total: int
    hits: tuple[Hit, ...]
    page: int
    pages: int


class SearchIndex:
    """
    The L{SearchEntry} of every project, ready to be searched: built anew
    when the project list changes (a sort and two lists), never updated.
    """

    def __init__(self, entries: Iterable[SearchEntry]) -> None:
        self._entries = sorted(entries, key=lambda e: (len(e.project), e.project))
        self._by_project = {e.project: i for i, e in enumerate(self._entries)}
        self._names = [e.project for e in self._entries]
        self._summaries = [(e.summary or "").casefold() for e in self._entries]

    def __len__(self) -> int:
        return len(self._entries)

    def entry(self, project: str) -> SearchEntry:
        """The L{SearchEntry} of a normalized project name (L{KeyError} when unknown)."""
        return self._entries[self._by_project[project]]

    def search(self, query: str, visible: Callable[[str], bool] | None = None, page: int = 1,
               page_size: int = DEFAULT_PAGE_SIZE) -> Results:
        """
        Find the projects matching C{query} that C{visible(normalized name)}
        allows (L{None}: all), ranked; C{page} is clamped to the last.
        """
        query = " ".join(query[:MAX_QUERY_LENGTH].split())
        page_size = max(1, page_size)
        # One int per match, rank * size + position: sorting them sorts by
        # rank, then by position (shorter names first, then alphabetical).
        ranked = self._ranked(query)
        size = len(self._entries)
        if visible is not None:
            names = self._names
            ranked = [key for key in ranked if visible(names[key % size])]
        total = len(ranked)
        pages = max(1, -(-total // page_size))
        page = min(max(1, page), pages)
        ranked.sort()
        chosen = ranked[(page - 1) * page_size:page * page_size]
        hits = tuple(Hit(self._entries[key % size], key // size) for key in chosen)
        return Results(query=query, total=total, hits=hits, page=page, pages=pages)

    def _ranked(self, query: str) -> list[int]:
        """C{rank * len(self) + position} of every entry matching C{query}."""
        if not query:
            return []
        size = len(self._entries)
        names = self._names
        keys: list[int] = []
        seen: set[int] = set()
        name = normalize(query.replace(" ", "-")).strip("-")
        if name:
            exact = self._by_project.get(name)
            if exact is not None:
                keys.append(EXACT * size + exact)
                seen.add(exact)
            if len(name) < MIN_SUBSTRING:
                matches = [i for i, n in enumerate(names) if n.startswith(name)]
            else:
                matches = [i for i, n in enumerate(names) if name in n]
            word = "-" + name
            for i in matches:
                if i == exact:
                    continue
                n = names[i]
                rank = PREFIX if n.startswith(name) else WORD_PREFIX if word in n else SUBSTRING
                keys.append(rank * size + i)
                seen.add(i)
        words = _WORD.findall(query.casefold())
        if words and len(max(words, key=len)) >= MIN_SUBSTRING:
            # The longest word first: it narrows the most.
            words.sort(key=len, reverse=True)
            summaries = self._summaries
            first = words[0]
            candidates = [i for i, text in enumerate(summaries) if first in text]
            for word in words[1:]:
                candidates = [i for i in candidates if word in summaries[i]]
            keys.extend(SUMMARY * size + i for i in candidates if i not in seen)
        return keys


