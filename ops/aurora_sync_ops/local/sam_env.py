"""What ``sam local invoke`` needs to run the handlers against the running local stack.

SAM builds a function's environment from template.yaml and lets ``--env-vars`` override only the
variables the template declares for it (an undeclared key is silently dropped). So the env file
holds, per function logical id, exactly the variables the local engine deploys (one source:
``LocalEngine.function_specs``: the template's environment resolved with the stack's values,
``AWS_ENDPOINT_URL`` aimed at its moto).

The AWS credentials and region cannot be in that file: Lambda reserves those variables, so the
template cannot declare them, and SAM takes them from the shell's AWS configuration instead.
``credential_exports`` prints them as shell exports: the Lambda role's short-lived credentials
(STS AssumeRole, as a deployed function gets them) and the stack's region.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from .engine import LocalEngine


def env_vars_file(status: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """``sam local invoke --env-vars`` JSON: ``{"PlannerFunction": {VARIABLE: value}, ...}``."""
    return {spec.logical_id: dict(spec.environment) for spec in LocalEngine(status).function_specs()}


def role_credentials(status: Mapping[str, Any]) -> dict[str, str]:
    """The shell variables SAM reads the function's credentials and region from."""
    aws = status["aws"]
    creds = aws["lambda_credentials"]
    return {
        "AWS_ACCESS_KEY_ID": creds["access_key_id"],
        "AWS_SECRET_ACCESS_KEY": creds["secret_access_key"],
        "AWS_SESSION_TOKEN": creds["session_token"],
        "AWS_REGION": aws["region"],
        "AWS_DEFAULT_REGION": aws["region"],
    }


def credential_exports(status: Mapping[str, Any]) -> str:
    """``export NAME=value`` lines for ``eval`` (values quoted for the shell)."""
    return "".join(
        f"export {name}={shlex.quote(value)}\n" for name, value in role_credentials(status).items()
    )
