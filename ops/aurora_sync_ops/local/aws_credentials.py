"""A loopback-only endpoint of the moto host: the secret half of a credential moto issued.

The Vault gateway must verify SigV4 signatures itself (moto's STS accepts any signature), and
for that it needs the secret key and session token behind an access key id. moto's generic
``/moto-api/data.json`` dump can fail as soon as other services hold state (it serialises
every model), so the moto host answers this one narrow question from its in-process backends.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlparse

ROUTE = "{0}/moto-api/aurora-sync/credential"


def lookup(request: Any, full_url: str, headers: Any) -> tuple[int, dict[str, str], str]:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    access_key_id = (parse_qs(urlparse(full_url).query).get("access_key_id") or [""])[0]
    found: dict[str, Any] | None = None
    accounts = {DEFAULT_ACCOUNT_ID, *sts_backends.keys()}
    # Assumed-role credentials first: moto also files their access key under IAM, where the
    # session token (which the gateway must check) is not recorded.
    for account_id in accounts:
        for role in sts_backends[account_id]["global"].assumed_roles:
            if role.access_key_id == access_key_id:
                found = {"secret_access_key": role.secret_access_key, "session_token": role.session_token}
    for account_id in accounts if found is None else ():
        key = iam_backends[account_id]["global"].access_keys.get(access_key_id)
        if key is not None and key.status == "Active":
            found = {"secret_access_key": key.secret_access_key, "session_token": None}
    if found is None:
        return 404, {"Content-Type": "application/json"}, json.dumps({"error": "unknown access key id"})
    return 200, {"Content-Type": "application/json"}, json.dumps(found)


def install_credential_route() -> None:
    """Must run before the server builds its URL map."""
    from moto.moto_api._internal import urls

    urls.url_paths[ROUTE] = lookup
