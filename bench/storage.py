"""Storage throughput: puts through the storage service vs the minio SDK straight to S3.

Both sides write the same objects (1 MB and 8 MB of random bytes) to the same S3 server, one put
at a time and 8 at once (closed loops on 1 and 8 threads), in alternating rounds so that machine noise hits every variant alike;
the median round is reported. Variants:

- direct, SDK defaults: `put_object(bucket, key, BytesIO(data), len(data))` as a caller would
  write it (8 MB goes up as a 2-part multipart upload);
- direct, one PUT: the same with `part_size=len(data)`, the strategy the service uses for Put;
- service Put and service PutStream (1 MB chunks), over gRPC;
- gRPC hop only: the same Put refused at validation after the service received every byte (the
  cost of carrying the bytes through the mesh, without S3).

Each variant also reports its CPU time per put (this client, the storage service and the S3
server together), the steadier figure on a shared machine.

Target (issue 18): service Put reaches at least 0.9x the puts/s of direct, for every size and
both concurrencies. Two verdicts are
printed: against the SDK used with its defaults (what a caller writing to S3 directly would get),
and against direct with the same strategy as the service (one PUT), which isolates the mesh's own
overhead (carrying the bytes through gRPC and protobuf once more).

    python -m bench storage        (or: make bench)
"""

from __future__ import annotations

import atexit
import io
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from imagemesh.v1 import storage_pb2, storage_pb2_grpc
from minio import Minio
from minio.helpers import MIN_PART_SIZE

from services.common.channels import channel_options
from services.common.memory import keep_large_buffers
from tests.support.ports import free_port
from tests.support.processes import ROOT, ServiceProcess, grpc_serving, port_open

MB = 1024 * 1024
TARGET = 0.9
CONCURRENCY = (1, 8)
BUCKET = "bench-storage"
# (object size, puts per round): about the same bytes per round for every size.
SIZES = [(1 * MB, 16), (8 * MB, 3)]
ROUNDS = 7
RESULTS = ROOT / "bench" / "results"
TICKS = os.sysconf("SC_CLK_TCK")


def _start_servers() -> tuple[ServiceProcess, ServiceProcess, str, str]:
    s3_port, storage_port = free_port(), free_port()
    # The S3 server keeps its objects on disk: in a folder of this run's, gone when it ends.
    s3_data = tempfile.mkdtemp(prefix="bench-s3-")
    atexit.register(shutil.rmtree, s3_data, True)
    s3 = ServiceProcess(
        "bench-s3",
        [
            sys.executable,
            str(ROOT / "scripts" / "s3_server.py"),
            "--port",
            str(s3_port),
            "--data-dir",
            s3_data,
        ],
        ready=lambda: port_open("127.0.0.1", s3_port),
        ready_timeout=30,
    ).start()
    endpoint, target = f"127.0.0.1:{s3_port}", f"127.0.0.1:{storage_port}"
    storage = ServiceProcess.module(
        "bench-storage",
        "services.storage",
        env={
            "STORAGE_S3_ENDPOINT": endpoint,
            "STORAGE_LISTEN": target,
            "STORAGE_METRICS_LISTEN": "",
            "STORAGE_BUCKET": BUCKET,
            "STORAGE_LOG_LEVEL": "WARNING",
        },
        ready=lambda: grpc_serving(target),
    ).start()
    return s3, storage, endpoint, target


def _variants(
    client: Minio, stub: storage_pb2_grpc.StorageStub, data: bytes
) -> dict[str, Callable[[int], None]]:
    size = len(data)

    def direct_default(i: int) -> None:
        client.put_object(BUCKET, f"direct/{size}/{i}", io.BytesIO(data), size, "image/png")

    def direct_one_put(i: int) -> None:
        client.put_object(
            BUCKET,
            f"direct/{size}/{i}",
            io.BytesIO(data),
            size,
            "image/png",
            part_size=max(size, MIN_PART_SIZE),
        )

    def service_put(i: int) -> None:
        stub.Put(storage_pb2.PutRequest(data=data, content_type="image/png", prefix="service"))

    def service_stream(i: int) -> None:
        header = storage_pb2.PutHeader(content_type="image/png", prefix="stream", size=size)
        parts = [storage_pb2.PutStreamRequest(header=header)] + [
            storage_pb2.PutStreamRequest(chunk=data[o : o + MB]) for o in range(0, size, MB)
        ]
        stub.PutStream(iter(parts))

    def grpc_hop(i: int) -> None:
        try:
            stub.Put(storage_pb2.PutRequest(data=data, content_type="bench/refused"))
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.INVALID_ARGUMENT:  # type: ignore[attr-defined]
                raise

    return {
        "direct_sdk_defaults": direct_default,
        "direct_one_put": direct_one_put,
        "service_put": service_put,
        "service_put_stream": service_stream,
        "grpc_hop_only": grpc_hop,
    }


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


class _Meter:
    """Wall time, and CPU time of this client, the storage service and the S3 server together:
    on a shared machine the CPU per put is the steadier figure (it is what throughput costs)."""

    def __init__(self, pids: list[int]) -> None:
        self._pids = pids

    def _cpu(self) -> float:
        return time.process_time() + sum(_cpu_seconds(pid) for pid in self._pids)

    def run(
        self, put: Callable[[int], None], count: int, pool: ThreadPoolExecutor | None
    ) -> tuple[float, float]:
        cpu, start = self._cpu(), time.perf_counter()
        if pool is None:
            for i in range(count):
                put(i)
        else:
            list(pool.map(put, range(count)))
        return time.perf_counter() - start, self._cpu() - cpu


def _measure(
    client: Minio,
    stub: storage_pb2_grpc.StorageStub,
    meter: _Meter,
    size: int,
    count: int,
    concurrency: int,
) -> dict:
    variants = _variants(client, stub, os.urandom(size))
    count = max(count, 2 * concurrency)
    pool = ThreadPoolExecutor(concurrency) if concurrency > 1 else None
    for put in variants.values():
        put(0)  # warm connections and the bucket
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for round_ in range(ROUNDS):
        names = list(variants)
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            runs[name].append(meter.run(variants[name], count, pool))
    if pool is not None:
        pool.shutdown()
    row: dict = {"size_mb": size // MB, "concurrency": concurrency, "puts_per_round": count}
    for name, timings in runs.items():
        wall = statistics.median(t[0] for t in timings)
        cpu = statistics.median(t[1] for t in timings)
        row[name] = {
            "puts_per_s": round(count / wall, 1),
            "mb_per_s": round(count * size / MB / wall, 1),
            "ms_per_put": round(wall / count * 1000, 2),
            "cpu_ms_per_put": round(cpu / count * 1000, 2),
        }
    service = row["service_put"]["puts_per_s"]
    row["ratio"] = round(service / row["direct_one_put"]["puts_per_s"], 3)
    row["ratio_vs_sdk_defaults"] = round(service / row["direct_sdk_defaults"]["puts_per_s"], 3)
    return row


def main() -> dict:
    # The same allocator settings as the mesh's services (services/common/memory.py), for both
    # the direct and the through-the-service variants, which share this client process.
    keep_large_buffers()
    s3, storage, endpoint, target = _start_servers()
    try:
        client = Minio(
            endpoint,
            access_key="imagemesh",
            secret_key="imagemesh-secret",
            secure=False,
            region="us-east-1",
        )
        with grpc.insecure_channel(target, options=channel_options()) as channel:
            stub = storage_pb2_grpc.StorageStub(channel)
            assert s3.proc is not None and storage.proc is not None
            meter = _Meter([s3.proc.pid, storage.proc.pid])
            rows = [
                _measure(client, stub, meter, size, count, concurrency)
                for concurrency in CONCURRENCY
                for size, count in SIZES
            ]
    finally:
        storage.stop()
        s3.stop()
    met = all(row["ratio"] >= TARGET for row in rows)
    met_defaults = all(row["ratio_vs_sdk_defaults"] >= TARGET for row in rows)
    _print(rows, met, met_defaults)
    result = {
        "benchmark": "storage",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "load_1min": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
        },
        "s3": "SeaweedFS weed mini (scripts/s3_server.py), loopback, objects on disk",
        "method": f"closed loops, concurrency {CONCURRENCY}, {ROUNDS} rotating rounds, median",
        "target": f"service Put >= {TARGET}x direct puts/s, every size and concurrency",
        "met": met,
        "met_vs_sdk_defaults": met_defaults,
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "storage.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")
    return result


def _verdict(met: bool) -> str:
    return "MET" if met else "NOT MET"


def _print(rows: list[dict], met: bool, met_defaults: bool) -> None:
    names = [
        "direct_sdk_defaults",
        "direct_one_put",
        "service_put",
        "service_put_stream",
        "grpc_hop_only",
    ]
    head = "".join(
        f" | {r['size_mb']:>1} MB x{r['concurrency']}: puts/s  MB/s ms/put cpu ms" for r in rows
    )
    print(f"{'':20}{head}")
    for name in names:
        cells = "".join(
            f" | {'':6}{r[name]['puts_per_s']:>6} {r[name]['mb_per_s']:>6} "
            f"{r[name]['ms_per_put']:>6} {r[name]['cpu_ms_per_put']:>6}"
            for r in rows
        )
        print(f"{name:20}{cells}")
    for r in rows:
        print(
            f"{r['size_mb']} MB, {r['concurrency']} at once: "
            f"service Put / direct one PUT = {r['ratio']:.2f}x "
            f"(/ SDK defaults = {r['ratio_vs_sdk_defaults']:.2f}x)"
        )
    print(f"target: service Put >= {TARGET}x direct, SDK defaults: {_verdict(met_defaults)}")
    print(f"target: service Put >= {TARGET}x direct, same strategy: {_verdict(met)}")


if __name__ == "__main__":
    main()
