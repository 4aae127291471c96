"""
Unit tests of pypid.export.
"""
