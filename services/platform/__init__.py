"""Wiring: binds the framework-free patterns (``services/patterns``) to a FastAPI app.

The app factory, middleware, error handlers, the identity and cache dependencies, registration, event
tasks and the shared routes (``/health``, ``/stats``, ``/metrics``, ``/admin/knobs``). It imports
``services.core`` and ``services.patterns``, never an app (``tests/unit/test_layering.py`` checks).
"""
