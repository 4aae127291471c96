"""
Unit tests of pypid.web.admin.
"""
