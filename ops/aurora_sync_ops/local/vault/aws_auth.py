"""Vault's ``aws`` auth method (IAM logins only), emulated in front of OpenBao.

OpenBao has no ``aws`` auth method, so the gateway keeps the method's configuration (client
config and roles) itself, in a JSON file, and mints ordinary OpenBao tokens for logins that pass
the same checks Vault makes (``builtin/credential/aws/path_login.go``). Error messages follow
Vault's wording so operators see locally what they would see in production.

What is verified, and how, compared with real Vault + STS:

* request shape (method, STS URL, body, allowed headers) and the ``X-Vault-AWS-IAM-Server-ID``
  header (present, equal, signed): the same checks as Vault;
* the SigV4 signature, clock skew and session token: checked here with the secret that moto
  holds for the access key (read from moto's ``/moto-api/aurora-sync/credential`` on loopback), because moto
  itself does not verify signatures unless its IAM auth mode is switched on for every service;
* which STS endpoint Vault replays the login to, and the region STS accepts there: Vault calls
  its ``sts_endpoint`` (default the global ``https://sts.amazonaws.com``), or with
  ``use_sts_region_from_client`` the regional endpoint of the signature's region; the global
  endpoint accepts only a us-east-1 scope and ``sts.<region>.amazonaws.com`` only its own, and
  anything else answers ``SignatureDoesNotMatch: Credential should be scoped to a valid region,
  not '<region>'.`` as STS does. A proxy or VPC endpoint as ``sts_endpoint`` stands for
  ``sts_region``'s STS. The signed ``Host`` must name that same endpoint (Vault forwards the
  client's Host unchanged, and STS routes on it): stricter than an STS fronted by a transparent
  proxy might be, never more lenient than STS itself;
* the caller ARN: from moto's real ``GetCallerIdentity`` answer to the replayed request;
* not checked: expiry of assumed-role credentials (moto does not expose it) and
  ``resolve_aws_unique_ids`` (roles bind by ARN only).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..component import write_json_atomic
from . import sigv4

SERVER_ID_HEADER = "X-Vault-AWS-IAM-Server-ID"
STS_BODY = "Action=GetCallerIdentity&Version=2011-06-15"
STS_HOST = re.compile(r"^sts(\.[a-z0-9-]+)?\.amazonaws\.com(\.cn)?$")
GLOBAL_STS_ENDPOINT = "https://sts.amazonaws.com"
GLOBAL_STS_REGION = "us-east-1"
# Vault's default allow-list for headers in the signed request (path_config_client.go).
ALLOWED_HEADERS = frozenset(
    h.lower()
    for h in (
        "Authorization",
        "Content-Type",
        "Content-Length",
        "Host",
        "User-Agent",
        "X-Amz-Date",
        "X-Amz-Content-Sha256",
        "X-Amz-Security-Token",
        "X-Amz-User-Agent",
        "Accept-Encoding",
        SERVER_ID_HEADER,
    )
)
CLIENT_CONFIG_FIELDS = (
    "iam_server_id_header_value",
    "sts_endpoint",
    "sts_region",
    "use_sts_region_from_client",
    "iam_endpoint",
    "endpoint",
    "max_retries",
    "allowed_sts_header_values",
    "access_key",
)
_STS_NS = {"sts": "https://sts.amazonaws.com/doc/2011-06-15/"}


class AuthMethodError(Exception):
    """A request the auth method refuses; ``status`` and ``message`` are what Vault answers."""

    def __init__(self, message: str, status: int = 400) -> None:
        self.status = status
        super().__init__(message)


def parse_duration(value: Any, field: str) -> int:
    """Vault accepts integer seconds or Go-like duration strings ("90s", "15m", "1h")."""
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise AuthMethodError(f"invalid duration for {field}: {value!r}")
    if isinstance(value, int | float):
        return int(value)
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    total = 0.0
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    pos = 0
    for match in re.finditer(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text):
        if match.start() != pos:
            break
        total += float(match[1]) * units[match[2]]
        pos = match.end()
    if pos != len(text) or not text:
        raise AuthMethodError(f"invalid duration for {field}: {value!r}")
    return int(total)


def _string_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(value, list):
        return [str(item).strip() for item in value if str(item).strip()]
    raise AuthMethodError(f"expected a list or comma-separated string, got {type(value).__name__}")


@dataclass(frozen=True)
class Caller:
    arn: str
    user_id: str
    account: str

    @property
    def entity(self) -> tuple[str, str, str, str]:
        """(partition, account, type, friendly name), as Vault's parseIamArn."""
        parts = self.arn.split(":")
        if len(parts) != 6 or parts[0] != "arn" or parts[2] not in ("iam", "sts"):
            raise AuthMethodError(f'error parsing arn "{self.arn}": unrecognized arn')
        path = parts[5].split("/")
        if len(path) < 2:
            raise AuthMethodError(f'error parsing arn "{self.arn}": fewer than 2 slash-separated parts')
        kind = path[0]
        name = path[1] if kind == "assumed-role" else path[-1]
        if kind not in ("assumed-role", "user", "role", "instance-profile"):
            raise AuthMethodError(f'error parsing arn "{self.arn}": unrecognized principal type: "{kind}"')
        return parts[1], parts[4], kind, name

    @property
    def canonical_arn(self) -> str:
        """``assumed-role/NAME/SESSION`` becomes ``role/NAME``, as Vault binds roles, not sessions."""
        partition, account, kind, name = self.entity
        kind = "role" if kind == "assumed-role" else kind
        return f"arn:{partition}:iam::{account}:{kind}/{name}"


class AwsAuthMethod:
    """Configuration store plus the IAM login check. Thread-safe; persisted on every change."""

    def __init__(self, state_file: Path, aws_endpoint: str, timeout_s: float = 5.0) -> None:
        self.state_file = state_file
        self.aws_endpoint = aws_endpoint.rstrip("/")
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._state: dict[str, Any] = {"config_client": {}, "roles": {}}
        if state_file.exists():
            loaded = json.loads(state_file.read_text())
            self._state.update({k: loaded.get(k, v) for k, v in self._state.items()})

    def _save(self) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.state_file, self._state)

    # --- configuration (Vault API: auth/aws/config/client, auth/aws/role/<name>) ---------------
    def read_client_config(self) -> dict[str, Any]:
        with self._lock:
            return {k: v for k, v in self._state["config_client"].items() if k != "secret_key"}

    def write_client_config(self, body: Mapping[str, Any]) -> list[str]:
        unknown = sorted(set(body) - set(CLIENT_CONFIG_FIELDS) - {"secret_key"})
        with self._lock:
            config = dict(self._state["config_client"])
            for field in CLIENT_CONFIG_FIELDS:
                if field in body:
                    config[field] = (
                        _string_list(body[field]) if field == "allowed_sts_header_values" else body[field]
                    )
            self._state["config_client"] = config
            self._save()
        return [f"Endpoint ignored these unrecognized parameters: {unknown}"] if unknown else []

    def delete_client_config(self) -> None:
        with self._lock:
            self._state["config_client"] = {}
            self._save()

    def list_roles(self) -> list[str]:
        with self._lock:
            return sorted(self._state["roles"])

    def read_role(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            role = self._state["roles"].get(name.lower())
        if role is None:
            return None
        return {
            **role,
            "policies": role["token_policies"],
            "ttl": role["token_ttl"],
            "max_ttl": role["token_max_ttl"],
        }

    def write_role(self, name: str, body: Mapping[str, Any]) -> list[str]:
        known = {
            "role",
            "auth_type",
            "bound_iam_principal_arn",
            "token_policies",
            "policies",
            "token_ttl",
            "ttl",
            "token_max_ttl",
            "max_ttl",
            "resolve_aws_unique_ids",
        }
        key = name.lower()
        with self._lock:
            existing = self._state["roles"].get(key)
            role: dict[str, Any] = (
                dict(existing)
                if existing
                else {
                    "auth_type": "iam",
                    "bound_iam_principal_arn": [],
                    "token_policies": [],
                    "token_ttl": 0,
                    "token_max_ttl": 0,
                    "resolve_aws_unique_ids": False,
                    "role_id": str(uuid.uuid4()),
                }
            )
            auth_type = body.get("auth_type", role["auth_type"])
            if auth_type != "iam":
                raise AuthMethodError(
                    f'auth_type {auth_type!r} is not supported by the local aws auth gateway (only "iam")'
                )
            role["auth_type"] = auth_type
            if "bound_iam_principal_arn" in body:
                role["bound_iam_principal_arn"] = _string_list(body["bound_iam_principal_arn"])
            for field, alias in (("token_policies", "policies"),):
                if field in body or alias in body:
                    role[field] = _string_list(body.get(field, body.get(alias)))
            for field, alias in (("token_ttl", "ttl"), ("token_max_ttl", "max_ttl")):
                if field in body or alias in body:
                    role[field] = parse_duration(body.get(field, body.get(alias)), field)
            if body.get("resolve_aws_unique_ids") not in (None, False, "false"):
                raise AuthMethodError("resolve_aws_unique_ids is not supported by the local aws auth gateway")
            if not role["bound_iam_principal_arn"]:
                raise AuthMethodError("at least one bound parameter should be specified on the role")
            if role["token_max_ttl"] and role["token_ttl"] > role["token_max_ttl"]:
                raise AuthMethodError("ttl should be shorter than max ttl")
            self._state["roles"][key] = role
            self._save()
        unknown = sorted(set(body) - known)
        return [f"Endpoint ignored these unrecognized parameters: {unknown}"] if unknown else []

    def delete_role(self, name: str) -> None:
        with self._lock:
            self._state["roles"].pop(name.lower(), None)
            self._save()

    # --- login ---------------------------------------------------------------------------------
    def login(self, body: Mapping[str, Any]) -> tuple[dict[str, Any], Caller]:
        """Check an IAM login; return (role, caller). Raises AuthMethodError like Vault would."""
        method = body.get("iam_http_request_method") or ""
        if not method:
            raise AuthMethodError("missing iam_http_request_method")
        if method != "POST":
            raise AuthMethodError("invalid iam_http_request_method; currently only 'POST' is supported")
        url = _b64(body, "iam_request_url")
        request_body = _b64(body, "iam_request_body")
        headers = _headers(body.get("iam_request_headers"))
        parsed = urlsplit(url)
        if (
            parsed.scheme != "https"
            or not STS_HOST.match(parsed.hostname or "")
            or parsed.path not in ("", "/")
        ):
            raise AuthMethodError(
                f"iam_request_url {url!r} is not an STS endpoint (expected https://sts[.<region>].amazonaws.com/)"
            )
        if not _is_get_caller_identity(request_body) or parsed.query:
            raise AuthMethodError("iam request body is invalid")

        config = self.read_client_config()
        allowed = ALLOWED_HEADERS | {h.lower() for h in config.get("allowed_sts_header_values", [])}
        for name in headers:
            if name.lower() not in allowed:
                raise AuthMethodError(f"invalid request header: {name}")
        required = config.get("iam_server_id_header_value")
        if required:
            _check_server_id(headers, required)

        _check_sts_endpoint(config, url, headers)
        caller = self._verify_with_sts(url, headers, request_body.encode())
        role_name = str(body.get("role") or caller.entity[3]).lower()
        with self._lock:
            role = self._state["roles"].get(role_name)
        if role is None:
            raise AuthMethodError(f"entry for role {role_name} not found")
        if role["auth_type"] != "iam":
            raise AuthMethodError(f"auth method iam not allowed for role {role_name}")
        bound = role["bound_iam_principal_arn"]
        canonical = caller.canonical_arn
        if canonical not in bound and not any(b.endswith("*") and fnmatchcase(canonical, b) for b in bound):
            raise AuthMethodError(f'IAM Principal "{caller.arn}" does not belong to the role "{role_name}"')
        return {**role, "name": role_name}, caller

    def _verify_with_sts(self, url: str, headers: dict[str, str], body: bytes) -> Caller:
        authz = sigv4.header_lookup(headers, "Authorization") or ""
        try:
            auth = sigv4.parse_authorization(authz)
        except sigv4.SignatureError as exc:
            raise AuthMethodError(_sts_error(403, exc.code, str(exc))) from None
        if auth.service != "sts":
            raise AuthMethodError(
                _sts_error(403, "SignatureDoesNotMatch", "Credential should be scoped to service sts.")
            )
        secret, session_token = self._moto_secret(auth.access_key_id)
        if secret is None:
            raise AuthMethodError(
                _sts_error(
                    403, "InvalidClientTokenId", "The security token included in the request is invalid."
                )
            )
        if (
            session_token is not None
            and sigv4.header_lookup(headers, "X-Amz-Security-Token") != session_token
        ):
            raise AuthMethodError(
                _sts_error(
                    403, "InvalidClientTokenId", "The security token included in the request is invalid."
                )
            )
        try:
            sigv4.verify("POST", url, headers, body, secret_key=secret)
        except sigv4.SignatureError as exc:
            raise AuthMethodError(_sts_error(403, exc.code, str(exc))) from None

        # Replay the signed request itself: the caller identity comes from moto's STS, not from us.
        request = urllib.request.Request(  # noqa: S310 - loopback moto
            f"{self.aws_endpoint}/",
            data=body,
            method="POST",
            headers={k: v for k, v in headers.items() if k.lower() != "content-length"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310 - loopback
                xml = response.read().decode()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise AuthMethodError(
                f"error making upstream request: received error code {exc.code} from STS: {detail}"
            ) from None
        except OSError as exc:
            raise AuthMethodError(
                f"error making upstream request: STS at {self.aws_endpoint} is unreachable: {exc}"
            ) from None
        try:
            # moto on loopback, started by this stack: not untrusted input.
            result = ET.fromstring(xml).find("sts:GetCallerIdentityResult", _STS_NS)  # noqa: S314
            assert result is not None
            return Caller(
                arn=result.findtext("sts:Arn", "", _STS_NS),
                user_id=result.findtext("sts:UserId", "", _STS_NS),
                account=result.findtext("sts:Account", "", _STS_NS),
            )
        except (ET.ParseError, AssertionError):
            raise AuthMethodError("error making upstream request: error parsing STS response") from None

    def _moto_secret(self, access_key_id: str) -> tuple[str | None, str | None]:
        """(secret key, session token or None) that moto issued for this access key id."""
        query = urllib.parse.urlencode({"access_key_id": access_key_id})
        url = f"{self.aws_endpoint}/moto-api/aurora-sync/credential?{query}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as response:  # noqa: S310 - loopback moto
                found = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None, None
            raise
        return found.get("secret_access_key"), found.get("session_token")


def _b64(body: Mapping[str, Any], field: str) -> str:
    raw = body.get(field)
    if not raw:
        raise AuthMethodError(f"missing {field}")
    try:
        return base64.b64decode(str(raw), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise AuthMethodError(f"failed to base64 decode {field}") from None


def _headers(raw: Any) -> dict[str, str]:
    """Vault accepts base64 JSON or a JSON object; values may be lists (hvac sends lists)."""
    if not raw:
        raise AuthMethodError("missing iam_request_headers")
    if isinstance(raw, str):
        try:
            raw = json.loads(base64.b64decode(raw, validate=True))
        except (binascii.Error, ValueError):
            raise AuthMethodError("failed to base64 decode iam_request_headers") from None
    if not isinstance(raw, dict) or not raw:
        raise AuthMethodError("missing iam_request_headers")
    return {str(k): ",".join(map(str, v)) if isinstance(v, list) else str(v) for k, v in raw.items()}


def _is_get_caller_identity(body: str) -> bool:
    # Exact match, stricter than Vault's parameter check: nothing else is ever signed by hvac or
    # the Vault CLI, and any other action must never mint a token.
    return body == STS_BODY


def _check_server_id(headers: dict[str, str], required: str) -> None:
    prefix = f"error validating {SERVER_ID_HEADER} header: "
    provided = sigv4.header_lookup(headers, SERVER_ID_HEADER)
    if not provided:
        raise AuthMethodError(prefix + f'missing header "{SERVER_ID_HEADER}"')
    if provided != required:
        raise AuthMethodError(prefix + f'expected "{required}" but got "{provided}"')
    authz = sigv4.header_lookup(headers, "Authorization")
    if not authz:
        raise AuthMethodError(prefix + "missing Authorization header")
    match = re.search(r"SignedHeaders=([^,]+)", authz)
    if not match or SERVER_ID_HEADER.lower() not in match[1].split(";"):
        raise AuthMethodError(prefix + "vault header wasn't signed")


def _regional_host(region: str) -> str:
    return f"sts.{region}.amazonaws.com" + (".cn" if region.startswith("cn-") else "")


def sts_target(config: Mapping[str, Any], signed_region: str) -> tuple[str, str, str]:
    """(endpoint, host STS answers as, region it accepts) for a login, as Vault chooses it."""
    if config.get("use_sts_region_from_client"):
        host = _regional_host(signed_region)
        return f"https://{host}", host, signed_region
    endpoint = str(config.get("sts_endpoint") or GLOBAL_STS_ENDPOINT).rstrip("/")
    host = urlsplit(endpoint).hostname or ""
    if host == "sts.amazonaws.com":
        return endpoint, host, GLOBAL_STS_REGION
    regional = re.fullmatch(r"sts\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?", host)
    if regional:
        return endpoint, host, regional[1]
    # A proxy or VPC endpoint: it forwards to the STS of sts_region (Vault's documented pairing).
    region = str(config.get("sts_region") or GLOBAL_STS_REGION)
    return endpoint, _regional_host(region), region


def _check_sts_endpoint(config: Mapping[str, Any], url: str, headers: dict[str, str]) -> None:
    """Refuse what STS itself would refuse at the endpoint Vault sends the login to."""
    try:
        signed = sigv4.parse_authorization(sigv4.header_lookup(headers, "Authorization") or "")
    except sigv4.SignatureError as exc:
        raise AuthMethodError(_sts_error(403, exc.code, str(exc))) from None
    endpoint, host, region = sts_target(config, signed.region)
    if signed.region != region:
        raise AuthMethodError(
            _sts_error(
                403,
                "SignatureDoesNotMatch",
                f"Credential should be scoped to a valid region, not '{signed.region}'. ",
            )
        )
    sent_host = sigv4.header_lookup(headers, "Host") or urlsplit(url).hostname or ""
    if sent_host.lower() != host:
        raise AuthMethodError(
            f"error making upstream request: the signed request names {sent_host} but Vault sends it to "
            f"{endpoint} (auth/aws/config/client sts_endpoint), whose STS is {host}"
        )


def _sts_error(status: int, code: str, message: str) -> str:
    return f"error making upstream request: received error code {status} from STS: {code}: {message}"
