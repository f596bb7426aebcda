"""The task repository: create, read, claim with a lease, heartbeat, finish, cancel, expire.

Every state change is one SQL statement guarded by the state it expects (`WHERE status = ...`), so
replicas sharing a database never step on each other:

- claim: `UPDATE tasks ... WHERE id = (SELECT id ... WHERE status = 'queued' ORDER BY created_at
  LIMIT 1 FOR UPDATE SKIP LOCKED) AND status = 'queued' RETURNING *`. On PostgreSQL concurrent
  claimers skip each other's locked row; SQLite has no row locks (the FOR UPDATE is dropped) but
  runs one writing statement at a time, and the outer `status = 'queued'` is re-checked.
- a running task holds a lease (`locked_until`) that its worker renews; `complete`/`fail` only
  apply while the caller still holds it (same `worker_id`, still running), so a worker that lost
  its task (lease expired, or canceled) cannot overwrite what happened since.
- `recover_expired` puts a task whose lease ran out back in the queue while `attempts <
  max_attempts`, and fails it with a reason after that.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, literal, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.common.errors import ResourceExhausted
from services.tasks.database import TaskRow, WebhookRow, create_engine, create_schema
from services.tasks.records import (
    PENDING,
    NewTask,
    Status,
    TaskOutput,
    TaskRecord,
    is_anonymous,
)
from services.tasks.storable import storable

Clock = Callable[[], datetime]

WORKER_DIED = "InternalError.WorkerDied"


def utcnow() -> datetime:
    return datetime.now(UTC)


def owner_of(api_key: str | None) -> str:
    """The stored form of an API key: its sha256 ("" when there is none)."""
    return hashlib.sha256(api_key.encode()).hexdigest() if api_key else ""


def died_message(attempts: int) -> str:
    times = {1: "once", 2: "twice"}.get(attempts, f"{attempts} times")
    return f"worker died {times} while running this task"


class TaskStore:
    def __init__(self, engine: AsyncEngine, clock: Clock = utcnow) -> None:
        self.engine = engine
        self.clock = clock

    @classmethod
    async def open(cls, url: str, clock: Clock = utcnow) -> TaskStore:
        engine = create_engine(url)
        await create_schema(engine)
        return cls(engine, clock)

    async def close(self) -> None:
        await self.engine.dispose()

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    async def create(self, new: NewTask, max_pending: int = 0) -> TaskRecord:
        """Queues a task; with `max_pending` > 0, refuses past that many pending for the owner."""
        now = self.clock()
        values: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "owner": storable(new.owner),
            "api": storable(new.api),
            "model": storable(new.model),
            "provider": storable(new.provider),
            "parameters": storable(new.parameters),
            "spec": storable(new.spec),
            "request_id": storable(new.request_id),
            "status": Status.QUEUED.value,
            "attempts": 0,
            "created_at": now,
            "available_at": now,
        }
        table = TaskRow.__table__
        async with self.engine.begin() as conn:
            if max_pending <= 0:
                row = (await conn.execute(insert(TaskRow).values(values).returning(table))).one()
                await self._add_webhook(conn, values["id"], new.callback_url, now)
                return TaskRecord.from_row(row._mapping)
            if self.is_postgres:
                # Serialises creates per owner so that two at once cannot both pass the count.
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(hashtextextended(:owner, 7))"),
                    {"owner": new.owner},
                )
            # One statement: the count and the insert see the same data (SQLite holds its write
            # lock through it; PostgreSQL holds the owner's advisory lock).
            mine = table.alias("mine")
            pending = (
                select(func.count())
                .select_from(mine)
                .where(mine.c.owner == new.owner, mine.c.status.in_([s.value for s in PENDING]))
                .scalar_subquery()
            )
            columns = list(values)
            source = select(*[literal(values[c], table.c[c].type).label(c) for c in columns]).where(
                pending < max_pending
            )
            stmt = insert(TaskRow).from_select(columns, source).returning(table)
            row = (await conn.execute(stmt)).first()
            if row is not None:
                await self._add_webhook(conn, values["id"], new.callback_url, now)
        if row is None:
            raise ResourceExhausted(
                f"{max_pending} tasks are already queued or running for this "
                f"{'client address' if is_anonymous(new.owner) else 'API key'} (the limit); "
                "wait for some to finish or cancel them, then retry"
            )
        return TaskRecord.from_row(row._mapping)

    @staticmethod
    async def _add_webhook(conn: AsyncConnection, task_id: str, url: str, now: datetime) -> None:
        # In the task's own transaction: a task with a callback never exists without its event.
        if url:
            await conn.execute(
                insert(WebhookRow).values(
                    task_id=task_id,
                    url=url,
                    event_id=str(uuid.uuid4()),
                    state="pending",
                    attempts=0,
                    next_attempt_at=now,
                )
            )

    async def get(self, task_id: str) -> TaskRecord | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(TaskRow.__table__).where(TaskRow.id == task_id))
            ).first()
        return TaskRecord.from_row(row._mapping) if row else None

    async def list_for_owner(self, owner: str, limit: int, offset: int = 0) -> list[TaskRecord]:
        """The owner's tasks, newest first: `limit` of them after skipping `offset`."""
        stmt = (
            select(TaskRow.__table__)
            .where(TaskRow.owner == owner)
            .order_by(TaskRow.created_at.desc(), TaskRow.id.desc())
            .limit(limit)
            .offset(offset)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [TaskRecord.from_row(row._mapping) for row in rows]

    async def count(self, status: Status | None = None) -> int:
        stmt = select(func.count()).select_from(TaskRow)
        if status is not None:
            stmt = stmt.where(TaskRow.status == status.value)
        async with self.engine.connect() as conn:
            return int((await conn.execute(stmt)).scalar_one())

    async def claim(self, worker_id: str, lease_seconds: float) -> TaskRecord | None:
        """Takes the oldest queued task for `worker_id`, or None when the queue is empty."""
        now = self.clock()
        # An alias, so the subquery reads the table on its own instead of correlating to the UPDATE.
        queue = TaskRow.__table__.alias("queue")
        oldest = (
            select(queue.c.id)
            .where(queue.c.status == Status.QUEUED.value, queue.c.available_at <= now)
            .order_by(queue.c.created_at, queue.c.id)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        stmt = (
            update(TaskRow)
            .where(TaskRow.id == oldest, TaskRow.status == Status.QUEUED.value)
            .values(
                status=Status.RUNNING.value,
                attempts=TaskRow.attempts + 1,
                worker_id=worker_id,
                locked_until=now + timedelta(seconds=lease_seconds),
                started_at=func.coalesce(TaskRow.started_at, now),
            )
            .returning(TaskRow.__table__)
        )
        async with self.engine.begin() as conn:
            row = (await conn.execute(stmt)).first()
        return TaskRecord.from_row(row._mapping) if row else None

    async def heartbeat(self, task_id: str, worker_id: str, lease_seconds: float) -> bool:
        """Renews the lease; False when the worker no longer holds the task (stop running it)."""
        return await self._update_held(
            task_id, worker_id, locked_until=self.clock() + timedelta(seconds=lease_seconds)
        )

    async def complete(
        self, task_id: str, worker_id: str, output: TaskOutput, retention_seconds: float
    ) -> bool:
        now = self.clock()
        return await self._update_held(
            task_id,
            worker_id,
            status=Status.SUCCEEDED.value,
            result=storable(output.to_json()),
            finished_at=now,
            expires_at=now + timedelta(seconds=retention_seconds),
            locked_until=None,
        )

    async def fail(
        self, task_id: str, worker_id: str, code: str, message: str, retention_seconds: float
    ) -> bool:
        now = self.clock()
        return await self._update_held(
            task_id,
            worker_id,
            status=Status.FAILED.value,
            error_code=storable(code),
            error_message=storable(message),
            finished_at=now,
            expires_at=now + timedelta(seconds=retention_seconds),
            locked_until=None,
        )

    async def release(self, task_id: str, worker_id: str) -> bool:
        """Gives a running task back to the queue (a clean shutdown), without using an attempt."""
        return await self._update_held(
            task_id,
            worker_id,
            status=Status.QUEUED.value,
            attempts=TaskRow.attempts - 1,
            worker_id=None,
            locked_until=None,
        )

    async def defer(self, task_id: str, worker_id: str, delay_seconds: float) -> bool:
        """Puts a task back for later because its backend was busy (not the worker's fault)."""
        return await self._update_held(
            task_id,
            worker_id,
            status=Status.QUEUED.value,
            attempts=TaskRow.attempts - 1,
            worker_id=None,
            locked_until=None,
            available_at=self.clock() + timedelta(seconds=delay_seconds),
        )

    async def _update_held(self, task_id: str, holder: str, **values: Any) -> bool:
        stmt = (
            update(TaskRow)
            .where(
                TaskRow.id == task_id,
                TaskRow.worker_id == holder,
                TaskRow.status == Status.RUNNING.value,
            )
            .values(**values)
        )
        async with self.engine.begin() as conn:
            return (await conn.execute(stmt)).rowcount == 1

    async def cancel(self, task_id: str, retention_seconds: float) -> TaskRecord | None:
        """Cancels a queued or running task; answers the task as it is now (None: no such task).

        A running task's worker learns it at its next heartbeat (or at once, in this process) and
        stops; its late result is refused by `complete`.
        """
        now = self.clock()
        stmt = (
            update(TaskRow)
            .where(TaskRow.id == task_id, TaskRow.status.in_([s.value for s in PENDING]))
            .values(
                status=Status.CANCELED.value,
                finished_at=now,
                expires_at=now + timedelta(seconds=retention_seconds),
                locked_until=None,
                error_code="Canceled",
                error_message="canceled by the client",
            )
            .returning(TaskRow.__table__)
        )
        async with self.engine.begin() as conn:
            row = (await conn.execute(stmt)).first()
        if row is not None:
            return TaskRecord.from_row(row._mapping)
        return await self.get(task_id)

    async def recover_expired(self, max_attempts: int, retention_seconds: float) -> tuple[int, int]:
        """Tasks whose worker's lease ran out: requeued, or failed after `max_attempts` claims.

        Returns (requeued, failed).
        """
        now = self.clock()
        lapsed = (TaskRow.status == Status.RUNNING.value, TaskRow.locked_until < now)
        fail = (
            update(TaskRow)
            .where(*lapsed, TaskRow.attempts >= max_attempts)
            .values(
                status=Status.FAILED.value,
                error_code=WORKER_DIED,
                error_message=died_message(max_attempts),
                finished_at=now,
                expires_at=now + timedelta(seconds=retention_seconds),
                locked_until=None,
            )
        )
        requeue = (
            update(TaskRow)
            .where(*lapsed, TaskRow.attempts < max_attempts)
            .values(status=Status.QUEUED.value, worker_id=None, locked_until=None)
        )
        async with self.engine.begin() as conn:
            failed = (await conn.execute(fail)).rowcount
        async with self.engine.begin() as conn:
            requeued = (await conn.execute(requeue)).rowcount
        return requeued, failed

    async def expired(self, limit: int = 100) -> list[TaskRecord]:
        """Finished tasks past their retention, oldest first."""
        stmt = (
            select(TaskRow.__table__)
            .where(TaskRow.expires_at < self.clock())
            .order_by(TaskRow.expires_at)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [TaskRecord.from_row(row._mapping) for row in rows]

    async def delete(self, task_ids: Sequence[str]) -> int:
        if not task_ids:
            return 0
        stmt = delete(TaskRow).where(
            TaskRow.id.in_(list(task_ids)), TaskRow.expires_at.is_not(None)
        )
        async with self.engine.begin() as conn:
            deleted = int((await conn.execute(stmt)).rowcount)
            # Their callbacks go with them (delivered or given up long before retention ends).
            gone = ~select(TaskRow.id).where(TaskRow.id == WebhookRow.task_id).exists()
            await conn.execute(
                delete(WebhookRow).where(WebhookRow.task_id.in_(list(task_ids)), gone)
            )
            return deleted
