"""What every part of the local stack provides to the orchestrator (``stack.py``)."""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

ACCOUNT_ID = "123456789012"  # moto's default account
REGION = "us-east-1"
# Static credentials for the operator/admin side of moto; the handlers use role credentials
# from STS AssumeRole instead, so Vault's IAM login sees an assumed-role ARN as on Lambda.
ADMIN_ACCESS_KEY_ID = "AKIALOCALSTACKADMIN0"
ADMIN_SECRET_ACCESS_KEY = "local-admin-secret-not-a-real-key"  # noqa: S105 - local emulator only


@dataclass(frozen=True)
class Ports:
    postgres: int
    aws: int
    snowflake: int
    openbao: int
    vault: int
    # The same gateway over TLS, with a certificate from the stack's own CA (vault/tls.py).
    vault_tls: int

    @classmethod
    def from_base(cls, base: int) -> Ports:
        return cls(
            postgres=base,
            aws=base + 1,
            snowflake=base + 2,
            openbao=base + 3,
            vault=base + 4,
            vault_tls=base + 5,
        )


@dataclass(frozen=True)
class StackSettings:
    """Where the stack keeps its state and which loopback ports it listens on."""

    root: Path
    ports: Ports
    host: str = "127.0.0.1"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    @property
    def state_file(self) -> Path:
        """Connection details written by ``up`` and read by ``status``/tests/CLI."""
        return self.root / "stack.json"

    @property
    def aws_endpoint(self) -> str:
        return f"http://{self.host}:{self.ports.aws}"

    def admin_aws_env(self) -> dict[str, str]:
        """Environment for boto3 clients of the stack's own tooling (not the handlers)."""
        return {
            "AWS_ENDPOINT_URL": self.aws_endpoint,
            "AWS_ACCESS_KEY_ID": ADMIN_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": ADMIN_SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }


@dataclass
class LaunchSpec:
    """A long-running process the orchestrator starts detached and stops by pid."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    run_as: str | None = None  # OS user to drop to when started as root (PostgreSQL refuses root)


class Component(Protocol):
    """One part of the stack. ``requires`` names components that must be up first."""

    name: str
    requires: tuple[str, ...]

    def missing_prerequisites(self) -> list[str]:
        """One line per missing prerequisite, naming it and how to install it."""
        ...

    def prepare(self) -> None:
        """One-time, idempotent preparation on disk (e.g. initdb). Runs before launch."""
        ...

    def launch(self) -> LaunchSpec: ...

    def is_ready(self) -> bool:
        """True once the process answers on its port (cheap; polled)."""
        ...

    def seed(self, facts: dict[str, Any]) -> None:
        """Idempotent setup through the running server (roles, buckets, secrets).

        ``facts`` is the shared status dictionary; components read what earlier components
        published and add their own section (see ``describe``).
        """
        ...

    def describe(self) -> dict[str, Any]:
        """This component's section of ``local status --json``."""
        ...


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback only
            return 200 <= response.status < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except OSError:
        return False


def write_private(path: Path, data: bytes) -> None:
    """Create a 0600 file without a window in which it is readable by others."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)
