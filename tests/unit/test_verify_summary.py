"""The verifier's report out of the state (issue 15): the run file ``verify.json`` that each poll
writes and the next resumes from (``aurora_sync.verifying.progress``), and the causes a failed run
ends with (TablesFailed's summary, RunFailed's quoted input) within what Step Functions accepts as
an execution's cause, whatever the failed count or the input's length."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from aurora_sync.messages import (
    MAX_FAILED_IN_STATE,
    FailedTable,
    TableVerdict,
    VerifyOutput,
    VerifyProgress,
    VerifyRequest,
)
from aurora_sync.run_files import RunFiles, rerun_key, verify_key
from aurora_sync.verifying import progress
from aurora_sync.verifying.verify import summarize

ASL = Path(__file__).resolve().parents[2] / "statemachine" / "sync.asl.json"
MAX_CAUSE_CHARS = 32_768  # API reference, ExecutionFailedEventDetails
RUN = "run-7"
STARTED = "2026-11-02T10:00:00.000+00:00"
# The longest ARN an execution can have: 80-character state machine and execution names.
LONGEST_ARN = f"arn:aws-us-gov:states:us-gov-west-1:123456789012:execution:{'m' * 80}:{'e' * 80}"


class MemoryS3:
    """get_object/put_object of one bucket, with S3's NoSuchKey."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, **_: Any) -> None:
        self.objects[Key] = Body

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        if Key not in self.objects:
            raise ClientError({"Error": {"Code": "NoSuchKey"}}, "GetObject")

        class Body:
            @staticmethod
            def read() -> bytes:
                return self.objects[Key]

        return {"Body": Body}


def failing(count: int, *, reason_chars: int = 600) -> list[TableVerdict]:
    return [
        TableVerdict(
            table=f"schema_{'s' * 50}.table_{i:05d}_{'t' * 50}",
            target=f"T{i}",
            outcome="FAILED",
            error="MergeFailed",
            reason="r" * reason_chars,
        )
        for i in range(count)
    ]


def tables_failed_cause(summary_cause: str) -> str:
    """The DescribeTablesFailed state's Cause as Step Functions formats it."""
    state = json.loads(re.sub(r"\$\{\w+\}", "1", ASL.read_text()))["States"]["DescribeTablesFailed"]
    template = re.match(r"States\.Format\('(.*)', \$", state["Parameters"]["Cause.$"], re.DOTALL)
    assert template is not None
    return template.group(1).replace("{}", summary_cause, 1).replace("{}", LONGEST_ARN, 1)


def test_the_cause_of_thousands_of_failed_tables_fits_an_execution_failure() -> None:
    plan_failed = [FailedTable(table=f"p{i}", error="ConfigError", cause="c" * 2_000) for i in range(500)]
    summary = summarize(
        failing(3_000), plan_failed, report="s3://lake/r/verify.json", rerun_file="s3://lake/r/x"
    )
    assert summary.failed_count == 3_500 and len(summary.failed) == 3_500
    cause = tables_failed_cause(summary.cause)
    assert len(cause) <= MAX_CAUSE_CHARS
    named = summary.cause.count("(MergeFailed: ") + summary.cause.count("(ConfigError: ")
    assert 0 < named < 3_500
    assert f"; and {3_500 - named} more (every failed table with its error: s3://lake/r/verify.json)" in cause
    # The rerun input naming 3,500 tables is too long to quote: its file is named instead.
    assert summary.rerun_file == "s3://lake/r/x" and "in s3://lake/r/x" in summary.cause
    assert summary.rerun_input is not None and len(summary.rerun_input["tables"]) == 3_500


def test_one_table_with_a_huge_reason_is_named_within_the_limit() -> None:
    summary = summarize(failing(1, reason_chars=100_000), [])
    assert len(tables_failed_cause(summary.cause)) <= MAX_CAUSE_CHARS
    assert "and 1 more" not in summary.cause and "MergeFailed" in summary.cause


def test_a_few_failed_tables_are_all_named_with_the_rerun_input_quoted() -> None:
    summary = summarize(failing(3), [])
    assert summary.rerun_file is None and "more" not in summary.cause
    assert json.dumps(summary.rerun_input) in summary.cause


def request(progress_state: VerifyProgress | None = None, started_at: str = STARTED) -> VerifyRequest:
    return VerifyRequest.model_validate(
        {
            "run_id": RUN,
            "started_at": started_at,
            "rounds": 1,
            "progress": progress_state.model_dump() if progress_state else None,
        }
    )


def output(
    verdicts: list[TableVerdict], *, verify_started_at: str = "2026-11-02T10:05:00.000+00:00"
) -> VerifyOutput:
    pending = sum(v.outcome == "PENDING" for v in verdicts)
    return VerifyOutput(
        run_id=RUN,
        done=pending == 0,
        verify_started_at=verify_started_at,
        tables=verdicts,
        pending=pending,
        failed=sum(v.outcome == "FAILED" for v in verdicts),
    )


def merged(name: str) -> TableVerdict:
    return TableVerdict(table=name, target=name.upper(), outcome="MERGED")


def pending(name: str) -> TableVerdict:
    return TableVerdict(table=name, target=name.upper(), outcome="PENDING")


def test_a_poll_resumes_from_its_own_run_file_only() -> None:
    files = RunFiles(MemoryS3(), "lake")
    # An earlier execution with the same run id left a file saying everything MERGED.
    stale, _ = progress.record(files, request(started_at="2026-10-01T00:00:00+00:00"), output([merged("a")]))
    assert stale.done
    # The first poll reads nothing, whatever is there, and overwrites it.
    first = request()
    assert progress.resume(files, first).previous is None
    _, state = progress.record(files, first, output([pending("a"), merged("b")]))
    assert (state.done, state.tables, state.succeeded, state.pending) == (False, 2, 1, 1)
    assert state.report == f"s3://lake/{verify_key(RUN)}"
    # The next poll resumes from this execution's file.
    resumed = progress.resume(files, request(state)).previous
    assert resumed is not None and [v.outcome for v in resumed.tables] == ["PENDING", "MERGED"]
    # A retried poll (the same input twice) after the first attempt wrote its file reads that.
    progress.record(files, request(state), output([merged("a"), merged("b")]))
    again = progress.resume(files, request(state)).previous
    assert again is not None and [v.outcome for v in again.tables] == ["MERGED", "MERGED"]


def test_a_foreign_or_missing_file_starts_the_verdicts_over_keeping_the_first_check() -> None:
    files = RunFiles(MemoryS3(), "lake")
    _, state = progress.record(files, request(), output([pending("a"), merged("b")]))
    # Another execution with the same run id wrote the file since: its verdicts are not taken.
    progress.record(files, request(started_at="2026-11-03T00:00:00+00:00"), output([merged("a")]))
    for changed in (files, RunFiles(MemoryS3(), "lake")):  # foreign, then missing
        previous = progress.resume(changed, request(state)).previous
        assert previous is not None and previous.tables == []
        assert previous.verify_started_at == state.verify_started_at  # the load timeout keeps counting


def test_the_state_stays_small_whatever_the_table_and_failure_count() -> None:
    sizes = []
    for count in (10, 2_000):
        files = RunFiles(MemoryS3(), "lake")
        written, state = progress.record(files, request(), output([*failing(count), merged("ok")]))
        assert written.summary is not None and len(written.summary.failed) == count
        assert state.summary is not None and len(state.summary.failed) == min(count, MAX_FAILED_IN_STATE)
        sizes.append(len(state.model_dump_json()))
        if count == 2_000:
            # Too long for the cause: the rerun input is in rerun.json, the state names it.
            assert state.summary.rerun_input is None
            assert state.summary.rerun_file == f"s3://lake/{rerun_key(RUN)}"
            rerun = json.loads(files.client.objects[rerun_key(RUN)])
            assert len(rerun["tables"]) == 2_000
        stored = VerifyOutput.model_validate_json(files.client.objects[verify_key(RUN)])
        assert stored.run_started_at is not None
        assert datetime.fromisoformat(stored.run_started_at) == datetime(2026, 11, 2, 10, tzinfo=UTC)
    assert max(sizes) < 40_000  # the bounded cause and 20 named tables, whatever the count


def run_failure_cause(state: str, values: list[str]) -> str:
    """A RunFailed cause as Step Functions formats the ``state``'s ``States.Format``."""
    parameters = json.loads(re.sub(r"\$\{\w+\}", "1", ASL.read_text()))["States"][state]["Parameters"]
    template = re.match(r"States\.Format\('(.*)', \$", parameters["Cause.$"], re.DOTALL)
    assert template is not None and template.group(1).count("{}") == len(values)
    text = template.group(1)
    for value in values:
        text = text.replace("{}", value, 1)
    return text


def test_a_run_failure_quotes_the_input_only_while_the_cause_fits() -> None:
    # The longest input of at most 100 comma-separated parts the planner accepts: names of 63
    # characters, half of them with a `since` override (QuoteTheInput's threshold).
    names = [f"{i:03d}{'n' * 60}" for i in range(51)]
    execution_input = {
        "tables": names,
        "overrides": {name: {"since": "2026-11-02T10:00:00.000000+00:00"} for name in names[:49]},
    }
    text = json.dumps(execution_input, separators=(",", ":"))
    parts = len(text.split(","))
    assert parts == 100
    state = json.loads(re.sub(r"\$\{\w+\}", "1", ASL.read_text()))["States"]["QuoteTheInput"]
    assert state["Choices"][0]["NumericGreaterThan"] == parts
    # With an error as long as the API allows and a task's cause of 20,000 characters.
    quoted = run_failure_cause(
        "DescribeRunFailure", ["Verify (after its retries)", "E" * 256, "c" * 20_000, text, LONGEST_ARN]
    )
    assert len(quoted) <= MAX_CAUSE_CHARS
    # Beyond: the part count instead of the input, whatever its length.
    long_cause = run_failure_cause(
        "DescribeLongRunFailure", ["Verify (after its retries)", "E" * 256, "c" * 20_000, "4001", LONGEST_ARN]
    )
    assert "(4001 parts, too long to quote here" in long_cause
    assert len(long_cause) < len(quoted) - len(text) + 200  # the same text beside the count
    # A failed plan says the same of its input (QuoteThePlanInput).
    plan_quoted = run_failure_cause("DescribePlanFailure", ["E" * 256, "c" * 20_000, text, LONGEST_ARN])
    assert len(plan_quoted) <= MAX_CAUSE_CHARS
    plan_long = run_failure_cause("DescribeLongPlanFailure", ["E" * 256, "c" * 20_000, "4001", LONGEST_ARN])
    assert "(4001 parts, too long to quote here" in plan_long


def test_a_poll_cut_short_by_its_caps_tells_the_state_to_verify_again_at_once() -> None:
    """``continue_now`` (the VerifyAgainNow Choice) travels in the state's progress, not only in
    the report: the state machine reads ``$.verification.output.continue_now``."""
    files = RunFiles(MemoryS3(), "lake")
    capped = output([pending("a"), merged("b")]).model_copy(update={"continue_now": True})
    _, state = progress.record(files, request(), capped)
    assert state.continue_now is True
    _, state = progress.record(files, request(), output([pending("a"), merged("b")]))
    assert state.continue_now is False
