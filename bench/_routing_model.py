"""What p95 a placement can reach on bench/routing.py's own schedule: a model of its queue.

Each replica runs its jobs one at a time in arrival order (as a model server does, batching
left out), every job taking its measured time alone. Round-robin alternates; least work sends
each job to the replica that frees up first (perfect knowledge: no router does better under
FIFO, since a job's finish time is the replica's drain time plus its own). The floor: every long
job takes at least its time alone, so when long jobs are more than the 5% above the p95 (one in
ten here), no placement at all gets the p95 below a long job's time alone; the least ratio any
router can show on that schedule is that time over round-robin's p95.

    python -m bench._routing_model            (the bench's schedules, times of the last run)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from bench._mesh import ROOT, percentile

REPLICAS = 2


def finish_times(
    plan: Sequence[tuple[float, str]], alone: dict[str, float], policy: str
) -> list[tuple[str, float]]:
    """(kind, seconds from arrival to answer) of each job of `plan` under `policy`."""
    free = [0.0] * REPLICAS
    latencies = []
    for index, (at, kind) in enumerate(plan):
        if policy == "round_robin":
            replica = index % REPLICAS
        else:
            replica = min(range(REPLICAS), key=lambda r: free[r])
        free[replica] = max(at, free[replica]) + alone[kind]
        latencies.append((kind, free[replica] - at))
    return latencies


def p95(latencies: Sequence[tuple[str, float]], kind: str | None = None) -> float:
    return percentile([s for k, s in latencies if kind is None or k == kind], 0.95)


def model(plans: Sequence[Sequence[tuple[float, str]]], alone: dict[str, float]) -> dict[str, Any]:
    """Modelled p95 (seconds) of each policy over all of `plans`, the floor and the ratios."""
    rows: dict[str, dict[str, float]] = {}
    for policy in ("least_work", "round_robin"):
        every = [done for plan in plans for done in finish_times(plan, alone, policy)]
        rows[policy] = {"p95_s": p95(every), "short_p95_s": p95(every, "short")}
    robin = rows["round_robin"]["p95_s"]
    longs = sum(kind == "long" for plan in plans for _, kind in plan)
    count = sum(len(plan) for plan in plans)
    above = count - round(0.95 * (count - 1))  # values at or above the p95
    floor = alone["long"] if longs >= above else None
    return {
        **rows,
        "ratio": rows["least_work"]["p95_s"] / robin,
        "floor_ratio": None if floor is None else floor / robin,
    }


def main() -> None:
    from bench import routing

    last = json.loads((ROOT / "bench" / "results" / "routing.json").read_text())
    alone = {kind: ms / 1000 for kind, ms in last["alone_ms"].items()}
    plans = [
        routing.schedule(routing.REQUESTS, last["rate_per_s"], seed)
        for seed in range(routing.ROUNDS)
    ]
    result = model(plans, alone)
    print(
        f"modelled on the last run's times: least_work p95 {result['least_work']['p95_s']:.2f} s, "
        f"round_robin {result['round_robin']['p95_s']:.2f} s = {result['ratio']:.2f}x; "
        f"floor for any placement {result['floor_ratio']:.2f}x"
    )


if __name__ == "__main__":
    main()
