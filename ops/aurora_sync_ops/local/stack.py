"""Start, stop and describe the local stack.

Every process is started detached with its pid recorded under ``.local/run`` and its output
under ``.local/logs``; ``down`` stops exactly those pids (never by name), so a developer's own
PostgreSQL or other servers are never touched.
"""

from __future__ import annotations

import importlib
import json
import os
import pwd
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .component import Component, Ports, StackSettings, port_open, write_json_atomic

REPO_ROOT = Path(__file__).resolve().parents[3]
# Below the Linux ephemeral range (32768-60999), so a client socket can never hold one of our
# ports, and away from a system PostgreSQL on 5432.
DEFAULT_PORT_BASE = 25432
START_ORDER = ("aws", "postgres", "snowflake", "openbao", "vault")
READY_TIMEOUT_S = 90.0
# Section of the status that `up` writes once Snowflake is set up and the bucket wired to it.
READY_FOR_TABLES = "ready_for_tables"


class StackError(RuntimeError):
    """A problem a person can fix; the message says what and how."""


def settings_from_env(
    root: str | os.PathLike[str] | None = None, port_base: int | None = None
) -> StackSettings:
    """Flags win over environment, environment over defaults.

    ``AURORA_SYNC_LOCAL_DIR`` moves the state; ``AURORA_SYNC_PORT_BASE`` shifts all six
    ports; ``AURORA_SYNC_<PART>_PORT`` (PG, AWS, SNOWFLAKE, OPENBAO, VAULT, VAULT_TLS) moves one.
    """
    root_path = Path(root or os.environ.get("AURORA_SYNC_LOCAL_DIR") or REPO_ROOT / ".local").resolve()
    base = port_base or int(os.environ.get("AURORA_SYNC_PORT_BASE", DEFAULT_PORT_BASE))
    ports = Ports.from_base(base)
    overrides = {
        "postgres": "AURORA_SYNC_PG_PORT",
        "aws": "AURORA_SYNC_AWS_PORT",
        "snowflake": "AURORA_SYNC_SNOWFLAKE_PORT",
        "openbao": "AURORA_SYNC_OPENBAO_PORT",
        "vault": "AURORA_SYNC_VAULT_PORT",
        "vault_tls": "AURORA_SYNC_VAULT_TLS_PORT",
    }
    values = {
        name: int(os.environ[var]) if os.environ.get(var) else getattr(ports, name)
        for name, var in overrides.items()
    }
    return StackSettings(root=root_path, ports=Ports(**values))


# name -> (module under aurora_sync_ops.local, class, parts that must be up first).
# Imported lazily so `local status`/`down` stay fast and `up --only` loads only what it starts.
PARTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "aws": ("aws", "AwsComponent", ()),
    "postgres": ("postgres", "PostgresComponent", ("aws",)),
    "snowflake": ("snowflake.component", "SnowflakeComponent", ("aws",)),
    "openbao": ("vault.component", "OpenBaoComponent", ()),
    # Seeds Vault with the Aurora/Snowflake connection secrets of whatever is up before it.
    "vault": ("vault.component", "VaultGatewayComponent", ("aws", "openbao")),
}


def component(name: str, settings: StackSettings) -> Component:
    module_name, class_name, _ = PARTS[name]
    module = importlib.import_module(f"{__package__}.{module_name}")
    part: Component = getattr(module, class_name)(settings)
    return part


@dataclass
class ProcessState:
    name: str
    pid: int | None
    alive: bool
    port: int

    def as_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "alive": self.alive, "port": self.port}


class Stack:
    def __init__(self, settings: StackSettings, progress: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.progress = progress or (lambda message: None)

    # --- pids ------------------------------------------------------------------------------
    def _pid_file(self, name: str) -> Path:
        return self.settings.run_dir / f"{name}.pid"

    def _pid(self, name: str) -> int | None:
        try:
            return int(self._pid_file(name).read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    @staticmethod
    def _alive(pid: int | None) -> bool:
        if not pid:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        # A zombie still answers kill(0); treat it as gone.
        try:
            with open(f"/proc/{pid}/stat") as stat:
                return stat.read().split(") ", 1)[1][0] != "Z"
        except OSError:
            return True

    def _port_of(self, name: str) -> int:
        return int(getattr(self.settings.ports, name))

    def _ports_of(self, name: str) -> list[int]:
        """Every port the part listens on: the gateway also serves TLS on ``vault_tls``."""
        extra = [self.settings.ports.vault_tls] if name == "vault" else []
        return [self._port_of(name), *extra]

    def processes(self) -> list[ProcessState]:
        return [
            ProcessState(name, self._pid(name), self._alive(self._pid(name)), self._port_of(name))
            for name in START_ORDER
        ]

    # --- up --------------------------------------------------------------------------------
    @staticmethod
    def select(only: Iterable[str] | None) -> list[str]:
        """The parts to start, with their dependencies, in start order."""
        if not only:
            return list(START_ORDER)
        wanted: set[str] = set()

        def add(name: str) -> None:
            if name not in PARTS:
                raise StackError(f"unknown stack part {name!r}; choose from {', '.join(START_ORDER)}")
            if name not in wanted:
                wanted.add(name)
                for dep in PARTS[name][2]:
                    add(dep)

        for name in only:
            add(name.strip())
        return [name for name in START_ORDER if name in wanted]

    def up(self, only: Iterable[str] | None = None) -> dict[str, Any]:
        settings = self.settings
        for directory in (settings.root, settings.run_dir, settings.log_dir):
            directory.mkdir(parents=True, exist_ok=True)
        names = self.select(only)
        parts = {name: component(name, settings) for name in names}
        missing = [line for name in names for line in parts[name].missing_prerequisites()]
        if missing:
            raise StackError("\n".join(missing))

        facts: dict[str, Any] = self.read_facts() or {}
        facts["state_dir"] = str(settings.root)
        for name in names:
            part = parts[name]
            pid = self._pid(name)
            if self._alive(pid):
                self.progress(f"{name}: already running (pid {pid}, port {self._port_of(name)})")
            else:
                for port in self._ports_of(name):
                    if port_open(settings.host, port):
                        raise StackError(
                            f"{name}: port {port} is taken by another process; "
                            f"stop it or choose other ports (AURORA_SYNC_PORT_BASE or --port-base)"
                        )
                part.prepare()
                pid = self._spawn(name, part)
                self.progress(f"{name}: started (pid {pid}, port {self._port_of(name)})")
            self._wait_ready(name, part, pid)
            part.seed(facts)
            facts[name] = part.describe()
            write_json_atomic(settings.state_file, facts)
        if "snowflake" in names:
            # Last, on the status just written: the setup reads the stack as the CLI does.
            from .prepare import PrepareError, prepare_for_tables

            self.progress("snowflake: applying the account setup and wiring the bucket to Snowpipe")
            try:
                facts[READY_FOR_TABLES] = prepare_for_tables(settings, self.status())
            except PrepareError as exc:
                raise StackError(str(exc)) from None
            write_json_atomic(settings.state_file, facts)
        return self.status()

    def _spawn(self, name: str, part: Component) -> int:
        spec = part.launch()
        log_path = self.settings.log_dir / f"{name}.log"
        env = {**os.environ, **spec.env}
        kwargs: dict[str, Any] = {}
        if spec.run_as and os.geteuid() == 0:
            user = pwd.getpwnam(spec.run_as)
            kwargs.update(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
            env.update(HOME=user.pw_dir, USER=spec.run_as)
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                spec.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=spec.cwd,
                env=env,
                start_new_session=True,  # survives the CLI; down stops the whole group
                **kwargs,
            )
        self._pid_file(name).write_text(str(process.pid))
        return process.pid

    def _wait_ready(self, name: str, part: Component, pid: int | None) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if part.is_ready():
                return
            if not self._alive(pid):
                raise StackError(
                    f"{name} exited during start-up; see {self.settings.log_dir / (name + '.log')}"
                )
            time.sleep(0.2)
        raise StackError(
            f"{name} did not answer on port {self._port_of(name)} within {READY_TIMEOUT_S:.0f}s; "
            f"see {self.settings.log_dir / (name + '.log')}"
        )

    # --- down ------------------------------------------------------------------------------
    def down(self) -> list[str]:
        stopped = []
        for name in reversed(START_ORDER):
            pid = self._pid(name)
            if self._alive(pid):
                assert pid is not None
                self._terminate(pid)
                stopped.append(f"{name} (pid {pid})")
            self._pid_file(name).unlink(missing_ok=True)
        leftovers = [
            f"{name}:{self._port_of(name)}"
            for name in START_ORDER
            if port_open(self.settings.host, self._port_of(name))
        ]
        if leftovers:
            raise StackError(
                "still listening after stop: "
                + ", ".join(leftovers)
                + " (not started by this stack, or a child that escaped; check with `ss -ltnp`)"
            )
        if self.settings.state_file.exists():
            facts = self.read_facts() or {}
            facts["running"] = False
            write_json_atomic(self.settings.state_file, facts)
        return stopped

    def _terminate(self, pid: int) -> None:
        # The process group holds children too (uvicorn workers, postgres backends).
        for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                return
            except PermissionError:
                os.kill(pid, sig)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                if not self._alive(pid) and not self._group_alive(pid):
                    return
                time.sleep(0.1)

    @staticmethod
    def _group_alive(pgid: int) -> bool:
        """True while a non-zombie process of the group exists.

        ``killpg(pgid, 0)`` also succeeds for zombies, which linger when ``up`` ran in this same
        process (the pytest fixture): reap our own children, then look at /proc.
        """
        try:
            while os.waitpid(-pgid, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass
        for stat_path in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat_path.read_text().rsplit(") ", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
        return False

    # --- status ----------------------------------------------------------------------------
    def read_facts(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self.settings.state_file.read_text())
            return data
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def status(self) -> dict[str, Any]:
        facts = self.read_facts() or {}
        processes = self.processes()
        facts["services"] = {state.name: state.as_dict() for state in processes}
        started = [state for state in processes if state.pid]
        facts["running"] = bool(started) and all(state.alive for state in started)
        facts["state_dir"] = str(self.settings.root)
        return facts


def main_python() -> str:
    """The interpreter of this venv, for helper processes (uploader, servers)."""
    return sys.executable
