"""Run the sync state machine from a terminal: ``aurora-sync sync`` and ``aurora-sync rerun``.

Where it runs: an explicit state machine (``--state-machine-arn``, ``AURORA_SYNC_STATE_MACHINE_ARN``
or the ``StateMachineArn`` output of ``--stack-name``) is started on AWS through boto3's standard
environment. Otherwise the local stack's engine deploys ``template.yaml`` into moto (idempotent)
and the execution runs there. A rerun starts on the state machine of the execution it repeats.

What it reads: everything comes from the execution history, which is what the console shows too:
the Plan state's output (tables, plan failures, skip), each Map iteration's last state
(``ExportDone``/``ExportFailed``), and the last ``Verify`` output (``VerifyOutput``, whose
``summary.rerun_input`` names the failed tables once the verifier is done).

Exit codes (the CLI's): 0 when the execution succeeded, including a run the planner skipped
because another execution was in flight (skipping is single-flight working as designed, and a
scheduler calling ``sync`` must not page anyone for it); 1 when a table failed or the execution
failed, timed out or was aborted; 2 for usage errors.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from aurora_sync.config import load_table_configs
from aurora_sync.errors import ConfigError, SyncError
from aurora_sync.naming import SnowflakeObjects
from aurora_sync.planning.plan import parse_input
from aurora_sync.snowflake_objects import new_column_statements
from aurora_sync.work import NewColumn

STATE_MACHINE_ARN_VARIABLE = "AURORA_SYNC_STATE_MACHINE_ARN"
STACK_OUTPUT = "StateMachineArn"
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})
SUCCESS_OUTCOMES = frozenset({"MERGED", "NOTHING_TO_DO"})
# Step Functions execution names: 1-80 characters; these are the ones safe in every console URL.
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
# The template's ConfigSsmPath pattern (no trailing slash).
_SSM_PATH = re.compile(r"^(/[\w.-]+)+$")
_INTEGER = re.compile(r"^[+-]?\d+$")
# The parts the deployed functions talk to; a stack started with --only lacks some of them.
_WORKFLOW_PARTS = ("aws", "postgres", "snowflake", "vault")
_CAUSE_RERUN = re.compile(r"execution input (\{.*?\}) \(or `aurora-sync rerun")
_LINE_CHARS = 240


class WorkflowError(SyncError):
    """The workflow cannot be started or followed; the message names the thing and the fix."""


class UsageError(WorkflowError):
    """The command line asks for something impossible (exit status 2)."""


# --- execution input ---------------------------------------------------------------------------
def parse_since(text: str) -> str | int:
    """``--since``: an integer (numeric cursors) or an ISO-8601 timestamp/date, kept as written."""
    text = text.strip()
    if _INTEGER.match(text):
        return int(text)
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"--since {text!r} is neither an ISO-8601 timestamp/date nor an integer.",
            fix="write e.g. --since 2024-01-01T00:00:00+00:00 (or --since 1500 for a numeric cursor)",
        ) from None
    return text


def build_input(tables: Sequence[str] | None, since: str | None, full: bool) -> dict[str, Any]:
    """The execution input the planner accepts (``{}``, or tables with one-shot overrides)."""
    if since is not None and full:
        raise UsageError(
            "--since and --full exclude each other.",
            fix="use --since to export from a point, or --full to export every row",
        )
    if (since is not None or full) and not tables:
        flag = "--since" if since is not None else "--full"
        raise UsageError(
            f"{flag} needs --tables: it overrides the watermark of the named tables only.",
            fix=f"add --tables NAME[,NAME...] (e.g. --tables orders {flag}{' VALUE' if since else ''})",
        )
    if not tables:
        return {}
    document: dict[str, Any] = {"tables": list(tables)}
    if since is not None:
        value = parse_since(since)
        document["overrides"] = {name: {"since": value} for name in tables}
    elif full:
        document["overrides"] = {name: {"full_resync": True} for name in tables}
    try:
        parse_input(document)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    return document


def execution_name(prefix: str, now: datetime | None = None) -> str:
    """Time-ordered and unique: ``sync-20240101T120000Z-1a2b3c``."""
    moment = now or datetime.now(UTC)
    return f"{prefix}-{moment.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:6]}"


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise UsageError(
            f"--name {name!r} is not a valid execution name.",
            fix="use 1-80 letters, digits, '-' or '_' (names are unique per state machine for 90 days)",
        )
    return name


# --- where the workflow runs -----------------------------------------------------------------
@dataclass
class Target:
    """A state machine and the Step Functions client that reaches it."""

    sfn: Any
    state_machine_arn: str
    where: str  # for messages: "AWS us-east-1" or "the local stack under ..."
    poll_s: float


@dataclass(frozen=True)
class TargetOptions:
    state_machine_arn: str | None = None
    stack_name: str | None = None
    local: bool = False
    state_dir: str | None = None
    port_base: int | None = None
    config_path: str | None = None
    local_stack_name: str | None = None


def _client_error_text(exc: Exception) -> str:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'Error')}: {error.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"


def _aws_failure(action: str, where: str, exc: Exception) -> WorkflowError:
    from botocore.exceptions import NoCredentialsError, NoRegionError

    if isinstance(exc, NoCredentialsError):
        return WorkflowError(
            f"{action}: no AWS credentials.",
            fix="configure them (AWS_PROFILE, aws sso login, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)",
        )
    if isinstance(exc, NoRegionError):
        return WorkflowError(
            f"{action}: no AWS region.", fix="set AWS_DEFAULT_REGION (or region in the AWS profile)"
        )
    code = _error_code(exc)
    if code in ("AccessDenied", "AccessDeniedException", "UnrecognizedClientException"):
        fix = "use credentials allowed to call it (states:StartExecution, states:DescribeExecution, "
        fix += "states:GetExecutionHistory; cloudformation:DescribeStacks for --stack-name)"
    else:
        fix = "check the AWS credentials, region and network, then run the command again"
    return WorkflowError(f"{action} on {where} failed ({_client_error_text(exc)}).", fix=fix)


def _aws(action: str, where: str, call: Callable[[], Any]) -> Any:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return call()
    except (BotoCoreError, ClientError) as exc:
        raise _aws_failure(action, where, exc) from None


def _region_of(arn: str) -> str:
    parts = arn.split(":")
    if len(parts) < 7 or parts[2] != "states" or parts[5] not in ("stateMachine", "execution"):
        raise UsageError(
            f"{arn!r} is not a Step Functions ARN.",
            fix="pass arn:aws:states:<region>:<account>:stateMachine:<name> "
            "(or :execution:<state machine>:<name> for rerun)",
        )
    return parts[3]


def aws_target(state_machine_arn: str | None, stack_name: str | None) -> Target:
    """The state machine on AWS, named directly or by its CloudFormation stack's output."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    if state_machine_arn is None:
        assert stack_name is not None
        cloudformation = _aws(
            "creating a CloudFormation client", "AWS", lambda: boto3.client("cloudformation")
        )
        region = cloudformation.meta.region_name
        try:
            stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
        except ClientError as exc:
            if "does not exist" in str(exc):
                raise WorkflowError(
                    f"CloudFormation stack {stack_name!r} does not exist in {region}.",
                    fix="pass the stack_name of `sam deploy` (see samconfig.toml) and its region "
                    "(AWS_DEFAULT_REGION), or --state-machine-arn",
                ) from None
            raise _aws_failure(f"reading stack {stack_name}", f"CloudFormation in {region}", exc) from None
        except BotoCoreError as exc:
            raise _aws_failure(f"reading stack {stack_name}", f"CloudFormation in {region}", exc) from None
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
        if STACK_OUTPUT not in outputs:
            raise WorkflowError(
                f"stack {stack_name!r} has no output {STACK_OUTPUT} (status {stacks[0].get('StackStatus')}).",
                fix="deploy this project's template.yaml to it (sam deploy), or pass --state-machine-arn",
            )
        state_machine_arn = str(outputs[STACK_OUTPUT])
    region = _region_of(state_machine_arn)
    if ":stateMachine:" not in state_machine_arn:
        raise UsageError(
            f"{state_machine_arn!r} is an execution ARN; sync starts a state machine.",
            fix="pass arn:aws:states:<region>:<account>:stateMachine:<name>, or use "
            "`aurora-sync rerun` with the execution ARN",
        )
    sfn = boto3.client("stepfunctions", region_name=region)
    return Target(sfn=sfn, state_machine_arn=state_machine_arn, where=f"AWS {region}", poll_s=2.0)


def _running_stack(options: TargetOptions) -> dict[str, Any]:
    from .environment import CliOptions, Environment
    from .local.stack import settings_from_env

    env = Environment(
        CliOptions(local=options.local, state_dir=options.state_dir, port_base=options.port_base)
    )
    status = env.local_stack()
    if status is None:
        root = settings_from_env(root=options.state_dir, port_base=options.port_base).root
        raise WorkflowError(
            f"no state machine on AWS was named and the local stack under {root} is not running.",
            fix="start it (aurora-sync local up; or pass its --state-dir/--port-base), or name the state "
            f"machine with --state-machine-arn, {STATE_MACHINE_ARN_VARIABLE} or --stack-name",
        )
    missing = [part for part in _WORKFLOW_PARTS if not status.get(part)]
    if missing:
        raise WorkflowError(
            f"the local stack under {status.get('state_dir')} runs without {', '.join(missing)}, "
            "which the functions need.",
            fix="start every part: aurora-sync local up (without --only)",
        )
    return status


def local_config_path(options: TargetOptions, environ: Mapping[str, str], status: Mapping[str, Any]) -> str:
    """The ConfigSsmPath the local deployment gets (the template's form: no trailing slash)."""
    chosen = options.config_path or (None if options.local else environ.get("AURORA_SYNC_CONFIG_PATH"))
    path = (chosen or str(status["aws"]["config_ssm_path"])).rstrip("/")
    if not _SSM_PATH.match(path):
        raise UsageError(
            f"config path {path!r} is not an SSM path.",
            fix="use an absolute path such as /aurora-sync/tables (letters, digits, '_', '.', '-')",
        )
    return path


def local_target(options: TargetOptions, environ: Mapping[str, str], tables: Sequence[str] | None) -> Target:
    """Deploy template.yaml into the running local stack and return its state machine."""
    from .environment import local_aws_client
    from .local.engine import LOCAL_STACK_NAME, LocalEngine

    status = _running_stack(options)
    aws = status["aws"]
    config_path = local_config_path(options, environ, status)
    if tables:
        # The planner would reject them too, but only after a deployment and an execution.
        configs = load_table_configs(config_path, ssm_client=local_aws_client("ssm", aws), max_age=0)
        known = [c.name for c in configs]
        unknown = [name for name in tables if name not in known]
        if unknown:
            raise UsageError(
                f"unknown table(s) {', '.join(unknown)} in --tables; {config_path}/ has: "
                f"{', '.join(known) if known else '(no tables)'}.",
                fix="use names from that list, or add the table's config parameter first",
            )
    engine = LocalEngine(
        status,
        parameters={"ConfigSsmPath": config_path},
        stack_name=options.local_stack_name or LOCAL_STACK_NAME,
    )
    where = f"the local stack under {status.get('state_dir')}"
    deployment = _aws("deploying the functions and state machine", where, engine.deploy)
    return Target(
        sfn=local_aws_client("stepfunctions", aws),
        state_machine_arn=deployment.state_machine_arn,
        where=where,
        poll_s=0.3,
    )


def sync_target(options: TargetOptions, environ: Mapping[str, str], tables: Sequence[str] | None) -> Target:
    """Flags first (--state-machine-arn, --stack-name), then AURORA_SYNC_STATE_MACHINE_ARN, then local."""
    if options.state_machine_arn and options.stack_name:
        raise UsageError(
            "--state-machine-arn and --stack-name both name the state machine.", fix="pass one of them"
        )
    if options.local and (options.state_machine_arn or options.stack_name):
        raise UsageError(
            "--local runs on the local stack; --state-machine-arn/--stack-name name a state machine on AWS.",
            fix="pass one or the other",
        )
    variable = None if options.local or options.stack_name else environ.get(STATE_MACHINE_ARN_VARIABLE)
    explicit = options.state_machine_arn or variable or None
    if explicit or options.stack_name:
        if options.config_path or options.local_stack_name:
            raise UsageError(
                "--config-path and --local-stack-name configure the local deployment only; on AWS the "
                "stack's ConfigSsmPath parameter decides where table configs live.",
                fix="drop them, or run on the local stack (no --state-machine-arn/--stack-name/"
                f"{STATE_MACHINE_ARN_VARIABLE})",
            )
        return aws_target(explicit, options.stack_name)
    return local_target(options, environ, tables)


def rerun_target(execution_arn: str, options: TargetOptions) -> Target:
    """The state machine of ``execution_arn``, on the local stack when the ARN is in its account."""
    import boto3

    from .environment import CliOptions, Environment, local_aws_client

    region = _region_of(execution_arn)
    if ":execution:" not in execution_arn:
        raise UsageError(
            f"{execution_arn!r} is a state machine ARN; rerun needs an execution ARN.",
            fix="pass the ARN `aurora-sync sync` printed (arn:aws:states:...:execution:...)",
        )
    account = execution_arn.split(":")[4]
    status = (
        _running_stack(options)
        if options.local
        else Environment(CliOptions(state_dir=options.state_dir, port_base=options.port_base)).local_stack()
    )
    aws = (status or {}).get("aws") or {}
    if aws and aws.get("account_id") == account and aws.get("region") == region:
        sfn, where, poll_s = (
            local_aws_client("stepfunctions", aws),
            f"the local stack under {(status or {}).get('state_dir')}",
            0.3,
        )
    elif options.local:
        raise UsageError(
            f"{execution_arn} is not an execution of the local stack (account {aws.get('account_id')}, "
            f"region {aws.get('region')}).",
            fix="drop --local to reach AWS, or pass an ARN `aurora-sync sync --local` printed",
        )
    else:
        sfn, where, poll_s = boto3.client("stepfunctions", region_name=region), f"AWS {region}", 2.0
    # A rerun goes to the state machine that ran the execution, whatever the flags say.
    description = _describe(sfn, where, execution_arn)
    return Target(sfn, str(description["stateMachineArn"]), where, poll_s)


# --- executions --------------------------------------------------------------------------------
def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    return str((response or {}).get("Error", {}).get("Code", ""))


def start(target: Target, execution_input: Mapping[str, Any], name: str) -> str:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response = target.sfn.start_execution(
            stateMachineArn=target.state_machine_arn, name=name, input=json.dumps(execution_input)
        )
    except (BotoCoreError, ClientError) as exc:
        code = _error_code(exc)
        if code == "ExecutionAlreadyExists":
            raise UsageError(
                f"an execution named {name!r} already exists on {target.state_machine_arn}.",
                fix="choose another --name (names stay taken for 90 days), or leave it out",
            ) from None
        if code == "StateMachineDoesNotExist":
            raise WorkflowError(
                f"state machine {target.state_machine_arn} does not exist on {target.where}.",
                fix="check the ARN (or AURORA_SYNC_STATE_MACHINE_ARN), its region, and that the stack is "
                "deployed",
            ) from None
        raise _aws_failure("starting the execution", target.where, exc) from None
    return str(response["executionArn"])


def describe(target: Target, execution_arn: str) -> dict[str, Any]:
    return _describe(target.sfn, target.where, execution_arn)


def _describe(sfn: Any, where: str, execution_arn: str) -> dict[str, Any]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        description: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
    except (BotoCoreError, ClientError) as exc:
        if _error_code(exc) == "ExecutionDoesNotExist":
            raise WorkflowError(
                f"execution {execution_arn} does not exist on {where}.",
                fix="check the ARN; executions are kept 90 days after they end (a restarted local "
                "stack starts empty)",
            ) from None
        raise _aws_failure("describing the execution", where, exc) from None
    return description


def history(target: Target, execution_arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
    while True:
        page = _aws(
            "reading the execution history", target.where, lambda: target.sfn.get_execution_history(**kwargs)
        )
        events += page["events"]
        if not page.get("nextToken"):
            return events
        kwargs["nextToken"] = page["nextToken"]


def follow(
    target: Target,
    execution_arn: str,
    *,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    timeout_s: float | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Poll until the execution ends; returns (DescribeExecution, the whole history)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    seen = 0
    while True:
        # Describe first: a terminal status read before the history means the history is complete.
        description = describe(target, execution_arn)
        events = history(target, execution_arn)
        for event in events[seen:]:
            if on_event is not None:
                on_event(event)
        seen = len(events)
        if description["status"] in TERMINAL:
            return description, events
        if deadline is not None and time.monotonic() > deadline:
            raise WorkflowError(
                f"execution {execution_arn} is still {description['status']} after {timeout_s:.0f}s; "
                "it goes on without this command.",
                fix="follow it in the Step Functions console, or raise --timeout",
            )
        time.sleep(target.poll_s)


# --- reading the history -----------------------------------------------------------------------
def _details(event: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, dict):
            return value
    return {}


def _json(text: Any) -> Any:
    if not isinstance(text, str):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _one_line(text: Any, limit: int = _LINE_CHARS) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _cause_text(cause: Any) -> str:
    """A Lambda failure's cause is the runtime's JSON; a person wants its errorMessage."""
    parsed = _json(cause)
    if isinstance(parsed, dict) and parsed.get("errorMessage"):
        return str(parsed["errorMessage"])
    return str(cause or "")


def _lag(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "-"
    value = round(float(seconds))
    if seconds < 60:
        return f"{seconds:.1f}s"
    if value < 3600:
        return f"{value // 60}m{value % 60:02d}s"
    if value < 86400:
        return f"{value // 3600}h{value % 3600 // 60:02d}m"
    return f"{value // 86400}d{value % 86400 // 3600:02d}h"


@dataclass
class TableResult:
    table: str
    outcome: str  # the verifier's MERGED/NOTHING_TO_DO/PENDING/FAILED, or PLANNED/EXPORTED before it
    rows_exported: int | None = None
    rows_loaded: int | None = None
    rows_changed: int | None = None  # FINAL rows inserted or rewritten with different values
    rows_unchanged: int | None = None  # loaded rows that changed nothing (the lookback's re-reads)
    rows_deleted: int | None = None  # removed from FINAL by a key snapshot (hard deletes)
    freshness_lag_seconds: float | None = None
    source_time: str | None = None  # FINAL matches the source as of this snapshot time
    error: str | None = None
    reason: str | None = None
    # Schema drift: source columns the config's ``columns`` leave out, and the statements that
    # add them to STAGING and FINAL (empty when the verifier did not say where those are).
    new_columns: list[str] = field(default_factory=list)
    drift_statements: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunResult:
    execution_arn: str
    state_machine_arn: str
    name: str
    status: str
    input: dict[str, Any]
    run_id: str | None = None
    skip_reason: str | None = None
    tables: list[TableResult] = field(default_factory=list)
    error: str | None = None
    cause: str | None = None
    rerun_input: dict[str, Any] | None = None

    @property
    def skipped(self) -> bool:
        return self.skip_reason is not None

    @property
    def failed(self) -> bool:
        return self.status != "SUCCEEDED" or any(t.outcome == "FAILED" for t in self.tables)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "execution_arn": self.execution_arn,
            "state_machine_arn": self.state_machine_arn,
            "name": self.name,
            "status": self.status,
            "input": self.input,
            "run_id": self.run_id,
            "skipped": self.skipped,
            "skip_reason": self.skip_reason,
            "tables": [t.as_dict() for t in self.tables],
            "error": self.error,
            "cause": self.cause,
            "rerun_input": self.rerun_input,
            "rerun_command": f"aurora-sync rerun {self.execution_arn}" if self.rerun_input else None,
        }


def _state_outputs(events: Iterable[Mapping[str, Any]], state: str) -> list[Any]:
    outputs = []
    for event in events:
        if event.get("type", "").endswith("StateExited"):
            details = _details(event)
            if details.get("name") == state:
                outputs.append(_json(details.get("output")))
    return outputs


def collect(description: Mapping[str, Any], events: Sequence[Mapping[str, Any]]) -> RunResult:
    """Per-table results and the rerun input of an ended (or running) execution."""
    execution_input = _json(description.get("input")) or {}
    result = RunResult(
        execution_arn=str(description["executionArn"]),
        state_machine_arn=str(description.get("stateMachineArn", "")),
        name=str(description.get("name", "")),
        status=str(description["status"]),
        input=execution_input if isinstance(execution_input, dict) else {},
        error=description.get("error"),
        cause=description.get("cause"),
    )
    tables: dict[str, TableResult] = {}
    plans = [p for p in _state_outputs(events, "Plan") if isinstance(p, dict)]
    plan = plans[-1] if plans else None
    if plan is not None:
        result.run_id = plan.get("run_id")
        if plan.get("skip"):
            result.skip_reason = str(plan.get("skip_reason") or "the planner skipped the run")
        for item in plan.get("items") or []:
            tables[item["table"]] = TableResult(table=item["table"], outcome="PLANNED")
        for failure in plan.get("failed") or []:
            tables[failure["table"]] = TableResult(
                table=failure["table"],
                outcome="FAILED",
                error=failure.get("error"),
                reason=failure.get("cause"),
            )
    for export in _state_outputs(events, "ExportDone"):
        if isinstance(export, dict) and export.get("table"):
            tables[export["table"]] = TableResult(
                table=export["table"], outcome="EXPORTED", rows_exported=export.get("rows")
            )
    for export in _state_outputs(events, "ExportFailed"):
        if isinstance(export, dict) and export.get("table"):
            error = export.get("error") or {}
            tables[export["table"]] = TableResult(
                table=export["table"],
                outcome="FAILED",
                error=error.get("Error"),
                reason=_cause_text(error.get("Cause")),
            )
    verifications = [v for v in _state_outputs(events, "Verify") if isinstance(v, dict)]
    verified = (verifications[-1].get("verification") or {}).get("output") if verifications else None
    summary = verified.get("summary") if isinstance(verified, dict) else None
    for verdict in (verified or {}).get("tables") or []:
        tables[verdict["table"]] = TableResult(
            table=verdict["table"],
            outcome=verdict["outcome"],
            rows_exported=verdict.get("rows_exported"),
            rows_loaded=verdict.get("rows_loaded"),
            rows_changed=verdict.get("rows_changed"),
            rows_unchanged=verdict.get("rows_unchanged"),
            rows_deleted=verdict.get("rows_deleted"),
            freshness_lag_seconds=verdict.get("freshness_lag_seconds"),
            source_time=verdict.get("source_time"),
            error=verdict.get("error"),
            reason=verdict.get("reason") if verdict["outcome"] != "MERGED" else None,
        )
    _drift(tables, _state_outputs(events, "ExportDone"), verified)
    result.tables = sorted(tables.values(), key=lambda t: t.table)
    result.rerun_input = _rerun_input(result, summary, plan is not None)
    return result


def _drift(tables: Mapping[str, TableResult], exports: Sequence[Any], verified: Any) -> None:
    """Each table's schema drift from its export, the DDL rendered with the verifier's names."""
    names = verified if isinstance(verified, dict) else {}
    targets = {v["table"]: v.get("target") for v in names.get("tables") or [] if isinstance(v, dict)}
    where = (names.get("database"), names.get("staging_schema"), names.get("final_schema"))
    for export in exports:
        if not isinstance(export, dict) or export.get("table") not in tables:
            continue
        try:
            columns = [NewColumn.model_validate(c) for c in export.get("new_columns") or []]
        except ValidationError:
            continue  # an export of another version: its warning still says it in the log
        if not columns:
            continue
        table = tables[export["table"]]
        table.new_columns = [c.name for c in columns]
        target = targets.get(table.table)
        if target and all(where):
            objects = SnowflakeObjects(str(where[0]), str(where[1]), str(where[2]), str(target))
            table.drift_statements = new_column_statements(objects, columns)


def _rerun_input(result: RunResult, summary: Any, planned: bool) -> dict[str, Any] | None:
    """The input that repeats only what did not reach FINAL, keeping the original overrides."""
    if result.status == "RUNNING" or (result.status == "SUCCEEDED" and not result.failed):
        return None
    names: list[str] | None = None
    healing: dict[str, Any] = {}  # overrides the verifier asks for (a table missing rows: full)
    if isinstance(summary, dict) and summary.get("failed_count"):
        names = list((summary.get("rerun_input") or {}).get("tables") or [])
        healing = dict((summary.get("rerun_input") or {}).get("overrides") or {})
    elif result.error == "TablesFailed" and result.cause:
        # The verifier's output is the source; the cause repeats it for the console.
        match = _CAUSE_RERUN.search(result.cause)
        parsed = _json(match.group(1)) if match else None
        if isinstance(parsed, dict):
            names = list(parsed.get("tables") or [])
    if names is None:
        if not planned or not result.tables:
            return dict(result.input)  # nothing was planned: the same input, once the cause is fixed
        names = [t.table for t in result.tables if t.outcome not in SUCCESS_OUTCOMES]
    if not names:
        return None
    # A failed --full or --since run must repeat its override, or the rerun would start from the
    # watermark and skip the rows it was asked to re-export.
    overrides = {
        name: value for name, value in (result.input.get("overrides") or {}).items() if name in names
    }
    overrides.update({name: value for name, value in healing.items() if name in names})
    document: dict[str, Any] = {"tables": names}
    if overrides:
        document["overrides"] = overrides
    return document


# --- progress ----------------------------------------------------------------------------------
class Progress:
    """Turns history events into the lines a person follows (one per transition that matters)."""

    _STATE_WORDS = {"Plan": "plan", "ExportChunk": "export", "Verify": "verify"}
    _TASK_FAILURES = frozenset(
        {"TaskFailed", "TaskTimedOut", "LambdaFunctionFailed", "LambdaFunctionTimedOut"}
    )
    _EXECUTION_ENDS = {
        "ExecutionFailed": "failed",
        "ExecutionTimedOut": "timed out",
        "ExecutionAborted": "aborted",
    }

    def __init__(self, emit: Callable[[str], None]) -> None:
        self.emit = emit
        self._events: dict[int, Mapping[str, Any]] = {}
        self._outcomes: dict[str, str] = {}
        # Tables the planner failed: the verifier never sees them, but they are tables of the run.
        self._plan_failed: set[str] = set()

    def __call__(self, event: Mapping[str, Any]) -> None:
        self._events[int(event.get("id", 0))] = event
        kind = str(event.get("type", ""))
        details = _details(event)
        if kind.endswith("StateExited"):
            self._exited(str(details.get("name")), _json(details.get("output")))
        elif kind in self._TASK_FAILURES:
            state, table = self._task_of(event)
            what = " ".join(part for part in (self._STATE_WORDS.get(state, state), table) if part)
            cause = _one_line(_cause_text(details.get("cause")), 160)
            self.emit(f"{what}: attempt failed: {details.get('error', kind)}: {cause} (retried or caught)")
        elif kind in self._EXECUTION_ENDS:
            error = details.get("error")
            self.emit(f"execution {self._EXECUTION_ENDS[kind]}{f': {error}' if error else ''}")

    def _task_of(self, event: Mapping[str, Any]) -> tuple[str, str | None]:
        # TaskFailed -> TaskStarted -> TaskScheduled -> TaskStateEntered, which has the name and input.
        current: Mapping[str, Any] | None = event
        for _ in range(6):
            if current is None:
                break
            if current.get("type") == "TaskStateEntered":
                details = _details(current)
                state_input = _json(details.get("input"))
                item = state_input.get("item") if isinstance(state_input, dict) else None
                return str(details.get("name")), item.get("table") if isinstance(item, dict) else None
            current = self._events.get(int(current.get("previousEventId", 0)))
        return "task", None

    def _exited(self, state: str, output: Any) -> None:
        if not isinstance(output, dict):
            return
        if state == "Plan":
            self._planned(output)
        elif state == "ExportChunk":
            export = (output.get("export") or {}).get("result") or {}
            if export.get("status") == "MORE":
                self.emit(
                    f"export {export.get('table')}: chunk {export.get('chunks')} written, "
                    f"{export.get('rows')} row(s) so far"
                )
        elif state == "ExportDone":
            self.emit(
                f"export {output.get('table')}: {output.get('status')} {output.get('rows')} row(s) in "
                f"{output.get('files')} file(s), {output.get('chunks')} chunk(s)"
            )
        elif state == "ExportFailed":
            error = output.get("error") or {}
            cause = _one_line(_cause_text(error.get("Cause")))
            self.emit(f"export {output.get('table')}: FAILED {error.get('Error')}: {cause}")
        elif state == "Verify":
            self._verified(output)

    def _planned(self, output: Mapping[str, Any]) -> None:
        if output.get("skip"):
            self.emit(f"plan: skipped: {output.get('skip_reason')}")
            return
        items = output.get("items") or []
        names = ", ".join(str(item.get("table")) for item in items) or "none"
        self.emit(f"plan: {len(items)} table(s) to export ({names}), run {output.get('run_id')}")
        for failure in output.get("failed") or []:
            self._plan_failed.add(str(failure.get("table")))
            cause = _one_line(failure.get("cause"))
            self.emit(f"plan: {failure.get('table')} FAILED {failure.get('error')}: {cause}")

    def _verified(self, state: Mapping[str, Any]) -> None:
        verified = (state.get("verification") or {}).get("output") or {}
        verdicts = verified.get("tables") or []
        for verdict in verdicts:
            table, outcome = verdict["table"], verdict["outcome"]
            if outcome == "PENDING" or self._outcomes.get(table) == outcome:
                continue
            self._outcomes[table] = outcome
            if outcome == "MERGED":
                lag = _lag(verdict.get("freshness_lag_seconds"))
                self.emit(
                    f"merged {table}: {verdict.get('rows_changed')} row(s) changed, "
                    f"{verdict.get('rows_unchanged')} re-read unchanged (exported "
                    f"{verdict.get('rows_exported')}, loaded {verdict.get('rows_loaded')}; "
                    + (
                        f"{verdict['rows_deleted']} deleted at the source removed; "
                        if verdict.get("rows_deleted") is not None
                        else ""
                    )
                    + f"freshness lag {lag})"
                )
            elif outcome == "NOTHING_TO_DO":
                self.emit(f"nothing to do for {table}: no new rows")
            else:
                self.emit(f"failed {table}: {verdict.get('error')}: {_one_line(verdict.get('reason'))}")
        attempt = int(state.get("attempt") or 0) + 1
        pending = [v for v in verdicts if v["outcome"] == "PENDING"]
        if pending:
            first = f"{pending[0]['table']}: {_one_line(pending[0].get('reason'), 120)}"
            self.emit(f"verify #{attempt}: {len(pending)} pending ({first})")
        else:
            settled = sum(1 for v in verdicts if v["outcome"] in SUCCESS_OUTCOMES)
            # Export failures are verdicts too; plan failures only the Plan state's output names.
            in_export = sum(1 for v in verdicts if v["outcome"] == "FAILED")
            in_plan = len(self._plan_failed - {v["table"] for v in verdicts})
            steps = ((in_plan, "plan"), (in_export, "export or load"))
            where = ", ".join(f"{n} in the {step}" for n, step in steps if n)
            self.emit(
                f"verify #{attempt}: done, {len(verdicts) + in_plan} table(s): {settled} merged or up to "
                f"date, {in_export + in_plan} failed{f' ({where})' if where else ''}"
            )


# --- report ------------------------------------------------------------------------------------
_COLUMNS = ("TABLE", "OUTCOME", "EXPORTED", "LOADED", "CHANGED", "UNCHANGED", "DELETED", "LAG", "ERROR")


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def render(result: RunResult) -> str:
    """The per-table result table, the execution line, and the rerun hint when something failed."""
    lines: list[str] = []
    if result.skipped:
        lines.append(f"skipped: {result.skip_reason}")
    if result.tables:
        rows = [
            (
                t.table,
                t.outcome,
                _count(t.rows_exported),
                _count(t.rows_loaded),
                _count(t.rows_changed),
                _count(t.rows_unchanged),
                _count(t.rows_deleted),
                _lag(t.freshness_lag_seconds),
                t.error or "",
            )
            for t in result.tables
        ]
        widths = [max(len(str(row[i])) for row in [_COLUMNS, *rows]) for i in range(len(_COLUMNS))]
        for row in [_COLUMNS, *rows]:
            lines.append("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        for t in result.tables:
            if t.outcome == "FAILED" and t.reason:
                lines.append(f"  {t.table}: {t.error}: {_one_line(t.reason, 1000)}")
        for t in result.tables:
            lines.extend(drift_lines(t.table, t.new_columns, t.drift_statements))
    lines.append(f"execution: {result.execution_arn} {result.status}")
    if result.status != "SUCCEEDED" and result.error and result.error != "TablesFailed":
        lines.append(f"  {result.error}: {_one_line(result.cause, 1000)}")
    if result.rerun_input is not None:
        lines.append(f"rerun: aurora-sync rerun {result.execution_arn}")
        lines.append(f"rerun input: {json.dumps(result.rerun_input)}")
    return "\n".join(lines)


def drift_lines(
    table: str, columns: Sequence[str], statements: Sequence[str], indent: str = "  "
) -> list[str]:
    """What to do about source columns a table's config leaves out: the config change, the
    command that applies it in Snowflake, and the statements that command runs for them."""
    if not columns:
        return []
    lines = [
        f"{indent}schema drift in {table}: source column(s) {', '.join(repr(c) for c in columns)} are not "
        f"in its config's columns. To sync them, add them there, push the config "
        "(aurora-sync config push FILE) "
        f"and run: aurora-sync sql snowflake --tables {table} --apply"
        + (", which adds them with:" if statements else "")
    ]
    lines += [f"{indent}  {statement};" for statement in statements]
    return lines


# --- the commands' logic -------------------------------------------------------------------------
def run(
    target: Target,
    execution_input: Mapping[str, Any],
    name: str,
    *,
    wait: bool,
    progress: Callable[[str], None],
    timeout_s: float | None = None,
) -> RunResult:
    """Start a named execution; when waiting, follow it with progress lines and collect the results."""
    arn = start(target, execution_input, name)
    progress(f"started {arn} on {target.where} with input {json.dumps(execution_input)}")
    if not wait:
        return collect(describe(target, arn), [])
    try:
        description, events = follow(target, arn, on_event=Progress(progress), timeout_s=timeout_s)
    except KeyboardInterrupt:
        progress(f"stopped following; execution {arn} goes on")
        raise
    return collect(description, events)


def rerun_of(target: Target, execution_arn: str) -> dict[str, Any]:
    """The input that reruns an ended execution's failed tables, or a one-line refusal."""
    description = describe(target, execution_arn)
    if description["status"] not in TERMINAL:
        raise WorkflowError(
            f"execution {execution_arn} is still {description['status']}; there is nothing to rerun yet.",
            fix="wait until it ends (or stop it), then rerun",
        )
    result = collect(description, history(target, execution_arn))
    if result.rerun_input is None:
        reason = f"was skipped ({result.skip_reason})" if result.skipped else "had no failed tables"
        raise WorkflowError(
            f"execution {execution_arn} {result.status} and {reason}: nothing to rerun.",
            fix="start a new run with aurora-sync sync",
        )
    return result.rerun_input


def table_names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    if not names:
        raise UsageError("--tables is empty.", fix="name at least one table, e.g. --tables orders,customers")
    return names
