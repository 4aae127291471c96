"""
Tests of L{tests.forget_gone}: the bytecode cache the tests' processes share
keeps what mirrors folders still there, and forgets the temporary folders
of earlier runs.
"""

import os

from twisted.trial.unittest import SynchronousTestCase

from tests import forget_gone


class ForgetGoneTests(SynchronousTestCase):
    """L{forget_gone} on a cache made here, mirroring folders made here."""

    def test_gone_forgotten_present_kept(self):
        """
        A folder that is gone loses its cached bytecode, with every folder
        under it; one still there keeps it, and so do the gone folders'
        siblings that are there.
        """
        cache = os.path.abspath(self.mktemp())
        present = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(present, "package"))
        gone = os.path.abspath(self.mktemp())

        def cached(folder, *names):
            path = os.path.join(cache, folder.lstrip(os.sep), *names)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(b"bytecode")
            return path

        kept = [cached(present, "module.cpython-311.pyc"),
                cached(present, "package", "__init__.cpython-311.pyc")]
        forgotten = [cached(gone, "module.cpython-311.pyc"),
                     cached(present, "removed", "module.cpython-311.pyc")]
        forget_gone(cache)
        self.assertEqual([os.path.exists(path) for path in kept], [True, True])
        self.assertEqual([os.path.exists(path) for path in forgotten], [False, False])
        self.assertFalse(os.path.exists(os.path.join(cache, gone.lstrip(os.sep))))

    def test_no_cache_yet(self):
        """A cache that does not exist yet is left alone, not made."""
        cache = os.path.abspath(self.mktemp())
        forget_gone(cache)
        self.assertFalse(os.path.exists(cache))
