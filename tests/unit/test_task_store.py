"""The task queue's SQL on SQLite and on a real PostgreSQL server: claims, leases, retries, limits,
cancel and retention, as the rows show them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from services.common.errors import ResourceExhausted
from services.tasks.records import Status
from services.tasks.store import WORKER_DIED, TaskStore, owner_of
from tests.support.tasks import Clock, database_url, new_task, output_for

__all__ = ["database_url"]

LEASE = 30.0
RETENTION = 3600.0


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(database_url: str, clock: Clock) -> AsyncIterator[TaskStore]:
    store = await TaskStore.open(database_url, clock)
    yield store
    await store.close()


async def test_a_task_goes_from_queued_to_succeeded(store: TaskStore, clock: Clock) -> None:
    created = await store.create(new_task("a red fox"))
    assert (created.status, created.attempts, created.started_at) == (Status.QUEUED, 0, None)

    clock.advance(2)
    claimed = await store.claim("w1", LEASE)
    assert claimed is not None and claimed.id == created.id
    assert (claimed.status, claimed.attempts, claimed.worker_id) == (Status.RUNNING, 1, "w1")
    assert claimed.started_at == clock.now
    assert claimed.locked_until is not None
    assert (claimed.locked_until - clock.now).total_seconds() == LEASE

    clock.advance(3)
    assert await store.complete(created.id, "w1", output_for(claimed, 2), RETENTION)
    done = await store.get(created.id)
    assert done is not None and done.status == Status.SUCCEEDED
    assert done.output is not None and [i.index for i in done.output.images] == [0, 1]
    assert done.parameters == {"prompt": "a red fox", "n": 1}
    assert (done.created_at.isoformat(), done.finished_at) == (
        "2026-01-01T12:00:00+00:00",
        clock.now,
    )
    assert (
        done.expires_at is not None and (done.expires_at - clock.now).total_seconds() == RETENTION
    )


async def test_claims_take_the_oldest_task_first_and_nothing_when_empty(
    store: TaskStore, clock: Clock
) -> None:
    ids = []
    for prompt in ("first", "second", "third"):
        ids.append((await store.create(new_task(prompt))).id)
        clock.advance(1)
    claimed = [await store.claim("w", LEASE) for _ in range(3)]
    assert [t.id for t in claimed if t] == ids
    assert await store.claim("w", LEASE) is None


async def test_only_the_lease_holder_can_renew_or_finish_a_task(store: TaskStore) -> None:
    task = await store.create(new_task())
    claimed = await store.claim("w1", LEASE)
    assert claimed is not None

    assert not await store.heartbeat(task.id, "w2", LEASE)
    assert not await store.complete(task.id, "w2", output_for(claimed), RETENTION)
    assert not await store.fail(task.id, "w2", "InternalError", "no", RETENTION)
    assert await store.heartbeat(task.id, "w1", LEASE)
    assert (await store.get(task.id)).status == Status.RUNNING  # type: ignore[union-attr]


async def test_a_lapsed_lease_is_retried_once_then_failed_with_a_reason(
    store: TaskStore, clock: Clock
) -> None:
    task = await store.create(new_task())
    assert await store.claim("dies-1", LEASE)
    clock.advance(LEASE - 1)
    assert await store.recover_expired(2, RETENTION) == (0, 0)  # still within its lease

    clock.advance(2)
    assert await store.recover_expired(2, RETENTION) == (1, 0)
    again = await store.claim("dies-2", LEASE)
    assert again is not None and (again.id, again.attempts) == (task.id, 2)
    # The first worker wakes up late: its lease is gone, its result is refused.
    assert not await store.complete(task.id, "dies-1", output_for(again), RETENTION)

    clock.advance(LEASE + 1)
    assert await store.recover_expired(2, RETENTION) == (0, 1)
    failed = await store.get(task.id)
    assert failed is not None and failed.status == Status.FAILED
    assert (failed.error_code, failed.error_message) == (
        WORKER_DIED,
        "worker died twice while running this task",
    )
    assert await store.claim("w3", LEASE) is None


async def test_a_heartbeat_keeps_a_long_task_alive(store: TaskStore, clock: Clock) -> None:
    task = await store.create(new_task())
    assert await store.claim("w1", LEASE)
    for _ in range(5):
        clock.advance(LEASE * 0.6)
        assert await store.heartbeat(task.id, "w1", LEASE)
        assert await store.recover_expired(2, RETENTION) == (0, 0)


async def test_a_clean_shutdown_gives_the_task_back_without_using_an_attempt(
    store: TaskStore,
) -> None:
    task = await store.create(new_task())
    assert await store.claim("w1", LEASE)
    assert await store.release(task.id, "w1")
    back = await store.get(task.id)
    assert back is not None and (back.status, back.attempts, back.worker_id) == (
        Status.QUEUED,
        0,
        None,
    )
    again = await store.claim("w2", LEASE)
    assert again is not None and again.attempts == 1


async def test_cancel_stops_queued_and_running_tasks_but_not_finished_ones(
    store: TaskStore, clock: Clock
) -> None:
    queued, running, done = [], [], []
    for prompt, into in (("queued", queued), ("running", running), ("done", done)):
        into.append(await store.create(new_task(prompt)))
        clock.advance(1)
    queued, running, done = queued[0], running[0], done[0]
    # Claim order is age order: take the two older ones, finish the "done" one.
    first = await store.claim("w", LEASE)
    second = await store.claim("w", LEASE)
    third = await store.claim("w", LEASE)
    assert first and second and third and third.id == done.id
    assert await store.release(first.id, "w")  # back to queued
    assert await store.complete(done.id, "w", output_for(third), RETENTION)

    canceled = await store.cancel(queued.id, RETENTION)
    assert canceled is not None and canceled.status == Status.CANCELED
    assert (await store.cancel(running.id, RETENTION)).status == Status.CANCELED  # type: ignore[union-attr]
    # The running task's worker learns at its heartbeat, and its result is refused.
    assert not await store.heartbeat(running.id, "w", LEASE)
    assert not await store.complete(running.id, "w", output_for(second), RETENTION)
    assert (await store.cancel(done.id, RETENTION)).status == Status.SUCCEEDED  # type: ignore[union-attr]
    assert await store.cancel("00000000-0000-0000-0000-000000000000", RETENTION) is None
    assert await store.claim("w", LEASE) is None


async def test_the_pending_cap_is_per_api_key(store: TaskStore, clock: Clock) -> None:
    alice, bob = owner_of("sk-alice"), owner_of("sk-bob")
    first = await store.create(new_task(owner=alice), max_pending=2)
    clock.advance(1)
    await store.create(new_task(owner=alice), max_pending=2)
    with pytest.raises(ResourceExhausted, match="2 tasks are already queued or running"):
        await store.create(new_task(owner=alice), max_pending=2)
    await store.create(new_task(owner=bob), max_pending=2)  # another key has its own cap

    claimed = await store.claim("w", LEASE)
    assert claimed is not None and claimed.id == first.id
    assert await store.complete(first.id, "w", output_for(claimed), RETENTION)
    await store.create(new_task(owner=alice), max_pending=2)  # a finished task frees a place
    assert len(alice) == 64 and "sk-alice" not in alice


async def test_the_cap_holds_under_concurrent_creates(store: TaskStore) -> None:
    owner = owner_of("sk-busy")
    results = await asyncio.gather(
        *(store.create(new_task(owner=owner), max_pending=3) for _ in range(12)),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, ResourceExhausted)]
    assert (len(results) - len(refused), len(refused)) == (3, 9)
    assert await store.count(Status.QUEUED) == 3


async def test_expired_results_are_listed_oldest_first_then_deleted(
    store: TaskStore, clock: Clock
) -> None:
    tasks = []
    for i in range(3):
        tasks.append(await store.create(new_task(str(i))))
        clock.advance(1)
    for _ in tasks[:2]:
        claimed = await store.claim("w", LEASE)
        assert claimed is not None
        assert await store.complete(claimed.id, "w", output_for(claimed), RETENTION)
        clock.advance(10)
    assert await store.expired() == []

    clock.advance(RETENTION)
    expired = await store.expired()
    assert [t.id for t in expired] == [tasks[0].id, tasks[1].id]  # the queued one never expires
    assert await store.delete([t.id for t in expired]) == 2
    assert await store.get(tasks[0].id) is None
    assert (await store.get(tasks[2].id)).status == Status.QUEUED  # type: ignore[union-attr]


async def test_two_replicas_claiming_at_once_never_take_the_same_task(database_url: str) -> None:
    """Separate engines = separate connection pools, as two tasks processes have."""
    first, second = await TaskStore.open(database_url), await TaskStore.open(database_url)
    try:
        for i in range(60):
            await first.create(new_task(str(i)))

        async def drain(store: TaskStore, name: str) -> list[str]:
            taken = []
            while (task := await store.claim(name, LEASE)) is not None:
                taken.append(task.id)
            return taken

        claims = await asyncio.gather(
            *(
                drain(store, f"{tag}{n}")
                for n in range(3)
                for tag, store in (("a", first), ("b", second))
            )
        )
        every = [task_id for taken in claims for task_id in taken]
        assert len(every) == 60 and len(set(every)) == 60
    finally:
        await first.close()
        await second.close()


async def test_a_deferred_task_waits_before_it_can_be_claimed_again(
    store: TaskStore, clock: Clock
) -> None:
    task = await store.create(new_task())
    assert await store.claim("w1", LEASE)
    assert await store.defer(task.id, "w1", 5)
    assert await store.claim("w2", LEASE) is None  # not yet
    clock.advance(5)
    again = await store.claim("w2", LEASE)
    assert again is not None and again.attempts == 1  # a busy backend is not a worker death


async def test_an_owners_tasks_are_listed_newest_first_in_pages(
    store: TaskStore, clock: Clock
) -> None:
    mine = []
    for prompt in ("one", "two", "three"):
        mine.append((await store.create(new_task(prompt, owner="alice"))).id)
        await store.create(new_task(prompt, owner="bob"))
        clock.advance(1)
    first = await store.list_for_owner("alice", 2)
    rest = await store.list_for_owner("alice", 2, offset=2)
    assert [t.id for t in first + rest] == mine[::-1]
    assert {t.owner for t in first + rest} == {"alice"}
    assert await store.list_for_owner("carol", 10) == []
