"""
Small pure helpers the other rooms share: bounded tables, units, clock
steps, notices, the errors of HTTP and start-up.
"""
