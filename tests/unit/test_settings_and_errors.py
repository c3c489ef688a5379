"""The handlers' environment contract and the error taxonomy the state machine relies on."""

from __future__ import annotations

import pytest

from aurora_sync import errors
from aurora_sync.settings import ENVIRONMENT, RuntimeSettings


def test_every_concrete_error_is_directly_transient_or_terminal() -> None:
    # Step Functions matches errorType by exact class name, not inheritance: a class two levels
    # below a base would be retried (or not) only if the ASL named it explicitly.
    concrete = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.SyncError)]
    for cls in concrete:
        if cls in (errors.SyncError, errors.TransientError, errors.TerminalError):
            continue
        assert cls.__bases__ in ((errors.TransientError,), (errors.TerminalError,)), cls
    assert set(errors.TRANSIENT_ERROR_NAMES).isdisjoint(errors.TERMINAL_ERROR_NAMES)
    assert "SourceUnavailable" in errors.TRANSIENT_ERROR_NAMES
    assert "ConfigError" in errors.TERMINAL_ERROR_NAMES


def test_error_message_carries_the_fix() -> None:
    exc = errors.ConfigError("table 'orders' has no primary key.", fix="add primary_key to its parameter")
    assert str(exc) == "table 'orders' has no primary key. Fix: add primary_key to its parameter"
    assert exc.transient is False
    assert errors.SourceTimeout("slow").transient is True


def test_a_message_naming_thousands_of_tables_is_cut_and_keeps_its_fix() -> None:
    # A Lambda error's cause (message, type, stack trace) goes into a Fail state's cause, which
    # Step Functions caps at 32,768 characters.
    from aurora_sync.errors import MAX_MESSAGE_CHARS, ConfigError

    names = ", ".join(f"table_{i:04d}_named_as_long_as_a_config_and_postgresql_allow_it" for i in range(2000))
    error = ConfigError(f"tables {names} have no FINAL table.", fix="run `aurora-sync sql snowflake --apply`")
    text = str(error)
    assert len(text) < MAX_MESSAGE_CHARS + 200 < 32_768 // 3
    assert text.startswith("tables table_0000_") and text.endswith(
        "Fix: run `aurora-sync sql snowflake --apply`"
    )
    assert f"({len(names) + len('tables  have no FINAL table.') - MAX_MESSAGE_CHARS} more characters)" in text
    assert str(ConfigError("short.", fix="x")) == "short. Fix: x"


def test_settings_read_from_environment() -> None:
    settings = RuntimeSettings.from_environ(
        {"VAULT_ADDR": "https://vault.example:8200", "VAULT_ROLE": "aurora-sync", "AWS_REGION": "eu-west-1"}
    )
    assert settings.vault_addr == "https://vault.example:8200"
    assert settings.config_ssm_path == "/aurora-sync/tables/"
    assert settings.aws_region == "eu-west-1"
    assert set(ENVIRONMENT.values()) == set(RuntimeSettings.model_fields)


def test_invalid_environment_names_the_variables_and_the_fix() -> None:
    with pytest.raises(errors.ConfigError) as caught:
        RuntimeSettings.from_environ({"VAULT_ADDR": "vault:8200", "CONFIG_SSM_PATH": "no-leading-slash"})
    message = str(caught.value)
    assert "VAULT_ADDR" in message
    assert "VAULT_ROLE" in message
    assert "CONFIG_SSM_PATH" in message
    assert "template.yaml" in message


def _raises(exc: BaseException) -> None:
    raise exc


def test_an_unexpected_exception_leaves_a_handler_cut_under_its_own_class_name() -> None:
    # A bug's or a library's exception is not a SyncError, so nothing cut its message; its cause
    # could exceed a Fail state's 32,768 characters and end the run without its rerun command.
    import traceback

    from aurora_sync.errors import MAX_MESSAGE_CHARS, bounded_failures

    huge = "k" * 40_000
    handler = bounded_failures(lambda event, context: _raises(KeyError(huge)))
    with pytest.raises(Exception) as caught:
        handler({}, None)
    # Step Functions' Retry/Catch see errorType, the class's name: still KeyError.
    assert type(caught.value).__name__ == "KeyError" and type(caught.value).__module__ == "builtins"
    text = str(caught.value)
    assert len(text) < MAX_MESSAGE_CHARS + 100
    assert text.endswith(f"({len(repr(huge)) - MAX_MESSAGE_CHARS} more characters)")
    # The frames are the original's: the stack trace still shows where it was raised.
    frames = [frame.name for frame in traceback.extract_tb(caught.value.__traceback__)]
    assert frames[-1] == "_raises"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_a_short_unexpected_exception_and_every_sync_error_leave_a_handler_unchanged() -> None:
    from aurora_sync.errors import ConfigError, bounded_failures

    short = ValueError("short")
    with pytest.raises(ValueError) as caught:
        bounded_failures(lambda event, context: _raises(short))({}, None)
    assert caught.value is short
    long_config = ConfigError("x" * 20_000, fix="f")
    with pytest.raises(ConfigError) as config:
        bounded_failures(lambda event, context: _raises(long_config))({}, None)
    assert config.value is long_config


@pytest.mark.parametrize("module", ["planner.app", "exporter.app", "verifier.app", "rounds.app"])
def test_every_handler_bounds_its_unexpected_failures(module: str) -> None:
    import importlib

    # functools.wraps carries the marker through the Powertools decorators above it.
    assert getattr(importlib.import_module(module).lambda_handler, "bounds_failures", False) is True
