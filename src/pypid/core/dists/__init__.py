"""
Distribution files: what a wheel or sdist holds, read safely from hostile
archives, and the rules of names, versions and uploads.
"""
