"""The account setup of Snowflake: the fixed files of sql/snowflake/ with a deployment's names.

Each table's objects (STAGING, FINAL, stream, pipe, MERGE and retention tasks) are rendered in
the library, ``aurora_sync.snowflake_tables``, beside the type map their columns and the MERGE's
ordering depend on; this module keeps what only an operator applies once per account.
"""

from __future__ import annotations

from pathlib import Path

from aurora_sync.naming import quote
from aurora_sync.snowflake_objects import SqlConfigError
from aurora_sync.snowflake_tables import IDENTIFIER_FIELDS, SnowflakeSetup

__all__ = ["SETUP_DIR", "render_setup", "split_statements", "string_literal"]

SETUP_DIR = Path(__file__).resolve().parents[2] / "sql" / "snowflake"


# --- setup ------------------------------------------------------------------------------------
def render_setup(setup: SnowflakeSetup) -> list[str]:
    """The fixed setup files of sql/snowflake/, with the deployment's names filled in.

    The storage integration must present the stack's external id: without it Snowflake would
    generate one the storage role's trust policy does not hold, so there is no setup without it.
    """
    if setup.storage_external_id is None:
        raise SqlConfigError(
            "the storage integration needs the stack's external id (STORAGE_AWS_EXTERNAL_ID): pass "
            "--storage-external-id with the stack output SnowflakeExternalId, or set "
            "AURORA_SYNC_STORAGE_EXTERNAL_ID"
        )
    identifiers = {key: quote(getattr(setup, key)) for key in IDENTIFIER_FIELDS}
    values = {
        **identifiers,
        "bucket": setup.bucket,
        "storage_role_arn": setup.storage_role_arn,
        "storage_external_id": string_literal(setup.storage_external_id),
    }
    statements = []
    for path in sorted(SETUP_DIR.glob("*.sql")):
        text = path.read_text()
        for key, value in values.items():
            text = text.replace("{{" + key + "}}", value)
        statements.extend(split_statements(text))
    return statements


def string_literal(value: str) -> str:
    """A Snowflake single-quoted string literal: backslash and quote escaped, as the connector's
    own pyformat binding escapes them (DDL takes no bind parameters)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def split_statements(text: str) -> list[str]:
    """Statements of a setup file, comments dropped. The files hold no ';' inside literals; a
    procedure's body between ``$$`` holds several, and stays inside its statement."""
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    statements: list[str] = []
    current = ""
    # Even pieces are outside $$ ... $$, odd ones a procedure body.
    for index, piece in enumerate(body.split("$$")):
        if index % 2:
            current += f"$${piece}$$"
            continue
        first, *more = piece.split(";")
        current += first
        if more:
            statements += [current, *more[:-1]]
            current = more[-1]
    statements.append(current)
    return [statement.strip() for statement in statements if statement.strip()]
