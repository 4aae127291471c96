"""
Unit tests of pypid.web.pages.
"""
