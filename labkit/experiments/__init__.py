"""Experiments run on the live lab; each returns a pandas DataFrame of raw observations (one row each)."""
