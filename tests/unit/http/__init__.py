"""
Unit tests of pypid.http.
"""
