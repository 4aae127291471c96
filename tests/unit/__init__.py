"""
Fast tests of one room at a time, in memory (StubTreq, Clock, memory
storage): the folders mirror src/pypid.
"""
