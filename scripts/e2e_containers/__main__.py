"""`make e2e-containers`: the cpu overlay's whole mesh as containers, checked end to end.

    python -m scripts.e2e_containers [--overlay deploy/overlays/cpu] [--keep-going]

Renders the overlay, starts one container per Deployment and StatefulSet on a private network as
its manifest says (scripts/e2e_containers/plan.py), waits for each readiness probe, checks that
each runs as its manifest's user on a read-only root filesystem, runs a generation, an edit, a
streamed generation and a task through the gateway's published port, checks every container's
probe again (the gRPC health of each gRPC service), stops them all with SIGTERM and their grace
period, and removes every container and the network, even on failure or Ctrl-C. Placeholder
passwords and an empty GATEWAY_API_KEYS are replaced with values made for this run (what the
overlay's README asks an operator to do), so the run proves the keys reach the services.
"""

from __future__ import annotations

import argparse
import base64
import secrets
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

from scripts.e2e_containers import checks, docker, probes
from scripts.e2e_containers.plan import ContainerPlan, Obj, plans, published_port, render

PLACEHOLDER = "replace-me"


def with_run_secrets(objs: list[Obj], api_key: str) -> list[Obj]:
    """The rendered Secrets with each placeholder value replaced by one random value, the same
    everywhere it occurs (so DATABASE_URL keeps POSTGRES_PASSWORD), and the gateway's key set."""
    replacements: dict[str, str] = {}
    out = []
    for obj in objs:
        if obj["kind"] != "Secret":
            out.append(obj)
            continue
        data = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
        for key, value in data.items():
            for word in value.replace("@", " ").replace(":", " ").replace("/", " ").split():
                if word.startswith(PLACEHOLDER):
                    replacements.setdefault(word, f"e2e-{secrets.token_hex(12)}")
            if key == "GATEWAY_API_KEYS" and not value:
                data[key] = api_key
        for key, value in data.items():
            for old, new in replacements.items():
                value = value.replace(old, new)
            data[key] = value
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        out.append({**obj, "data": encoded})
    return out


def gateway_key(objs: list[Obj]) -> str:
    for obj in objs:
        if obj["kind"] == "Secret" and "GATEWAY_API_KEYS" in (obj.get("data") or {}):
            keys = base64.b64decode(obj["data"]["GATEWAY_API_KEYS"]).decode()
            return keys.split(",")[0].strip()
    raise LookupError("no Secret holds GATEWAY_API_KEYS")


def say(message: str) -> None:
    print(f"e2e-containers: {message}", flush=True)


def check_user_and_root(plan: ContainerPlan, name: str) -> str:
    """The process's uid is the manifest's, and / is not writable when the manifest says so."""
    uid = docker.exec_in(name, ["id", "-u"]).stdout.strip()
    if plan.user and uid != plan.user.split(":")[0]:
        raise checks.CheckFailed(f"{plan.workload} runs as uid {uid}, manifest says {plan.user}")
    wrote = docker.exec_in(name, ["touch", "/e2e-write-check"]).returncode == 0
    if plan.read_only_root and wrote:
        raise checks.CheckFailed(f"{plan.workload}: / is writable, manifest says read-only")
    return f"uid {uid}, root {'read-only' if not wrote else 'writable'}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--overlay", default="deploy/overlays/cpu")
    args = parser.parse_args(argv)
    started = time.monotonic()

    why = docker.usable()
    if why:
        say(f"cannot run: {why}")
        return 2
    api_key = f"sk-e2e-{secrets.token_hex(16)}"
    objs = with_run_secrets(render(args.overlay), api_key)
    api_key = gateway_key(objs)
    planned = plans(objs)
    missing = docker.missing_images(sorted({p.image for p in planned}))
    if missing:
        say(f"images missing: {', '.join(missing)} (make images-cpu e2e-stand-ins)")
        return 2
    public_workload, public_port = published_port(objs)

    run_id = secrets.token_hex(4)
    network = f"imagemesh-e2e-{run_id}"
    workdir = Path(tempfile.mkdtemp(prefix="imagemesh-e2e-"))

    def interrupted(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, interrupted)
    failed = False
    try:
        docker.create_network(network, run_id)
        names = {p.workload: docker.container_name(run_id, p.workload) for p in planned}
        for plan in planned:
            publish = public_port if plan.workload == public_workload else None
            docker.docker(
                *docker.run_args(plan, names[plan.workload], network, run_id, workdir, publish)
            )
        say(f"started {len(planned)} containers on network {network}: {', '.join(names)}")

        ips = {p.workload: docker.address(names[p.workload], network) for p in planned}
        for plan in planned:
            outcome = probes.wait_ready(
                plan, names[plan.workload], ips[plan.workload], probes.startup_budget(plan)
            )
            if not outcome.ok:
                raise checks.CheckFailed(f"{plan.workload} never ready: {outcome.detail}")
            say(f"ready  {plan.workload:<11} {outcome.detail}")
        say(f"all ready {time.monotonic() - started:.0f} s after the start")

        for plan in planned:
            say(f"runs   {plan.workload:<11} {check_user_and_root(plan, names[plan.workload])}")

        port = docker.host_port(names[public_workload], public_port)
        s3 = next(p for p in planned if "minio" in p.aliases)
        gw = checks.Gateway(
            base_url=f"http://127.0.0.1:{port}",
            api_key=api_key,
            s3_url=f"http://{ips[s3.workload]}:{s3.port('s3')}",
        )
        say(f"gateway published on 127.0.0.1:{port}")
        say(f"check  auth        {checks.key_required(gw)}")
        detail, picture = checks.generation(gw)
        say(f"check  generation  {detail}")
        say(f"check  edit        {checks.edit(gw, picture)}")
        say(f"check  stream      {checks.streamed_generation(gw)}")
        say(f"check  task        {checks.task(gw)}")

        for plan in planned:
            probe = plan.readiness or plan.startup
            if probe is None:
                continue
            outcome = probes.run(probe, plan, names[plan.workload], ips[plan.workload])
            if not outcome.ok:
                raise checks.CheckFailed(f"{plan.workload} after the checks: {outcome.detail}")
            say(f"health {plan.workload:<11} {outcome.detail}")

        for plan in planned:
            code = docker.stop(names[plan.workload], min(plan.grace_seconds, 30))
            say(f"stop   {plan.workload:<11} exit {code}")
            # SIGTERM is a clean stop for our services; the stand-ins are not under test.
            if code != 0 and not plan.stand_in:
                raise checks.CheckFailed(f"{plan.workload} exited {code} on SIGTERM")
    except (checks.CheckFailed, RuntimeError, KeyboardInterrupt) as exc:
        failed = True
        say(f"FAILED: {exc}")
        for plan in planned:
            name = docker.container_name(run_id, plan.workload)
            log = docker.logs(name, tail=15)
            if log:
                print(f"---- {plan.workload} (last lines)\n{log}", file=sys.stderr)
    finally:
        docker.remove_all(run_id)
        shutil.rmtree(workdir, ignore_errors=True)
        say(f"removed the containers and network {network}")
    say(f"{'FAILED' if failed else 'passed'} in {time.monotonic() - started:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
