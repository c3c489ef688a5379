"""Flags shared by the command groups, and ``environment(args)``: the one place a command's flags
become the ``Environment`` that resolves flags > environment variables > the running local stack
(table configs, source, Snowflake, setup names, state machine, the local stack's parts)."""

from __future__ import annotations

import argparse

from aurora_sync.config import DEFAULT_CONFIG_PATH

from ..environment import SETUP_FIELDS, CliOptions, Environment
from ..errors import UsageError


def environment(args: argparse.Namespace) -> Environment:
    """The environment every command acts in; flags a command does not have count as not given."""
    setup = {name: getattr(args, name, None) for name in SETUP_FIELDS}
    return Environment(
        CliOptions(
            config=getattr(args, "config", None),
            config_path=getattr(args, "config_path", None),
            source_dsn=getattr(args, "source_dsn", None),
            local=bool(getattr(args, "local", False)),
            state_dir=getattr(args, "state_dir", None),
            port_base=getattr(args, "port_base", None),
            setup={k: v for k, v in setup.items() if v is not None},
            state_machine_arn=getattr(args, "state_machine_arn", None),
            stack_name=getattr(args, "stack_name", None),
            local_stack_name=getattr(args, "local_stack_name", None),
        )
    )


def table_names(text: str | None) -> list[str] | None:
    """``--tables``: the names in order, each once; None when the flag is absent."""
    if text is None:
        return None
    names = list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    if not names:
        raise UsageError("--tables is empty.", fix="name at least one table, e.g. --tables orders,customers")
    return names


def state_dir_options(sub: argparse.ArgumentParser) -> None:
    """Which local stack: its state dir and ports."""
    sub.add_argument(
        "--state-dir", help="the local stack's state and logs (env AURORA_SYNC_LOCAL_DIR; default ./.local)"
    )
    sub.add_argument(
        "--port-base",
        type=int,
        help="the local stack's first of five consecutive loopback ports (env AURORA_SYNC_PORT_BASE; "
        "default 25432)",
    )


def stack_options(sub: argparse.ArgumentParser) -> None:
    """``--local`` and which local stack, for commands that can also act on AWS and Snowflake."""
    sub.add_argument(
        "--local",
        action="store_true",
        help="ignore environment variables (AWS_*, SNOWFLAKE_*, AURORA_SYNC_*): use the running local stack",
    )
    state_dir_options(sub)


def config_path_option(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--config-path",
        help=f"SSM path of the table configs (env AURORA_SYNC_CONFIG_PATH; default {DEFAULT_CONFIG_PATH})",
    )


def config_source_options(sub: argparse.ArgumentParser) -> None:
    """Where the table configs come from: SSM parameters, or a file."""
    sub.add_argument(
        "--config",
        metavar="FILE",
        help="table configs from a file (YAML or JSON, one entry per table) instead of SSM",
    )
    config_path_option(sub)


def source_dsn_option(sub: argparse.ArgumentParser, what: str) -> None:
    sub.add_argument(
        "--source-dsn",
        metavar="DSN",
        help=f"PostgreSQL connection string {what}; put the password in PGPASSWORD or ~/.pgpass, not here",
    )


def warehouse_name_options(sub: argparse.ArgumentParser) -> None:
    names = sub.add_argument_group("Snowflake names")
    names.add_argument("--database", help="database (env SNOWFLAKE_DATABASE; default: the session's)")
    names.add_argument(
        "--staging-schema", help="schema of STAGING (env SNOWFLAKE_STAGING_SCHEMA; default STAGING)"
    )
    names.add_argument("--final-schema", help="schema of FINAL (env SNOWFLAKE_FINAL_SCHEMA; default FINAL)")
