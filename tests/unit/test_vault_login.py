"""The Vault IAM login body the handlers sign (``aurora_sync.vault.signed_login``): host and
credential scope always name one STS endpoint, the one ``VAULT_STS_REGION`` chooses, and never
the function's own region. The gateway tests check the same bodies against Vault's rules."""

from __future__ import annotations

import base64
import json

import pytest
from botocore.credentials import ReadOnlyCredentials

from aurora_sync.errors import ConfigError
from aurora_sync.settings import RuntimeSettings
from aurora_sync.vault import STS_BODY, signed_login

CREDS = ReadOnlyCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token")


def decoded(body: dict[str, str]) -> tuple[str, dict[str, str], str]:
    headers = json.loads(base64.b64decode(body["iam_request_headers"]))
    assert all(isinstance(v, list) and len(v) == 1 for v in headers.values())
    return (
        base64.b64decode(body["iam_request_url"]).decode(),
        {k: v[0] for k, v in headers.items()},
        base64.b64decode(body["iam_request_body"]).decode(),
    )


@pytest.mark.parametrize(
    ("sts_region", "host", "scope"),
    [
        (None, "sts.amazonaws.com", "us-east-1"),
        ("eu-west-1", "sts.eu-west-1.amazonaws.com", "eu-west-1"),
        ("cn-north-1", "sts.cn-north-1.amazonaws.com.cn", "cn-north-1"),
    ],
)
def test_host_and_scope_name_the_same_sts_endpoint(sts_region: str | None, host: str, scope: str) -> None:
    body = signed_login(CREDS, sts_region=sts_region, server_id="vault.example.internal")
    url, headers, payload = decoded(body)
    assert (url, headers["Host"], payload) == (f"https://{host}/", host, STS_BODY)
    assert body["iam_http_request_method"] == "POST"
    authorization = headers["Authorization"]
    assert f"Credential=AKIDEXAMPLE/{headers['X-Amz-Date'][:8]}/{scope}/sts/aws4_request" in authorization
    signed = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    assert {"host", "x-vault-aws-iam-server-id", "x-amz-date", "x-amz-security-token"} <= set(signed)
    assert headers["X-Vault-AWS-IAM-Server-ID"] == "vault.example.internal"
    assert CREDS.secret_key not in json.dumps(body)


def test_the_settings_take_a_region_or_nothing_never_a_malformed_one() -> None:
    base = {"VAULT_ADDR": "https://vault.example:8200", "VAULT_ROLE": "r", "AWS_REGION": "eu-west-1"}
    assert RuntimeSettings.from_environ(base).vault_sts_region is None
    assert (
        RuntimeSettings.from_environ({**base, "VAULT_STS_REGION": "eu-west-1"}).vault_sts_region
        == "eu-west-1"
    )
    with pytest.raises(ConfigError) as caught:
        RuntimeSettings.from_environ({**base, "VAULT_STS_REGION": "https://sts.eu-west-1.amazonaws.com"})
    assert "VAULT_STS_REGION" in str(caught.value)
