"""
Unit tests of pypid.web.server.
"""
