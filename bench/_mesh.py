"""Real mesh processes for the benchmarks: an S3 server, storage, the Qwen-Image server, the
gateway, and (for the forwarding bench) the providers service over a local upstream. Each on a
free loopback port, at WARNING log level, started side by side and waited on by health.

    with BenchMesh(model={"QWEN_IMAGE_MAX_QUEUE": "64"}) as mesh:
        mesh.gateway_url, mesh.model_target, mesh.pid("gateway")
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.ports import free_port
from tests.support.processes import ROOT, ServiceProcess, grpc_serving, port_open

# BENCH_QUICK=1: fewer rounds and smaller cases, for trying a change (figures are rougher).
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
BUCKET = "bench-mesh"
QUIET = "WARNING"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def memory_mib(pid: int) -> dict[str, float]:
    """Resident memory now (VmRSS) and its peak since start or the last `reset_peak` (VmHWM)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return {"rss_mib": round(fields["VmRSS"], 1), "peak_mib": round(fields["VmHWM"], 1)}


def reset_peak(pid: int) -> None:
    """Starts VmHWM over from the current resident size (Linux: clear_refs 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def machine() -> dict[str, object]:
    return {
        "cpus": os.cpu_count(),
        "load_1min": round(os.getloadavg()[0], 2),
        "python": sys.version.split()[0],
        "quick": QUICK,
    }


def save(name: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Prints the target's verdict and writes bench/results/<name>.json; returns the result."""
    result = {
        "benchmark": name,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        **fields,
    }
    if "target" in result:
        print(f"target: {result['target']}: {'MET' if result['met'] else 'NOT MET'}")
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")
    return result


def pin(pid: int, cpu: int) -> None:
    if (os.cpu_count() or 1) > cpu:
        os.sched_setaffinity(pid, {cpu})


class BenchMesh:
    """Starts the processes named in `parts` (s3, storage, qwen_image, providers, upstream,
    gateway); extra environment per process in `env`."""

    def __init__(
        self,
        parts: tuple[str, ...] = ("s3", "storage", "qwen_image", "gateway"),
        env: dict[str, dict[str, str]] | None = None,
        upstream_key: str = "sk-bench",
    ) -> None:
        self.parts = parts
        self.env = env or {}
        self.ports = {
            name: free_port()
            for name in ("s3", "storage", "qwen_image", "providers", "upstream", "gateway")
        }
        self.upstream_key = upstream_key
        self.processes: dict[str, ServiceProcess] = {}
        # The S3 server keeps its objects on disk: in a folder of this mesh's, gone at exit.
        self.s3_data = tempfile.mkdtemp(prefix="bench-s3-")
        atexit.register(shutil.rmtree, self.s3_data, True)

    def target(self, name: str) -> str:
        return f"127.0.0.1:{self.ports[name]}"

    @property
    def gateway_url(self) -> str:
        return f"http://{self.target('gateway')}"

    @property
    def model_target(self) -> str:
        return self.target("qwen_image")

    @property
    def upstream_base(self) -> str:
        return f"http://{self.target('upstream')}/v1"

    def pid(self, name: str) -> int:
        proc = self.processes[name].proc
        assert proc is not None
        return proc.pid

    def _specs(self) -> dict[str, tuple[list[str], dict[str, str], Callable[[], bool]]]:
        py, t = sys.executable, self.target
        return {
            "s3": (
                [
                    py,
                    str(ROOT / "scripts" / "s3_server.py"),
                    "--port",
                    str(self.ports["s3"]),
                    "--data-dir",
                    self.s3_data,
                ],
                {},
                lambda: port_open("127.0.0.1", self.ports["s3"]),
            ),
            "upstream": (
                [
                    py,
                    "-m",
                    "bench._upstream",
                    "--port",
                    str(self.ports["upstream"]),
                    "--key",
                    self.upstream_key,
                ],
                {},
                lambda: port_open("127.0.0.1", self.ports["upstream"]),
            ),
            "storage": (
                [py, "-m", "services.storage"],
                {
                    "STORAGE_S3_ENDPOINT": t("s3"),
                    "STORAGE_LISTEN": t("storage"),
                    "STORAGE_METRICS_LISTEN": "",
                    "STORAGE_BUCKET": BUCKET,
                    "STORAGE_LOG_LEVEL": QUIET,
                },
                lambda: grpc_serving(t("storage")),
            ),
            "qwen_image": (
                [py, "-m", "services.qwen_image"],
                {
                    "QWEN_IMAGE_LISTEN": t("qwen_image"),
                    "QWEN_IMAGE_METRICS_LISTEN": "",
                    "QWEN_IMAGE_LOG_LEVEL": QUIET,
                },
                lambda: grpc_serving(t("qwen_image")),
            ),
            "providers": (
                [py, "-m", "services.providers"],
                {
                    "OPENAI_API_KEY": self.upstream_key,
                    "OPENAI_BASE_URL": self.upstream_base,
                    "PROVIDERS_LISTEN": t("providers"),
                    "PROVIDERS_METRICS_LISTEN": "",
                },
                lambda: grpc_serving(t("providers")),
            ),
            "gateway": (
                [py, "-m", "services.gateway"],
                {
                    "GATEWAY_PORT": str(self.ports["gateway"]),
                    "GATEWAY_QWEN_IMAGE_TARGET": t("qwen_image"),
                    "GATEWAY_STORAGE_TARGET": t("storage"),
                    "GATEWAY_PROVIDERS_TARGET": t("providers"),
                    "GATEWAY_STORAGE_LINK_PREFIXES": f"http://{t('s3')}/{BUCKET}/",
                    "GATEWAY_LOG_LEVEL": QUIET,
                },
                lambda: port_open("127.0.0.1", self.ports["gateway"]),
            ),
        }

    def __enter__(self) -> BenchMesh:
        specs = self._specs()
        try:
            for name in self.parts:
                argv, env, _ = specs[name]
                self.processes[name] = ServiceProcess(
                    f"bench-{name}", argv, env={**env, **self.env.get(name, {})}
                ).start()
            deadline = time.monotonic() + 300
            for name in self.parts:
                while not specs[name][2]():
                    proc = self.processes[name].proc
                    if proc is not None and proc.poll() is not None:
                        raise RuntimeError(
                            f"bench-{name} exited; see {self.processes[name].log_path}"
                        )
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"bench-{name} did not start; see tests/artifacts/logs")
                    time.sleep(0.1)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for name in reversed(list(self.processes)):
            self.processes[name].stop()
