"""Contract (real AWS): a missing run file reads as 404 NoSuchKey under the roles' S3 grants.

The rounds function (a table's chunk files) and the verifier (its verify.json) tell "not written"
from "not allowed" by S3's answer to GetObject of a missing key: 404 NoSuchKey with s3:ListBucket
on the bucket, 403 AccessDenied without (API reference, GetObject: Permissions). Both roles grant
s3:ListBucket only with the condition ``s3:prefix`` like ``_aurora_sync/runs/*``; these tests check
that S3 evaluates that condition with the requested key, on a session whose permissions are
exactly the template's statements (a session policy narrows the role given).

They run only when ``AURORA_SYNC_CONTRACT_AWS=1``, ``AURORA_SYNC_CONTRACT_BUCKET`` (a bucket to
read from; nothing is written) and ``AURORA_SYNC_CONTRACT_S3_ROLE_ARN`` (a role the caller may
assume that may read and list that bucket) are set.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.aws_account

RUNS_PREFIX = "_aurora_sync/runs"


@pytest.fixture(scope="module")
def bucket() -> str:
    if os.environ.get("AURORA_SYNC_CONTRACT_AWS") != "1":
        pytest.skip("set AURORA_SYNC_CONTRACT_AWS=1 (with AWS credentials) to check S3's answers")
    name = os.environ.get("AURORA_SYNC_CONTRACT_BUCKET")
    role = os.environ.get("AURORA_SYNC_CONTRACT_S3_ROLE_ARN")
    if not name or not role:
        pytest.skip("set AURORA_SYNC_CONTRACT_BUCKET and AURORA_SYNC_CONTRACT_S3_ROLE_ARN")
    return name


def session_s3(bucket: str, listing: dict[str, Any] | None) -> Any:
    """An S3 client whose session may GetObject under the run files' prefix, plus ``listing``."""
    statements: list[dict[str, Any]] = [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/{RUNS_PREFIX}/*"}
    ]
    if listing is not None:
        statements.append(
            {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}", **listing}
        )
    credentials = boto3.client("sts").assume_role(
        RoleArn=os.environ["AURORA_SYNC_CONTRACT_S3_ROLE_ARN"],
        RoleSessionName=f"aurora-sync-contract-{uuid.uuid4().hex[:8]}",
        Policy=json.dumps({"Version": "2012-10-17", "Statement": statements}),
    )["Credentials"]
    return boto3.client(
        "s3",
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


def answer(s3: Any, bucket: str) -> str:
    key = f"{RUNS_PREFIX}/contract-{uuid.uuid4().hex}/verify.json"  # never written
    with pytest.raises(ClientError) as caught:
        s3.get_object(Bucket=bucket, Key=key)
    return str(caught.value.response["Error"]["Code"])


def test_listing_the_run_files_prefix_makes_a_missing_key_no_such_key(bucket: str) -> None:
    # The template's grant (RoundsRole, VerifierRole).
    listing = {"Condition": {"StringLike": {"s3:prefix": f"{RUNS_PREFIX}/*"}}}
    assert answer(session_s3(bucket, listing), bucket) == "NoSuchKey"


def test_without_listing_or_listing_elsewhere_a_missing_key_is_access_denied(bucket: str) -> None:
    assert answer(session_s3(bucket, None), bucket) == "AccessDenied"
    elsewhere = {"Condition": {"StringLike": {"s3:prefix": "somewhere-else/*"}}}
    assert answer(session_s3(bucket, elsewhere), bucket) == "AccessDenied"
