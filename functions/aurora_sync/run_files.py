"""The run's files in the data lake bucket (``exporting.rounds``' layout): JSON documents read and
written under ``_aurora_sync/runs/<run_id>/``, the only S3 calls the functions make themselves
(Aurora writes the exports with ``aws_s3``).

Writes use the bucket's KMS key when one is configured, like the exports. AWS's refusals are
mapped onto the taxonomy by ``aws_errors.classify_aws_error``: throttling and outages are
transient (``ExportWriteFailed``, which the state machine retries), a denial names the grant.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .aws_errors import aws_error_code, classify_aws_error
from .errors import ConfigError, ExportWriteFailed
from .settings import RuntimeSettings

# Where a run's own files live in the data lake bucket: no table prefix (a pipe loads only
# <table>/) can start with an underscore.
RUNS_PREFIX = "_aurora_sync/runs"
# Connections the client keeps open: one per read the round step has in flight
# (``exporting.rounds.CHUNK_READS``); botocore's default of 10 would open and drop the others.
MAX_CONNECTIONS = 16


def run_prefix(run_id: str) -> str:
    if not run_id or "/" in run_id:
        raise ConfigError(f"run id {run_id!r} cannot name an S3 prefix.", fix="use the execution's name")
    return f"{RUNS_PREFIX}/{run_id}/"


def verify_key(run_id: str) -> str:
    """The verifier's report of the run (``messages.VerifyOutput``), rewritten by every poll and
    read by the next one (``verifying.progress``) and by the CLI."""
    return f"{run_prefix(run_id)}verify.json"


def rerun_key(run_id: str) -> str:
    """The input that reruns the run's failed tables, when too long for the failure's cause."""
    return f"{run_prefix(run_id)}rerun.json"


@dataclass(frozen=True)
class RunFiles:
    client: Any  # boto3 S3 client
    bucket: str
    kms_key_arn: str | None = None

    @classmethod
    def of(cls, settings: RuntimeSettings) -> RunFiles:
        """The data lake bucket of the function's environment, with bounded timeouts and standard
        retries (boto3 honours AWS_ENDPOINT_URL)."""
        import boto3
        from botocore.config import Config

        if not settings.export_bucket:
            raise ConfigError(
                "EXPORT_BUCKET is not set.", fix="set it in template.yaml (the data lake bucket)"
            )
        client = boto3.client(
            "s3",
            region_name=settings.aws_region,
            config=Config(
                connect_timeout=5,
                read_timeout=30,
                retries={"mode": "standard", "max_attempts": 3},
                max_pool_connections=MAX_CONNECTIONS,
            ),
        )
        return cls(client, settings.export_bucket, settings.export_kms_key_arn)

    def _fail(self, exc: Exception, call: str, key: str) -> Exception:
        return classify_aws_error(
            exc,
            call=call,
            resource=f"s3://{self.bucket}/{key}",
            grant=f"allow {call} on arn:aws:s3:::{self.bucket}/{RUNS_PREFIX}/* to the function's role "
            "(template.yaml grants it)",
            transient=ExportWriteFailed,
            failed_fix="check EXPORT_BUCKET and that the run's files were not removed (bucket lifecycle)",
        )

    def read_json(self, key: str) -> Any:
        return self._parse(key, self._get(key, missing_ok=False))

    def read_json_if_present(self, key: str) -> Any:
        """The document at ``key``, or None when there is none (S3's NoSuchKey): a file the run
        may not have written, which the caller names in its own terms."""
        body = self._get(key, missing_ok=True)
        return None if body is None else self._parse(key, body)

    def _get(self, key: str, *, missing_ok: bool) -> bytes | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return bytes(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except ClientError as exc:
            if missing_ok and aws_error_code(exc) in ("NoSuchKey", "404"):
                return None
            raise self._fail(exc, "s3:GetObject", key) from None
        except BotoCoreError as exc:
            raise self._fail(exc, "s3:GetObject", key) from None

    def _parse(self, key: str, body: bytes | None) -> Any:
        try:
            return json.loads(body or b"")
        except ValueError:
            raise ConfigError(
                f"s3://{self.bucket}/{key} is not JSON.", fix="the run's files are written by the run itself"
            ) from None

    def write_json(self, key: str, value: Any) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        extra: dict[str, str] = {}
        if self.kms_key_arn:
            extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key_arn}
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=json.dumps(value, separators=(",", ":")).encode(),
                ContentType="application/json",
                **extra,
            )
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc, "s3:PutObject", key) from None
