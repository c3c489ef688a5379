"""The account setup of Snowflake: the fixed files of sql/snowflake/ with a deployment's names.

Each table's objects (STAGING, FINAL, stream, pipe, MERGE and retention tasks) are rendered in
the library, ``aurora_sync.snowflake_tables``, beside the type map their columns and the MERGE's
ordering depend on; this module keeps what only an operator applies once per account.
"""

from __future__ import annotations

from pathlib import Path

from aurora_sync.naming import quote
from aurora_sync.snowflake_tables import IDENTIFIER_FIELDS, SnowflakeSetup

__all__ = ["SETUP_DIR", "render_setup", "split_statements"]

SETUP_DIR = Path(__file__).resolve().parents[2] / "sql" / "snowflake"


# --- setup ------------------------------------------------------------------------------------
def render_setup(setup: SnowflakeSetup) -> list[str]:
    """The fixed setup files of sql/snowflake/, with the deployment's names filled in."""
    identifiers = {key: quote(getattr(setup, key)) for key in IDENTIFIER_FIELDS}
    values = {**identifiers, "bucket": setup.bucket, "storage_role_arn": setup.storage_role_arn}
    statements = []
    for path in sorted(SETUP_DIR.glob("*.sql")):
        text = path.read_text()
        for key, value in values.items():
            text = text.replace("{{" + key + "}}", value)
        statements.extend(split_statements(text))
    return statements


def split_statements(text: str) -> list[str]:
    """Statements of a setup file, comments dropped (the files hold no ';' inside literals)."""
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    return [statement.strip() for statement in body.split(";") if statement.strip()]
