"""
Unit tests of pypid.state.
"""
