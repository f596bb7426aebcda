"""The task table and the database engine: SQLite in a file by default, PostgreSQL by URL.

Two tables, `tasks` and `task_webhooks` (a task's callback, if it has one), created at start when
missing (`create_all` is idempotent; on PostgreSQL an advisory lock keeps replicas that start
together from racing on the CREATE). Times are stored as
UTC: `timestamptz` on PostgreSQL, naive UTC text on SQLite (which has no time zones), and always
read back as aware UTC datetimes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, DateTime, Index, Integer, String, Text, event, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# pg_advisory_xact_lock key for schema creation ("imagemesh" in ASCII, as a number).
_SCHEMA_LOCK = 0x696D6167656D657368 % (2**63)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, whatever the database keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        # SQLite compares times as text: store one naive UTC format so that order is time order.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JsonType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    pass


class TaskRow(Base):
    """One asynchronous task: its request, its state in the queue, its lease and its result."""

    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # sha256 of the API key that created it ("" when anonymous); the raw key is never stored.
    owner: Mapped[str] = mapped_column(String(64), default="")
    # Which API created it ("tasks" = seed 001's, "dashscope"); every API can read every task.
    api: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(200))
    provider: Mapped[str] = mapped_column(String(64), default="")
    # The request's parameters as the client sent them (shown back in the result).
    parameters: Mapped[dict[str, Any]] = mapped_column(JsonType)
    # The validated, normalised request the runner executes (a TaskSpec message as JSON).
    spec: Mapped[dict[str, Any]] = mapped_column(JsonType)
    request_id: Mapped[str] = mapped_column(String(128), default="")
    # queued -> running -> succeeded | failed | canceled (running -> queued when a lease expires).
    status: Mapped[str] = mapped_column(String(16))
    # Claims so far; a task whose worker died is run again while attempts < max_attempts.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # The running worker's lease: past it, the worker is taken for dead.
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Not claimed before this time: a task put back because its backend was busy waits a little.
    available_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # When a finished task and its images are deleted (finished_at + retention).
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        Index("ix_tasks_status_created", "status", "created_at"),
        Index("ix_tasks_owner_status", "owner", "status"),
        Index("ix_tasks_status_locked", "status", "locked_until"),
        Index("ix_tasks_expires", "expires_at"),
    )


class WebhookRow(Base):
    """A task's callback (services/tasks/webhooks.py): written with the task in one transaction,
    delivered once the task has ended, so neither a restart nor a crash loses the event."""

    __tablename__ = "task_webhooks"

    task_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    # X-Imagemesh-Event-Id: the same on every attempt, so a receiver can drop repeats.
    event_id: Mapped[str] = mapped_column(String(36))
    # pending -> delivered | gave_up
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The replica sending it now (another one waits until this passes).
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The event as first sent: every retry sends the same bytes.
    body: Mapped[str | None] = mapped_column(Text, nullable=True)
    first_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (Index("ix_task_webhooks_state_next", "state", "next_attempt_at"),)


def create_engine(url: str) -> AsyncEngine:
    """An async engine for `url` (sqlite+aiosqlite:///path or postgresql+psycopg://...)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # Writers wait for SQLite's single write lock (up to 30 s) instead of failing at once.
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # pre_ping: a replica survives a database restart without serving broken connections.
    return create_async_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets pollers read while a worker writes; NORMAL sync is durable across process crashes.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


async def create_schema(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
        await conn.run_sync(Base.metadata.create_all)


def redacted(url: str) -> str:
    """The URL without its password, for logs."""
    return make_url(url).render_as_string(hide_password=True)
