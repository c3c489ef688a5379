"""Verifying: did every exported file land, merge and reconcile (the verifier Lambda's stage).

``decide`` holds the rules: from the export results, the load and task histories and the clock,
each table's verdict and the actions to take, without I/O; ``act`` runs those actions against
Snowflake; ``verify`` defines the messages and the run summary; ``load_history`` reads
Snowpipe's COPY history and the MERGE task's runs; ``reconciliation`` applies a run's key
snapshot to FINAL (hard deletes).
"""
