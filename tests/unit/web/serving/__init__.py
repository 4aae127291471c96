"""
Unit tests of pypid.web.serving.
"""
