"""Throughput under concurrency: 1, 4, 16 and 64 clients against the gateway for the local
Qwen-Image model (tiny pipeline, 256x256, 4 steps, b64_json), the model server at its default
queue (8 jobs waiting; one more is answered 429 at once), with dynamic batching off
(QWEN_IMAGE_MAX_BATCH_IMAGES=1: one job per pipeline call) and on (4 images per call, the CPU
default): two meshes up at once; the one client sends to each in turn, and each other level
runs against off and then at once against on, so a change in the machine's load touches both
sides alike.

Each level sends a fixed number of requests, split evenly over its clients; a client sends its
next request as soon as the last one ended (a closed loop; after a 429 it goes on at once, so
429s show how fast the mesh says no). Every request is counted by how it ended: success, 429,
another error status, or lost (no answer: a transport error or a timeout). Reported: successes
per second, p50 / p99 latency of the successes, p50 of the 429s. Targets: none lost and nothing
but successes and 429s, at every level; with batching on, successes/s at 16 clients >= 2.0x of
batching off, and p50 at 1 client (nothing to batch with) <= 1.05x of batching off.

The forwarding cost of a hosted provider's route through the gateway is bench/providers.py.

    python -m bench throughput        (BENCH_QUICK=1: fewer requests)
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench._mesh import QUICK, BenchMesh, percentile, save

# One client gets more requests: its p50 is what the batching-on / off ratio is judged on.
LEVELS = {1: 8, 4: 8, 16: 32, 64: 64} if QUICK else {1: 16, 4: 16, 16: 48, 64: 128}
BATCHING = {"off": "1", "on": "4"}  # QWEN_IMAGE_MAX_BATCH_IMAGES
SPEEDUP_TARGET = 2.0  # successes/s at 16 clients, on / off
P50_TARGET = 1.05  # p50 at 1 client, on / off
BODY = {
    "prompt": "a red fox in the snow",
    "size": "256x256",
    "num_inference_steps": 4,
    "response_format": "b64_json",
}


@dataclass
class Tally:
    """How one level's requests against one mesh ended."""

    ok: list[float] = field(default_factory=list)
    busy: list[float] = field(default_factory=list)
    other: dict[str, int] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)
    seconds: float = 0.0  # wall time the level kept this mesh busy

    async def send(self, http: httpx.AsyncClient) -> None:
        start = time.perf_counter()
        try:
            answer = await http.post("/v1/images/generations", json=BODY)
        except httpx.HTTPError as exc:
            self.lost.append(type(exc).__name__)
            return
        elapsed = time.perf_counter() - start
        if answer.status_code == 200 and answer.json()["data"][0]["b64_json"]:
            self.ok.append(elapsed)
        elif answer.status_code == 429:
            self.busy.append(elapsed)
        else:
            key = str(answer.status_code)
            self.other[key] = self.other.get(key, 0) + 1

    def row(self, mode: str, clients: int, sent: int) -> dict[str, Any]:
        ok, busy = self.ok, self.busy
        return {
            "batching": mode,
            "clients": clients,
            "requests": sent,
            "ok": len(ok),
            "429": len(busy),
            "other": self.other,
            "lost": len(self.lost),
            "answered": len(ok) + len(busy) + sum(self.other.values()),
            "ok_per_s": round(len(ok) / self.seconds, 2),
            "ok_p50_ms": round(statistics.median(ok) * 1000, 1) if ok else None,
            "ok_p99_ms": round(percentile(ok, 0.99) * 1000, 1) if ok else None,
            "429_p50_ms": round(statistics.median(busy) * 1000, 1) if busy else None,
            "seconds": round(self.seconds, 2),
        }


async def _level(http: httpx.AsyncClient, clients: int, total: int, tally: Tally) -> int:
    """`clients` closed loops against one mesh; returns the requests sent."""

    async def client(count: int) -> None:
        for _ in range(count):
            await tally.send(http)

    start = time.perf_counter()
    await asyncio.gather(*(client(total // clients) for _ in range(clients)))
    tally.seconds = time.perf_counter() - start
    return (total // clients) * clients


async def _alternating(https: dict[str, httpx.AsyncClient], total: int) -> dict[str, Tally]:
    """One client, its requests going to each mesh in turn: the latencies the p50 target
    compares were measured under the same load, request by request."""
    tallies = {mode: Tally() for mode in https}
    for _ in range(total):
        for mode, http in https.items():
            start = time.perf_counter()
            await tallies[mode].send(http)
            tallies[mode].seconds += time.perf_counter() - start
    return tallies


async def _run(urls: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    """One client alternating between the meshes; then each level against batching off and at
    once against batching on: a change in the machine's load touches both sides alike."""
    limits = httpx.Limits(max_connections=max(LEVELS), max_keepalive_connections=max(LEVELS))
    https = {
        mode: httpx.AsyncClient(base_url=url, timeout=600, limits=limits)
        for mode, url in urls.items()
    }
    rows: dict[str, list[dict[str, Any]]] = {mode: [] for mode in urls}
    try:
        for http in https.values():
            await http.post("/v1/images/generations", json=BODY)  # warm the pipeline
        for level, total in LEVELS.items():
            if level == 1:
                tallies = await _alternating(https, total)
                sent = {mode: total for mode in https}
            else:
                tallies = {mode: Tally() for mode in https}
                sent = {
                    mode: await _level(https[mode], level, total, tallies[mode]) for mode in https
                }
            for mode in https:
                rows[mode].append(tallies[mode].row(mode, level, sent[mode]))
                _print_row(rows[mode][-1])
    finally:
        for http in https.values():
            await http.aclose()
    return rows


def main() -> dict[str, Any]:
    print(
        "batching off: QWEN_IMAGE_MAX_BATCH_IMAGES=1; on: "
        f"QWEN_IMAGE_MAX_BATCH_IMAGES={BATCHING['on']}",
        flush=True,
    )
    meshes = {
        mode: BenchMesh(env={"qwen_image": {"QWEN_IMAGE_MAX_BATCH_IMAGES": images}})
        for mode, images in BATCHING.items()
    }
    with meshes["off"] as off, meshes["on"] as on:
        rows = asyncio.run(_run({"off": off.gateway_url, "on": on.gateway_url}))
    answered = all(
        r["lost"] == 0 and not r["other"] and r["answered"] == r["requests"]
        for mode_rows in rows.values()
        for r in mode_rows
    )
    speedup = _ratio(rows, 16, "ok_per_s")
    p50 = _ratio(rows, 1, "ok_p50_ms")
    speedup_met = speedup is not None and speedup >= SPEEDUP_TARGET
    p50_met = p50 is not None and p50 <= P50_TARGET
    print(
        f"batching on / off: successes/s at 16 clients {_x(speedup)} (target >= "
        f"{SPEEDUP_TARGET:.1f}x): {'MET' if speedup_met else 'NOT MET'}; p50 at 1 client "
        f"{_x(p50)} (target <= {P50_TARGET:.2f}x): {'MET' if p50_met else 'NOT MET'}"
    )
    return save(
        "throughput",
        {
            "request": "qwen-image tiny via the gateway, 256x256, 4 steps, n=1, b64_json",
            "model_server": "8 waiting, more get 429; batching off (1 image per call) and on (4)",
            "target": (
                "every request answered (none lost), only 200 or 429, at 1/4/16/64 clients; "
                f"batching on: successes/s at 16 clients >= {SPEEDUP_TARGET:.1f}x of off, "
                f"p50 at 1 client <= {P50_TARGET:.2f}x of off"
            ),
            "met": answered and speedup_met and p50_met,
            "answered_met": answered,
            "speedup_16_clients": speedup,
            "speedup_met": speedup_met,
            "p50_ratio_1_client": p50,
            "p50_met": p50_met,
            "rows": rows,
        },
    )


def _ratio(rows: dict[str, list[dict[str, Any]]], clients: int, field: str) -> float | None:
    on = next(r[field] for r in rows["on"] if r["clients"] == clients)
    off = next(r[field] for r in rows["off"] if r["clients"] == clients)
    return round(on / off, 3) if on and off else None


def _x(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _print_row(r: dict[str, Any]) -> None:
    if r["clients"] == min(LEVELS) and r["batching"] == "off":
        print(
            f"{'clients':>7} {'batching':>8} {'sent':>5} {'ok':>4} {'429':>4} {'other':>5} {'lost':>4} "
            f"{'ok/s':>6} {'ok p50 ms':>10} {'ok p99 ms':>10} {'429 p50 ms':>10}"
        )

    def ms(value: float | None) -> str:
        return "" if value is None else f"{value:.1f}"

    print(
        f"{r['clients']:>7} {r['batching']:>8} {r['requests']:>5} {r['ok']:>4} {r['429']:>4} "
        f"{sum(r['other'].values()):>5} {r['lost']:>4} {r['ok_per_s']:>6.2f} "
        f"{ms(r['ok_p50_ms']):>10} {ms(r['ok_p99_ms']):>10} {ms(r['429_p50_ms']):>10}",
        flush=True,
    )


if __name__ == "__main__":
    main()
