"""Library shared by the planner, exporter and verifier Lambda handlers.

Layering (see README "Layout"): handlers (``functions/<name>/app.py``) parse events and shape
outputs; the modules here hold the rules and the data access; nothing here knows whether it
runs on AWS or on the local stack (only endpoints and credentials differ).
"""
