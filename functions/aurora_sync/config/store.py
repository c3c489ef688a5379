"""The table configs' store: one SSM parameter per table, fetched by path, cached, and written.

The parameter's last path segment is the table's NAME (``/aurora-sync/tables/orders`` ->
``orders``): it is the S3 key prefix, the name a rerun uses (``{"tables": ["orders"]}``) and
the default Snowflake object base name. This module only talks to SSM: what a value means is
``parsing.parse_table_configs``'s job, the same pipeline the CLI's ``--config FILE`` feeds.
AWS's refusals are mapped onto the taxonomy by ``aws_errors.classify_aws_error``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from ..aws_errors import aws_error_code, classify_aws_error
from ..errors import ConfigError
from .model import InvalidTable, TableConfig, TableConfigResult
from .parsing import ConfigEntry, parse_table_configs, validate_table_name

DEFAULT_CONFIG_PATH = "/aurora-sync/tables/"
# Long enough that the Map's iterations of one execution share one read, short enough that a
# newly added table is picked up by the next scheduled run of a warm planner.
DEFAULT_MAX_AGE_SECONDS = 30.0
_RETRY_FIX = "retry later; check the SSM endpoint / VPC endpoint and network path of the function"


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


def _grant(permission: str, path: str) -> str:
    return (
        f"grant the function's role {permission} on arn:aws:ssm:<region>:<account>:parameter"
        f"{path.rstrip('/')}/* and kms:Decrypt on the KMS key of SecureString parameters"
    )


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
        raise classify_aws_error(
            exc,
            call="ssm:GetParametersByPath",
            resource=path,
            grant=_grant("ssm:GetParametersByPath", path),
            retry_fix=_RETRY_FIX,
            failed_fix="check the config path (CONFIG_SSM_PATH) and the region",
        ) from None
    return params


def _entry(param: _Parameter, path: str) -> ConfigEntry | InvalidTable:
    relative = param.name[len(path) :] if param.name.startswith(path) else param.name
    if "/" in relative:
        return InvalidTable(
            relative,
            param.name,
            f"{param.name}: is nested below {path}; table configs must sit directly under it, "
            f"move it to {path}{relative.rsplit('/', 1)[-1]}",
        )
    return ConfigEntry(relative, param.name, param.value, secure=param.type == "SecureString")


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
    return parse_table_configs(_entry(param, path) for param in params)


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
    except (BotoCoreError, ClientError) as exc:
        if aws_error_code(exc) == "ParameterAlreadyExists":
            # Not a failure of the call but the answer to overwrite=False: someone else's table.
            raise ConfigError(
                f"{parameter} already exists.", fix="pass overwrite=True (config push --overwrite)"
            ) from None
        raise classify_aws_error(
            exc, call="ssm:PutParameter", resource=parameter, grant=_grant("ssm:PutParameter", path)
        ) from None
    with _cache_lock:
        _cache.clear()
    return parameter
