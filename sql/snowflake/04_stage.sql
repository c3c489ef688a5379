-- The file format and the external stage every pipe reads from.
--
-- PostgreSQL's CSV writes NULL as an unquoted empty field and '' as "": with
-- FIELD_OPTIONALLY_ENCLOSED_BY='"', EMPTY_FIELD_AS_NULL=TRUE and NULL_IF=() the two stay apart.
-- No header (aws_s3 does not repeat one in split parts). ERROR_ON_COLUMN_COUNT_MISMATCH stays TRUE
-- so a file whose columns do not match the table fails loudly instead of loading shifted data.
-- ESCAPE_UNENCLOSED_FIELD = NONE: PostgreSQL's CSV writes backslashes literally and unquoted
-- (C:\temp\new); Snowflake's default backslash escape would turn them into a tab and a newline.

CREATE FILE FORMAT IF NOT EXISTS {{database}}.{{staging_schema}}.{{file_format}}
    TYPE = CSV
    FIELD_DELIMITER = ','
    FIELD_OPTIONALLY_ENCLOSED_BY = '"'
    ESCAPE = NONE
    ESCAPE_UNENCLOSED_FIELD = NONE
    EMPTY_FIELD_AS_NULL = TRUE
    NULL_IF = ()
    SKIP_HEADER = 0
    ERROR_ON_COLUMN_COUNT_MISMATCH = TRUE
    ENCODING = 'UTF8';

CREATE STAGE IF NOT EXISTS {{database}}.{{staging_schema}}.{{stage}}
    URL = 's3://{{bucket}}/'
    STORAGE_INTEGRATION = {{integration}}
    FILE_FORMAT = {{database}}.{{staging_schema}}.{{file_format}};

-- The service role creates (and so owns) each table's pipe, whose COPY reads through the stage
-- with the file format.
GRANT USAGE ON FILE FORMAT {{database}}.{{staging_schema}}.{{file_format}} TO ROLE {{service_role}};
GRANT USAGE ON STAGE {{database}}.{{staging_schema}}.{{stage}} TO ROLE {{service_role}};
