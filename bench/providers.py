"""Forwarding cost of a hosted provider's route: chat straight to the upstream, through the
providers service (gRPC), and through the gateway (HTTP -> gateway -> gRPC -> providers -> HTTP).

An OpenAI-style upstream that answers at once (`bench/_upstream.py`, its own process) is called
three ways with the same non-streamed GPT-5 chat completion, in a closed loop at concurrency 1,
4, 16 and 64, in alternating rounds so that machine noise hits every variant alike:

- direct: the same POST on a kept-alive connection per worker, written with asyncio streams (a
  load generator must cost less than what it measures: httpx's pool, used here, spent more CPU
  than the upstream at concurrency 8 and 32 and hid it);
- providers: `Providers.Chat` over gRPC to `python -m services.providers` (real process, default
  settings, INFO logging), which makes the same upstream call with its pooled client;
- gateway: `POST /v1/chat/completions` to `python -m services.gateway` (default settings, INFO
  logging) routing `gpt-5` to that providers service, on a kept-alive connection per worker.

Processes are pinned: the gateway and the providers service on CPU 1, upstream and load
generator on CPU 0 (when the machine has two). Reported: p50 / p95 / p99 latency of each, added
p50 and p99 over direct, requests/s, and the services' CPU milliseconds per request (from /proc),
hence requests/s per core. Targets (notes/performance.md, for gateway + providers together):
added p50 <= 3 ms at concurrency 1, and >= 3x LiteLLM's 70 requests/s per core (210); the
providers service alone is held to the same.

    python -m bench providers        (BENCH_QUICK=1: fewer calls)
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from collections.abc import Awaitable, Callable

import grpc
import httpx
from imagemesh.v1 import providers_pb2, providers_pb2_grpc

from bench._mesh import QUICK, BenchMesh, cpu_seconds, machine, pin
from services.common.channels import channel_options
from tests.support.processes import ROOT

KEY = "sk-bench"
PROMPT = "Describe a red bicycle."
CONCURRENCY = (1, 4, 16, 64)
CALLS = {1: 50, 4: 80, 16: 160, 64: 320} if QUICK else {1: 150, 4: 200, 16: 320, 64: 640}
ROUNDS = 2 if QUICK else 3
VARIANTS = ("direct", "providers", "gateway")
TARGET_ADDED_MS = 3.0
TARGET_PER_CORE = 3 * 70
RESULTS = ROOT / "bench" / "results"


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
    """Kept-alive HTTP/1.1 connections, one per worker: the cheapest honest way to call a
    server (httpx's pool, for one, spent more CPU than the upstream it measured)."""

    def __init__(self, url: str, body: dict, headers: dict[str, str]) -> None:
        parsed = httpx.URL(url)
        self.host, self.port = parsed.host, parsed.port or 80
        payload = json.dumps(body).encode()
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self.request = (
            f"POST {parsed.path} HTTP/1.1\r\nHost: {self.host}\r\n{lines}"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        ).encode() + payload
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def call(self) -> None:
        if self.idle:
            try:
                await self._exchange(*self.idle.pop())
                return
            except (asyncio.IncompleteReadError, ConnectionError):
                pass  # the server closed an idle connection (keep-alive timeout): a new one
        await self._exchange(*await asyncio.open_connection(self.host, self.port))

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
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


async def _measure(mesh: BenchMesh) -> list[dict]:
    body = {"model": "gpt-5", "messages": [{"role": "user", "content": PROMPT}]}
    direct = RawClient(
        f"{mesh.upstream_base}/chat/completions", body, {"Authorization": f"Bearer {KEY}"}
    )
    through = RawClient(f"{mesh.gateway_url}/v1/chat/completions", body, {})
    request = providers_pb2.ChatRequest(model="gpt-5", prompt=PROMPT)
    services = [mesh.pid("providers"), mesh.pid("gateway")]
    async with grpc.aio.insecure_channel(mesh.target("providers"), options=channel_options()) as ch:
        stub = providers_pb2_grpc.ProvidersStub(ch)

        async def via_providers() -> None:
            await stub.Chat(request, timeout=30)

        calls = {"direct": direct.call, "providers": via_providers, "gateway": through.call}
        for call in calls.values():  # warm pools, connections, code paths
            await _closed_loop(call, 8, 200)
        rows = []
        for concurrency in CONCURRENCY:
            total = CALLS[concurrency]
            lat: dict[str, list[float]] = {name: [] for name in VARIANTS}
            rate: dict[str, list[float]] = {name: [] for name in VARIANTS}
            cpu = {"providers": [0.0, 0.0], "gateway": [0.0, 0.0]}  # [providers, gateway] s
            for round_ in range(ROUNDS):
                shift = round_ % len(VARIANTS)
                for name in VARIANTS[shift:] + VARIANTS[:shift]:
                    before = [cpu_seconds(pid) for pid in services]
                    latencies, wall = await _closed_loop(calls[name], concurrency, total)
                    if name in cpu:
                        for i, pid in enumerate(services):
                            cpu[name][i] += cpu_seconds(pid) - before[i]
                    lat[name] += latencies
                    rate[name].append(len(latencies) / wall)
            rows.append(_row(concurrency, ROUNDS * total, lat, rate, cpu))
    direct.close()
    through.close()
    return rows


def _row(
    concurrency: int,
    calls: int,
    lat: dict[str, list[float]],
    rate: dict[str, list[float]],
    cpu: dict[str, list[float]],
) -> dict:
    row: dict = {"concurrency": concurrency, "calls": calls}
    for name in VARIANTS:
        row[name] = {
            "p50_ms": round(_pct(lat[name], 0.5), 3),
            "p95_ms": round(_pct(lat[name], 0.95), 3),
            "p99_ms": round(_pct(lat[name], 0.99), 3),
            "req_per_s": round(statistics.median(rate[name]), 1),
        }
        if name != "direct":
            row[name]["added_p50_ms"] = round(row[name]["p50_ms"] - row["direct"]["p50_ms"], 3)
            row[name]["added_p99_ms"] = round(row[name]["p99_ms"] - row["direct"]["p99_ms"], 3)
    # CPU per request of the services on the route: providers alone for its own variant,
    # gateway + providers for the gateway's.
    providers_ms = cpu["providers"][0] / calls * 1000
    route_ms = (cpu["gateway"][0] + cpu["gateway"][1]) / calls * 1000
    row["providers"]["cpu_ms_per_req"] = round(providers_ms, 3)
    row["gateway"]["cpu_ms_per_req"] = round(route_ms, 3)
    row["gateway"]["gateway_cpu_ms_per_req"] = round(cpu["gateway"][1] / calls * 1000, 3)
    for name, ms in (("providers", providers_ms), ("gateway", route_ms)):
        row[name]["req_per_s_per_core"] = round(1000 / ms, 1) if ms else None
    return row


def main() -> dict:
    mesh = BenchMesh(parts=("upstream", "providers", "gateway"), upstream_key=KEY)
    with mesh:
        pin(mesh.pid("providers"), 1)
        pin(mesh.pid("gateway"), 1)
        pin(mesh.pid("upstream"), 0)
        pin(os.getpid(), 0)
        try:
            rows = asyncio.run(_measure(mesh))
        finally:
            os.sched_setaffinity(os.getpid(), range(os.cpu_count() or 1))
    first = rows[0]
    verdicts = {
        "providers_added_p50": first["providers"]["added_p50_ms"] <= TARGET_ADDED_MS,
        "gateway_added_p50": first["gateway"]["added_p50_ms"] <= TARGET_ADDED_MS,
        "providers_per_core": min(r["providers"]["req_per_s_per_core"] or 0 for r in rows)
        >= TARGET_PER_CORE,
        "gateway_per_core": min(r["gateway"]["req_per_s_per_core"] or 0 for r in rows)
        >= TARGET_PER_CORE,
    }
    _print(rows, verdicts)
    result = {
        "benchmark": "providers",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "upstream": "bench/_upstream.py: bare ASGI under uvicorn (h11), fixed answer",
        "method": f"closed loop, concurrency {CONCURRENCY}, {ROUNDS} rotating rounds",
        "targets": {
            "added_p50_ms_at_concurrency_1": TARGET_ADDED_MS,
            "req_per_s_per_core": TARGET_PER_CORE,
        },
        "met": verdicts,
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "providers.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")
    return result


def _print(rows: list[dict], verdicts: dict[str, bool]) -> None:
    print(
        f"{'conc':>4} {'variant':<9} {'p50 ms':>7} {'p99 ms':>7} {'+p50 ms':>8} {'+p99 ms':>8} "
        f"{'req/s':>6} {'cpu ms/req':>10} {'req/s/core':>10}"
    )
    for r in rows:
        for name in VARIANTS:
            c = r[name]
            added = (
                f"{c['added_p50_ms']:>8.2f} {c['added_p99_ms']:>8.2f}"
                if "added_p50_ms" in c
                else f"{'':>8} {'':>8}"
            )
            cpu = (
                f"{c['cpu_ms_per_req']:>10.2f} {c['req_per_s_per_core'] or 0:>10.0f}"
                if "cpu_ms_per_req" in c
                else ""
            )
            print(
                f"{r['concurrency']:>4} {name:<9} {c['p50_ms']:>7.2f} {c['p99_ms']:>7.2f} "
                f"{added} {c['req_per_s']:>6.0f} {cpu}"
            )
    print("cpu ms/req: the providers service (providers), gateway + providers (gateway)")
    verdict = {True: "MET", False: "NOT MET"}
    print(
        f"target: added p50 <= {TARGET_ADDED_MS} ms at concurrency 1: "
        f"gateway route {verdict[verdicts['gateway_added_p50']]}, "
        f"providers alone {verdict[verdicts['providers_added_p50']]}"
    )
    print(
        f"target: >= {TARGET_PER_CORE} req/s per core (3x LiteLLM): "
        f"gateway route {verdict[verdicts['gateway_per_core']]}, "
        f"providers alone {verdict[verdicts['providers_per_core']]}"
    )


if __name__ == "__main__":
    main()
