"""Where the CLI acts: table configs, the source catalog, Snowflake, the setup's names, the
state machine, and the local stack's parts. Every command resolves these here and only here
(``aurora_sync_ops.cli.options.environment`` builds the ``Environment`` from the flags).

Each value resolves on its own, first match wins: an explicit flag, then an environment
variable, then the running local stack (``aurora-sync local status`` of the default state dir,
or of ``--state-dir``/``--port-base``). ``--local`` skips the environment variables, so a shell
with production variables set can still aim at the local stack.

Nothing here prints or logs a secret: messages name hosts, users, files and variables only.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from aurora_sync.config import (
    DEFAULT_CONFIG_PATH,
    ConfigEntry,
    InvalidTable,
    LoadedTable,
    TableConfigResult,
    default_ssm_client,
    known_and_unknown,
    load_json,
    load_table_configs,
    parse_table_configs,
    reject_duplicate_keys,
)
from aurora_sync.errors import ConfigError
from aurora_sync.snowflake_tables import SnowflakeSetup
from aurora_sync.source_db import classify_source_error
from aurora_sync.warehouse_db import connect_warehouse

from .errors import aws_call

if TYPE_CHECKING:
    import psycopg2.extensions
    from snowflake.connector import SnowflakeConnection

    from .local.stack import StackSettings

APPLICATION = "aurora-sync-cli"
# Names the sync state machine on AWS when no flag does.
STATE_MACHINE_ARN_VARIABLE = "AURORA_SYNC_STATE_MACHINE_ARN"
# The IAM role the local stack's Snowflake "assumes" to read the bucket (the SAM stack's
# SnowflakeStorageRoleArn stands in for it on AWS).
LOCAL_STORAGE_ROLE = "aurora-sync-snowflake-storage"
# Variables that mean "the operator configured AWS in this shell"; without any of them the
# running local stack is preferred over boto3's remaining sources (~/.aws, instance roles).
_AWS_ENVIRONMENT = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)
_SNOWFLAKE_VARIABLES = {
    "account": "SNOWFLAKE_ACCOUNT",
    "user": "SNOWFLAKE_USER",
    "role": "SNOWFLAKE_ROLE",
    "warehouse": "SNOWFLAKE_WAREHOUSE",
    "database": "SNOWFLAKE_DATABASE",
}
# SnowflakeSetup field -> environment variable; the schema names are the Lambdas' own variables.
SETUP_VARIABLES = {
    "bucket": "AURORA_SYNC_BUCKET",
    "storage_role_arn": "AURORA_SYNC_STORAGE_ROLE_ARN",
    "storage_external_id": "AURORA_SYNC_STORAGE_EXTERNAL_ID",
    # The warehouse the setup creates is the one the CLI's own connection then uses.
    "warehouse": "SNOWFLAKE_WAREHOUSE",
    "database": "SNOWFLAKE_DATABASE",
    "staging_schema": "SNOWFLAKE_STAGING_SCHEMA",
    "final_schema": "SNOWFLAKE_FINAL_SCHEMA",
}
SETUP_FIELDS = tuple(f.name for f in fields(SnowflakeSetup))
_START_STACK = "start the local stack (aurora-sync local up)"


def _account_ssm_client() -> Any:
    """The AWS account's SSM: where the configs are when no local stack runs.

    botocore refuses to build a client without a region, and a new user with neither a stack
    running nor an AWS profile would otherwise see that as a traceback.
    """
    from botocore.exceptions import NoRegionError

    try:
        return default_ssm_client()
    except NoRegionError:
        raise ConfigError(
            "no local stack is running and no AWS region is set, so the table configs in SSM "
            "cannot be read (no AWS region).",
            fix=f"set AWS_DEFAULT_REGION (or AWS_REGION, or region in the AWS profile), "
            f"{_START_STACK}, or pass --config FILE",
        ) from None


@dataclass(frozen=True)
class CliOptions:
    """The flags that choose the environment; None means "not given"."""

    config: str | None = None
    config_path: str | None = None
    source_dsn: str | None = None
    local: bool = False
    state_dir: str | None = None
    port_base: int | None = None
    setup: Mapping[str, Any] = field(default_factory=dict)
    # Which state machine ``sync`` starts and ``status`` reads.
    state_machine_arn: str | None = None
    stack_name: str | None = None
    local_stack_name: str | None = None


class Environment:
    def __init__(self, options: CliOptions, environ: Mapping[str, str] | None = None) -> None:
        self.options = options
        self.environ = dict(os.environ if environ is None else environ)
        self._status: dict[str, Any] | None = None
        self._stack: dict[str, Any] | None = None
        self._configs: list[TableConfigResult] | None = None

    def variable(self, name: str) -> str | None:
        """An environment variable, unless ``--local`` said to ignore them."""
        if self.options.local:
            return None
        return self.environ.get(name) or None

    # --- the local stack -------------------------------------------------------------------
    def stack_settings(self) -> StackSettings:
        """Where the local stack lives: ``--state-dir``/``--port-base``, then its own variables."""
        from .local.stack import settings_from_env

        return settings_from_env(root=self.options.state_dir, port_base=self.options.port_base)

    def stack_status(self) -> dict[str, Any]:
        """``local status --json`` of the chosen state dir, running or not (read once)."""
        if self._status is None:
            from .local.stack import Stack

            self._status = Stack(self.stack_settings()).status()
        return self._status

    def local_stack(self) -> dict[str, Any] | None:
        """``local status --json`` of the chosen state dir when it runs, else None."""
        status = self.stack_status()
        if not status.get("running"):
            if self.options.local:
                raise ConfigError(
                    f"--local: the local stack under {self.stack_settings().root} is not running.",
                    fix=f"{_START_STACK}, or pass its --state-dir/--port-base",
                )
            return None
        return status

    def running_part(self, part: str) -> dict[str, Any]:
        """The ``part`` section of the running stack's status, or an error naming how to start it."""
        from .local.stack import StackError

        status = self.stack_status()
        section = status.get(part)
        alive = status["services"].get(part, {}).get("alive")
        if not status["running"] or not alive or not isinstance(section, dict):
            # The same flags, so the command starts the stack this one looked for.
            given = (("--state-dir", self.options.state_dir), ("--port-base", self.options.port_base))
            flags = "".join(f" {flag} {shlex.quote(str(value))}" for flag, value in given if value)
            raise StackError(
                f"the local stack under {self.stack_settings().root} is not running its {part} part; "
                f"start it with: aurora-sync local up{flags}"
            )
        return section

    # --- the state machine -----------------------------------------------------------------
    def state_machine_arn(self) -> str | None:
        """``--state-machine-arn``, else AURORA_SYNC_STATE_MACHINE_ARN (unless ``--local`` or
        ``--stack-name`` names another place); None leaves ``--stack-name`` or the local stack."""
        if self.options.state_machine_arn:
            return self.options.state_machine_arn
        if self.options.stack_name:
            return None
        return self.variable(STATE_MACHINE_ARN_VARIABLE)

    def _stack_part(self, part: str) -> dict[str, Any] | None:
        stack = self.local_stack()
        section = (stack or {}).get(part)
        return section if isinstance(section, dict) and section else None

    # --- table configs ---------------------------------------------------------------------
    def table_configs(self) -> list[TableConfigResult]:
        if self._configs is None:
            if self.options.config:
                self._configs = read_config_file(Path(self.options.config))
            else:
                self._configs = load_table_configs(
                    self.config_path(), ssm_client=self.ssm_client(), max_age=0
                )
        return self._configs

    def config_path(self, default: str = DEFAULT_CONFIG_PATH) -> str:
        """The SSM path of the table configs: ``--config-path``, AURORA_SYNC_CONFIG_PATH, ``default``."""
        return self.options.config_path or self.variable("AURORA_SYNC_CONFIG_PATH") or default

    def ssm_client(self) -> Any:
        """AWS's SSM when the shell configures AWS, else the running local stack's moto."""
        if not self.options.local and any(self.environ.get(v) for v in _AWS_ENVIRONMENT):
            return _account_ssm_client()
        aws = self._stack_part("aws")
        if aws is None:
            return _account_ssm_client()
        return local_aws_client("ssm", aws)

    def config_source(self) -> str:
        """Where the table configs come from, for messages."""
        return self.options.config or "the config path"

    def chosen_configs(self, names: Sequence[str] | None) -> list[TableConfigResult]:
        """The configs of ``names`` (all when None), invalid ones included; an unknown name, or no
        config at all, is an error naming what there is."""
        results = self.table_configs()
        source = self.config_source()
        if names is not None:
            known, unknown = known_and_unknown(results, names)
            if unknown:
                raise ConfigError(
                    f"unknown table(s) {', '.join(unknown)} in --tables; "
                    f"{source} has: {', '.join(known) if known else '(no tables)'}.",
                    fix="use names from that list, or add the table's config first",
                )
            wanted = set(names)
            results = [r for r in results if r.name in wanted]
        if not results:
            raise ConfigError(
                f"{source} has no table configs.",
                fix="add one parameter (or entry) per table, e.g. aurora-sync config push FILE",
            )
        return results

    def tables(self, names: Sequence[str] | None) -> list[LoadedTable]:
        """The chosen tables (all when ``names`` is None); any invalid one is an error naming it."""
        results = self.chosen_configs(names)
        invalid = [r for r in results if isinstance(r, InvalidTable)]
        if invalid:
            raise ConfigError("; ".join(r.message for r in invalid))
        return [r for r in results if isinstance(r, LoadedTable)]

    # --- source catalog --------------------------------------------------------------------
    def _source(self) -> tuple[str, str] | None:
        """The source DSN and where it came from, or None when nothing names one."""
        if self.options.source_dsn:
            return self.options.source_dsn, "--source-dsn"
        if dsn := self.variable("AURORA_SYNC_SOURCE_DSN"):
            return dsn, "AURORA_SYNC_SOURCE_DSN"
        postgres = self._stack_part("postgres")
        if postgres and postgres.get("admin_dsn"):
            # The admin reads the catalog: the sync role cannot see a table before its grants exist.
            state_dir = (self.local_stack() or {}).get("state_dir")
            return str(postgres["admin_dsn"]), f"the local stack under {state_dir}"
        return None

    def source_dsn(self) -> str:
        found = self._source()
        if found is None:
            raise ConfigError(
                "no source database to read the catalog from.",
                fix=f"pass --source-dsn, set AURORA_SYNC_SOURCE_DSN, or {_START_STACK}",
            )
        return found[0]

    def source_description(self) -> str | None:
        """Which database ``connect_source`` opens and why, without secrets; None when none is set."""
        found = self._source()
        if found is None:
            return None
        return f"{_describe_dsn(found[0])} ({found[1]})"

    def connect_source(self) -> psycopg2.extensions.connection:
        """A read-only, autocommit session for catalog reads and identifier quoting."""
        import psycopg2
        from psycopg2.extensions import parse_dsn

        dsn = self.source_dsn()
        where = _describe_dsn(dsn)
        try:
            conn = psycopg2.connect(dsn, connect_timeout=5, application_name=APPLICATION)
            conn.set_session(readonly=True, autocommit=True)
        except psycopg2.Error as exc:
            parts = parse_dsn(dsn)
            raise classify_source_error(
                exc, context=where, redact=(parts.get("password", ""),), role=parts.get("user")
            ) from None
        return conn

    # --- Snowflake -------------------------------------------------------------------------
    def snowflake_secret(self) -> dict[str, Any] | None:
        """What ``connect_warehouse`` takes (it holds key material: never print it), or None."""
        if self.variable("SNOWFLAKE_ACCOUNT"):
            return self._snowflake_from_environment()
        local = self._stack_part("snowflake")
        return dict(local) if local else None

    def _snowflake_from_environment(self) -> dict[str, Any]:
        secret: dict[str, Any] = {
            key: self.environ[var] for key, var in _SNOWFLAKE_VARIABLES.items() if self.environ.get(var)
        }
        secret.setdefault("database", self.setup_value("database") or "AURORA_SYNC")
        # Every statement is fully qualified; a schema is set because the connector needs one.
        secret["schema"] = self.setup_value("staging_schema") or "STAGING"
        key_path = self.environ.get("SNOWFLAKE_PRIVATE_KEY_PATH")
        if not secret.get("user") or not key_path:
            raise ConfigError(
                "SNOWFLAKE_ACCOUNT is set but SNOWFLAKE_USER or SNOWFLAKE_PRIVATE_KEY_PATH is not.",
                fix="set both (key-pair authentication: the PKCS#8 PEM file of the user's key)",
            )
        try:
            secret["private_key"] = Path(key_path).read_text()
        except OSError as exc:
            raise ConfigError(
                f"SNOWFLAKE_PRIVATE_KEY_PATH {key_path}: cannot read it ({exc.strerror}).",
                fix="point it at the PEM file of the Snowflake user's private key",
            ) from None
        if self.environ.get("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"):
            secret["private_key_passphrase"] = self.environ["SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"]
        return secret

    def connect_snowflake(self) -> SnowflakeConnection:
        secret = self.snowflake_secret()
        if secret is None:
            raise ConfigError(
                "no Snowflake account to connect to.",
                fix="set SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER and SNOWFLAKE_PRIVATE_KEY_PATH, or "
                + _START_STACK,
            )
        return connect_warehouse(secret, application=APPLICATION, login_timeout_s=15, network_timeout_s=60)

    # --- setup names -----------------------------------------------------------------------
    def setup_value(self, name: str) -> Any:
        """A setup name (``SnowflakeSetup`` field): its flag, then its variable; None if neither."""
        if self.options.setup.get(name) is not None:
            return self.options.setup[name]
        variable = SETUP_VARIABLES.get(name)
        return self.variable(variable) if variable else None

    def snowflake_setup(self) -> SnowflakeSetup:
        values: dict[str, Any] = {
            name: value for name in SETUP_FIELDS if (value := self.setup_value(name)) is not None
        }
        missing = [name for name in ("bucket", "storage_role_arn") if name not in values]
        if missing:
            aws = self._stack_part("aws")
            snowflake = self._stack_part("snowflake")
            if aws is None:
                flags = " and ".join(f"--{name.replace('_', '-')}" for name in missing)
                variables = " and ".join(SETUP_VARIABLES[name] for name in missing)
                raise ConfigError(
                    f"no {' and no '.join(missing)} for the Snowflake objects.",
                    fix=f"pass {flags} (outputs DataLakeBucket / SnowflakeStorageRoleArn of the SAM "
                    f"stack), set {variables}, or {_START_STACK}",
                )
            values.setdefault("bucket", aws["bucket"])
            if "storage_role_arn" not in values:
                values["storage_role_arn"] = ensure_local_storage_role(aws)
                # Only with the local role: an id made up here must never reach a real account.
                values.setdefault("storage_external_id", local_external_id(aws))
            if snowflake and "database" not in values:
                values["database"] = snowflake["database"]
        return SnowflakeSetup(**values)


def _describe_dsn(dsn: str) -> str:
    """``Aurora host:port/db as user``: the DSN without its password."""
    import psycopg2
    from psycopg2.extensions import parse_dsn

    try:
        parts = parse_dsn(dsn)
    except psycopg2.ProgrammingError:
        # The driver's message quotes the DSN, password included: do not chain it.
        raise ConfigError(
            "the source DSN is not a valid libpq connection string.",
            fix="use postgresql://user@host:5432/dbname (password via PGPASSWORD or ~/.pgpass)",
        ) from None
    return (
        f"Aurora {parts.get('host', 'localhost')}:{parts.get('port', 5432)}/"
        f"{parts.get('dbname', '')} as {parts.get('user', '(default user)')}"
    )


# --- config files --------------------------------------------------------------------------
class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key written twice in one mapping, at any depth.

    YAML keeps the last of two equal keys without a word; the library's rule
    (``reject_duplicate_keys``, which JSON files and SSM values go through too) refuses it,
    here with each key's line.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys: list[tuple[Any, None]] = []
        lines: list[int] = []
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # "<<: *base" then a key of its own overrides on purpose
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                continue  # an unhashable key: SafeLoader's own error names it
            keys.append((key, None))
            lines.append(key_node.start_mark.line + 1)
        reject_duplicate_keys(keys, lines=lines)
        return super().construct_mapping(node, deep=deep)


def _plain_scalar(value: Any) -> Any:
    # YAML turns 2024-01-01 into a date; the config model expects the ISO text the user wrote.
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def _file_entry(name: str, label: str, config: Any) -> ConfigEntry | InvalidTable:
    # Back to JSON text: a file's entry goes through the same per-entry parse as an SSM value.
    try:
        return ConfigEntry(name, label, json.dumps(config, default=_plain_scalar))
    except TypeError as exc:
        return InvalidTable(name, label, f"{label}: {exc}; use strings, numbers and lists")


def read_config_file(path: Path) -> list[TableConfigResult]:
    """``{name: config}`` from JSON (or YAML for .yaml/.yml), validated like SSM parameters.

    Each entry is labelled ``<file>[<name>]`` in messages, where SSM would name the parameter.
    """
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(
            f"--config {path}: cannot read it ({exc.strerror}).", fix="pass an existing JSON or YAML file"
        ) from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            document = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
        else:
            document = load_json(text)
    except ConfigError as exc:
        raise ConfigError(f"--config {path}: {exc}") from None
    except ValueError as exc:  # json.JSONDecodeError
        raise ConfigError(f"--config {path}: not valid JSON: {exc}.", fix="fix the JSON") from None
    except yaml.YAMLError as exc:  # its text names line and column
        raise ConfigError(
            f"--config {path}: not valid YAML: {exc}".replace("\n", " "), fix="fix the YAML"
        ) from None
    if not isinstance(document, dict):
        raise ConfigError(
            f"--config {path}: the file must hold one object mapping table names to configs.",
            fix='write e.g. {"orders": {"table": "orders", "primary_key": ["id"]}}',
        )
    return parse_table_configs(
        _file_entry(str(name), f"{path}[{name}]", config) for name, config in document.items()
    )


# --- local AWS -----------------------------------------------------------------------------
def local_aws_client(service: str, aws: Mapping[str, Any]) -> Any:
    """A boto3 client on the local stack's moto with its operator credentials."""
    import boto3

    return boto3.client(
        service,
        endpoint_url=aws["endpoint_url"],
        region_name=aws["region"],
        aws_access_key_id=aws["access_key_id"],
        aws_secret_access_key=aws["secret_access_key"],
    )


def local_external_id(aws: Mapping[str, Any]) -> str:
    """The local stack's STORAGE_AWS_EXTERNAL_ID: what a stack's output SnowflakeExternalId is on
    AWS (the local storage role trusts the account, so nothing checks it locally)."""
    return f"aurora-sync-local-{aws['account_id']}"


def ensure_local_storage_role(aws: Mapping[str, Any]) -> str:
    """The IAM role the local Snowflake reads the bucket with; created once in moto.

    On AWS the SAM stack owns this role and its trust admits only Snowflake's IAM user with the
    integration's external id; locally no Snowflake principal exists, so the account trusts it.
    """
    iam = local_aws_client("iam", aws)
    bucket = aws["bucket"]
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{aws['account_id']}:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    read_bucket = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:GetObjectVersion"],
                "Resource": f"arn:aws:s3:::{bucket}/*",
            },
            {
                "Effect": "Allow",
                "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                "Resource": f"arn:aws:s3:::{bucket}",
            },
            {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": aws["kms_key_arn"]},
        ],
    }
    role = f"role {LOCAL_STORAGE_ROLE} in the local stack's moto at {aws['endpoint_url']}"
    grant = "use the operator credentials `aurora-sync local status --json` reports (aws.access_key_id)"

    def existing_or_created() -> str:
        try:
            return str(iam.get_role(RoleName=LOCAL_STORAGE_ROLE)["Role"]["Arn"])
        except iam.exceptions.NoSuchEntityException:
            return str(
                iam.create_role(
                    RoleName=LOCAL_STORAGE_ROLE,
                    AssumeRolePolicyDocument=json.dumps(trust),
                    Description="aurora-sync local stack: Snowflake's storage integration reads the bucket",
                )["Role"]["Arn"]
            )

    arn = aws_call(existing_or_created, call="iam:GetRole/iam:CreateRole", resource=role, grant=grant)
    aws_call(
        lambda: iam.put_role_policy(
            RoleName=LOCAL_STORAGE_ROLE, PolicyName="read-data-lake", PolicyDocument=json.dumps(read_bucket)
        ),
        call="iam:PutRolePolicy",
        resource=role,
        grant=grant,
    )
    return arn
