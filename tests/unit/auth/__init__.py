"""
Unit tests of pypid.auth.
"""
