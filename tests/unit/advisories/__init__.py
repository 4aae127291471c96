"""
Unit tests of pypid.advisories.
"""
