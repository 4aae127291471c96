"""
Unit tests of pypid.bundle.
"""
