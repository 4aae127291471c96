"""
Unit tests of pypid.core.access.
"""
