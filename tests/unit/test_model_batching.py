"""Dynamic batching in the model servers' job queue: which jobs share a call, in which order, and
what each caller gets when a neighbour leaves, fails or does not fit the device."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import Any

import pytest
import torch

from services.common.errors import ResourceExhausted
from services.modelserver.batching import Batchable, BatchStepFn
from services.modelserver.jobs import JobQueue, Preview, Progress


class Calls:
    """A fake pipeline call over items (strings): records each call, runs `steps` steps with a
    preview per item, may hold between steps 1 and 2, and may fail (`fail(items)`)."""

    def __init__(
        self,
        steps: int = 3,
        hold: bool = False,
        fail: Callable[[list[str]], None] | None = None,
    ) -> None:
        self.steps = steps
        self.calls: list[list[str]] = []
        self.steps_run = 0
        self.release = threading.Event()
        self.held = threading.Event()
        self.fail = fail
        if not hold:
            self.release.set()

    def __call__(self, items: list[str], step: BatchStepFn) -> list[str]:
        self.calls.append(list(items))
        if self.fail is not None:
            self.fail(items)
        for index in range(1, self.steps + 1):
            self.steps_run += 1
            step(index, [self._preview(item, index) for item in items])
            if index == 1:
                self.held.set()
                self.release.wait(30)
        return [f"{item} done" for item in items]

    @staticmethod
    def _preview(item: str, index: int) -> Callable[[], Preview]:
        return lambda: Preview(index, index - 1, [f"{item}@{index}"])

    def work(self, item: str, key: str | None = "k", images: int = 1) -> Batchable[str]:
        return Batchable(item=item, call=self, key=key, images=images, describe=f"{item} 64x64")

    async def wait_held(self) -> None:
        assert await asyncio.to_thread(self.held.wait, 30)


async def hold_the_pipeline(queue: JobQueue) -> tuple[Calls, Any]:
    """A job alone (no key) running and held, so what the test submits next waits."""
    blocker = Calls(hold=True)
    job = queue.submit(blocker.work("blocker", key=None), total_steps=3)
    await blocker.wait_held()
    return blocker, job


async def test_compatible_jobs_share_a_call_in_arrival_order() -> None:
    queue = JobQueue("t", max_waiting=8, max_batch_images=4)
    blocker, first = await hold_the_pipeline(queue)
    calls = Calls()
    # a (k, 1 image), b (other key), c (k, 2), d (k, 2: would make 5 > 4), e (k, 1)
    works = [
        calls.work("a"),
        calls.work("b", key="other"),
        calls.work("c", images=2),
        calls.work("d", images=2),
        calls.work("e"),
    ]
    jobs = [queue.submit(work, total_steps=3) for work in works]
    blocker.release.set()
    results = [await queue.result(job) for job in jobs]
    await queue.result(first)
    assert results == ["a done", "b done", "c done", "d done", "e done"]
    # The oldest decides each call; b is served before d although d fits a's key.
    assert calls.calls == [["a", "c", "e"], ["b"], ["d"]]
    await queue.close()


async def test_batching_off_runs_every_job_alone() -> None:
    queue = JobQueue("t", max_waiting=8, max_batch_images=1)
    blocker, first = await hold_the_pipeline(queue)
    calls = Calls()
    jobs = [queue.submit(calls.work(name), total_steps=3) for name in "abc"]
    blocker.release.set()
    assert [await queue.result(job) for job in jobs] == ["a done", "b done", "c done"]
    assert calls.calls == [["a"], ["b"], ["c"]]
    await queue.result(first)
    await queue.close()


async def test_queue_positions_count_what_is_ahead() -> None:
    queue = JobQueue("t", max_waiting=8, max_batch_images=4)
    blocker, first = await hold_the_pipeline(queue)
    calls = Calls()
    jobs = [queue.submit(calls.work(n), total_steps=3, streaming=True) for n in "ab"]
    assert [await job.updates.get() for job in jobs] == [Progress(0, 3, 1), Progress(0, 3, 2)]  # type: ignore[union-attr]
    blocker.release.set()
    await queue.result(first)
    assert [await queue.result(job) for job in jobs] == ["a done", "b done"]
    await queue.close()


async def test_max_queue_counts_waiting_jobs_not_the_running_batch() -> None:
    queue = JobQueue("t", max_waiting=2, max_batch_images=4)
    calls = Calls(hold=True)
    running = [queue.submit(calls.work(n), total_steps=3) for n in "ab"]
    await calls.wait_held()
    assert len(queue.running) == 2 and queue.waiting == 0
    later = [queue.submit(calls.work(n, key="other"), total_steps=3) for n in "cd"]
    with pytest.raises(ResourceExhausted, match="queue full: 2 waiting"):
        queue.submit(calls.work("e"), total_steps=3)
    calls.release.set()
    assert [await queue.result(job) for job in running + later] == [
        "a done",
        "b done",
        "c done",
        "d done",
    ]
    await queue.close()


async def test_each_streamed_job_in_a_batch_gets_its_own_steps_and_previews() -> None:
    queue = JobQueue("t", max_waiting=8, max_batch_images=4)
    blocker, first = await hold_the_pipeline(queue)
    calls = Calls(steps=2)
    streamed = {n: queue.submit(calls.work(n), total_steps=2, streaming=True) for n in "ab"}
    plain = queue.submit(calls.work("c"), total_steps=2)
    blocker.release.set()

    async def events(name: str) -> list[Any]:
        return [
            e.images[0] if isinstance(e, Preview) else e async for e in queue.events(streamed[name])
        ]

    got_a, got_b = await asyncio.gather(events("a"), events("b"))
    assert calls.calls == [["a", "b", "c"]]
    assert got_a == [
        Progress(0, 2, 1),
        Progress(0, 2, 0),
        Progress(1, 2, 0),
        "a@1",
        Progress(2, 2, 0),
        "a@2",
        "a done",
    ]
    assert got_b[0] == Progress(0, 2, 2) and got_b[3] == "b@1" and got_b[-1] == "b done"
    assert await queue.result(plain) == "c done"
    await queue.result(first)
    await queue.close()


async def test_a_caller_leaving_a_batch_drops_only_its_images() -> None:
    queue = JobQueue("t", max_waiting=8, max_batch_images=4)
    calls = Calls(steps=4, hold=True)
    a = queue.submit(calls.work("a"), total_steps=4)
    b = queue.submit(calls.work("b"), total_steps=4)
    waiter_b = asyncio.create_task(queue.result(b))
    await calls.wait_held()  # both in the call, after step 1
    waiter_b.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter_b
    calls.release.set()
    assert await queue.result(a) == "a done"
    assert b.future.cancelled()
    assert calls.steps_run == 4  # the call went on for a
    assert b.steps_done == 2  # step 2 saw it had left; it got no step after that
    await queue.close()


async def test_a_batch_stops_early_when_every_caller_is_gone() -> None:
    queue = JobQueue("t", max_waiting=8, max_batch_images=4)
    calls = Calls(steps=50, hold=True)
    waiters = [
        asyncio.create_task(queue.result(queue.submit(calls.work(n), total_steps=50))) for n in "ab"
    ]
    await calls.wait_held()
    for waiter in waiters:
        waiter.cancel()
    # Both cancellations are seen by the queue before the call goes on (else it may run on).
    await asyncio.gather(*waiters, return_exceptions=True)
    calls.release.set()
    # The next job runs, and the stopped call did its first step and the one that noticed.
    after = Calls(steps=1)
    assert await queue.result(queue.submit(after.work("c"), total_steps=1)) == "c done"
    assert calls.steps_run == 2
    await queue.close()


def fails_with(bad: str) -> Callable[[Sequence[str]], None]:
    def fail(items: Sequence[str]) -> None:
        if bad in items:
            raise ValueError(f"bad tensor in {bad}")

    return fail


async def test_an_error_in_a_batch_is_retried_request_by_request() -> None:
    queue = JobQueue("t", max_waiting=8, max_batch_images=4)
    blocker, first = await hold_the_pipeline(queue)
    calls = Calls(fail=fails_with("bad"))
    jobs = [queue.submit(calls.work(n), total_steps=3) for n in ("a", "bad", "c")]
    blocker.release.set()
    assert await queue.result(jobs[0]) == "a done"
    with pytest.raises(ValueError, match="bad tensor in bad"):
        await queue.result(jobs[1])
    assert await queue.result(jobs[2]) == "c done"
    assert calls.calls == [["a", "bad", "c"], ["a"], ["bad"], ["c"]]
    await queue.result(first)
    await queue.close()


def out_of_memory_above(images: int) -> Callable[[Sequence[str]], None]:
    def fail(items: Sequence[str]) -> None:
        if len(items) > images:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    return fail


async def test_out_of_memory_splits_the_batch_and_retries_smaller() -> None:
    queue = JobQueue("t", max_waiting=8, max_batch_images=8)
    blocker, first = await hold_the_pipeline(queue)
    calls = Calls(fail=out_of_memory_above(2))
    jobs = [queue.submit(calls.work(n), total_steps=3) for n in "abcde"]
    blocker.release.set()
    assert [await queue.result(job) for job in jobs] == [f"{n} done" for n in "abcde"]
    assert calls.calls == [
        ["a", "b", "c", "d", "e"],
        ["a", "b"],
        ["c", "d", "e"],
        ["c"],
        ["d", "e"],
    ]
    await queue.result(first)
    await queue.close()


async def test_a_single_image_that_does_not_fit_answers_resource_exhausted() -> None:
    queue = JobQueue("t", max_waiting=8, max_batch_images=4)
    calls = Calls(fail=out_of_memory_above(0))
    with pytest.raises(ResourceExhausted, match="out of device memory for big 64x64 even alone"):
        await queue.result(queue.submit(calls.work("big"), total_steps=3))
    fine = Calls()
    assert await queue.result(queue.submit(fine.work("next"), total_steps=3)) == "next done"
    await queue.close()


async def test_a_gathering_window_lets_a_later_job_join() -> None:
    queue = JobQueue("t", max_waiting=8, max_batch_images=2, batch_wait_ms=30_000)
    calls = Calls()
    a = queue.submit(calls.work("a"), total_steps=3)
    await asyncio.sleep(0.05)  # the worker is waiting for company
    b = queue.submit(calls.work("b"), total_steps=3)  # fills the call: it starts at once
    assert [await queue.result(a), await queue.result(b)] == ["a done", "b done"]
    assert calls.calls == [["a", "b"]]
    await queue.close()
