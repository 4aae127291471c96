"""
Unit tests of pypid.config.
"""
