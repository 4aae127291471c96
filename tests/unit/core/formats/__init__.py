"""
Unit tests of pypid.core.formats.
"""
