"""moto in server mode: S3, SSM, STS, SQS, IAM, KMS, Lambda and Step Functions execution."""

from __future__ import annotations

import json
import sys
from typing import Any

from .component import (
    ACCOUNT_ID,
    ADMIN_ACCESS_KEY_ID,
    ADMIN_SECRET_ACCESS_KEY,
    REGION,
    LaunchSpec,
    StackSettings,
    http_ok,
)

DATA_LAKE_BUCKET = "aurora-sync-data-lake"
LAMBDA_ROLE_NAME = "aurora-sync-lambda"
CONFIG_SSM_PATH = "/aurora-sync/tables/"

LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ],
}


class AwsComponent:
    name = "aws"
    requires: tuple[str, ...] = ()

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self._facts: dict[str, Any] = {}

    def missing_prerequisites(self) -> list[str]:
        try:
            import moto  # noqa: F401
        except ImportError:
            return ["moto is not installed in this environment: run `make dev` (pip install -e '.[dev]')"]
        return []

    def prepare(self) -> None:
        return None

    def launch(self) -> LaunchSpec:
        return LaunchSpec(
            argv=[
                sys.executable,
                "-m",
                "aurora_sync_ops.local.aws_server",
                "--host",
                self.settings.host,
                "--port",
                str(self.settings.ports.aws),
            ],
        )

    def is_ready(self) -> bool:
        return http_ok(f"{self.settings.aws_endpoint}/moto-api/")

    def session(self) -> Any:
        import boto3

        return boto3.session.Session(
            aws_access_key_id=ADMIN_ACCESS_KEY_ID,
            aws_secret_access_key=ADMIN_SECRET_ACCESS_KEY,
            region_name=REGION,
        )

    def seed(self, facts: dict[str, Any]) -> None:
        """Bucket (SSE-KMS, as the template creates it), KMS key, and the Lambda role.

        The handlers run with credentials from ``sts:AssumeRole`` on the Lambda role, exactly
        as on AWS, so Vault's IAM login sees ``assumed-role/aurora-sync-lambda/...``.
        """
        session = self.session()
        endpoint = self.settings.aws_endpoint
        kms = session.client("kms", endpoint_url=endpoint)
        alias = "alias/aurora-sync-data-lake"
        aliases = {a["AliasName"]: a.get("TargetKeyId") for a in kms.list_aliases()["Aliases"]}
        if aliases.get(alias):
            key_id = aliases[alias]
        else:
            key_id = kms.create_key(Description="aurora-sync data lake")["KeyMetadata"]["KeyId"]
            kms.create_alias(AliasName=alias, TargetKeyId=key_id)
        key_arn = kms.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]

        s3 = session.client("s3", endpoint_url=endpoint)
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        if DATA_LAKE_BUCKET not in existing:
            s3.create_bucket(Bucket=DATA_LAKE_BUCKET)
        s3.put_bucket_encryption(
            Bucket=DATA_LAKE_BUCKET,
            ServerSideEncryptionConfiguration={
                "Rules": [
                    {
                        "ApplyServerSideEncryptionByDefault": {
                            "SSEAlgorithm": "aws:kms",
                            "KMSMasterKeyID": key_arn,
                        }
                    }
                ]
            },
        )

        iam = session.client("iam", endpoint_url=endpoint)
        try:
            role_arn = iam.get_role(RoleName=LAMBDA_ROLE_NAME)["Role"]["Arn"]
        except iam.exceptions.NoSuchEntityException:
            role_arn = iam.create_role(
                RoleName=LAMBDA_ROLE_NAME, AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST)
            )["Role"]["Arn"]
        sts = session.client("sts", endpoint_url=endpoint)
        creds = sts.assume_role(RoleArn=role_arn, RoleSessionName="aurora-sync-local", DurationSeconds=43200)[
            "Credentials"
        ]
        self._facts = {
            "endpoint_url": endpoint,
            "region": REGION,
            "account_id": ACCOUNT_ID,
            # Operator/admin credentials (CLI, tests, stack tooling).
            "access_key_id": ADMIN_ACCESS_KEY_ID,
            "secret_access_key": ADMIN_SECRET_ACCESS_KEY,
            "bucket": DATA_LAKE_BUCKET,
            "kms_key_arn": key_arn,
            "config_ssm_path": CONFIG_SSM_PATH,
            "lambda_role_arn": role_arn,
            # What a Lambda's environment holds on AWS: short-lived role credentials.
            "lambda_credentials": {
                "access_key_id": creds["AccessKeyId"],
                "secret_access_key": creds["SecretAccessKey"],
                "session_token": creds["SessionToken"],
            },
        }
        facts["aws"] = self._facts

    def describe(self) -> dict[str, Any]:
        return self._facts
