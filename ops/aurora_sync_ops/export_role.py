"""Associate the stack's s3Export role with the Aurora cluster, safely on every deploy.

``aws rds add-role-to-db-cluster --feature-name s3Export`` is not idempotent: RDS answers
``DBClusterRoleAlreadyExists`` when the cluster already has *any* role for that feature, including
the same one from an earlier run of the deploy steps. A cluster holds one role per feature, so a
second role cannot be added beside another tool's: the operator must choose. This module reads the
cluster's associations first and then does the one right thing:

- our role already holds s3Export: nothing to do (waits until it is ``ACTIVE``);
- no role holds s3Export: associate ours, then wait until ``ACTIVE``;
- another role holds s3Export: refuse, naming that role and both ways out. Replacing it silently
  would break whatever exports through it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import WorkflowError, aws_call

FEATURE = "s3Export"
STACK_OUTPUT = "AuroraS3ExportRoleArn"
GRANT = (
    "use credentials allowed to call rds:DescribeDBClusters and rds:AddRoleToDBCluster on the cluster, "
    "and iam:PassRole on the export role"
)


@dataclass(frozen=True)
class Attachment:
    """What ``attach`` found and did: ``added`` is False when the role was already associated."""

    cluster: str
    role_arn: str
    added: bool
    status: str


def _associations(rds: Any, cluster: str) -> list[dict[str, Any]]:
    clusters = aws_call(
        lambda: rds.describe_db_clusters(DBClusterIdentifier=cluster)["DBClusters"],
        call="rds:DescribeDBClusters",
        resource=f"cluster {cluster}",
        grant=GRANT,
    )
    roles: list[dict[str, Any]] = clusters[0].get("AssociatedRoles", [])
    return roles


def _ours(roles: list[dict[str, Any]], role_arn: str) -> dict[str, Any] | None:
    return next((r for r in roles if r.get("RoleArn") == role_arn), None)


def attach(
    rds: Any,
    cluster: str,
    role_arn: str,
    *,
    wait_s: float = 300.0,
    poll_s: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Attachment:
    """Make ``role_arn`` the cluster's s3Export role; safe to run again. ``wait_s`` 0: do not wait."""
    roles = _associations(rds, cluster)
    holder = next((r for r in roles if r.get("FeatureName") == FEATURE), None)
    ours = _ours(roles, role_arn)
    if holder is not None and holder.get("RoleArn") != role_arn:
        raise WorkflowError(
            f"cluster {cluster!r} already uses {holder.get('RoleArn')} for {FEATURE} (a cluster holds one "
            f"role per feature), so {role_arn} cannot be added beside it.",
            fix=f"either let that role write to this stack's bucket and keep it, or detach it "
            f"(`aws rds remove-role-from-db-cluster --db-cluster-identifier {cluster} --feature-name "
            f"{FEATURE} --role-arn {holder.get('RoleArn')}`: whatever exports through it stops) and run "
            "this command again",
        )
    if ours is not None and ours.get("FeatureName") not in (None, "", FEATURE):
        raise WorkflowError(
            f"{role_arn} is associated with cluster {cluster!r} for feature {ours.get('FeatureName')!r}, "
            f"not {FEATURE}.",
            fix=f"detach it (`aws rds remove-role-from-db-cluster --db-cluster-identifier {cluster} "
            f"--role-arn {role_arn}`) and run this command again",
        )
    added = ours is None
    if added:
        aws_call(
            lambda: rds.add_role_to_db_cluster(
                DBClusterIdentifier=cluster, RoleArn=role_arn, FeatureName=FEATURE
            ),
            call="rds:AddRoleToDBCluster",
            resource=f"cluster {cluster}",
            grant=GRANT,
        )
    status = str((ours or {}).get("Status") or "PENDING")
    deadline = time.monotonic() + wait_s
    while wait_s > 0 and status != "ACTIVE":
        current = _ours(_associations(rds, cluster), role_arn)
        status = str((current or {}).get("Status") or "PENDING")
        if status == "INVALID":
            raise WorkflowError(
                f"cluster {cluster!r} reports its {FEATURE} role {role_arn} as INVALID.",
                fix="check that the role's trust policy admits rds.amazonaws.com for this account and "
                "cluster (the stack's AuroraClusterArn parameter), then detach it and run this command again",
            )
        if status == "ACTIVE" or time.monotonic() >= deadline:
            break
        sleep(poll_s)
    return Attachment(cluster=cluster, role_arn=role_arn, added=added, status=status)
