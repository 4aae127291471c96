"""
Work that must not run in the daemon's process: third-party code that may
run away on hostile input, in child processes with a time budget.
"""
