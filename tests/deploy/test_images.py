"""The container images, checked without a Docker engine: the Dockerfile lints clean, every image
`make images` builds is a stage that runs non-root, the manifests run exactly those images, the
build context carries nothing local, and the slim images lack nothing their services import."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from tests.deploy.images import (
    DOCKERFILE,
    chain,
    context_sources,
    ignored,
    last,
    make_images,
    stages,
)
from tests.deploy.manifests import ROOT, SERVICES, Obj, containers


def _load_requirements():
    """deploy/docker/requirements.py (a script the Dockerfile runs, not a package module)."""
    spec = importlib.util.spec_from_file_location(
        "imagemesh_image_requirements", ROOT / "deploy" / "docker" / "requirements.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


requirements = _load_requirements()

SLIM_SERVICES = ("gateway", "providers", "storage")
# Import names of the distributions the slim images leave out.
LEFT_OUT_MODULES = (
    "torch",
    "diffusers",
    "transformers",
    "tokenizers",
    "huggingface_hub",
    "accelerate",
    "safetensors",
    "grpc_tools",
    "supervisor",
)


def hadolint() -> Path:
    return Path(sys.executable).with_name("hadolint")


def test_the_dockerfile_lints_clean():
    result = subprocess.run(
        [str(hadolint()), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_make_images_builds_every_service_in_both_model_flavours():
    refs = {build.ref for build in make_images()}
    assert refs == {
        "imagemesh/gateway:0.1.0",
        "imagemesh/providers:0.1.0",
        "imagemesh/storage:0.1.0",
        "imagemesh/qwen-image:0.1.0-cpu",
        "imagemesh/qwen-image:0.1.0-cuda",
        "imagemesh/qwen-edit:0.1.0-cpu",
        "imagemesh/qwen-edit:0.1.0-cuda",
    }
    other = {b.ref for b in make_images(IMAGE_REGISTRY="registry.example.com/im", IMAGE_TAG="2")}
    assert "registry.example.com/im/qwen-edit:2-cuda" in other


def test_every_image_target_is_a_dockerfile_stage():
    assert {build.target for build in make_images()} <= set(stages())


def test_the_manifests_run_the_images_make_builds(rendered: dict[str, list[Obj]]):
    built = {build.ref for build in make_images()}
    for build, objs in rendered.items():
        for container in containers(objs):
            image = container.spec["image"]
            if image.startswith("imagemesh/"):
                assert image in built, f"{build}: {container.where} runs {image}, never built"


@pytest.mark.parametrize("target", sorted({b.target for b in make_images()}))
def test_every_image_runs_its_service_as_a_numeric_non_root_user(target: str):
    user = last(target, "USER")
    assert user is not None, f"{target} runs as root"
    uid = user.value[0].split(":")[0]
    # Numeric, so that the kubelet can verify runAsNonRoot without reading /etc/passwd.
    assert uid.isdigit() and int(uid) != 0, f"{target} runs as {user.value[0]}"
    cmd = last(target, "CMD")
    assert cmd is not None and cmd.json, f"{target}: CMD must be exec form (signals reach python)"
    assert list(cmd.value[:2]) == ["python", "-m"]
    package = cmd.value[2]
    assert package in SERVICES.values(), f"{target} runs {package}"
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} does not exist yet")
    assert importlib.util.find_spec(f"{package}.__main__") is not None, f"{package} has no __main__"


def test_stubs_are_generated_at_build_like_make_protos():
    makefile = (ROOT / "Makefile").read_text()
    flags = "-Iprotos --python_out=gen --grpc_python_out=gen --pyi_out=gen"
    assert flags in makefile
    commands = [c.value[0] for s in stages().values() for c in s.commands if c.cmd.upper() == "RUN"]
    protoc = [c for c in commands if "grpc_tools.protoc" in c]
    assert protoc and flags in re.sub(r"\s+", " ", protoc[0])
    assert "stubs" in [s.name for s in chain("stubs")]


def test_the_build_context_carries_what_the_images_copy_and_nothing_local():
    for source in context_sources():
        assert (ROOT / source).exists(), f"COPY {source}: no such path"
        assert not ignored(source), f"COPY {source}, but .dockerignore leaves it out"
    for local in (
        "gen/imagemesh/v1/common_pb2.py",
        "models/qwen-image-tiny",
        ".venv/bin/python",
        "run/s3-data",
        "services/gateway/__pycache__/x.pyc",
        ".git/HEAD",
        ".env",
    ):
        assert ignored(local), f"{local} would be sent to the Docker engine"


def test_the_cpu_model_images_hold_the_tiny_pipelines_where_the_servers_look():
    """The image copies services/ and models/ side by side under /app, as in the repository,
    so the settings' default location (under the repository's models/) is right there."""
    copies = {
        tuple(c.value): c.flags
        for s in chain("qwen-image-cpu")
        for c in s.commands
        if c.cmd.upper() == "COPY"
    }
    assert ("services", "/app/services") in copies
    assert ("/build/models", "/app/models") in copies
    tinymodels = pytest.importorskip("services.tinymodels")
    assert tinymodels.MODELS_DIR == ROOT / "models"
    for service, field in (("qwen_image", "location"), ("qwen_edit", "location")):
        if importlib.util.find_spec(f"services.{service}") is None:
            continue
        module = importlib.import_module(f"services.{service}.settings")
        classes = [
            c
            for c in vars(module).values()
            if isinstance(c, type) and field in getattr(c, "model_fields", {})
        ]
        for cls in classes:
            default = cls.model_fields[field].default
            if default:
                assert Path(default).is_relative_to(tinymodels.MODELS_DIR), (
                    f"{cls.__name__}.{field}"
                )


# ---- what goes into each image ----------------------------------------------------------------


def test_every_pinned_dependency_lands_in_an_image():
    deps = requirements.dependencies(ROOT / "pyproject.toml")
    service = set(requirements.flavour(deps, "service"))
    model = set(requirements.flavour(deps, "model"))
    stubs = set(requirements.flavour(deps, "stubs"))
    local_only = {d for d in deps if requirements.name_of(d) in requirements.LOCAL_ONLY}
    assert set(deps) == model | stubs | local_only
    assert service < model
    assert not {requirements.name_of(d) for d in service} & requirements.MODEL_ONLY
    assert requirements.flavour(deps, "torch") == [d for d in deps if d.startswith("torch==")]


def test_requirements_rejects_an_unknown_flavour(capsys):
    assert requirements.main(["requirements.py", "gpu"]) == 2
    assert "usage" in capsys.readouterr().err


BLOCKER = """
import importlib, importlib.abc, json, pkgutil, sys
LEFT_OUT = set(sys.argv[1].split(","))
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in LEFT_OUT:
            raise ModuleNotFoundError(f"No module named {name!r} (not in the slim image)", name=name)
sys.meta_path.insert(0, Blocker())
failures = {}
for package in sys.argv[2:]:
    failures[package] = []
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        if info.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(info.name)
        except Exception as exc:
            failures[package].append(f"{info.name}: {type(exc).__name__}: {exc}")
print(json.dumps(failures))
"""


@cache
def slim_import_failures() -> dict[str, list[str]]:
    present = [
        SERVICES[s] for s in SLIM_SERVICES if importlib.util.find_spec(SERVICES[s]) is not None
    ]
    result = subprocess.run(
        [sys.executable, "-c", BLOCKER, ",".join(LEFT_OUT_MODULES), "services.common", *present],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("service", [*SLIM_SERVICES, "common"])
def test_slim_images_have_everything_their_service_imports(service: str):
    package = SERVICES.get(service, f"services.{service}")
    failures = slim_import_failures()
    if package not in failures:
        pytest.skip(f"{package} does not exist yet")
    assert failures[package] == []
