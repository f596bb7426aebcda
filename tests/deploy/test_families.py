"""The opt-in model families (deploy/components/qwen-image-21, qwen-image-21-turbo,
qwen-image-layered; deploy/overlays/cpu-families and gpu-families): each one is a Deployment of an
existing server under its own name, reached by the gateway and the tasks service where their
*_MODEL_SERVERS settings say, probed, protected by its policies and a PDB, and absent from every
build that does not ask for it."""

from __future__ import annotations

import os
from unittest import mock

import pytest

from services.gateway.catalog import Catalog
from services.gateway.settings import GatewaySettings
from services.tasks.settings import TasksSettings
from tests.deploy.manifests import (
    DEPLOY,
    FAMILIES,
    FAMILY_LABEL,
    GRPC_PORTS,
    Obj,
    container_ports,
    env_value,
    label_selector_matches,
    named,
    of_kind,
    pod_labels,
    pod_spec,
)
from tests.deploy.test_wiring import allowed_sources

FAMILY_BUILDS = ("overlays/cpu-families", "overlays/gpu-families")
LISTEN = {"qwen-image": "QWEN_IMAGE_LISTEN", "qwen-edit": "QWEN_IMAGE_EDIT_LISTEN"}


def families(objs: list[Obj]) -> dict[str, Obj]:
    return {
        d["metadata"]["name"]: d
        for d in of_kind(objs, "Deployment")
        if FAMILY_LABEL in d["metadata"].get("labels", {})
    }


def container(objs: list[Obj], deployment: str) -> Obj:
    return pod_spec(named(objs, "Deployment", deployment))["containers"][0]


def model_servers(objs: list[Obj]) -> tuple[dict[str, str], dict[str, str]]:
    """GATEWAY_MODEL_SERVERS and TASKS_MODEL_SERVERS as the services' settings read them."""
    env = {"GATEWAY_ALLOW_ANONYMOUS": "true"}
    for deployment, name in (
        ("gateway", "GATEWAY_MODEL_SERVERS"),
        ("tasks", "TASKS_MODEL_SERVERS"),
    ):
        value = env_value(container(objs, deployment), name)
        if value is not None:
            env[name] = value
    # As the pods read them: from the environment (JSON), through the services' own settings.
    with mock.patch.dict(os.environ, env):
        return GatewaySettings().model_servers, TasksSettings().model_servers


def test_the_family_overlays_deploy_every_family(rendered: dict[str, list[Obj]]):
    for build in FAMILY_BUILDS:
        assert set(families(rendered[build])) == set(FAMILIES), build


def test_families_are_opt_in(rendered: dict[str, list[Obj]]):
    """The builds that name no family component render none, and no extra servers to call."""
    for build, objs in rendered.items():
        if "families" in build:
            continue
        assert families(objs) == {}, build
        assert model_servers(objs) == ({}, {}), build


@pytest.mark.parametrize("build", FAMILY_BUILDS)
def test_gateway_and_tasks_reach_each_family_at_its_headless_service(build, rendered):
    objs = rendered[build]
    gateway, tasks = model_servers(objs)
    expected = {}
    for deployment, (server, kind) in FAMILIES.items():
        target = f"dns:///{deployment}:{GRPC_PORTS[kind]}"
        expected[server] = target
        service = named(objs, "Service", deployment)
        assert service["spec"].get("clusterIP") == "None", f"{build}: {deployment}"
        port = next(p for p in service["spec"]["ports"] if p["port"] == GRPC_PORTS[kind])
        assert port["targetPort"] == "grpc"
        assert label_selector_matches(
            {"matchLabels": service["spec"]["selector"]},
            pod_labels(named(objs, "Deployment", deployment)),
        )
        # Only this family's pods: never the default server's (same image, other weights).
        assert not label_selector_matches(
            {"matchLabels": service["spec"]["selector"]},
            pod_labels(named(objs, "Deployment", kind)),
        ), f"{build}: Service/{deployment} selects {kind}'s pods too"
    assert gateway == expected, build
    # The tasks service runs every family's tasks too (Layered tasks on the qwen_edit server).
    assert tasks == expected, build


def test_every_server_the_catalogue_names_is_deployed_by_the_family_overlays():
    catalogue = Catalog.load(DEPLOY / "base" / "catalog.yaml")
    servers = {entry.server for entry in catalogue.entries if entry.server}
    assert servers, "the catalogue names no server: the families serve nothing"
    assert servers <= {server for server, _ in FAMILIES.values()}


@pytest.mark.parametrize("build", FAMILY_BUILDS)
def test_each_family_is_probed_where_it_listens(build, rendered):
    objs = rendered[build]
    for deployment, (_, kind) in FAMILIES.items():
        spec = container(objs, deployment)
        port = GRPC_PORTS[kind]
        assert spec["name"] == kind, "the container runs that server (its settings are checked)"
        assert container_ports(pod_spec(named(objs, "Deployment", deployment)))["grpc"] == port
        assert env_value(spec, LISTEN[kind]) == f"0.0.0.0:{port}", f"{build}: {deployment}"
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert spec[probe]["grpc"]["port"] == port, f"{build}: {deployment} {probe}"


@pytest.mark.parametrize("build", FAMILY_BUILDS)
def test_each_family_loads_its_own_weights_on_its_flavour(build, rendered):
    objs = rendered[build]
    defaults = {env_value(container(objs, kind), LISTEN[kind].replace("LISTEN", "LOCATION"))
                for kind in ("qwen-image", "qwen-edit")}  # fmt: skip
    locations = set()
    for deployment, (_, kind) in FAMILIES.items():
        spec = container(objs, deployment)
        location = env_value(spec, LISTEN[kind].replace("LISTEN", "LOCATION"))
        assert location and location not in defaults, f"{build}: {deployment} loads {location}"
        locations.add(location)
        limits = spec["resources"]["limits"]
        pod = pod_spec(named(objs, "Deployment", deployment))
        if "gpu" in build:
            assert limits["nvidia.com/gpu"] == 1 and pod["nodeSelector"], f"{build}: {deployment}"
            assert spec["image"].endswith("-cuda"), f"{build}: {deployment}"
        else:
            assert "nvidia.com/gpu" not in limits and "nodeSelector" not in pod, deployment
            assert spec["image"].endswith("-cpu"), f"{build}: {deployment}"
    assert len(locations) == len(FAMILIES), f"{build}: two families load the same weights"


def _egress_reaches(objs: list[Obj], client: str, target: Obj) -> bool:
    labels = pod_labels(named(objs, "Deployment", client))
    for policy in of_kind(objs, "NetworkPolicy"):
        spec = policy["spec"]
        if "Egress" not in spec.get("policyTypes", []):
            continue
        if not label_selector_matches(spec["podSelector"], labels):
            continue
        for rule in spec.get("egress", []):
            if not any(p.get("port") == "grpc" for p in rule.get("ports", [])):
                continue
            for peer in rule.get("to", []):
                if "podSelector" in peer and label_selector_matches(
                    peer["podSelector"], pod_labels(target)
                ):
                    return True
    return False


@pytest.mark.parametrize("build", FAMILY_BUILDS)
def test_only_the_gateway_and_tasks_reach_a_family_and_both_may(build, rendered):
    objs = rendered[build]
    for deployment in FAMILIES:
        workload = named(objs, "Deployment", deployment)
        assert allowed_sources(objs, workload, "grpc") == {"gateway", "tasks"}, deployment
        for client in ("gateway", "tasks"):
            assert _egress_reaches(objs, client, workload), f"{build}: {client} -> {deployment}"
        assert not _egress_reaches(objs, "storage", workload), deployment


@pytest.mark.parametrize("build", FAMILY_BUILDS)
def test_each_family_has_a_disruption_budget_that_never_blocks_a_drain(build, rendered):
    objs = rendered[build]
    for deployment in FAMILIES:
        pdb = named(objs, "PodDisruptionBudget", deployment)
        assert pdb["spec"]["maxUnavailable"] == 1, deployment
        assert label_selector_matches(
            pdb["spec"]["selector"], pod_labels(named(objs, "Deployment", deployment))
        )
