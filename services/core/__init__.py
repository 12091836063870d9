"""The foundation every layer stands on: settings, the key schema, Redis, the SQLite system of record, ids, the error type.

Imports nothing above it (not services.patterns, not services.platform, no app, no web framework):
``tests/unit/test_layering.py`` checks.
"""
