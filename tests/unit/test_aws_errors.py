"""The one botocore classifier (``aws_errors.classify_aws_error``): which AWS failures are
transient (retried by the state machine), which are terminal, and that a terminal access denial
names the permission to grant. Exceptions are built as botocore raises them; no server needed."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ReadTimeoutError,
)

from aurora_sync.aws_errors import aws_error_code, classify_aws_error
from aurora_sync.errors import ConfigError, ConfigStoreUnavailable, SyncError

GRANT = "grant the planner's role ssm:GetParametersByPath on /aurora-sync/tables/*"


def client_error(code: str, status: int = 400, message: str = "boom") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "GetParametersByPath",
    )


def classify(exc: BaseException) -> SyncError:
    return classify_aws_error(
        exc, call="ssm:GetParametersByPath", resource="/aurora-sync/tables/", grant=GRANT
    )


@pytest.mark.parametrize(
    ("exc", "kind", "says"),
    [
        (client_error("ThrottlingException"), ConfigStoreUnavailable, "AWS refused ssm:GetParametersByPath"),
        (
            client_error("TooManyRequestsException"),
            ConfigStoreUnavailable,
            "for now (TooManyRequestsException)",
        ),
        (client_error("InternalServerError", 500), ConfigStoreUnavailable, "for now (InternalServerError)"),
        (client_error("SomethingNew", 503), ConfigStoreUnavailable, "for now (SomethingNew)"),
        (
            EndpointConnectionError(endpoint_url="https://ssm.eu-west-1.amazonaws.com/"),
            ConfigStoreUnavailable,
            "AWS could not be reached for ssm:GetParametersByPath on /aurora-sync/tables/ "
            "(EndpointConnectionError)",
        ),
        (ReadTimeoutError(endpoint_url="https://ssm"), ConfigStoreUnavailable, "(ReadTimeoutError)"),
        (ConnectTimeoutError(endpoint_url="https://ssm"), ConfigStoreUnavailable, "(ConnectTimeoutError)"),
        (
            client_error("AccessDeniedException"),
            ConfigError,
            "access denied for ssm:GetParametersByPath on /aurora-sync/tables/ "
            f"(AccessDeniedException). Fix: {GRANT}",
        ),
        (client_error("AccessDenied", 403), ConfigError, f"Fix: {GRANT}"),
        (client_error("UnrecognizedClientException"), ConfigError, f"Fix: {GRANT}"),
        (client_error("KMSAccessDeniedException"), ConfigError, f"Fix: {GRANT}"),
        (client_error("ExpiredTokenException"), ConfigError, "have expired (ExpiredTokenException)"),
        (NoCredentialsError(), ConfigError, "no AWS credentials to call ssm:GetParametersByPath"),
        (
            NoRegionError(),
            ConfigError,
            "no AWS region to call ssm:GetParametersByPath on /aurora-sync/tables/. Fix: set AWS_REGION",
        ),
        (
            client_error("ValidationException"),
            ConfigError,
            "ssm:GetParametersByPath on /aurora-sync/tables/ failed (ValidationException). "
            "Fix: check the request's resource name and region",
        ),
    ],
)
def test_each_failure_gets_its_side_of_the_taxonomy(
    exc: BaseException, kind: type[SyncError], says: str
) -> None:
    error = classify(exc)
    assert type(error) is kind
    assert error.transient is (kind is ConfigStoreUnavailable)
    assert says in str(error)


def test_the_caller_chooses_the_classes_and_the_fixes() -> None:
    class Refused(SyncError):
        pass

    class Later(SyncError):
        transient = True

    denied = classify_aws_error(
        client_error("AccessDenied"),
        call="states:StartExecution",
        resource="arn:sm",
        grant="g",
        transient=Later,
        terminal=Refused,
        failed_fix="f",
    )
    later = classify_aws_error(
        client_error("Throttling"),
        call="states:StartExecution",
        resource="arn:sm",
        grant="g",
        transient=Later,
        terminal=Refused,
        retry_fix="wait",
    )
    other = classify_aws_error(
        client_error("StateMachineDoesNotExist"),
        call="states:StartExecution",
        resource="arn:sm",
        grant="g",
        transient=Later,
        terminal=Refused,
        failed_fix="pass the ARN of the deployed machine",
    )
    assert (type(denied), str(denied)) == (
        Refused,
        "access denied for states:StartExecution on arn:sm (AccessDenied). Fix: g",
    )
    assert (type(later), str(later)) == (
        Later,
        "AWS refused states:StartExecution on arn:sm for now (Throttling). Fix: wait",
    )
    assert str(other).endswith("(StateMachineDoesNotExist). Fix: pass the ARN of the deployed machine")


def test_the_message_never_repeats_botocore_text_which_can_hold_request_values() -> None:
    secret = "SecureString-value-9f3c"
    error = classify(
        client_error("ValidationException", message=f"Value '{secret}' failed to satisfy constraint")
    )
    assert secret not in str(error)
    assert aws_error_code(client_error("ParameterNotFound")) == "ParameterNotFound"
    assert aws_error_code(EndpointConnectionError(endpoint_url="x")) == "EndpointConnectionError"
