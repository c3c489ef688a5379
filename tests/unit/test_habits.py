"""The project's habits, kept by tests: the pre-commit hooks run the tools at the versions the
project pins, the ASL hook catches a definition that is not JSON, the handlers load nothing from
``ops/`` (which is never deployed), the commands CONTRIBUTING.md and the README give exist, and
CHANGELOG.md keeps the Keep a Changelog shape."""

from __future__ import annotations

import importlib.util
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
HANDLERS = ("planner.app", "exporter.app", "verifier.app")


def hooks() -> dict[str, dict[str, Any]]:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    return {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}


def pinned_dev_dependency(name: str) -> str:
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    (pin,) = [d for d in dev if re.match(rf"{re.escape(name)}==", d)]
    return str(pin)


def test_pre_commit_runs_ruff_ruff_format_the_asl_check_and_cfn_lint_at_the_projects_versions() -> None:
    found = hooks()
    assert set(found) == {"ruff", "ruff-format", "asl-json", "cfn-lint"}
    ruff = pinned_dev_dependency("ruff")
    assert found["ruff"]["additional_dependencies"] == [ruff]
    assert found["ruff-format"]["additional_dependencies"] == [ruff]
    assert found["ruff"]["entry"].startswith("ruff check")
    assert found["ruff-format"]["entry"].startswith("ruff format")
    script = (ROOT / "scripts" / "validate-infra.sh").read_text()
    (cfn_lint,) = re.findall(r'^CFN_LINT_PIN="([^"]+)"', script, re.MULTILINE)
    assert found["cfn-lint"]["additional_dependencies"] == [cfn_lint]
    assert re.fullmatch(found["cfn-lint"]["files"], "template.yaml")
    assert re.fullmatch(found["asl-json"]["files"], "statemachine/sync.asl.json")
    assert pinned_dev_dependency("pre-commit")  # the hooks' runner is installed by make dev


def run_asl_hook(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        shlex.split(hooks()["asl-json"]["entry"]),
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_the_asl_hook_passes_the_repository_and_refuses_a_definition_that_is_not_json(
    tmp_path: Path,
) -> None:
    result = run_asl_hook(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("template.yaml", "scripts/validate-infra.sh", "statemachine/sync.asl.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")  # its Python has PyYAML
    asl = tmp_path / "statemachine" / "sync.asl.json"
    asl.write_text(asl.read_text().replace('"Type": "Task",', '"Type": "Task",,', 1))
    result = run_asl_hook(tmp_path)
    assert result.returncode == 1
    assert (
        "statemachine/sync.asl.json is not JSON after substituting DefinitionSubstitutions" in result.stderr
    )


def test_the_handlers_load_nothing_from_ops() -> None:
    # A fresh interpreter: this session has imported aurora_sync_ops already.
    code = (
        "import importlib, sys\n"
        f"for name in {HANDLERS!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'aurora_sync_ops'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), re.MULTILINE))


def test_every_make_target_and_module_the_guides_name_exists() -> None:
    targets = make_targets()
    for guide in ("README.md", "CONTRIBUTING.md"):
        text = (ROOT / guide).read_text()
        named = set(re.findall(r"\bmake ([a-z][\w-]*)", text))
        assert named and named <= targets, (guide, named - targets)
        for module in re.findall(r"python -m ([\w.]+)", text):
            assert importlib.util.find_spec(module) is not None, (guide, module)


def test_the_changelog_keeps_the_keep_a_changelog_shape() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    sections = re.findall(r"^## (.+)$", text, re.MULTILINE)
    assert sections[0] == "[Unreleased]"
    # Nothing is released yet: no section may claim a version number.
    assert not [s for s in sections[1:] if re.search(r"\d+\.\d+\.\d+", s)]
    kinds = set(re.findall(r"^### (.+)$", text, re.MULTILINE))
    allowed = {"Added", "Changed", "Changed (breaking)", "Deprecated", "Removed", "Fixed", "Security"}
    assert kinds <= allowed, kinds - allowed
    unreleased = text.split("## [Unreleased]")[1].split("\n## ")[0]
    assert "RowsMerged" in unreleased and "RowsChanged" in unreleased  # the breaking rename is there


# An assertion on how long something took fails on a loaded CI machine while the product is
# fine (a 10.6 s connect refusal failed a "< 10 s" check once). Speed belongs in bench/. A
# polling loop's deadline (``assert time.monotonic() < deadline``) bounds a wait and is allowed.
_TIMED_ASSERTION = re.compile(
    r"^\s*assert\b[^\n]*(?:(?:monotonic|perf_counter|time)\(\)\s*-|\belapsed\w*\s*[<>])"
)


def test_no_test_asserts_on_elapsed_time() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if _TIMED_ASSERTION.search(line)
    ]
    assert offenders == [], "measure speed in bench/, assert behaviour in tests:\n" + "\n".join(offenders)
