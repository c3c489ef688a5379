-- Roles, the service user and its warehouse. Run as SECURITYADMIN (roles, users, grants) with
-- SYSADMIN's CREATE WAREHOUSE; the EXECUTE MANAGED TASK grant needs ACCOUNTADMIN.
--
-- {{service_role}} is what the Lambdas use (key-pair user {{service_user}}): it reads load history,
-- refreshes pipes, runs the MERGE tasks it owns and reads FINAL for watermarks. It cannot drop or
-- create anything outside the two schemas. {{reader_role}} is for analysts: SELECT on FINAL only.

CREATE ROLE IF NOT EXISTS {{service_role}};
CREATE ROLE IF NOT EXISTS {{reader_role}};
-- Administrators inherit what the service role creates and owns (the per-table objects).
GRANT ROLE {{service_role}} TO ROLE SYSADMIN;

-- The functions' own statements (watermarks, COPY_HISTORY, TASK_HISTORY, merged-row counts) run
-- on this warehouse; the tasks are serverless. The smallest size, suspended after 60 s idle and
-- resumed by the next statement.
CREATE WAREHOUSE IF NOT EXISTS {{warehouse}}
    WAREHOUSE_SIZE = XSMALL
    AUTO_SUSPEND = 60
    AUTO_RESUME = TRUE
    INITIALLY_SUSPENDED = TRUE;
GRANT USAGE ON WAREHOUSE {{warehouse}} TO ROLE {{service_role}};

GRANT USAGE ON DATABASE {{database}} TO ROLE {{service_role}};
GRANT USAGE ON SCHEMA {{database}}.{{staging_schema}} TO ROLE {{service_role}};
GRANT USAGE ON SCHEMA {{database}}.{{final_schema}} TO ROLE {{service_role}};
GRANT CREATE TABLE, CREATE STREAM, CREATE PIPE, CREATE TASK, CREATE STAGE, CREATE FILE FORMAT
    ON SCHEMA {{database}}.{{staging_schema}} TO ROLE {{service_role}};
GRANT CREATE TABLE ON SCHEMA {{database}}.{{final_schema}} TO ROLE {{service_role}};
GRANT SELECT, INSERT, UPDATE, DELETE ON FUTURE TABLES IN SCHEMA {{database}}.{{final_schema}} TO ROLE {{service_role}};
GRANT SELECT, INSERT, DELETE ON FUTURE TABLES IN SCHEMA {{database}}.{{staging_schema}} TO ROLE {{service_role}};
-- Serverless tasks: no warehouse to keep running or size.
GRANT EXECUTE MANAGED TASK ON ACCOUNT TO ROLE {{service_role}};
GRANT EXECUTE TASK ON ACCOUNT TO ROLE {{service_role}};

GRANT USAGE ON DATABASE {{database}} TO ROLE {{reader_role}};
GRANT USAGE ON SCHEMA {{database}}.{{final_schema}} TO ROLE {{reader_role}};
GRANT SELECT ON FUTURE TABLES IN SCHEMA {{database}}.{{final_schema}} TO ROLE {{reader_role}};

-- Key-pair authentication only: register the public key of the private key you store in Vault
-- (openssl rsa -in key.p8 -pubout), then GRANT the role. No password is ever set.
CREATE USER IF NOT EXISTS {{service_user}} DEFAULT_ROLE = {{service_role}} TYPE = SERVICE;
GRANT ROLE {{service_role}} TO USER {{service_user}};
