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
from packaging.utils import canonicalize_name

from tests.deploy.images import (
    DOCKERFILE,
    LOCKS,
    chain,
    closure,
    context_sources,
    dependency_groups,
    group,
    ignored,
    image_site_packages,
    installed_groups,
    installed_locks,
    last,
    lock_group,
    lock_pins,
    make_images,
    run_commands,
    stages,
)
from tests.deploy.manifests import ROOT, SERVICES, Obj, containers

MAKEFILE_TEXT = (ROOT / "Makefile").read_text()
PIP_VERSION = re.search(r"^PIP_VERSION := (\S+)$", MAKEFILE_TEXT, re.M)[1]  # type: ignore[index]


def ignored_by_git(path: str) -> bool:
    result = subprocess.run(
        ["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT, timeout=30, check=False
    )
    return result.returncode == 0


def stage_env(name: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for command in stages()[name].commands:
        if command.cmd.upper() == "ENV":
            pairs = list(command.value)
            env.update(zip(pairs[::2], pairs[1::2], strict=True))
    return env


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
    fetched = (ROOT / "deploy" / "docker" / "context.sh").read_text()
    for source in context_sources():
        if source.startswith("build/"):
            # The wheels deploy/docker/context.sh fetches for the locks: generated, git-ignored.
            assert f"fetch {source} " in fetched, f"COPY {source}: context.sh never fills it"
            assert ignored_by_git(source), f"{source} would be committed"
        else:
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
def test_the_model_images_install_the_modelserver_lock_of_their_torch_flavour(target: str):
    flavour = target.rsplit("-", 1)[1]
    assert installed_locks(venv_stage(target)) == [f"modelserver-{flavour}"]
    assert set(group("torch")) <= set(group("modelserver"))
    pinned = group("torch")[0].split("==")[1]
    torch_version = lock_pins(f"modelserver-{flavour}")["torch"][0]
    # CPU: the local CPU build of the pinned release; CUDA: PyPI's wheel of it.
    assert torch_version == (f"{pinned}+cpu" if flavour == "cpu" else pinned)


@pytest.mark.parametrize("lock", sorted(p.stem for p in LOCKS.glob("*.txt")))
def test_every_lock_pins_its_groups_versions_with_hashes(lock: str):
    """The images install what the tests ran: each pin of the group, at the same version."""
    pins = lock_pins(lock)
    assert pins and all(hashes for _, hashes in pins.values()), f"{lock}: a pin without a hash"
    name = lock_group(lock)
    if name in dependency_groups():
        wanted = group(name)
    elif name == "pip":
        wanted = [f"pip=={PIP_VERSION}"]
    else:
        # The S3 stand-in of `make e2e-containers`: moto's server, the tests' pin.
        assert name == "s3", f"{lock}: which group?"
        wanted = [r for r in group("dev") if r.startswith("moto")]
    for requirement in wanted:
        dist, version = re.sub(r"\[.*\]", "", requirement).split("==")
        found = pins.get(canonicalize_name(dist), ("missing", []))[0]
        assert found.split("+")[0] == version, f"{lock}: {dist} {found}, pyproject says {version}"


def test_every_lock_the_dockerfile_installs_exists_and_context_sh_fetches_it():
    fetched = (ROOT / "deploy" / "docker" / "context.sh").read_text()
    for stage in stages():
        for lock in installed_locks(stage):
            assert (LOCKS / f"{lock}.txt").exists(), f"{stage}: no lock {lock}"
            assert re.search(rf"fetch build/wheels\S* .*\b{lock}\b", fetched), lock
    runs = [run for stage in stages() for run in run_commands(stage) if "pip install" in run]
    assert runs and all("-r locks/" in run for run in runs), "a pip install outside the locks"
    env = {k: v for stage in chain("venv") for k, v in stage_env(stage.name).items()}
    assert env.get("PIP_NO_INDEX") == "1" and env.get("PIP_REQUIRE_HASHES") == "1"


def test_every_group_the_images_install_exists_and_every_pin_is_exact():
    groups = dependency_groups()
    # `pip` is the pinned pip itself (the Makefile's PIP_VERSION), not a group.
    installed = {name for stage in stages() for name in installed_groups(stage)} - {"pip"}
    assert installed <= set(groups), installed - set(groups)
    assert installed_groups("stubs") == ["protos"]
    for name in groups:
        for requirement in group(name):
            assert re.fullmatch(r"[\w.\[\],-]+==[\w.+]+", requirement), f"{name}: {requirement}"


def test_the_images_and_the_makefile_use_the_same_pip():
    """One pinned pip everywhere: the Makefile's, the Dockerfile's check of it, the pip lock."""
    makefile = re.search(r"^PIP_VERSION := (\S+)$", MAKEFILE_TEXT, re.M)
    dockerfile = re.search(r"^ARG PIP_VERSION=(\S+)$", DOCKERFILE.read_text(), re.M)
    assert makefile and dockerfile and makefile[1] == dockerfile[1]
    assert lock_pins("pip")["pip"][0] == makefile[1]
    assert installed_locks("venv") == ["pip"]
    assert any("pip.__version__ != '${PIP_VERSION}'" in run for run in run_commands("venv"))


def test_no_image_starts_from_a_registry():
    """The base is Debian itself (deploy/docker/base.sh), the syntax the classic builder's."""
    text = DOCKERFILE.read_text()
    assert not text.startswith("# syntax="), "a BuildKit frontend image from Docker Hub"
    own = set(stages())
    for stage in stages().values():
        assert stage.base in own or stage.base == "${BASE_IMAGE}", f"{stage.name}: {stage.base}"
    base = re.search(r"^ARG BASE_IMAGE=(\S+)$", text, re.M)
    assert base and base[1] in (ROOT / "Makefile").read_text()
    assert "debootstrap" in (ROOT / "deploy" / "docker" / "base.sh").read_text()


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
