"""Contract (real AWS): the STS rule the local Vault gateway enforces for IAM logins.

The gateway refuses a login whose signature scope is not the region of the STS endpoint Vault
replays it to (``aws_auth.sts_target``). These tests send the handlers' own signed login
(``aurora_sync.vault.signed_login``) straight to real STS, and check that STS and the gateway's
rule agree case by case. They need AWS credentials and network access, so they run only when
``AURORA_SYNC_CONTRACT_AWS=1`` is set (GetCallerIdentity needs no permission and costs nothing).
"""

from __future__ import annotations

import base64
import json
import os

import boto3
import pytest
import requests

from aurora_sync.vault import signed_login
from aurora_sync_ops.local.vault import sigv4
from aurora_sync_ops.local.vault.aws_auth import sts_target

pytestmark = pytest.mark.aws_account

CASES = [
    # (signed for, endpoint Vault calls, STS accepts)
    (None, "https://sts.amazonaws.com", True),
    ("eu-west-1", "https://sts.eu-west-1.amazonaws.com", True),
    ("us-east-1", "https://sts.us-east-1.amazonaws.com", True),
    # What hvac's iam_login(region="eu-west-1") sends: eu-west-1 scope, global host.
    ("eu-west-1:global-host", "https://sts.amazonaws.com", False),
    (None, "https://sts.eu-west-1.amazonaws.com", False),
]


@pytest.fixture(scope="module")
def credentials() -> object:
    if os.environ.get("AURORA_SYNC_CONTRACT_AWS") != "1":
        pytest.skip("set AURORA_SYNC_CONTRACT_AWS=1 (with AWS credentials) to check the STS rule on real AWS")
    found = boto3.Session().get_credentials()
    if found is None:
        pytest.fail("AURORA_SYNC_CONTRACT_AWS=1 but no AWS credentials: configure them (AWS_PROFILE, ...)")
    return found.get_frozen_credentials()


def login_for(credentials: object, signed_for: str | None) -> tuple[str, dict[str, str], str]:
    region, _, variant = (signed_for or "").partition(":")
    if variant == "global-host":
        from unittest import mock

        with mock.patch("aurora_sync.vault.sts_host", lambda _region: "sts.amazonaws.com"):
            body = signed_login(credentials, sts_region=region, server_id=None)
    else:
        body = signed_login(credentials, sts_region=region or None, server_id=None)
    headers = {k: v[0] for k, v in json.loads(base64.b64decode(body["iam_request_headers"])).items()}
    return (
        base64.b64decode(body["iam_request_url"]).decode(),
        headers,
        base64.b64decode(body["iam_request_body"]).decode(),
    )


@pytest.mark.parametrize(("signed_for", "endpoint", "accepted"), CASES)
def test_sts_and_the_gateways_rule_agree(
    credentials: object, signed_for: str | None, endpoint: str, accepted: bool
) -> None:
    _url, headers, body = login_for(credentials, signed_for)
    # Vault sends the request to its endpoint with the client's own Host header.
    answer = requests.post(endpoint + "/", data=body, headers=headers, timeout=15)
    assert (answer.status_code == 200) is accepted, answer.text
    if not accepted:
        assert "Credential should be scoped to a valid region" in answer.text

    scope = sigv4.parse_authorization(headers["Authorization"]).region
    _, host, region = sts_target({"sts_endpoint": endpoint}, scope)
    assert (scope == region and headers["Host"] == host) is accepted
