"""AWS API failures (botocore) mapped onto the error taxonomy, in one place.

Beside ``source_db.classify_source_error`` and ``warehouse_db.classify_warehouse_error``: every
call to an AWS API (SSM, Step Functions, CloudFormation, IAM) that can fail hands its botocore
exception here, and gets back the project's error with the AWS call and resource named.

- Throttling, a 5xx answer, or no answer at all (connection refused, read timeout) is
  **transient**: the same call can succeed later, so the state machine's Retry clauses retry
  the class the caller passes as ``transient``.
- Access denied is **terminal** and names the permission to grant: retrying cannot help until
  someone edits a policy.
- Missing credentials or region, and any other refusal, are terminal: the request itself is
  wrong and says so.

botocore is imported inside the function so that importing this module costs a handler's cold
start nothing.
"""

from __future__ import annotations

from .errors import ConfigError, ConfigStoreUnavailable, SyncError

# Error codes AWS services use for "slow down" and "try again": retryable by AWS's own SDK
# retry modes (botocore's standard mode lists the same family).
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "ProvisionedThroughputExceededException",
        "SlowDown",
        "TooManyUpdates",
        "PriorRequestNotComplete",
        "InternalServerError",
        "InternalFailure",
        "InternalError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
    }
)
# Refusals of the caller's identity or its permissions: a policy (or the credentials) must change.
ACCESS_DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "KMSAccessDenied",
        "KMSAccessDeniedException",
    }
)
EXPIRED_CODES = frozenset({"ExpiredToken", "ExpiredTokenException", "RequestExpired"})


def aws_error_code(exc: BaseException) -> str:
    """The service's error code of a ``ClientError`` (``"Unknown"`` if absent), else the class name."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code") or "Unknown")
    return type(exc).__name__


def classify_aws_error(
    exc: BaseException,
    *,
    call: str,
    resource: str,
    grant: str,
    transient: type[SyncError] = ConfigStoreUnavailable,
    terminal: type[SyncError] = ConfigError,
    retry_fix: str = "the run retries; if it persists, check the AWS service health and the network path",
    failed_fix: str = "check the request's resource name and region",
) -> SyncError:
    """The taxonomy's error for ``exc`` raised by the AWS API ``call`` (e.g. ``"ssm:PutParameter"``).

    ``grant`` is the fix for access denied: which role needs which permission on what. The
    message carries the AWS error code and the resource, never the request's parameters (a
    SecureString value, a token), so it is safe for logs and execution histories. Raise the
    result ``from None``: botocore's own text repeats the request.
    """
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
    )

    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return terminal(
            f"no AWS credentials to call {call} on {resource}.",
            fix="run with the function's execution role, or configure credentials (AWS_PROFILE, "
            "aws sso login, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)",
        )
    if isinstance(exc, NoRegionError):
        return terminal(
            f"no AWS region to call {call} on {resource}.",
            fix="set AWS_REGION (or AWS_DEFAULT_REGION, or region in the AWS profile)",
        )
    if isinstance(exc, ClientError):
        code = aws_error_code(exc)
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in THROTTLING_CODES or status >= 500:
            return transient(f"AWS refused {call} on {resource} for now ({code}).", fix=retry_fix)
        if code in ACCESS_DENIED_CODES or code.startswith("AccessDenied"):
            return terminal(f"access denied for {call} on {resource} ({code}).", fix=grant)
        if code in EXPIRED_CODES:
            return terminal(
                f"the AWS credentials calling {call} on {resource} have expired ({code}).",
                fix="refresh them (aws sso login, or new session credentials) and run again",
            )
        return terminal(f"{call} on {resource} failed ({code}).", fix=failed_fix)
    if isinstance(exc, BotoCoreError):
        # Connection refused, DNS, read timeouts, a broken proxy: nothing reached the service, or
        # its answer did not reach us.
        return transient(
            f"AWS could not be reached for {call} on {resource} ({type(exc).__name__}).",
            fix=retry_fix,
        )
    return terminal(f"{call} on {resource} failed ({type(exc).__name__}).", fix=failed_fix)
