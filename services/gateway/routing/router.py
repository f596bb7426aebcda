"""One backend's calls over its replicas: pick one, call it, learn its load, fail over.

`Router` owns a `ReplicaSet` and two background loops, started with the gateway: re-resolving
`dns:///` entries every `GATEWAY_RESOLVE_SECONDS`, and polling every replica's `Load` every
`GATEWAY_LOAD_POLL_MS` (0: no polling; the answers' trailers still report). Each call goes to the
replica the picker chooses among the usable ones not tried yet for it; every answer's
`imagemesh-load` trailer updates that replica's numbers. A failure goes to another replica only
when `failover.verdict` allows it (a job provably not started, or gone with its replica), within
the call's one deadline; otherwise the last error is raised as it came, for the caller to map.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from imagemesh.v1 import common_pb2, common_pb2_grpc
from prometheus_client import Counter

from services.common import loadreport, requestid
from services.common.loadreport import Load, Pace
from services.gateway.routing import failover
from services.gateway.routing.failover import Verdict
from services.gateway.routing.load import weight
from services.gateway.routing.picker import Picker
from services.gateway.routing.replicas import Replica, ReplicaSet

log = logging.getLogger("imagemesh.gateway.routing")

ROUTED = Counter(
    "imagemesh_gateway_routed_calls",
    "Calls the gateway sent to each model-server replica, by how they ended",
    ["backend", "replica", "code"],
)
FAILOVERS = Counter(
    "imagemesh_gateway_failovers",
    "Calls sent to another replica after one failed before its job could run",
    ["backend", "code"],
)


def _accepted(exc: grpc.aio.AioRpcError) -> bool:
    """Whether the server's handler ran: its interceptor sends the request id first thing."""
    return any(key == requestid.METADATA_KEY for key, _ in exc.initial_metadata() or ())


def _work(request: Any) -> int:
    """A request's work in steps, image by image (its fields as the model servers name them)."""
    images = int(getattr(request, "num_images", 0) or 0)
    return weight(images, int(getattr(request, "num_inference_steps", 0) or 0))


class Router:
    def __init__(
        self,
        replicas: ReplicaSet,
        picker: Picker,
        poll_seconds: float = 0.25,
        resolve_seconds: float = 10.0,
        probe_seconds: float = 1.0,
    ) -> None:
        self.replicas = replicas
        self.backend = replicas.backend
        self._picker = picker
        self._poll = poll_seconds
        self._resolve = resolve_seconds
        self._probe = probe_seconds
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """The background loops (inside the running event loop)."""
        loop = asyncio.get_running_loop()
        if self.replicas.resolves:
            self._tasks.append(loop.create_task(self._resolving(), name=f"{self.backend}-dns"))
        if self._poll > 0:
            self._tasks.append(loop.create_task(self._polling(), name=f"{self.backend}-load"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.replicas.close()

    # -- choosing -------------------------------------------------------------------------

    def pick(self, tried: Sequence[Replica] = ()) -> Replica | None:
        """The replica for the next attempt: among the usable ones not tried yet; on the first
        attempt with none usable, among all (one may have come back; its error says why)."""
        untried = [r for r in self.replicas.replicas if r not in tried]
        usable = [r for r in untried if r.load.usable]
        pool = usable or ([] if tried else untried)
        return self._picker.choose(pool) if pool else None

    # -- calls ----------------------------------------------------------------------------

    async def unary(
        self, stub_type: type, name: str, request: Any, timeout: float, metadata: Any
    ) -> Any:
        deadline = time.monotonic() + timeout
        tried: list[Replica] = []
        while True:
            replica = self.pick(tried)
            assert replica is not None  # the first attempt always has a replica
            tried.append(replica)
            ticket = replica.load.sent(_work(request))
            call = getattr(replica.stub(stub_type), name)(
                request, timeout=max(0.001, deadline - time.monotonic()), metadata=metadata
            )
            try:
                response = await call
            except grpc.aio.AioRpcError as exc:
                replica.load.ended(ticket)
                if not await self._elsewhere(replica, exc, tried, deadline):
                    raise
                continue
            finally:
                replica.load.ended(ticket)
            self._learn(replica, await call.trailing_metadata(), "OK")
            return response

    async def stream(
        self,
        stub_type: type,
        name: str,
        request: Any,
        timeout: float,
        metadata: Any,
        holder: StreamHolder,
    ) -> AsyncIterator[Any]:
        deadline = time.monotonic() + timeout
        tried: list[Replica] = []
        while True:
            replica = self.pick(tried)
            assert replica is not None
            tried.append(replica)
            ticket = replica.load.sent(_work(request))
            call = getattr(replica.stub(stub_type), name)(
                request, timeout=max(0.001, deadline - time.monotonic()), metadata=metadata
            )
            holder.hold(call, replica, ticket)
            relayed = False
            try:
                async for message in call:
                    relayed = True
                    yield message
            except grpc.aio.AioRpcError as exc:
                replica.load.ended(ticket)
                if relayed or not await self._elsewhere(replica, exc, tried, deadline):
                    raise
                continue
            finally:
                replica.load.ended(ticket)
            self._learn(replica, await call.trailing_metadata(), "OK")
            return

    async def _elsewhere(
        self,
        replica: Replica,
        exc: grpc.aio.AioRpcError,
        tried: Sequence[Replica],
        deadline: float,
    ) -> bool:
        """Learns from the failure; whether the call may go to another replica now."""
        code = exc.code()
        load, not_started = loadreport.read(exc.trailing_metadata())
        self._learn(replica, exc.trailing_metadata(), code.name, load)
        accepted = _accepted(exc)
        if code == grpc.StatusCode.UNAVAILABLE and not accepted:
            replica.load.unreachable()
        ruling = failover.verdict(code, accepted, not_started)
        why = "before its job could start"
        if ruling is Verdict.IF_GONE:
            ruling = Verdict.ELSEWHERE if await self._gone(replica) else Verdict.ANSWER
            why = "and is gone: its job died with it"
        if ruling is not Verdict.ELSEWHERE or time.monotonic() >= deadline:
            return False
        if self.pick(tried) is None:
            return False
        FAILOVERS.labels(self.backend, code.name).inc()
        log.info(
            "%s: %s answered %s %s; trying another replica",
            self.backend,
            replica.address,
            code.name,
            why,
        )
        return True

    def _learn(self, replica: Replica, trailing: Any, code: str, load: Load | None = None) -> None:
        ROUTED.labels(self.backend, replica.address, code).inc()
        if load is None:
            load, _ = loadreport.read(trailing)
        if load is not None:
            replica.load.report(load)

    async def _gone(self, replica: Replica) -> bool:
        """Whether a replica whose connection broke under a call is gone (its `Load` does not
        answer within the probe time); then its job cannot finish there."""
        try:
            answer = await common_pb2_grpc.ModelServerStub(replica.channel).Load(
                common_pb2.LoadRequest(), timeout=self._probe
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                replica.load.unreachable()
                return True
            return False
        self._report(replica, answer)
        return False

    # -- background -----------------------------------------------------------------------

    async def _polling(self) -> None:
        while True:
            await asyncio.gather(*(self.poll(r) for r in self.replicas.replicas))
            await asyncio.sleep(self._poll)

    async def poll(self, replica: Replica) -> None:
        """One `Load` of one replica: its numbers, or down when it cannot be reached."""
        try:
            answer = await common_pb2_grpc.ModelServerStub(replica.channel).Load(
                common_pb2.LoadRequest(), timeout=max(self._poll * 4, self._probe)
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNIMPLEMENTED:  # an older server: trailers only
                replica.load.unreachable()
            return
        self._report(replica, answer)

    @staticmethod
    def _report(replica: Replica, answer: common_pb2.LoadResponse) -> None:
        # An older server leaves remaining_steps at 0 whatever its queue: count its images then.
        images = answer.queued_images + answer.running_images
        steps = answer.remaining_steps if answer.remaining_steps or not images else None
        # step_ms 0: the replica has timed no call yet (or is older): no pace, no prediction.
        paced = answer.step_ms > 0
        replica.load.report(
            Load(
                answer.queued_images,
                answer.running_images,
                steps,
                answer.remaining_ms if paced else None,
                Pace(answer.step_ms, answer.call_ms) if paced else None,
            ),
            answer.serving,
        )

    async def _resolving(self) -> None:
        while True:
            try:
                await self.replicas.refresh()
            except Exception:  # keep the replicas it has; try again later
                log.exception("%s: refreshing the replicas failed", self.backend)
            await asyncio.sleep(self._resolve)

    # -- health ---------------------------------------------------------------------------

    async def health(self, deadline: float) -> str:
        """SERVING when any replica is; otherwise what the first one says."""
        statuses = await asyncio.gather(
            *(self._health(r, deadline) for r in self.replicas.replicas)
        )
        return "SERVING" if "SERVING" in statuses else statuses[0]

    @staticmethod
    async def _health(replica: Replica, deadline: float) -> str:
        try:
            response = await health_pb2_grpc.HealthStub(replica.channel).Check(
                health_pb2.HealthCheckRequest(service=""),
                timeout=deadline,
                metadata=requestid.outgoing_metadata(),
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                return "NO_HEALTH_SERVICE"
            return "UNREACHABLE"
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    def any_channel(self) -> grpc.aio.Channel:
        """A usable replica's channel (the first one when none is), for calls any replica can
        answer alike (`Describe`)."""
        replicas = self.replicas.replicas
        return next((r.channel for r in replicas if r.load.usable), replicas[0].channel)


class StreamHolder:
    """The attempt a routed stream is on, so that cancelling the stream cancels its call."""

    def __init__(self) -> None:
        self._call: Any = None
        self._replica: Replica | None = None
        self._ticket: Any = None

    def hold(self, call: Any, replica: Replica, ticket: Any) -> None:
        self._call, self._replica, self._ticket = call, replica, ticket

    def cancel(self) -> None:
        if self._call is not None:
            self._call.cancel()
        if self._replica is not None:
            self._replica.load.ended(self._ticket)
