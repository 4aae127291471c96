"""
The pure core: names, records, the index model, the pages' bytes and the
rules of access and advisories, as plain functions and attrs values. No
module here does I/O or reads a clock (C{tests/unit/test_layers.py} checks
their imports): the time, random bytes and what storage holds are given,
so that every layer above shares one answer and the tests need no reactor.
"""
