"""Table entries without a server: the suggested name of a bad one, and a confirmed unenforced key's
round trip. The entries in SSM are tests/library/test_table_config.py."""

from __future__ import annotations

import json

import pytest

from aurora_sync.config import (
    TABLE_NAME_PATTERN,
    InvalidTable,
    LoadedTable,
    parse_table_config,
)

VALID = {"table": "orders", "primary_key": ["id"]}


@pytest.mark.parametrize(
    ("name", "label", "suggested"),
    [
        # A config file's entry: the label holds the file's folders, which are no part of a name.
        ("Bad-Name", "work/tables.yaml[Bad-Name]", "bad_name"),
        ("9 Lives", "/srv/configs/music.yaml[9 Lives]", "t_9_lives"),
        ("Orders", "/aurora-sync/tables/Orders", "orders"),
    ],
)
def test_a_bad_table_name_suggests_a_valid_name_built_from_the_name_alone(
    name: str, label: str, suggested: str
) -> None:
    result = parse_table_config(name, label, json.dumps(VALID))
    assert isinstance(result, InvalidTable)
    assert result.message.endswith(f"; rename it, e.g. to {suggested!r}"), result.message
    assert TABLE_NAME_PATTERN.fullmatch(suggested)


def test_a_confirmed_unenforced_key_round_trips_and_the_default_is_not_written() -> None:
    confirmed = parse_table_config("t", "/p/t", json.dumps({**VALID, "primary_key_not_enforced": True}))
    assert isinstance(confirmed, LoadedTable) and confirmed.config.primary_key_not_enforced is True
    assert json.loads(confirmed.config.dump_json())["primary_key_not_enforced"] is True
    # Absent at its default: a planner deployed before the field existed still accepts the value.
    default = parse_table_config("t", "/p/t", json.dumps(VALID))
    assert isinstance(default, LoadedTable)
    assert "primary_key_not_enforced" not in json.loads(default.config.dump_json())
    wrong = parse_table_config("t", "/p/t", json.dumps({**VALID, "primary_key_not_enforced": "yes"}))
    assert isinstance(wrong, InvalidTable)
    assert wrong.message == (
        "/p/t: field 'primary_key_not_enforced': must be true or false (a JSON boolean, not a string), "
        "e.g. true (got a string)"
    )
