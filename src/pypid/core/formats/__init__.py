"""
The bytes clients and people read: the simple API's pages and JSON, the
legacy JSON, the pages for people and the console, search and negotiation.
"""
