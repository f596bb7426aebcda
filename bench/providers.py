"""Forwarding cost of the providers service: chat straight to the upstream vs through gRPC.

An OpenAI-style upstream that answers at once (`bench/_upstream.py`, its own process) is called
two ways with the same non-streamed GPT-5 chat completion, in a closed loop at concurrency 1, 8
and 32, in alternating rounds so that machine noise hits both alike:

- direct: the same POST on a kept-alive connection per worker, written with asyncio streams (a
  load generator must cost less than what it measures: httpx's pool, used here, spent more CPU
  than the upstream at concurrency 8 and 32 and hid it);
- providers: `Providers.Chat` over gRPC to `python -m services.providers` (real process, default
  settings, INFO logging), which makes the same upstream call with its pooled client.

Processes are pinned: the providers service on CPU 1, upstream and load generator on CPU 0 (when
the machine has two). Reported: p50 / p95 latency of each, added p50 (providers - direct),
requests/s, and the service's CPU milliseconds per request (from /proc), hence requests/s per
core. Targets (notes/performance.md, whose budget covers gateway + providers together): added p50
<= 3 ms at concurrency 1, and >= 3x LiteLLM's 70 requests/s per core (210).

    python -m bench providers        (or: make bench)
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import httpx
from imagemesh.v1 import providers_pb2, providers_pb2_grpc

from services.common.channels import channel_options
from tests.support.ports import free_port
from tests.support.processes import ROOT, ServiceProcess, grpc_serving, port_open

KEY = "sk-bench"
PROMPT = "Describe a red bicycle."
CONCURRENCY = (1, 8, 32)
CALLS = {1: 200, 8: 400, 32: 640}  # per round
ROUNDS = 3
TARGET_ADDED_MS = 3.0
TARGET_PER_CORE = 3 * 70
RESULTS = ROOT / "bench" / "results"
TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def _pin(pid: int, cpu: int) -> None:
    if (os.cpu_count() or 1) > cpu:
        os.sched_setaffinity(pid, {cpu})


def _start() -> tuple[ServiceProcess, ServiceProcess, str, str]:
    upstream_port, target = free_port(), f"127.0.0.1:{free_port()}"
    upstream = ServiceProcess(
        "bench-upstream",
        [sys.executable, "-m", "bench._upstream", "--port", str(upstream_port), "--key", KEY],
        ready=lambda: port_open("127.0.0.1", upstream_port),
        ready_timeout=30,
    ).start()
    base = f"http://127.0.0.1:{upstream_port}/v1"
    providers = ServiceProcess.module(
        "bench-providers",
        "services.providers",
        env={
            "OPENAI_API_KEY": KEY,
            "OPENAI_BASE_URL": base,
            "PROVIDERS_LISTEN": target,
            "PROVIDERS_METRICS_LISTEN": "",
        },
        ready=lambda: grpc_serving(target),
        ready_timeout=30,
    ).start()
    return upstream, providers, base, target


async def _closed_loop(
    call: Callable[[], Awaitable[None]], concurrency: int, total: int
) -> tuple[list[float], float]:
    latencies: list[float] = []

    async def worker(count: int) -> None:
        for _ in range(count):
            start = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(worker(total // concurrency) for _ in range(concurrency)))
    return latencies, time.perf_counter() - start


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


class RawClient:
    """One kept-alive HTTP/1.1 connection per worker: the cheapest honest way to call upstream."""

    def __init__(self, base: str, body: dict) -> None:
        url = httpx.URL(base)
        self.host, self.port = url.host, url.port or 80
        payload = json.dumps(body).encode()
        self.request = (
            f"POST {url.path}/chat/completions HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        ).encode() + payload
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def call(self) -> None:
        if self.idle:
            reader, writer = self.idle.pop()
        else:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        writer.write(self.request)
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head.decode(errors="replace"))
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        json.loads(await reader.readexactly(length))
        self.idle.append((reader, writer))

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


async def _measure(base: str, target: str, providers_pid: int) -> list[dict]:
    body = {"model": "gpt-5", "messages": [{"role": "user", "content": PROMPT}]}
    request = providers_pb2.ChatRequest(model="gpt-5", prompt=PROMPT)
    raw = RawClient(base, body)
    async with grpc.aio.insecure_channel(target, options=channel_options()) as channel:
        stub = providers_pb2_grpc.ProvidersStub(channel)
        direct = raw.call

        async def via() -> None:
            await stub.Chat(request, timeout=30)

        for call in (direct, via):  # warm pools, connections, code paths
            await _closed_loop(call, 8, 200)
        rows = []
        for concurrency in CONCURRENCY:
            total = CALLS[concurrency]
            lat: dict[str, list[float]] = {"direct": [], "providers": []}
            rate: dict[str, list[float]] = {"direct": [], "providers": []}
            cpu = 0.0
            for round_ in range(ROUNDS):
                order = [("direct", direct), ("providers", via)]
                for name, call in order if round_ % 2 == 0 else order[::-1]:
                    before = _cpu_seconds(providers_pid)
                    latencies, wall = await _closed_loop(call, concurrency, total)
                    if name == "providers":
                        cpu += _cpu_seconds(providers_pid) - before
                    lat[name] += latencies
                    rate[name].append(len(latencies) / wall)
            cpu_ms = cpu / (ROUNDS * total) * 1000
            row = {"concurrency": concurrency, "calls": ROUNDS * total}
            for name in lat:
                row[name] = {
                    "p50_ms": round(_pct(lat[name], 0.5), 3),
                    "p95_ms": round(_pct(lat[name], 0.95), 3),
                    "req_per_s": round(statistics.median(rate[name]), 1),
                }
            row["added_p50_ms"] = round(row["providers"]["p50_ms"] - row["direct"]["p50_ms"], 3)
            row["providers_cpu_ms_per_req"] = round(cpu_ms, 3)
            row["providers_req_per_s_per_core"] = round(1000 / cpu_ms, 1) if cpu_ms else None
            rows.append(row)
    raw.close()
    return rows


def main() -> dict:
    upstream, providers, base, target = _start()
    try:
        assert upstream.proc is not None and providers.proc is not None
        _pin(providers.proc.pid, 1)
        _pin(upstream.proc.pid, 0)
        _pin(os.getpid(), 0)
        rows = asyncio.run(_measure(base, target, providers.proc.pid))
    finally:
        providers.stop()
        upstream.stop()
    first = rows[0]
    met_latency = first["added_p50_ms"] <= TARGET_ADDED_MS
    per_core = min(r["providers_req_per_s_per_core"] or 0 for r in rows)
    met_rate = per_core >= TARGET_PER_CORE
    _print(rows, met_latency, met_rate)
    result = {
        "benchmark": "providers",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "load_1min": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
        },
        "upstream": "bench/_upstream.py: bare ASGI under uvicorn (h11), fixed answer",
        "method": f"closed loop, concurrency {CONCURRENCY}, {ROUNDS} alternating rounds",
        "targets": {
            "added_p50_ms_at_concurrency_1": TARGET_ADDED_MS,
            "req_per_s_per_core": TARGET_PER_CORE,
        },
        "met_latency": met_latency,
        "met_rate_per_core": met_rate,
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "providers.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")
    return result


def _print(rows: list[dict], met_latency: bool, met_rate: bool) -> None:
    print(
        f"{'conc':>4} {'direct p50':>10} {'prov p50':>9} {'added p50':>9} "
        f"{'direct r/s':>10} {'prov r/s':>9} {'cpu ms/req':>10} {'r/s/core':>8}"
    )
    for r in rows:
        print(
            f"{r['concurrency']:>4} {r['direct']['p50_ms']:>10.2f} {r['providers']['p50_ms']:>9.2f} "
            f"{r['added_p50_ms']:>9.2f} {r['direct']['req_per_s']:>10.0f} "
            f"{r['providers']['req_per_s']:>9.0f} {r['providers_cpu_ms_per_req']:>10.2f} "
            f"{r['providers_req_per_s_per_core'] or 0:>8.0f}"
        )
    verdict = {True: "MET", False: "NOT MET"}
    print(f"added p50 <= {TARGET_ADDED_MS} ms at concurrency 1: {verdict[met_latency]}")
    print(f">= {TARGET_PER_CORE} req/s per core (3x LiteLLM): {verdict[met_rate]}")


if __name__ == "__main__":
    main()
