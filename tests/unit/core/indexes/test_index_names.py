"""
Tests for L{pypid.core.indexes.index_names}: the names of indexes and upstreams,
the references of C{bases}, and the route segments no index may take,
checked against the resource tree the server really builds.
"""

import os

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.policy import AccessModel
from pypid.auth.tokens import TokenBook
from pypid.auth.verifier import PasswordVerifier
from pypid.core.indexes.index import Index
from pypid.core.indexes.index_names import NAME, ROUTE_SEGMENTS, BaseRef, parse_base
from pypid.core.indexes.links import file_url_for
from pypid.web.app import build_web
from pypid.web.identity.gates import Gates
from pypid.web.web_inputs import SiteSettings
from tests.harness.fakes import one_index, run_in_pool_now, run_now
from tests.harness.memory_storage import MemoryStorage


def first_segments(root):
    """
    The first path segments the built tree answers: the plain resources'
    (L{pypid.web.serving.site_root.RootResource}), the areas' (C{Areas}), and those
    split by their second (C{api}, C{console}) when anything is routed under them.
    """
    segments = {name.decode("ascii") for name in root._children}
    areas = root._app
    segments |= {name.decode("ascii") for name in areas._first}
    segments |= {first.decode("ascii") for first, table in areas._second.items() if table}
    return segments


class RouteSegmentsTests(SynchronousTestCase):
    """L{ROUTE_SEGMENTS} holds every first segment of the server's routes."""

    def build(self):
        """The root resource of a server as L{build_web} wires it, in memory."""
        clock = Clock()
        storage = MemoryStorage(os.path.abspath(self.mktemp()), clock)
        self.successResultOf(storage.prepare())
        verifier = PasswordVerifier({}, clock, None, run_in_pool=run_in_pool_now)
        access = Gates(AccessModel(read="everyone"), verifier, None, TokenBook(clock))
        return build_web(one_index(Index(file_url_for(None)), storage, clock), access, run_now,
                         clock,
                         SiteSettings(max_upload_size=1 << 20)).root

    def test_every_route_reserved(self):
        """A route added to the tree without its first segment in ROUTE_SEGMENTS fails here."""
        answered = first_segments(self.build())
        self.assertEqual(sorted(answered - ROUTE_SEGMENTS), [],
                         "first segments of routes that an [index:NAME] could shadow: add "
                         "them to pypid.core.indexes.index_names.ROUTE_SEGMENTS")
        # (and the tree is really read: today's well-known paths are there)
        self.assertTrue({"simple", "files", "project", "static", "api", "metrics"} <= answered)

    def test_nothing_stale(self):
        """Every reserved segment is one the tree answers (a removed route frees its name)."""
        self.assertEqual(sorted(ROUTE_SEGMENTS - first_segments(self.build())), [])


class NameTests(SynchronousTestCase):
    """What may name an index or an upstream."""

    def test_accepted(self):
        """Lower-case letters, digits and '-', up to 63, starting with a letter or digit."""
        for name in ("a", "prod", "release-2", "0day", "a" * 63):
            self.assertTrue(NAME.match(name), name)

    def test_refused(self):
        """Upper case, '.', '_', '/', a leading '-', empty, too long, or a line break."""
        for name in ("Prod", "a.b", "a_b", "a/b", "-a", "", "a" * 64, "a\n", "é"):
            self.assertIsNone(NAME.match(name), name)


class BaseTests(SynchronousTestCase):
    """L{parse_base} reads an entry of C{bases}."""

    def test_index_and_upstream(self):
        """A name is an index; upstream:NAME an upstream; each spelt back as written."""
        self.assertEqual(parse_base("release"), BaseRef(False, "release"))
        self.assertEqual(parse_base("upstream:public"), BaseRef(True, "public"))
        self.assertEqual(str(BaseRef(True, "public")), "upstream:public")
        self.assertEqual(str(BaseRef(False, "release")), "release")

    def test_refused(self):
        """A bad name, on its own or after upstream:, is refused naming the entry."""
        for text in ("Release", "upstream:", "upstream:a.b", "index:x", "upstream:upstream:x"):
            e = self.assertRaises(ValueError, parse_base, text)
            self.assertIn(repr(text), str(e))
