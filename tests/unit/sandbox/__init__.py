"""
Unit tests of pypid.sandbox.
"""
