"""``aurora-sync attach-export-role``: deploy step 2b, associating the stack's s3Export role with
the Aurora cluster so that it can be run again on every deploy (``export_role`` does the work)."""

from __future__ import annotations

import argparse
import json
from typing import Any

import boto3

from ..errors import aws_call
from ..export_role import FEATURE, STACK_OUTPUT, attach
from ..workflow.target import stack_output


def cmd_attach_export_role(args: argparse.Namespace) -> int:
    role_arn = args.role_arn or stack_output(args.stack_name, STACK_OUTPUT, instead="--role-arn")
    rds = aws_call(
        lambda: boto3.client("rds"), call="rds:DescribeDBClusters", resource=f"cluster {args.cluster}"
    )
    result = attach(rds, args.cluster, role_arn, wait_s=0 if args.no_wait else args.timeout)
    if args.json:
        print(json.dumps(result.__dict__))
        return 0
    done = "associated" if result.added else "was already associated"
    print(f"{role_arn} {done} with cluster {args.cluster} for {FEATURE}: {result.status}")
    if result.status != "ACTIVE":
        print(
            f"not ACTIVE yet: run `aurora-sync attach-export-role --cluster {args.cluster} ...` again, "
            "or wait and check `aws rds describe-db-clusters` (AssociatedRoles)"
        )
    return 0


def register(commands: Any) -> None:
    attach_role = commands.add_parser(
        "attach-export-role",
        help="associate the stack's s3Export role with the Aurora cluster (safe to run again)",
        description="Associate the s3Export role (stack output AuroraS3ExportRoleArn) with the Aurora "
        "cluster, or confirm it is associated; refuses, naming it, when another role holds s3Export. "
        "Uses boto3's credential chain and region (AWS_PROFILE, AWS_REGION).",
    )
    attach_role.add_argument("--cluster", required=True, help="the DB cluster identifier")
    which = attach_role.add_mutually_exclusive_group(required=True)
    which.add_argument("--stack-name", help="read the role from this stack's AuroraS3ExportRoleArn output")
    which.add_argument("--role-arn", help="the role to associate")
    attach_role.add_argument(
        "--timeout", type=float, default=300.0, help="seconds to wait for ACTIVE (default 300)"
    )
    attach_role.add_argument("--no-wait", action="store_true", help="do not wait for ACTIVE")
    attach_role.add_argument("--json", action="store_true", help="print one JSON object")
    attach_role.set_defaults(func=cmd_attach_export_role)
