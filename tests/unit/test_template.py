"""template.yaml: least privilege, data lake hardening, wiring to the handlers and the ASL.

The structural tests read the template with a YAML loader that keeps CloudFormation's short-form
tags as data, so they need no AWS tools. tests/infra/test_validate_infra.py runs the validators
themselves (``scripts/validate-infra.sh``).
"""

from __future__ import annotations

import importlib
import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from samconfig import environments, overrides

from aurora_sync.errors import ConfigError
from aurora_sync.exporting.rounds import MAP_RESULTS_PREFIX, RUNS_PREFIX
from aurora_sync.settings import ENVIRONMENT, RuntimeSettings
from aurora_sync.verifying.verify import LOADS_PER_CALL

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"

# Every statement whose Resource is "*", keyed by (logical id, Sid), with why AWS requires it.
STAR_RESOURCES: dict[tuple[str, str], str] = {
    ("StackKey", "AccountAdministrationAndUseThroughIam"): "in a key policy '*' means this key",
    ("StackKey", "CloudWatchAlarmsPublishToEncryptedTopic"): "in a key policy '*' means this key",
    ("FunctionRuntimePolicy", "VpcNetworkInterfaces"): "ENIs are created before their ids exist; "
    "EC2 Describe* has no resource-level permissions",
    ("FunctionRuntimePolicy", "XRayTraces"): "X-Ray has no resource-level permissions",
    ("SyncStateMachineRole", "VendedLogDelivery"): "CloudWatch Logs delivery API has no resource-level "
    "permissions",
    ("SyncStateMachineRole", "XRayTraces"): "X-Ray has no resource-level permissions",
}


class CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns CloudFormation short-form tags into their long form."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if name == "Fn::GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {name: value}


CfnLoader.add_multi_constructor("!", _tagged)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    with path.open() as fh:
        loaded: dict[str, Any] = yaml.load(fh, Loader=CfnLoader)  # noqa: S506 - SafeLoader subclass
    return loaded


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = template["Resources"]
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def policy_documents(resources: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(logical id, where, document) for every policy document the template writes."""
    for logical_id, resource in resources.items():
        props = resource.get("Properties", {})
        kind = resource["Type"]
        if kind == "AWS::IAM::Role":
            yield logical_id, "AssumeRolePolicyDocument", props["AssumeRolePolicyDocument"]
            for policy in props.get("Policies", []):
                yield logical_id, policy["PolicyName"], policy["PolicyDocument"]
        elif kind in {"AWS::IAM::ManagedPolicy", "AWS::IAM::Policy", "AWS::S3::BucketPolicy"}:
            yield logical_id, kind, props["PolicyDocument"]
        elif kind == "AWS::KMS::Key":
            yield logical_id, "KeyPolicy", props["KeyPolicy"]
        elif kind in {"AWS::Serverless::Function", "AWS::Serverless::StateMachine"}:
            for policy in as_list(props.get("Policies", [])):
                if isinstance(policy, dict) and "Statement" in policy:
                    yield logical_id, "Policies", policy


def statements(resources: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for logical_id, where, document in policy_documents(resources):
        for statement in as_list(document["Statement"]):
            yield logical_id, where, statement


def role_statements(resources: dict[str, Any], role: str) -> list[dict[str, Any]]:
    return [
        s for lid, where, s in statements(resources) if lid == role and where != "AssumeRolePolicyDocument"
    ]


def actions_of(statement: dict[str, Any]) -> list[str]:
    return [str(a) for a in as_list(statement.get("Action", []))]


def test_given_every_policy_then_no_allow_grants_a_wildcard_action(resources: dict[str, Any]) -> None:
    offenders = [
        (lid, where, action)
        for lid, where, s in statements(resources)
        if s["Effect"] == "Allow"
        for action in actions_of(s)
        if "*" in action
    ]
    assert offenders == []
    # NotAction / NotResource in an Allow grant everything else: never.
    assert [lid for lid, _, s in statements(resources) if {"NotAction", "NotResource"} & set(s)] == []
    # The only wildcard action is the TLS Deny, which narrows access.
    wildcard_denies = [
        (lid, s.get("Sid")) for lid, _, s in statements(resources) if any("*" in a for a in actions_of(s))
    ]
    assert wildcard_denies == [("DataLakeBucketPolicy", "DenyInsecureTransport")]


def test_given_every_policy_then_star_resources_are_exactly_the_allow_list(resources: dict[str, Any]) -> None:
    found = {
        (lid, s.get("Sid", "<no Sid>"))
        for lid, where, s in statements(resources)
        if where != "AssumeRolePolicyDocument" and "*" in as_list(s.get("Resource", []))
    }
    assert found == set(STAR_RESOURCES)
    # Principal "*" only where it restricts (the Deny), never in an Allow.
    open_allows = [
        lid for lid, _, s in statements(resources) if s["Effect"] == "Allow" and s.get("Principal") == "*"
    ]
    assert open_allows == []


def test_given_the_template_text_then_every_star_resource_carries_a_why_comment() -> None:
    lines = TEMPLATE.read_text().splitlines()
    uncommented = []
    for number, line in enumerate(lines):
        if not re.match(r'^\s*Resource: "\*"', line):
            continue
        if "#" in line:
            continue
        # Otherwise the comment sits directly above the statement ("- Sid: ..." / "- Effect: ...").
        item_indent = len(line) - len(line.lstrip()) - 2
        start = number
        while start > 0 and not lines[start].startswith(" " * item_indent + "- "):
            start -= 1
        if not lines[start - 1].lstrip().startswith("#"):
            uncommented.append(number + 1)
    assert uncommented == []


def test_given_the_data_lake_bucket_then_it_is_kms_encrypted_private_tls_only_and_expiring(
    resources: dict[str, Any],
) -> None:
    bucket = resources["DataLakeBucket"]["Properties"]
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"] == {
        "Fn::If": ["CreateDataLakeKey", {"Fn::GetAtt": ["StackKey", "Arn"]}, {"Ref": "DataLakeKmsKeyArn"}]
    }
    assert rule["BucketKeyEnabled"] is True
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert bucket["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    expiring = [r for r in bucket["LifecycleConfiguration"]["Rules"] if "ExpirationInDays" in r]
    assert [(r["Status"], r["ExpirationInDays"]) for r in expiring] == [
        ("Enabled", {"Ref": "DataLakeRetentionDays"})
    ]
    # Snowpipe's notification only when its queue is given.
    notification = bucket["NotificationConfiguration"]["Fn::If"]
    assert notification[0] == "HasSnowpipeQueue"
    assert notification[1] == {
        "QueueConfigurations": [{"Event": "s3:ObjectCreated:*", "Queue": {"Ref": "SnowpipeSqsArn"}}]
    }
    assert notification[2] == {"Ref": "AWS::NoValue"}

    policy = resources["DataLakeBucketPolicy"]["Properties"]
    assert policy["Bucket"] == {"Ref": "DataLakeBucket"}
    (deny,) = policy["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Principal"] == "*"
    assert deny["Action"] == "s3:*"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny["Resource"] == [
        {"Fn::GetAtt": ["DataLakeBucket", "Arn"]},
        {"Fn::Sub": "${DataLakeBucket.Arn}/*"},
    ]


def test_given_the_data_lake_key_then_it_rotates_and_ssec_s3_is_never_an_option(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    assert resources["StackKey"]["Properties"]["EnableKeyRotation"] is True
    assert template["Conditions"]["CreateDataLakeKey"] == {"Fn::Equals": [{"Ref": "DataLakeKmsKeyArn"}, ""]}
    # A customer key ARN or empty: an alias or "AES256" would not pass.
    pattern = template["Parameters"]["DataLakeKmsKeyArn"]["AllowedPattern"]
    assert re.fullmatch(pattern, "")
    assert re.fullmatch(
        pattern, "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    )
    assert not re.fullmatch(pattern, "alias/aws/s3")
    assert not re.fullmatch(pattern, "AES256")


def test_given_the_aurora_export_role_then_only_rds_of_this_account_assumes_it_to_write_exports(
    resources: dict[str, Any],
) -> None:
    role = resources["AuroraS3ExportRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "rds.amazonaws.com"}
    assert trust["Action"] == "sts:AssumeRole"
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert trust["Condition"]["ArnLike"] == {
        "Fn::If": [
            "HasAuroraClusterArn",
            {"aws:SourceArn": {"Ref": "AuroraClusterArn"}},
            {"Ref": "AWS::NoValue"},
        ]
    }
    grants = {
        (tuple(actions_of(s)), json.dumps(s["Resource"]))
        for s in role_statements(resources, "AuroraS3ExportRole")
    }
    key = json.dumps(
        {"Fn::If": ["CreateDataLakeKey", {"Fn::GetAtt": ["StackKey", "Arn"]}, {"Ref": "DataLakeKmsKeyArn"}]}
    )
    assert grants == {
        (("s3:PutObject", "s3:AbortMultipartUpload"), json.dumps({"Fn::Sub": "${DataLakeBucket.Arn}/*"})),
        (("kms:GenerateDataKey", "kms:Encrypt", "kms:Decrypt"), key),
    }


def test_given_the_snowflake_role_then_only_snowflakes_user_with_the_external_id_reads_the_lake(
    resources: dict[str, Any],
) -> None:
    resource = resources["SnowflakeStorageRole"]
    assert resource["Condition"] == "HasSnowflakeIamUser"
    role = resource["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"AWS": {"Ref": "SnowflakeIamUserArn"}}
    # The stack's own id, never a parameter (tests/unit/test_snowflake_external_id.py resolves it).
    stack_external_id = {
        "Fn::Join": ["-", ["aurora-sync", {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]}]]
    }
    assert trust["Condition"] == {"StringEquals": {"sts:ExternalId": stack_external_id}}
    grants = {tuple(actions_of(s)) for s in role_statements(resources, "SnowflakeStorageRole")}
    assert grants == {
        ("s3:GetObject", "s3:GetObjectVersion"),
        ("s3:ListBucket", "s3:GetBucketLocation"),
        ("kms:Decrypt",),
    }
    # The role name is fixed so the output is known before the role exists.
    assert role["RoleName"] == {"Fn::Sub": "${AWS::StackName}-snowflake-storage"}


def test_given_runtime_settings_then_globals_set_every_variable_lambda_does_not_reserve(
    template: dict[str, Any],
) -> None:
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    required = {
        var for var, field in ENVIRONMENT.items() if RuntimeSettings.model_fields[field].is_required()
    }
    assert required == {"VAULT_ADDR", "VAULT_ROLE"}
    assert required <= set(env)
    # AWS_REGION is set (and reserved) by Lambda; every other variable comes from the template,
    # beside boto3's AWS_ENDPOINT_URL, declared empty (default endpoints) so that sam local
    # invoke's --env-vars may aim it at the local stack (tests/unit/test_sam_local_invoke.py).
    assert env["AWS_ENDPOINT_URL"] == ""
    assert set(ENVIRONMENT) - {"AWS_REGION"} == {
        v for v in env if not v.startswith("POWERTOOLS_") and v != "AWS_ENDPOINT_URL"
    }
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "AuroraSnowflakeSync"
    assert {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_LOG_LEVEL"} <= set(env)


def test_given_parameter_defaults_then_the_rendered_environment_passes_runtime_settings(
    template: dict[str, Any],
) -> None:
    params = template["Parameters"]
    values = {name: str(p["Default"]) for name, p in params.items() if "Default" in p}
    values |= {"VaultAddr": "https://vault.internal.example.com:8200", "VaultRole": "aurora-sync"}
    assert re.fullmatch(params["VaultAddr"]["AllowedPattern"], values["VaultAddr"])

    def render(value: Any) -> str:
        if isinstance(value, str):
            return value
        if "Ref" in value:
            return values.get(value["Ref"], f"<{value['Ref']}>")
        if "Fn::Sub" in value:
            return re.sub(
                r"\$\{([^}]+)\}", lambda m: values.get(m.group(1), f"<{m.group(1)}>"), value["Fn::Sub"]
            )
        return "arn:aws:kms:us-east-1:123456789012:key/example"  # Fn::If over the two key ARNs

    env = {var: render(v) for var, v in template["Globals"]["Function"]["Environment"]["Variables"].items()}
    assert env["CONFIG_SSM_PATH"] == "/aurora-sync/tables/"
    settings = RuntimeSettings.from_environ(env)
    assert settings.config_ssm_path == "/aurora-sync/tables/"
    assert settings.vault_iam_server_id is None  # empty parameter = unset
    assert (settings.load_timeout_seconds, settings.merge_timeout_seconds) == (900, 900)
    # The knob's three defaults agree: the template's, the settings' and the verifier's own cap.
    assert settings.verify_loads_per_call == RuntimeSettings.model_fields["verify_loads_per_call"].default
    assert settings.verify_loads_per_call == LOADS_PER_CALL
    bounds = (params["VerifyLoadsPerCall"]["MinValue"], params["VerifyLoadsPerCall"]["MaxValue"])
    for value in bounds:
        assert RuntimeSettings.from_environ({**env, "VERIFY_LOADS_PER_CALL": str(value)})
    for value in (bounds[0] - 1, bounds[1] + 1):
        with pytest.raises(ConfigError, match="VERIFY_LOADS_PER_CALL"):
            RuntimeSettings.from_environ({**env, "VERIFY_LOADS_PER_CALL": str(value)})


@pytest.mark.parametrize(
    ("function", "handler"),
    [
        ("PlannerFunction", "planner.app.lambda_handler"),
        ("ExporterFunction", "exporter.app.lambda_handler"),
        ("VerifierFunction", "verifier.app.lambda_handler"),
    ],
)
def test_given_each_function_then_its_handler_is_a_callable_in_the_code_uri(
    template: dict[str, Any], resources: dict[str, Any], function: str, handler: str
) -> None:
    props = resources[function]["Properties"]
    assert props["Handler"] == handler
    code_uri = ROOT / props.get("CodeUri", template["Globals"]["Function"]["CodeUri"])
    module_name, attribute = handler.rsplit(".", 1)
    assert (code_uri / (module_name.replace(".", "/") + ".py")).is_file()
    module = importlib.import_module(module_name)
    assert Path(module.__file__ or "").resolve().is_relative_to(code_uri.resolve())
    assert callable(getattr(module, attribute))


def test_given_the_functions_then_memory_and_timeouts_fit_what_each_does(resources: dict[str, Any]) -> None:
    sizes = {
        name: (resources[name]["Properties"]["MemorySize"], resources[name]["Properties"]["Timeout"])
        for name in ("PlannerFunction", "ExporterFunction", "VerifierFunction")
    }
    # The exporter only waits on Aurora: least memory, Lambda's longest timeout.
    assert sizes["ExporterFunction"] == (256, 900)
    assert sizes["ExporterFunction"][0] < min(sizes["PlannerFunction"][0], sizes["VerifierFunction"][0])
    assert max(sizes["PlannerFunction"][1], sizes["VerifierFunction"][1]) <= 300


def test_given_the_state_machine_then_its_role_invokes_exactly_the_four_functions(
    resources: dict[str, Any],
) -> None:
    machine = resources["SyncStateMachine"]["Properties"]
    assert machine["Role"] == {"Fn::GetAtt": ["SyncStateMachineRole", "Arn"]}
    lambda_statements = [
        s
        for s in role_statements(resources, "SyncStateMachineRole")
        if any(a.startswith("lambda:") for a in actions_of(s))
    ]
    (invoke,) = lambda_statements
    assert actions_of(invoke) == ["lambda:InvokeFunction"]
    assert invoke["Resource"] == [
        {"Fn::GetAtt": ["PlannerFunction", "Arn"]},
        {"Fn::GetAtt": ["ExporterFunction", "Arn"]},
        {"Fn::GetAtt": ["RoundsFunction", "Arn"]},
        {"Fn::GetAtt": ["VerifierFunction", "Arn"]},
    ]
    (trust,) = resources["SyncStateMachineRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "states.amazonaws.com"}


def test_given_the_export_distributed_map_then_the_state_machine_reaches_only_the_run_files_and_itself(
    resources: dict[str, Any],
) -> None:
    name = resources["SyncStateMachine"]["Properties"]["Name"]["Fn::Sub"]
    statements = role_statements(resources, "SyncStateMachineRole")
    (objects,) = [s for s in statements if any(a.startswith("s3:") for a in actions_of(s))]
    # ItemReader reads the manifests, ResultWriter writes the results (multipart for large ones).
    assert set(actions_of(objects)) == {
        "s3:GetObject",
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
    }
    assert objects["Resource"] == {"Fn::Sub": f"${{DataLakeBucket.Arn}}/{RUNS_PREFIX}/*"}
    (start,) = [s for s in statements if "states:StartExecution" in actions_of(s)]
    arn = "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}"
    assert start["Resource"] == {"Fn::Sub": f"{arn}:stateMachine:{name}"}
    (children,) = [s for s in statements if "states:DescribeExecution" in actions_of(s)]
    assert set(actions_of(children)) == {"states:DescribeExecution", "states:StopExecution"}
    assert children["Resource"] == [
        {"Fn::Sub": f"{arn}:execution:{name}/*"},
        {"Fn::Sub": f"{arn}:express:{name}/*"},
    ]
    # The ASL writes the results where the round step reads them, under the prefix the role may write.
    asl = (ROOT / "statemachine" / "sync.asl.json").read_text()
    assert f'"Prefix": "{MAP_RESULTS_PREFIX}"' in asl and MAP_RESULTS_PREFIX.startswith(f"{RUNS_PREFIX}/")


def test_given_the_state_machine_then_it_is_wired_to_the_asl_schedule_logs_and_tracing(
    resources: dict[str, Any],
) -> None:
    machine = resources["SyncStateMachine"]["Properties"]
    assert machine["Type"] == "STANDARD"
    assert machine["DefinitionUri"] == "statemachine/sync.asl.json"
    assert machine["DefinitionSubstitutions"] == {
        "PlannerFunctionArn": {"Fn::GetAtt": ["PlannerFunction", "Arn"]},
        "ExporterFunctionArn": {"Fn::GetAtt": ["ExporterFunction", "Arn"]},
        "RoundsFunctionArn": {"Fn::GetAtt": ["RoundsFunction", "Arn"]},
        "VerifierFunctionArn": {"Fn::GetAtt": ["VerifierFunction", "Arn"]},
        "DataLakeBucketName": {"Ref": "DataLakeBucket"},
        "MaxConcurrency": {"Ref": "MaxConcurrency"},
        "ExportChildSeconds": {"Ref": "ExportChildSeconds"},
        "VerifyWaitSeconds": {"Ref": "VerifyWaitSeconds"},
        "VerifyMaxAttempts": {"Ref": "VerifyMaxAttempts"},
        "RunTimeoutSeconds": {"Ref": "RunTimeoutSeconds"},
        "Partition": {"Ref": "AWS::Partition"},
    }
    assert machine["Tracing"] == {"Enabled": True}
    (destination,) = machine["Logging"]["Destinations"]
    assert destination["CloudWatchLogsLogGroup"]["LogGroupArn"] == {
        "Fn::GetAtt": ["SyncStateMachineLogGroup", "Arn"]
    }
    assert resources["SyncStateMachineLogGroup"]["Properties"]["RetentionInDays"] == {
        "Ref": "LogRetentionDays"
    }
    schedule = machine["Events"]["Schedule"]
    assert schedule["Type"] == "Schedule"
    assert schedule["Properties"]["Schedule"] == {"Ref": "ScheduleExpression"}
    assert schedule["Properties"]["State"] == {"Fn::If": ["ScheduleOn", "ENABLED", "DISABLED"]}
    assert schedule["Properties"]["Input"] == "{}"


def test_given_the_planner_then_single_flight_is_granted_on_its_own_state_machine_name(
    resources: dict[str, Any],
) -> None:
    name = resources["SyncStateMachine"]["Properties"]["Name"]["Fn::Sub"]
    (list_executions,) = [
        s for s in role_statements(resources, "PlannerRole") if "states:ListExecutions" in actions_of(s)
    ]
    assert list_executions["Resource"] == {
        "Fn::Sub": f"arn:${{AWS::Partition}}:states:${{AWS::Region}}:${{AWS::AccountId}}:stateMachine:{name}"
    }


BUCKET_KEY = {
    "Fn::If": ["CreateDataLakeKey", {"Fn::GetAtt": ["StackKey", "Arn"]}, {"Ref": "DataLakeKmsKeyArn"}]
}


def test_given_the_function_roles_then_each_holds_only_what_its_handler_calls(
    resources: dict[str, Any],
) -> None:
    def actions(role: str) -> set[str]:
        return {a for s in role_statements(resources, role) for a in actions_of(s)}

    logs = {"logs:CreateLogStream", "logs:PutLogEvents"}
    ssm = {"ssm:GetParametersByPath", "kms:Decrypt"}
    run_files = {"s3:PutObject", "kms:GenerateDataKey"}
    assert actions("PlannerRole") == logs | ssm | {"states:ListExecutions"} | run_files
    (put,) = [s for s in role_statements(resources, "PlannerRole") if actions_of(s) == ["s3:PutObject"]]
    assert put["Resource"] == {"Fn::Sub": f"${{DataLakeBucket.Arn}}/{RUNS_PREFIX}/*"}
    # The exporter writes the chunk files of a table with more chunks (exporting.rounds.record_chunk).
    assert actions("ExporterRole") == logs | run_files
    (chunk_files,) = [
        s for s in role_statements(resources, "ExporterRole") if actions_of(s) == ["s3:PutObject"]
    ]
    assert chunk_files["Resource"] == {"Fn::Sub": f"${{DataLakeBucket.Arn}}/{RUNS_PREFIX}/*"}
    (data_key,) = [
        s for s in role_statements(resources, "ExporterRole") if actions_of(s) == ["kms:GenerateDataKey"]
    ]
    assert data_key["Resource"] == BUCKET_KEY
    assert actions("RoundsRole") == logs | {
        "s3:GetObject",
        "s3:PutObject",
        "s3:ListBucket",
        "kms:Decrypt",
        "kms:GenerateDataKey",
    }
    (objects,) = [s for s in role_statements(resources, "RoundsRole") if "s3:GetObject" in actions_of(s)]
    assert objects["Resource"] == {"Fn::Sub": f"${{DataLakeBucket.Arn}}/{RUNS_PREFIX}/*"}
    # So that a missing chunk file is S3's 404 NoSuchKey, not a 403 (settle_keys fails its table):
    # listing the run files' prefix only, as the verifier's.
    (listing,) = [s for s in role_statements(resources, "RoundsRole") if actions_of(s) == ["s3:ListBucket"]]
    assert listing["Resource"] == {"Fn::GetAtt": ["DataLakeBucket", "Arn"]}
    assert listing["Condition"] == {"StringLike": {"s3:prefix": f"{RUNS_PREFIX}/*"}}
    # The verifier reads the settled exports and reads and writes its report (verify.json), and
    # may list the run files' prefix only (a missing report is NoSuchKey, not AccessDenied).
    assert actions("VerifierRole") == logs | ssm | run_files | {"s3:GetObject", "s3:ListBucket"}
    (read,) = [s for s in role_statements(resources, "VerifierRole") if "s3:GetObject" in actions_of(s)]
    assert sorted(actions_of(read)) == ["s3:GetObject", "s3:PutObject"]
    assert read["Resource"] == {"Fn::Sub": f"${{DataLakeBucket.Arn}}/{RUNS_PREFIX}/*"}
    (listing,) = [s for s in role_statements(resources, "VerifierRole") if actions_of(s) == ["s3:ListBucket"]]
    assert listing["Resource"] == {"Fn::GetAtt": ["DataLakeBucket", "Arn"]}
    assert listing["Condition"] == {"StringLike": {"s3:prefix": f"{RUNS_PREFIX}/*"}}
    for role in ("PlannerRole", "VerifierRole"):
        # SecureString configs; the verifier's other kms:Decrypt is on the data lake key only.
        (decrypt,) = [
            s
            for s in role_statements(resources, role)
            if actions_of(s) == ["kms:Decrypt"] and s["Resource"] != BUCKET_KEY
        ]
        assert decrypt["Condition"]["StringEquals"] == {
            "kms:ViaService": {"Fn::Sub": "ssm.${AWS::Region}.amazonaws.com"}
        }
    for role in ("PlannerRole", "ExporterRole", "RoundsRole", "VerifierRole"):
        props = resources[role]["Properties"]
        assert props["ManagedPolicyArns"] == [{"Ref": "FunctionRuntimePolicy"}]
        (trust,) = props["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Principal"] == {"Service": "lambda.amazonaws.com"}


def test_given_the_alarms_then_failures_timeouts_and_staleness_notify_the_encrypted_topic(
    resources: dict[str, Any],
) -> None:
    state_metrics = {
        resources[name]["Properties"]["MetricName"]: resources[name]["Properties"]
        for name in ("ExecutionsFailedAlarm", "ExecutionsTimedOutAlarm")
    }
    assert set(state_metrics) == {"ExecutionsFailed", "ExecutionsTimedOut"}
    for alarm in state_metrics.values():
        assert alarm["Namespace"] == "AWS/States"
        assert alarm["Dimensions"] == [{"Name": "StateMachineArn", "Value": {"Ref": "SyncStateMachine"}}]
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    freshness = resources["FreshnessAlarm"]["Properties"]
    assert (freshness["Namespace"], freshness["MetricName"], freshness["Statistic"]) == (
        "AuroraSnowflakeSync",
        "StalestTableAgeSeconds",
        "Maximum",
    )
    assert freshness["Dimensions"] == [{"Name": "service", "Value": {"Ref": "AWS::StackName"}}]
    assert "stalest-tables" in freshness["AlarmDescription"]["Fn::Sub"]
    query = resources["StalestTablesQuery"]["Properties"]
    assert query["Name"] == {"Fn::Sub": "${AWS::StackName}/stalest-tables"}
    assert query["LogGroupNames"] == [{"Ref": "VerifierLogGroup"}]
    assert 'filter message = "table synced"' in query["QueryString"]
    assert freshness["Threshold"] == {"Ref": "FreshnessThresholdSeconds"}
    assert freshness["ComparisonOperator"] == "GreaterThanThreshold"
    assert resources["AlarmTopic"]["Properties"]["KmsMasterKeyId"] == {"Ref": "StackKey"}
    assert resources["AlarmEmailSubscription"]["Condition"] == "HasAlarmEmail"


def test_given_the_template_then_the_brief_outputs_exist(template: dict[str, Any]) -> None:
    assert {
        "StateMachineArn",
        "DataLakeBucketName",
        "DataLakeKmsKeyArn",
        "AuroraS3ExportRoleArn",
        "SnowflakeStorageRoleArn",
    } <= set(template["Outputs"])


def test_given_pyproject_then_lambda_requirements_pin_the_same_runtime_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = (ROOT / "functions" / "requirements.txt").read_text().splitlines()
    deployed = [Requirement(line) for line in lines if line.strip() and not line.lstrip().startswith("#")]
    declared = [Requirement(line) for line in project["dependencies"]]
    assert {r.name: str(r.specifier) for r in deployed} == {r.name: str(r.specifier) for r in declared}
    # Tracer() imports aws_xray_sdk when the handlers' modules load; Lambda's Python runtime has no
    # X-Ray SDK, so without the extra every function fails at cold start.
    (powertools,) = [r for r in deployed if r.name == "aws-lambda-powertools"]
    assert "tracer" in powertools.extras


def test_given_the_exporters_requirements_then_they_are_the_others_but_the_snowflake_connector() -> None:
    """functions/Makefile builds the exporter from its own file: same pins, no connector."""

    def pins(name: str) -> dict[str, str]:
        lines = (ROOT / "functions" / name).read_text().splitlines()
        found = [Requirement(line) for line in lines if line.strip() and not line.lstrip().startswith("#")]
        return {f"{r.name}{sorted(r.extras)}": str(r.specifier) for r in found}

    everything = pins("requirements.txt")
    connector = {k: v for k, v in everything.items() if k.startswith("snowflake-connector-python")}
    assert len(connector) == 1
    assert pins("requirements-exporter.txt") == {k: v for k, v in everything.items() if k not in connector}


@pytest.mark.parametrize("function", ["PlannerFunction", "ExporterFunction", "VerifierFunction"])
def test_given_each_function_then_sam_builds_it_with_its_makefile_target(
    resources: dict[str, Any], function: str
) -> None:
    assert resources[function]["Metadata"] == {"BuildMethod": "makefile"}
    assert re.search(rf"^build-{function}:$", (ROOT / "functions" / "Makefile").read_text(), re.MULTILINE)


def test_given_package_json_then_the_validators_are_pinned_exactly_and_locked() -> None:
    package = json.loads((ROOT / "package.json").read_text())
    assert package["devDependencies"] == {"@wmfs/statelint": "1.30.0", "asl-validator": "4.0.0"}
    lock = json.loads((ROOT / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/asl-validator"]["version"] == "4.0.0"
    assert lock["packages"]["node_modules/@wmfs/statelint"]["version"] == "1.30.0"


def test_given_samconfig_then_each_environment_lints_and_deploys_with_iam_capabilities() -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    assert config["version"] == 0.1
    assert set(environments()) == {"default", "dev", "prod"}
    for env in environments():
        assert config[env]["validate"]["parameters"]["lint"] is True
        deploy = config[env]["deploy"]["parameters"]
        assert set(deploy["capabilities"].split()) == {"CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"}
        assert config[env]["global"]["parameters"]["stack_name"]
        assert config[env]["build"]["parameters"] == {"cached": True, "parallel": True}
    stacks = {config[env]["global"]["parameters"]["stack_name"] for env in ("dev", "prod")}
    assert len(stacks) == 2


def test_given_samconfig_then_no_environment_pins_a_region() -> None:
    """A pinned region deploys a stack for eu-west-1 into us-east-1 (or fails on its subnets):
    sam takes the region from the operator's profile or AWS_REGION instead."""
    text = (ROOT / "samconfig.toml").read_text()
    for env, config in environments().items():
        for command, section in config.items():
            assert "region" not in section["parameters"], f"[{env}.{command}.parameters] pins a region"
    # Placeholders of the second deploy do not suggest one region either.
    assert "us-east-1" not in text


def test_given_a_first_deploy_then_the_schedule_is_off_until_set_up_is_complete(
    template: dict[str, Any],
) -> None:
    """Scheduled runs before the Snowflake objects, grants and queue exist only fail (and page):
    the schedule is created disabled, and deploy.md's last step turns it on."""
    assert template["Parameters"]["ScheduleEnabled"]["Default"] == "false"
    for env, config in environments().items():
        assert overrides(config)["ScheduleEnabled"] == "false", env
    deploy_md = (ROOT / "docs" / "deploy.md").read_text()
    last_step = deploy_md.split("## 9.", 1)[1]
    assert '"ScheduleEnabled=true"' in last_step


def test_given_the_secret_cache_setting_then_the_template_passes_it_to_the_variable_vault_reads(
    template: dict[str, Any],
) -> None:
    """deploy.md tells operators to change the secret cache through a template parameter; a
    variable the template does not declare could only be set by hand and lost on the next deploy."""
    from aurora_sync.vault import DEFAULT_MAX_AGE_S, MAX_AGE_ENV

    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env[MAX_AGE_ENV] == {"Ref": "SecretCacheSeconds"}
    assert template["Parameters"]["SecretCacheSeconds"]["Default"] == int(DEFAULT_MAX_AGE_S)
