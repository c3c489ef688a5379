"""Make a started stack ready for the user's own tables, as `local up`'s last step.

Two things the user would otherwise have to discover before the first table works: the
Snowflake account setup (exactly what ``aurora-sync sql snowflake --setup --apply`` applies to
the local stack: database, schemas, roles, export ledger, storage integration, file format,
stage), and the data-lake bucket's notification to Snowpipe's queue (what the SAM template does
on AWS). Both are idempotent, so ``up`` can run again, before or after ``make demo``.
"""

from __future__ import annotations

from typing import Any

from .component import StackSettings
from .wiring import WiringError, connect_bucket_to_snowpipe


class PrepareError(RuntimeError):
    """The stack runs but could not be prepared; the message names the fix."""


def prepare_for_tables(settings: StackSettings, status: dict[str, Any]) -> dict[str, Any]:
    """Apply the Snowflake setup and wire the bucket; returns what ``local status`` reports."""
    from ..environment import CliOptions, Environment
    from ..snowflake_plan import apply_statements
    from ..snowflake_sql import render_setup

    # --local: production variables in the developer's shell (SNOWFLAKE_*, AWS_*) must not aim
    # the local stack's own setup at a real account.
    env = Environment(CliOptions(local=True, state_dir=str(settings.root), port_base=settings.ports.postgres))
    setup = env.snowflake_setup()
    warehouse = env.connect_snowflake()
    try:
        applied = apply_statements(warehouse, render_setup(setup))
    finally:
        warehouse.close()
    try:
        queue_arn = connect_bucket_to_snowpipe(status)
    except WiringError as exc:
        raise PrepareError(str(exc)) from None
    return {
        "database": setup.database,
        "staging_schema": setup.staging_schema,
        "final_schema": setup.final_schema,
        "setup_statements": applied,
        "bucket": setup.bucket,
        "snowpipe_queue_arn": queue_arn,
    }
