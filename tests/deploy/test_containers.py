"""`make e2e-containers`' containers, checked without a Docker engine: each one is what the cpu
overlay's manifest says (so the two cannot drift), in the `docker run` words the run uses."""

from __future__ import annotations

import base64

import pytest

from scripts.e2e_containers.__main__ import gateway_key, with_run_secrets
from scripts.e2e_containers.docker import run_args
from scripts.e2e_containers.plan import STAND_INS, ContainerPlan, plans, published_port
from tests.deploy.images import make_images
from tests.deploy.manifests import GRPC_PORTS, Obj, of_kind

OVERLAY = "overlays/cpu"


@pytest.fixture(scope="module")
def objs(rendered: dict[str, list[Obj]]) -> list[Obj]:
    return with_run_secrets(rendered[OVERLAY], "sk-e2e-test")


@pytest.fixture(scope="module")
def planned(objs: list[Obj]) -> dict[str, ContainerPlan]:
    return {plan.workload: plan for plan in plans(objs)}


def test_every_workload_of_the_overlay_is_one_container(rendered, planned):
    names = {w["metadata"]["name"] for w in of_kind(rendered[OVERLAY], "Deployment", "StatefulSet")}
    assert set(planned) == names


def test_our_images_run_as_built_and_only_hub_images_have_stand_ins(planned):
    built = {build.ref for build in make_images()}
    for plan in planned.values():
        if plan.manifest_image.startswith("imagemesh/"):
            assert plan.image == plan.manifest_image and plan.image in built
            assert not plan.stand_in
        else:
            repository = plan.manifest_image.rsplit(":", 1)[0]
            assert plan.image == STAND_INS[repository].image, plan.workload


def test_users_root_filesystems_and_capabilities_are_the_manifests(rendered, planned):
    for workload in of_kind(rendered[OVERLAY], "Deployment", "StatefulSet"):
        pod = workload["spec"]["template"]["spec"]
        container = pod["containers"][0]
        plan = planned[workload["metadata"]["name"]]
        security = {**pod["securityContext"], **container["securityContext"]}
        assert plan.user == f"{security['runAsUser']}:{security['runAsGroup']}"
        assert plan.read_only_root is security["readOnlyRootFilesystem"] is True
        assert plan.cap_drop == ["ALL"] and plan.no_new_privileges


def test_docker_run_says_what_the_pod_spec_says(planned, tmp_path):
    plan = planned["qwen-image"]
    args = run_args(plan, "im-qwen-image", "im-net", "r1", tmp_path)
    joined = " ".join(args)
    assert "--read-only" in args and "--user 10001:10001" in joined
    assert "--cap-drop ALL" in joined and "--security-opt no-new-privileges" in joined
    assert (
        "--network-alias qwen-image" in joined and f"--expose {GRPC_PORTS['qwen-image']}" in joined
    )
    # emptyDirs: tmpfs of the manifest's sizeLimit, owned by the pod's user and fsGroup.
    assert "--tmpfs /tmp:rw,nosuid,nodev,mode=1777,uid=10001,gid=10001,size=2147483648" in joined
    assert args[-1] == plan.image  # the image's own CMD, as the manifest gives no command
    env = (tmp_path / "qwen-image.env").read_text().splitlines()
    assert "QWEN_IMAGE_LISTEN=0.0.0.0:50051" in env and "OMP_NUM_THREADS=2" in env
    assert (tmp_path / "qwen-image.env").stat().st_mode & 0o077 == 0, "keys readable by others"
    gateway = run_args(planned["gateway"], "im-gateway", "im-net", "r1", tmp_path, publish=8000)
    assert "127.0.0.1::8000" in gateway
    catalog = tmp_path / "volumes" / "gateway" / "etc_imagemesh" / "catalog.yaml"
    assert f"{catalog.parent}:/etc/imagemesh:ro" in gateway and "qwen-image" in catalog.read_text()


def test_a_statefulsets_volume_claim_is_a_tmpfs_its_user_can_write(planned, tmp_path):
    args = " ".join(run_args(planned["postgres"], "pg", "net", "r1", tmp_path))
    assert "--tmpfs /var/lib/postgresql/data:rw,nosuid,nodev,mode=1777,uid=999,gid=999" in args


def test_secrets_reach_the_environment_with_run_values_in_place_of_placeholders(objs, planned):
    key = gateway_key(objs)
    assert planned["gateway"].env["GATEWAY_API_KEYS"] == key == "sk-e2e-test"
    password = planned["postgres"].env["POSTGRES_PASSWORD"]
    assert password.startswith("e2e-") and "replace-me" not in password
    # One replacement everywhere: the tasks service logs in with the password PostgreSQL sets.
    assert f":{password}@postgres:5432/" in planned["tasks"].env["TASKS_DATABASE_URL"]
    # The storage service signs with its own scoped user (deploy/base/minio-setup.yaml), not
    # MinIO's root login; the moto stand-in checks no credentials, so the Job is not run here.
    storage_key = planned["storage"].env["STORAGE_SECRET_KEY"]
    assert storage_key.startswith("e2e-") and "replace-me" not in storage_key
    assert storage_key != planned["minio"].env["MINIO_ROOT_PASSWORD"]
    assert planned["storage"].env["STORAGE_ACCESS_KEY"] != planned["minio"].env["MINIO_ROOT_USER"]
    assert "minio-setup" not in planned
    for name in ("OPENAI_API_KEY", "DASHSCOPE_API_KEY", "LIBLIB_ACCESS_KEY", "LIBLIB_SECRET_KEY"):
        assert name in planned["providers"].env
    for secret in (o for o in objs if o["kind"] == "Secret"):
        for value in secret["data"].values():
            assert "replace-me" not in base64.b64decode(value).decode()


def test_every_grpc_service_is_probed_with_its_manifests_grpc_probe(planned):
    for name, port in GRPC_PORTS.items():
        probe = planned[name].readiness
        assert probe is not None and probe["grpc"]["port"] == port, name


def test_the_gateway_is_published_on_its_services_target_port(objs):
    assert published_port(objs) == ("gateway", 8000)
