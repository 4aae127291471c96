"""
Unit tests of pypid.core.dists.
"""
