"""The ``aurora-sync`` CLI where it needs no server: config files validated without a source,
one-line errors, and the fixes named when neither a local stack nor an AWS region is there. The
same commands against the local stack are tests/library/test_cli_{config,inspect,sql}.py."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from cli_run import run

from aurora_sync.config import LoadedTable
from aurora_sync_ops.environment import read_config_file

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tables.yaml"


@pytest.fixture(autouse=True)
def no_default_source(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Without --source-dsn, `config validate` checks the source the shell or a running local stack
    gives: these tests must not find a developer's stack or variable."""
    monkeypatch.delenv("AURORA_SYNC_SOURCE_DSN", raising=False)
    monkeypatch.setenv("AURORA_SYNC_LOCAL_DIR", str(tmp_path_factory.mktemp("no-stack")))


def test_the_example_file_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "config", "validate", str(EXAMPLE))
    assert code == 0
    assert out.splitlines()[-1].startswith(f"{EXAMPLE}: 3 table(s), 3 valid; 0 error(s), 0 warning(s);")


def test_validate_prints_one_line_per_problem_naming_entry_and_field(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "orders:\n  table: orders\n  cursr: updated_at\n  lookback_seconds: -5\n"
        "a:\n  table: a\n  primary_key: [id]\n  target: SHARED\n"
        "b:\n  table: b\n  primary_key: [id]\n  target: SHARED\n"
        "Bad-Name:\n  table: x\n  primary_key: [id]\n"
    )
    code, out, _ = run(capsys, "config", "validate", str(path))
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith(
        f"error: {path}[Bad-Name]: parameter name 'Bad-Name' is not a valid table name: use "
        "1-63 lower-case letters, digits and _ starting with a letter"
    )
    assert lines[1:-1] == [
        f"error: {path}[a]: field 'target': Snowflake base name 'SHARED' is also used by {path}[b]; "
        "give each table its own 'target'",
        f"error: {path}[b]: field 'target': Snowflake base name 'SHARED' is also used by {path}[a]; "
        "give each table its own 'target'",
        f"error: {path}[orders]: field 'cursr': unknown key; did you mean 'cursor'? allowed keys: schema, "
        "table, primary_key, primary_key_not_enforced, mode, cursor, columns, soft_delete_column, "
        "soft_delete_mode, lookback_seconds, enabled, initial_watermark, max_rows_per_chunk, rows_per_lane, "
        "max_lanes, hard_deletes, "
        "reconcile_every, target",
        f"error: {path}[orders]: field 'lookback_seconds': input should be greater than or equal to 0 "
        "(expected an integer number of seconds >= 0)",
        f"error: {path}[orders]: field 'primary_key': required, e.g. [\"id\"]",
    ]
    assert lines[-1].startswith(f"{path}: 4 table(s), 0 valid; 6 error(s), 0 warning(s);")


def test_errors_are_one_line_without_a_traceback(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    code, out, err = run(capsys, "config", "validate", str(missing))
    assert (code, out) == (1, "")
    assert err == (
        f"aurora-sync: {missing}: cannot read it (No such file or directory). "
        "Fix: pass an existing JSON or YAML file\n"
    )
    broken = tmp_path / "broken.json"
    broken.write_text('{"a": {"table": "a"}, "a": {}}')
    code, _, err = run(capsys, "config", "validate", str(broken))
    assert code == 1
    assert err == (
        f'aurora-sync: {broken}: key "a" appears more than once in the same mapping; a parser would '
        "silently keep the last one. Fix: keep one of them\n"
    )


def test_duplicate_yaml_keys_are_refused_at_any_depth_naming_key_line_and_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # YAML itself keeps the last of two equal keys; JSON files are refused for it already.
    nested = tmp_path / "nested.yaml"
    nested.write_text("artist:\n  table: artist\n  primary_key: [artist_id]\n  mode: full\n  mode: xmin\n")
    code, out, err = run(capsys, "config", "validate", str(nested))
    assert (code, out) == (1, "")
    assert err == (
        f'aurora-sync: {nested}: line 5: key "mode" appears more than once in the same mapping (first at '
        "line 4); a parser would silently keep the last one. Fix: keep one of them\n"
    )
    top = tmp_path / "top.yaml"
    top.write_text("album:\n  table: album\n  primary_key: [id]\n\nalbum:\n  table: albums\n")
    code, _, err = run(capsys, "config", "validate", str(top))
    assert code == 1
    assert f'{top}: line 5: key "album" appears more than once in the same mapping (first at line 1)' in err
    # Merge keys (<<) are YAML's way of overriding on purpose: they stay allowed.
    merged = tmp_path / "merged.yaml"
    merged.write_text(
        "base: &base\n  table: album\n  primary_key: [album_id]\n  mode: full\n"
        "album:\n  <<: *base\n  mode: xmin\n"
    )
    loaded = {r.name: r for r in read_config_file(merged)}
    album = loaded["album"]
    assert isinstance(album, LoadedTable) and album.config.mode == "xmin"


@pytest.mark.parametrize("command", ["parity", "status", "plan"])
def test_no_stack_and_no_aws_region_is_one_line_naming_the_fixes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Any, command: str
) -> None:
    """Without a running local stack, the CLI falls back to the AWS account: with no region set
    botocore raised NoRegionError as a traceback instead of saying what to configure."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "AURORA_SYNC_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    code, out, err = run(capsys, command, "--state-dir", str(tmp_path / "no-stack"))
    assert code == 1
    assert out == ""
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "no AWS region" in err
    assert "AWS_DEFAULT_REGION" in err and "aurora-sync local up" in err


def test_no_snowflake_setup_names_the_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A state dir with no running stack, and no variables: nothing says where Snowflake is.
    path = tmp_path / "tables.json"
    path.write_text("{}")
    code, out, err = run(
        capsys,
        "sql",
        "snowflake",
        "--setup",
        "--config",
        str(path),
        "--state-dir",
        str(tmp_path / "none"),
        "--port-base",
        "26990",
    )
    assert (code, out) == (1, "")
    assert err.startswith("aurora-sync: no bucket and no storage_role_arn for the Snowflake objects.")
    assert "pass --bucket and --storage-role-arn" in err
