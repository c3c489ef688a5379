"""Operator tooling for Aurora → Snowflake Sync: the ``aurora-sync`` CLI and the local stack.

Nothing in this package is deployed to Lambda; the handlers live in ``functions/``.
"""
