"""``scripts/validate-infra.sh`` (sam validate --lint, cfn-lint, asl-validator, statelint) on the
repository and on broken copies. Apart from the structural template tests (tests/unit) because it
installs and runs the validators: minutes, where the unit tier takes seconds."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "validate-infra.sh"
TOOLS = Path(os.environ.get("AURORA_SYNC_INFRA_TOOLS", ROOT / ".local" / "infra-tools")).resolve()
TOOLS_MISSING = 3  # validate-infra.sh's exit status when it cannot install its tools


def run_script(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AURORA_SYNC_INFRA_TOOLS": str(TOOLS)}
    return subprocess.run(
        ["bash", str(root / "scripts" / "validate-infra.sh"), *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.fixture(scope="module")
def tools() -> None:
    result = run_script(ROOT, "--install-only")
    if result.returncode == TOOLS_MISSING:
        pytest.skip(f"validate-infra.sh could not install its tools: {result.stderr.strip()[-400:]}")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def broken_copy(tmp_path: Path, tools: None) -> Path:
    """A copy of what the script validates, sharing the installed tools, to break on purpose."""
    for name in ("template.yaml", "package.json", "package-lock.json"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "scripts").mkdir()
    shutil.copy(SCRIPT, tmp_path / "scripts" / SCRIPT.name)
    (tmp_path / "statemachine").mkdir()
    shutil.copy(ROOT / "statemachine" / "sync.asl.json", tmp_path / "statemachine" / "sync.asl.json")
    (tmp_path / "node_modules").symlink_to(ROOT / "node_modules")
    return tmp_path


def test_given_the_repository_then_every_validator_passes(tools: None) -> None:
    result = run_script(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout
    assert "is valid" in result.stdout  # asl-validator
    assert result.stdout.rstrip().endswith("== infrastructure is valid")


def test_given_a_template_referencing_a_missing_resource_then_sam_validate_fails(broken_copy: Path) -> None:
    template = broken_copy / "template.yaml"
    template.write_text(template.read_text().replace("!GetAtt PlannerRole.Arn", "!GetAtt PlanerRole.Arn", 1))
    result = run_script(broken_copy)
    assert result.returncode == 1
    assert "PlanerRole" in result.stdout + result.stderr
    assert "infrastructure is valid" not in result.stdout


def test_given_an_asl_placeholder_the_template_does_not_define_then_rendering_fails(
    broken_copy: Path,
) -> None:
    asl = broken_copy / "statemachine" / "sync.asl.json"
    asl.write_text(asl.read_text().replace("${VerifyWaitSeconds}", "${VerifyWaitSecs}"))
    result = run_script(broken_copy)
    assert result.returncode == 1
    assert "uses ${VerifyWaitSecs} but SyncStateMachine's DefinitionSubstitutions" in result.stderr


def test_given_states_all_before_another_error_then_statelint_fails(broken_copy: Path) -> None:
    asl = broken_copy / "statemachine" / "sync.asl.json"
    definition = asl.read_text()
    assert '"States.ALL"' in definition
    # ASL requires States.ALL alone in its ErrorEquals; asl-validator does not check it, statelint does.
    broken = definition.replace('"States.ALL"', '"States.ALL", "SourceTimeout"', 1)
    asl.write_text(broken)
    result = run_script(broken_copy)
    assert result.returncode == 1
    assert "States.ALL" in result.stdout + result.stderr
    assert "== statelint" in result.stdout
