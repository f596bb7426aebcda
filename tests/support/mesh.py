"""The whole mesh as real processes on free loopback ports: storage, qwen_image, qwen_edit,
providers, tasks and the gateway (uvicorn), over the session's S3 server.

Started once per test session (`mesh` fixture in tests/integration/conftest.py) so every suite
that needs the mesh shares it. Processes start together and are waited on together (each by its
own health: gRPC SERVING, or the gateway's /healthz). A test may stop and restart one model server
(`mesh.qwen_image.kill()` / `.start()`); the fixture leaves the mesh whole again at the end.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from services.modelserver.settings import MODELS_DIR
from services.tinymodels import layered
from tests.support.controlnets import ensure_tiny_controlnets
from tests.support.ports import free_port
from tests.support.processes import ServiceProcess, grpc_serving
from tests.support.tiny_models import lora_folder
from tests.support.waiting import wait_until

BUCKET = "imagemesh-mesh"
# Model server queue length in the test mesh: tests that fill a queue read it from here.
MAX_QUEUE = 2


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Mesh:
    s3_endpoint: str
    targets: dict[str, str]
    gateway_port: int
    processes: dict[str, ServiceProcess] = field(default_factory=dict)
    max_queue: int = MAX_QUEUE
    # Prometheus ports of the model servers (the others run without metrics).
    metrics_ports: dict[str, int] = field(default_factory=dict)

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def link_prefix(self) -> str:
        """Where links into the mesh's bucket start (path-style S3 URLs)."""
        return f"http://{self.s3_endpoint}/{BUCKET}/"

    def process(self, name: str) -> ServiceProcess:
        return self.processes[name]

    def ready(self, name: str) -> Callable[[], bool]:
        if name == "gateway":
            return lambda: _http_ok(f"{self.gateway_url}/healthz")
        target = self.targets[name]
        return lambda: grpc_serving(target)

    def in_flight(self, name: str, method: str) -> float:
        """A model server's `imagemesh_grpc_in_flight` for a method such as `Generate`."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics_ports[name]}/metrics", timeout=5).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "imagemesh_grpc_in_flight" and sample.labels["method"].endswith(
                    f"/{method}"
                ):
                    return float(sample.value)
        return 0.0

    def ensure_running(self, name: str, timeout: float = 120) -> None:
        """Starts a process a test stopped, and waits until it serves."""
        proc = self.processes[name]
        if proc.proc is None or proc.proc.poll() is not None:
            proc.ready = None
            proc.start()
        wait_until(self.ready(name), timeout, name)

    def another_gateway(self, name: str, env: dict[str, str]) -> tuple[ServiceProcess, str]:
        """Starts a second gateway over the same backends with `env` on top of the mesh
        gateway's settings; returns the process (the caller stops it) and its base URL."""
        port = free_port()
        settings = {
            k: v for k, v in self.processes["gateway"].env.items() if k.startswith("GATEWAY_")
        }
        process = ServiceProcess.module(
            name, "services.gateway", env={**settings, **env, "GATEWAY_PORT": str(port)}
        )
        url = f"http://127.0.0.1:{port}"
        process.ready = lambda: _http_ok(f"{url}/healthz")
        process.log_path.write_text("")
        return process.start(), url

    def stop(self) -> None:
        for name in (
            "gateway",
            "tasks",
            "qwen_image",
            "qwen_edit",
            "layered",
            "providers",
            "storage",
        ):
            if name in self.processes:
                self.processes[name].stop()


def start_mesh(
    s3_env: dict[str, str],
    s3_endpoint: str,
    extra_env: dict[str, dict[str, str]] | None = None,
    name: str = "mesh",
) -> Mesh:
    """Starts every process; `name` prefixes their names (and log files) when a second mesh
    runs beside the session's, e.g. the fuzz run's with small limits."""
    extra_env = extra_env or {}
    targets = {
        name: f"127.0.0.1:{free_port()}"
        for name in ("storage", "qwen_image", "qwen_edit", "layered", "providers", "tasks")
    }
    # qwen-image-layered: a qwen_edit server of its own on the tiny Layered pipeline.
    layered.build(MODELS_DIR)
    mesh = Mesh(s3_endpoint=s3_endpoint, targets=targets, gateway_port=free_port())
    mesh.metrics_ports = {"qwen_image": free_port(), "qwen_edit": free_port()}
    # Both model servers read the tiny LoRA adapters and one broken file (test_gateway_lora.py).
    loras = lora_folder(Path(tempfile.mkdtemp(prefix=f"{name}-loras-")))
    model_limits = {"MAX_QUEUE": str(MAX_QUEUE), "DEFAULT_STEPS": "2", "LORA_DIR": str(loras)}
    envs = {
        "storage": {
            **s3_env,
            "STORAGE_LISTEN": targets["storage"],
            "STORAGE_METRICS_LISTEN": "",
            "STORAGE_BUCKET": BUCKET,
        },
        "qwen_image": {
            "QWEN_IMAGE_LISTEN": targets["qwen_image"],
            "QWEN_IMAGE_METRICS_LISTEN": f"127.0.0.1:{mesh.metrics_ports['qwen_image']}",
            **{f"QWEN_IMAGE_{k}": v for k, v in model_limits.items()},
            # The tiny ControlNets (test_gateway_controlnet.py): two control, one inpainting.
            "QWEN_IMAGE_CONTROLNET_LOCATION": ",".join(ensure_tiny_controlnets()),
        },
        "qwen_edit": {
            "QWEN_IMAGE_EDIT_LISTEN": targets["qwen_edit"],
            "QWEN_IMAGE_EDIT_METRICS_LISTEN": f"127.0.0.1:{mesh.metrics_ports['qwen_edit']}",
            **{f"QWEN_IMAGE_EDIT_{k}": v for k, v in model_limits.items()},
        },
        "layered": {
            "QWEN_IMAGE_EDIT_LISTEN": targets["layered"],
            "QWEN_IMAGE_EDIT_METRICS_LISTEN": "",
            "QWEN_IMAGE_EDIT_LOCATION": str(MODELS_DIR / layered.FOLDER),
            **{f"QWEN_IMAGE_EDIT_{k}": v for k, v in model_limits.items()},
        },
        # No provider keys: hosted models answer 503 "set ..._API_KEY" (tests may add fakes).
        "providers": {
            "PROVIDERS_LISTEN": targets["providers"],
            "PROVIDERS_METRICS_LISTEN": "",
            "OPENAI_API_KEY": "",
            "DASHSCOPE_API_KEY": "",
            "LIBLIB_ACCESS_KEY": "",
            "LIBLIB_SECRET_KEY": "",
        },
        "tasks": {
            # The task queue's SQLite file: a fresh one per session, never the repo's run/.
            "TASKS_DATABASE_URL": f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='mesh-tasks-')}/tasks.db",
            "TASKS_LISTEN": targets["tasks"],
            "TASKS_METRICS_LISTEN": "",
            "TASKS_QWEN_IMAGE_TARGET": targets["qwen_image"],
            "TASKS_PROVIDERS_TARGET": targets["providers"],
            "TASKS_STORAGE_TARGET": targets["storage"],
            "TASKS_GENERATE_DEADLINE_SECONDS": "60",
            "TASKS_MODEL_SERVERS": json.dumps({"qwen-image-layered": targets["layered"]}),
        },
        "gateway": {
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(mesh.gateway_port),
            "GATEWAY_QWEN_IMAGE_TARGET": targets["qwen_image"],
            "GATEWAY_QWEN_EDIT_TARGET": targets["qwen_edit"],
            "GATEWAY_PROVIDERS_TARGET": targets["providers"],
            "GATEWAY_STORAGE_TARGET": targets["storage"],
            "GATEWAY_TASKS_TARGET": targets["tasks"],
            "GATEWAY_MODEL_SERVERS": json.dumps({"qwen-image-layered": targets["layered"]}),
            "GATEWAY_STORAGE_LINK_PREFIXES": mesh.link_prefix,
            # Tests serve their image URLs from loopback.
            "GATEWAY_FETCH_ALLOW_NETWORKS": "127.0.0.0/8",
            # Short enough that a test waiting on it stays quick, long enough for a tiny model
            # on two shared cores.
            "GATEWAY_GENERATE_DEADLINE_SECONDS": "60",
            "GATEWAY_EDIT_DEADLINE_SECONDS": "90",
            # Seed 003's 1664x928 x 50 steps is minutes on the tiny model: a request that leaves
            # the size out gets 64x64 and the model servers' 2 steps here.
            "GATEWAY_OPENAI_DEFAULT_SIZE": "64x64",
            "GATEWAY_OPENAI_DEFAULT_STEPS": "0",
        },
    }
    modules = {
        "storage": "services.storage",
        "qwen_image": "services.qwen_image",
        "qwen_edit": "services.qwen_edit",
        "layered": "services.qwen_edit",
        "providers": "services.providers",
        "tasks": "services.tasks",
        "gateway": "services.gateway",
    }
    for service, module in modules.items():
        env = {**envs[service], **extra_env.get(service, {})}
        mesh.processes[service] = ServiceProcess.module(f"{name}-{service}", module, env=env)
    try:
        for proc in mesh.processes.values():
            proc.start()  # no readiness wait here: they load side by side
        for service in mesh.processes:
            wait_until(_alive_and(mesh.processes[service], mesh.ready(service)), 180, service)
    except BaseException:
        mesh.stop()
        raise
    return mesh


def _alive_and(proc: ServiceProcess, ready: Callable[[], bool]) -> Callable[[], bool]:
    def check() -> bool:
        assert proc.proc is not None
        if proc.proc.poll() is not None:
            raise RuntimeError(
                f"{proc.name} exited with {proc.proc.returncode}; log: {proc.log_path}\n"
                + proc.log_path.read_text(errors="replace")[-3000:]
            )
        return ready()

    return check
