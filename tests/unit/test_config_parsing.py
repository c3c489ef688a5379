"""The table configs' one parse pipeline, without a server: a ``--config`` file and SSM parameters
give the same results through it, and a key written twice is refused by one rule. SSM itself
(fetching, caching, errors) is tests/library/test_table_config.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from aurora_sync.config import (
    ConfigEntry,
    InvalidTable,
    LoadedTable,
    TableConfigResult,
    load_json,
    parse_table_configs,
    reject_duplicate_keys,
)
from aurora_sync.errors import ConfigError
from aurora_sync_ops.environment import read_config_file

CONFIGS = {
    "orders": {"table": "orders", "primary_key": ["id"]},
    "refunds": {"table": "refunds", "primary_key": ["id"], "lookback": 60},
    "a": {"table": "a", "primary_key": ["id"], "target": "SHARED"},
    "b": {"table": "b", "primary_key": ["id"], "target": "SHARED"},
}


def outcomes(results: list[TableConfigResult], label: str) -> list[tuple[str, str]]:
    """Each result's name and message, with the store's label of an entry (``label`` holding
    ``{}`` for the name) written ``<store>/name``."""
    pattern = re.escape(label).replace(re.escape("{}"), r"([a-z_]+)")
    return [
        (r.name, "valid" if isinstance(r, LoadedTable) else re.sub(pattern, r"<store>/\1", r.message))
        for r in results
    ]


def test_a_config_file_and_ssm_parameters_go_through_one_pipeline(tmp_path: Path) -> None:
    path = tmp_path / "tables.json"
    path.write_text(json.dumps(CONFIGS))
    from_file = outcomes(read_config_file(path), f"{path}[{{}}]")
    from_ssm = outcomes(
        parse_table_configs(
            ConfigEntry(name, f"/aurora-sync/tables/{name}", json.dumps(config))
            for name, config in CONFIGS.items()
        ),
        "/aurora-sync/tables/{}",
    )
    assert from_file == from_ssm
    messages = dict(from_ssm)
    assert list(messages) == ["a", "b", "orders", "refunds"]
    assert messages["orders"] == "valid"
    assert messages["a"] == (
        "<store>/a: field 'target': Snowflake base name 'SHARED' is also used by <store>/b; "
        "give each table its own 'target'"
    )
    assert messages["refunds"].startswith("<store>/refunds: field 'lookback': unknown key; did you mean")


def test_an_entry_a_store_refused_itself_is_kept_and_sorted_in() -> None:
    nested = InvalidTable("deep/orders", "/t/deep/orders", "/t/deep/orders: is nested below /t/")
    results = parse_table_configs([ConfigEntry("zeta", "/t/zeta", json.dumps(CONFIGS["orders"])), nested])
    assert [r.name for r in results] == ["deep/orders", "zeta"]
    assert results[0] is nested


def test_a_key_written_twice_is_refused_by_one_rule_with_its_lines_when_known() -> None:
    with pytest.raises(ConfigError) as caught:
        load_json('{"table": "a", "mode": "full", "mode": "xmin"}')
    assert str(caught.value) == (
        'key "mode" appears more than once in the same mapping; a parser would silently keep the '
        "last one. Fix: keep one of them"
    )
    with pytest.raises(ConfigError) as caught:
        reject_duplicate_keys([("table", 1), ("mode", 2), ("mode", 3)], lines=[3, 4, 5])
    assert str(caught.value).startswith(
        'line 5: key "mode" appears more than once in the same mapping (first at line 4);'
    )
    assert reject_duplicate_keys([("table", "a"), ("mode", "xmin")]) == {"table": "a", "mode": "xmin"}


def test_ssm_values_and_file_entries_are_refused_for_a_repeated_key_alike(tmp_path: Path) -> None:
    (parameter,) = parse_table_configs(
        [ConfigEntry("orders", "/t/orders", '{"table": "orders", "table": "x", "primary_key": ["id"]}')]
    )
    assert isinstance(parameter, InvalidTable)
    path = tmp_path / "tables.yaml"
    path.write_text("orders:\n  table: orders\n  table: x\n  primary_key: [id]\n")
    with pytest.raises(ConfigError) as caught:
        read_config_file(path)
    # The same rule and words; the file's message adds the line, the parameter's says where.
    rule = 'key "table" appears more than once in the same mapping'
    assert parameter.message.startswith(f"/t/orders: value is not valid JSON: {rule}; a parser would")
    assert str(caught.value).startswith(f"--config {path}: line 3: {rule} (first at line 2); a parser would")
