"""The handlers' Vault provider against the local Vault (OpenBao + IAM-login gateway).

Given the Lambda environment of the local stack (``lambda_env``), the provider logs in with the
Lambda role's credentials and reads KV v2 secrets. Behaviour is observed from Vault's side
(token accessors, ``last_renewal_time``, revocation) rather than from provider internals.
"""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest

from aurora_sync.errors import ConfigError, SecretMalformed, SecretsAccessDenied, SecretsUnavailable
from aurora_sync.settings import RuntimeSettings, runtime_settings
from aurora_sync.vault import VaultSecrets, reset_vault_cache, vault_secrets
from aurora_sync_ops.local.vault.tls import ensure_tls_files

SECRET_PATH = "aurora-sync/provider-test"
SECRET = {"host": "db.internal", "port": 5432, "user": "sync", "password": "pw-" + uuid.uuid4().hex}


class FakeClock:
    """Monotonic clock the test moves forward, so TTL logic runs without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def vault(stack: dict[str, Any]) -> dict[str, Any]:
    if "vault" not in stack:
        pytest.skip("vault part not in this stack")
    section: dict[str, Any] = stack["vault"]
    return section


@pytest.fixture(scope="module")
def root(vault: dict[str, Any]) -> hvac.Client:
    client = hvac.Client(url=vault["addr"], token=vault["root_token"], timeout=10)
    client.secrets.kv.v2.create_or_update_secret(path=SECRET_PATH, mount_point="secret", secret=SECRET)
    return client


@pytest.fixture
def settings(lambda_env: dict[str, str], root: hvac.Client) -> Iterator[RuntimeSettings]:
    reset_vault_cache()
    yield runtime_settings()
    reset_vault_cache()


def provider(base: RuntimeSettings, env: dict[str, Any] | None = None, **options: Any) -> VaultSecrets:
    """A fresh provider from the Lambda settings, with some settings changed (``env``)."""
    values = {**base.model_dump(), **(env or {})}
    return VaultSecrets.from_settings(RuntimeSettings(**values), **options)


def token_info(root: hvac.Client, accessor: str) -> dict[str, Any]:
    data: dict[str, Any] = root.auth.token.lookup_accessor(accessor)["data"]
    return data


def test_reads_secrets_with_the_lambda_role(
    settings: RuntimeSettings, root: hvac.Client, stack: dict[str, Any]
) -> None:
    secrets = vault_secrets()
    assert secrets is vault_secrets()  # one provider (token + cache) per warm container
    assert secrets.read(SECRET_PATH) == SECRET
    assert secrets.read_required(SECRET_PATH, ["host", "password"]) == SECRET
    info = token_info(root, secrets.token_accessor or "")
    assert info["policies"] == ["aurora-sync-lambda", "default"]
    assert info["meta"]["canonical_arn"] == stack["aws"]["lambda_role_arn"]
    if "postgres" in stack:
        aurora = secrets.read_required(
            settings.aurora_secret_path, ["host", "port", "dbname", "user", "password"]
        )
        assert aurora["sslmode"] == "disable"
    if "snowflake" in stack:
        snowflake = secrets.read_required(settings.snowflake_secret_path, ["account", "user", "private_key"])
        assert snowflake["private_key"].startswith("-----BEGIN PRIVATE KEY-----")


def test_cache_answers_within_max_age_then_relogs_after_revocation(
    settings: RuntimeSettings, root: hvac.Client
) -> None:
    clock = FakeClock()
    secrets = provider(settings, max_age_s=300, clock=clock)
    assert secrets.read(SECRET_PATH)["host"] == "db.internal"
    first = secrets.token_accessor
    assert first

    # Revoke the token and change the secret: a cached answer cannot have seen either.
    root.auth.token.revoke_accessor(first)
    root.secrets.kv.v2.patch(path=SECRET_PATH, mount_point="secret", secret={"host": "db2.internal"})
    try:
        clock.now += 299
        assert secrets.read(SECRET_PATH)["host"] == "db.internal"
        assert secrets.token_accessor == first

        # Past max age: Vault answers 403 for the revoked token, the provider logs in once more.
        clock.now += 2
        assert secrets.read(SECRET_PATH)["host"] == "db2.internal"
        assert secrets.token_accessor not in (None, first)
    finally:
        root.secrets.kv.v2.create_or_update_secret(path=SECRET_PATH, mount_point="secret", secret=SECRET)


def test_token_is_renewed_when_a_third_of_its_ttl_is_left(
    settings: RuntimeSettings, root: hvac.Client
) -> None:
    role = "provider-test-short"
    root.auth.aws.create_role(
        role=role,
        auth_type="iam",
        bound_iam_principal_arn=[root.auth.aws.read_role(settings.vault_role)["bound_iam_principal_arn"][0]],
        policies=["aurora-sync-lambda"],
        ttl="60s",
        max_ttl="1h",
    )
    clock = FakeClock()
    secrets = provider(settings, env={"vault_role": role}, max_age_s=0, clock=clock)
    secrets.read(SECRET_PATH)
    accessor = secrets.token_accessor or ""
    assert "last_renewal_time" not in token_info(root, accessor)

    clock.now += 30  # half the TTL left: no renewal yet
    secrets.read(SECRET_PATH)
    assert "last_renewal_time" not in token_info(root, accessor)

    clock.now += 15  # a quarter left: renew the same token, no new login
    secrets.read(SECRET_PATH)
    assert secrets.token_accessor == accessor
    assert token_info(root, accessor)["last_renewal_time"] > 0


def test_token_past_its_ttl_leads_to_a_new_login(settings: RuntimeSettings, root: hvac.Client) -> None:
    clock = FakeClock()
    secrets = provider(settings, max_age_s=0, clock=clock)
    secrets.read(SECRET_PATH)
    first = secrets.token_accessor
    clock.now += 3601  # the provider believes the token expired: it must not try to renew it
    secrets.read(SECRET_PATH)
    assert secrets.token_accessor not in (None, first)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_unreachable_vault_is_transient(settings: RuntimeSettings) -> None:
    addr = f"http://127.0.0.1:{closed_port()}"
    secrets = provider(settings, env={"vault_addr": addr})
    with pytest.raises(SecretsUnavailable) as caught:
        secrets.read(SECRET_PATH)
    assert caught.value.transient is True
    assert f"Vault at {addr} is unreachable while logging in as role 'aurora-sync-lambda'" in str(
        caught.value
    )
    assert "Fix: check VAULT_ADDR" in str(caught.value)


def test_unknown_role_and_wrong_server_id_are_access_denied(settings: RuntimeSettings) -> None:
    with pytest.raises(SecretsAccessDenied) as unknown:
        provider(settings, env={"vault_role": "no-such-role"}).read(SECRET_PATH)
    assert unknown.value.transient is False
    assert "refused the AWS IAM login for role 'no-such-role'" in str(unknown.value)
    assert "entry for role no-such-role not found" in str(unknown.value)
    assert "bound_iam_principal_arn" in str(unknown.value)

    with pytest.raises(SecretsAccessDenied) as server_id:
        provider(settings, env={"vault_iam_server_id": "vault.other.example"}).read(SECRET_PATH)
    assert 'expected "vault.aurora-sync.local" but got "vault.other.example"' in str(server_id.value)


def test_a_function_in_eu_west_1_logs_in_through_the_global_sts_endpoint(settings: RuntimeSettings) -> None:
    """The function's own region never scopes the login: the global endpoint takes only us-east-1."""
    secrets = provider(settings, env={"aws_region": "eu-west-1"})
    assert secrets.read(SECRET_PATH) == SECRET


def test_vault_sts_region_must_name_the_region_of_the_mounts_sts_endpoint(
    settings: RuntimeSettings, root: hvac.Client
) -> None:
    eu = {"aws_region": "eu-west-1", "vault_sts_region": "eu-west-1"}
    # The stack's mount calls the global endpoint: a regional login is refused, with the fix.
    with pytest.raises(SecretsAccessDenied) as caught:
        provider(settings, env=eu).read(SECRET_PATH)
    message = str(caught.value)
    assert "signed for eu-west-1 (sts.eu-west-1.amazonaws.com)" in message
    assert "Credential should be scoped to a valid region, not 'eu-west-1'." in message
    assert "Fix: make VAULT_STS_REGION name the region of auth/aws/config/client sts_endpoint" in message

    # The mount set up for eu-west-1's STS, as docs/deploy.md describes: the same login passes.
    before = root.auth.aws.read_config()
    root.adapter.post(
        "/v1/auth/aws/config/client",
        json={"sts_endpoint": "https://sts.eu-west-1.amazonaws.com", "sts_region": "eu-west-1"},
    )
    try:
        assert provider(settings, env=eu).read(SECRET_PATH) == SECRET
        with pytest.raises(SecretsAccessDenied) as global_login:
            provider(settings, env={"aws_region": "eu-west-1"}).read(SECRET_PATH)
        assert "signed for us-east-1 (the global sts.amazonaws.com)" in str(global_login.value)
    finally:
        root.adapter.post(
            "/v1/auth/aws/config/client",
            json={"sts_endpoint": before.get("sts_endpoint", ""), "sts_region": before.get("sts_region", "")},
        )


def test_a_vault_behind_a_private_ca_is_trusted_only_with_vault_ca_cert(
    settings: RuntimeSettings, vault: dict[str, Any], tmp_path: Path
) -> None:
    """The stack's TLS listener has a certificate from the stack's own CA, like a company Vault."""
    tls = {"vault_addr": vault["tls_addr"]}
    ca_pem = Path(vault["ca_cert"]).read_text()
    assert provider(settings, env={**tls, "vault_ca_cert": vault["ca_cert"]}).read(SECRET_PATH) == SECRET
    assert provider(settings, env={**tls, "vault_ca_cert": ca_pem}).read(SECRET_PATH) == SECRET

    other_ca = ensure_tls_files(tmp_path, "127.0.0.1").ca_cert
    for env in (tls, {**tls, "vault_ca_cert": str(other_ca)}):
        with pytest.raises(ConfigError) as untrusted:
            provider(settings, env=env).read(SECRET_PATH)
        message = str(untrusted.value)
        assert untrusted.value.transient is False
        assert (
            f"Vault at {vault['tls_addr']} presented a TLS certificate this function does not trust"
            in message
        )
        assert "certificate verify failed" in message
        assert "Fix: set VaultCaCert (VAULT_CA_CERT)" in message

    with pytest.raises(ConfigError) as missing:
        provider(settings, env={**tls, "vault_ca_cert": "/var/task/no-such-ca.pem"}).read(SECRET_PATH)
    assert "VAULT_CA_CERT is neither PEM text nor a file in the package" in str(missing.value)


def test_role_bound_to_another_principal_names_the_caller(
    settings: RuntimeSettings, root: hvac.Client
) -> None:
    role = "provider-test-elsewhere"
    root.auth.aws.create_role(
        role=role, auth_type="iam", bound_iam_principal_arn=["arn:aws:iam::123456789012:role/someone-else"]
    )
    with pytest.raises(SecretsAccessDenied) as caught:
        provider(settings, env={"vault_role": role}).read(SECRET_PATH)
    assert "Caller: arn:aws:sts::123456789012:assumed-role/aurora-sync-lambda/" in str(caught.value)


def test_missing_secret_keys_and_paths(settings: RuntimeSettings, root: hvac.Client) -> None:
    secrets = provider(settings)
    with pytest.raises(SecretMalformed) as keys:
        secrets.read_required(SECRET_PATH, ["host", "dbname", "sslrootcert"])
    assert str(keys.value).startswith(
        f"Vault secret secret/{SECRET_PATH} at {settings.vault_addr} "
        f"lacks required keys: dbname, sslrootcert."
    )
    with pytest.raises(SecretMalformed) as missing:
        secrets.read("aurora-sync/does-not-exist")
    assert "No secret at secret/aurora-sync/does-not-exist" in str(missing.value)

    root.secrets.kv.v2.create_or_update_secret(path="other-team/x", mount_point="secret", secret={"k": "v"})
    with pytest.raises(SecretsAccessDenied) as denied:
        secrets.read("other-team/x")
    assert "denied reading secret/other-team/x to role 'aurora-sync-lambda'" in str(denied.value)
    assert "grant read on secret/data/other-team/x" in str(denied.value)


def test_no_token_or_secret_value_in_logs_or_errors(
    settings: RuntimeSettings, lambda_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    clock = FakeClock()
    secrets = provider(settings, max_age_s=0, clock=clock)
    secrets.read(SECRET_PATH)
    token = secrets._token.value if secrets._token else ""
    assert token
    clock.now += 3000  # force a renewal
    secrets.read(SECRET_PATH)
    for attempt in (
        lambda: secrets.read_required(SECRET_PATH, ["nope"]),
        lambda: secrets.read("other-team/x"),
        lambda: provider(settings, env={"vault_role": "no-such-role"}).read(SECRET_PATH),
        lambda: provider(settings, env={"vault_addr": f"http://127.0.0.1:{closed_port()}"}).read(SECRET_PATH),
    ):
        with pytest.raises(Exception) as caught:
            attempt()
        texts.append(str(caught.value))
        texts.append(repr(caught.value))
    logged = caplog.text + "\n".join(str(r.__dict__) for r in caplog.records)
    assert "vault login" in logged
    forbidden = [
        token,
        str(SECRET["password"]),
        lambda_env["AWS_SECRET_ACCESS_KEY"],
        lambda_env["AWS_SESSION_TOKEN"],
    ]
    for text in [*texts, logged]:
        # any(): a failing assert must not print the secret it found.
        assert not any(value in text for value in forbidden)
        assert "Signature=" not in text
        assert "X-Amz-Security-Token" not in text
