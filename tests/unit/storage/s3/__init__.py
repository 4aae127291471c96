"""
Unit tests of pypid.storage.s3.
"""
