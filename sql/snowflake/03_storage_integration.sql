-- The storage integration: Snowflake reads the data lake bucket by assuming the IAM role the SAM
-- stack creates (output SnowflakeStorageRoleArn). Run as ACCOUNTADMIN.
--
-- Handshake (docs/deploy.md walks through it):
--   1. create the integration below;
--   2. DESC INTEGRATION {{integration}};  -> STORAGE_AWS_IAM_USER_ARN and STORAGE_AWS_EXTERNAL_ID
--   3. pass both to `sam deploy` (parameters SnowflakeIamUserArn, SnowflakeExternalId): the role's
--      trust policy then admits only that Snowflake principal with that external id;
--   4. create the stage (04_stage.sql).

CREATE STORAGE INTEGRATION IF NOT EXISTS {{integration}}
    TYPE = EXTERNAL_STAGE
    STORAGE_PROVIDER = 'S3'
    ENABLED = TRUE
    STORAGE_AWS_ROLE_ARN = '{{storage_role_arn}}'
    STORAGE_ALLOWED_LOCATIONS = ('s3://{{bucket}}/');

GRANT USAGE ON INTEGRATION {{integration}} TO ROLE {{service_role}};
