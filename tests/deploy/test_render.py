"""Every kustomization renders, and every object it renders is valid Kubernetes.

Validation is strict (unknown fields are errors) against the JSON schemas of the newest
Kubernetes release that `kubernetes-validate` ships, so a typo such as `readinesProbe` or a field
in the wrong place fails here instead of at `kubectl apply`.
"""

from __future__ import annotations

import functools
import json

import kubernetes_validate
import pytest

from tests.deploy.crds import custom_errors, is_custom
from tests.deploy.manifests import DEPLOY, Obj, builds, ident, load_file, render

KUBERNETES = kubernetes_validate.latest_version()
EXPECTED_BUILDS = {
    "base",
    "overlays/cpu",
    "overlays/gpu",
    "overlays/cpu-families",
    "overlays/gpu-families",
}
# Manifests applied on their own with `kubectl apply -f`, outside any kustomization.
STANDALONE = sorted((DEPLOY / "jobs").glob("*.yaml"))


@functools.cache
def _schema_error(document: str) -> str | None:
    # Keyed by the object's text: the overlays share most objects, each is validated once.
    obj = json.loads(document)
    if is_custom(obj):  # KEDA, Prometheus operator: their CRDs' vendored schemas
        errors = custom_errors(obj)
        return f"{ident(obj)}: {errors[0]}" if errors else None
    try:
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(part) for part in exc.path)
        return f"{ident(obj)}: {path}: {exc.message}"
    return None


def schema_errors(objs: list[Obj]) -> list[str]:
    errors = (_schema_error(json.dumps(obj, sort_keys=True)) for obj in objs)
    return [error for error in errors if error]


def test_the_overlays_exist():
    assert set(builds()) >= EXPECTED_BUILDS


def test_kubernetes_version_is_current():
    major, minor = (int(part) for part in KUBERNETES.split(".")[:2])
    assert (major, minor) >= (1, 37)


@pytest.mark.parametrize("build", builds())
def test_renders_and_validates(build: str, rendered: dict[str, list[Obj]]):
    objs = rendered[build]
    assert objs, f"deploy/{build} renders nothing"
    assert schema_errors(objs) == []


@pytest.mark.parametrize("path", STANDALONE, ids=lambda p: p.name)
def test_standalone_manifests_validate(path):
    assert schema_errors(load_file(path)) == []


def test_strict_validation_rejects_a_misspelt_field():
    """The check above would catch a typo: prove it on a broken copy of a real object."""
    deployment = next(o for o in render("overlays/cpu") if o["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    assert schema_errors([deployment]) != []


def test_every_object_lands_in_the_imagemesh_namespace(overlays: dict[str, list[Obj]]):
    for build, objs in overlays.items():
        for obj in objs:
            if obj["kind"] == "Namespace":
                continue
            assert obj["metadata"].get("namespace") == "imagemesh", f"{build}: {ident(obj)}"
