"""The webhook outbox's SQL: which callbacks are due, claiming one, and recording each attempt.

A row is written with its task (`TaskStore.create`, one transaction) and becomes due once the
task has ended, wherever it ended (a worker here or in another replica, a cancel, a lease that
ran out). A replica claims a due row with a short lock (`locked_until`, guarded by the state it
expects, so two replicas never send the same attempt), sends it, and records the outcome:
delivered, retry at a later time (the backoff survives restarts), or given up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from services.tasks.database import TaskRow, UTCDateTime, WebhookRow
from services.tasks.records import FINISHED

PENDING, DELIVERED, GAVE_UP = "pending", "delivered", "gave_up"


@dataclass(frozen=True)
class Delivery:
    task_id: str
    url: str
    event_id: str
    attempts: int  # this attempt included
    body: str | None  # the event as first sent; None before the first attempt
    first_attempt_at: datetime


class Outbox:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def claim_due(self, now: datetime, lock_seconds: float, limit: int) -> list[Delivery]:
        """Locks up to `limit` due callbacks of ended tasks for this replica and counts the
        attempt; rows another replica holds (its lock not yet passed) are left alone."""
        unlocked = or_(WebhookRow.locked_until.is_(None), WebhookRow.locked_until < now)
        candidates = (
            select(WebhookRow.task_id)
            .join(TaskRow, TaskRow.id == WebhookRow.task_id)
            .where(
                WebhookRow.state == PENDING,
                WebhookRow.next_attempt_at <= now,
                unlocked,
                TaskRow.status.in_([s.value for s in FINISHED]),
            )
            .order_by(WebhookRow.next_attempt_at)
            .limit(limit)
        )
        claimed = []
        async with self.engine.begin() as conn:
            for task_id in (await conn.execute(candidates)).scalars().all():
                stmt = (
                    update(WebhookRow)
                    .where(WebhookRow.task_id == task_id, WebhookRow.state == PENDING, unlocked)
                    .values(
                        locked_until=now + timedelta(seconds=lock_seconds),
                        attempts=WebhookRow.attempts + 1,
                        first_attempt_at=func.coalesce(
                            WebhookRow.first_attempt_at, literal(now, UTCDateTime())
                        ),
                    )
                    .returning(WebhookRow.__table__)
                )
                row = (await conn.execute(stmt)).first()
                if row is not None:
                    claimed.append(
                        Delivery(
                            task_id=row.task_id,
                            url=row.url,
                            event_id=row.event_id,
                            attempts=row.attempts,
                            body=row.body,
                            first_attempt_at=row.first_attempt_at or now,
                        )
                    )
        return claimed

    async def delivered(self, delivery: Delivery, body: str) -> None:
        await self._set(delivery, state=DELIVERED, body=body, last_error=None)

    async def retry_at(self, delivery: Delivery, body: str, when: datetime, error: str) -> None:
        await self._set(delivery, next_attempt_at=when, body=body, last_error=error[:2000])

    async def give_up(self, delivery: Delivery, body: str | None, error: str) -> None:
        await self._set(delivery, state=GAVE_UP, body=body, last_error=error[:2000])

    async def state_of(self, task_id: str) -> tuple[str, int, str | None] | None:
        """(state, attempts, last error) of a task's callback; None when it has none."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(WebhookRow.state, WebhookRow.attempts, WebhookRow.last_error).where(
                        WebhookRow.task_id == task_id
                    )
                )
            ).first()
        return (row.state, row.attempts, row.last_error) if row else None

    async def _set(self, delivery: Delivery, **values: object) -> None:
        stmt = (
            update(WebhookRow)
            .where(WebhookRow.task_id == delivery.task_id, WebhookRow.state == PENDING)
            .values(locked_until=None, **values)
        )
        async with self.engine.begin() as conn:
            await conn.execute(stmt)
