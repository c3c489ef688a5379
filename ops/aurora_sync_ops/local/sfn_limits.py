"""Step Functions' hard limits in moto's interpreter, failing the way AWS fails.

moto 5.2.5's interpreter (LocalStack's ASL parser) enforces the payload quota only in part and
the history quota not at all, so a workflow that AWS would fail could pass locally. AWS's rules
(Step Functions developer guide: service quotas, error handling, inline Map):

* 262,144 bytes of UTF-8 for a state's input (after Parameters/ItemSelector), its output and a
  task's result, and for the execution input. Over it a state fails with
  ``States.DataLimitExceeded``; StartExecution refuses the input (``ValidationException``).
* ``States.ALL`` does not match ``States.DataLimitExceeded`` nor ``States.Runtime``: those
  terminal errors fail the execution through any ``Catch``/``Retry`` on ``States.ALL``.
* 25,000 events per Standard execution: event 25,000 is ``ExecutionSucceeded`` or it is
  ``ExecutionFailed`` with ``States.Runtime`` and "The execution reached the maximum number of
  history events (25000)."; Express executions have no such limit.
* A Parallel state whose branch failed fails with the branch's error, ``States.`` ones included.
* An inline Map runs at most 40 iterations at a time, whatever its MaxConcurrency (0 means
  "as many as allowed"); the others queue.
* An execution's failure has a cause of at most 32,768 characters and an error of at most 256
  (API reference, ExecutionFailedEventDetails). A Fail state whose ErrorPath or CausePath
  resolves longer fails the execution with ``States.Runtime`` naming the limit: AWS documents
  the limits but not what a longer Fail state does, and a runtime error is what it raises for
  every other Fail state path that cannot be used (a path to no string); moto kept any length.

What moto already did and is kept: every state's output is checked after OutputPath
(``CommonStateField._eval_body``) and a Lambda task's result after the call; those checks are
made exact here (the limit is inclusive and counts compact UTF-8 JSON, as the history stores it;
moto counted ``json.dumps``' spaced, ASCII-escaped text and refused exactly 262,144 bytes).
``install_limits`` runs in the moto host (``aws_server``) before it serves.
"""

from __future__ import annotations

import json
import threading
from typing import Any

MAX_PAYLOAD_BYTES = 262_144
MAX_HISTORY_EVENTS = 25_000
INLINE_MAP_MAX_CONCURRENCY = 40
MAX_CAUSE_CHARS = 32_768
MAX_ERROR_CHARS = 256
HISTORY_LIMIT_CAUSE = f"The execution reached the maximum number of history events ({MAX_HISTORY_EVENTS})."
START_INPUT_TOO_LARGE = (
    "1 validation error detected: Value at 'input' failed to satisfy constraint: "
    f"Member must have length less than or equal to {MAX_PAYLOAD_BYTES}"
)


def payload_bytes(value: Any) -> int:
    """The size AWS compares with the quota: a string as is, anything else as compact JSON."""
    text = (
        value
        if isinstance(value, str)
        else json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    )
    return len(text.encode("utf-8"))


def is_within_size_quota(value: Any) -> bool:
    return payload_bytes(value) <= MAX_PAYLOAD_BYTES


def _failure(env: Any, error_type: str, event_type: str, cause: str) -> Exception:
    """moto's failure of a States.* error (``error_type``: a StatesErrorNameType member's name)
    raised at ``event_type`` (a HistoryEventType member's name), as the engine raises its own."""
    from moto.stepfunctions.parser.api import ExecutionFailedEventDetails, HistoryEventType
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    error = getattr(StatesErrorNameType, error_type)
    return FailureEventException(
        failure_event=FailureEvent(
            env=env,
            error_name=StatesErrorName(typ=error),
            event_type=getattr(HistoryEventType, event_type),
            event_details=EventDetails(  # type: ignore[typeddict-item]
                executionFailedEventDetails=ExecutionFailedEventDetails(error=error.to_name(), cause=cause)
            ),
        )
    )


def _data_limit_exceeded(env: Any, state_name: str, what: str) -> Exception:
    limit = "the maximum number of bytes service limit"
    cause = f"The state/task '{state_name}' {what} with a size exceeding {limit}."
    return _failure(env, "StatesStatesDataLimitExceeded", "TaskFailed", cause)


def _runtime_error(env: Any, cause: str) -> Exception:
    return _failure(env, "StatesRuntime", "ExecutionFailed", cause)


def fail_state_overflow(state_name: str, error: Any, cause: Any) -> str | None:
    """Why a Fail state's error or cause cannot be the execution's, or None when both fit."""
    for field, value, limit in (("error", error, MAX_ERROR_CHARS), ("cause", cause, MAX_CAUSE_CHARS)):
        if isinstance(value, str) and len(value) > limit:
            return (
                f"The Fail state '{state_name}' resolved an {field} of {len(value)} characters; an "
                f"execution's {field} is at most {limit} characters."
            )
    return None


def _install_fail_state_lengths() -> None:
    """A Fail state's resolved error and cause within ExecutionFailedEventDetails' lengths."""
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEventException
    from moto.stepfunctions.parser.asl.component.state.fail.state_fail import StateFail

    original = StateFail._eval_state

    def eval_state(self: Any, env: Any) -> None:
        try:
            original(self, env)
        except FailureEventException as failure:
            event_details: dict[str, Any] = dict(failure.failure_event.event_details or {})
            details = event_details.get("taskFailedEventDetails") or {}
            why = fail_state_overflow(self.name, details.get("error"), details.get("cause"))
            if why is not None:
                raise _runtime_error(env, why) from None
            raise

    StateFail._eval_state = eval_state  # type: ignore[method-assign]


def _install_payload_quota() -> None:
    from moto.stepfunctions.parser import quotas
    from moto.stepfunctions.parser.asl.component.state import state
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task, state_task_lambda
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service

    # The three modules that check a size imported the function by name: replace each binding.
    for module in (quotas, state, state_task_lambda, state_task_service):
        module.is_within_size_quota = is_within_size_quota  # type: ignore[attr-defined]

    # A Task's input after Parameters (AWS: "when, after Parameters processing, the input of a
    # state is larger than the payload size quota"); moto sends any size to the Lambda.
    def checked(original: Any, payload_of: Any) -> Any:
        def eval_parameters(self: Any, env: Any) -> dict[str, Any]:
            parameters: dict[str, Any] = original(self, env)
            if not is_within_size_quota(payload_of(parameters)):
                raise _data_limit_exceeded(env, self.name, "has an input")
            return parameters

        return eval_parameters

    lambda_task = state_task_lambda.StateTaskLambda
    lambda_task._eval_parameters = checked(lambda_task._eval_parameters, lambda p: p["Payload"])  # type: ignore[method-assign]
    task = state_task.StateTask
    task._eval_parameters = checked(task._eval_parameters, lambda p: p)  # type: ignore[method-assign]


def _install_item_input_quota() -> None:
    """Each inline Map iteration's input after ItemSelector is a state input too."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor import (
        inline_item_processor_worker as worker,
    )

    original = worker.InlineItemProcessorWorker._eval_input

    def eval_input(self: Any, env_frame: Any) -> None:
        original(self, env_frame)
        if not is_within_size_quota(env_frame.states.get_input()):
            raise _data_limit_exceeded(env_frame, self._work_name, "has an iteration input")

    worker.InlineItemProcessorWorker._eval_input = eval_input  # type: ignore[method-assign]


def _install_terminal_errors() -> None:
    """``States.ALL`` matches every error but the two terminal ones (Catch and Retry alike)."""
    from moto.stepfunctions.parser.asl.component.common.error_name.error_equals_decl import ErrorEqualsDecl
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )

    # A list: ErrorName defines __eq__ without __hash__.
    terminal = [
        StatesErrorName(typ=StatesErrorNameType.StatesStatesDataLimitExceeded),
        StatesErrorName(typ=StatesErrorNameType.StatesRuntime),
    ]
    original = ErrorEqualsDecl._eval_body

    def eval_body(self: Any, env: Any) -> None:
        error_name = env.stack[-1]
        original(self, env)
        if ErrorEqualsDecl._STATE_ALL_ERROR in self.error_names and error_name in terminal:
            env.stack[-1] = False

    ErrorEqualsDecl._eval_body = eval_body  # type: ignore[method-assign]


def _install_parallel_branch_errors() -> None:
    """A Parallel whose branch failed with a ``States.`` error fails with that error.

    moto re-raises a branch's error as a custom error name, which refuses the ``States.`` prefix,
    so a branch's ``States.DataLimitExceeded`` (or ``States.Timeout``) became a ``States.Runtime``
    about a ValueError, and a Catch could not tell them apart.
    """
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.state.exec.state_parallel import branches_decl

    def error_name(error_name: str) -> Any:
        if error_name.startswith("States."):
            return StatesErrorName.from_name(error_name)
        return CustomErrorName(error_name=error_name)

    setattr(branches_decl, "CustomErrorName", error_name)  # noqa: B010 - a module's class binding


def _install_history_limit() -> None:
    """Count a Standard execution's events; event 25,000 ends it unless it is its success.

    The count lives in the execution's EventManager, which moto shares between the execution and
    every Map/Parallel frame, so iterations running in parallel threads count against the same
    budget under the manager's own lock, as on AWS.
    """
    from moto.stepfunctions.parser.api import (
        ExecutionFailedEventDetails,
        HistoryEventType,
        StateMachineType,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
    from moto.stepfunctions.parser.asl.eval.event.event_manager import EventManager
    from moto.stepfunctions.parser.backend import execution_worker

    original_add = EventManager.add_event

    def add_event(self: Any, context: Any, event_type: Any, event_details: Any = None, **kwargs: Any) -> int:
        root = getattr(self, "_aurora_sync_root", None)
        if root is None:
            return int(original_add(self, context, event_type, event_details, **kwargs))
        with self._aurora_sync_cap_lock:
            if self._aurora_sync_capped:
                # After event 25,000 AWS records nothing: the execution has ended.
                return MAX_HISTORY_EVENTS
            if (
                self._event_id_gen._next_id < MAX_HISTORY_EVENTS
                or event_type == HistoryEventType.ExecutionSucceeded
            ):
                return int(original_add(self, context, event_type, event_details, **kwargs))
            self._aurora_sync_capped = True
            failure = ExecutionFailedEventDetails(error="States.Runtime", cause=HISTORY_LIMIT_CAUSE)
            event_id = int(
                original_add(
                    self,
                    context,
                    HistoryEventType.ExecutionFailed,
                    EventDetails(executionFailedEventDetails=failure),  # type: ignore[typeddict-item]
                )
            )
        # The execution's status and error are the history's last word: later failures of the
        # states still in flight (they see a stopped program) must not replace it.
        set_error = root.set_error
        set_error(failure)
        root.set_error = lambda error: set_error(failure)
        return event_id

    EventManager.add_event = add_event  # type: ignore[assignment]

    original_environment = execution_worker.ExecutionWorker._get_evaluation_environment

    def evaluation_environment(self: Any) -> Any:
        env = original_environment(self)
        if env.execution_type == StateMachineType.STANDARD:
            manager: Any = env.event_manager
            manager._aurora_sync_root = env
            manager._aurora_sync_cap_lock = threading.Lock()
            manager._aurora_sync_capped = False
        return env

    execution_worker.ExecutionWorker._get_evaluation_environment = evaluation_environment  # type: ignore[method-assign]


def _install_inline_map_concurrency() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration import (
        inline_iteration_component as inline,
    )

    original = inline.InlineIterationComponent._eval_body

    def eval_body(self: Any, env: Any) -> None:
        # The eval input on the stack carries MaxConcurrency; moto starts that many workers, or
        # one per item for 0. AWS runs 40 at most and queues the rest.
        eval_input = env.stack[-1]
        requested = eval_input.max_concurrency
        if requested == 0 or requested > INLINE_MAP_MAX_CONCURRENCY:
            eval_input.max_concurrency = INLINE_MAP_MAX_CONCURRENCY
        original(self, env)

    inline.InlineIterationComponent._eval_body = eval_body  # type: ignore[method-assign]


def _install_execution_input_quota() -> None:
    from moto.stepfunctions.exceptions import ValidationException
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    original = StepFunctionsParserBackend.start_execution

    def start_execution(
        self: Any, state_machine_arn: str, name: Any = None, execution_input: Any = None, **kwargs: Any
    ) -> Any:
        if execution_input is not None and payload_bytes(str(execution_input)) > MAX_PAYLOAD_BYTES:
            raise ValidationException(START_INPUT_TOO_LARGE)
        return original(self, state_machine_arn, name, execution_input, **kwargs)

    StepFunctionsParserBackend.start_execution = start_execution  # type: ignore[assignment]


def install_limits() -> None:
    """Patch the interpreter and the StartExecution API (before the server serves)."""
    _install_payload_quota()
    _install_item_input_quota()
    _install_terminal_errors()
    _install_parallel_branch_errors()
    _install_history_limit()
    _install_inline_map_concurrency()
    _install_execution_input_quota()
    _install_fail_state_lengths()
