"""
Unit tests of pypid.upstream.
"""
