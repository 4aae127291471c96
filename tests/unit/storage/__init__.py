"""
Unit tests of pypid.storage.
"""
