-- Aurora PostgreSQL: the export extension. Run once per source database, as a member of
-- rds_superuser (the cluster's master user is one).
--
-- aws_s3 provides aws_s3.query_export_to_s3(...), which runs a query inside Aurora and writes
-- its COPY output straight to S3: the exporter Lambda never handles row data. CASCADE also
-- installs aws_commons (aws_commons.create_s3_uri and the aws_commons._s3_uri_1 type).
-- The cluster must additionally have an IAM role associated for the s3Export feature
-- (03_iam_role_association.sql); without it every export fails with
-- "could not upload to Amazon S3".
--
-- The local stack cannot load this extension (it is Aurora/RDS-only): it installs an
-- emulation with the same schemas, signatures and result columns instead
-- (ops/aurora_sync_ops/local/aws_s3/).

CREATE EXTENSION IF NOT EXISTS aws_s3 CASCADE;
