"""Table configs in three parts, and one pipeline between them.

- ``model``: ``TableConfig`` (what one table's config may say) and the results of reading a
  store, ``LoadedTable`` / ``InvalidTable``.
- ``prose``: the words of errors: ``config_error`` for any input's ``ValidationError``, the
  field-by-field wording of table configs, name suggestions.
- ``store``: SSM Parameter Store: fetch by path, cache, put.
- ``parsing``: the one pipeline every store feeds (SSM parameters here, ``--config FILE`` in the
  CLI): the duplicate-key rule, each entry's validation, sorting, target collisions.

Callers import from here; the names below are the package's public API.
"""

from .model import (
    PG_IDENTIFIER_MAX_BYTES,
    SNOWFLAKE_NAME_PATTERN,
    TABLE_NAME_PATTERN,
    InvalidTable,
    LoadedTable,
    TableConfig,
    TableConfigResult,
    check_cursor_value,
    default_target,
)
from .parsing import (
    ConfigEntry,
    known_and_unknown,
    load_json,
    mark_target_collisions,
    parse_table_config,
    parse_table_configs,
    reject_duplicate_keys,
    select_tables,
    validate_table_name,
)
from .prose import config_error
from .store import (
    DEFAULT_CONFIG_PATH,
    DEFAULT_MAX_AGE_SECONDS,
    default_ssm_client,
    load_table_configs,
    normalise_path,
    put_table_config,
)

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_MAX_AGE_SECONDS",
    "PG_IDENTIFIER_MAX_BYTES",
    "SNOWFLAKE_NAME_PATTERN",
    "TABLE_NAME_PATTERN",
    "ConfigEntry",
    "InvalidTable",
    "LoadedTable",
    "TableConfig",
    "TableConfigResult",
    "check_cursor_value",
    "config_error",
    "default_ssm_client",
    "default_target",
    "known_and_unknown",
    "load_json",
    "load_table_configs",
    "mark_target_collisions",
    "normalise_path",
    "parse_table_config",
    "parse_table_configs",
    "put_table_config",
    "reject_duplicate_keys",
    "select_tables",
    "validate_table_name",
]
