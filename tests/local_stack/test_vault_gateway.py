"""Contract of the local Vault: Vault's aws IAM auth method in front of a real OpenBao server.

Logins are made the way the handlers make them (hvac's ``iam_login``, signed with the Lambda
role's STS credentials) or hand-built with hvac's own signer when a test needs a bad request.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import boto3
import hvac
import hvac.exceptions
import pytest
import requests
from botocore.credentials import ReadOnlyCredentials
from hvac import aws_utils

from aurora_sync.vault import signed_login
from aurora_sync_ops.local.stack import Stack

ACCOUNT = "123456789012"
STS_BODY = "Action=GetCallerIdentity&Version=2011-06-15"


# --- helpers -------------------------------------------------------------------------------------
def login_payload(
    creds: dict[str, str],
    *,
    role: str | None,
    header_value: str | None,
    sign_header: bool = True,
    signed_body: str = STS_BODY,
    sent_body: str | None = None,
    secret_key: str | None = None,
    signed_at: datetime | None = None,
    region: str = "us-east-1",
) -> dict[str, Any]:
    """The JSON body hvac's iam_login sends, with knobs to break one thing at a time.

    ``region`` is what hvac's ``iam_login(region=...)`` does with it: the scope changes, the
    host stays the global sts.amazonaws.com."""
    request = aws_utils.generate_sigv4_auth_request(header_value=header_value if sign_header else None)
    request.body = signed_body
    request.headers["Content-Length"] = str(len(signed_body))
    auth = aws_utils.SigV4Auth(
        creds["access_key_id"], secret_key or creds["secret_access_key"], creds.get("session_token"), region
    )
    if signed_at is None:
        auth.add_auth(request)
    else:
        frozen = signed_at.astimezone(UTC).replace(tzinfo=None)
        # hvac stamps datetime.utcnow(); sign at a fixed past time to produce a stale signature.
        with mock.patch.object(aws_utils, "datetime", mock.Mock(utcnow=lambda: frozen)):
            auth.add_auth(request)
    if header_value and not sign_header:
        request.headers["X-Vault-AWS-IAM-Server-ID"] = header_value
    headers = json.dumps({k: [request.headers[k]] for k in request.headers})
    payload = {
        "iam_http_request_method": "POST",
        "iam_request_url": base64.b64encode(request.url.encode()).decode(),
        "iam_request_headers": base64.b64encode(headers.encode()).decode(),
        "iam_request_body": base64.b64encode((sent_body or signed_body).encode()).decode(),
    }
    if role is not None:
        payload["role"] = role
    return payload


def post_login(vault: dict[str, Any], payload: dict[str, Any]) -> requests.Response:
    return requests.post(f"{vault['addr']}/v1/auth/aws/login", json=payload, timeout=10)


def assert_rejected(response: requests.Response, *fragments: str) -> str:
    assert response.status_code == 400, response.text
    errors = response.json()["errors"]
    assert len(errors) == 1
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return str(errors[0])


@pytest.fixture(scope="module")
def vault(stack: dict[str, Any]) -> dict[str, Any]:
    if "vault" not in stack:
        pytest.skip("vault part not in this stack")
    section: dict[str, Any] = stack["vault"]
    return section


@pytest.fixture(scope="module")
def lambda_creds(stack: dict[str, Any]) -> dict[str, str]:
    creds: dict[str, str] = stack["aws"]["lambda_credentials"]
    return creds


@pytest.fixture(scope="module")
def root(vault: dict[str, Any]) -> hvac.Client:
    return hvac.Client(url=vault["addr"], token=vault["root_token"], timeout=10)


@pytest.fixture(scope="module")
def admin_session(stack: dict[str, Any]) -> boto3.session.Session:
    aws = stack["aws"]
    return boto3.session.Session(
        aws_access_key_id=aws["access_key_id"],
        aws_secret_access_key=aws["secret_access_key"],
        region_name=aws["region"],
    )


@pytest.fixture(scope="module")
def other_role_creds(stack: dict[str, Any], admin_session: boto3.session.Session) -> dict[str, str]:
    """Credentials of an assumed role that is NOT the Lambda role."""
    endpoint = stack["aws"]["endpoint_url"]
    iam = admin_session.client("iam", endpoint_url=endpoint)
    name = "gateway-test-other"
    try:
        arn = iam.get_role(RoleName=name)["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    creds = admin_session.client("sts", endpoint_url=endpoint).assume_role(
        RoleArn=arn, RoleSessionName="intruder"
    )["Credentials"]
    return {
        "access_key_id": creds["AccessKeyId"],
        "secret_access_key": creds["SecretAccessKey"],
        "session_token": creds["SessionToken"],
    }


@pytest.fixture(scope="module")
def user_creds(stack: dict[str, Any], admin_session: boto3.session.Session) -> dict[str, str]:
    """Static access keys of an IAM user (a user ARN, never bound to the Lambda's Vault role)."""
    iam = admin_session.client("iam", endpoint_url=stack["aws"]["endpoint_url"])
    name = f"gateway-test-user-{uuid.uuid4().hex[:6]}"
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"], "name": name}


def hvac_login(vault: dict[str, Any], creds: dict[str, str], role: str | None = None) -> hvac.Client:
    client = hvac.Client(url=vault["addr"], timeout=10)
    client.auth.aws.iam_login(
        creds["access_key_id"],
        creds["secret_access_key"],
        creds.get("session_token"),
        header_value=vault["iam_server_id"],
        role=role or vault["role"],
    )
    return client


# --- successful login ----------------------------------------------------------------------------
def test_lambda_role_logs_in_and_reads_product_secrets(
    vault: dict[str, Any], lambda_creds: dict[str, str], root: hvac.Client, stack: dict[str, Any]
) -> None:
    client = hvac.Client(url=vault["addr"], timeout=10)
    answer = client.auth.aws.iam_login(
        lambda_creds["access_key_id"],
        lambda_creds["secret_access_key"],
        lambda_creds["session_token"],
        header_value=vault["iam_server_id"],
        role=vault["role"],
    )
    auth = answer["auth"]
    assert set(auth) >= {
        "client_token",
        "accessor",
        "policies",
        "token_policies",
        "metadata",
        "lease_duration",
        "renewable",
    }
    assert auth["policies"] == ["aurora-sync-lambda", "default"]
    assert auth["renewable"] is True
    assert auth["lease_duration"] == 3600
    assert auth["metadata"]["client_arn"].startswith(
        f"arn:aws:sts::{ACCOUNT}:assumed-role/aurora-sync-lambda/"
    )
    assert auth["metadata"]["canonical_arn"] == stack["aws"]["lambda_role_arn"]
    assert auth["metadata"]["auth_type"] == "iam"
    assert auth["metadata"]["role"] == "aurora-sync-lambda"

    root.secrets.kv.v2.create_or_update_secret(
        path="aurora-sync/gateway-test", mount_point="secret", secret={"answer": "42"}
    )
    assert client.secrets.kv.v2.read_secret_version(
        path="aurora-sync/gateway-test", mount_point="secret", raise_on_deleted_version=True
    )["data"]["data"] == {"answer": "42"}
    for part, path, keys in (
        ("postgres", vault["aurora_secret_path"], {"host", "port", "dbname", "user", "password", "sslmode"}),
        ("snowflake", vault["snowflake_secret_path"], {"account", "user", "private_key"}),
    ):
        if part in stack:
            data = client.secrets.kv.v2.read_secret_version(
                path=path, mount_point="secret", raise_on_deleted_version=True
            )["data"]["data"]
            assert keys <= set(data)
    # The policy is read-only and limited to the product's subtree.
    root.secrets.kv.v2.create_or_update_secret(path="other-team/x", mount_point="secret", secret={"k": "v"})
    with pytest.raises(hvac.exceptions.Forbidden):
        client.secrets.kv.v2.read_secret_version(
            path="other-team/x", mount_point="secret", raise_on_deleted_version=True
        )
    with pytest.raises(hvac.exceptions.Forbidden):
        client.secrets.kv.v2.create_or_update_secret(
            path="aurora-sync/gateway-test", mount_point="secret", secret={"answer": "43"}
        )


def test_proxied_paths_reach_openbao(vault: dict[str, Any], lambda_creds: dict[str, str]) -> None:
    health = requests.get(f"{vault['addr']}/v1/sys/health", timeout=5)
    assert health.status_code == 200
    assert health.json()["initialized"] is True
    assert health.json()["sealed"] is False
    client = hvac_login(vault, lambda_creds)
    me = client.auth.token.lookup_self()["data"]
    assert me["policies"] == ["aurora-sync-lambda", "default"]
    assert me["meta"]["role"] == "aurora-sync-lambda"
    assert me["orphan"] is True
    renewed = client.auth.token.renew_self()["auth"]
    assert renewed["lease_duration"] == 3600
    unauthenticated = requests.get(f"{vault['addr']}/v1/secret/data/aurora-sync/gateway-test", timeout=5)
    assert unauthenticated.status_code == 403


# --- rejected logins -----------------------------------------------------------------------------
def test_body_other_than_get_caller_identity_is_rejected(
    vault: dict[str, Any], lambda_creds: dict[str, str]
) -> None:
    # Validly signed, but another action: it must never mint a token.
    signed_other = login_payload(
        lambda_creds,
        role=vault["role"],
        header_value=vault["iam_server_id"],
        signed_body="Action=GetSessionToken&Version=2011-06-15",
    )
    assert_rejected(post_login(vault, signed_other), "iam request body is invalid")
    # Body swapped after signing.
    swapped = login_payload(
        lambda_creds,
        role=vault["role"],
        header_value=vault["iam_server_id"],
        sent_body="Action=GetCallerIdentity&Version=2011-06-15&X=1",
    )
    assert_rejected(post_login(vault, swapped), "iam request body is invalid")


def test_server_id_header_must_be_present_equal_and_signed(
    vault: dict[str, Any], lambda_creds: dict[str, str]
) -> None:
    missing = login_payload(lambda_creds, role=vault["role"], header_value=None)
    assert_rejected(
        post_login(vault, missing),
        'error validating X-Vault-AWS-IAM-Server-ID header: missing header "X-Vault-AWS-IAM-Server-ID"',
    )
    wrong = login_payload(lambda_creds, role=vault["role"], header_value="vault.other.example")
    assert_rejected(
        post_login(vault, wrong), f'expected "{vault["iam_server_id"]}" but got "vault.other.example"'
    )
    unsigned = login_payload(
        lambda_creds, role=vault["role"], header_value=vault["iam_server_id"], sign_header=False
    )
    assert_rejected(post_login(vault, unsigned), "vault header wasn't signed")


def test_bad_signature_unknown_key_and_stale_signature_are_rejected(
    vault: dict[str, Any], lambda_creds: dict[str, str]
) -> None:
    forged = login_payload(
        lambda_creds,
        role=vault["role"],
        header_value=vault["iam_server_id"],
        secret_key="not-the-secret-key-of-this-access-key-00",
    )
    assert_rejected(post_login(vault, forged), "received error code 403 from STS", "SignatureDoesNotMatch")
    unknown = login_payload(
        {**lambda_creds, "access_key_id": "ASIAUNKNOWNKEY000000"},
        role=vault["role"],
        header_value=vault["iam_server_id"],
    )
    assert_rejected(post_login(vault, unknown), "InvalidClientTokenId")
    stale = login_payload(
        lambda_creds,
        role=vault["role"],
        header_value=vault["iam_server_id"],
        signed_at=datetime.now(UTC) - timedelta(minutes=20),
    )
    assert_rejected(post_login(vault, stale), "Signature expired")
    wrong_token = login_payload(
        {**lambda_creds, "session_token": "bm90LXRoZS10b2tlbg=="},
        role=vault["role"],
        header_value=vault["iam_server_id"],
    )
    assert_rejected(post_login(vault, wrong_token), "InvalidClientTokenId")


def test_unknown_role_is_rejected(vault: dict[str, Any], lambda_creds: dict[str, str]) -> None:
    payload = login_payload(lambda_creds, role="no-such-role", header_value=vault["iam_server_id"])
    assert_rejected(post_login(vault, payload), "entry for role no-such-role not found")


def test_principals_not_bound_to_the_role_are_rejected_with_their_arn(
    vault: dict[str, Any], other_role_creds: dict[str, str], user_creds: dict[str, str]
) -> None:
    other = post_login(
        vault, login_payload(other_role_creds, role=vault["role"], header_value=vault["iam_server_id"])
    )
    assert_rejected(
        other,
        f'IAM Principal "arn:aws:sts::{ACCOUNT}:assumed-role/gateway-test-other/intruder" '
        f'does not belong to the role "aurora-sync-lambda"',
    )
    user = post_login(
        vault, login_payload(user_creds, role=vault["role"], header_value=vault["iam_server_id"])
    )
    assert_rejected(user, f'IAM Principal "arn:aws:iam::{ACCOUNT}:user/{user_creds["name"]}" does not belong')


# --- role management through the Vault API -------------------------------------------------------
def test_role_management_requires_a_privileged_token(
    vault: dict[str, Any], lambda_creds: dict[str, str]
) -> None:
    url = f"{vault['addr']}/v1/auth/aws/role/{vault['role']}"
    anonymous = requests.get(url, timeout=5)
    assert anonymous.status_code == 403
    assert anonymous.json() == {"errors": ["permission denied"]}
    lambda_token = hvac_login(vault, lambda_creds).token
    as_lambda = requests.post(
        url, json={"bound_iam_principal_arn": "*"}, timeout=5, headers={"X-Vault-Token": lambda_token}
    )
    assert as_lambda.status_code == 403
    config = requests.get(
        f"{vault['addr']}/v1/auth/aws/config/client", timeout=5, headers={"X-Vault-Token": lambda_token}
    )
    assert config.status_code == 403


def test_wildcard_binding_and_role_config_survive_gateway_restart(
    vault: dict[str, Any], root: hvac.Client, other_role_creds: dict[str, str], local_stack: Stack
) -> None:
    role = "gateway-test-wildcard"
    root.auth.aws.create_role(
        role=role,
        auth_type="iam",
        bound_iam_principal_arn=[f"arn:aws:iam::{ACCOUNT}:role/gateway-test-*"],
        policies=["default"],
        ttl="10m",
        max_ttl="1h",
    )
    stored = root.auth.aws.read_role(role)
    assert stored["bound_iam_principal_arn"] == [f"arn:aws:iam::{ACCOUNT}:role/gateway-test-*"]
    assert stored["token_policies"] == ["default"]
    assert (stored["token_ttl"], stored["token_max_ttl"]) == (600, 3600)
    assert role in root.auth.aws.list_roles()["keys"]
    assert root.auth.aws.read_config()["iam_server_id_header_value"] == vault["iam_server_id"]

    # Restart only the gateway process; OpenBao and moto keep running.
    pid_file = local_stack.settings.run_dir / "vault.pid"
    old_pid = int(pid_file.read_text())
    os.kill(old_pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while local_stack._alive(old_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    local_stack.up(only=["vault"])
    assert int(pid_file.read_text()) != old_pid

    assert root.auth.aws.read_role(role)["bound_iam_principal_arn"] == [
        f"arn:aws:iam::{ACCOUNT}:role/gateway-test-*"
    ]
    answer = hvac_login(vault, other_role_creds, role=role)
    assert answer.auth.token.lookup_self()["data"]["policies"] == ["default"]

    root.auth.aws.delete_role(role)
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.auth.aws.read_role(role)


# --- which STS endpoint Vault replays the login to ----------------------------------------------
@pytest.fixture
def client_config(root: hvac.Client) -> Iterator[Callable[..., None]]:
    """Set fields of auth/aws/config/client for one test; the stack's own values come back after."""
    before = root.auth.aws.read_config()

    def configure(**fields: Any) -> None:
        root.adapter.post("/v1/auth/aws/config/client", json=fields)

    yield configure
    configure(
        sts_endpoint=before.get("sts_endpoint", ""),
        sts_region=before.get("sts_region", ""),
        use_sts_region_from_client=before.get("use_sts_region_from_client", False),
    )


def product_login(vault: dict[str, Any], creds: dict[str, str], sts_region: str | None) -> dict[str, Any]:
    """The login body the handlers send (aurora_sync.vault.signed_login)."""
    frozen = ReadOnlyCredentials(
        creds["access_key_id"], creds["secret_access_key"], creds.get("session_token")
    )
    return {
        **signed_login(frozen, sts_region=sts_region, server_id=vault["iam_server_id"]),
        "role": vault["role"],
    }


def test_the_global_endpoint_accepts_only_a_us_east_1_signature(
    vault: dict[str, Any], lambda_creds: dict[str, str]
) -> None:
    # hvac's iam_login(region="eu-west-1"): eu-west-1 scope on the global host, refused as STS does.
    hvac_eu = login_payload(
        lambda_creds, role=vault["role"], header_value=vault["iam_server_id"], region="eu-west-1"
    )
    assert_rejected(
        post_login(vault, hvac_eu),
        "received error code 403 from STS: SignatureDoesNotMatch: "
        "Credential should be scoped to a valid region, not 'eu-west-1'.",
    )
    # A regional signature sent to a Vault that calls the global endpoint: refused too.
    assert_rejected(
        post_login(vault, product_login(vault, lambda_creds, "eu-west-1")),
        "not 'eu-west-1'",
    )
    assert post_login(vault, product_login(vault, lambda_creds, None)).status_code == 200


def test_a_regional_sts_endpoint_accepts_only_its_own_region(
    vault: dict[str, Any], lambda_creds: dict[str, str], client_config: Callable[..., None]
) -> None:
    client_config(sts_endpoint="https://sts.eu-west-1.amazonaws.com", sts_region="eu-west-1")
    assert post_login(vault, product_login(vault, lambda_creds, "eu-west-1")).status_code == 200
    assert_rejected(
        post_login(vault, product_login(vault, lambda_creds, None)),
        "Credential should be scoped to a valid region, not 'us-east-1'.",
    )
    # Right region, wrong endpoint named in the signed Host: Vault forwards that Host to STS.
    frozen = ReadOnlyCredentials(
        lambda_creds["access_key_id"], lambda_creds["secret_access_key"], lambda_creds.get("session_token")
    )
    with mock.patch("aurora_sync.vault.sts_host", lambda region: "sts.amazonaws.com"):
        wrong_host = signed_login(frozen, sts_region="eu-west-1", server_id=vault["iam_server_id"])
    assert_rejected(
        post_login(vault, {**wrong_host, "role": vault["role"]}),
        "names sts.amazonaws.com but Vault sends it to https://sts.eu-west-1.amazonaws.com",
    )


def test_vault_can_take_the_region_from_the_signature_or_stand_behind_a_vpc_endpoint(
    vault: dict[str, Any], lambda_creds: dict[str, str], client_config: Callable[..., None]
) -> None:
    client_config(use_sts_region_from_client=True)
    assert post_login(vault, product_login(vault, lambda_creds, "eu-west-1")).status_code == 200
    assert post_login(vault, product_login(vault, lambda_creds, "ap-southeast-2")).status_code == 200

    client_config(
        use_sts_region_from_client=False,
        sts_endpoint="https://vpce-0a1b2c3d-4e5f.sts.eu-west-1.vpce.amazonaws.com",
        sts_region="eu-west-1",
    )
    assert post_login(vault, product_login(vault, lambda_creds, "eu-west-1")).status_code == 200
    assert_rejected(post_login(vault, product_login(vault, lambda_creds, None)), "not 'us-east-1'")
