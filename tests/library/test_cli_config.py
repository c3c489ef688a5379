"""`aurora-sync config validate|push|pull` against the local stack's PostgreSQL catalog and moto SSM.

Given config files written by a person, when they are validated, pushed and pulled, then every
problem is one line naming the entry and field, nothing is written while any entry is invalid,
only changed parameters are written, and pull gives back a file push accepts unchanged.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from cli_run import run
from psycopg2 import sql

from aurora_sync_ops.config_check import cursor_recipe
from aurora_sync_ops.environment import local_aws_client
from aurora_sync_ops.local.stack import Stack


def stack_flags(local_stack: Stack) -> list[str]:
    settings = local_stack.settings
    return ["--local", "--state-dir", str(settings.root), "--port-base", str(settings.ports.postgres)]


@pytest.fixture(scope="module")
def schema(stack: dict[str, Any]) -> Iterator[str]:
    name = f"cfg_{uuid.uuid4().hex[:8]}"
    conn = psycopg2.connect(stack["postgres"]["admin_dsn"])
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        cur.execute(
            sql.SQL(
                "CREATE TABLE {} (id bigint PRIMARY KEY, note text, flag boolean, updated_at timestamptz)"
            ).format(sql.Identifier(name, "orders"))
        )
        cur.execute(sql.SQL("CREATE INDEX ON {} (updated_at)").format(sql.Identifier(name, "orders")))
        # No key constraint, no index: valid (the key column is NOT NULL), but slow and unsafe to merge.
        cur.execute(
            sql.SQL("CREATE TABLE {} (id bigint NOT NULL, payload jsonb, seen_at timestamptz)").format(
                sql.Identifier(name, "Raw Events")
            )
        )
    yield name
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))
    conn.close()


@pytest.fixture(autouse=True)
def no_default_source(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Without --source-dsn, `config validate` checks the source the shell or a running local stack
    gives: tests that pass neither must not find a developer's stack or variable."""
    monkeypatch.delenv("AURORA_SYNC_SOURCE_DSN", raising=False)
    monkeypatch.setenv("AURORA_SYNC_LOCAL_DIR", str(tmp_path_factory.mktemp("no-stack")))


@pytest.fixture
def ssm(stack: dict[str, Any]) -> Any:
    aws = stack["aws"]
    return local_aws_client("ssm", aws)


def write(tmp_path: Path, name: str, document: dict[str, Any]) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return path


# --- validate ------------------------------------------------------------------------------------


def test_validate_checks_the_source_catalog(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, stack: dict[str, Any], schema: str
) -> None:
    path = write(
        tmp_path,
        "catalog.json",
        {
            "orders": {"schema": schema, "table": "orders", "primary_key": ["id"]},
            "no_column": {
                "schema": schema,
                "table": "orders",
                "primary_key": ["id"],
                "columns": ["id", "missing", "updated_at"],
                "target": "NO_COLUMN",
            },
            "bad_cursor": {
                "schema": schema,
                "table": "orders",
                "primary_key": ["id"],
                "cursor": "note",
                "soft_delete_column": "note",
                "target": "BAD_CURSOR",
            },
            "no_table": {"schema": schema, "table": "nope", "primary_key": ["id"]},
            "raw_events": {
                "schema": schema,
                "table": "Raw Events",
                "primary_key": ["id"],
                "cursor": "seen_at",
            },
        },
    )
    dsn = stack["postgres"]["admin_dsn"]
    code, out, _ = run(capsys, "config", "validate", str(path), "--source-dsn", dsn, "--json")
    assert code == 1
    document = json.loads(out)
    assert document["valid"] is False and document["checked_source"] is True
    admin = psycopg2.extensions.parse_dsn(dsn)["user"]
    where = "Aurora {host}:{port}/{database} as {admin}".format(**stack["postgres"], admin=admin)
    assert document["source"] == f"{where} (--source-dsn)"
    by_table = {t["table"]: t for t in document["tables"]}
    assert by_table["orders"] == {
        "table": "orders",
        "entry": f"{path}[orders]",
        "valid": True,
        "findings": [],
    }
    found = {
        name: [(f["severity"], f["field"]) for f in by_table[name]["findings"]]
        for name in ("no_column", "bad_cursor", "no_table", "raw_events")
    }
    assert found == {
        "no_column": [("error", "columns")],
        "bad_cursor": [("error", "cursor"), ("error", "soft_delete_column")],
        "no_table": [("error", "table")],
        # No key constraint: the key is an error until the entry confirms it (see below).
        "raw_events": [("error", "primary_key"), ("warning", "cursor")],
    }
    relation = f'"{schema}"."Raw Events"'
    assert by_table["raw_events"]["findings"][1]["message"] == (
        f"field 'cursor': no index of {relation} starts with 'seen_at': every incremental run scans the "
        f'whole table to find its window; create one: CREATE INDEX CONCURRENTLY ON {relation} ("seen_at")'
    )
    assert by_table["no_column"]["findings"][0]["message"] == (
        f"field 'columns': column 'missing' is not in \"{schema}\".\"orders\" "
        "(it has 'id', 'note', 'flag', 'updated_at')"
    )
    assert "has type text; a cursor must be a timestamp" in by_table["bad_cursor"]["findings"][0]["message"]
    # The text form: one line per finding, the entry before the field; the password never shows.
    code, out, _ = run(capsys, "config", "validate", str(path), "--source-dsn", dsn)
    assert code == 1
    assert f'error: {path}[no_table]: field \'table\': source table "{schema}"."nope" does not exist' in out
    assert out.splitlines()[-1] == (
        f"{path}: 5 table(s), 1 valid; 5 error(s), 1 warning(s); checked against the source catalog of "
        f"{where} (--source-dsn)"
    )
    password = psycopg2.extensions.parse_dsn(dsn)["password"]
    assert password not in out


def test_validate_checks_the_source_the_other_commands_use_without_source_dsn(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    local_stack: Stack,
    schema: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = write(tmp_path, "t.json", {"nope": {"schema": schema, "table": "nope", "primary_key": ["id"]}})
    missing = f'error: {path}[nope]: field \'table\': source table "{schema}"."nope" does not exist'
    # Nothing configured and no stack running: said, with how to get a catalog check.
    code, out, _ = run(capsys, "config", "validate", str(path))
    assert code == 0
    assert out.splitlines()[-1] == (
        f"{path}: 1 table(s), 1 valid; 0 error(s), 0 warning(s); no catalog checked: no source database "
        "is reachable (pass --source-dsn DSN, set AURORA_SYNC_SOURCE_DSN, or start the local stack "
        "(aurora-sync local up))"
    )
    # The running local stack, as `sql`, `plan` and `parity` use it.
    postgres = local_stack.status()["postgres"]
    admin = psycopg2.extensions.parse_dsn(postgres["admin_dsn"])["user"]
    code, out, _ = run(capsys, "config", "validate", str(path), *stack_flags(local_stack))
    assert code == 1
    assert out.splitlines()[0].startswith(missing)
    assert out.splitlines()[-1].endswith(
        f"checked against the source catalog of Aurora {postgres['host']}:{postgres['port']}/"
        f"{postgres['database']} as {admin} (the local stack under {local_stack.settings.root})"
    )
    # The environment variable comes before the stack.
    monkeypatch.setenv("AURORA_SYNC_SOURCE_DSN", postgres["dsn"])
    code, out, _ = run(capsys, "config", "validate", str(path), "--json")
    document = json.loads(out)
    assert (code, document["checked_source"]) == (1, True)
    assert document["source"] == (
        f"Aurora {postgres['host']}:{postgres['port']}/{postgres['database']} as {postgres['user']} "
        "(AURORA_SYNC_SOURCE_DSN)"
    )
    assert postgres["password"] not in out


def test_validate_checks_modes_against_the_catalog_and_the_table_size(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, stack: dict[str, Any], schema: str
) -> None:
    conn = psycopg2.connect(stack["postgres"]["admin_dsn"])
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL("CREATE VIEW {} AS SELECT id, note FROM {}").format(
                sql.Identifier(schema, "orders_view"), sql.Identifier(schema, "orders")
            )
        )
        # A table PostgreSQL estimates (ANALYZE) above the size a full refresh is sensible for.
        cur.execute(sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY)").format(sql.Identifier(schema, "big")))
        cur.execute(
            sql.SQL("INSERT INTO {} SELECT generate_series(1, 150000)").format(sql.Identifier(schema, "big"))
        )
        cur.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(schema, "big")))
    conn.close()
    path = write(
        tmp_path,
        "modes.json",
        {
            "lookup": {"schema": schema, "table": "orders", "primary_key": ["id"], "mode": "xmin"},
            "viewed": {"schema": schema, "table": "orders_view", "primary_key": ["id"], "mode": "xmin"},
            "snapshot": {
                "schema": schema,
                "table": "orders_view",
                "primary_key": ["id"],
                "primary_key_not_enforced": True,
                "mode": "full",
                "target": "SNAPSHOT",
            },
            "unconfirmed": {
                "schema": schema,
                "table": "orders_view",
                "primary_key": ["id"],
                "mode": "full",
                "target": "UNCONFIRMED",
            },
            "big": {"schema": schema, "table": "big", "primary_key": ["id"], "mode": "full"},
        },
    )
    code, out, _ = run(
        capsys, "config", "validate", str(path), "--source-dsn", stack["postgres"]["admin_dsn"], "--json"
    )
    by_table = {t["table"]: t for t in json.loads(out)["tables"]}
    assert code == 1
    # No cursor column is needed, so none is checked or asked to be indexed.
    assert by_table["lookup"]["findings"] == []
    [error] = [f for f in by_table["viewed"]["findings"] if f["field"] == "mode"]
    assert "which has no row versions (xmin) to compare; use mode 'full'" in error["message"]
    [key] = by_table["unconfirmed"]["findings"]
    assert key["severity"] == "error"
    assert key["message"].startswith(
        f'field \'primary_key\': "{schema}"."orders_view" is a view: PostgreSQL enforces no key on it, so '
        'nothing guarantees that the configured key ["id"] is unique in its rows.'
    )
    assert not [f for f in by_table["snapshot"]["findings"] if f["severity"] == "error"]
    [size] = [f for f in by_table["big"]["findings"] if f["field"] == "mode"]
    assert size["severity"] == "warning"
    assert (
        "has about 150,000 rows; mode 'full' exports, loads and merges all of them on every run"
        in size["message"]
    )


# Key columns whose type or whose rows give values FINAL's NOT NULL key cannot hold.
KEY_TABLES = {
    "num_key": "id numeric PRIMARY KEY",
    "wide_key": "id numeric(40,2) PRIMARY KEY",
    "float_key": "id double precision PRIMARY KEY",
    "json_key": "id jsonb NOT NULL UNIQUE",
    "array_key": "id integer[] PRIMARY KEY",
    "bytea_key": "id bytea PRIMARY KEY",
    # numeric(5,-2) holds integers of up to 7 digits: NUMBER(38,0) holds every one of them.
    "neg_scale": "id numeric(5,-2) PRIMARY KEY",
    "clean_special": "id numeric(12,2) PRIMARY KEY, at date NOT NULL, t time NOT NULL",
    "special": "tenant integer NOT NULL, code numeric(10,2) NOT NULL, at timestamptz NOT NULL, "
    "t time NOT NULL, d date NOT NULL, PRIMARY KEY (tenant, code, at, t, d)",
    "unique_nullable": "id bigint UNIQUE",
    "loose": "id bigint",
}
KEYS = {"special": ["tenant", "code", "at", "t", "d"], "clean_special": ["id", "at", "t"]}


@pytest.fixture(scope="module")
def key_schema(stack: dict[str, Any]) -> Iterator[str]:
    name = f"keys_{uuid.uuid4().hex[:8]}"
    conn = psycopg2.connect(stack["postgres"]["admin_dsn"])
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        for table, columns in KEY_TABLES.items():
            cur.execute(
                sql.SQL("CREATE TABLE {} ({}, updated_at timestamptz)").format(
                    sql.Identifier(name, table), sql.SQL(columns)
                )
            )
            cur.execute(sql.SQL("CREATE INDEX ON {} (updated_at)").format(sql.Identifier(name, table)))
        insert = "INSERT INTO {} VALUES "
        rows = {
            "clean_special": "(1.5, '2024-01-01', '23:59:59.999999')",
            "special": "(1, 1, now(), '12:00', '2024-01-01'), (1, 'NaN', now(), '12:00', '2024-01-01'), "
            "(2, 'NaN', 'infinity', '24:00:00', '2024-01-01'), (3, 1, '-infinity', '12:00', "
            "'0044-03-15 BC'), (4, 1, now(), '12:00', '10000-01-01')",
            "unique_nullable": "(1), (NULL), (NULL)",
            "loose": "(1), (NULL)",
        }
        for table, values in rows.items():
            cur.execute(sql.SQL(insert + values).format(sql.Identifier(name, table)))
    yield name
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))
    conn.close()


def test_validate_refuses_keys_final_cannot_hold(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, stack: dict[str, Any], key_schema: str
) -> None:
    document = {
        table: {"schema": key_schema, "table": table, "primary_key": KEYS.get(table, ["id"])}
        for table in KEY_TABLES
    }
    path = write(tmp_path, "keys.json", document)
    dsn = stack["postgres"]["admin_dsn"]
    code, out, _ = run(capsys, "config", "validate", str(path), "--source-dsn", dsn, "--json")
    assert code == 1
    by_table = {t["table"]: t for t in json.loads(out)["tables"]}
    found = {name: [(f["severity"], f["field"]) for f in t["findings"]] for name, t in by_table.items()}
    assert found == {
        "num_key": [("error", "primary_key")],
        "wide_key": [("error", "primary_key")],
        "float_key": [("error", "primary_key")],
        "json_key": [("error", "primary_key")],
        "array_key": [("error", "primary_key")],
        "bytea_key": [("error", "primary_key")],
        "neg_scale": [],
        "clean_special": [],
        "special": [("error", "primary_key")],
        "unique_nullable": [("error", "primary_key")],
        # not enforced unique, nullable and not covered by an index; its NULL row counted
        "loose": [("error", "primary_key"), ("error", "primary_key"), ("error", "primary_key")],
    }

    def message(table: str, index: int = 0) -> str:
        text: str = by_table[table]["findings"][index]["message"]
        return text

    def relation(table: str) -> str:
        return f'"{key_schema}"."{table}"'

    assert message("num_key") == (
        f"field 'primary_key': column 'id' of {relation('num_key')} has type numeric, which cannot be a key: "
        "its values can have more digits than Snowflake's NUMBER(38,9) holds, and such a key becomes NULL "
        "in FINAL, where it cannot be merged; give it an exact type that fits, e.g. ALTER TABLE "
        f'{relation("num_key")} ALTER COLUMN "id" TYPE numeric(38,9) (PostgreSQL rounds existing values to '
        "the new scale: check them first), or choose another primary_key (the table's real key)"
    )
    assert "has type numeric(40,2), which cannot be a key" in message("wide_key")
    assert 'ALTER COLUMN "id" TYPE numeric(38,2)' in message("wide_key")
    assert "has type double precision, which cannot be a key: floating-point" in message("float_key")
    assert "has type jsonb, which cannot be a key: JSON becomes a VARIANT" in message("json_key")
    assert "has type integer[], which cannot be a key: arrays become" in message("array_key")
    assert message("bytea_key").endswith(
        "has type bytea, which cannot be a key: binary values over 8 MB become NULL in Snowflake's "
        "BINARY, where it cannot be merged; choose another primary_key (the table's real key)"
    )
    special = relation("special")
    assert message("special") == (
        f"field 'primary_key': 4 row(s) of {special} have a key value FINAL cannot hold (2 with 'code' NaN, "
        "2 with 'at' ±infinity or a year outside 1-9999, 1 with 't' 24:00:00, 2 with 'd' ±infinity or a "
        "year outside 1-9999): FINAL's key is NOT NULL and such a value becomes NULL, so a run cannot "
        "merge these rows and fails the table; update or delete them (find them with SELECT * FROM "
        f"{special} WHERE \"code\" = 'NaN'::numeric OR (\"at\" < '0001-01-01 00:00:00+00'::timestamptz "
        "OR \"at\" >= '10000-01-01 00:00:00+00'::timestamptz) "
        "OR \"t\" = '24:00:00'::time OR (\"d\" < '0001-01-01'::date OR \"d\" >= '10000-01-01'::date)), "
        "or choose another primary_key"
    )
    assert message("unique_nullable").startswith(
        f"field 'primary_key': 2 row(s) of {relation('unique_nullable')} have a key value FINAL cannot hold "
        "(2 with 'id' NULL)"
    )
    assert message("loose", 1) == (
        f"field 'primary_key': column 'id' is nullable in {relation('loose')}, and no primary key or unique "
        "index covers the key: FINAL's key is NOT NULL, so a row with a NULL key can never be merged; "
        f'declare it: ALTER TABLE {relation("loose")} ALTER COLUMN "id" SET NOT NULL (or add the table\'s '
        "primary key), or use the table's real key"
    )
    assert message("loose", 2).startswith(f"field 'primary_key': 1 row(s) of {relation('loose')} have")
    assert message("loose").startswith(
        "field 'primary_key': PostgreSQL does not enforce that the configured key [\"id\"] is unique in "
        f"{relation('loose')}: no primary key or valid, non-partial unique index has all its columns in it. "
        "The table has no primary key and no unique index."
    )


def test_validate_warns_when_it_may_not_read_the_key_values(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, stack: dict[str, Any], key_schema: str
) -> None:
    # The sync role sees the catalog but has no grant on this schema yet: the check cannot run.
    document = {"special": {"schema": key_schema, "table": "special", "primary_key": KEYS["special"]}}
    path = write(tmp_path, "special.json", document)
    dsn = stack["postgres"]["dsn"]
    code, out, _ = run(capsys, "config", "validate", str(path), "--source-dsn", dsn, "--json")
    assert code == 0
    [finding] = json.loads(out)["tables"][0]["findings"]
    assert (finding["severity"], finding["field"]) == ("warning", "primary_key")
    assert finding["message"].startswith(
        f'field \'primary_key\': could not check the key values of "{key_schema}"."special" (this '
        "connection may not read it); rows this finds cannot be merged: SELECT * FROM "
    )


@pytest.fixture(scope="module")
def music(stack: dict[str, Any]) -> Iterator[str]:
    """A chinook-like schema whose unique indexes PostgreSQL enforces in some ways and not in others."""
    name = f"music_{uuid.uuid4().hex[:8]}"
    conn = psycopg2.connect(stack["postgres"]["admin_dsn"])
    conn.autocommit = True
    statements = [
        "CREATE SCHEMA {s}",
        "CREATE TABLE {s}.artist (artist_id int PRIMARY KEY, name text, updated_at timestamptz)",
        "CREATE TABLE {s}.album (album_id int PRIMARY KEY, title text NOT NULL, artist_id int NOT NULL, "
        "updated_at timestamptz)",
        # Unique only among current rows: a partial index does not make the key unique.
        "CREATE TABLE {s}.track (track_id int NOT NULL, current boolean NOT NULL, updated_at timestamptz)",
        "CREATE UNIQUE INDEX track_current ON {s}.track (track_id) WHERE current",
        # Checked at commit: committed rows, all an export reads, are unique.
        "CREATE TABLE {s}.genre (genre_id int NOT NULL, updated_at timestamptz, "
        "CONSTRAINT genre_key UNIQUE (genre_id) DEFERRABLE INITIALLY DEFERRED)",
        "CREATE TABLE {s}.playlist (playlist_id int NOT NULL, updated_at timestamptz)",
        "INSERT INTO {s}.playlist VALUES (1, now()), (1, now())",
        # No column that every write advances.
        "CREATE TABLE {s}.invoice_line (invoice_line_id int PRIMARY KEY, invoice_id int NOT NULL)",
        "INSERT INTO {s}.invoice_line VALUES (1, 1), (2, 1)",
    ]
    with conn.cursor() as cur:
        for statement in statements:
            cur.execute(sql.SQL(statement).format(s=sql.Identifier(name)))
        for table in ("artist", "album", "track", "genre", "playlist"):
            cur.execute(sql.SQL("CREATE INDEX ON {} (updated_at)").format(sql.Identifier(name, table)))
        # A unique index whose build failed on the duplicates stays behind, invalid (indisvalid false).
        with pytest.raises(psycopg2.errors.UniqueViolation):
            cur.execute(
                sql.SQL("CREATE UNIQUE INDEX CONCURRENTLY playlist_id ON {} (playlist_id)").format(
                    sql.Identifier(name, "playlist")
                )
            )
    yield name
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))
    conn.close()


def test_a_key_postgresql_does_not_enforce_is_an_error_until_confirmed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, stack: dict[str, Any], music: str
) -> None:
    def entry(table: str, key: str, **more: Any) -> dict[str, Any]:
        return {"schema": music, "table": table, "primary_key": [key], **more}

    path = write(
        tmp_path,
        "music.json",
        {
            "album": entry("album", "artist_id"),
            "track": entry("track", "track_id"),
            "playlist": entry("playlist", "playlist_id"),
            "genre": entry("genre", "genre_id"),
            "confirmed": entry("track", "track_id", primary_key_not_enforced=True, target="CONFIRMED"),
            "needless": entry("artist", "artist_id", primary_key_not_enforced=True),
        },
    )
    dsn = stack["postgres"]["admin_dsn"]
    code, out, _ = run(capsys, "config", "validate", str(path), "--source-dsn", dsn, "--json")
    assert code == 1
    by_table = {t["table"]: t["findings"] for t in json.loads(out)["tables"]}
    assert {name: [(f["severity"], f["field"]) for f in found] for name, found in by_table.items()} == {
        "album": [("error", "primary_key")],
        "track": [("error", "primary_key")],
        "playlist": [("error", "primary_key")],
        "genre": [],
        "confirmed": [],
        "needless": [("warning", "primary_key_not_enforced")],
    }

    def relation(table: str) -> str:
        return f'"{music}"."{table}"'

    why = (
        "If two source rows share a key, FINAL holds only one of them (its MERGE keeps one row per key), "
        "and `aurora-sync parity` reports the difference."
    )
    assert by_table["album"][0]["message"] == (
        "field 'primary_key': PostgreSQL does not enforce that the configured key [\"artist_id\"] is unique "
        f"in {relation('album')}: no primary key or valid, non-partial unique index has all its columns in "
        f'it. The table has the primary key ["album_id"] and no unique index. {why} Fix: set primary_key '
        f'to the table\'s primary key, ["album_id"]; or check the key (SELECT "artist_id", count(*) FROM '
        f'{relation("album")} GROUP BY "artist_id" HAVING count(*) > 1 returns no row while it is unique) '
        "and confirm it with primary_key_not_enforced: true in this entry"
    )
    track = by_table["track"][0]["message"]
    assert 'The table has no primary key and the partial unique index ["track_id"] WHERE current. ' in track
    assert (
        f"Fix: make PostgreSQL enforce it: CREATE UNIQUE INDEX CONCURRENTLY ON {relation('track')} "
        '("track_id") (it fails while rows share a key); or check the key' in track
    )
    assert (
        'The table has no primary key and the invalid unique index ["playlist_id"] (left by a CREATE '
        "INDEX CONCURRENTLY that failed or has not finished). "
    ) in by_table["playlist"][0]["message"]
    assert by_table["needless"][0]["message"] == (
        f"field 'primary_key_not_enforced': the primary key of {relation('artist')} enforces the "
        'configured key ["artist_id"]; remove primary_key_not_enforced, so that this check warns '
        "again if that ever changes"
    )


OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def test_a_table_without_a_usable_cursor_is_told_the_cursorless_modes_and_the_trigger_recipe(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, stack: dict[str, Any], music: str
) -> None:
    path = write(
        tmp_path,
        "lines.json",
        {"invoice_line": {"schema": music, "table": "invoice_line", "primary_key": ["invoice_line_id"]}},
    )
    dsn = stack["postgres"]["admin_dsn"]
    code, out, _ = run(capsys, "config", "validate", str(path), "--source-dsn", dsn, "--json")
    assert code == 1
    [finding] = json.loads(out)["tables"][0]["findings"]
    relation = f'"{music}"."invoice_line"'
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        recipe = cursor_recipe(conn, music, "invoice_line", "updated_at")
        assert recipe == [
            f'ALTER TABLE {relation} ADD COLUMN "updated_at" timestamptz NOT NULL DEFAULT now();',
            f'CREATE OR REPLACE FUNCTION "{music}"."aurora_sync_set_updated_at"() RETURNS trigger LANGUAGE '
            'plpgsql AS $aurora_sync$BEGIN NEW."updated_at" := now(); RETURN NEW; END$aurora_sync$;',
            f'CREATE TRIGGER "aurora_sync_set_updated_at" BEFORE UPDATE ON {relation} FOR EACH ROW EXECUTE '
            f'FUNCTION "{music}"."aurora_sync_set_updated_at"();',
            f'CREATE INDEX CONCURRENTLY ON {relation} ("updated_at");',
        ]
        assert finding["message"] == (
            f"field 'cursor': column 'updated_at' is not in {relation} (it has 'invoice_line_id', "
            "'invoice_id'). Fix: set cursor to a column that every insert and update advances; a table "
            "without one syncs with mode: xmin (it reads the whole table on every run: sensible up to "
            "about 1,000,000 rows) or mode: full (up to about 100,000 rows), see "
            "docs/operations.md#tables-without-a-cursor-and-hard-deletes; or add such a column, kept by a "
            f"trigger: {' '.join(recipe)}"
        )
        # The recipe works as written, and then the table validates.
        with conn.cursor() as cur:
            for statement in recipe:
                cur.execute(statement)
            # The trigger stamps every update, whatever the statement wrote.
            cur.execute(
                sql.SQL(
                    "UPDATE {} SET updated_at = '2000-01-01' RETURNING updated_at > now() - interval '1 hour'"
                ).format(sql.Identifier(music, "invoice_line"))
            )
            assert [row[0] for row in cur.fetchall()] == [True, True]
        # The operations guide shows the same recipe.
        example = cursor_recipe(conn, "music", "invoice_line", "updated_at")
        assert "\n".join(example) in OPERATIONS.read_text()
    finally:
        conn.close()
    code, out, _ = run(capsys, "config", "validate", str(path), "--source-dsn", dsn, "--json")
    assert (code, json.loads(out)["tables"][0]["findings"]) == (0, [])


# --- push / pull ---------------------------------------------------------------------------------
def parameters(ssm: Any, path: str) -> dict[str, str]:
    found = ssm.get_parameters_by_path(Path=path, Recursive=True)["Parameters"]
    return {p["Name"]: p["Value"] for p in found}


def test_push_writes_changes_only_and_pull_round_trips(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, local_stack: Stack, ssm: Any
) -> None:
    path = f"/aurora-sync/h13-{uuid.uuid4().hex[:6]}/"
    flags = [*stack_flags(local_stack), "--config-path", path]
    tables = {
        "orders": {"table": "orders", "primary_key": ["id"]},
        "customers": {"table": "customers", "primary_key": ["id"], "soft_delete_column": "deleted_at"},
    }
    file = write(tmp_path, "tables.json", tables)

    code, out, _ = run(capsys, "config", "push", str(file), *flags, "--dry-run")
    assert code == 0
    assert (
        out.splitlines()[-1]
        == f"dry run, nothing written: would be 2 created, 0 updated, 0 unchanged, 0 removed under {path}"
    )
    assert parameters(ssm, path) == {}

    code, out, _ = run(capsys, "config", "push", str(file), *flags, "--json")
    assert code == 0
    assert json.loads(out)["tables"] == [
        {"table": "customers", "parameter": f"{path}customers", "action": "created"},
        {"table": "orders", "parameter": f"{path}orders", "action": "created"},
    ]
    stored = parameters(ssm, path)
    assert json.loads(stored[f"{path}orders"])["cursor"] == "updated_at"  # defaults written out
    versions = {p["Name"]: p["Version"] for p in ssm.get_parameters_by_path(Path=path)["Parameters"]}

    code, out, _ = run(capsys, "config", "pull", *flags)
    assert code == 0
    assert out.startswith(f"# aurora-sync table configs pulled from SSM {path} at ")
    pulled = tmp_path / "pulled.yaml"
    pulled.write_text(out)
    code, out, _ = run(capsys, "config", "push", str(pulled), *flags)
    assert code == 0
    assert out.splitlines() == [
        f"  unchanged          customers  {path}customers",
        f"  unchanged          orders     {path}orders",
        f"0 created, 0 updated, 2 unchanged, 0 removed under {path}",
    ]
    after = {p["Name"]: p["Version"] for p in ssm.get_parameters_by_path(Path=path)["Parameters"]}
    assert after == versions  # nothing rewritten

    # One entry changed, one dropped from the file: updated, and reported but kept.
    file = write(tmp_path, "tables.json", {"orders": {**tables["orders"], "lookback_seconds": 60}})
    code, out, _ = run(capsys, "config", "push", str(file), *flags)
    assert code == 0
    assert out.splitlines() == [
        f"  removed-not-pruned customers  {path}customers "
        "(in SSM, not in the file; kept: pass --prune to delete)",
        f"  updated            orders     {path}orders",
        f"0 created, 1 updated, 0 unchanged, 0 removed under {path}",
    ]
    assert json.loads(parameters(ssm, path)[f"{path}orders"])["lookback_seconds"] == 60
    assert f"{path}customers" in parameters(ssm, path)

    code, out, _ = run(capsys, "config", "push", str(file), *flags, "--prune")
    assert code == 0
    assert out.splitlines()[0] == f"  removed            customers  {path}customers"
    assert sorted(parameters(ssm, path)) == [f"{path}orders"]

    code, out, _ = run(capsys, "config", "pull", *flags, "--json")
    assert code == 0
    assert json.loads(out) == {
        "orders": {
            "columns": None,
            "cursor": "updated_at",
            "enabled": True,
            "hard_deletes": "ignore",
            "initial_watermark": None,
            "lookback_seconds": 60,
            "max_lanes": 8,
            "max_rows_per_chunk": 1000000,
            "mode": "cursor",
            "primary_key": ["id"],
            "rows_per_lane": 10000000,
            "schema": "public",
            "soft_delete_column": None,
            "table": "orders",
            "target": None,
        }
    }


def test_push_writes_nothing_when_any_entry_is_invalid(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, local_stack: Stack, ssm: Any
) -> None:
    path = f"/aurora-sync/h13-{uuid.uuid4().hex[:6]}/"
    file = write(
        tmp_path,
        "tables.json",
        {"good": {"table": "good", "primary_key": ["id"]}, "bad": {"table": "bad", "primary_key": []}},
    )
    code, out, err = run(
        capsys, "config", "push", str(file), *stack_flags(local_stack), "--config-path", path
    )
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"error: {file}[bad]: field 'primary_key': must not be empty, name at least one column, "
        'e.g. ["id"]',
        f"aurora-sync: nothing was written: 1 error(s) in {file}; fix them (aurora-sync config validate "
        f"{file}) and push again",
    ]
    assert parameters(ssm, path) == {}
    # --prune with an empty file would delete every table: refused.
    empty = write(tmp_path, "empty.json", {})
    code, _, err = run(
        capsys, "config", "push", str(empty), *stack_flags(local_stack), "--config-path", path, "--prune"
    )
    assert code == 1
    assert err.startswith(f"aurora-sync: {empty} has no tables, so --prune would delete every table config")


def test_push_refuses_a_new_primary_key_without_rekey_and_prints_the_procedure(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, local_stack: Stack, ssm: Any
) -> None:
    path = f"/aurora-sync/h13-{uuid.uuid4().hex[:6]}/"
    flags = [*stack_flags(local_stack), "--config-path", path]
    tables = {
        "orders": {"table": "orders", "primary_key": ["id"]},
        "customers": {"table": "customers", "primary_key": ["id"]},
    }
    code, _, err = run(capsys, "config", "push", str(write(tmp_path, "v1.json", tables)), *flags)
    assert code == 0, err
    before = parameters(ssm, path)

    # Another change in the same file: nothing at all is written while the key change is refused.
    changed = {
        "orders": {"table": "orders", "primary_key": ["tenant", "id"]},
        "customers": {"table": "customers", "primary_key": ["id"], "lookback_seconds": 60},
    }
    file = write(tmp_path, "v2.json", changed)
    for extra in ([], ["--dry-run"]):
        code, out, err = run(capsys, "config", "push", str(file), *flags, *extra)
        assert (code, out) == (1, "")
        assert parameters(ssm, path) == before
    lines = err.splitlines()
    assert lines[0] == (
        f"error: {file}[orders]: field 'primary_key': changes the key from [\"id\"] (in SSM, {path}orders) "
        'to ["tenant", "id"]'
    )
    assert lines[1].startswith("A new primary key needs a re-key: FINAL's rows were merged on the old key")
    assert [line.split("   #")[0] for line in lines[2:7]] == [
        f"  1. aurora-sync sql snowflake --config {file} --tables orders --rekey",
        f"  2. aurora-sync sql snowflake --config {file} --tables orders --rekey --apply",
        f"  3. aurora-sync config push {file} --rekey",
        "  4. aurora-sync sync --tables orders --full",
        "  5. aurora-sync parity --tables orders",
    ]
    assert lines[-1] == (
        "aurora-sync: nothing was written: 1 table(s) change their primary key; re-key them as above, "
        "then push with --rekey"
    )

    # Reordering the key's columns is not a new key: the MERGE matches the same rows.
    reordered = {**tables, "orders": {"table": "orders", "primary_key": ["id"]}}
    code, _, err = run(capsys, "config", "push", str(write(tmp_path, "v3.json", reordered)), *flags)
    assert code == 0, err

    code, out, err = run(capsys, "config", "push", str(file), *flags, "--rekey")
    assert code == 0, err
    assert out.splitlines()[1] == (
        f"  updated            orders     {path}orders (new primary key: FINAL must be re-keyed, "
        "`aurora-sync sql snowflake --tables orders --rekey --apply`, then `aurora-sync sync --tables "
        "orders --full`)"
    )
    assert json.loads(parameters(ssm, path)[f"{path}orders"])["primary_key"] == ["tenant", "id"]


def test_pull_leaves_out_invalid_parameters_and_says_so(
    capsys: pytest.CaptureFixture[str], local_stack: Stack, ssm: Any
) -> None:
    path = f"/aurora-sync/h13-{uuid.uuid4().hex[:6]}/"
    ssm.put_parameter(Name=f"{path}good", Value='{"table": "good", "primary_key": ["id"]}', Type="String")
    ssm.put_parameter(Name=f"{path}broken", Value='{"table": "broken"}', Type="String")
    code, out, err = run(capsys, "config", "pull", *stack_flags(local_stack), "--config-path", path)
    assert code == 1
    assert "\ngood:\n" in out and "broken" not in out
    assert err.splitlines() == [
        f"aurora-sync: left out, invalid: {path}broken: field 'primary_key': required, e.g. [\"id\"]",
        f"aurora-sync: 1 parameter(s) under {path} are invalid and not in the output; fix them, or add "
        "corrected entries to the file and push it",
    ]
