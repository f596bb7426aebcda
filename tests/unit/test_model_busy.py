"""The model servers' busy clock: seconds a pipeline call ran, counted up to the scrape."""

from __future__ import annotations

import asyncio
import threading

from prometheus_client import REGISTRY

from services.modelserver.jobs import JobQueue


def busy_seconds(server: str) -> float:
    value = REGISTRY.get_sample_value(
        "imagemesh_modelserver_busy_seconds_total", {"server": server}
    )
    return value or 0.0


async def test_busy_seconds_grow_while_a_call_runs_and_stop_when_idle() -> None:
    queue = JobQueue("busy-test", max_waiting=2)
    started, release = threading.Event(), threading.Event()

    def work(step):  # type: ignore[no-untyped-def]
        started.set()
        release.wait(30)
        step(1)
        return "done"

    job = queue.submit(work, total_steps=1)
    assert await asyncio.to_thread(started.wait, 30)
    first = busy_seconds("busy-test")
    await asyncio.sleep(0.2)
    # Scraped mid-call, the running call already counts.
    assert busy_seconds("busy-test") >= first + 0.15
    release.set()
    assert await queue.result(job) == "done"
    idle = busy_seconds("busy-test")
    await asyncio.sleep(0.2)
    assert busy_seconds("busy-test") == idle
    await queue.close()
