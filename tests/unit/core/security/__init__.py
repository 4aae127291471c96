"""
Unit tests of pypid.core.security.
"""
