"""
The pure core: names, records, the index model, the pages' bytes and the
rules of access and advisories. No module here reaches the network or
Twisted's I/O, nor reads a clock (C{tests/unit/test_layers.py} checks); the
one file read is an uploaded archive's, in the caller's worker thread. The
time, random bytes and what storage holds are given, so that every layer
above shares one answer and the tests need no reactor.
"""
