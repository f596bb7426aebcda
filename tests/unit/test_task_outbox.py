"""The webhook outbox on both databases: written with its task, due only once the task ended,
claimed by one replica at a time, retried at the time it was given, then done."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta

import pytest

from services.tasks.outbox import Outbox
from services.tasks.store import TaskStore
from tests.support.tasks import Clock, database_url, new_task

__all__ = ["database_url"]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(database_url: str, clock: Clock) -> AsyncIterator[TaskStore]:
    store = await TaskStore.open(database_url, clock)
    yield store
    await store.close()


async def test_a_callback_is_due_once_its_task_ended_and_claimed_once(
    store: TaskStore, clock: Clock
) -> None:
    outbox = Outbox(store.engine)
    plain = await store.create(new_task("no callback"))
    task = await store.create(replace(new_task("hook"), callback_url="https://example.com/h"))
    assert await outbox.state_of(plain.id) is None
    assert await outbox.state_of(task.id) == ("pending", 0, None)
    assert await outbox.claim_due(clock(), 30, 10) == []  # still queued
    await store.cancel(task.id, 3600)
    (first,) = await outbox.claim_due(clock(), 30, 10)
    assert (first.task_id, first.attempts, first.body) == (task.id, 1, None)
    # Another replica finds it locked while this one sends it.
    assert await outbox.claim_due(clock(), 30, 10) == []
    await outbox.retry_at(first, '{"id":1}', clock() + timedelta(seconds=5), "HTTP 500")
    assert await outbox.claim_due(clock(), 30, 10) == []  # not yet
    clock.advance(5)
    (second,) = await outbox.claim_due(clock(), 30, 10)
    assert (second.event_id, second.attempts, second.body) == (first.event_id, 2, '{"id":1}')
    assert second.first_attempt_at == first.first_attempt_at
    await outbox.delivered(second, '{"id":1}')
    assert await outbox.state_of(task.id) == ("delivered", 2, None)
    clock.advance(60)
    assert await outbox.claim_due(clock(), 30, 10) == []


async def test_a_lock_left_by_a_dead_replica_passes(store: TaskStore, clock: Clock) -> None:
    outbox = Outbox(store.engine)
    task = await store.create(replace(new_task(), callback_url="https://example.com/h"))
    await store.cancel(task.id, 3600)
    assert len(await outbox.claim_due(clock(), 30, 10)) == 1
    clock.advance(31)
    (again,) = await outbox.claim_due(clock(), 30, 10)
    assert again.attempts == 2


async def test_deleting_expired_tasks_deletes_their_callbacks(
    store: TaskStore, clock: Clock
) -> None:
    outbox = Outbox(store.engine)
    task = await store.create(replace(new_task(), callback_url="https://example.com/h"))
    await store.cancel(task.id, 3600)
    assert await store.delete([task.id]) == 1
    assert await outbox.state_of(task.id) is None
