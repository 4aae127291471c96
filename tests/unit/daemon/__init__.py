"""
Unit tests of pypid.daemon.
"""
