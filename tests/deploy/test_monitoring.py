"""The monitoring and autoscaling components: what they scrape, show and scale on exists.

Every metric the Grafana dashboard or a ScaledObject queries must be one a service exports: the
names come from the real registry (every module under services/ that defines Prometheus metrics
is imported, then `prometheus_client.REGISTRY` is read), so renaming a metric without its
dashboard panel or its autoscaling query fails here, not on a blank graph or a stuck scaler.
"""

from __future__ import annotations

import copy
import importlib
import json
import re

import pytest
from prometheus_client import REGISTRY

from tests.deploy.crds import custom_errors
from tests.deploy.manifests import (
    DEPLOY,
    MODEL_SERVERS,
    ROOT,
    SERVICES,
    Obj,
    container_ports,
    named,
    of_kind,
    pod_spec,
)

DASHBOARD = DEPLOY / "components/monitoring/dashboard.json"
WITH_MONITORING = ("examples/gpu-autoscaling", "examples/gpu-scale-to-zero")
# Series Prometheus makes itself for every target (not exported by a service).
PROMETHEUS_OWN = {"up"}
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and",
    "or", "unless", "inf", "nan",
}  # fmt: skip
SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("_count", "_sum", "_created"),
    "gauge": ("",),
}


@pytest.fixture(scope="module")
def exported() -> set[str]:
    """Every series name the services can export."""
    for path in sorted((ROOT / "services").rglob("*.py")):
        if "prometheus_client" in path.read_text():
            importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
    names = set()
    for family in REGISTRY.collect():
        for suffix in SAMPLE_SUFFIXES.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names


def metric_names(query: str) -> set[str]:
    """The metric names a PromQL expression reads (functions, keywords, labels left out)."""
    text = re.sub(r'"[^"]*"', '""', query)  # label values and strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        rest = text[match.end() :].lstrip()
        if rest.startswith("(") or match.group(0).lower() in PROMQL_WORDS:
            continue
        names.add(match.group(0))
    return names


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def scaler_queries(objs: list[Obj]) -> list[str]:
    return [
        trigger["metadata"]["query"]
        for scaled in of_kind(objs, "ScaledObject")
        for trigger in scaled["spec"]["triggers"]
        if trigger["type"] == "prometheus"
    ]


def test_metric_names_are_read_out_of_promql():
    query = (
        "histogram_quantile(0.95, sum by (backend, le) (rate(imagemesh_gateway_backend_seconds"
        '_bucket{namespace="x", code!="OK"}[5m]))) / on (backend) count(up{job="a"})'
    )
    assert metric_names(query) == {"imagemesh_gateway_backend_seconds_bucket", "up"}


def test_the_registry_holds_every_services_metrics(exported: set[str]):
    # One family per service, so an import that quietly found nothing would fail here.
    for name in (
        "imagemesh_grpc_request_seconds_bucket",
        "imagemesh_http_requests_total",
        "imagemesh_modelserver_queue_depth",
        "imagemesh_modelserver_busy_seconds_total",
        "imagemesh_provider_call_seconds_count",
        "imagemesh_tasks_finished_total",
    ):
        assert name in exported


def test_every_dashboard_metric_is_exported(exported: set[str]):
    queries = dashboard_queries()
    assert len(queries) >= 15
    for query in queries:
        unknown = metric_names(query) - exported - PROMETHEUS_OWN
        assert not unknown, f"the dashboard queries {sorted(unknown)}, which no service exports"


def test_a_renamed_metric_would_fail(exported: set[str]):
    assert metric_names("sum(rate(imagemesh_modelserver_image_total[5m]))") - exported


def test_the_dashboard_shows_what_operators_look_for():
    read = {name for query in dashboard_queries() for name in metric_names(query)}
    assert {
        "imagemesh_modelserver_queue_depth",  # queue depth per model
        "imagemesh_modelserver_batch_images_sum",  # batch size
        "imagemesh_modelserver_images_total",  # images/s
        "imagemesh_gateway_backend_seconds_bucket",  # latency per model
        "imagemesh_gateway_backend_seconds_count",  # errors per model
        "imagemesh_provider_call_seconds_bucket",  # latency per provider
        "imagemesh_provider_call_seconds_count",  # errors per provider
        "up",  # replica count
    } <= read
    queries = " ".join(dashboard_queries())
    assert "by (server)" in queries and "by (provider, model" in queries


@pytest.mark.parametrize("build", WITH_MONITORING)
def test_the_dashboard_is_a_configmap_grafana_finds(build: str, rendered: dict[str, list[Obj]]):
    configmap = named(rendered[build], "ConfigMap", "imagemesh-dashboard")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(configmap["data"]["imagemesh.json"]) == json.loads(DASHBOARD.read_text())


@pytest.mark.parametrize("build", WITH_MONITORING)
def test_every_service_has_a_servicemonitor_on_its_metrics_port(
    build: str, rendered: dict[str, list[Obj]]
):
    objs = rendered[build]
    for name in SERVICES:
        monitor = named(objs, "ServiceMonitor", name)
        service = named(objs, "Service", name)
        selector = monitor["spec"]["selector"]["matchLabels"]
        assert all(service["metadata"]["labels"].get(k) == v for k, v in selector.items())
        service_ports = {port["name"]: port for port in service["spec"]["ports"]}
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["port"] in service_ports, f"ServiceMonitor/{name}: no such Service port"
        target = service_ports[endpoint["port"]]["targetPort"]
        ports = container_ports(pod_spec(named(objs, "Deployment", name)) or {})
        assert target in ports, f"Service/{name}: port {target} is not declared by its pods"
        assert endpoint["path"] == "/metrics"


@pytest.mark.parametrize("build", WITH_MONITORING)
def test_prometheus_in_monitoring_reaches_the_metrics_ports(
    build: str, rendered: dict[str, list[Obj]]
):
    policy = named(rendered[build], "NetworkPolicy", "metrics-from-monitoring")
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    assert rule["ports"] == [{"port": "metrics"}]


@pytest.mark.parametrize("build", WITH_MONITORING)
def test_model_servers_scale_on_queue_depth_and_busy_fraction(
    build: str, rendered: dict[str, list[Obj]], exported: set[str]
):
    objs = rendered[build]
    scaled = {obj["spec"]["scaleTargetRef"]["name"]: obj for obj in of_kind(objs, "ScaledObject")}
    assert set(scaled) == set(MODEL_SERVERS)
    for name, obj in scaled.items():
        named(objs, "Deployment", name)  # the target exists
        server = name.replace("-", "_")
        queries = {t["name"]: t["metadata"]["query"] for t in obj["spec"]["triggers"]}
        assert "imagemesh_modelserver_queue_depth" in queries["queue-depth"]
        assert "imagemesh_modelserver_busy_seconds_total" in queries["busy-fraction"]
        assert all(f'server="{server}"' in queries[t] for t in ("queue-depth", "busy-fraction"))
        assert obj["spec"]["maxReplicaCount"] > max(obj["spec"]["minReplicaCount"], 1)
    for query in scaler_queries(objs):
        assert not metric_names(query) - exported, f"a ScaledObject queries {query!r}"


def test_scale_to_zero_has_a_trigger_that_exists_at_zero(rendered: dict[str, list[Obj]]):
    objs = rendered["examples/gpu-scale-to-zero"]
    edit = named(objs, "ScaledObject", "qwen-edit")
    assert edit["spec"]["minReplicaCount"] == 0
    # With no pod there is no model-server metric: some trigger must read another service's.
    woken = [
        t
        for t in edit["spec"]["triggers"]
        if not any(
            n.startswith("imagemesh_modelserver_") for n in metric_names(t["metadata"]["query"])
        )
    ]
    assert woken and 'backend="qwen_edit"' in woken[0]["metadata"]["query"]
    assert named(objs, "ScaledObject", "qwen-image")["spec"]["minReplicaCount"] == 1


@pytest.mark.parametrize("kind", ["ScaledObject", "ServiceMonitor"])
def test_vendored_schemas_reject_a_misspelt_field(kind: str, rendered: dict[str, list[Obj]]):
    obj = copy.deepcopy(of_kind(rendered["examples/gpu-autoscaling"], kind)[0])
    assert custom_errors(obj) == []
    field = "triggers" if kind == "ScaledObject" else "endpoints"
    obj["spec"][field][0]["metdata" if kind == "ScaledObject" else "intervall"] = {}
    assert custom_errors(obj) != []
