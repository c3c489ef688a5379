"""Each function's deployment package, built as ``sam build`` builds it (functions/Makefile,
``BuildMethod: makefile``, no Docker): what each holds and leaves out, the wheels' platform, that
the exporter's handler imports with nothing but its own package, and the sizes (printed; quoted in
docs/deploy.md and docs/benchmarks.md).

Beside the validators (tests/infra/test_validate_infra.py) because it needs SAM CLI, which
``scripts/validate-infra.sh`` installs, and pip's package index: tens of seconds, not the unit
tier's seconds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
TOOLS = Path(os.environ.get("AURORA_SYNC_INFRA_TOOLS", ROOT / ".local" / "infra-tools")).resolve()
TOOLS_MISSING = 3  # validate-infra.sh's exit status when it cannot install its tools
OPERATOR_PEM = "private-ca.pem"
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"  # content is not read
HANDLERS = {
    "PlannerFunction": "planner",
    "ExporterFunction": "exporter",
    "RoundsFunction": "rounds",
    "VerifierFunction": "verifier",
}
# The functions that never talk to Snowflake: built from requirements-exporter.txt (functions/Makefile).
WITHOUT_CONNECTOR = ("ExporterFunction", "RoundsFunction")


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``sam build`` of template.yaml: one directory per function under the returned path."""
    install = subprocess.run(
        ["bash", str(ROOT / "scripts" / "validate-infra.sh"), "--install-only"],
        cwd=ROOT,
        env={**os.environ, "AURORA_SYNC_INFRA_TOOLS": str(TOOLS)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if install.returncode == TOOLS_MISSING:
        pytest.skip(f"validate-infra.sh could not install SAM CLI: {install.stderr.strip()[-400:]}")
    assert install.returncode == 0, install.stdout + install.stderr
    # A copy of what sam build reads, plus the CA file an operator adds for VaultCaCert.
    source = tmp_path_factory.mktemp("source")
    shutil.copy(ROOT / "template.yaml", source / "template.yaml")
    shutil.copytree(ROOT / "statemachine", source / "statemachine")
    shutil.copytree(ROOT / "functions", source / "functions", ignore=shutil.ignore_patterns("__pycache__"))
    (source / "functions" / OPERATOR_PEM).write_text(PEM)
    build = tmp_path_factory.mktemp("sam-build")
    result = subprocess.run(
        [
            str(TOOLS / "bin" / "sam"),
            "build",
            "--template",
            str(source / "template.yaml"),
            "--build-dir",
            str(build),
            "--cache-dir",
            str(tmp_path_factory.mktemp("sam-cache")),
            # As samconfig.toml's [default.build.parameters] (parallel = true): the four pip
            # installs side by side.
            "--parallel",
        ],
        cwd=source,
        # The Makefile's pip: this interpreter's (SAM's own virtualenv has no say in the wheels).
        env={
            **os.environ,
            "PYTHON": sys.executable,
            "SAM_CLI_TELEMETRY": "0",
            "AWS_DEFAULT_REGION": "eu-west-1",
        },
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    yield build


def distributions(package: Path) -> dict[str, list[str]]:
    """Installed distribution name (normalised) -> its wheel tags, read from the dist-info."""
    found: dict[str, list[str]] = {}
    for info in package.glob("*.dist-info"):
        name = info.name.removesuffix(".dist-info").rsplit("-", 1)[0].lower().replace("_", "-")
        found[name] = [
            line.split(":", 1)[1].strip()
            for line in (info / "WHEEL").read_text().splitlines()
            if line.startswith("Tag:")
        ]
    return found


def runs_on_cpython_313(tag: str) -> bool:
    """Pure Python 3, built for CPython 3.13, or the stable ABI (abi3) of an older CPython 3."""
    python, abi, _ = tag.split("-")
    return python.startswith("py3") or python == "cp313" or (abi == "abi3" and python.startswith("cp3"))


def size(directory: Path) -> tuple[int, int]:
    """(bytes unzipped, bytes as a deflated zip): Lambda limits both (250 MB, 50 MB uploaded)."""
    files = [p for p in directory.rglob("*") if p.is_file()]
    archive = directory.with_suffix(".zip")
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            zf.write(path, path.relative_to(directory))
    return sum(p.stat().st_size for p in files), archive.stat().st_size


def requirement_names(name: str) -> set[str]:
    lines = (ROOT / "functions" / name).read_text().splitlines()
    return {Requirement(line).name.lower() for line in lines if line.strip() and not line.startswith("#")}


@pytest.mark.parametrize("function", sorted(HANDLERS))
def test_each_package_holds_its_handler_the_library_and_only_arm64_or_pure_wheels(
    packages: Path, function: str
) -> None:
    package = packages / function
    handler = HANDLERS[function]
    assert (package / handler / "app.py").is_file()
    assert (package / "aurora_sync" / "settings.py").is_file()
    # VaultCaCert / sslrootcert may name /var/task/<file>.pem: the package's root.
    assert (package / OPERATOR_PEM).read_text() == PEM
    # No other handler, no build files, no bytecode of this machine's Python.
    assert not {h for h in HANDLERS.values() if h != handler} & {p.name for p in package.iterdir()}
    assert not (package / "Makefile").exists()
    assert not list((package / "aurora_sync").rglob("__pycache__"))
    wanted = requirement_names(
        "requirements-exporter.txt" if function in WITHOUT_CONNECTOR else "requirements.txt"
    )
    installed = distributions(package)
    assert wanted <= set(installed)
    for name, tags in installed.items():
        assert tags, f"{name}: no wheel tag"
        assert all(tag.endswith(("-any", "aarch64")) for tag in tags), f"{name}: {tags}"
        assert any(runs_on_cpython_313(tag) for tag in tags), f"{name}: {tags}"
    # psycopg2-binary 2.9.13 has aarch64 wheels for manylinux_2_28 only.
    assert any("manylinux_2_28_aarch64" in tag for tag in installed["psycopg2-binary"])


def test_only_the_planner_and_verifier_carry_the_snowflake_connector(packages: Path) -> None:
    for function in ("PlannerFunction", "VerifierFunction"):
        assert "snowflake-connector-python" in distributions(packages / function)
        assert (packages / function / "snowflake" / "connector").is_dir()
    for function in WITHOUT_CONNECTOR:
        package = packages / function
        assert not {"snowflake-connector-python", "cryptography"} & set(distributions(package)), function
        assert not (package / "snowflake").exists(), function
        assert not (package / "cryptography").exists(), function


@pytest.mark.parametrize("function", WITHOUT_CONNECTOR)
def test_a_handler_without_the_connector_imports_with_nothing_its_package_lacks(
    packages: Path, function: str
) -> None:
    """The package's wheels are arm64, so this interpreter imports its own copies, but only of
    the top-level modules the package holds (the standard library aside): an import of anything
    else, the Snowflake connector included, fails as it would on Lambda."""
    package = packages / function
    probe = f"""
import importlib.abc, sys
held = {sorted(p.name.removesuffix(".py") for p in package.iterdir())!r}
allowed = set(sys.stdlib_module_names) | set(held)
class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top not in allowed and not top.startswith("_"):
            raise ModuleNotFoundError(f"No module named {{name!r}} (not in the package)", name=name)
        return None
sys.meta_path.insert(0, Missing())
sys.path.insert(0, {str(ROOT / "functions")!r})
import {HANDLERS[function]}.app
from aurora_sync import connections
print(sorted(m for m in sys.modules if m.split(".")[0] in ("snowflake", "cryptography")))
"""
    env = {
        **os.environ,
        "AWS_REGION": "eu-west-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "aurora-sync",
    }
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_sizes_the_exporter_is_smaller_by_the_connector_and_its_dependencies(
    packages: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sizes = {function: size(packages / function) for function in HANDLERS}
    with capsys.disabled():
        for function, (unzipped, zipped) in sizes.items():
            print(f"\n{function}: {unzipped / 1e6:.1f} MB unzipped, {zipped / 1e6:.1f} MB zipped", end="")
        print()
    planner, exporter = sizes["PlannerFunction"][0], sizes["ExporterFunction"][0]
    connector = sum(
        p.stat().st_size
        for name in ("snowflake", "cryptography")
        for p in (packages / "PlannerFunction" / name).rglob("*")
        if p.is_file()
    )
    assert planner - exporter >= connector
    # Lambda's limit for a package uploaded as a zip is 50 MB; S3-staged ones may be 250 MB unzipped.
    assert all(unzipped < 250_000_000 for unzipped, _ in sizes.values())
