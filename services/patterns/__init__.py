"""One module per Redis pattern, framework-free: the code a notebook shows next to its experiment.

Nothing here imports FastAPI, so a notebook or a test can use a pattern with nothing but a Redis client.
"""
