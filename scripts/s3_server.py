"""Starts an S3-compatible server on loopback for `make run` and the tests.

MinIO when a `minio` binary is on PATH (data kept under --data-dir); otherwise moto's standalone
server, which speaks the S3 wire protocol (in memory: objects are lost when it stops, and it does not
check signatures). The storage service talks to either through the official `minio` SDK exactly as
to a real MinIO. Stops cleanly on SIGTERM / SIGINT.

    python scripts/s3_server.py --host 127.0.0.1 --port 9000
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import threading


def run_minio(binary: str, host: str, port: int, data_dir: str) -> int:
    os.makedirs(data_dir, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("MINIO_ROOT_USER", os.environ.get("STORAGE_ACCESS_KEY", "imagemesh"))
    env.setdefault("MINIO_ROOT_PASSWORD", os.environ.get("STORAGE_SECRET_KEY", "imagemesh-secret"))
    os.execve(binary, [binary, "server", data_dir, "--address", f"{host}:{port}"], env)
    return 1  # not reached


def run_moto(host: str, port: int) -> int:
    from moto.server import ThreadedMotoServer

    # moto logs every request through werkzeug.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    print(f"moto S3 server listening on http://{host}:{port}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--data-dir", default="run/s3-data", help="MinIO's data folder")
    parser.add_argument(
        "--backend",
        choices=["auto", "minio", "moto"],
        default="auto",
        help="auto: MinIO when its binary is on PATH, else moto",
    )
    args = parser.parse_args(argv)
    minio = shutil.which("minio")
    if args.backend == "minio" or (args.backend == "auto" and minio):
        if not minio:
            print("no minio binary on PATH", file=sys.stderr)
            return 2
        return run_minio(minio, args.host, args.port, args.data_dir)
    return run_moto(args.host, args.port)


if __name__ == "__main__":
    sys.exit(main())
