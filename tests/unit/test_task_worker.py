"""The worker on SQLite and on a real PostgreSQL server: runs, failures, cancels, restarts,
shutdowns and several workers on one database, as the task rows show them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from services.common.errors import InvalidArgument, ResourceExhausted
from services.tasks.records import Status, TaskOutput, TaskRecord
from services.tasks.store import TaskStore
from services.tasks.worker import TaskWorker
from tests.support.tasks import RecordingRunner, database_url, new_task, wait_for_status
from tests.support.waiting import eventually

__all__ = ["database_url"]


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[TaskStore]:
    store = await TaskStore.open(database_url)
    yield store
    await store.close()


def worker(store: TaskStore, runner: object, **kwargs: object) -> TaskWorker:
    options: dict[str, object] = {"concurrency": 2, "lease_seconds": 30.0, "poll_seconds": 0.05}
    options.update(kwargs)
    return TaskWorker(store, runner, **options)  # type: ignore[arg-type]


async def test_a_queued_task_runs_and_its_result_is_stored(store: TaskStore) -> None:
    runner = RecordingRunner()
    w = worker(store, runner)
    await w.start()
    try:
        task = await store.create(new_task("a lighthouse"))
        w.wake()
        done = await wait_for_status(store, task.id, Status.SUCCEEDED)
    finally:
        await w.stop()
    assert runner.runs[task.id] == 1
    assert done.output is not None and done.output.images[0].url.endswith("/0.png")
    assert (done.attempts, done.worker_id) == (1, w.worker_id)


async def test_runner_errors_become_failures_with_a_code_and_a_message(store: TaskStore) -> None:
    async def runner(task: TaskRecord) -> TaskOutput:
        if task.parameters["prompt"] == "bad size":
            raise InvalidArgument(
                "parameters.size must be WIDTH*HEIGHT, e.g. 1024*1024 (got 'abc')"
            )
        raise RuntimeError("Traceback: secret internals")

    w = worker(store, runner)
    await w.start()
    try:
        bad = await store.create(new_task("bad size"))
        broken = await store.create(new_task("broken"))
        w.wake()
        bad_done = await wait_for_status(store, bad.id, Status.FAILED)
        broken_done = await wait_for_status(store, broken.id, Status.FAILED)
    finally:
        await w.stop()
    assert bad_done.error_code == "InvalidParameter"
    assert (
        bad_done.error_message == "parameters.size must be WIDTH*HEIGHT, e.g. 1024*1024 (got 'abc')"
    )
    assert broken_done.error_code == "InternalError"
    assert "secret" not in (broken_done.error_message or "") and "log" in (
        broken_done.error_message or ""
    )


async def test_cancel_stops_a_task_running_in_this_process_at_once(store: TaskStore) -> None:
    runner = RecordingRunner(gate=asyncio.Event())  # runs until canceled
    w = worker(store, runner)
    await w.start()
    try:
        task = await store.create(new_task())
        w.wake()
        assert await asyncio.wait_for(runner.started.get(), 10) == task.id
        await store.cancel(task.id, 3600)
        assert w.cancel_local(task.id)
        await wait_for_status(store, task.id, Status.CANCELED)
        await eventually(lambda: task.id not in w.running, 10, "the worker letting go of the task")
    finally:
        await w.stop()
    assert runner.cancelled == [task.id]
    assert (await store.get(task.id)).status == Status.CANCELED  # type: ignore[union-attr]


async def test_a_cancel_made_by_another_replica_stops_the_run_at_its_next_heartbeat(
    store: TaskStore,
) -> None:
    runner = RecordingRunner(gate=asyncio.Event())
    w = worker(store, runner, lease_seconds=0.3)
    await w.start()
    try:
        task = await store.create(new_task())
        w.wake()
        await asyncio.wait_for(runner.started.get(), 10)
        await store.cancel(task.id, 3600)  # what the other replica's cancel route does
        await eventually(lambda: task.id in runner.cancelled, 10, "the run cancelled")
    finally:
        await w.stop()
    assert (await store.get(task.id)).status == Status.CANCELED  # type: ignore[union-attr]


async def test_images_of_a_task_canceled_while_it_finished_are_deleted(store: TaskStore) -> None:
    gate = asyncio.Event()
    runner = RecordingRunner(gate=gate)
    discarded: list[str] = []

    async def discard(keys: Sequence[str]) -> None:
        discarded.extend(keys)

    w = worker(store, runner, discard=discard)
    await w.start()
    try:
        task = await store.create(new_task())
        w.wake()
        await asyncio.wait_for(runner.started.get(), 10)
        await store.cancel(task.id, 3600)  # canceled elsewhere; the run is about to finish
        gate.set()
        await eventually(lambda: discarded, 10, "the canceled task's images discarded")
    finally:
        await w.stop()
    assert discarded == [f"t/{task.id}/0.png"]
    assert (await store.get(task.id)).status == Status.CANCELED  # type: ignore[union-attr]


async def test_two_workers_on_one_database_run_each_task_exactly_once(database_url: str) -> None:
    """Two stores = two connection pools, as two tasks replicas have."""
    runner = RecordingRunner()
    first, second = await TaskStore.open(database_url), await TaskStore.open(database_url)
    workers = [worker(first, runner, concurrency=3), worker(second, runner, concurrency=3)]
    try:
        ids = [(await first.create(new_task(str(i)))).id for i in range(80)]
        for w in workers:
            await w.start()
        for task_id in ids:
            await wait_for_status(first, task_id, Status.SUCCEEDED)
    finally:
        for w in workers:
            await w.stop()
        await first.close()
        await second.close()
    assert sorted(runner.runs) == sorted(ids)
    assert set(runner.runs.values()) == {1}


async def test_tasks_queued_before_a_restart_run_after_it(database_url: str) -> None:
    before = await TaskStore.open(database_url)
    ids = [(await before.create(new_task(str(i)))).id for i in range(5)]
    await before.close()  # the tasks service stops before any worker took them

    after = await TaskStore.open(database_url)
    runner = RecordingRunner()
    w = worker(after, runner)
    await w.start()
    try:
        for task_id in ids:
            await wait_for_status(after, task_id, Status.SUCCEEDED)
    finally:
        await w.stop()
        await after.close()
    assert set(runner.runs) == set(ids)


async def test_shutdown_gives_running_tasks_back_to_the_queue(store: TaskStore) -> None:
    stuck = RecordingRunner(gate=asyncio.Event())
    first = worker(store, stuck)
    await first.start()
    task = await store.create(new_task())
    first.wake()
    await asyncio.wait_for(stuck.started.get(), 10)
    await first.stop(grace=0)
    back = await store.get(task.id)
    assert back is not None and (back.status, back.attempts) == (Status.QUEUED, 0)

    second = worker(store, RecordingRunner())
    await second.start()
    try:
        done = await wait_for_status(store, task.id, Status.SUCCEEDED)
    finally:
        await second.stop()
    assert done.attempts == 1  # the shutdown did not use up the retry


async def test_a_task_whose_worker_went_silent_is_run_again_by_another(store: TaskStore) -> None:
    task = await store.create(new_task())
    assert await store.claim("a-worker-that-dies", lease_seconds=0.2)

    runner = RecordingRunner()
    w = worker(store, runner, lease_seconds=0.3)
    await w.start()
    try:
        done = await wait_for_status(store, task.id, Status.SUCCEEDED)
    finally:
        await w.stop()
    assert (done.attempts, done.worker_id, runner.runs[task.id]) == (2, w.worker_id, 1)


async def test_a_busy_backend_puts_the_task_back_in_the_queue(store: TaskStore) -> None:
    calls: list[str] = []
    recorder = RecordingRunner()

    async def runner(task: TaskRecord) -> TaskOutput:
        calls.append(task.id)
        if len(calls) == 1:
            raise ResourceExhausted("qwen-image is busy: queue full (2 waiting)")
        return await recorder(task)

    w = worker(store, runner, busy_retry_seconds=0.1)
    await w.start()
    try:
        task = await store.create(new_task())
        w.wake()
        done = await wait_for_status(store, task.id, Status.SUCCEEDED, Status.FAILED)
    finally:
        await w.stop()
    assert (done.status, done.attempts, len(calls)) == (Status.SUCCEEDED, 1, 2)
