"""The embedded local stack: real servers (PostgreSQL 15, moto, fakesnow, OpenBao) plus the
emulations the production code needs from AWS/Snowflake-only features (``aws_s3`` export, the
Snowflake control plane, Vault's AWS IAM login). Production code never imports this package.
"""
