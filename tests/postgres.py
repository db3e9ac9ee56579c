"""A throwaway PostgreSQL server for tests: started from the server binaries, on a free
loopback port, in a temporary folder; stopped and removed at the end.

Used through the fixtures in `tests/conftest.py`: `postgres_server` (one per session),
`postgres_credentials` (a fresh, empty database per test, as a dlt connection string) and
`postgres_destination` (a dlt `postgres` destination on that database).

The binaries come from Debian's `postgresql` package (`/usr/lib/postgresql/<v>/bin`), or
from `$PG_BIN`, `pg_config --bindir` or `PATH`. Without them the tests that need a server
are skipped with the reason, unless `MEETING_ELT_REQUIRE_POSTGRES=1` (CI sets it), where
they fail. `initdb` refuses to run as root: as root, the server runs as the `postgres`
user (Debian's package creates it), else as `nobody`.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

REQUIRE_ENV = "MEETING_ELT_REQUIRE_POSTGRES"
SUPERUSER = "postgres"
START_TIMEOUT_SECONDS = 60
# durability off: a test server is thrown away, and this makes it several times faster
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "50",
    "shared_buffers": "32MB",
    "timezone": "UTC",
}


class PostgresUnavailable(RuntimeError):
    """No server binaries here: the caller skips (or fails, when a server is required)."""


def find_bin_dir() -> Path:
    """The folder with `initdb`, `pg_ctl` and `postgres`, newest version first."""
    candidates: list[str] = []
    if os.environ.get("PG_BIN"):
        candidates.append(os.environ["PG_BIN"])
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        candidates.append(subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                                         check=True).stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                         key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
                         reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for folder in candidates:
        if folder and all((Path(folder) / tool).exists() for tool in ("initdb", "pg_ctl", "postgres")):
            return Path(folder)
    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: install them "
        "(`apt-get install -y postgresql`) or set PG_BIN")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_as() -> str | None:
    """The unprivileged user to run the server as when we are root; None otherwise."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise PostgresUnavailable("running as root and neither a 'postgres' nor a 'nobody' user exists "
                              "to run the server as (initdb refuses root)")


class PostgresServer:
    """One server in a temporary folder. `start()`, `create_database()`, `stop()`."""

    def __init__(self, bin_dir: Path | None = None) -> None:
        self.bin_dir = bin_dir or find_bin_dir()
        self.user = _run_as()
        self.root = Path(tempfile.mkdtemp(prefix="meeting-elt-pg-"))
        self.data_dir = self.root / "data"
        self.log_file = self.root / "server.log"
        self.port = 0
        self._names = itertools.count(1)
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    def _cmd(self, tool: str, *args: str) -> list[str]:
        command = [str(self.bin_dir / tool), *args]
        return ["runuser", "-u", self.user, "--", *command] if self.user else command

    def _check(self, *command: str, timeout: float = START_TIMEOUT_SECONDS) -> None:
        done = subprocess.run(self._cmd(*command), capture_output=True, text=True, timeout=timeout,
                              cwd=self.root)
        if done.returncode != 0:
            log = self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
            raise RuntimeError(f"{command[0]} failed ({done.returncode}): {done.stderr.strip()}\n{log}")

    def start(self) -> PostgresServer:
        self._check("initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust",
                    "--encoding=UTF8", "--locale=C", "--no-sync")
        options = " ".join(f"-c {k}={v}" for k, v in SERVER_SETTINGS.items())
        for attempt in range(3):  # a port taken between free_port() and the bind: try another
            self.port = free_port()
            try:
                self._check("pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file), "-w",
                            "-t", str(START_TIMEOUT_SECONDS), "-o",
                            f"-p {self.port} -k {self.root} {options}", "start")
                return self
            except RuntimeError:
                if attempt == 2:
                    raise
        return self

    def stop(self) -> None:
        if self.data_dir.exists():
            subprocess.run(self._cmd("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w",
                                     "stop"), capture_output=True, timeout=START_TIMEOUT_SECONDS,
                           cwd=self.root)
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        """A connection string (trust auth on loopback: the password is a placeholder)."""
        return f"postgresql://{SUPERUSER}:test@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its name."""
        import psycopg2

        name = name or f"test_{next(self._names)}"
        connection = psycopg2.connect(self.url())
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return name

    def drop_database(self, name: str) -> None:
        import psycopg2

        connection = psycopg2.connect(self.url())
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            connection.close()


def required() -> bool:
    return os.environ.get(REQUIRE_ENV, "").strip() not in ("", "0", "false")
