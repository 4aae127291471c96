"""
The index model: projects, files and their states, indexes composed of
others, promotion, namespaces and retention.
"""
