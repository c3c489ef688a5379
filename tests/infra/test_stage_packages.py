"""The library's tree shows the pipeline: one package per stage beside the shared modules.

``functions/aurora_sync/{planning,exporting,verifying}/`` hold what only that stage uses; the
modules directly under ``aurora_sync/`` are shared by two stages or more (or by the CLI), so
they must never import a stage package, and no stage package imports another: a module that
two stages need belongs among the shared ones. Handlers stay thin (parse, load, decide, act,
emit) and never import the per-table Snowflake SQL, which only the CLI and the tests render.
No server is needed: the rules are read from the source's imports.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LIBRARY = REPO / "functions" / "aurora_sync"
STAGES = ("planning", "exporting", "verifying")


def imported_modules(path: Path) -> set[str]:
    """Absolute names of the ``aurora_sync`` modules a file imports (relative imports resolved)."""
    package = ".".join(path.relative_to(REPO / "functions").with_suffix("").parts[:-1])
    if path.name == "__init__.py":
        package = ".".join(path.relative_to(REPO / "functions").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            # ``from . import x`` / ``from .pkg import mod`` name modules in their alias list.
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("aurora_sync.")}


def stage_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGES else None


def test_each_stage_is_a_package_of_the_library() -> None:
    for stage in STAGES:
        assert (LIBRARY / stage / "__init__.py").is_file(), f"aurora_sync/{stage}/ is not a package"
        modules = [p for p in (LIBRARY / stage).glob("*.py") if p.name != "__init__.py"]
        assert modules, f"aurora_sync/{stage}/ holds no module"


def test_shared_modules_never_import_a_stage() -> None:
    offenders = {
        path.name: sorted(m for m in imported_modules(path) if stage_of(m))
        for path in sorted(LIBRARY.glob("*.py"))
    }
    assert {name: mods for name, mods in offenders.items() if mods} == {}


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_never_imports_another_stage(stage: str) -> None:
    offenders = {
        path.name: sorted(m for m in imported_modules(path) if stage_of(m) not in (None, stage))
        for path in sorted((LIBRARY / stage).glob("*.py"))
    }
    assert {name: mods for name, mods in offenders.items() if mods} == {}


def test_planner_handler_keeps_no_table_loop_and_no_step_functions_call() -> None:
    """The per-table loop and states:ListExecutions live in the planning package."""
    tree = ast.parse((REPO / "functions" / "planner" / "app.py").read_text())
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert defined == {"lambda_handler", "_finish"}
    source = ast.unparse(tree)
    assert "boto3" not in source
    assert "for table in" not in source


HANDLER_ENVIRONMENT = {
    "POWERTOOLS_SERVICE_NAME": "aurora-sync",
    "POWERTOOLS_METRICS_NAMESPACE": "AuroraSnowflakeSyncTest",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.mark.parametrize("handler", ["planner.app", "exporter.app", "verifier.app"])
def test_handlers_import_no_per_table_snowflake_sql_at_cold_start(handler: str) -> None:
    """Only the CLI renders a table's CREATE statements; a cold start must not pay for them."""
    probe = (
        f"import sys, {handler}\n"
        "print(sorted(m for m in sys.modules if m == 'aurora_sync.snowflake_tables'"
        " or m.startswith('aurora_sync_ops')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **HANDLER_ENVIRONMENT, "PYTHONPATH": str(REPO / "functions")},
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_per_table_snowflake_sql_lives_in_the_library() -> None:
    """STAGING/FINAL/stream/pipe/MERGE/retention rendering sits beside the type map it uses;
    ``aurora_sync_ops.snowflake_sql`` keeps only the account setup."""
    from aurora_sync import snowflake_tables
    from aurora_sync_ops import snowflake_sql

    assert snowflake_tables.SnowflakeSetup.__module__ == "aurora_sync.snowflake_tables"
    for name in ("render_table", "render_drop_table", "render_drift", "render_pipe", "render_merge"):
        assert getattr(snowflake_tables, name).__module__ == "aurora_sync.snowflake_tables"
        assert not hasattr(snowflake_sql, name), f"aurora_sync_ops.snowflake_sql still holds {name}"
    assert callable(snowflake_sql.render_setup)
