"""Large payloads through the gateway: n=4 at 1328x1328 (four PNGs, about 14 MB together), in
both response formats, three runs each (each takes a minute or more of CPU on this machine).

Reported per run: the wall time, the payload (the PNG bytes made), and the peak resident memory
growth of the gateway and of the storage service during the request (VmHWM after the request
minus VmRSS before it, the peak reset just before: Linux `clear_refs`); per format, the min /
median / max of the gateway's growth over the payload. Target (issue 18 §2): the gateway's peak
grows by no more than 2x the payload, in both formats, in every run.

    python -m bench payload          (BENCH_QUICK=1: 512x512 instead; BENCH_PAYLOAD_RUNS=N runs)
"""

from __future__ import annotations

import base64
import os
import statistics
import time
from typing import Any

import httpx

from bench._mesh import QUICK, BenchMesh, memory_mib, reset_peak, save

SIZE = 512 if QUICK else 1328
N, STEPS, SEED = 4, 2, 99
TARGET = 2.0
RUNS = int(os.environ.get("BENCH_PAYLOAD_RUNS", "3"))
MIB = 1024 * 1024


def _body(response_format: str) -> dict[str, Any]:
    return {
        "prompt": "a harbour at night, many lights",
        "size": f"{SIZE}x{SIZE}",
        "n": N,
        "num_inference_steps": STEPS,
        "seed": SEED,
        "response_format": response_format,
    }


def _run(mesh: BenchMesh, http: httpx.Client, response_format: str) -> dict[str, Any]:
    watched = {name: mesh.pid(name) for name in ("gateway", "storage")}
    before = {}
    for name, pid in watched.items():
        reset_peak(pid)
        before[name] = memory_mib(pid)["rss_mib"]
    start = time.perf_counter()
    answer = http.post("/v1/images/generations", json=_body(response_format))
    wall = time.perf_counter() - start
    if answer.status_code != 200:
        raise RuntimeError(f"gateway answered {answer.status_code}: {answer.text[:300]}")
    data = answer.json()["data"]
    if response_format == "b64_json":
        pngs = [base64.b64decode(item["b64_json"]) for item in data]
    else:
        pngs = [http.get(item["url"]).content for item in data]
    payload = sum(len(png) for png in pngs)
    row: dict[str, Any] = {
        "format": response_format,
        "seconds": round(wall, 1),
        "images": len(pngs),
        "payload_mib": round(payload / MIB, 1),
        "answer_mib": round(len(answer.content) / MIB, 2),
    }
    for name, pid in watched.items():
        growth = memory_mib(pid)["peak_mib"] - before[name]
        row[f"{name}_peak_growth_mib"] = round(growth, 1)
        row[f"{name}_growth_x_payload"] = round(growth * MIB / payload, 2)
    row["met"] = row["gateway_growth_x_payload"] <= TARGET
    return row


def main() -> dict[str, Any]:
    with BenchMesh() as mesh, httpx.Client(base_url=mesh.gateway_url, timeout=3600) as http:
        warm = {**_body("b64_json"), "size": "64x64", "n": 1}
        http.post("/v1/images/generations", json=warm)
        http.post("/v1/images/generations", json={**warm, "response_format": "url"})
        rows = [_run(mesh, http, fmt) for _ in range(RUNS) for fmt in ("b64_json", "url")]
    met = all(row["met"] for row in rows)
    _print(rows)
    spread = _spread(rows)
    return save(
        "payload",
        {
            "request": f"qwen-image tiny, {SIZE}x{SIZE}, n={N}, {STEPS} steps, seed {SEED}",
            "target": f"gateway peak RSS growth <= {TARGET:g}x the payload, both formats, every run",
            "met": met,
            "gateway_growth_x_payload": spread,
            "rows": rows,
        },
    )


def _spread(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per format: min / median / max of the gateway's growth over the payload."""
    spread = {}
    for fmt in ("b64_json", "url"):
        ratios = [r["gateway_growth_x_payload"] for r in rows if r["format"] == fmt]
        spread[fmt] = {
            "min": min(ratios),
            "median": round(statistics.median(ratios), 2),
            "max": max(ratios),
        }
        print(
            f"{fmt:<9} gateway growth x payload min/median/max "
            f"{spread[fmt]['min']:.2f} / {spread[fmt]['median']:.2f} / {spread[fmt]['max']:.2f}"
            f"  (target <= {TARGET:g}x: {'MET' if spread[fmt]['max'] <= TARGET else 'NOT MET'})"
        )
    return spread


def _print(rows: list[dict[str, Any]]) -> None:
    print(f"n={N} at {SIZE}x{SIZE}, {STEPS} steps, {RUNS} runs per format")
    print(
        f"{'format':<9} {'seconds':>8} {'payload MiB':>12} {'answer MiB':>11} "
        f"{'gateway +MiB':>13} {'x payload':>10} {'storage +MiB':>13} {'x payload':>10}"
    )
    for r in rows:
        print(
            f"{r['format']:<9} {r['seconds']:>8.1f} {r['payload_mib']:>12.1f} "
            f"{r['answer_mib']:>11.2f} {r['gateway_peak_growth_mib']:>13.1f} "
            f"{r['gateway_growth_x_payload']:>10.2f} {r['storage_peak_growth_mib']:>13.1f} "
            f"{r['storage_growth_x_payload']:>10.2f}"
        )


if __name__ == "__main__":
    main()
