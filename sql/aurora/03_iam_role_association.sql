-- Aurora PostgreSQL: letting the cluster write to the export bucket. These steps happen in
-- AWS, not in SQL; they are recorded here so the whole Aurora setup lives in one folder. The
-- SAM template / your IaC should own them; the commands show what they amount to.
--
-- 1. An IAM role that RDS may assume, limited to this cluster:
--      trust policy:
--        {"Version": "2012-10-17",
--         "Statement": [{"Effect": "Allow",
--                        "Principal": {"Service": "rds.amazonaws.com"},
--                        "Action": "sts:AssumeRole",
--                        "Condition": {
--                          "StringEquals": {"aws:SourceAccount": "<account-id>"},
--                          "ArnLike": {"aws:SourceArn": "arn:aws:rds:<region>:<account-id>:cluster:<cluster-id>"}}}]}
--      permissions (nothing else is needed to export):
--        s3:PutObject, s3:AbortMultipartUpload   on arn:aws:s3:::<bucket>/*
--        kms:GenerateDataKey, kms:Decrypt          on the bucket's customer-managed key, if any
--
-- 2. Associate it with the cluster for the s3Export feature (safe to run again; it waits for
--    Status ACTIVE, and names the role when another one already holds s3Export, since a cluster
--    holds one role per feature and `aws rds add-role-to-db-cluster` fails on a second run):
--      aurora-sync attach-export-role --cluster <cluster-id> --stack-name <stack>
--
-- 3. Network: the cluster's subnets need a route to S3 (an S3 gateway VPC endpoint on their
--    route tables is the usual way for private subnets), and the cluster's security group
--    must allow outbound TCP 443. Without it, exports hang and then fail with
--    "could not upload to Amazon S3" / "Unable to connect to endpoint".
--
-- Not supported by aws_s3 exports: a bucket in another account, Aurora Serverless v1.
-- The bucket must be in the cluster's region.
--
-- 4. Verify from SQL as the sync role (one tiny object; delete it afterwards):

SELECT rows_uploaded, files_uploaded, bytes_uploaded
FROM aws_s3.query_export_to_s3(
    'SELECT 1 AS aurora_sync_probe',
    aws_commons.create_s3_uri('<bucket>', '_aurora_sync/probe.csv', '<region>'),
    options := 'format csv'
);
-- Expected: 1 | 1 | 2
