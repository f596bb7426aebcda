"""Secure defaults of deploy/ (issue 19 section 3): no API without keys unless said so, secrets
from Secrets, egress denied by default (only the providers service reaches the internet, nothing
reaches the metadata address), metrics only from the `monitoring` namespace, MinIO's admin API
never behind the ingress, and `make deploy-check` failing on placeholders and on a missing
egress policy."""

from __future__ import annotations

import copy
import ipaddress
import subprocess
import sys

import pytest
from pydantic import ValidationError

from services.gateway.settings import GatewaySettings
from tests.deploy.manifests import ROOT, Obj, env_value, named, of_kind, pod_labels, pod_spec
from tests.deploy.manifests import label_selector_matches as matches
from tests.deploy.secure import placeholder_secrets, problems

METADATA = ipaddress.ip_address("169.254.169.254")
PUBLIC = ipaddress.ip_address("8.8.8.8")


def _env(objs: list[Obj], deployment: str, name: str) -> dict:
    container = pod_spec(named(objs, "Deployment", deployment))["containers"][0]
    return next(e for e in container["env"] if e["name"] == name)


def test_the_gateway_needs_keys_unless_anonymous_access_is_said(rendered):
    for build, objs in rendered.items():
        keys = _env(objs, "gateway", "GATEWAY_API_KEYS")["valueFrom"]["secretKeyRef"]
        assert not keys.get("optional", False), build
        assert (
            env_value(
                pod_spec(named(objs, "Deployment", "gateway"))["containers"][0],
                "GATEWAY_ALLOW_ANONYMOUS",
            )
            == "false"
        ), build


def test_the_gateway_refuses_to_start_with_the_manifests_setting_and_no_keys():
    with pytest.raises(ValidationError, match="GATEWAY_ALLOW_ANONYMOUS"):
        GatewaySettings(allow_anonymous=False, api_keys=[])
    assert GatewaySettings(allow_anonymous=False, api_keys=["sk-1"]).api_keys == ["sk-1"]
    assert GatewaySettings(allow_anonymous=True, api_keys=[]).api_keys == []


def test_the_webhook_secret_comes_from_a_secret(rendered):
    for build, objs in rendered.items():
        entry = _env(objs, "tasks", "TASKS_WEBHOOK_SECRET")
        assert "value" not in entry and entry["valueFrom"]["secretKeyRef"]["key"], build


def _egress_rules(objs: list[Obj], labels: dict[str, str]) -> list[Obj] | None:
    """The egress rules that apply to a pod with `labels`; None when no policy restricts it."""
    policies = [
        p
        for p in of_kind(objs, "NetworkPolicy")
        if "Egress" in p["spec"].get("policyTypes", [])
        and matches(p["spec"]["podSelector"], labels)
    ]
    if not policies:
        return None
    return [rule for p in policies for rule in p["spec"].get("egress", [])]


def _reaches(rules: list[Obj], address: ipaddress.IPv4Address) -> bool:
    for rule in rules:
        for peer in rule.get("to", [{}]):
            block = peer.get("ipBlock")
            if block is None:
                continue
            network = ipaddress.ip_network(block["cidr"])
            excepted = any(address in ipaddress.ip_network(e) for e in block.get("except", []))
            if address.version == network.version and address in network and not excepted:
                return True
    return False


def test_egress_is_denied_by_default_and_only_providers_reach_the_internet(rendered):
    for build, objs in rendered.items():
        hub = "weights-from-hub" in build
        for workload in of_kind(objs, "Deployment", "StatefulSet", "Job"):
            name = workload["metadata"]["name"]
            rules = _egress_rules(objs, pod_labels(workload))
            assert rules is not None, f"{build}: {name} may open any connection"
            internet = name == "providers" or (hub and name in ("qwen-image", "qwen-edit"))
            assert _reaches(rules, PUBLIC) == internet, f"{build}: {name}"
            assert not _reaches(rules, METADATA), f"{build}: {name} reaches the metadata address"


def test_metrics_ports_only_from_the_monitoring_namespace(rendered):
    monitoring = {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    for build, objs in rendered.items():
        for policy in of_kind(objs, "NetworkPolicy"):
            for rule in policy["spec"].get("ingress", []):
                if any(p.get("port") == "metrics" for p in rule.get("ports", [])):
                    for peer in rule.get("from", []):
                        assert peer.get("namespaceSelector") == monitoring, (build, policy)
                        assert "podSelector" not in peer, (build, policy)


def test_the_ingress_never_exposes_minios_admin_api(rendered):
    for build, objs in rendered.items():
        for ingress in of_kind(objs, "Ingress"):
            for rule in ingress["spec"].get("rules", []):
                for path in rule["http"]["paths"]:
                    if path["backend"]["service"]["name"] != "minio":
                        continue
                    # Only the bucket: not "/" (which holds /minio/admin/) nor the console port.
                    assert path["path"].strip("/") == "imagemesh", (build, path)
                    assert path["backend"]["service"]["port"] == {"name": "s3"}, (build, path)


def test_deploy_check_finds_the_placeholders_shipped(overlays):
    for build, objs in overlays.items():
        found = placeholder_secrets(objs)
        assert any("minio-credentials" in f and "MINIO_ROOT_PASSWORD" in f for f in found), build
        assert any("tasks-webhook" in f for f in found), build
        assert problems(objs) == [f"placeholder secret: {f}" for f in found], build


def test_deploy_check_passes_once_replaced_and_fails_without_the_egress_policy(overlays):
    objs = copy.deepcopy(overlays["overlays/cpu"])
    for secret in of_kind(objs, "Secret"):
        secret["data"] = {k: "c2VjcmV0" for k in secret.get("data", {})}  # "secret"
    assert problems(objs) == []
    without = [o for o in objs if o["metadata"]["name"] != "default-deny-egress"]
    assert problems(without) == [
        "no default-deny egress NetworkPolicy (podSelector {}, policyTypes Egress)"
    ]


def test_make_deploy_checks_command_fails_on_the_shipped_overlay():
    result = subprocess.run(
        [sys.executable, "-m", "tests.deploy.secure", "overlays/cpu"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "deploy/overlays/cpu: placeholder secret: Secret/" in result.stderr
    assert "MINIO_ROOT_PASSWORD" in result.stderr
