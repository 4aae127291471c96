"""
Unit tests of pypid.jobs.
"""
