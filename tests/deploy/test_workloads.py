"""What a reviewer checks on every pod by eye: resources, who it runs as, its probes, its GPU."""

from __future__ import annotations

import pytest

from tests.deploy.manifests import (
    FAMILIES,
    GPU,
    GRPC_PORTS,
    MODEL_SERVERS,
    SERVICES,
    Obj,
    container_ports,
    containers,
    env_value,
    named,
    service_containers,
)


def gpu_builds(overlays: dict[str, list[Obj]]) -> list[str]:
    return [build for build in overlays if "gpu" in build]


def cpu_builds(overlays: dict[str, list[Obj]]) -> list[str]:
    return [build for build in overlays if "cpu" in build]


def test_every_container_has_requests_and_limits(rendered: dict[str, list[Obj]]):
    missing = []
    for build, objs in rendered.items():
        for container in containers(objs):
            resources = container.spec.get("resources", {})
            for kind in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in resources.get(kind, {}):
                        missing.append(f"{build}: {container.where}: {kind}.{resource}")
    assert missing == []


def test_every_container_runs_non_root_and_locked_down(rendered: dict[str, list[Obj]]):
    problems = []
    for build, objs in rendered.items():
        for container in containers(objs):
            pod_ctx = container.pod.get("securityContext", {})
            ctx = {**pod_ctx, **container.spec.get("securityContext", {})}
            where = f"{build}: {container.where}"
            if ctx.get("runAsNonRoot") is not True:
                problems.append(f"{where}: runAsNonRoot is not true")
            if ctx.get("runAsUser", 1) == 0:
                problems.append(f"{where}: runAsUser 0")
            if ctx.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            if ctx.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{where}: capabilities not dropped")
            if ctx.get("seccompProfile", {}).get("type") != "RuntimeDefault":
                problems.append(f"{where}: seccompProfile is not RuntimeDefault")
            if ctx.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: root filesystem is writable")
            if container.pod.get("automountServiceAccountToken") is not False:
                problems.append(f"{where}: mounts a service account token it never uses")
    assert problems == []


def test_writable_places_are_volumes(rendered: dict[str, list[Obj]]):
    """A read-only root needs /tmp (and the model servers' caches) on volumes."""
    for build, objs in rendered.items():
        for name, container in service_containers(objs):
            mounts = {m["mountPath"] for m in container.spec.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{build}: {name} has no writable /tmp"
            if name in MODEL_SERVERS:
                assert "/cache" in mounts, f"{build}: {name} has no writable /cache (HF_HOME)"


def test_the_namespace_enforces_restricted_pod_security(rendered: dict[str, list[Obj]]):
    for build, objs in rendered.items():
        namespace = named(objs, "Namespace", "imagemesh")
        labels = namespace["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted", build


@pytest.mark.parametrize("server", MODEL_SERVERS)
def test_model_servers_have_grpc_probes_on_their_real_port(
    server: str, rendered: dict[str, list[Obj]]
):
    for build, objs in rendered.items():
        deployment = named(objs, "Deployment", server)
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        ports = container_ports(deployment["spec"]["template"]["spec"])
        assert ports["grpc"] == GRPC_PORTS[server], build
        # The server listens where the probes knock.
        assert env_value(container, listen_env(server)) == f"0.0.0.0:{GRPC_PORTS[server]}", build
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            spec = container.get(probe)
            assert spec, f"{build}: {server} has no {probe}"
            assert spec["grpc"]["port"] == GRPC_PORTS[server], f"{build}: {server} {probe}"
            # The whole server's status ("" service): NOT_SERVING while loading or draining.
            assert spec["grpc"].get("service", "") == "", f"{build}: {server} {probe}"


def listen_env(server: str) -> str:
    return {"qwen-image": "QWEN_IMAGE_LISTEN", "qwen-edit": "QWEN_IMAGE_EDIT_LISTEN"}[server]


def test_the_gpu_startup_probe_outlasts_a_40_gb_load(overlays: dict[str, list[Obj]]):
    for build in gpu_builds(overlays):
        for server in MODEL_SERVERS:
            container = named(overlays[build], "Deployment", server)["spec"]["template"]["spec"][
                "containers"
            ][0]
            probe = container["startupProbe"]
            patience = probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3)
            assert patience >= 30 * 60, f"{build}: {server} gives up after {patience} s"


@pytest.mark.parametrize("server", MODEL_SERVERS)
def test_model_servers_ask_for_a_gpu_in_gpu_and_not_in_cpu(
    server: str, overlays: dict[str, list[Obj]]
):
    for build in gpu_builds(overlays):
        spec = named(overlays[build], "Deployment", server)["spec"]["template"]["spec"]
        resources = spec["containers"][0]["resources"]
        assert resources["limits"][GPU] == 1, build
        assert spec["nodeSelector"], f"{build}: {server} may land on a node without a GPU"
        assert any(t["key"] == GPU for t in spec["tolerations"]), build
        assert named(overlays[build], "Deployment", server)["spec"]["replicas"] >= 1
    for build in cpu_builds(overlays):
        spec = named(overlays[build], "Deployment", server)["spec"]["template"]["spec"]
        resources = spec["containers"][0]["resources"]
        assert GPU not in resources.get("limits", {}), build
        assert GPU not in resources.get("requests", {}), build
        assert "nodeSelector" not in spec, build
        assert "tolerations" not in spec, build


def test_no_gpu_outside_the_model_servers(rendered: dict[str, list[Obj]]):
    for build, objs in rendered.items():
        for container in containers(objs):
            if container.spec["name"] in MODEL_SERVERS:
                continue
            limits = container.spec["resources"].get("limits", {})
            assert GPU not in limits, f"{build}: {container.where}"


def test_gpu_model_servers_load_real_weights_and_cpu_ones_the_tiny_default(
    overlays: dict[str, list[Obj]],
):
    location = {"qwen-image": "QWEN_IMAGE_LOCATION", "qwen-edit": "QWEN_IMAGE_EDIT_LOCATION"}
    for build, objs in overlays.items():
        for name, container in service_containers(objs):
            if name not in MODEL_SERVERS:
                continue
            value = env_value(container, location[name])
            image = container.spec["image"]
            if "gpu" in build:
                assert value, f"{build}: {name} has no {location[name]}"
                assert image.endswith("-cuda"), f"{build}: {name} runs {image}"
            elif container.workload["metadata"]["name"] in FAMILIES:
                # A family's tiny pipeline, baked into the -cpu image beside the defaults.
                assert value and value.startswith("/app/models/") and value.endswith("-tiny"), (
                    f"{build}: {container.where} loads {value}"
                )
                assert image.endswith("-cpu"), f"{build}: {name} runs {image}"
            else:
                # The -cpu image has the tiny pipelines where the settings look by default.
                assert value is None, f"{build}: {name} sets {location[name]}={value}"
                assert image.endswith("-cpu"), f"{build}: {name} runs {image}"


def test_gpu_weights_are_mounted_where_the_location_points(overlays: dict[str, list[Obj]]):
    location = {"qwen-image": "QWEN_IMAGE_LOCATION", "qwen-edit": "QWEN_IMAGE_EDIT_LOCATION"}
    for build in gpu_builds(overlays):
        for name, container in service_containers(overlays[build]):
            if name not in MODEL_SERVERS:
                continue
            value = env_value(container, location[name]) or ""
            mounts = [m["mountPath"] for m in container.spec["volumeMounts"]]
            home = env_value(container, "HF_HOME") or "/cache/huggingface"
            # A folder under a mounted volume, or a hub id cached on a mounted volume.
            folder = value if value.startswith("/") else home
            assert any(folder.startswith(m.rstrip("/") + "/") for m in mounts), (
                f"{build}: {name} reads {folder}, mounted: {mounts}"
            )


def test_cpu_overlay_runs_one_replica_of_everything(overlays: dict[str, list[Obj]]):
    objs = overlays["overlays/cpu"]
    for obj in objs:
        if obj["kind"] in ("Deployment", "StatefulSet"):
            assert obj["spec"]["replicas"] == 1, obj["metadata"]["name"]
        if obj["kind"] == "HorizontalPodAutoscaler":
            assert obj["spec"]["minReplicas"] == 1, obj["metadata"]["name"]


@pytest.mark.parametrize("name", ["gateway", "providers"])
def test_gateway_and_providers_scale_and_survive_drains(name: str, overlays: dict[str, list[Obj]]):
    for build, objs in overlays.items():
        hpa = named(objs, "HorizontalPodAutoscaler", name)
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }, build
        assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"], build
        pdb = named(objs, "PodDisruptionBudget", name)
        labels = named(objs, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in pdb["spec"]["selector"]["matchLabels"].items())
        # maxUnavailable (not minAvailable) never blocks a node drain at one replica.
        assert "maxUnavailable" in pdb["spec"], build


def test_every_service_process_has_probes(rendered: dict[str, list[Obj]]):
    for build, objs in rendered.items():
        for container in containers(objs, include_init=False):
            if container.workload["kind"] == "Job":
                continue
            for probe in ("readinessProbe", "livenessProbe"):
                assert probe in container.spec, f"{build}: {container.where} has no {probe}"


def test_every_service_is_one_of_ours(rendered: dict[str, list[Obj]]):
    names = {name for objs in rendered.values() for name, _ in service_containers(objs)}
    assert names == set(SERVICES)
