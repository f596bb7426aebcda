"""The objects point at each other correctly: Services at pods and ports, env at Secrets, the
gateway at its backends, and the NetworkPolicies let through exactly the calls the mesh makes."""

from __future__ import annotations

import pytest

from tests.deploy.manifests import (
    GRPC_PORTS,
    METRICS_PORTS,
    Obj,
    container_ports,
    containers,
    env_value,
    ident,
    label_selector_matches,
    named,
    of_kind,
    pod_labels,
    pod_spec,
    selects,
)

WORKLOADS = ("Deployment", "StatefulSet")
# Pods that connect to others without being reached themselves (no selector, no Service).
PODS = (*WORKLOADS, "Job")


def test_every_service_selects_pods_that_have_its_target_ports(rendered: dict[str, list[Obj]]):
    problems = []
    for build, objs in rendered.items():
        workloads = of_kind(objs, *WORKLOADS)
        for service in of_kind(objs, "Service"):
            selector = service["spec"].get("selector", {})
            chosen = [w for w in workloads if selects(selector, pod_labels(w))]
            if not chosen:
                problems.append(f"{build}: {ident(service)} selects no pods ({selector})")
                continue
            for port in service["spec"]["ports"]:
                target = port.get("targetPort", port["port"])
                for workload in chosen:
                    if target not in container_ports(pod_spec(workload)):
                        problems.append(
                            f"{build}: {ident(service)} port {port['port']} -> {target}, "
                            f"which {ident(workload)} does not declare"
                        )
    assert problems == []


def test_every_workload_is_reachable_through_a_service(rendered: dict[str, list[Obj]]):
    for build, objs in rendered.items():
        services = of_kind(objs, "Service")
        for workload in of_kind(objs, *WORKLOADS):
            assert any(selects(s["spec"]["selector"], pod_labels(workload)) for s in services), (
                f"{build}: no Service in front of {ident(workload)}"
            )


def test_statefulsets_are_governed_by_a_headless_service(rendered: dict[str, list[Obj]]):
    for build, objs in rendered.items():
        for statefulset in of_kind(objs, "StatefulSet"):
            service = named(objs, "Service", statefulset["spec"]["serviceName"])
            assert service["spec"].get("clusterIP") == "None", f"{build}: {ident(service)}"
            assert statefulset["spec"]["volumeClaimTemplates"], f"{build}: {ident(statefulset)}"


def test_workload_selectors_match_their_own_pods(rendered: dict[str, list[Obj]]):
    for build, objs in rendered.items():
        for workload in of_kind(objs, *WORKLOADS):
            selector = workload["spec"]["selector"]
            assert label_selector_matches(selector, pod_labels(workload)), (
                f"{build}: {ident(workload)}"
            )


@pytest.mark.parametrize(
    ("client", "backend"),
    [
        ("gateway", "qwen-image"),
        ("gateway", "qwen-edit"),
        ("gateway", "providers"),
        ("gateway", "storage"),
        ("gateway", "tasks"),
        ("tasks", "qwen-image"),
        ("tasks", "providers"),
        ("tasks", "storage"),
    ],
)
def test_each_client_targets_each_backend_at_its_service(client: str, backend: str, rendered):
    variable = f"{client.upper()}_{backend.upper().replace('-', '_')}_TARGET"
    for build, objs in rendered.items():
        gateway = named(objs, "Deployment", client)["spec"]["template"]["spec"]["containers"][0]
        target = env_value(gateway, variable)
        assert target, f"{build}: {variable} is not set"
        host, _, port = target.removeprefix("dns:///").rpartition(":")
        service = named(objs, "Service", host)
        ports = {p["port"]: p for p in service["spec"]["ports"]}
        assert int(port) == GRPC_PORTS[backend], f"{build}: {variable}={target}"
        assert ports[int(port)]["targetPort"] == "grpc", f"{build}: {variable}={target}"
        # Several replicas: the gateway's channel balances over every pod only if DNS names
        # them all (headless), instead of one virtual IP pinning each connection to one pod.
        assert service["spec"].get("clusterIP") == "None", f"{build}: {ident(service)}"
        assert target.startswith("dns:///"), f"{build}: {variable}={target}"


@pytest.mark.parametrize("server", sorted(METRICS_PORTS))
def test_metrics_ports_are_declared_and_listened_on(server: str, rendered):
    prefix = {
        "qwen-image": "QWEN_IMAGE_",
        "qwen-edit": "QWEN_IMAGE_EDIT_",
        "providers": "PROVIDERS_",
        "storage": "STORAGE_",
        "tasks": "TASKS_",
    }[server]
    for build, objs in rendered.items():
        workload = named(objs, "Deployment", server)
        container = workload["spec"]["template"]["spec"]["containers"][0]
        assert container_ports(pod_spec(workload))["metrics"] == METRICS_PORTS[server], build
        assert env_value(container, f"{prefix}METRICS_LISTEN") == f"0.0.0.0:{METRICS_PORTS[server]}"


def test_secret_and_configmap_references_resolve(rendered: dict[str, list[Obj]]):
    problems = []
    for build, objs in rendered.items():
        secrets = {s["metadata"]["name"]: s for s in of_kind(objs, "Secret")}
        configmaps = {c["metadata"]["name"]: c for c in of_kind(objs, "ConfigMap")}
        for container in containers(objs):
            for entry in container.spec.get("env", []):
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if ref is None:
                    continue
                secret = secrets.get(ref["name"])
                keys = {**secret.get("data", {}), **secret.get("stringData", {})} if secret else {}
                if ref["key"] not in keys:
                    problems.append(f"{build}: {container.where} {entry['name']} -> {ref}")
        for workload in objs:
            pod = pod_spec(workload)
            for volume in (pod or {}).get("volumes", []):
                if "configMap" in volume and volume["configMap"]["name"] not in configmaps:
                    problems.append(f"{build}: {ident(workload)} volume {volume['name']}")
                if "secret" in volume and volume["secret"]["secretName"] not in secrets:
                    problems.append(f"{build}: {ident(workload)} volume {volume['name']}")
    assert problems == []


# ---- NetworkPolicies --------------------------------------------------------------------------


def allowed_sources(objs: list[Obj], target: Obj, port_name: str) -> set[str] | None:
    """Names of the workloads in the namespace that may connect to `target`'s port; None when
    peers outside the namespace (or anyone) may too."""
    labels = pod_labels(target)
    port = container_ports(pod_spec(target))[port_name]
    policies = [
        p
        for p in of_kind(objs, "NetworkPolicy")
        if "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
        and label_selector_matches(p["spec"]["podSelector"], labels)
    ]
    assert policies, f"no NetworkPolicy covers {ident(target)}: everything may reach it"
    sources: set[str] = set()
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            ports = rule.get("ports")
            if ports and not any(p.get("port") in (port, port_name) for p in ports):
                continue
            peers = rule.get("from")
            if not peers:
                return None
            for peer in peers:
                if "namespaceSelector" in peer or "ipBlock" in peer:
                    return None
                for workload in of_kind(objs, *PODS):
                    if label_selector_matches(peer["podSelector"], pod_labels(workload)):
                        sources.add(workload["metadata"]["name"])
    return sources


@pytest.mark.parametrize(
    ("target", "port", "sources"),
    [
        ("qwen-image", "grpc", {"gateway", "tasks"}),
        ("qwen-edit", "grpc", {"gateway"}),
        ("providers", "grpc", {"gateway", "tasks"}),
        ("storage", "grpc", {"gateway", "tasks"}),
        ("tasks", "grpc", {"gateway"}),
        ("postgres", "postgres", {"tasks"}),
        ("minio", "console", set()),
    ],
)
def test_only_their_clients_reach_the_backends(target, port, sources, rendered):
    for build, objs in rendered.items():
        kind = "StatefulSet" if target in ("postgres", "minio") else "Deployment"
        assert allowed_sources(objs, named(objs, kind, target), port) == sources, build


def test_only_the_storage_service_reaches_minio(rendered: dict[str, list[Obj]]):
    for build, objs in rendered.items():
        minio = named(objs, "StatefulSet", "minio")
        if "ingress" in build:
            # Clients download links through the ingress controller (another namespace).
            assert allowed_sources(objs, minio, "s3") is None, build
            continue
        # minio-setup: the Job that creates the storage service's scoped user.
        assert allowed_sources(objs, minio, "s3") == {"storage", "minio-setup"}, build


def test_clients_reach_the_gateway(rendered: dict[str, list[Obj]]):
    for build, objs in rendered.items():
        assert allowed_sources(objs, named(objs, "Deployment", "gateway"), "http") is None, build


def test_everything_else_is_denied_by_default(rendered: dict[str, list[Obj]]):
    for build, objs in rendered.items():
        deny = named(objs, "NetworkPolicy", "default-deny-ingress")
        assert deny["spec"]["podSelector"] == {}, build
        assert "ingress" not in deny["spec"], build


def test_every_selector_and_backend_points_at_something(rendered: dict[str, list[Obj]]):
    """PDBs, HPAs, NetworkPolicies and Ingresses name things that exist (a typo'd label or
    Service name renders and validates fine, and then silently protects nothing)."""
    problems = []
    for build, objs in rendered.items():
        workloads = of_kind(objs, *PODS)
        services = {s["metadata"]["name"]: s for s in of_kind(objs, "Service")}

        def matches_any(selector: Obj, workloads: list[Obj] = workloads) -> bool:
            return any(label_selector_matches(selector, pod_labels(w)) for w in workloads)

        for pdb in of_kind(objs, "PodDisruptionBudget"):
            if not matches_any(pdb["spec"]["selector"]):
                problems.append(f"{build}: {ident(pdb)} selects no pods")
        for hpa in of_kind(objs, "HorizontalPodAutoscaler"):
            ref = hpa["spec"]["scaleTargetRef"]
            if not any(
                w["kind"] == ref["kind"] and w["metadata"]["name"] == ref["name"] for w in workloads
            ):
                problems.append(f"{build}: {ident(hpa)} scales {ref['kind']}/{ref['name']}")
        for policy in of_kind(objs, "NetworkPolicy"):
            selector = policy["spec"]["podSelector"]
            if selector and not matches_any(selector):
                problems.append(f"{build}: {ident(policy)} applies to no pods")
            for rule in policy["spec"].get("ingress", []):
                for peer in rule.get("from", []):
                    local = "podSelector" in peer and "namespaceSelector" not in peer
                    if local and not matches_any(peer["podSelector"]):
                        problems.append(f"{build}: {ident(policy)} allows pods that don't exist")
        for ingress in of_kind(objs, "Ingress"):
            for rule in ingress["spec"].get("rules", []):
                for path in rule["http"]["paths"]:
                    backend = path["backend"]["service"]
                    service = services.get(backend["name"])
                    ports = service["spec"]["ports"] if service else []
                    wanted = backend["port"].get("name", backend["port"].get("number"))
                    if not any(wanted in (p.get("name"), p["port"]) for p in ports):
                        problems.append(f"{build}: {ident(ingress)} -> {backend}")
    assert problems == []
