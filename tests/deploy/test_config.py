"""Configuration: credentials only in Secrets, the catalogue in a ConfigMap the gateway reads."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
import yaml

from tests.deploy.manifests import DEPLOY, ROOT, Obj, containers, env_value, named, of_kind

# Names that say "this is a credential".
KEY_LIKE = re.compile(
    r"(api[_-]?keys?|secret|passw(or)?d|token|credential|access[_-]?key|private[_-]?key)", re.I
)
PROVIDER_KEYS = ("OPENAI_API_KEY", "DASHSCOPE_API_KEY", "LIBLIB_ACCESS_KEY", "LIBLIB_SECRET_KEY")


def secret_values(secret: Obj) -> dict[str, str]:
    values = {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}
    values.update(secret.get("stringData", {}))
    return values


def mapping_keys(value: object) -> list[str]:
    """Every mapping key at any depth of a parsed YAML/JSON document."""
    if isinstance(value, dict):
        return [str(k) for k in value] + [k for v in value.values() for k in mapping_keys(v)]
    if isinstance(value, list):
        return [k for v in value for k in mapping_keys(v)]
    return []


def test_no_secret_value_appears_in_a_configmap(rendered: dict[str, list[Obj]]):
    for build, objs in rendered.items():
        # Grafana dashboards are PromQL, full of the word `imagemesh` (the placeholder MinIO
        # user): test_monitoring checks they hold queries over exported metrics only.
        texts = [
            v
            for c in of_kind(objs, "ConfigMap")
            if "grafana_dashboard" not in c["metadata"].get("labels", {})
            for v in c.get("data", {}).values()
        ]
        for secret in of_kind(objs, "Secret"):
            for key, value in secret_values(secret).items():
                if len(value) < 4:
                    continue
                assert not any(value in text for text in texts), (
                    f"{build}: the value of Secret {secret['metadata']['name']}/{key} "
                    "is in a ConfigMap"
                )


def test_no_key_like_name_in_a_configmap(rendered: dict[str, list[Obj]]):
    for build, objs in rendered.items():
        for configmap in of_kind(objs, "ConfigMap"):
            for name, text in configmap.get("data", {}).items():
                assert not KEY_LIKE.search(name), f"{build}: ConfigMap key {name}"
                try:
                    document = yaml.safe_load(text)
                except yaml.YAMLError:
                    document = None
                found = [k for k in mapping_keys(document) if KEY_LIKE.search(k)]
                assert found == [], f"{build}: ConfigMap {name} holds {found}"


def test_credentials_in_env_come_from_secrets(rendered: dict[str, list[Obj]]):
    """A key-like variable is never a literal in a manifest (nor a ConfigMap reference)."""
    for build, objs in rendered.items():
        for container in containers(objs):
            for entry in container.spec.get("env", []):
                if KEY_LIKE.search(entry["name"]) or entry["name"].endswith("DATABASE_URL"):
                    assert "secretKeyRef" in entry.get("valueFrom", {}), (
                        f"{build}: {container.where} sets {entry['name']} outside a Secret"
                    )
            for source in container.spec.get("envFrom", []):
                assert "configMapRef" not in source, f"{build}: {container.where} envFrom"


def test_provider_keys_reach_the_providers_service_from_one_secret(overlays):
    for build, objs in overlays.items():
        providers = named(objs, "Deployment", "providers")["spec"]["template"]["spec"]
        env = {e["name"]: e for e in providers["containers"][0]["env"]}
        for key in PROVIDER_KEYS:
            ref = env[key]["valueFrom"]["secretKeyRef"]
            assert ref["name"].startswith("provider-keys"), f"{build}: {key} from {ref}"
            assert ref["key"] == key
            # A missing key means "that provider is not configured" (503), not a pod that
            # cannot start.
            assert ref.get("optional") is True


def test_the_gateway_mounts_the_catalogue_where_it_looks(overlays: dict[str, list[Obj]]):
    for build, objs in overlays.items():
        pod = named(objs, "Deployment", "gateway")["spec"]["template"]["spec"]
        container = pod["containers"][0]
        path = Path(env_value(container, "GATEWAY_CATALOG_PATH") or "")
        mount = next(m for m in container["volumeMounts"] if Path(m["mountPath"]) == path.parent)
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        configmap = named(objs, "ConfigMap", volume["configMap"]["name"])
        assert path.name in configmap["data"], f"{build}: {path.name} not in the ConfigMap"


def test_the_deployed_catalogue_is_the_gateways_default():
    """deploy/base/catalog.yaml is a copy (kustomize reads nothing outside its folder)."""
    default = ROOT / "services" / "gateway" / "catalog.yaml"
    if not default.exists():
        pytest.skip("services/gateway/catalog.yaml does not exist yet")
    deployed = yaml.safe_load((DEPLOY / "base" / "catalog.yaml").read_text())
    assert deployed == yaml.safe_load(default.read_text()), (
        "the gateway's catalogue changed: cp services/gateway/catalog.yaml deploy/base/"
    )


def test_the_deployed_catalogue_loads_in_the_gateway():
    catalog = pytest.importorskip("services.gateway.catalog", reason="gateway catalogue not built")
    loaded = catalog.Catalog.load(DEPLOY / "base" / "catalog.yaml")
    assert "qwen-image" in loaded.names()
