"""Verifying: did every exported file land, merge and reconcile (the verifier Lambda's stage).

``verify`` decides each table's verdict from the export results; ``load_history`` reads
Snowpipe's COPY history and the MERGE task's runs; ``reconciliation`` applies a run's key
snapshot to FINAL (hard deletes).
"""
