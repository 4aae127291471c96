"""
Unit tests of pypid.core.
"""
