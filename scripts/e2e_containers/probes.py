"""The manifests' probes, run from the host against a container as the kubelet runs them against
a pod: `grpc` (the standard grpc.health.v1 Check, the probe's `service` or ""), `httpGet` (a 2xx or
3xx answer), `tcpSocket` (the port accepts) and `exec` (the command exits 0, inside the container).
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from scripts.e2e_containers import docker
from scripts.e2e_containers.plan import ContainerPlan, Obj

# A crash loop, not a service waiting for one it needs (Docker backs off 0.1 s, 0.2 s, ...).
MAX_RESTARTS = 10


@dataclass
class Outcome:
    ok: bool
    detail: str


def kind(probe: Obj) -> str:
    return next(k for k in ("grpc", "httpGet", "tcpSocket", "exec") if k in probe)


def run(probe: Obj, plan: ContainerPlan, name: str, ip: str) -> Outcome:
    timeout = float(probe.get("timeoutSeconds", 1))
    handler = kind(probe)
    spec = probe[handler]
    try:
        if handler == "grpc":
            port = plan.port(spec["port"])
            with grpc.insecure_channel(f"{ip}:{port}") as channel:
                answer = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=spec.get("service", "")),
                    timeout=timeout,
                )
            status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
            return Outcome(status == "SERVING", f"grpc :{port} {status}")
        if handler == "httpGet":
            port = plan.port(spec["port"])
            url = f"http://{ip}:{port}{spec.get('path', '/')}"
            response = httpx.get(url, timeout=timeout)
            return Outcome(200 <= response.status_code < 400, f"GET {url} {response.status_code}")
        if handler == "tcpSocket":
            port = plan.port(spec["port"])
            with socket.create_connection((ip, port), timeout=timeout):
                return Outcome(True, f"tcp :{port} open")
        result = docker.exec_in(name, list(spec["command"]), timeout=timeout + 10)
        return Outcome(result.returncode == 0, f"exec {spec['command'][0]} rc={result.returncode}")
    except (grpc.RpcError, httpx.HTTPError, OSError) as exc:
        return Outcome(False, f"{handler}: {type(exc).__name__}: {str(exc)[:120]}")


def wait_ready(plan: ContainerPlan, name: str, ip: str, budget_seconds: float) -> Outcome:
    """The readiness probe until it passes, within the startup probe's budget."""
    probe = plan.readiness or plan.startup
    if probe is None:
        return Outcome(True, "no probe")
    deadline = time.monotonic() + budget_seconds
    outcome = Outcome(False, "not tried")
    while time.monotonic() < deadline:
        # Docker restarts it as the kubelet would; a crash loop is a failure.
        if docker.restarts(name) > MAX_RESTARTS:
            return Outcome(False, f"restarted {MAX_RESTARTS} times:\n{docker.logs(name)}")
        outcome = run(probe, plan, name, ip)
        if outcome.ok:
            return outcome
        time.sleep(1)
    return Outcome(False, f"not ready after {budget_seconds:.0f} s: {outcome.detail}")


def startup_budget(plan: ContainerPlan) -> float:
    """What the kubelet allows: the startup probe's period x failure threshold."""
    probe = plan.startup or plan.readiness or {}
    return float(probe.get("periodSeconds", 10)) * float(probe.get("failureThreshold", 3)) + float(
        probe.get("initialDelaySeconds", 0)
    )
