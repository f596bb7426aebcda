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

Then the same three ways with `stream: true` (`Providers.ChatStream` for the gRPC variant): the
upstream sends 20 chunks, each its own write, and every variant reads the stream to its end
(`data: [DONE]`, or the gRPC stream's end).

Processes are pinned: the gateway and the providers service on CPU 1, upstream and load
generator on CPU 0 (when the machine has two). Reported: p50 / p95 / p99 latency of each, added
p50 and p99 over direct, requests/s, and the services' CPU milliseconds per request (from /proc),
hence requests/s per core. Targets (notes/performance.md and issue 18, for gateway + providers
together): non-streamed, added p50 <= 2 ms at concurrency 1 and >= 3x LiteLLM's 70 requests/s
per core (210); streamed, added p50 <= 5 ms at concurrency 1 and >= 3x LiteLLM's 31-32 streams/s
(95). The providers service alone is held to the same.

    python -m bench providers        (BENCH_QUICK=1: fewer calls;
                                      BENCH_PROVIDERS_MODES=stream: one mode only)
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
from bench._upstream import STREAM_CHUNKS
from services.common.channels import channel_options
from tests.support.processes import ROOT

KEY = "sk-bench"
PROMPT = "Describe a red bicycle."
CONCURRENCY = (1, 4, 16, 64)
CALLS = {1: 50, 4: 80, 16: 160, 64: 320} if QUICK else {1: 150, 4: 200, 16: 320, 64: 640}
ROUNDS = 2 if QUICK else 3
VARIANTS = ("direct", "providers", "gateway")
TARGET_ADDED_MS = {"plain": 2.0, "stream": 5.0}
TARGET_PER_CORE = {"plain": 3 * 70, "stream": 95}
MODES = tuple(os.environ.get("BENCH_PROVIDERS_MODES", "plain,stream").split(","))
STREAM_END = b"\r\n0\r\n\r\n"  # the last chunk of a chunked HTTP/1.1 body
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
        self.stream = bool(body.get("stream"))
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
        if self.stream:
            body = await reader.readuntil(STREAM_END)
            if b"data: [DONE]" not in body:
                raise RuntimeError(f"stream ended without [DONE]: {body[-200:]!r}")
            self.idle.append((reader, writer))
            return
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        json.loads(await reader.readexactly(length))
        self.idle.append((reader, writer))

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


async def _measure(mesh: BenchMesh, mode: str) -> list[dict]:
    body: dict = {"model": "gpt-5", "messages": [{"role": "user", "content": PROMPT}]}
    if mode == "stream":
        body["stream"] = True
    direct = RawClient(
        f"{mesh.upstream_base}/chat/completions", body, {"Authorization": f"Bearer {KEY}"}
    )
    through = RawClient(f"{mesh.gateway_url}/v1/chat/completions", body, {})
    request = providers_pb2.ChatRequest(model="gpt-5", prompt=PROMPT)
    services = [mesh.pid("providers"), mesh.pid("gateway")]
    async with grpc.aio.insecure_channel(mesh.target("providers"), options=channel_options()) as ch:
        stub = providers_pb2_grpc.ProvidersStub(ch)

        async def via_providers() -> None:
            if mode == "stream":
                async for _ in stub.ChatStream(request, timeout=30):
                    pass
            else:
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
            rows.append({"mode": mode, **_row(concurrency, ROUNDS * total, lat, rate, cpu)})
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
            by_mode = {mode: asyncio.run(_measure(mesh, mode)) for mode in MODES}
        finally:
            os.sched_setaffinity(os.getpid(), range(os.cpu_count() or 1))
    verdicts = {}
    for mode, rows in by_mode.items():
        first = rows[0]
        added, per_core = TARGET_ADDED_MS[mode], TARGET_PER_CORE[mode]
        for name in ("providers", "gateway"):
            verdicts[f"{mode}_{name}_added_p50"] = first[name]["added_p50_ms"] <= added
            verdicts[f"{mode}_{name}_per_core"] = (
                min(r[name]["req_per_s_per_core"] or 0 for r in rows) >= per_core
            )
        _print(mode, rows, verdicts)
    result = {
        "benchmark": "providers",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "upstream": "bench/_upstream.py: bare ASGI under uvicorn (h11), fixed answer",
        "method": f"closed loop, concurrency {CONCURRENCY}, {ROUNDS} rotating rounds",
        "stream_chunks": STREAM_CHUNKS,
        "targets": {
            "added_p50_ms_at_concurrency_1": TARGET_ADDED_MS,
            "req_per_s_per_core": TARGET_PER_CORE,
        },
        "met": verdicts,
        "rows": [row for rows in by_mode.values() for row in rows],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "providers.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")
    return result


def _print(mode: str, rows: list[dict], verdicts: dict[str, bool]) -> None:
    what = f"streamed ({STREAM_CHUNKS} chunks)" if mode == "stream" else "non-streamed"
    print(f"{what} chat completions")
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
        f"target ({mode}): added p50 <= {TARGET_ADDED_MS[mode]} ms at concurrency 1: "
        f"gateway route {verdict[verdicts[f'{mode}_gateway_added_p50']]}, "
        f"providers alone {verdict[verdicts[f'{mode}_providers_added_p50']]}"
    )
    print(
        f"target ({mode}): >= {TARGET_PER_CORE[mode]} req/s per core (3x LiteLLM): "
        f"gateway route {verdict[verdicts[f'{mode}_gateway_per_core']]}, "
        f"providers alone {verdict[verdicts[f'{mode}_providers_per_core']]}"
    )


if __name__ == "__main__":
    main()
