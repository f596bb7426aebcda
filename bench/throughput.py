"""Throughput under concurrency: 1, 4, 16 and 64 clients against the gateway for the local
Qwen-Image model (tiny pipeline, 256x256, 4 steps, b64_json), the model server at its default
queue (8 calls waiting behind the running one; one more is answered 429 at once).

Each level sends a fixed number of requests, split evenly over its clients; a client sends its
next request as soon as the last one ended (a closed loop; after a 429 it goes on at once, so
429s show how fast the mesh says no). Every request is counted by how it ended: success, 429,
another error status, or lost (no answer: a transport error or a timeout). Reported: successes
per second, p50 / p99 latency of the successes, p50 of the 429s. Target: none lost and nothing
but successes and 429s, at every level.

The forwarding cost of a hosted provider's route through the gateway is bench/providers.py.

    python -m bench throughput        (BENCH_QUICK=1: fewer requests)
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import httpx

from bench._mesh import QUICK, BenchMesh, percentile, save

LEVELS = {1: 4, 4: 8, 16: 32, 64: 64} if QUICK else {1: 8, 4: 16, 16: 48, 64: 128}
BODY = {
    "prompt": "a red fox in the snow",
    "size": "256x256",
    "num_inference_steps": 4,
    "response_format": "b64_json",
}


async def _level(http: httpx.AsyncClient, clients: int, total: int) -> dict[str, Any]:
    ok: list[float] = []
    busy: list[float] = []
    other: dict[str, int] = {}
    lost: list[str] = []

    async def client(count: int) -> None:
        for _ in range(count):
            start = time.perf_counter()
            try:
                answer = await http.post("/v1/images/generations", json=BODY)
            except httpx.HTTPError as exc:
                lost.append(type(exc).__name__)
                continue
            elapsed = time.perf_counter() - start
            if answer.status_code == 200 and answer.json()["data"][0]["b64_json"]:
                ok.append(elapsed)
            elif answer.status_code == 429:
                busy.append(elapsed)
            else:
                key = str(answer.status_code)
                other[key] = other.get(key, 0) + 1

    start = time.perf_counter()
    await asyncio.gather(*(client(total // clients) for _ in range(clients)))
    wall = time.perf_counter() - start
    sent = (total // clients) * clients
    return {
        "clients": clients,
        "requests": sent,
        "ok": len(ok),
        "429": len(busy),
        "other": other,
        "lost": len(lost),
        "answered": len(ok) + len(busy) + sum(other.values()),
        "ok_per_s": round(len(ok) / wall, 2),
        "ok_p50_ms": round(statistics.median(ok) * 1000, 1) if ok else None,
        "ok_p99_ms": round(percentile(ok, 0.99) * 1000, 1) if ok else None,
        "429_p50_ms": round(statistics.median(busy) * 1000, 1) if busy else None,
        "seconds": round(wall, 2),
    }


async def _run(url: str) -> list[dict[str, Any]]:
    limits = httpx.Limits(max_connections=max(LEVELS), max_keepalive_connections=max(LEVELS))
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as http:
        await http.post("/v1/images/generations", json=BODY)  # warm the pipeline
        rows = []
        for clients, total in LEVELS.items():
            rows.append(await _level(http, clients, total))
            _print_row(rows[-1])
    return rows


def main() -> dict[str, Any]:
    with BenchMesh() as mesh:
        rows = asyncio.run(_run(mesh.gateway_url))
    met = all(r["lost"] == 0 and not r["other"] and r["answered"] == r["requests"] for r in rows)
    return save(
        "throughput",
        {
            "request": "qwen-image tiny via the gateway, 256x256, 4 steps, n=1, b64_json",
            "model_server": "default settings: one job at a time, 8 waiting, more get 429",
            "target": "every request answered (none lost), only 200 or 429, at 1/4/16/64 clients",
            "met": met,
            "rows": rows,
        },
    )


def _print_row(r: dict[str, Any]) -> None:
    if r["clients"] == min(LEVELS):
        print(
            f"{'clients':>7} {'sent':>5} {'ok':>4} {'429':>4} {'other':>5} {'lost':>4} "
            f"{'ok/s':>6} {'ok p50 ms':>10} {'ok p99 ms':>10} {'429 p50 ms':>10}"
        )

    def ms(value: float | None) -> str:
        return "" if value is None else f"{value:.1f}"

    print(
        f"{r['clients']:>7} {r['requests']:>5} {r['ok']:>4} {r['429']:>4} "
        f"{sum(r['other'].values()):>5} {r['lost']:>4} {r['ok_per_s']:>6.2f} "
        f"{ms(r['ok_p50_ms']):>10} {ms(r['ok_p99_ms']):>10} {ms(r['429_p50_ms']):>10}",
        flush=True,
    )


if __name__ == "__main__":
    main()
