"""
Who is asking and what they may do, applied to requests: identification,
permissions, access gates, browser sessions and trusted publishing's token
exchange.
"""
