"""
Unit tests of pypid.web.
"""
