"""A CA bundle given as PEM text or as a file path, turned into the file path TLS clients need.

Both private CAs the product must trust arrive this way: the Aurora secret's ``sslrootcert``
(libpq wants a file) and ``VAULT_CA_CERT`` (requests wants a file). PEM text lets an operator
keep the bundle in a secret or a stack parameter instead of rebuilding the package.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def ca_bundle_path(value: str) -> str:
    """``value`` itself when it is a path; else a file in the temp dir holding the PEM text."""
    if "-----BEGIN" not in value:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:16]
    # Named by content so warm invocations reuse the file and concurrent writers agree on it.
    path = Path(tempfile.gettempdir()) / f"aurora-sync-ca-{digest}.pem"
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(value)
        tmp.replace(path)
    return str(path)
