"""
Serving an index: the hot path and its express lane, named indexes' paths,
the upstream's pages, the legacy JSON, integrity, and writing answers.
"""
