"""Library shared by the planner, exporter and verifier Lambda handlers.

Layering: handlers (``functions/<name>/app.py``) parse events and shape outputs; each stage's
rules and data access live in its package (``planning``, ``exporting``, ``verifying``); the
modules directly here are shared by two stages or more and never import a stage package, and
no stage imports another (``tests/infra/test_stage_packages.py`` holds the tree to this).
Nothing here knows whether it runs on AWS or on the local stack (only endpoints and credentials
differ).
"""
