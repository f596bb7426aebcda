"""Queue-aware routing with real processes: two Qwen-Image servers behind one gateway
(GATEWAY_QWEN_IMAGE_TARGET lists both), each on the tiny pipeline with one torch thread.

Who got what is read from the servers themselves (each one's `imagemesh_modelserver_images_total`
and `Load`), never from timing: the long job's replica is checked to be still busy when the short
jobs are counted.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import httpx
import pytest
from imagemesh.v1 import common_pb2, common_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from tests.support.ports import free_port
from tests.support.processes import ServiceProcess, grpc_serving
from tests.support.tiny_models import ensure_tiny_models
from tests.support.waiting import eventually, wait_until

LONG = {"size": "256x256", "num_inference_steps": 40}
SHORT = {"size": "64x64", "num_inference_steps": 2}


@dataclass
class Pair:
    replicas: dict[str, ServiceProcess]  # by target
    metrics: dict[str, int]  # target -> metrics port
    gateway: ServiceProcess
    url: str

    def images(self, target: str) -> float:
        text = httpx.get(f"http://127.0.0.1:{self.metrics[target]}/metrics", timeout=5).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "imagemesh_modelserver_images_total":
                    return sample.value
        return 0.0

    def ensure_running(self, target: str) -> None:
        process = self.replicas[target]
        if process.proc is None or process.proc.poll() is not None:
            process.start()
        wait_until(lambda: grpc_serving(target), 120, target)


async def _used_again(pair: Pair, http: httpx.AsyncClient, target: str) -> None:
    """Waits until the gateway sends calls to a replica that came back (its poll says so)."""

    async def routed() -> bool:
        before = pair.images(target)
        assert await _generate(http, SHORT) == 200
        return pair.images(target) > before

    await eventually(routed, 60, f"the gateway routing to {target} again")


def _replica(target: str, metrics_port: int, index: int) -> ServiceProcess:
    return ServiceProcess.module(
        f"routing-qwen_image-{index}",
        "services.qwen_image",
        env={
            "QWEN_IMAGE_LISTEN": target,
            "QWEN_IMAGE_METRICS_LISTEN": f"127.0.0.1:{metrics_port}",
            "QWEN_IMAGE_MAX_QUEUE": "16",
            "QWEN_IMAGE_SHUTDOWN_GRACE_SECONDS": "60",
            "OMP_NUM_THREADS": "1",
        },
        ready=lambda: grpc_serving(target),
        ready_timeout=180,
    )


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    ensure_tiny_models()
    targets = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    metrics = {target: free_port() for target in targets}
    replicas = {t: _replica(t, metrics[t], i) for i, t in enumerate(targets)}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    gateway = ServiceProcess.module(
        "routing-gateway",
        "services.gateway",
        env={
            "GATEWAY_PORT": str(port),
            "GATEWAY_QWEN_IMAGE_TARGET": ",".join(targets),
            "GATEWAY_LOAD_POLL_MS": "100",
            "GATEWAY_GENERATE_DEADLINE_SECONDS": "120",
        },
        ready=lambda: _http_ok(f"{url}/healthz"),
    )
    try:
        for process in replicas.values():
            process.ready, ready = None, process.ready
            process.start()
            process.ready = ready
        for target in targets:
            wait_until(lambda t=target: grpc_serving(t), 180, target)  # type: ignore[misc]
        gateway.start()
        yield Pair(replicas, metrics, gateway, url)
    finally:
        gateway.stop()
        for process in replicas.values():
            process.stop()


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


async def _generate(http: httpx.AsyncClient, fields: dict[str, object]) -> int:
    answer = await http.post(
        "/v1/images/generations",
        json={"prompt": "a lighthouse", "response_format": "b64_json", **fields},
    )
    return answer.status_code


async def _running(target: str) -> int:
    async with grpc.aio.insecure_channel(target) as channel:
        load = await common_pb2_grpc.ModelServerStub(channel).Load(
            common_pb2.LoadRequest(), timeout=5
        )
    return load.running_images


async def test_short_jobs_go_to_the_idle_replica_while_the_other_runs_a_long_one(
    pair: Pair,
) -> None:
    for target in pair.replicas:
        pair.ensure_running(target)
    async with httpx.AsyncClient(base_url=pair.url, timeout=180) as http:
        long_job = asyncio.ensure_future(_generate(http, LONG))

        async def busy_one() -> str | None:
            for target in pair.replicas:
                if await _running(target):
                    return target
            return None

        busy = await eventually(busy_one, 60, "the long job running on a replica")
        idle = next(t for t in pair.replicas if t != busy)
        before = {t: pair.images(t) for t in pair.replicas}
        shorts = [await _generate(http, SHORT) for _ in range(6)]
        still_busy = await _running(busy)
        after = {t: pair.images(t) for t in pair.replicas}
        assert await long_job == 200
    assert shorts == [200] * 6
    assert still_busy == 1, "the long job ended before the short ones: nothing was compared"
    assert after[idle] - before[idle] == 6
    assert after[busy] - before[busy] == 0


async def test_a_mixed_burst_uses_both_replicas(pair: Pair) -> None:
    for target in pair.replicas:
        pair.ensure_running(target)
    before = {t: pair.images(t) for t in pair.replicas}
    async with httpx.AsyncClient(base_url=pair.url, timeout=180) as http:
        codes = await asyncio.gather(
            *(_generate(http, LONG if i % 4 == 0 else SHORT) for i in range(12))
        )
    assert codes == [200] * 12
    gained = {t: pair.images(t) - before[t] for t in pair.replicas}
    assert sum(gained.values()) == 12
    assert all(count >= 2 for count in gained.values()), gained


@pytest.mark.parametrize("how", ["sigkill", "sigterm"])
async def test_a_replica_stopped_mid_burst_loses_no_request(pair: Pair, how: str) -> None:
    """Killed (-9: calls on it break; they go to the other replica, whose answer is the only
    one) or drained (SIGTERM: the calls it has finish, new ones go to the other): every request
    is answered 200 or 429, none 5xx."""
    for target in pair.replicas:
        pair.ensure_running(target)
    victim = next(iter(pair.replicas))
    async with httpx.AsyncClient(base_url=pair.url, timeout=180) as http:
        await _used_again(pair, http, victim)
        burst = [
            asyncio.ensure_future(_generate(http, LONG if i % 3 == 0 else SHORT)) for i in range(12)
        ]
        await eventually(lambda: _running(victim), 60, "the victim running a job")
        process = pair.replicas[victim]
        if how == "sigkill":
            process.kill()
        else:
            process.signal(signal.SIGTERM)
        after = [asyncio.ensure_future(_generate(http, SHORT if i % 2 else LONG)) for i in range(6)]
        codes = await asyncio.gather(*burst, *after)
    assert set(codes) <= {200, 429}, codes
    assert codes.count(200) >= len(codes) // 2, codes
    metrics = httpx.get(f"{pair.url}/metrics", timeout=5).text
    assert "imagemesh_gateway_failovers_total" in metrics
    if how == "sigterm":
        assert process.proc is not None
        assert process.proc.wait(timeout=120) == 0
