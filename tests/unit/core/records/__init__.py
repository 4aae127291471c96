"""
Unit tests of pypid.core.records.
"""
