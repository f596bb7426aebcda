"""Starting, inspecting and removing the run's containers with the docker CLI.

Every container and the network carry the label `imagemesh.e2e=<run id>`, so `remove_all` finds
exactly what this run made, whatever step failed. Environment values (API keys, passwords) go
through an `--env-file` readable only by its owner, never on a command line.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from scripts.e2e_containers.plan import ContainerPlan

DOCKER = os.environ.get("DOCKER", "docker")
LABEL = "imagemesh.e2e"


def docker(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [DOCKER, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:3])} ...: {result.stderr.strip()}")
    return result


def usable() -> str | None:
    """None when a Docker engine answers, else why not."""
    try:
        result = docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=20)
    except (FileNotFoundError, subprocess.TimeoutExpired) as exc:
        return f"no docker client ({exc})"
    if result.returncode != 0:
        return f"no Docker engine answers ({result.stderr.strip().splitlines()[-1:]})"
    return None


def missing_images(images: list[str]) -> list[str]:
    return [i for i in images if docker("image", "inspect", i, check=False).returncode != 0]


def create_network(name: str, run_id: str) -> None:
    docker("network", "create", "--label", f"{LABEL}={run_id}", name)


def container_name(run_id: str, workload: str) -> str:
    return f"imagemesh-e2e-{run_id}-{workload}"


def run_args(
    plan: ContainerPlan,
    name: str,
    network: str,
    run_id: str,
    workdir: Path,
    publish: int | None = None,
) -> list[str]:
    """`docker run` arguments for one plan: what its pod spec says, in Docker's words; `publish`
    is a container port to publish on a free loopback port of the host."""
    args = ["run", "--detach", "--name", name, "--label", f"{LABEL}={run_id}"]
    # A Deployment's pods restart whatever the exit (restartPolicy: Always), e.g. a service that
    # starts before the database it needs.
    args += ["--restart", "always"]
    args += ["--network", network, "--hostname", f"{plan.workload}-0"]
    for alias in plan.aliases:
        args += ["--network-alias", alias]
    if plan.user:
        args += ["--user", plan.user]
    for group in plan.groups:
        args += ["--group-add", str(group)]
    if plan.read_only_root:
        args.append("--read-only")
    for cap in plan.cap_drop:
        args += ["--cap-drop", cap]
    for cap in plan.cap_add:
        args += ["--cap-add", cap]
    if plan.no_new_privileges:
        args += ["--security-opt", "no-new-privileges"]
    if plan.memory_bytes:
        args += ["--memory", str(plan.memory_bytes)]
    if plan.cpus:
        args += ["--cpus", f"{min(plan.cpus, os.cpu_count() or 1):g}"]
    env_file = workdir / f"{plan.workload}.env"
    env_file.touch(mode=0o600)
    env_file.write_text("".join(f"{k}={v}\n" for k, v in plan.env.items()))
    args += ["--env-file", str(env_file)]
    for mount in plan.mounts:
        if mount.kind == "tmpfs":
            # An emptyDir: empty, writable by the pod's user (the kubelet makes it 0777).
            options = "rw,nosuid,nodev,mode=1777"
            if plan.user:
                # Docker gives a tmpfs over a folder of the image that folder's mode, so own it
                # as the pod's user and fsGroup would (the kubelet chowns volumes to fsGroup).
                uid, gid = plan.user.split(":")
                options += f",uid={uid},gid={plan.groups[0] if plan.groups else gid}"
            if mount.size_bytes:
                options += f",size={mount.size_bytes}"
            args += ["--tmpfs", f"{mount.path}:{options}"]
        else:
            folder = workdir / "volumes" / plan.workload / mount.path.strip("/").replace("/", "_")
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o755)
            for rel, content in mount.files.items():
                (folder / rel).parent.mkdir(parents=True, exist_ok=True)
                (folder / rel).write_text(content)
                (folder / rel).chmod(0o644)
            args += ["--volume", f"{folder}:{mount.path}:ro"]
    for port in sorted(set(plan.ports.values())):
        args += ["--expose", str(port)]
    if publish is not None:
        args += ["--publish", f"127.0.0.1::{publish}"]
    if plan.command:
        args += ["--entrypoint", plan.command[0]]
    args.append(plan.image)
    if plan.command:
        args += plan.command[1:]
    if plan.args is not None:
        args += plan.args
    return args


def host_port(name: str, container_port: int) -> int:
    """The loopback port Docker published a container port on."""
    line = docker("port", name, f"{container_port}/tcp").stdout.split()[0]
    return int(line.rsplit(":", 1)[1])


def inspect(name: str) -> dict:
    return json.loads(docker("inspect", name).stdout)[0]


def address(name: str, network: str) -> str:
    return inspect(name)["NetworkSettings"]["Networks"][network]["IPAddress"]


def running(name: str) -> bool:
    return bool(inspect(name)["State"]["Running"])


def restarts(name: str) -> int:
    return int(inspect(name)["RestartCount"])


def logs(name: str, tail: int = 40) -> str:
    result = docker("logs", "--tail", str(tail), name, check=False)
    return (result.stdout + result.stderr).strip()


def exec_in(name: str, command: list[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return docker("exec", name, *command, check=False, timeout=timeout)


def stop(name: str, grace_seconds: int) -> int:
    """SIGTERM, up to the grace period, then SIGKILL; the container's exit code."""
    docker("stop", "--time", str(grace_seconds), name, check=False, timeout=grace_seconds + 30)
    return int(inspect(name)["State"]["ExitCode"])


def remove_all(run_id: str) -> None:
    """Every container and network this run labelled, whatever state they are in."""
    ids = docker("ps", "-aq", "--filter", f"label={LABEL}={run_id}", check=False).stdout.split()
    if ids:
        docker("rm", "--force", "--volumes", *ids, check=False)
    nets = docker("network", "ls", "-q", "--filter", f"label={LABEL}={run_id}", check=False)
    for net in nets.stdout.split():
        docker("network", "rm", net, check=False)
