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
    closure,
    context_sources,
    dependency_groups,
    group,
    ignored,
    image_site_packages,
    installed_groups,
    last,
    make_images,
    run_commands,
    stages,
)
from tests.deploy.manifests import ROOT, SERVICES, Obj, containers

# What each image runs (the manifests' SERVICES, and the task service).
IMAGE_SERVICES = {**SERVICES, "tasks": "services.tasks"}
# Each slim image: the venv stage it copies, holding the dependency group of the same name.
SLIM_SERVICES = ("gateway", "providers", "storage", "tasks")
MODEL_IMAGES = ("qwen-image-cpu", "qwen-edit-cpu", "qwen-image-cuda", "qwen-edit-cuda")
# The torch stack: never in a slim image.
TORCH_STACK = {"torch", "diffusers", "transformers", "accelerate", "safetensors"}


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
        "imagemesh/tasks:0.1.0",
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


@pytest.mark.parametrize("build", make_images(), ids=lambda build: build.target)
def test_every_image_runs_its_service_as_a_numeric_non_root_user(build):
    target = build.target
    user = last(target, "USER")
    assert user is not None, f"{target} runs as root"
    uid = user.value[0].split(":")[0]
    # Numeric, so that the kubelet can verify runAsNonRoot without reading /etc/passwd.
    assert uid.isdigit() and int(uid) != 0, f"{target} runs as {user.value[0]}"
    cmd = last(target, "CMD")
    assert cmd is not None and cmd.json, f"{target}: CMD must be exec form (signals reach python)"
    assert list(cmd.value[:2]) == ["python", "-m"]
    package = cmd.value[2]
    image = build.ref.split("/")[-1].split(":")[0]
    assert package == IMAGE_SERVICES[image], f"{target} runs {package}"
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


def venv_stage(target: str) -> str:
    """The stage whose /opt/venv the image copies."""
    copies = [
        flag.split("=", 1)[1]
        for stage in chain(target)
        for c in stage.commands
        if c.cmd.upper() == "COPY" and list(c.value[-1:]) == ["/opt/venv"]
        for flag in c.flags
        if flag.startswith("--from=")
    ]
    assert len(copies) == 1, f"{target} copies /opt/venv from {copies}"
    return copies[0]


@pytest.mark.parametrize("target", SLIM_SERVICES)
def test_each_slim_image_installs_only_its_services_group_and_no_torch(target: str):
    stage = venv_stage(target)
    assert installed_groups(stage) == [target], f"{stage} installs {installed_groups(stage)}"
    assert not closure(group(target)) & TORCH_STACK, f"the {target} group brings torch"


@pytest.mark.parametrize("target", MODEL_IMAGES)
def test_the_model_images_install_torch_first_then_the_modelserver_group(target: str):
    # The CUDA flavour installs torch in either branch of an `if` (its index URL or PyPI's).
    assert list(dict.fromkeys(installed_groups(venv_stage(target)))) == ["torch", "modelserver"]
    assert set(group("torch")) <= set(group("modelserver"))


def test_every_group_the_images_install_exists_and_every_pin_is_exact():
    groups = dependency_groups()
    installed = {name for stage in stages() for name in installed_groups(stage)}
    assert installed <= set(groups), installed - set(groups)
    assert installed_groups("stubs") == ["protos"]
    for name in groups:
        for requirement in group(name):
            assert re.fullmatch(r"[\w.\[\],-]+==[\w.+]+", requirement), f"{name}: {requirement}"


def test_the_images_and_the_makefile_use_the_same_pip():
    """Dependency groups need pip >= 25.1; one pinned pip everywhere."""
    makefile = re.search(r"^PIP_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    dockerfile = re.search(r"^ARG PIP_VERSION=(\S+)$", DOCKERFILE.read_text(), re.M)
    assert makefile and dockerfile and makefile[1] == dockerfile[1]
    assert any('pip install "pip==${PIP_VERSION}"' in run for run in run_commands("venv"))


# Run with `python -S` (no site-packages, no .pth files) on the image's path: the project and its
# stubs first, as the images' PYTHONPATH=/app:/app/gen has them, then the image's site-packages.
WALKER = """
import importlib, json, pkgutil, sys
root, site, packages = sys.argv[1], sys.argv[2], sys.argv[3:]
sys.path[:0] = [root, root + "/gen", site]
failures = []
for package in packages:
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        if info.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(info.name)
        except Exception as exc:
            failures.append(f"{info.name}: {type(exc).__name__}: {exc}")
print(json.dumps(failures))
"""


@pytest.fixture(scope="module")
def import_failures(tmp_path_factory):
    """Every module of the packages, imported with only one group's distributions installed."""

    @cache
    def failures(group_name: str, packages: tuple[str, ...]) -> list[str]:
        site = image_site_packages(group(group_name), tmp_path_factory.mktemp(group_name))
        result = subprocess.run(
            [sys.executable, "-S", "-c", WALKER, str(ROOT), str(site), *packages],
            cwd=tmp_path_factory.getbasetemp(),
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout.strip().splitlines()[-1])

    return failures


@pytest.mark.parametrize("service", SLIM_SERVICES)
def test_slim_images_have_everything_their_service_imports(service: str, import_failures):
    package = IMAGE_SERVICES[service]
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} does not exist yet")
    assert import_failures(service, ("services.common", package)) == []


def test_the_model_images_have_everything_the_model_servers_import(import_failures):
    packages = ("services.common", "services.modelserver", "services.qwen_image")
    packages += ("services.qwen_edit", "services.tinymodels")
    assert import_failures("modelserver", packages) == []
