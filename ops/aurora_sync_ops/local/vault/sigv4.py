"""Verification of an AWS Signature Version 4 ``Authorization`` header, as STS does it.

moto (5.2, server mode, default settings) answers ``sts:GetCallerIdentity`` from the access key
id alone and never checks the signature, so the gateway checks it itself before trusting the
caller identity. Reference: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, quote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"
# STS rejects requests whose X-Amz-Date is further than this from its clock.
MAX_CLOCK_SKEW = timedelta(minutes=15)

_AUTHZ = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+)\s*,\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+)\s*,\s*Signature=(?P<signature>[0-9a-f]{64})\s*$"
)


class SignatureError(Exception):
    """The request is not validly signed; ``code`` is the STS error code."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


@dataclass(frozen=True)
class Authorization:
    access_key_id: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


def parse_authorization(value: str) -> Authorization:
    match = _AUTHZ.match(value.strip())
    if not match:
        raise SignatureError(
            "IncompleteSignature", "Authorization header is not a valid AWS4-HMAC-SHA256 header."
        )
    parts = match["credential"].split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise SignatureError("IncompleteSignature", "Credential must have five slash-separated parts.")
    return Authorization(
        access_key_id=parts[0],
        date=parts[1],
        region=parts[2],
        service=parts[3],
        signed_headers=tuple(match["signed"].split(";")),
        signature=match["signature"],
    )


def header_lookup(headers: dict[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def _canonical_query(query: str) -> str:
    pairs = sorted(
        (quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in parse_qsl(query, keep_blank_values=True)
    )
    return "&".join(f"{k}={v}" for k, v in pairs)


def canonical_request(
    method: str, url: str, headers: dict[str, str], body: bytes, signed: tuple[str, ...]
) -> str:
    parts = urlsplit(url)
    lines = []
    for name in signed:
        value = header_lookup(headers, name)
        if value is None:
            raise SignatureError("SignatureDoesNotMatch", f"Signed header {name!r} is not in the request.")
        lines.append(f"{name}:{' '.join(value.split())}\n")
    return "\n".join(
        [
            method,
            quote(parts.path or "/", safe="/-_.~"),
            _canonical_query(parts.query),
            "".join(lines),
            ";".join(signed),
            hashlib.sha256(body).hexdigest(),
        ]
    )


def _signing_key(secret_key: str, auth: Authorization) -> bytes:
    key = f"AWS4{secret_key}".encode()
    for part in (auth.date, auth.region, auth.service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def verify(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    *,
    secret_key: str,
    now: datetime | None = None,
) -> Authorization:
    """Raise :class:`SignatureError` unless ``headers['Authorization']`` signs this request."""
    authz = header_lookup(headers, "Authorization")
    if not authz:
        raise SignatureError("MissingAuthenticationToken", "Request is missing Authentication Token")
    auth = parse_authorization(authz)
    amz_date = header_lookup(headers, "X-Amz-Date") or ""
    try:
        signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise SignatureError("IncompleteSignature", "X-Amz-Date header is missing or malformed.") from None
    if amz_date[:8] != auth.date:
        raise SignatureError("SignatureDoesNotMatch", "Credential date does not match X-Amz-Date.")
    now = now or datetime.now(UTC)
    if abs(now - signed_at) > MAX_CLOCK_SKEW:
        limit = now - MAX_CLOCK_SKEW if signed_at < now else now + MAX_CLOCK_SKEW
        raise SignatureError(
            "SignatureDoesNotMatch",
            f"Signature expired: {amz_date} is now {'earlier' if signed_at < now else 'later'} than "
            f"{limit:%Y%m%dT%H%M%SZ} ({now:%Y%m%dT%H%M%SZ} {'-' if signed_at < now else '+'} 15 min.)",
        )
    if "host" not in auth.signed_headers:
        raise SignatureError("SignatureDoesNotMatch", "The host header must be signed.")
    canonical = canonical_request(method, url, headers, body, auth.signed_headers)
    string_to_sign = "\n".join(
        [ALGORITHM, amz_date, auth.scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    expected = hmac.new(_signing_key(secret_key, auth), string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, auth.signature):
        raise SignatureError(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method. "
            "Consult the service documentation for details.",
        )
    return auth
