"""
Who is asking and what they may do, as grammars and records: access rules,
credentials, LDAP and publisher syntax, sessions and single sign-on, client
addresses.
"""
