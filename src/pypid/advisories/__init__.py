"""
The server's security advisories: OSV records read, within bounds, from a
folder, a zip or a URL, and the part that keeps them in force on the board
every index reads. What the records mean is L{pypid.core.security.osv}'s;
what an index does about them, L{pypid.core.security.advisories}'.
"""
