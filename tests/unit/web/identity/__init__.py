"""
Unit tests of pypid.web.identity.
"""
