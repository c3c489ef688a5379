"""PostgreSQL 15 standing in for Aurora PostgreSQL, with the aws_s3 export emulation.

Layout under ``<state dir>/postgres``: ``data/`` (the cluster), ``socket/``, ``aws_s3/``
(uploader program + its ``state/``), and the generated passwords (0600, stable across runs).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .aws_s3 import UPLOADER, install
from .component import (
    ADMIN_ACCESS_KEY_ID,
    ADMIN_SECRET_ACCESS_KEY,
    REGION,
    LaunchSpec,
    StackSettings,
    port_open,
)
from .stack import REPO_ROOT, StackError

ADMIN_USER = "aurora_admin"
SYNC_ROLE = "aurora_sync"  # fixed: sql/aurora/02_sync_role.sql names it
DATABASE = "appdb"
SERVER_OS_USER = "postgres"  # PostgreSQL refuses to run as root; Debian's package creates this user
MIN_MAJOR = 15
AURORA_SQL = REPO_ROOT / "sql" / "aurora"
SYNC_ROLE_SQL = AURORA_SQL / "02_sync_role.sql"


def _bin_dir_candidates() -> list[Path]:
    # An explicit choice (a self-built or non-Debian install) is the only candidate.
    if os.environ.get("AURORA_SYNC_PG_BIN_DIR"):
        return [Path(os.environ["AURORA_SYNC_PG_BIN_DIR"])]
    found: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        result = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if result.returncode == 0 and result.stdout.strip():
            found.append(Path(result.stdout.strip()))
    root = Path("/usr/lib/postgresql")
    if root.is_dir():
        versions = sorted((p for p in root.iterdir() if p.name.isdigit()), key=lambda p: -int(p.name))
        found.extend(p / "bin" for p in versions)
    on_path = shutil.which("postgres")
    if on_path:
        found.append(Path(on_path).resolve().parent)
    return found


def _major(bin_dir: Path) -> int | None:
    try:
        out = subprocess.run(
            [str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    # "postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)"
    version = out.stdout.split(")", 1)[-1].split()[0]
    return int(version.split(".")[0]) if version[:1].isdigit() else None


def find_bin_dir() -> Path | None:
    """The newest server installation >= 15 that has initdb and postgres."""
    for candidate in _bin_dir_candidates():
        if (candidate / "initdb").exists() and (candidate / "postgres").exists():
            major = _major(candidate)
            if major is not None and major >= MIN_MAJOR:
                return candidate
    return None


class PostgresComponent:
    name = "postgres"
    requires: tuple[str, ...] = ("aws",)

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.home = settings.root / "postgres"
        self.data_dir = self.home / "data"
        self.socket_dir = self.home / "socket"
        self.emulation_dir = self.home / "aws_s3"
        self.state_dir = self.emulation_dir / "state"
        self.uploader = self.emulation_dir / "uploader.py"
        self.admin_password_file = self.home / "admin.password"
        self.sync_password_file = self.home / "sync.password"
        self.bin_dir = find_bin_dir()

    # --- who runs the server -----------------------------------------------------------------
    @property
    def as_root(self) -> bool:
        return os.geteuid() == 0

    def _server_user(self) -> pwd.struct_passwd:
        return pwd.getpwnam(SERVER_OS_USER) if self.as_root else pwd.getpwuid(os.geteuid())

    def _run_as_server(self, argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, Any] = {}
        if self.as_root:
            user = self._server_user()
            kwargs.update(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
        return subprocess.run(
            argv, input=stdin, capture_output=True, text=True, check=False, cwd=self.home, **kwargs
        )

    def _uploader_python(self) -> str | None:
        """An interpreter the server's OS user can run (the uploader needs only the stdlib).

        This venv's interpreter first; when it lives where ``postgres`` cannot reach (e.g. a
        pyenv under /root in CI), the system python3.
        """
        candidates = [sys.executable, "/usr/bin/python3", shutil.which("python3") or ""]
        for python in dict.fromkeys(c for c in candidates if c):
            try:
                check = self._run_as_server(
                    [python, "-c", "import sys; sys.exit(sys.version_info < (3, 11))"]
                )
            except OSError:  # not executable by that user (e.g. a path under /root)
                continue
            if check.returncode == 0:
                return python
        return None

    # --- Component protocol --------------------------------------------------------------------
    def missing_prerequisites(self) -> list[str]:
        if self.bin_dir is None:
            return [
                f"PostgreSQL >= {MIN_MAJOR} server binaries (initdb, postgres) were not found in "
                "AURORA_SYNC_PG_BIN_DIR, /usr/lib/postgresql/*/bin, `pg_config --bindir` or PATH: "
                "install them with "
                "`apt-get install postgresql-15` (or `apt-get install postgresql`)"
            ]
        if self.as_root:
            try:
                pwd.getpwnam(SERVER_OS_USER)
            except KeyError:
                return [
                    f"running as root, PostgreSQL needs the unprivileged OS user {SERVER_OS_USER!r}, "
                    "which does not exist: install the Debian package (`apt-get install postgresql-15` "
                    "creates it) or run the stack as a normal user"
                ]
        return []

    def _secret(self, path: Path) -> str:
        if not path.exists():
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(24))
        os.chmod(path, 0o600)
        return path.read_text().strip()

    def _check_traversable(self) -> None:
        """The server's OS user must reach the data dir through every parent directory."""
        if not self.as_root:
            return
        for parent in reversed(self.home.parents):
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                raise StackError(
                    f"postgres: the OS user {SERVER_OS_USER!r} cannot traverse {parent} (mode "
                    f"{stat.filemode(mode)}); put the state directory elsewhere (--state-dir or "
                    f"AURORA_SYNC_LOCAL_DIR) or run `chmod o+x {parent}`"
                )

    def _own(self, *paths: Path) -> None:
        if self.as_root:
            user = self._server_user()
            for path in paths:
                os.chown(path, user.pw_uid, user.pw_gid)

    def prepare(self) -> None:
        assert self.bin_dir is not None
        self.home.mkdir(parents=True, exist_ok=True)
        # Traversable by the server user; the secrets inside are 0600.
        os.chmod(self.home, 0o755)  # noqa: S103
        self._check_traversable()
        admin_password = self._secret(self.admin_password_file)
        self._secret(self.sync_password_file)
        for directory in (self.socket_dir, self.state_dir):
            directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.emulation_dir, 0o755)  # noqa: S103 - the server user runs the uploader in it
        os.chmod(self.state_dir, 0o700)
        self._own(self.socket_dir, self.state_dir)
        self._install_uploader()
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        self._own(self.data_dir)
        # A 0600 file the server user owns: not on the command line, and (unlike /dev/stdin
        # after the switch from root) readable by initdb.
        pwfile = self.home / ".initdb-password"
        pwfile.unlink(missing_ok=True)
        pwfile.touch(mode=0o600)
        pwfile.write_text(admin_password + "\n")
        self._own(pwfile)
        try:
            result = self._run_as_server(
                [
                    str(self.bin_dir / "initdb"),
                    "--pgdata",
                    str(self.data_dir),
                    "--username",
                    ADMIN_USER,
                    "--pwfile",
                    str(pwfile),
                    "--auth-local",
                    "scram-sha-256",
                    "--auth-host",
                    "scram-sha-256",
                    "--encoding",
                    "UTF8",
                    "--locale",
                    "C",
                ]
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            raise StackError(f"postgres: initdb failed: {result.stderr.strip() or result.stdout.strip()}")

    def _install_uploader(self) -> None:
        # A copy beside the data dir, because the server user may not be able to read the
        # repository (e.g. under /root); refreshed on every start so edits take effect.
        shutil.copyfile(UPLOADER, self.uploader)
        os.chmod(self.uploader, 0o644)

    def launch(self) -> LaunchSpec:
        assert self.bin_dir is not None
        return LaunchSpec(
            argv=[
                str(self.bin_dir / "postgres"),
                "-D",
                str(self.data_dir),
                "-p",
                str(self.settings.ports.postgres),
                "-c",
                f"listen_addresses={self.settings.host}",
                "-k",
                str(self.socket_dir),
                # Throwaway test data: durability buys nothing here and costs seconds per run.
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=100",
                "-c",
                "log_min_messages=warning",
                "-c",
                "log_line_prefix=%m [%p] %u@%d ",
            ],
            # What the uploader (run by COPY TO PROGRAM, a child of the server) signs S3
            # requests with. On Aurora the cluster's s3Export IAM role plays this part.
            env={
                "AWS_ENDPOINT_URL": self.settings.aws_endpoint,
                "AWS_ACCESS_KEY_ID": ADMIN_ACCESS_KEY_ID,
                "AWS_SECRET_ACCESS_KEY": ADMIN_SECRET_ACCESS_KEY,
                "AWS_SESSION_TOKEN": "",
                "AWS_REGION": REGION,
                "AWS_DEFAULT_REGION": REGION,
                "AWS_S3_EMULATION_STATE_DIR": str(self.state_dir),
                "LC_ALL": "C",
            },
            run_as=SERVER_OS_USER if self.as_root else None,
        )

    def _connect(self, database: str = "postgres", user: str = ADMIN_USER) -> Any:
        import psycopg2

        password = self._secret(self.admin_password_file if user == ADMIN_USER else self.sync_password_file)
        return psycopg2.connect(
            host=self.settings.host,
            port=self.settings.ports.postgres,
            dbname=database,
            user=user,
            password=password,
            connect_timeout=2,
            application_name="aurora-sync-local",
        )

    def is_ready(self) -> bool:
        if not port_open(self.settings.host, self.settings.ports.postgres):
            return False
        import psycopg2

        try:
            self._connect().close()
        except psycopg2.OperationalError:
            return False  # "the database system is starting up"
        return True

    def seed(self, facts: dict[str, Any]) -> None:
        from psycopg2 import sql

        python = self._uploader_python()
        if python is None:
            raise StackError(
                f"postgres: no Python >= 3.11 that the OS user {self._server_user().pw_name!r} can run "
                "was found for the aws_s3 emulation's uploader: `apt-get install python3`"
            )
        self._install_uploader()
        conn = self._connect()
        conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
                if cur.fetchone() is None:
                    cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
        finally:
            conn.close()

        conn = self._connect(DATABASE)
        try:
            with conn:  # one transaction: a half-seeded database is never left behind
                install(conn, f"{shlex.quote(python)} {shlex.quote(str(self.uploader))}", self.state_dir)
                with conn.cursor() as cur:
                    # Exactly what production runs (no psql meta-commands in the file).
                    cur.execute(SYNC_ROLE_SQL.read_text())
                    cur.execute(
                        sql.SQL("ALTER ROLE {} PASSWORD %s").format(sql.Identifier(SYNC_ROLE)),
                        (self._secret(self.sync_password_file),),
                    )
                    # LOCAL ONLY. The emulation runs COPY ... TO PROGRAM with the caller's
                    # privileges (as the real extension runs the query with them), and COPY TO
                    # PROGRAM needs this role. Aurora has no such role and needs no such grant.
                    cur.execute(
                        sql.SQL("GRANT pg_execute_server_program TO {}").format(sql.Identifier(SYNC_ROLE))
                    )
        finally:
            conn.close()

    def _dsn(self, user: str, password: str) -> str:
        return (
            f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@"
            f"{self.settings.host}:{self.settings.ports.postgres}/{DATABASE}"
        )

    def describe(self) -> dict[str, Any]:
        sync_password = self._secret(self.sync_password_file)
        return {
            "dsn": self._dsn(SYNC_ROLE, sync_password),
            "admin_dsn": self._dsn(ADMIN_USER, self._secret(self.admin_password_file)),
            "dsn_redacted": self._dsn(SYNC_ROLE, "***").replace(quote("***", safe=""), "***"),
            "host": self.settings.host,
            "port": self.settings.ports.postgres,
            "database": DATABASE,
            "user": SYNC_ROLE,
            "password": sync_password,
            "admin_user": ADMIN_USER,
            "sync_role": SYNC_ROLE,
            "bin_dir": str(self.bin_dir) if self.bin_dir else None,
            "aws_s3_state_dir": str(self.state_dir),
        }
