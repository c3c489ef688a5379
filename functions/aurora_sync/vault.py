"""Secrets for the handlers, from Vault: AWS IAM login, one token per warm container, cached reads.

The Lambda proves who it is with its own role credentials (a signed ``sts:GetCallerIdentity``
that Vault replays to STS), so no secret is ever stored in the function's configuration. The
token is kept in module scope (``vault_secrets()``) and renewed before it runs out, and KV v2
reads are cached for a max age, so a warm invocation normally talks to Vault not at all.

Not built on Powertools' ``BaseProvider``: its ``get`` wraps every exception into
``GetParameterError``, which would hide the taxonomy class names the state machine retries on.

Nothing here ever puts a token, a secret value or a signed header into a message or a log line;
messages name the Vault address, mount, path, role and key names only.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .ca_bundle import ca_bundle_path
from .errors import ConfigError, SecretMalformed, SecretsAccessDenied, SecretsUnavailable
from .settings import RuntimeSettings, runtime_settings

log = logging.getLogger(__name__)

DEFAULT_MAX_AGE_S = 300.0
# Powertools' own knob for parameter caching, honoured here so one setting governs both.
MAX_AGE_ENV = "POWERTOOLS_PARAMETERS_MAX_AGE"
# (connect, read): a Lambda must fail fast and let the state machine retry, not hang.
DEFAULT_TIMEOUT_S = (3.05, 5.0)
# Renew once less than this share of the token's TTL is left.
RENEW_WHEN_REMAINING = 1 / 3


@dataclass
class _Token:
    value: str
    accessor: str
    ttl_s: float  # as granted at login; 0 = never expires
    expires_at: float  # monotonic clock
    renewable: bool


@dataclass
class _Cached:
    data: dict[str, Any]
    fetched_at: float


class VaultSecrets:
    """Reads KV v2 secrets with a Vault token obtained by AWS IAM login."""

    def __init__(
        self,
        *,
        addr: str,
        role: str,
        iam_server_id: str | None = None,
        auth_mount: str = "aws",
        kv_mount: str = "secret",
        namespace: str | None = None,
        sts_region: str | None = None,
        ca_cert: str | None = None,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        timeout_s: float | tuple[float, float] = DEFAULT_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.addr = addr.rstrip("/")
        self.role = role
        self.iam_server_id = iam_server_id
        self.auth_mount = auth_mount
        self.kv_mount = kv_mount
        self.namespace = namespace
        self.sts_region = sts_region
        self.ca_cert = ca_cert
        self.max_age_s = max_age_s
        self.timeout_s = timeout_s
        self._clock = clock
        self._lock = threading.RLock()
        self._token: _Token | None = None
        self._cache: dict[str, _Cached] = {}
        self._client: Any = None

    @classmethod
    def from_settings(
        cls,
        settings: RuntimeSettings,
        *,
        max_age_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> VaultSecrets:
        if max_age_s is None:
            max_age_s = float(os.environ.get(MAX_AGE_ENV) or DEFAULT_MAX_AGE_S)
        return cls(
            addr=settings.vault_addr,
            role=settings.vault_role,
            iam_server_id=settings.vault_iam_server_id,
            auth_mount=settings.vault_auth_mount,
            kv_mount=settings.vault_kv_mount,
            namespace=settings.vault_namespace,
            sts_region=settings.vault_sts_region,
            ca_cert=settings.vault_ca_cert,
            max_age_s=max_age_s,
            clock=clock,
        )

    # --- public --------------------------------------------------------------------------------
    def read(self, path: str) -> dict[str, Any]:
        """The latest version of the KV v2 secret at ``path`` (served from cache within max age)."""
        with self._lock:
            cached = self._cache.get(path)
            if cached is not None and self._clock() - cached.fetched_at < self.max_age_s:
                return dict(cached.data)
            data = self._read_from_vault(path)
            if self.max_age_s > 0:
                self._cache[path] = _Cached(data, self._clock())
            return dict(data)

    def read_required(self, path: str, keys: Iterable[str]) -> dict[str, Any]:
        """Like ``read``, but every key in ``keys`` must be present and non-empty."""
        data = self.read(path)
        missing = sorted(k for k in keys if data.get(k) in (None, ""))
        if missing:
            raise SecretMalformed(
                f"Vault secret {self.kv_mount}/{path} at {self.addr} lacks required keys: "
                f"{', '.join(missing)}.",
                fix=f"add them to the secret (vault kv patch -mount={self.kv_mount} {path} KEY=...)",
            )
        return data

    @property
    def token_accessor(self) -> str | None:
        """Accessor of the current token (not a credential): lets operators and tests identify it."""
        return self._token.accessor if self._token else None

    def clear_cache(self) -> None:
        """Forget cached secrets (the token is kept)."""
        with self._lock:
            self._cache.clear()

    # --- Vault calls ---------------------------------------------------------------------------
    def _hvac(self) -> Any:
        if self._client is None:
            import hvac

            self._client = hvac.Client(
                url=self.addr, namespace=self.namespace, timeout=self.timeout_s, verify=self._verify()
            )
        return self._client

    def _verify(self) -> str | bool:
        """What requests checks Vault's certificate against: VAULT_CA_CERT, else the public CAs."""
        if not self.ca_cert:
            return True
        path = ca_bundle_path(self.ca_cert)
        if not os.path.isfile(path):
            raise ConfigError(
                f"VAULT_CA_CERT is neither PEM text nor a file in the package ({path!r} does not exist).",
                fix="set the VaultCaCert parameter to the CA's PEM text, or to the path of a PEM file "
                "shipped in functions/ (e.g. /var/task/vault-ca.pem)",
            )
        return path

    def _read_from_vault(self, path: str) -> dict[str, Any]:
        import hvac.exceptions as hv
        import requests

        for attempt in (1, 2):
            self._ensure_token()
            try:
                response = self._hvac().secrets.kv.v2.read_secret_version(
                    path=path, mount_point=self.kv_mount, raise_on_deleted_version=True
                )
            except hv.Forbidden:
                # A revoked or expired token reads as 403 too: log in again once, then believe it.
                self._token = None
                if attempt == 1:
                    log.info("vault read denied; logging in again once", extra={"vault_path": path})
                    continue
                raise SecretsAccessDenied(
                    f"Vault at {self.addr} denied reading {self.kv_mount}/{path} to role {self.role!r}.",
                    fix=f"grant read on {self.kv_mount}/data/{path} in the policy attached to the Vault "
                    f"role {self.role!r} (auth/{self.auth_mount}/role/{self.role})",
                ) from None
            except hv.InvalidPath:
                raise SecretMalformed(
                    f"No secret at {self.kv_mount}/{path} in Vault at {self.addr} "
                    f"(missing, or its latest version is deleted).",
                    fix=f"write it: vault kv put -mount={self.kv_mount} {path} KEY=VALUE ...",
                ) from None
            except (hv.VaultError, requests.exceptions.RequestException) as exc:
                raise self._translate(exc, f"reading {self.kv_mount}/{path}") from None
            data = (response or {}).get("data", {}).get("data")
            if not isinstance(data, dict):
                raise SecretMalformed(
                    f"Vault secret {self.kv_mount}/{path} at {self.addr} is not a KV v2 key/value map.",
                    fix=f"check that {self.kv_mount}/ is a KV version 2 mount (VAULT_KV_MOUNT)",
                )
            return data
        raise AssertionError("unreachable")  # pragma: no cover

    def _ensure_token(self) -> None:
        token = self._token
        if token is None:
            self._login()
            return
        if not token.ttl_s:
            return
        remaining = token.expires_at - self._clock()
        if remaining > token.ttl_s * RENEW_WHEN_REMAINING:
            return
        if token.renewable and remaining > 0 and self._renew(token):
            return
        self._login()

    def _renew(self, token: _Token) -> bool:
        import hvac.exceptions as hv
        import requests

        try:
            answer = self._hvac().auth.token.renew_self()
        except (hv.VaultError, requests.exceptions.RequestException) as exc:
            log.info("vault token renewal failed; logging in again", extra={"error_type": type(exc).__name__})
            return False
        lease = float((answer or {}).get("auth", {}).get("lease_duration") or 0)
        # Near the token's max TTL Vault grants less than asked; a fresh login is then better.
        if lease < token.ttl_s * RENEW_WHEN_REMAINING:
            return False
        token.expires_at = self._clock() + lease
        log.info("vault token renewed", extra={"vault_role": self.role, "lease_duration": lease})
        return True

    def _login(self) -> None:
        import boto3
        import hvac.exceptions as hv
        import requests

        self._token = None
        credentials = boto3.Session().get_credentials()
        if credentials is None:
            raise SecretsAccessDenied(
                f"No AWS credentials in this environment to log in to Vault at {self.addr} "
                f"as role {self.role!r}.",
                fix="run with the Lambda execution role (or set AWS credentials for local runs)",
            )
        login = signed_login(
            credentials.get_frozen_credentials(), sts_region=self.sts_region, server_id=self.iam_server_id
        )
        try:
            answer = self._hvac().login(
                f"/v1/auth/{self.auth_mount}/login", use_token=True, json={**login, "role": self.role}
            )
        except (hv.VaultError, requests.exceptions.RequestException) as exc:
            raise self._translate(exc, f"logging in as role {self.role!r}", login=True) from None
        auth = answer["auth"]
        ttl = float(auth.get("lease_duration") or 0)
        self._token = _Token(
            value=auth["client_token"],
            accessor=auth.get("accessor", ""),
            ttl_s=ttl,
            expires_at=self._clock() + ttl,
            renewable=bool(auth.get("renewable")),
        )
        log.info(
            "vault login",
            extra={"vault_role": self.role, "policies": auth.get("policies"), "lease_duration": ttl},
        )

    def _translate(self, exc: Exception, action: str, *, login: bool = False) -> Exception:
        """Map hvac/requests failures to the taxonomy with a message that names what to check."""
        import hvac.exceptions as hv
        import requests

        where = f"Vault at {self.addr}"
        if isinstance(exc, requests.exceptions.SSLError):
            # Retrying cannot make an untrusted certificate trusted: terminal, with the setting.
            reason = re.search(r"certificate verify failed: [^(')\]]+", str(exc))
            return ConfigError(
                f"{where} presented a TLS certificate this function does not trust while {action} "
                f"({reason.group(0).strip() if reason else type(exc).__name__}).",
                fix="set VaultCaCert (VAULT_CA_CERT) to the PEM of the CA that signed Vault's "
                "certificate, and check that VAULT_ADDR's host name is in that certificate",
            )
        if isinstance(exc, requests.exceptions.RequestException):
            return SecretsUnavailable(
                f"{where} is unreachable while {action} ({type(exc).__name__}).",
                fix="check VAULT_ADDR, the Lambda's VPC route/security group to Vault, and that Vault is up",
            )
        if isinstance(exc, hv.VaultDown | hv.VaultNotInitialized):
            return SecretsUnavailable(
                f"{where} is sealed or not initialized while {action}.",
                fix="unseal Vault (vault operator unseal) or wait for the standby to take over",
            )
        if isinstance(
            exc, hv.InternalServerError | hv.BadGateway | hv.RateLimitExceeded | hv.UnexpectedError
        ):
            return SecretsUnavailable(
                f"{where} failed while {action} ({type(exc).__name__}: {_vault_errors(exc)}).",
                fix="retry later; check the Vault server logs",
            )
        if login and isinstance(exc, hv.InvalidRequest | hv.Forbidden | hv.Unauthorized | hv.InvalidPath):
            detail = _vault_errors(exc)
            if "Credential should be scoped to a valid region" in detail:
                signed = (
                    f"{self.sts_region} (sts.{self.sts_region}.amazonaws.com)"
                    if self.sts_region
                    else ("us-east-1 (the global sts.amazonaws.com)")
                )
                return SecretsAccessDenied(
                    f"{where}: STS refused the AWS IAM login for role {self.role!r} on "
                    f"auth/{self.auth_mount}, signed for {signed}: the mount's STS endpoint is in "
                    f"another region ({detail}).",
                    fix=f"make VAULT_STS_REGION name the region of auth/{self.auth_mount}/config/client "
                    "sts_endpoint and sts_region, or leave both unset to use the global endpoint",
                )
            principal = re.search(r'IAM Principal "([^"]+)"', detail)
            caller = f" Caller: {principal.group(1)}." if principal else ""
            return SecretsAccessDenied(
                f"{where} refused the AWS IAM login for role {self.role!r} on auth/{self.auth_mount}: "
                f"{detail}.{caller}",
                fix=f"bind the Lambda's execution role ARN to the Vault role (vault write "
                f"auth/{self.auth_mount}/role/{self.role} bound_iam_principal_arn=<role ARN>) and make "
                f"VAULT_IAM_SERVER_ID equal the mount's iam_server_id_header_value",
            )
        if isinstance(exc, hv.VaultError):
            return SecretsAccessDenied(
                f"{where} rejected {action} ({type(exc).__name__}: {_vault_errors(exc)}).",
                fix=f"check VAULT_AUTH_MOUNT={self.auth_mount}, VAULT_KV_MOUNT={self.kv_mount} "
                f"and the role's policy",
            )
        return SecretsUnavailable(
            f"{where}: unexpected {type(exc).__name__} while {action}.",
            fix="retry; if it persists, check the Vault client configuration",
        )


def _vault_errors(exc: Exception) -> str:
    """Vault's own error strings (they name roles, ARNs and headers, never token or secret values)."""
    errors = getattr(exc, "errors", None)
    if isinstance(errors, list) and errors:
        return "; ".join(str(e) for e in errors)
    return "no detail"


GLOBAL_STS_REGION = "us-east-1"
STS_BODY = "Action=GetCallerIdentity&Version=2011-06-15"


def sts_host(sts_region: str | None) -> str:
    """The STS host a login signed for ``sts_region`` names (None = the global endpoint)."""
    if sts_region is None:
        return "sts.amazonaws.com"
    return f"sts.{sts_region}.amazonaws.com" + (".cn" if sts_region.startswith("cn-") else "")


def signed_login(credentials: Any, *, sts_region: str | None, server_id: str | None) -> dict[str, str]:
    """The body of Vault's ``auth/<mount>/login`` for the iam method: a signed GetCallerIdentity.

    Signed here with botocore rather than by hvac's ``iam_login``, which always names the global
    ``sts.amazonaws.com`` whatever region it is given: STS then rejects any scope but us-east-1
    ("Credential should be scoped to a valid region"). Host and scope must name the same endpoint,
    the one Vault replays the request to. ``credentials`` are botocore's frozen credentials.
    """
    import base64
    import json

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    host = sts_host(sts_region)
    url = f"https://{host}/"
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8", "Host": host}
    if server_id:
        # Signed, so a login replayed to another Vault (another server id) is refused there.
        headers["X-Vault-AWS-IAM-Server-ID"] = server_id
    request = AWSRequest(method="POST", url=url, data=STS_BODY, headers=headers)
    SigV4Auth(credentials, "sts", sts_region or GLOBAL_STS_REGION).add_auth(request)
    sent = {name: [value] for name, value in request.headers.items()}

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    return {
        "iam_http_request_method": "POST",
        "iam_request_url": b64(url),
        "iam_request_body": b64(STS_BODY),
        "iam_request_headers": b64(json.dumps(sent)),
    }


@lru_cache(maxsize=1)
def vault_secrets() -> VaultSecrets:
    """The provider for this container: its token and cache live as long as the warm container."""
    return VaultSecrets.from_settings(runtime_settings())


def reset_vault_cache() -> None:
    """Drop the module-level provider (token and cached secrets); for tests."""
    vault_secrets.cache_clear()
