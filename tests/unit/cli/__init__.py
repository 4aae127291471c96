"""
Unit tests of pypid.cli.
"""
