"""``aurora-sync config validate|push|pull``: table config files and the SSM parameters.

``register(commands)`` adds the ``config`` group to the CLI's subparsers. Handlers return the exit
status; expected failures are raised as ``SyncError``/``ValueError``/``OSError``, which the CLI's
``main()`` prints as one line (a traceback only with ``--debug``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Literal

from aurora_sync.config import LoadedTable, TableConfigResult
from aurora_sync.errors import ConfigError
from aurora_sync.source_db import source_errors

from ..config_check import Finding, catalog_findings, config_findings
from ..config_publish import (
    apply_push,
    invalid_parameters,
    plan_push,
    pulled_document,
    read_parameters,
    render_pulled,
)
from ..environment import Environment, read_config_file
from ..rekey import explain, same_key
from .options import config_path_option, environment, source_dsn_option, stack_options

_SEVERITY_ORDER = {"error": 0, "warning": 1}


def _read_file(name: str) -> tuple[Path, list[TableConfigResult]]:
    path = Path(name)
    try:
        return path, read_config_file(path)
    except ConfigError as exc:
        # read_config_file speaks of the --config flag; here the file is the positional FILE.
        raise ConfigError(str(exc).replace(f"--config {path}", str(path), 1)) from None


def _findings(results: list[TableConfigResult], source: Environment | None) -> list[Finding]:
    """The file's findings, and the catalog's when ``source`` is given."""
    findings = config_findings(results)
    if source is not None:
        valid = [r for r in results if isinstance(r, LoadedTable)]
        conn = source.connect_source()
        try:
            relations = [(t.config.schema_name, t.config.table) for t in valid]
            with source_errors(
                "checking the table configs against the source catalog", conn=conn, relations=relations
            ):
                findings += catalog_findings(conn, valid)
        finally:
            conn.close()
    return sorted(findings, key=lambda f: (f.table, _SEVERITY_ORDER[f.severity], f.field or ""))


def cmd_config_validate(args: argparse.Namespace) -> int:
    path, results = _read_file(args.file)
    # The source `sql`, `plan` and `parity` use: --source-dsn, AURORA_SYNC_SOURCE_DSN, or the
    # running local stack; the file alone when none of them names one.
    env = environment(args)
    source = env.source_description()
    findings = _findings(results, env if source is not None else None)
    errors = sum(1 for f in findings if f.severity == "error")
    warnings = len(findings) - errors
    invalid = {f.table for f in findings if f.severity == "error"}
    if args.json:
        document = {
            "file": str(path),
            "valid": errors == 0,
            "checked_source": source is not None,
            "source": source,
            "tables": [
                {
                    "table": r.name,
                    "entry": r.parameter,
                    "valid": r.name not in invalid,
                    "findings": [f.as_dict() for f in findings if f.table == r.name],
                }
                for r in results
            ],
        }
        print(json.dumps(document, indent=2))
        return 1 if errors else 0
    for finding in findings:
        print(finding.line())
    checked = (
        f"checked against the source catalog of {source}"
        if source is not None
        else "no catalog checked: no source database is reachable (pass --source-dsn DSN, set "
        "AURORA_SYNC_SOURCE_DSN, or start the local stack (aurora-sync local up))"
    )
    print(
        f"{path}: {len(results)} table(s), {len(results) - len(invalid)} valid; "
        f"{errors} error(s), {warnings} warning(s); {checked}"
    )
    return 1 if errors else 0


def cmd_config_push(args: argparse.Namespace) -> int:
    path, results = _read_file(args.file)
    # Only an explicit --source-dsn: a push aimed at AWS must not be judged by a local catalog.
    findings = _findings(results, environment(args) if args.source_dsn else None)
    errors = [f for f in findings if f.severity == "error"]
    for finding in findings:
        print(finding.line(), file=sys.stderr)
    if errors:
        print(
            f"aurora-sync: nothing was written: {len(errors)} error(s) in {path}; fix them "
            f"(aurora-sync config validate {path}) and push again",
            file=sys.stderr,
        )
        return 1
    wanted = [r for r in results if isinstance(r, LoadedTable)]
    env = environment(args)
    ssm_path = env.config_path()
    if args.prune and not wanted:
        raise ConfigError(
            f"{path} has no tables, so --prune would delete every table config under {ssm_path}.",
            fix="delete parameters one by one (aws ssm delete-parameter) if that is really meant",
        )
    ssm = env.ssm_client()
    existing = read_parameters(ssm_path, ssm)
    rekeyed = _key_changes(wanted, existing)
    if rekeyed and not args.rekey:
        for name, before, after in rekeyed:
            print(
                f"error: {path}[{name}]: field 'primary_key': changes the key from {json.dumps(before)} "
                f"(in SSM, {ssm_path}{name}) to {json.dumps(after)}",
                file=sys.stderr,
            )
        print(explain([name for name, _, _ in rekeyed], config_file=str(path)), file=sys.stderr)
        print(
            f"aurora-sync: nothing was written: {len(rekeyed)} table(s) change their primary key; "
            f"re-key them as above, then push with --rekey",
            file=sys.stderr,
        )
        return 1
    entries = plan_push(wanted, existing, ssm_path, prune=args.prune)
    if not args.dry_run:
        apply_push(entries, ssm_path, ssm)
    if args.json:
        document = {
            "file": str(path),
            "config_path": ssm_path,
            "dry_run": bool(args.dry_run),
            "prune": bool(args.prune),
            "tables": [e.as_dict() for e in entries],
        }
        print(json.dumps(document, indent=2))
        return 0
    width = max((len(e.name) for e in entries), default=0)
    new_key = {name for name, _, _ in rekeyed}
    for entry in entries:
        note = (
            " (in SSM, not in the file; kept: pass --prune to delete)"
            if entry.action == "removed-not-pruned"
            else ""
        )
        if entry.name in new_key:
            note = (
                " (new primary key: FINAL must be re-keyed, `aurora-sync sql snowflake --tables "
                f"{entry.name} --rekey --apply`, then `aurora-sync sync --tables {entry.name} --full`)"
            )
        print(f"  {entry.action:<18} {entry.name:<{width}}  {entry.parameter}{note}")
    counts = {
        a: sum(1 for e in entries if e.action == a) for a in ("created", "updated", "unchanged", "removed")
    }
    summary = ", ".join(f"{n} {a}" for a, n in counts.items())
    print(f"{'dry run, nothing written: would be ' if args.dry_run else ''}{summary} under {ssm_path}")
    return 0


def _key_changes(
    wanted: list[LoadedTable], existing: list[TableConfigResult]
) -> list[tuple[str, list[str], list[str]]]:
    """(name, key in SSM, key in the file) of each table whose primary key the push would change."""
    stored = {r.name: r.config.primary_key for r in existing if isinstance(r, LoadedTable)}
    return [
        (t.name, stored[t.name], t.config.primary_key)
        for t in wanted
        if t.name in stored and not same_key(stored[t.name], t.config.primary_key)
    ]


def cmd_config_pull(args: argparse.Namespace) -> int:
    env = environment(args)
    ssm_path = env.config_path()
    results = read_parameters(ssm_path, env.ssm_client())
    fmt: Literal["yaml", "json"] = "json" if args.json or args.format == "json" else "yaml"
    print(render_pulled(pulled_document(results), ssm_path, fmt), end="")
    skipped = invalid_parameters(results)
    for invalid in skipped:
        print(f"aurora-sync: left out, invalid: {invalid.message}", file=sys.stderr)
    if skipped:
        print(
            f"aurora-sync: {len(skipped)} parameter(s) under {ssm_path} are invalid and not in the output; "
            "fix them, or add corrected entries to the file and push it",
            file=sys.stderr,
        )
    return 1 if skipped else 0


def register(commands: Any) -> None:
    """Add the ``config`` group to the CLI's subparsers."""
    group = commands.add_parser(
        "config",
        help="validate a table config file, push it to SSM (one parameter per table), pull SSM into a file",
        description="Table configs live in SSM, one parameter per table under a path; a file (YAML or "
        "JSON: {name: config}) is how they are written, reviewed and versioned.",
    )
    actions = group.add_subparsers(dest="config_command", required=True, metavar="ACTION")

    validate = actions.add_parser(
        "validate",
        help="check every entry of a file; one line per problem naming the entry and field",
        description="Validate each entry as the planner validates SSM parameters. With a source "
        "database (--source-dsn, else AURORA_SYNC_SOURCE_DSN, else the running local stack, as for "
        "`sql`, `plan` and `parity`), also check tables, columns, primary key and cursor against its "
        "PostgreSQL catalog, and warn when the cursor has no index; the last line says which source "
        "was checked. Exit status 1 when any entry has an error.",
    )
    validate.add_argument("file", metavar="FILE", help="YAML (.yaml/.yml) or JSON file: {name: config}")
    source_dsn_option(validate, "to check the entries against (the catalog is only read)")
    stack_options(validate)
    validate.add_argument("--json", action="store_true", help="print one JSON object")
    validate.set_defaults(func=cmd_config_validate)

    push = actions.add_parser(
        "push",
        help="write the file's entries to SSM: only changed ones; --prune deletes tables the file lacks",
        description="Validate everything first (nothing is written when any entry is invalid), then "
        "create or update one String parameter per table under the config path with the canonical "
        "JSON, leaving unchanged ones alone. Parameters the file no longer has are reported and kept "
        "unless --prune is given. A changed primary_key is refused (nothing is written) unless --rekey "
        "is given: it needs FINAL re-keyed, and the refusal prints how.",
    )
    push.add_argument("file", metavar="FILE", help="YAML (.yaml/.yml) or JSON file: {name: config}")
    push.add_argument(
        "--prune", action="store_true", help="delete parameters under the path that the file lacks"
    )
    push.add_argument("--dry-run", action="store_true", help="only say what would change")
    push.add_argument(
        "--rekey",
        action="store_true",
        help="allow changing a table's primary_key (refused otherwise, with the re-key procedure: "
        "FINAL must be re-keyed first with `aurora-sync sql snowflake --rekey`)",
    )
    push.add_argument("--json", action="store_true", help="print one JSON object")
    source_dsn_option(push, "to check the entries against before writing anything")
    config_path_option(push)
    stack_options(push)
    push.set_defaults(func=cmd_config_push)

    pull = actions.add_parser(
        "pull",
        help="print the configs under the SSM path as a file that `config push` accepts",
        description="Print every valid table config under the path, all fields written out. Invalid "
        "parameters are named on stderr and left out (exit status 1).",
    )
    pull.add_argument(
        "--format", choices=("yaml", "json"), default="yaml", help="output format (default yaml)"
    )
    pull.add_argument("--json", action="store_true", help="same as --format json")
    config_path_option(pull)
    stack_options(pull)
    pull.set_defaults(func=cmd_config_pull)
