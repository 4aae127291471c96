"""
Unit tests of pypid.web.changes.
"""
