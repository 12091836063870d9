"""Logins and sessions at the edge: the gateway checks who you are, the services check what you may do."""
