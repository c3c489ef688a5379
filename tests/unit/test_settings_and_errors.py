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
