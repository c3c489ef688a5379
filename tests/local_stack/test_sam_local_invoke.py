"""What ``sam local invoke`` would run, without Docker: each handler with its sample event and
the environment ``aurora-sync local env`` writes, against the running stack after the demo's
preparation (docs/local-stack.md).

Each handler runs in a fresh Python process whose environment is only what SAM's container gets:
the env file's variables for that function, the shell's credentials and region
(``local env --credentials``), and ``AWS_SAM_LOCAL``; ``PYTHONPATH`` is ``functions/``, as
``/var/task`` holds the package. Nothing of the test process leaks in.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from aurora_sync.exporting.rounds import read_items
from aurora_sync.messages import PlanOutput, VerifyOutput, VerifyProgress, WorkItem
from aurora_sync.run_files import RunFiles
from aurora_sync_ops.demo import dataset
from aurora_sync_ops.demo.run import prepare_demo
from aurora_sync_ops.environment import local_aws_client
from aurora_sync_ops.local.sam_env import env_vars_file, role_credentials
from aurora_sync_ops.local.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
HANDLERS = {
    "PlannerFunction": "planner",
    "ExporterFunction": "exporter",
    "RoundsFunction": "rounds",
    "VerifierFunction": "verifier",
}
# The container's handler invocation: the event in, the result out, and the top-level modules it
# imported; the modules a function's package lacks cannot be imported (argv[3]).
RUNNER = """
import importlib, importlib.abc, json, sys, time, uuid
class Absent(importlib.abc.MetaPathFinder):
    blocked = set(filter(None, sys.argv[3].split(",")))
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Absent())
handler = importlib.import_module(sys.argv[1] + ".app").lambda_handler
class Context:
    function_name = sys.argv[1]
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:" + sys.argv[1]
    memory_limit_in_mb = 512
    aws_request_id = str(uuid.uuid4())
    log_group_name = log_stream_name = "local"
    _deadline = time.monotonic() + 120
    def get_remaining_time_in_millis(self):
        return int((self._deadline - time.monotonic()) * 1000)
result = handler(json.load(open(sys.argv[2])), Context())
print(json.dumps({"result": result, "modules": sorted({m.split(".")[0] for m in sys.modules})}, default=str))
"""


@pytest.fixture(scope="module")
def demo(stack: dict[str, Any]) -> dict[str, Any]:
    """The stack after ``make demo``'s preparation: shop data, configs in SSM, Snowflake objects."""
    prepare_demo(lambda _line: None, stack)
    return stack


# What the exporter's package leaves out (functions/requirements-exporter.txt): the connector and
# the packages only it brings (botocore imports pyOpenSSL's only when it is there).
NOT_IN_EXPORTER = ("snowflake", "cryptography", "OpenSSL")


def invoke(stack: dict[str, Any], function: str, event: str) -> dict[str, Any]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(Path.home()),
        "PYTHONPATH": str(ROOT / "functions"),
        "AWS_SAM_LOCAL": "true",
        "AWS_LAMBDA_FUNCTION_NAME": function,
        **env_vars_file(stack)[function],
        **role_credentials(stack),
    }
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            RUNNER,
            HANDLERS[function],
            str(ROOT / "events" / event),
            ",".join(NOT_IN_EXPORTER) if function == "ExporterFunction" else "",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    document: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return document


def _planned(demo: dict[str, Any], plan: PlanOutput) -> list[WorkItem]:
    """The plan's items, from round 0's manifest in the bucket (the output names its key)."""
    bucket = demo["aws"]["bucket"]
    assert plan.manifest is not None and plan.bucket == bucket
    return read_items(RunFiles(local_aws_client("s3", demo["aws"]), bucket), plan.manifest)


def test_the_scheduled_event_plans_every_demo_table(demo: dict[str, Any]) -> None:
    plan = PlanOutput.model_validate(invoke(demo, "PlannerFunction", "planner-scheduled.json")["result"])
    assert not plan.skip and plan.failed == 0
    assert {item.table for item in _planned(demo, plan)} == set(dataset.CONFIGS)


def test_the_rerun_event_plans_its_two_tables_with_their_overrides(demo: dict[str, Any]) -> None:
    plan = PlanOutput.model_validate(invoke(demo, "PlannerFunction", "planner-rerun.json")["result"])
    items = {item.table: item for item in _planned(demo, plan)}
    assert set(items) == {"orders", "customers"} and plan.failed == 0
    assert items["orders"].window.watermark is not None
    assert items["orders"].window.watermark.startswith("2024-05-01")
    assert items["customers"].window.watermark is None  # full_resync


def test_the_exporter_event_exports_the_demos_orders_without_the_snowflake_connector(
    demo: dict[str, Any],
) -> None:
    event = json.loads((ROOT / "events" / "exporter.json").read_text())
    with psycopg2.connect(demo["postgres"]["admin_dsn"]) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM shop.orders WHERE updated_at > %s::timestamptz - %s * interval '1 second'",
            (event["window"]["watermark"], event["window"]["lookback_seconds"]),
        )
        row = cur.fetchone()
        assert row is not None
        (changed,) = row
    conn.close()
    assert 0 < changed < dataset.ROWS["orders"]
    output = invoke(demo, "ExporterFunction", "exporter.json")
    result = output["result"]
    assert (result["table"], result["status"], result["rows"]) == ("orders", "EXPORTED", changed)
    assert result["keys"] and all(key.startswith("orders/") for key in result["keys"])
    # Exported with what its package leaves out unimportable, so it never needed any of it.
    assert not set(NOT_IN_EXPORTER) & set(output["modules"])


def test_the_verifier_event_reports_a_verdict_for_each_of_its_tables(demo: dict[str, Any]) -> None:
    # The function returns the state's counts; its verdicts are in the run's report in S3.
    state = VerifyProgress.model_validate(invoke(demo, "VerifierFunction", "verifier.json")["result"])
    bucket, _, key = state.report.removeprefix("s3://").partition("/")
    s3 = local_aws_client("s3", demo["aws"])
    output = VerifyOutput.model_validate_json(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert (state.done, state.tables, state.failed) == (output.done, 3, output.failed)
    verdicts = {t.table: t for t in output.tables}
    assert set(verdicts) == {"orders", "customers", "order_items"}
    assert verdicts["order_items"].outcome == "FAILED"
    assert verdicts["order_items"].error == "SourceObjectMissing"
    # The sample's export results carry no source snapshot (nor primary_key/cursor), as results of
    # an older version did: the verifier refuses to merge them and names the rerun.
    for table in ("orders", "customers"):
        assert (verdicts[table].outcome, verdicts[table].error) == ("FAILED", "ExportIncomplete")
        reason = verdicts[table].reason
        assert reason is not None and f'{{"tables": ["{table}"]}}' in reason
    assert output.done and output.failed == 3


CLI = str(Path(sys.executable).with_name("aurora-sync"))


def test_local_env_prints_the_env_file_and_the_credentials_a_shell_can_eval(local_stack: Stack) -> None:
    where = [
        "--state-dir",
        str(local_stack.settings.root),
        "--port-base",
        str(local_stack.settings.ports.postgres),
    ]
    sam = subprocess.run(
        [CLI, "local", "env", "--sam", *where], capture_output=True, text=True, timeout=120, check=True
    )
    # Read now, not the session's first status: a test that restarts moto (the fault matrix) mints
    # new role credentials, and the command prints the current ones.
    current = local_stack.status()
    assert json.loads(sam.stdout) == env_vars_file(current)
    # What docs/local-stack.md runs: eval "$(aurora-sync local env --credentials)".
    script = f'eval "$({shlex.join([CLI, "local", "env", "--credentials", *where])})" && env'
    shell = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=120, check=True, env={}
    )
    exported = dict(line.split("=", 1) for line in shell.stdout.splitlines() if "=" in line)
    assert role_credentials(current).items() <= exported.items()


def test_local_env_names_local_up_when_the_stack_is_not_running(tmp_path: Path) -> None:
    result = subprocess.run(
        [CLI, "local", "env", "--sam", "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip().count("\n") == 0
    assert f"start it with: aurora-sync local up --state-dir {tmp_path}" in result.stderr
