"""Table configs in SSM Parameter Store (moto server): strict validation, one bad table never
stops the others, rerun subsets, writing configs, and SSM outages."""

from __future__ import annotations

import json
import socket
import uuid
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config

from aurora_sync.config import (
    InvalidTable,
    LoadedTable,
    TableConfig,
    load_table_configs,
    put_table_config,
    select_tables,
)
from aurora_sync.errors import ConfigError, ConfigStoreUnavailable

VALID = {"table": "orders", "primary_key": ["id"]}


@pytest.fixture
def ssm(lambda_env: dict[str, str]) -> Any:
    return boto3.client("ssm")


@pytest.fixture
def path() -> str:
    return f"/aurora-sync-test/{uuid.uuid4().hex[:12]}/tables/"


def put(ssm: Any, name: str, value: Any, *, secure: bool = False) -> None:
    ssm.put_parameter(
        Name=name,
        Value=value if isinstance(value, str) else json.dumps(value),
        Type="SecureString" if secure else "String",
        Overwrite=True,
    )


def by_name(results: list[Any]) -> dict[str, Any]:
    return {r.name: r for r in results}


def test_string_and_securestring_configs_load_with_defaults(ssm: Any, path: str) -> None:
    put(ssm, f"{path}orders", VALID)
    put(
        ssm,
        f"{path}line_items",
        {
            "schema": "Sales Data",
            "table": "Line Items",
            "primary_key": ["order_id", "line no"],
            "cursor": "modified",
            "columns": ["order_id", "line no", "modified", "qty", "gone"],
            "soft_delete_column": "gone",
            "soft_delete_mode": "flag",
            "lookback_seconds": 0,
            "enabled": False,
            "initial_watermark": "2024-01-01T00:00:00+00:00",
            "max_rows_per_chunk": 1000,
            "target": "LINES",
        },
        secure=True,
    )

    results = load_table_configs(path, max_age=0)

    assert [r.name for r in results] == ["line_items", "orders"]
    orders, lines = by_name(results)["orders"], by_name(results)["line_items"]
    assert isinstance(orders, LoadedTable) and isinstance(lines, LoadedTable)
    assert orders.parameter == f"{path}orders"
    assert orders.config.schema_name == "public"
    assert orders.config.cursor == "updated_at"
    assert orders.config.lookback_seconds == 900
    assert orders.config.max_rows_per_chunk == 1_000_000
    assert orders.config.columns is None and orders.config.enabled is True
    assert orders.target == "ORDERS"
    assert lines.config.schema_name == "Sales Data" and lines.config.table == "Line Items"
    assert lines.config.primary_key == ["order_id", "line no"]
    assert lines.config.soft_delete_mode == "flag" and lines.config.enabled is False
    assert lines.target == "LINES"


# name -> (value, expected message after "<parameter>: ")
BAD: dict[str, tuple[str, str]] = {
    "malformed": (
        '{"table": "orders" "primary_key": ["id"]}',
        "value is not valid JSON: Expecting ',' delimiter at line 1 column 20 (char 19)",
    ),
    "unknown_key": (
        json.dumps({**VALID, "primary_keys": ["id"]}),
        "field 'primary_keys': unknown key; did you mean 'primary_key'?",
    ),
    "no_table": (json.dumps({"primary_key": ["id"]}), "field 'table': required, e.g. \"orders\""),
    "pk_string": (
        json.dumps({"table": "orders", "primary_key": "id"}),
        "field 'primary_key': must be a list of column names, e.g. [\"id\"] (got a string)",
    ),
    "pk_empty": (
        json.dumps({"table": "orders", "primary_key": []}),
        "field 'primary_key': must not be empty",
    ),
    "pk_duplicate": (
        json.dumps({"table": "orders", "primary_key": ["id", "id"]}),
        "field 'primary_key': lists \"id\" more than once",
    ),
    "cursor_quote": (
        json.dumps({**VALID, "cursor": 'updated"at'}),
        "field 'cursor': contains a double quote",
    ),
    "bool_string": (
        json.dumps({**VALID, "enabled": "true"}),
        "field 'enabled': must be true or false (a JSON boolean, not a string), e.g. true (got a string)",
    ),
    "negative_lookback": (
        json.dumps({**VALID, "lookback_seconds": -1}),
        "field 'lookback_seconds': input should be greater than or equal to 0",
    ),
    "mode_without_column": (
        json.dumps({**VALID, "soft_delete_mode": "flag"}),
        "field 'soft_delete_mode': is only valid with 'soft_delete_column'",
    ),
    "columns_without_pk": (
        json.dumps({**VALID, "columns": ["total", "updated_at"]}),
        "field 'columns': misses \"id\"",
    ),
    "long_identifier": (
        json.dumps({**VALID, "primary_key": ["é" * 32]}),
        "field 'primary_key[0]': is 64 bytes long; PostgreSQL identifiers are at most 63",
    ),
    "control_char": (
        json.dumps({**VALID, "schema": "pub\tlic"}),
        "field 'schema': contains the control character U+0009",
    ),
    "bad_watermark": (
        json.dumps({**VALID, "initial_watermark": "last tuesday"}),
        "field 'initial_watermark': must be an ISO-8601 timestamp or date",
    ),
    "small_chunks": (
        json.dumps({**VALID, "max_rows_per_chunk": 999}),
        "field 'max_rows_per_chunk': input should be greater than or equal to 1000",
    ),
    "bad_target": (
        json.dumps({**VALID, "target": "9lives"}),
        "field 'target': must be a Snowflake unquoted identifier",
    ),
    "float_lookback": (
        json.dumps({**VALID, "lookback_seconds": 900.5}),
        "field 'lookback_seconds': must be an integer number of seconds >= 0",
    ),
    "duplicate_key": (
        '{"table": "orders", "table": "x", "primary_key": ["id"]}',
        'value is not valid JSON: key "table" appears more than once',
    ),
    "Orders": (json.dumps(VALID), "parameter name 'Orders' is not a valid table name"),
    "ord-ers": (json.dumps(VALID), "parameter name 'ord-ers' is not a valid table name"),
}


def test_each_bad_parameter_is_an_error_naming_path_and_field_while_valid_ones_load(
    ssm: Any, path: str
) -> None:
    for name, (value, _) in BAD.items():
        put(ssm, f"{path}{name}", value)
    put(ssm, f"{path}good", VALID)
    # Spaces, mixed case and SQL punctuation are legal catalog names: they get quoted later.
    put(
        ssm,
        f"{path}odd_names",
        {
            "schema": "My Schema",
            "table": "x'; DROP TABLE y; -- ",
            "primary_key": ["Id"],
            "cursor": "Updated At",
        },
    )

    results = by_name(load_table_configs(path, max_age=0))

    assert isinstance(results["good"], LoadedTable)
    assert isinstance(results["odd_names"], LoadedTable)
    assert results["odd_names"].config.table == "x'; DROP TABLE y; -- "
    for name, (_, expected) in BAD.items():
        entry = results[name]
        assert isinstance(entry, InvalidTable), name
        assert entry.parameter == f"{path}{name}"
        assert entry.message.startswith(f"{path}{name}: {expected}"), entry.message
        assert isinstance(entry.error(), ConfigError)
    assert len(results) == len(BAD) + 2


def test_messages_carry_short_excerpts_for_strings_and_none_for_securestrings(ssm: Any, path: str) -> None:
    broken = '{"table": "orders", "primary_key": ["id"], "note": "' + "s3cr3t-" * 40 + '" oops}'
    put(ssm, f"{path}plain", broken)
    put(ssm, f"{path}secret", broken, secure=True)

    results = by_name(load_table_configs(path, max_age=0))

    plain, secret = results["plain"].message, results["secret"].message
    assert " near '" in plain and plain.count("s3cr3t") <= 4
    assert "s3cr3t" not in secret and " near " not in secret
    assert secret.startswith(f"{path}secret: value is not valid JSON: Expecting ',' delimiter at line 1")


def test_nested_parameters_and_shared_targets_are_errors(ssm: Any, path: str) -> None:
    put(ssm, f"{path}team/orders", VALID)
    put(ssm, f"{path}orders", VALID)
    put(ssm, f"{path}orders_copy", {**VALID, "target": "orders"})

    results = by_name(load_table_configs(path, max_age=0))

    nested = results["team/orders"]
    assert isinstance(nested, InvalidTable)
    assert nested.message == (
        f"{path}team/orders: is nested below {path}; table configs must sit directly under it, "
        f"move it to {path}orders"
    )
    for name, other in (("orders", "orders_copy"), ("orders_copy", "orders")):
        entry = results[name]
        assert isinstance(entry, InvalidTable)
        assert entry.message == (
            f"{path}{name}: field 'target': Snowflake base name 'ORDERS' is also used by {path}{other}; "
            "give each table its own 'target'"
        )


def test_rerun_subset_selects_names_and_rejects_unknown_ones(ssm: Any, path: str) -> None:
    for name in ("customers", "orders", "payments"):
        put(ssm, f"{path}{name}", {**VALID, "table": name})
    results = load_table_configs(path, max_age=0)

    assert [r.name for r in select_tables(results, ["payments", "orders"])] == ["orders", "payments"]
    assert [r.name for r in select_tables(results, None)] == ["customers", "orders", "payments"]
    with pytest.raises(ConfigError) as info:
        select_tables(results, ["orders", "refunds", "ghosts"])
    assert str(info.value) == (
        'rerun names unknown table(s) "refunds", "ghosts"; known tables: "customers", "orders", '
        '"payments". Fix: use names of parameters under the config path in the execution input\'s "tables"'
    )


def test_put_table_config_round_trips_canonical_json(ssm: Any, path: str) -> None:
    config = TableConfig.model_validate(
        {"schema": "sales", "table": "orders", "primary_key": ["id"], "lookback_seconds": 60}
    )

    parameter = put_table_config("orders", config, path)

    assert parameter == f"{path}orders"
    stored = ssm.get_parameter(Name=parameter)["Parameter"]
    assert stored["Value"] == config.dump_json()
    assert json.loads(stored["Value"])["schema"] == "sales"
    (loaded,) = load_table_configs(path, max_age=0)
    assert isinstance(loaded, LoadedTable) and loaded.config == config
    with pytest.raises(ConfigError, match=r"already exists\. Fix: pass overwrite=True"):
        put_table_config("orders", config, path, overwrite=False)
    with pytest.raises(ConfigError, match="parameter name 'Orders' is not a valid table name"):
        put_table_config("Orders", config, path)


def test_cache_serves_repeat_loads_until_max_age(ssm: Any, path: str) -> None:
    put(ssm, f"{path}orders", VALID)
    assert len(load_table_configs(path, max_age=300)) == 1
    put(ssm, f"{path}payments", {**VALID, "table": "payments"})

    assert len(load_table_configs(path, max_age=300)) == 1
    assert len(load_table_configs(path, max_age=0)) == 2


def test_unreachable_ssm_is_transient(lambda_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    client = boto3.client("ssm", config=Config(connect_timeout=1, retries={"max_attempts": 1}))

    with pytest.raises(ConfigStoreUnavailable) as info:
        load_table_configs("/aurora-sync-test/unreachable/", ssm_client=client, max_age=0)

    assert str(info.value).startswith(
        "AWS could not be reached for ssm:GetParametersByPath on /aurora-sync-test/unreachable/ "
        "(EndpointConnectionError). Fix: retry later; check the SSM endpoint"
    )


def _answer_with(client: Any, status: int, code: str) -> None:
    """Make the client's HTTP layer answer like SSM does; moto cannot deny or throttle on demand."""

    def reply(**_: Any) -> AWSResponse:
        body = json.dumps({"__type": code, "message": "User: arn:aws:sts::123456789012:assumed-role/x/y"})
        return AWSResponse("https://ssm", status, {"x-amzn-RequestId": "r"}, _Raw(body.encode()))

    client.meta.events.register("before-send.ssm.GetParametersByPath", reply)


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


def test_access_denied_is_terminal_with_the_iam_fix_and_throttling_transient(
    lambda_env: dict[str, str],
) -> None:
    denied = boto3.client("ssm", config=Config(retries={"max_attempts": 1}))
    _answer_with(denied, 400, "AccessDeniedException")
    throttled = boto3.client("ssm", config=Config(retries={"max_attempts": 1}))
    _answer_with(throttled, 400, "ThrottlingException")

    with pytest.raises(ConfigError) as info:
        load_table_configs("/aurora-sync/tables/", ssm_client=denied, max_age=0)
    assert str(info.value) == (
        "access denied for ssm:GetParametersByPath on /aurora-sync/tables/ (AccessDeniedException). "
        "Fix: grant the function's role ssm:GetParametersByPath on "
        "arn:aws:ssm:<region>:<account>:parameter/aurora-sync/tables/* and kms:Decrypt on the KMS key "
        "of SecureString parameters"
    )
    with pytest.raises(
        ConfigStoreUnavailable, match=r"refused ssm:GetParametersByPath .* \(ThrottlingException\)"
    ):
        load_table_configs("/aurora-sync/tables/", ssm_client=throttled, max_age=0)
