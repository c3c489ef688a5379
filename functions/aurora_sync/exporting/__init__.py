"""Exporting: one work item's rows from Aurora to S3 (the exporter Lambda's stage).

``export`` writes a chunk's CSV files (and a run's key snapshot) with ``aws_s3``. The export
SELECT (``aurora_sync.export_query``) and the source snapshot (``aurora_sync.source_snapshot``)
stay shared: the Snowflake objects read the CSV column order from the first, the verifier the
key order from the second.
"""
