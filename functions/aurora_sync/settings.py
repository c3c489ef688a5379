"""The handlers' environment, validated once per cold start.

On AWS these variables come from ``template.yaml``; on the local stack from
``aurora-sync local status`` (see ``tests/conftest.py``). Only endpoints and credentials
differ between the two: boto3 honours ``AWS_ENDPOINT_URL`` natively.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .config import config_error

# Environment variable -> field. One table so the template, docs and tests cannot disagree.
ENVIRONMENT: dict[str, str] = {
    "CONFIG_SSM_PATH": "config_ssm_path",
    "VAULT_ADDR": "vault_addr",
    "VAULT_ROLE": "vault_role",
    "VAULT_IAM_SERVER_ID": "vault_iam_server_id",
    "VAULT_AUTH_MOUNT": "vault_auth_mount",
    "VAULT_KV_MOUNT": "vault_kv_mount",
    "VAULT_NAMESPACE": "vault_namespace",
    "VAULT_STS_REGION": "vault_sts_region",
    "VAULT_CA_CERT": "vault_ca_cert",
    "AURORA_SECRET_PATH": "aurora_secret_path",
    "SNOWFLAKE_SECRET_PATH": "snowflake_secret_path",
    "SNOWFLAKE_STAGING_SCHEMA": "snowflake_staging_schema",
    "SNOWFLAKE_FINAL_SCHEMA": "snowflake_final_schema",
    "EXPORT_BUCKET": "export_bucket",
    "EXPORT_KMS_KEY_ARN": "export_kms_key_arn",
    "EXPORT_BATCH_SIZE": "export_batch_size",
    "MAX_CONCURRENCY": "max_concurrency",
    "AWS_REGION": "aws_region",
    "LOAD_REFRESH_AFTER_SECONDS": "load_refresh_after_seconds",
    "LOAD_TIMEOUT_SECONDS": "load_timeout_seconds",
    "MERGE_TIMEOUT_SECONDS": "merge_timeout_seconds",
    "VERIFY_LOADS_PER_CALL": "verify_loads_per_call",
}


class RuntimeSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    config_ssm_path: str = Field(
        "/aurora-sync/tables/",
        pattern=r"^/([\w.-]+/)*$",
        description="SSM path holding one parameter per table",
    )
    vault_addr: str = Field(..., pattern=r"^https?://", description="Vault address")
    vault_role: str = Field(..., min_length=1, description="Vault aws-auth role bound to the Lambda role")
    vault_iam_server_id: str | None = Field(None, description="value of X-Vault-AWS-IAM-Server-ID")
    vault_auth_mount: str = "aws"
    vault_kv_mount: str = "secret"
    vault_namespace: str | None = None
    # Which STS endpoint the login is signed for: unset = the global sts.amazonaws.com, which
    # accepts only us-east-1 signatures and is what a Vault aws auth mount calls by default; a
    # region = sts.<region>.amazonaws.com, for a mount whose sts_endpoint/sts_region name it.
    # Never the function's own region: STS rejects a signature scoped to any other region.
    vault_sts_region: str | None = Field(None, pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]+$")
    # The CA that signed Vault's TLS certificate when no public trust store knows it: PEM text,
    # or the path of a PEM file in the package (functions/ ends up in /var/task/).
    vault_ca_cert: str | None = None
    aurora_secret_path: str = "aurora-sync/aurora"  # noqa: S105 - a Vault KV path, not a secret
    snowflake_secret_path: str = "aurora-sync/snowflake"  # noqa: S105 - a Vault KV path
    # The database comes from the Snowflake secret; these name the two schemas inside it.
    snowflake_staging_schema: str = Field("STAGING", pattern=r"^[A-Za-z_][A-Za-z0-9_$]*$")
    snowflake_final_schema: str = Field("FINAL", pattern=r"^[A-Za-z_][A-Za-z0-9_$]*$")
    export_bucket: str | None = None
    export_kms_key_arn: str | None = None
    # How the planner and the round step batch a round's items among the export Map's child
    # executions (template parameters ExportBatchSize and MaxConcurrency: exporting.rounds.batches).
    export_batch_size: int = Field(25, ge=1, le=500)
    max_concurrency: int = Field(4, ge=1, le=40)
    aws_region: str = "us-east-1"
    # Verifier: Snowpipe usually loads within a minute of the S3 event; past this many seconds
    # since the run started, files still unknown to COPY_HISTORY are re-queued once with
    # ALTER PIPE ... REFRESH (heals a lost notification).
    load_refresh_after_seconds: int = Field(120, ge=0)
    # Verifier: seconds from its first check of a run until unloaded files fail the table.
    load_timeout_seconds: int = Field(900, ge=1)
    # Verifier: seconds from the merge task's first run in this run until it must have finished.
    merge_timeout_seconds: int = Field(900, ge=1)
    # Verifier: tables whose load history one call reads (verifying.verify.LOADS_PER_CALL, the
    # default): a knob because Snowflake's time for a COPY_HISTORY of hundreds of tables in one
    # statement is the verifier's one per-call cost measured only on the emulator.
    verify_loads_per_call: int = Field(500, ge=1, le=2000)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> RuntimeSettings:
        environ = os.environ if environ is None else environ
        values = {field: environ[var] for var, field in ENVIRONMENT.items() if environ.get(var)}
        try:
            return cls(**values)
        except ValidationError as exc:
            variables = {field: var for var, field in ENVIRONMENT.items()}
            raise config_error(
                exc,
                heading="Lambda environment is invalid",
                label=lambda loc: variables.get(str(loc[0]), str(loc[0])),
                fix="set these variables in template.yaml (or the local stack's lambda environment)",
            ) from None


@lru_cache(maxsize=1)
def runtime_settings() -> RuntimeSettings:
    """Cached for warm invocations; tests call ``runtime_settings.cache_clear()``."""
    return RuntimeSettings.from_environ()
