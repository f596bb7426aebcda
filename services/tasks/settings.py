"""Settings of the task service, read from `TASKS_*` environment variables.

Loopback defaults match `make run`: the service on 127.0.0.1:50055 (metrics 9155), its queue in a
SQLite file under run/, and the backends it calls on their planned ports.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from services.common.fetch import AllowNetworks
from services.common.settings import ServerSettings


class TasksSettings(ServerSettings):
    # hide_input_in_errors: a bad database URL may carry its password.
    model_config = SettingsConfigDict(env_prefix="TASKS_", hide_input_in_errors=True)

    listen: str = "127.0.0.1:50055"
    metrics_listen: str = "127.0.0.1:9155"

    # SQLite in a file by default (nothing to start); `postgresql+psycopg://user:pw@host/db` for
    # several replicas. Relative SQLite paths are relative to the working directory.
    database_url: str = Field(default="sqlite+aiosqlite:///run/tasks.db", repr=False)
    # Tasks this replica runs at once (each is one gRPC call to a model server or a provider);
    # 0 = serve the API only.
    workers: int = Field(default=4, ge=0)
    # A running task's lease: renewed every third of it; a worker silent for longer is taken
    # for dead and its task is run again (once), then failed.
    lease_seconds: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=2, ge=1)
    # Idle workers look for queued tasks this often (tasks created in this replica start at once).
    poll_seconds: float = Field(default=1.0, gt=0)
    # A task whose backend answers "busy" (a full model server queue, a provider's rate limit)
    # goes back to the queue for this long, until it has waited max_queue_seconds in all.
    busy_retry_seconds: float = Field(default=2.0, gt=0)
    max_queue_seconds: float = Field(default=3600.0, gt=0)
    # Finished tasks and their images are deleted this long after they finish (DashScope: 24 h).
    retention_seconds: float = Field(default=24 * 3600.0, gt=0)
    retention_sweep_seconds: float = Field(default=60.0, gt=0)
    # Queued + running tasks one owner (API key) may have; past it, create answers
    # RESOURCE_EXHAUSTED. 0 = no cap.
    max_pending_per_key: int = Field(default=50, ge=0)
    # On shutdown, running tasks get this long to finish before they return to the queue.
    worker_grace_seconds: float = Field(default=10.0, ge=0)

    # The backends a task runs on, and the deadline of each call (seconds). Generation on CPU at
    # 1328x1328 takes tens of seconds.
    qwen_image_target: str = "127.0.0.1:50051"
    # More deployments of the qwen_image server, each on other weights (the catalogue's `server:`,
    # which the gateway puts in TaskSpec.server): JSON `{"name": "host:port"}`, as the gateway's
    # GATEWAY_MODEL_SERVERS. None by default: a task for a server not named here is refused at
    # create, naming its model, e.g. Qwen-Image 2.1 until `{"qwen-image-2.1": "127.0.0.1:50056"}`.
    model_servers: dict[str, str] = Field(default_factory=dict)
    providers_target: str = "127.0.0.1:50053"
    storage_target: str = "127.0.0.1:50054"
    generate_deadline_seconds: float = Field(default=300.0, gt=0)
    storage_deadline_seconds: float = Field(default=30.0, gt=0)
    # prompt_extend (seed 002) on a local model: the chat model that rewrites the prompt.
    prompt_extend_model: str = "qwen-plus"
    prompt_extend_deadline_seconds: float = Field(default=30.0, gt=0)

    # Webhooks (README "Webhooks"): each secret signs every event (one `v1=` each), so during a
    # rotation "new,old" keeps receivers that still check the old one working. Empty: a task
    # with a callback_url is refused (nothing to sign with).
    webhook_secret: SecretStr = Field(default=SecretStr(""), repr=False)
    # Internal networks a callback may reach (CIDRs); otherwise as every fetch: public only.
    webhook_allow_networks: AllowNetworks = Field(default_factory=list)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    # Retried with exponential backoff (first wait, then doubling up to the cap) until this long
    # after the first attempt, then given up (logged, counted).
    webhook_retry_seconds: float = Field(default=3600.0, gt=0)
    webhook_backoff_seconds: float = Field(default=1.0, gt=0)
    webhook_max_backoff_seconds: float = Field(default=300.0, gt=0)

    @property
    def webhook_secrets(self) -> list[str]:
        text = self.webhook_secret.get_secret_value()
        return [part.strip() for part in text.split(",") if part.strip()]

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        try:
            backend = make_url(value).get_backend_name()
        except ArgumentError:
            raise ValueError(
                "must be a database URL such as sqlite+aiosqlite:///run/tasks.db or "
                "postgresql+psycopg://user:password@host:5432/db"
            ) from None
        if backend not in ("sqlite", "postgresql"):
            raise ValueError(f"must be a sqlite or postgresql URL (got {backend!r})")
        return value
