"""``aurora-sync attach-export-role`` (deploy step 2b) against RDS as moto serves it, which, like
RDS, refuses a second role for a feature with ``DBClusterRoleAlreadyExists``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from aurora_sync_ops.cli import main
from aurora_sync_ops.errors import WorkflowError
from aurora_sync_ops.export_role import attach

ACCOUNT = "123456789012"


@pytest.fixture
def aws_env(stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The operator's shell, aimed at the local moto by AWS_ENDPOINT_URL only."""
    aws = stack["aws"]
    for key, value in {
        "AWS_ENDPOINT_URL": aws["endpoint_url"],
        "AWS_REGION": aws["region"],
        "AWS_DEFAULT_REGION": aws["region"],
        "AWS_ACCESS_KEY_ID": aws["access_key_id"],
        "AWS_SECRET_ACCESS_KEY": aws["secret_access_key"],
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return aws


@pytest.fixture
def cluster(aws_env: dict[str, Any]) -> Iterator[tuple[Any, str]]:
    rds = boto3.client("rds")
    name = f"export-role-{uuid.uuid4().hex[:8]}"
    rds.create_db_cluster(
        DBClusterIdentifier=name,
        Engine="aurora-postgresql",
        MasterUsername="postgres",
        MasterUserPassword="not-a-secret-1",
    )
    yield rds, name
    rds.delete_db_cluster(DBClusterIdentifier=name, SkipFinalSnapshot=True)


def _role(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


def _roles(rds: Any, name: str) -> list[tuple[str, str]]:
    (found,) = rds.describe_db_clusters(DBClusterIdentifier=name)["DBClusters"]
    return [(r["RoleArn"], r.get("FeatureName", "")) for r in found.get("AssociatedRoles", [])]


def test_the_plain_aws_call_is_not_idempotent(cluster: tuple[Any, str]) -> None:
    """Why the command exists: the documented `add-role-to-db-cluster` fails when run again."""
    rds, name = cluster
    rds.add_role_to_db_cluster(DBClusterIdentifier=name, RoleArn=_role("export"), FeatureName="s3Export")
    with pytest.raises(ClientError) as excinfo:
        rds.add_role_to_db_cluster(DBClusterIdentifier=name, RoleArn=_role("export"), FeatureName="s3Export")
    assert excinfo.value.response["Error"]["Code"] == "DBClusterRoleAlreadyExists"


def test_attach_adds_the_role_then_is_a_no_op_on_every_later_deploy(cluster: tuple[Any, str]) -> None:
    rds, name = cluster
    first = attach(rds, name, _role("export"))
    assert (first.added, first.status) == (True, "ACTIVE")
    again = attach(rds, name, _role("export"))
    assert (again.added, again.status) == (False, "ACTIVE")
    assert _roles(rds, name) == [(_role("export"), "s3Export")]


def test_another_role_holding_s3_export_is_named_and_left_in_place(cluster: tuple[Any, str]) -> None:
    rds, name = cluster
    rds.add_role_to_db_cluster(DBClusterIdentifier=name, RoleArn=_role("other-tool"), FeatureName="s3Export")
    with pytest.raises(WorkflowError) as excinfo:
        attach(rds, name, _role("export"))
    message = str(excinfo.value)
    assert _role("other-tool") in message and "one role per feature" in message
    assert f"remove-role-from-db-cluster --db-cluster-identifier {name} --feature-name s3Export" in message
    assert _roles(rds, name) == [(_role("other-tool"), "s3Export")]


def test_the_cli_runs_twice_and_an_unknown_cluster_is_named(
    cluster: tuple[Any, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, name = cluster
    argv = ["attach-export-role", "--cluster", name, "--role-arn", _role("export")]
    assert main(argv) == 0
    assert "associated with cluster" in capsys.readouterr().out
    assert main(argv) == 0
    assert "was already associated" in capsys.readouterr().out
    assert main(["attach-export-role", "--cluster", "no-such-cluster", "--role-arn", _role("export")]) == 1
    err = capsys.readouterr().err
    assert "rds:DescribeDBClusters" in err and "no-such-cluster" in err
