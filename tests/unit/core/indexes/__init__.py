"""
Unit tests of pypid.core.indexes.
"""
