"""A real PostgreSQL server for the test suite, on loopback, in a temporary folder.

The server binaries come from Debian's `postgresql` package (`make test` installs it when no
`pg_ctl` is found). PostgreSQL refuses to run as root, so when the suite runs as root the cluster
is created and run as the `postgres` user that the package creates. Fast but unsafe settings
(fsync off) are fine for a throwaway cluster.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from tests.support.ports import free_port
from tests.support.processes import LOG_DIR
from tests.support.waiting import wait_until


def find_bin_dir() -> Path:
    """The folder holding `initdb` and `postgres`: Debian keeps them out of PATH."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
    )
    for folder in reversed(candidates):
        if (Path(folder) / "postgres").exists():
            return Path(folder)
    initdb = shutil.which("initdb")
    if initdb:
        return Path(os.path.realpath(initdb)).parent
    raise RuntimeError(
        "PostgreSQL server binaries not found: run `make postgres` "
        "(apt-get install -y postgresql) or put initdb on PATH"
    )


def _run_as() -> str | None:
    """The user to run the server as: none when we are not root, else `postgres` (or nobody)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root and no `postgres` or `nobody` user to run PostgreSQL as")


@dataclass
class PostgresServer:
    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    user: str = "postgres"
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="imagemesh-pg-")))
    proc: subprocess.Popen[bytes] | None = None

    def url(self, database: str = "postgres", driver: str = "psycopg") -> str:
        return f"postgresql+{driver}://{self.user}@{self.host}:{self.port}/{database}"

    def conninfo(self, database: str = "postgres") -> str:
        return f"host={self.host} port={self.port} user={self.user} dbname={database}"

    def start(self) -> PostgresServer:
        bin_dir = find_bin_dir()
        run_as = _run_as()
        data = self.root / "data"
        if run_as:
            shutil.chown(self.root, user=run_as)
        subprocess.run(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", self.user, "--auth=trust",
             "--encoding=UTF8", "--no-sync"],
            check=True, capture_output=True, user=run_as,
        )  # fmt: skip
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        log = open(LOG_DIR / "postgres.log", "ab")  # noqa: SIM115 - lives as long as the server
        self.proc = subprocess.Popen(
            [str(bin_dir / "postgres"), "-D", str(data), "-p", str(self.port),
             "-c", f"listen_addresses={self.host}", "-c", f"unix_socket_directories={self.root}",
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "max_connections=200"],
            stdout=log, stderr=subprocess.STDOUT, user=run_as,
        )  # fmt: skip
        wait_until(self._ready_or_dead, 60, "postgresql")
        return self

    def _ready_or_dead(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"postgres exited with {self.proc.returncode}; see {LOG_DIR}")
        try:
            with psycopg.connect(self.conninfo(), connect_timeout=1):
                return True
        except psycopg.OperationalError:
            return False

    def create_database(self) -> str:
        """A fresh, empty database; returns its SQLAlchemy URL (async psycopg driver)."""
        name = "t_" + uuid.uuid4().hex[:16]
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            # SIGINT is PostgreSQL's "fast" shutdown: clients are disconnected, no waiting.
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)
