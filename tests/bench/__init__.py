"""
Benchmarks: scripts run by hand (not collected by trial), each saying in its
docstring what it measures and how to run it.
"""
