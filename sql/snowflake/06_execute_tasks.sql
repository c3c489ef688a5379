-- The verifier's one statement for every ready table's MERGE task (issue 15). EXECUTE TASK takes
-- one task, so a run of 2,000 tables cost 2,000 statements over many verifier calls; this
-- procedure takes the tasks' names as one bound ARRAY and runs EXECUTE TASK for each inside
-- Snowflake. Each task's error is caught and reported (task, code, message, state) instead of
-- ending the call, so one dropped task does not keep the others from running; executed tasks
-- report only their name.
--
-- Names are used only through IDENTIFIER(): never formatted into a statement.
-- EXECUTE AS CALLER: the procedure can do nothing its caller could not. The service role calls
-- it and owns the MERGE tasks it creates, and holds EXECUTE TASK on the account (02_roles.sql);
-- an owner's-rights procedure would run with the setup role's privileges instead.

CREATE OR REPLACE PROCEDURE {{database}}.{{staging_schema}}."_AURORA_SYNC_EXECUTE_TASKS"(TASKS ARRAY)
    RETURNS VARIANT
    LANGUAGE SQL
    EXECUTE AS CALLER
AS
$$
DECLARE
    outcomes ARRAY DEFAULT ARRAY_CONSTRUCT();
    task_name VARCHAR;
BEGIN
    FOR i IN 1 TO ARRAY_SIZE(tasks) DO
        task_name := GET(tasks, i - 1)::VARCHAR;
        BEGIN
            EXECUTE TASK IDENTIFIER(:task_name);
            outcomes := ARRAY_APPEND(outcomes, OBJECT_CONSTRUCT('task', task_name));
        EXCEPTION
            WHEN OTHER THEN
                outcomes := ARRAY_APPEND(outcomes, OBJECT_CONSTRUCT('task', task_name, 'code', SQLCODE, 'message', SQLERRM, 'state', SQLSTATE));
        END;
    END FOR;
    RETURN outcomes;
END;
$$;

GRANT USAGE ON PROCEDURE {{database}}.{{staging_schema}}."_AURORA_SYNC_EXECUTE_TASKS"(ARRAY) TO ROLE {{service_role}};
