"""
Unit tests of pypid.core.util.
"""
