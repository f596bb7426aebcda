"""The model servers' job queue: bounded, one at a time, drops callers that are gone."""

from __future__ import annotations

import asyncio
import threading

import pytest

from services.common.errors import ResourceExhausted
from services.modelserver.jobs import JobQueue, Progress


class Gate:
    """Work that runs `steps` steps and blocks in its first one until released."""

    def __init__(self, steps: int = 5, hold: bool = True) -> None:
        self.steps = steps
        self.release = threading.Event()
        self.started = threading.Event()
        self.done_steps = 0
        if not hold:
            self.release.set()

    def __call__(self, step) -> str:  # type: ignore[no-untyped-def]
        self.started.set()
        for index in range(1, self.steps + 1):
            if index == 1:
                self.release.wait(30)
            self.done_steps = index
            step(index)
        return f"done after {self.steps}"


async def started(gate: Gate) -> None:
    assert await asyncio.to_thread(gate.started.wait, 30)


async def test_jobs_run_one_at_a_time_in_order() -> None:
    queue = JobQueue("t", max_waiting=4)
    order: list[str] = []

    def work(name: str):  # type: ignore[no-untyped-def]
        def run(step):  # type: ignore[no-untyped-def]
            order.append(f"{name}:start")
            step(1)
            order.append(f"{name}:end")
            return name

        return run

    jobs = [queue.submit(work(n), total_steps=1) for n in "abc"]
    assert [await queue.result(j) for j in jobs] == ["a", "b", "c"]
    assert order == ["a:start", "a:end", "b:start", "b:end", "c:start", "c:end"]
    await queue.close()


async def test_a_full_queue_refuses_at_once() -> None:
    queue = JobQueue("t", max_waiting=1)
    first = Gate()
    running = queue.submit(first, total_steps=5)
    await started(first)
    waiting = queue.submit(Gate(hold=False), total_steps=5)
    with pytest.raises(ResourceExhausted, match="queue full: 1 waiting"):
        queue.submit(Gate(hold=False), total_steps=5)
    first.release.set()
    assert await queue.result(running) == "done after 5"
    assert await queue.result(waiting) == "done after 5"
    await queue.close()


async def test_a_waiting_caller_that_leaves_is_dropped() -> None:
    queue = JobQueue("t", max_waiting=2)
    first, second = Gate(), Gate(hold=False)
    running = queue.submit(first, total_steps=5)
    await started(first)
    waiter = asyncio.create_task(queue.result(queue.submit(second, total_steps=5)))
    await asyncio.sleep(0)  # let the waiter start waiting
    assert queue.waiting == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert queue.waiting == 0
    first.release.set()
    await queue.result(running)
    assert not second.started.is_set()
    await queue.close()


async def test_a_running_job_whose_caller_leaves_stops_at_the_next_step() -> None:
    queue = JobQueue("t", max_waiting=2)
    gate = Gate(steps=50)
    waiter = asyncio.create_task(queue.result(queue.submit(gate, total_steps=50)))
    await started(gate)
    waiter.cancel()  # the caller is gone while step 1 is under way
    with pytest.raises(asyncio.CancelledError):
        await waiter
    gate.release.set()
    # The next job runs, and the stopped one did only its first step.
    assert await queue.result(queue.submit(Gate(steps=1, hold=False), total_steps=1))
    assert gate.done_steps == 1
    await queue.close()


async def test_events_give_position_then_steps_then_result() -> None:
    queue = JobQueue("t", max_waiting=2)
    first = Gate(steps=1)
    running = queue.submit(first, total_steps=1)
    await started(first)
    job = queue.submit(Gate(steps=3, hold=False), total_steps=3, streaming=True)
    events = []
    async for event in queue.events(job):
        events.append(event)
        if len(events) == 1:
            first.release.set()
    assert events == [
        Progress(0, 3, 1),
        Progress(0, 3, 0),
        Progress(1, 3, 0),
        Progress(2, 3, 0),
        Progress(3, 3, 0),
        "done after 3",
    ]
    await queue.result(running)
    await queue.close()


async def test_a_failing_job_fails_its_caller_only() -> None:
    queue = JobQueue("t", max_waiting=2)

    def boom(step):  # type: ignore[no-untyped-def]
        raise ValueError("bad tensor")

    with pytest.raises(ValueError, match="bad tensor"):
        await queue.result(queue.submit(boom, total_steps=1))
    assert await queue.result(queue.submit(Gate(steps=1, hold=False), total_steps=1))
    await queue.close()
