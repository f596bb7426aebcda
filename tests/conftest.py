"""Fixtures shared by every test: the real S3 server and the whole mesh on top of it, each started
once per session (the integration and the reliability suites share one mesh)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.mesh import Mesh, start_mesh
from tests.support.ports import free_port
from tests.support.postgres import PostgresServer
from tests.support.processes import ROOT, ServiceProcess, port_open

# Fake hosted providers (OpenAI, DashScope, LiblibAI): session fixtures `openai_fake`,
# `dashscope_fake`, `liblib_fake`, `provider_fakes`.
pytest_plugins = ["tests.fakes.fixtures"]

# Before any test loads torch: the in-process model servers of the tests get the OpenMP wait
# policy the model servers set for themselves (services/qwen_image/__main__.py), so spinning
# OpenMP threads do not slow the suite down on a busy machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@dataclass
class S3Server:
    process: ServiceProcess
    host: str
    port: int
    data_dir: Path
    access_key: str = "imagemesh"
    secret_key: str = "imagemesh-secret"

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    def env(self) -> dict[str, str]:
        """The storage service's settings for this server."""
        return {
            "STORAGE_S3_ENDPOINT": self.endpoint,
            "STORAGE_ACCESS_KEY": self.access_key,
            "STORAGE_SECRET_KEY": self.secret_key,
        }

    def restart(self) -> None:
        """Back on the same endpoint over the same data folder, as the supervisor brings it back."""
        self.process = start_s3(self.process.name, self.port, self.data_dir).process

    def stop(self) -> None:
        """Stopped, and its objects gone with its data folder."""
        self.process.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def start_s3(name: str = "s3", port: int | None = None, data_dir: Path | None = None) -> S3Server:
    """Starts the embedded S3 server (scripts/s3_server.py) with its objects in `data_dir` (a new
    temporary folder when not given); `port` and `data_dir` of a stopped one bring it back."""
    host, port = "127.0.0.1", port or free_port()
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix=f"imagemesh-test-{name}-"))
    process = ServiceProcess(
        name,
        [
            sys.executable,
            str(ROOT / "scripts" / "s3_server.py"),
            "--host",
            host,
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
        ready=lambda: port_open(host, port),
        ready_timeout=30,
    ).start()
    return S3Server(process, host, port, data_dir)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A real S3 server on loopback (MinIO if installed, else SeaweedFS): objects on disk,
    signatures checked."""
    server = start_s3()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server (Debian's binaries, `make postgres`) in a temp folder on loopback."""
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mesh(s3_server: S3Server) -> Iterator[Mesh]:
    """Storage, both model servers, providers and the gateway as processes (tests/support/mesh.py)."""
    mesh = start_mesh(s3_server.env(), s3_server.endpoint)
    yield mesh
    mesh.stop()
