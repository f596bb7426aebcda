"""Helpers for the task tests: a fresh database per test (SQLite file or real PostgreSQL), a clock
the test moves, and a runner that records what it ran."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.tasks.records import NewTask, Status, TaskImage, TaskOutput, TaskRecord
from services.tasks.store import TaskStore


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: a SQLite file, or a new database on the real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'tasks.db'}"
    return str(request.getfixturevalue("postgres_server").create_database())


class Clock:
    """Time that moves only when the test says: leases and retention without waiting."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def new_task(prompt: str = "a cat", owner: str = "", model: str = "qwen-image") -> NewTask:
    return NewTask(
        model=model,
        parameters={"prompt": prompt, "n": 1},
        spec={"prompt": prompt, "n": 1},
        owner=owner,
    )


def output_for(task: TaskRecord, images: int = 1) -> TaskOutput:
    return TaskOutput(
        images=[
            TaskImage(
                index=i, url=f"http://bucket/{task.id}/{i}.png", key=f"t/{task.id}/{i}.png", seed=i
            )
            for i in range(images)
        ],
        requested=images,
    )


class RecordingRunner:
    """Runs a task by recording it; `gate` (when set) holds every run until the test opens it."""

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.runs: Counter[str] = Counter()
        self.started: asyncio.Queue[str] = asyncio.Queue()
        self.cancelled: list[str] = []
        self.gate = gate

    async def __call__(self, task: TaskRecord) -> TaskOutput:
        self.runs[task.id] += 1
        self.started.put_nowait(task.id)
        try:
            if self.gate is not None:
                await self.gate.wait()
            else:
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            self.cancelled.append(task.id)
            raise
        return output_for(task)


async def wait_for_status(
    store: TaskStore, task_id: str, *statuses: Status, timeout: float = 20.0
) -> TaskRecord:
    """The task once it reaches one of `statuses` (polls the database; never a fixed sleep)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        task = await store.get(task_id)
        if task is not None and task.status in statuses:
            return task
        if loop.time() > deadline:
            raise TimeoutError(
                f"task {task_id} still {task.status if task else 'missing'} after {timeout} s"
            )
        await asyncio.sleep(0.02)
