"""Settings of the task queue, read from `GATEWAY_*` environment variables like the gateway's own."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class TaskSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_")

    # SQLite in a file by default (nothing to start); `postgresql+psycopg://user:pw@host/db` for
    # several replicas. Relative SQLite paths are relative to the working directory.
    database_url: str = Field(default="sqlite+aiosqlite:///run/tasks.db", repr=False)
    # Tasks this replica runs at once (each is one gRPC call to a model server or a provider).
    task_workers: int = Field(default=4, ge=0)
    # A running task's lease: renewed every third of it; a worker silent for longer is taken
    # for dead and its task is run again (once), then failed.
    task_lease_seconds: float = Field(default=30.0, gt=0)
    task_max_attempts: int = Field(default=2, ge=1)
    # Idle workers look for queued tasks this often (tasks created in this replica start at once).
    task_poll_seconds: float = Field(default=1.0, gt=0)
    # A task whose backend answers "busy" (a full model server queue, a provider's rate limit)
    # goes back to the queue for this long, until it has waited task_max_queue_seconds in all.
    task_busy_retry_seconds: float = Field(default=2.0, gt=0)
    task_max_queue_seconds: float = Field(default=3600.0, gt=0)
    # Finished tasks and their images are deleted this long after they finish (DashScope: 24 h).
    task_retention_seconds: float = Field(default=24 * 3600.0, gt=0)
    task_retention_sweep_seconds: float = Field(default=60.0, gt=0)
    # Queued + running tasks one API key may have; past it, creating one answers 429. 0 = no cap.
    task_max_pending_per_key: int = Field(default=50, ge=0)
    # `is_async: false` waits this long for the result, then answers the task's status instead.
    task_sync_wait_seconds: float = Field(default=600.0, gt=0)
    # On shutdown, running tasks get this long to finish before they return to the queue.
    task_shutdown_grace_seconds: float = Field(default=10.0, ge=0)
