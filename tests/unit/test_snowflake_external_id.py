"""The storage integration presents the external id the storage role's trust policy requires, for
every samconfig.toml environment, and no later ``sam deploy`` of the stack changes it.

The template is resolved the way CloudFormation would resolve it for each environment's stack
(``aurora_sync_ops.sam_template``), on the first deploy (no ``SnowflakeIamUserArn`` yet: the role
does not exist, the output already names the id) and on the second and every later one (the
role exists). The integration is what ``aurora-sync sql snowflake --setup`` renders with that
output.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from samconfig import environments, overrides

from aurora_sync.snowflake_objects import SqlConfigError
from aurora_sync.snowflake_tables import SnowflakeSetup
from aurora_sync_ops import sam_template
from aurora_sync_ops.snowflake_sql import render_setup

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"
SNOWFLAKE_USER = "arn:aws:iam::210987654321:user/abc1-b-self1234"
# CloudFormation's stack id: arn:…:stack/<name>/<uuid>, the uuid drawn when the stack is created.
STACK_UUID = "1c2fa620-982a-11e3-aff7-50e2416294e0"


def resolver(environment: dict[str, Any], *, snowflake_user: str) -> sam_template.Resolver:
    globals_ = environment["global"]["parameters"]
    # samconfig.toml pins no region (sam takes the profile's); the guide deploys in eu-west-1.
    stack, region = globals_["stack_name"], globals_.get("region", "eu-west-1")
    return sam_template.Resolver(
        template=sam_template.load(ROOT / "template.yaml"),
        parameters={**overrides(environment), "SnowflakeIamUserArn": snowflake_user},
        pseudo={
            "AWS::StackName": stack,
            "AWS::Region": region,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": f"arn:aws:cloudformation:{region}:{ACCOUNT}:stack/{stack}/{STACK_UUID}",
        },
    )


def trusted_external_id(resolve: sam_template.Resolver) -> str:
    role = resolve.template["Resources"]["SnowflakeStorageRole"]
    assert resolve.condition(role["Condition"]), "the storage role exists once SnowflakeIamUserArn is set"
    (statement,) = resolve.resolve(role["Properties"]["AssumeRolePolicyDocument"])["Statement"]
    assert statement["Principal"] == {"AWS": SNOWFLAKE_USER}
    return str(statement["Condition"]["StringEquals"]["sts:ExternalId"])


def output(resolve: sam_template.Resolver, name: str) -> str:
    outputs = resolve.template["Outputs"]
    assert name in outputs, f"the stack has no output {name}: the operator cannot know the value"
    return str(resolve.resolve(outputs[name]["Value"]))


def integration_external_id(statements: list[str]) -> str:
    (create,) = [s for s in statements if s.startswith("CREATE STORAGE INTEGRATION")]
    assert "OR REPLACE" not in create, "a replaced integration is a new object: its stages break"
    match = re.search(r"STORAGE_AWS_EXTERNAL_ID = '((?:[^'\\]|\\.)*)'", create)
    assert match, f"the integration sets no STORAGE_AWS_EXTERNAL_ID, so Snowflake makes one up:\n{create}"
    return match.group(1)


@pytest.mark.parametrize("name", sorted(environments()))
def test_the_integration_presents_the_id_the_role_trusts_on_every_deploy(name: str) -> None:
    environment = environments()[name]
    first = resolver(environment, snowflake_user="")
    second = resolver(environment, snowflake_user=SNOWFLAKE_USER)
    # Step 4 of docs/deploy.md: the integration, made with the outputs of the first deploy.
    setup = SnowflakeSetup(
        bucket="aurora-sync-data-lake",
        storage_role_arn=output(first, "SnowflakeStorageRoleArn"),
        storage_external_id=output(first, "SnowflakeExternalId"),
    )
    rendered = integration_external_id(render_setup(setup))
    # Step 5 and every deploy after it: the role's trust policy.
    assert rendered == trusted_external_id(second), f"samconfig.toml [{name}]"
    # A further deploy with the same parameters trusts the same id, and says so in its output.
    again = resolver(environment, snowflake_user=SNOWFLAKE_USER)
    assert trusted_external_id(again) == rendered == output(again, "SnowflakeExternalId")
    # The stack's own: no environment overrides it (a parameter there would reset it).
    assert "SnowflakeExternalId" not in overrides(environment)
    assert STACK_UUID in rendered


def test_every_environment_is_checked() -> None:
    assert set(environments()) == {"default", "dev", "prod"}


def test_two_stacks_get_different_ids() -> None:
    # dev and prod in one account must not trust each other's integration.
    env = environments()
    dev, prod = (resolver(env[name], snowflake_user=SNOWFLAKE_USER) for name in ("dev", "prod"))
    dev.pseudo = {**dev.pseudo, "AWS::StackId": dev.pseudo["AWS::StackId"].replace(STACK_UUID, "0" * 36)}
    assert output(dev, "SnowflakeExternalId") != output(prod, "SnowflakeExternalId")


def test_no_setup_without_the_external_id() -> None:
    with pytest.raises(SqlConfigError, match="SnowflakeExternalId"):
        render_setup(SnowflakeSetup(bucket="b-bucket", storage_role_arn=f"arn:aws:iam::{ACCOUNT}:role/r"))


@pytest.mark.parametrize("value", ["x", "id'; DROP DATABASE X; --", "a b", "é" * 3])
def test_an_external_id_iam_would_refuse_is_refused(value: str) -> None:
    with pytest.raises(SqlConfigError, match="external id"):
        SnowflakeSetup(
            bucket="b-bucket", storage_role_arn=f"arn:aws:iam::{ACCOUNT}:role/r", storage_external_id=value
        )
