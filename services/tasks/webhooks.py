"""Webhooks for ended tasks: the event, its signature, the POST, and the loop that sends them.

When a task with a `callback_url` ends (succeeded, failed or canceled) one event is POSTed there,
at least once: the outbox row (services/tasks/outbox.py) is written with the task, so neither a
restart nor a crash loses it, and every failed attempt is retried with exponential backoff
(tenacity's jittered strategy) until `TASKS_WEBHOOK_RETRY_SECONDS` after the first, then given up
(logged). Every attempt sends the same body and event id (`X-Imagemesh-Event-Id`: receivers drop
repeats), signed like Stripe's webhooks:

    X-Imagemesh-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with a secret>

one `v1=` per configured secret, so a rotation ("new,old" in TASKS_WEBHOOK_SECRET) keeps
receivers checking either one working. The URL passes the policy of every fetch
(services/common/fetch): http(s), no internal address unless TASKS_WEBHOOK_ALLOW_NETWORKS allows
it, checked again at each attempt, the connection made to the checked address, no redirects.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx
import tenacity
from prometheus_client import Counter

from services.common.errors import InvalidArgument
from services.common.fetch import FetchFailed, UrlPolicy, shown
from services.common.fetch.policy import parse
from services.tasks.outbox import Delivery, Outbox
from services.tasks.records import TaskRecord
from services.tasks.settings import TasksSettings

log = logging.getLogger("imagemesh.tasks.webhooks")

SIGNATURE_HEADER = "X-Imagemesh-Signature"
EVENT_ID_HEADER = "X-Imagemesh-Event-Id"
SENT = Counter(
    "imagemesh_tasks_webhook_attempts",
    "Webhook POSTs for ended tasks, by outcome (delivered, retry, gave_up)",
    ["outcome"],
)

Load = Callable[[str], Awaitable[TaskRecord | None]]
Clock = Callable[[], datetime]


def signature(body: bytes, secrets: Sequence[str], timestamp: int) -> str:
    """`t=<timestamp>,v1=<hmac>[,v1=<hmac>...]`: HMAC-SHA256 of b"<t>.<body>" per secret."""
    signed = f"{timestamp}.".encode() + body
    macs = [hmac.new(s.encode(), signed, hashlib.sha256).hexdigest() for s in secrets]
    return ",".join([f"t={timestamp}", *(f"v1={mac}" for mac in macs)])


def event_of(task: TaskRecord, event_id: str) -> dict[str, Any]:
    """The event for an ended task: its final status and, when it succeeded, its links."""
    output = task.output
    finished = task.finished_at.timestamp() if task.finished_at else time.time()
    data: dict[str, Any] = {
        "task_id": task.id,
        "status": task.status.value,
        "model": task.model,
        "provider": task.provider,
        "api": task.api,
        "request_id": task.request_id,
        "created_at": int(task.created_at.timestamp()),
        "finished_at": int(finished),
        "images": [
            {
                "index": image.index,
                "url": image.url,
                "seed": image.seed,
                "width": image.width,
                "height": image.height,
                "url_expires_at": image.url_expires_at,
            }
            for image in (output.images if output else [])
        ],
    }
    if task.error_code:
        data["error_code"] = task.error_code
        data["error_message"] = task.error_message or ""
    return {
        "id": event_id,
        "type": f"task.{task.status.value}",
        "created": int(finished),
        "data": data,
    }


class Undeliverable(Exception):
    """One attempt failed; `permanent` when retrying cannot help (a refused URL)."""

    def __init__(self, reason: str, permanent: bool = False) -> None:
        super().__init__(reason)
        self.permanent = permanent


class WebhookSender:
    """POSTs one signed event through the fetch policy."""

    def __init__(self, settings: TasksSettings, client: httpx.AsyncClient | None = None) -> None:
        self.secrets = settings.webhook_secrets
        self.policy = UrlPolicy(settings.webhook_allow_networks)
        self._client = client or httpx.AsyncClient(
            timeout=settings.webhook_timeout_seconds, follow_redirects=False
        )

    def check(self, url: str) -> None:
        """At create time: INVALID_ARGUMENT naming callback_url for a URL that can never work."""
        if not url:
            return
        if not self.secrets:
            raise InvalidArgument(
                "callback_url: webhooks are off on this server (no TASKS_WEBHOOK_SECRET to sign "
                "them with); leave callback_url out and poll the task"
            )
        try:
            parsed = parse(url, "callback_url")
            host = parsed.host
            # A literal internal address is refused now; names are resolved at each attempt.
            with contextlib.suppress(ValueError):
                self.policy.check_address(ipaddress.ip_address(host), host, "callback_url")
        except FetchFailed as exc:
            raise InvalidArgument(str(exc)) from None

    async def send(self, url: str, body: bytes, event_id: str) -> int:
        """The receiver's HTTP status (2xx); Undeliverable otherwise."""
        try:
            target = await self.policy.resolve(url, "callback_url")
        except FetchFailed as exc:
            raise Undeliverable(str(exc), permanent=exc.reason == "refused") from None
        headers = {
            "Host": target.host_header,
            "Content-Type": "application/json",
            "User-Agent": "imagemesh-webhooks/1",
            EVENT_ID_HEADER: event_id,
            SIGNATURE_HEADER: signature(body, self.secrets, int(time.time())),
        }
        request = self._client.build_request(
            "POST",
            target.pinned_url,
            content=body,
            headers=headers,
            extensions={"sni_hostname": target.server_name} if target.secure else {},
        )
        try:
            response = await self._client.send(request)
            await response.aclose()
        except httpx.HTTPError as exc:
            raise Undeliverable(f"{shown(url)}: {type(exc).__name__} {exc}".strip()) from None
        if not 200 <= response.status_code < 300:
            raise Undeliverable(f"{shown(url)} answered HTTP {response.status_code}")
        return response.status_code

    async def close(self) -> None:
        await self._client.aclose()


class WebhookDispatcher:
    """Sends the due callbacks of ended tasks: woken when a task ends here, and polling for those
    that ended in another replica (or before a restart)."""

    def __init__(
        self,
        settings: TasksSettings,
        outbox: Outbox,
        load: Load,
        clock: Clock,
        sender: WebhookSender | None = None,
    ) -> None:
        self.settings = settings
        self.outbox = outbox
        self.sender = sender or WebhookSender(settings)
        self._load = load
        self._clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._backoff = tenacity.wait_exponential_jitter(
            initial=settings.webhook_backoff_seconds,
            max=settings.webhook_max_backoff_seconds,
            jitter=settings.webhook_backoff_seconds,
        )

    def check(self, url: str) -> None:
        self.sender.check(url)

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="webhooks")

    async def stop(self) -> None:
        """Lets the round in flight finish (each POST is bounded by its timeout), so no claim is
        left locked for another replica to wait out; then stops."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(
                    asyncio.shield(self._task), self.settings.webhook_timeout_seconds + 1
                )
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        await self.sender.close()

    async def _run(self) -> None:
        while not self._stopping:
            try:
                sent = await self.round()
            # A database hiccup must not stop the sender (the traceback is logged).
            except Exception:
                log.exception("webhook round failed; trying again")
                sent = 0
            if not sent and not self._stopping:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.settings.poll_seconds)

    async def round(self) -> int:
        """Sends what is due now; the number of callbacks attempted."""
        # Held while sending; a replica that died mid-send leaves it to lapse this soon after.
        lock = self.settings.webhook_timeout_seconds + 5
        due = await self.outbox.claim_due(self._clock(), lock, limit=16)
        await asyncio.gather(*(self._deliver(delivery) for delivery in due))
        return len(due)

    def _delay(self, attempts: int) -> float:
        # tenacity's strategy, fed the attempt count the outbox keeps (the waits themselves are
        # rows' next_attempt_at, so they survive a restart).
        state = tenacity.RetryCallState(tenacity.Retrying(wait=self._backoff), None, (), {})
        state.attempt_number = attempts
        return float(self._backoff(state))

    async def _deliver(self, delivery: Delivery) -> None:
        body = delivery.body
        if body is None:
            task = await self._load(delivery.task_id)
            if task is None:
                await self.outbox.give_up(delivery, None, "the task no longer exists")
                return
            body = json.dumps(event_of(task, delivery.event_id), separators=(",", ":"))
        where = f"task {delivery.task_id}'s webhook to {shown(delivery.url)}"
        try:
            status = await self.sender.send(delivery.url, body.encode(), delivery.event_id)
        except Undeliverable as exc:
            now = self._clock()
            when = now + timedelta(seconds=self._delay(delivery.attempts))
            spent = (when - delivery.first_attempt_at).total_seconds()
            if exc.permanent or spent > self.settings.webhook_retry_seconds:
                SENT.labels("gave_up").inc()
                log.warning("%s given up after %d attempts: %s", where, delivery.attempts, exc)
                await self.outbox.give_up(delivery, body, str(exc))
                return
            SENT.labels("retry").inc()
            log.info(
                "%s failed (attempt %d: %s); retrying at %s",
                where,
                delivery.attempts,
                exc,
                when.isoformat(timespec="seconds"),
            )
            await self.outbox.retry_at(delivery, body, when, str(exc))
            return
        SENT.labels("delivered").inc()
        log.info("%s delivered (HTTP %d, attempt %d)", where, status, delivery.attempts)
        await self.outbox.delivered(delivery, body)
