"""Table configs: one SSM parameter per table, validated strictly, loaded table by table.

The parameter's last path segment is the table's NAME (``/aurora-sync/tables/orders`` ->
``orders``): it is the S3 key prefix, the name a rerun uses (``{"tables": ["orders"]}``) and
the default Snowflake object base name. The value is a JSON document validated by
``TableConfig``. One broken parameter yields an ``InvalidTable`` entry whose message names
the parameter path, the field and the fix; every other table still loads.
"""

from __future__ import annotations

import difflib
import json
import re
import threading
import time
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .errors import ConfigError, ConfigStoreUnavailable

DEFAULT_CONFIG_PATH = "/aurora-sync/tables/"
# Long enough that the Map's iterations of one execution share one read, short enough that a
# newly added table is picked up by the next scheduled run of a warm planner.
DEFAULT_MAX_AGE_SECONDS = 30.0

TABLE_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# Snowflake resolves unquoted identifiers case-insensitively; STAGING/FINAL names derive from it.
SNOWFLAKE_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_$]{0,254}$"
# PostgreSQL silently truncates longer identifiers (NAMEDATALEN - 1), so two long names could
# end up naming the same column.
PG_IDENTIFIER_MAX_BYTES = 63
_EXCERPT_CHARS = 24


def _check_pg_identifier(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    size = len(value.encode("utf-8"))
    if size > PG_IDENTIFIER_MAX_BYTES:
        raise ValueError(
            f"is {size} bytes long; PostgreSQL identifiers are at most {PG_IDENTIFIER_MAX_BYTES} bytes "
            "(longer names are truncated silently), use the name exactly as in the catalog"
        )
    if '"' in value:
        raise ValueError(
            "contains a double quote; write the catalog name without quotes "
            "(it is quoted for you, so spaces and mixed case are fine)"
        )
    for ch in value:
        if unicodedata.category(ch) == "Cc":
            what = "a NUL character" if ch == "\x00" else f"the control character U+{ord(ch):04X}"
            raise ValueError(f"contains {what}; PostgreSQL identifiers cannot hold it")
    return value


PgIdentifier = Annotated[str, AfterValidator(_check_pg_identifier)]


def _check_watermark(value: str | int | None) -> str | int | None:
    if isinstance(value, str):
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                'must be an ISO-8601 timestamp or date, e.g. "2024-01-01T00:00:00+00:00", '
                "or an integer for a numeric cursor"
            ) from None
    return value


class TableConfig(BaseModel):
    """The JSON value of one table's SSM parameter."""

    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, validate_by_name=False, validate_by_alias=True
    )

    schema_name: PgIdentifier = Field(
        "public",
        alias="schema",
        description="PostgreSQL schema of the source table, exactly as in the catalog (no case folding).",
        examples=["public"],
    )
    table: PgIdentifier = Field(
        ...,
        description="PostgreSQL table name, exactly as in the catalog (no case folding).",
        examples=["orders"],
    )
    primary_key: list[PgIdentifier] = Field(
        ...,
        min_length=1,
        description="Columns that identify a row; the MERGE deduplicates on them. Non-empty, unique.",
        examples=[["id"], ["tenant_id", "order_id"]],
    )
    primary_key_not_enforced: bool = Field(
        False,
        description="true confirms a primary_key that PostgreSQL does not enforce as unique (no primary key "
        "or valid, non-partial unique index has all its columns in it; any key of a view): "
        "`config validate` refuses such a key otherwise, because two source rows sharing it become one "
        "row in FINAL. Set it only when the key is unique by other means.",
        examples=[True],
    )
    mode: Literal["cursor", "xmin", "full"] = Field(
        "cursor",
        description="How a run finds changed rows: 'cursor' reads rows whose cursor column is at or past "
        "the last merged run's window start; 'xmin' reads rows written by transactions newer than the "
        "last merged run's snapshot (no cursor column needed; every run scans the table); 'full' "
        "exports the whole table every run and makes FINAL equal it, deleted rows included.",
        examples=["cursor", "xmin", "full"],
    )
    cursor: PgIdentifier | None = Field(
        "updated_at",
        description="Column whose value grows on every insert/update; the export reads rows with "
        "cursor > watermark - lookback_seconds. Only for mode 'cursor': absent or null otherwise.",
        examples=["updated_at"],
    )
    columns: list[PgIdentifier] | None = Field(
        None,
        description="Columns to replicate, in order; null replicates every catalog column. When given it "
        "must contain the primary key and cursor columns (and the soft-delete column), each once.",
        examples=[None, ["id", "customer_id", "total", "updated_at"]],
    )
    soft_delete_column: PgIdentifier | None = Field(
        None,
        description="Boolean or timestamp column marking a row as deleted in the source; null when the "
        "table has none (hard deletes are then not propagated).",
        examples=[None, "deleted_at"],
    )
    soft_delete_mode: Literal["delete", "flag"] = Field(
        "delete",
        description="What FINAL does with soft-deleted rows: 'delete' removes them, 'flag' keeps them "
        "with the column set. Only valid together with soft_delete_column.",
        examples=["delete", "flag"],
    )
    lookback_seconds: int = Field(
        900,
        ge=0,
        description="Overlap re-read behind the watermark, so rows of transactions that commit after "
        "later rows were exported are still picked up (now() is the transaction start).",
        examples=[900],
    )
    enabled: bool = Field(
        True,
        description="false skips the table on scheduled runs without deleting its config.",
        examples=[True],
    )
    initial_watermark: Annotated[str | int | None, AfterValidator(_check_watermark)] = Field(
        None,
        description="Cursor value to start from while FINAL is empty: an ISO-8601 timestamp/date for "
        "timestamp cursors, an integer for numeric ones; null exports the whole table.",
        examples=[None, "2024-01-01T00:00:00+00:00", 0],
    )
    max_rows_per_chunk: int = Field(
        1_000_000,
        ge=1000,
        description="Rows per export chunk; about 100-250 MB of CSV, the file size Snowpipe recommends.",
        examples=[1_000_000],
    )
    hard_deletes: Literal["ignore", "reconcile"] = Field(
        "ignore",
        description="'reconcile' also exports the primary keys on a run (every reconcile_every-th run) and "
        "removes FINAL rows whose key the source no longer has; 'ignore' never removes rows. For modes "
        "'cursor' and 'xmin' ('full' always removes them).",
        examples=["ignore", "reconcile"],
    )
    reconcile_every: int = Field(
        1,
        ge=1,
        description="With hard_deletes 'reconcile': export the keys on every N-th merged run only (1: every "
        "run), to bound the cost of reading every key of a large table.",
        examples=[1, 24],
    )
    target: str | None = Field(
        None,
        pattern=SNOWFLAKE_NAME_PATTERN,
        description="Base name of the Snowflake objects (STAGING.<target>, FINAL.<target>, "
        "<target>_STREAM, <target>_PIPE, <target>_MERGE, <target>_RETENTION), a Snowflake unquoted "
        "identifier; null uses the parameter name upper-cased.",
        examples=[None, "ORDERS"],
    )

    @field_validator("primary_key")
    @classmethod
    def _unique_primary_key(cls, value: list[str]) -> list[str]:
        duplicates = _duplicates(value)
        if duplicates:
            raise ValueError(f"lists {_names(duplicates)} more than once; name each column once")
        return value

    @field_validator("cursor")
    @classmethod
    def _cursor_fits_mode(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Runs only for a cursor present in the input; an absent one is dropped for xmin/full below.
        mode = info.data.get("mode", "cursor")
        if mode != "cursor" and value is not None:
            raise ValueError(
                f"must be absent or null with mode {mode!r}, which needs no cursor column; remove it, "
                "or use mode 'cursor'"
            )
        if mode == "cursor" and value is None:
            raise ValueError(
                "must name a column with mode 'cursor' (e.g. \"updated_at\"); for a table without one "
                "use mode 'xmin' or 'full'"
            )
        return value

    @field_validator("lookback_seconds", "initial_watermark")
    @classmethod
    def _cursor_mode_only(cls, value: Any, info: ValidationInfo) -> Any:
        mode = info.data.get("mode", "cursor")
        if mode != "cursor":
            raise ValueError(f"only applies to mode 'cursor' (this table has mode {mode!r}); remove it")
        return value

    @field_validator("hard_deletes")
    @classmethod
    def _hard_deletes_fit_mode(cls, value: str, info: ValidationInfo) -> str:
        if value == "reconcile" and info.data.get("mode") == "full":
            raise ValueError(
                "is implied by mode 'full', which removes deleted rows on every run; remove hard_deletes"
            )
        return value

    @field_validator("reconcile_every")
    @classmethod
    def _reconcile_every_needs_reconcile(cls, value: int, info: ValidationInfo) -> int:
        if info.data.get("hard_deletes") != "reconcile":
            raise ValueError("is only valid with hard_deletes 'reconcile'; set it or remove reconcile_every")
        return value

    @model_validator(mode="after")
    def _no_cursor_outside_cursor_mode(self) -> TableConfig:
        # The default cursor ("updated_at") means nothing for xmin and full tables.
        if self.mode != "cursor" and self.cursor is not None:
            object.__setattr__(self, "cursor", None)
        return self

    @field_validator("columns")
    @classmethod
    def _columns_cover_keys(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if value is None:
            return value
        duplicates = _duplicates(value)
        if duplicates:
            raise ValueError(f"lists {_names(duplicates)} more than once; name each column once")
        cursor = info.data.get("cursor") if info.data.get("mode", "cursor") == "cursor" else None
        required = [*info.data.get("primary_key", []), cursor]
        missing = [col for col in required if col is not None and col not in value]
        if missing:
            raise ValueError(
                f"misses {_names(missing)}: the primary key and cursor columns must be replicated; "
                "add them or use null for all columns"
            )
        return value

    @field_validator("soft_delete_column")
    @classmethod
    def _soft_delete_column_replicated(cls, value: str | None, info: ValidationInfo) -> str | None:
        columns = info.data.get("columns")
        if value is not None and columns is not None and value not in columns:
            raise ValueError(f"{_names([value])} is not in 'columns'; add it there")
        return value

    @field_validator("soft_delete_mode")
    @classmethod
    def _soft_delete_mode_needs_column(cls, value: str, info: ValidationInfo) -> str:
        # Field validators run only for values present in the input, so this sees explicit modes.
        if info.data.get("soft_delete_column") is None:
            raise ValueError(
                "is only valid with 'soft_delete_column'; set the column that marks deleted rows "
                "or remove soft_delete_mode"
            )
        return value

    def target_name(self, name: str) -> str:
        """Snowflake base name: ``target`` or the table's NAME upper-cased."""
        return self.target or name.upper()

    def dump_json(self) -> str:
        """Canonical JSON as ``config push`` stores it: sorted keys, every field that applies.

        Fields a value would be rejected for are left out: ``soft_delete_mode`` without a
        soft-delete column, the cursor's fields outside mode 'cursor', ``reconcile_every`` without
        reconciliation; and ``primary_key_not_enforced`` unless it is true.
        """
        exclude = {"soft_delete_mode"} if self.soft_delete_column is None else set()
        if not self.primary_key_not_enforced:
            # Left out at its default, so a planner deployed before the field existed still
            # accepts what a newer CLI pushes.
            exclude.add("primary_key_not_enforced")
        if self.mode != "cursor":
            exclude |= {"cursor", "lookback_seconds", "initial_watermark"}
        if self.hard_deletes != "reconcile":
            exclude.add("reconcile_every")
        document = self.model_dump(mode="json", by_alias=True, exclude=exclude)
        return json.dumps(document, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class LoadedTable:
    """A table whose parameter validated."""

    name: str
    parameter: str
    config: TableConfig

    @property
    def target(self) -> str:
        return self.config.target_name(self.name)


@dataclass(frozen=True)
class InvalidTable:
    """A table whose parameter did not validate; the planner fails just this table."""

    name: str
    parameter: str
    message: str

    def error(self) -> ConfigError:
        return ConfigError(self.message)


TableConfigResult = LoadedTable | InvalidTable


# --- parsing (no I/O) ----------------------------------------------------------------------
_EXPECTS: dict[str, str] = {
    "schema": "a PostgreSQL schema name (string)",
    "table": "a PostgreSQL table name (string)",
    "primary_key": "a list of column names",
    "primary_key_not_enforced": "true or false (a JSON boolean, not a string)",
    "mode": '"cursor", "xmin" or "full"',
    "cursor": "a column name (string), or null for modes xmin and full",
    "hard_deletes": '"ignore" or "reconcile"',
    "reconcile_every": "an integer >= 1",
    "columns": "a list of column names or null",
    "soft_delete_column": "a column name (string) or null",
    "soft_delete_mode": '"delete" or "flag"',
    "lookback_seconds": "an integer number of seconds >= 0",
    "enabled": "true or false (a JSON boolean, not a string)",
    "initial_watermark": "an ISO-8601 string, an integer or null",
    "max_rows_per_chunk": "an integer >= 1000",
    "target": "a Snowflake unquoted identifier (letters, digits, _ and $, not starting with a digit)",
}
_ITEM_EXPECTS = "a column name (string)"
_ALLOWED_KEYS = tuple(field.alias or name for name, field in TableConfig.model_fields.items())


def _duplicates(values: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    dup: list[str] = []
    for value in values:
        if value in seen and value not in dup:
            dup.append(value)
        seen.add(value)
    return dup


def _names(values: Iterable[str]) -> str:
    return ", ".join(json.dumps(v) for v in values)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _example(key: str) -> str | None:
    for name, field in TableConfig.model_fields.items():
        if (field.alias or name) == key and field.examples:
            first = next((e for e in field.examples if e is not None), None)
            return None if first is None else json.dumps(first)
    return None


def _describe_error(err: Any) -> str:
    """One pydantic error as ``field 'x': <what is wrong and what to write instead>``."""
    loc = [str(part) for part in err["loc"]]
    kind = err["type"]
    if not loc:
        got = _json_type(err["input"])
        return f"the value must be a JSON object with keys {_names(_ALLOWED_KEYS)} (got {got})"
    key = loc[0]
    field = key + "".join(f"[{part}]" for part in loc[1:])
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(key, _ALLOWED_KEYS, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return f"field '{field}': unknown key; {hint}allowed keys: {', '.join(_ALLOWED_KEYS)}"
    if kind == "missing":
        example = _example(key)
        return f"field '{field}': required, e.g. {example}" if example else f"field '{field}': required"
    if kind == "value_error":
        return f"field '{field}': {err['ctx']['error']}"
    expects = _ITEM_EXPECTS if len(loc) > 1 else _EXPECTS.get(key)
    if kind.endswith("_type") or kind in {"literal_error", "string_pattern_mismatch"}:
        example = None if len(loc) > 1 else _example(key)
        suffix = f", e.g. {example}" if example else ""
        return f"field '{field}': must be {expects}{suffix} (got {_json_type(err['input'])})"
    if kind == "too_short":
        return f"field '{field}': must not be empty, name at least one column, e.g. {_example(key)}"
    # Range checks and the rest: pydantic's wording already says the bound ("greater than or equal to 0").
    return f"field '{field}': {err['msg'][:1].lower()}{err['msg'][1:]} (expected {expects})"


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    duplicates = _duplicates(keys)
    if duplicates:
        raise ConfigError(f"key {_names(duplicates)} appears more than once; keep one")
    return dict(pairs)


def _reject_constant(name: str) -> Any:
    raise ConfigError(f"{name} is not valid JSON; use a number")


def _excerpt(raw: str, pos: int) -> str:
    start = max(pos - _EXCERPT_CHARS // 2, 0)
    return repr(raw[start : start + _EXCERPT_CHARS])


def validate_table_name(name: str, parameter: str) -> None:
    if not TABLE_NAME_PATTERN.fullmatch(name):
        raise ConfigError(
            f"{parameter}: parameter name {name!r} is not a valid table name: use 1-63 lower-case "
            "letters, digits and _ starting with a letter (it becomes the S3 key prefix and the name "
            # From the name alone: a file entry's label holds the file's folders, no part of a name.
            f"a rerun uses); rename it, e.g. to {_suggest_name(name)!r}"
        )


def _suggest_name(name: str) -> str:
    cleaned = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_")
    if not cleaned or not cleaned[0].isalpha():
        cleaned = f"t_{cleaned}"
    return cleaned[:63]


def parse_table_config(name: str, parameter: str, raw: str, *, secure: bool = False) -> TableConfigResult:
    """Validate one parameter's value. ``secure`` (SecureString) suppresses value excerpts."""
    try:
        validate_table_name(name, parameter)
    except ConfigError as exc:
        return InvalidTable(name, parameter, str(exc))
    try:
        document = json.loads(raw, object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno} (char {exc.pos})"
        near = "" if secure else f" near {_excerpt(raw, exc.pos)}"
        return InvalidTable(
            name, parameter, f"{parameter}: value is not valid JSON: {exc.msg} at {where}{near}; fix the JSON"
        )
    except ConfigError as exc:
        return InvalidTable(name, parameter, f"{parameter}: value is not valid JSON: {exc}")
    try:
        config = TableConfig.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(_describe_error(err) for err in exc.errors(include_url=False))
        return InvalidTable(name, parameter, f"{parameter}: {problems}")
    return LoadedTable(name, parameter, config)


def _keys_owner(result: TableConfigResult, by_target: dict[str, list[LoadedTable]]) -> list[LoadedTable]:
    if not isinstance(result, LoadedTable) or not result.target.upper().endswith("_KEYS"):
        return []
    return by_target.get(result.target.upper().removesuffix("_KEYS"), [])


def mark_target_collisions(results: list[TableConfigResult]) -> list[TableConfigResult]:
    """Two tables writing the same Snowflake objects would overwrite each other's rows."""
    by_target: dict[str, list[LoadedTable]] = {}
    for result in results:
        if isinstance(result, LoadedTable):
            by_target.setdefault(result.target.upper(), []).append(result)
    clashing = {id(t): group for group in by_target.values() if len(group) > 1 for t in group}
    marked: list[TableConfigResult] = []
    for result in results:
        group = clashing.get(id(result))
        keyed = _keys_owner(result, by_target)
        if group is None and keyed and isinstance(result, LoadedTable):
            # STAGING.<target> would be the other table's key snapshot table, <its target>_KEYS.
            owners = ", ".join(t.parameter for t in keyed)
            marked.append(
                InvalidTable(
                    result.name,
                    result.parameter,
                    f"{result.parameter}: field 'target': Snowflake base name {result.target.upper()!r} is "
                    f"the key snapshot table of {owners}; give this table another 'target'",
                )
            )
            continue
        if group is None or not isinstance(result, LoadedTable):
            marked.append(result)
            continue
        others = ", ".join(t.parameter for t in group if t is not result)
        marked.append(
            InvalidTable(
                result.name,
                result.parameter,
                f"{result.parameter}: field 'target': Snowflake base name {result.target.upper()!r} is also "
                f"used by {others}; give each table its own 'target'",
            )
        )
    return marked


# --- SSM access ----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Parameter:
    name: str
    type: str
    value: str


_cache_lock = threading.Lock()
_cache: dict[tuple[str, str, str], tuple[float, list[_Parameter]]] = {}


def normalise_path(path: str) -> str:
    if not path.startswith("/"):
        raise ConfigError(
            f"config path {path!r} must be an absolute SSM path",
            fix="set CONFIG_SSM_PATH like /aurora-sync/tables/",
        )
    return path if path.endswith("/") else f"{path}/"


def default_ssm_client() -> Any:
    """SSM client with bounded timeouts and standard retries (boto3 honours AWS_ENDPOINT_URL)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "ssm",
        config=Config(connect_timeout=5, read_timeout=10, retries={"mode": "standard", "max_attempts": 3}),
    )


def _translate(exc: Exception, action: str, resource: str) -> Exception:
    from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, NoCredentialsError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return ConfigStoreUnavailable(
            f"SSM Parameter Store could not be reached for {resource} ({type(exc).__name__}).",
            fix="retry later; check the SSM endpoint / VPC endpoint and network path of the function",
        )
    if isinstance(exc, NoCredentialsError):
        return ConfigError(
            f"no AWS credentials to call ssm:{action} on {resource}.",
            fix="run with the function's execution role (or set AWS credentials)",
        )
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "Unknown")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if (
            code
            in {
                "ThrottlingException",
                "Throttling",
                "TooManyUpdates",
                "RequestLimitExceeded",
                "InternalServerError",
                "ServiceUnavailable",
            }
            or status >= 500
        ):
            return ConfigStoreUnavailable(
                f"SSM Parameter Store refused ssm:{action} on {resource} for now ({code}).",
                fix="retry later; reduce the schedule frequency if throttling persists",
            )
        if code.startswith("AccessDenied") or code in {"UnrecognizedClientException", "KMSAccessDenied"}:
            grant = "ssm:PutParameter" if action == "PutParameter" else "ssm:GetParametersByPath"
            return ConfigError(
                f"access denied for ssm:{action} on {resource} ({code}).",
                fix=f"grant the function's role {grant} on arn:aws:ssm:<region>:<account>:parameter"
                f"{resource.rstrip('/')}/* and kms:Decrypt on the KMS key of SecureString parameters",
            )
        return ConfigError(f"ssm:{action} on {resource} failed ({code}).", fix="check the config path")
    if isinstance(exc, BotoCoreError):
        return ConfigStoreUnavailable(f"ssm:{action} on {resource} failed ({type(exc).__name__}).")
    return exc


def _fetch(path: str, client: Any) -> list[_Parameter]:
    from botocore.exceptions import BotoCoreError, ClientError

    params: list[_Parameter] = []
    try:
        paginator = client.get_paginator("get_parameters_by_path")
        for page in paginator.paginate(Path=path, Recursive=True, WithDecryption=True):
            params.extend(
                _Parameter(p["Name"], p.get("Type", "String"), p.get("Value", ""))
                for p in page.get("Parameters", [])
            )
    except (BotoCoreError, ClientError) as exc:
        raise _translate(exc, "GetParametersByPath", path) from None
    return params


def load_table_configs(
    path: str = DEFAULT_CONFIG_PATH,
    *,
    ssm_client: Any = None,
    max_age: float = DEFAULT_MAX_AGE_SECONDS,
) -> list[TableConfigResult]:
    """Every table under ``path``, sorted by name; invalid ones as ``InvalidTable`` entries.

    Raises ``ConfigStoreUnavailable`` (transient) when SSM cannot be read, ``ConfigError`` when
    the role may not read it. ``max_age`` seconds of caching per path; 0 disables it.
    """
    path = normalise_path(path)
    client = ssm_client if ssm_client is not None else default_ssm_client()
    key = (path, str(client.meta.endpoint_url), str(client.meta.region_name))
    now = time.monotonic()
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None and max_age > 0 and now - cached[0] < max_age:
        params = cached[1]
    else:
        params = _fetch(path, client)
        with _cache_lock:
            _cache[key] = (now, params)

    results: list[TableConfigResult] = []
    for param in params:
        relative = param.name[len(path) :] if param.name.startswith(path) else param.name
        if "/" in relative:
            results.append(
                InvalidTable(
                    relative,
                    param.name,
                    f"{param.name}: is nested below {path}; table configs must sit directly under it, "
                    f"move it to {path}{relative.rsplit('/', 1)[-1]}",
                )
            )
            continue
        results.append(
            parse_table_config(relative, param.name, param.value, secure=param.type == "SecureString")
        )
    results.sort(key=lambda r: r.name)
    return mark_target_collisions(results)


def select_tables(
    results: Sequence[TableConfigResult], names: Sequence[str] | None
) -> list[TableConfigResult]:
    """The entries a run works on: all of them, or the rerun subset ``names``."""
    if names is None:
        return list(results)
    known = [r.name for r in results]
    unknown = [n for n in dict.fromkeys(names) if n not in known]
    if unknown:
        raise ConfigError(
            f"rerun names unknown table(s) {_names(unknown)}; known tables: "
            f"{_names(known) if known else '(none)'}.",
            fix='use names of parameters under the config path in the execution input\'s "tables"',
        )
    wanted = set(names)
    return [r for r in results if r.name in wanted]


def put_table_config(
    name: str,
    config: TableConfig,
    path: str = DEFAULT_CONFIG_PATH,
    overwrite: bool = True,
    *,
    ssm_client: Any = None,
) -> str:
    """Store ``config`` as ``<path><name>`` (canonical JSON, String type); returns the parameter path."""
    path = normalise_path(path)
    parameter = f"{path}{name}"
    validate_table_name(name, parameter)
    client = ssm_client if ssm_client is not None else default_ssm_client()
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client.put_parameter(
            Name=parameter,
            Value=config.dump_json(),
            Type="String",
            Overwrite=overwrite,
            Description=f"aurora-sync table config for {name}",
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ParameterAlreadyExists":
            raise ConfigError(
                f"{parameter} already exists.", fix="pass overwrite=True (config push --overwrite)"
            ) from None
        raise _translate(exc, "PutParameter", parameter) from None
    except BotoCoreError as exc:
        raise _translate(exc, "PutParameter", parameter) from None
    with _cache_lock:
        _cache.clear()
    return parameter
