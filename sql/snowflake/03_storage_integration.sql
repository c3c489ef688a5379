-- The storage integration: Snowflake reads the data lake bucket by assuming the IAM role the SAM
-- stack creates (output SnowflakeStorageRoleArn). Run as ACCOUNTADMIN.
--
-- The external id is the stack's (output SnowflakeExternalId, derived from the stack's id, so
-- every `sam deploy` of the stack keeps it): the integration presents it and the role's trust
-- policy requires it. Snowflake would otherwise generate its own, which no deploy knows.
--
-- Handshake (docs/deploy.md walks through it):
--   1. create the integration below, with the stack's external id;
--   2. DESC INTEGRATION {{integration}};  -> STORAGE_AWS_IAM_USER_ARN
--   3. pass it to `sam deploy` (parameter SnowflakeIamUserArn): the role's trust policy then
--      admits only that Snowflake principal with the stack's external id;
--   4. create the stage (04_stage.sql).
--
-- Never CREATE OR REPLACE: a replaced integration is a new object, and the stages that name it
-- must be recreated. The ALTER below sets the stack's values on an integration that already
-- exists (one created before this setup set the external id), in place.

CREATE STORAGE INTEGRATION IF NOT EXISTS {{integration}}
    TYPE = EXTERNAL_STAGE
    STORAGE_PROVIDER = 'S3'
    ENABLED = TRUE
    STORAGE_AWS_ROLE_ARN = '{{storage_role_arn}}'
    STORAGE_AWS_EXTERNAL_ID = {{storage_external_id}}
    STORAGE_ALLOWED_LOCATIONS = ('s3://{{bucket}}/');

ALTER STORAGE INTEGRATION {{integration}} SET
    STORAGE_AWS_ROLE_ARN = '{{storage_role_arn}}'
    STORAGE_AWS_EXTERNAL_ID = {{storage_external_id}};

GRANT USAGE ON INTEGRATION {{integration}} TO ROLE {{service_role}};
