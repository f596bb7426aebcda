"""Reading deploy/docker/Dockerfile, .dockerignore, `make images` and pyproject.toml's dependency
groups without a Docker engine.

The Dockerfile is parsed with BuildKit's own parser (the `dockerfile` package); stages are
followed through their `FROM` chain, so a target's effective USER, CMD and ENV can be checked.
A group's distributions are followed through the venv's installed metadata, so a test can tell
which top-level modules an image built from that group would lack.
"""

from __future__ import annotations

import importlib.metadata
import re
import shlex
import subprocess
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import dockerfile
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.manifests import ROOT

DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PYPROJECT = ROOT / "pyproject.toml"


@dataclass
class Stage:
    name: str
    base: str
    commands: list[dockerfile.Command] = field(default_factory=list)


@cache
def stages() -> dict[str, Stage]:
    found: dict[str, Stage] = {}
    current: Stage | None = None
    for command in dockerfile.parse_file(str(DOCKERFILE)):
        if command.cmd.upper() == "FROM":
            values = [v for v in command.value]
            name = values[2] if len(values) > 2 and values[1].upper() == "AS" else str(len(found))
            current = found[name] = Stage(name, values[0])
        elif current is not None:
            current.commands.append(command)
    return found


def chain(target: str) -> list[Stage]:
    """The target's stage and every stage it is built FROM, base first."""
    all_stages = stages()
    result = []
    name: str | None = target
    while name in all_stages:
        stage = all_stages[name]
        result.append(stage)
        name = stage.base
    return list(reversed(result))


def last(target: str, instruction: str) -> dockerfile.Command | None:
    for stage in reversed(chain(target)):
        for command in reversed(stage.commands):
            if command.cmd.upper() == instruction:
                return command
    return None


def dockerfile_env(target: str) -> dict[str, str]:
    """ENV set in the target's own stage (what configures the service it runs)."""
    env: dict[str, str] = {}
    for command in stages()[target].commands:
        if command.cmd.upper() == "ENV":
            pairs = list(command.value)
            env.update(zip(pairs[::2], pairs[1::2], strict=True))
    return env


def context_sources() -> list[str]:
    """Paths every `COPY` (without --from) takes from the build context."""
    sources = []
    for stage in stages().values():
        for command in stage.commands:
            if command.cmd.upper() != "COPY":
                continue
            if any(flag.startswith("--from") for flag in command.flags):
                continue
            sources.extend(command.value[:-1])
    return sources


def dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex: `**` any folders, `*` and `?` within one name."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def _matches(pattern: str, path: str) -> bool:
    """Docker's rule: a pattern matches a path or any of its parent folders."""
    regex = _regex(pattern)
    parts = path.split("/")
    return any(regex.match("/".join(parts[:i])) for i in range(1, len(parts) + 1))


def ignored(path: str) -> bool:
    """Whether .dockerignore keeps `path` (relative to the repository) out of the context."""
    excluded = False
    for pattern in dockerignore_patterns():
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!").strip("/")
        if _matches(pattern, path):
            excluded = not negate
    return excluded


@dataclass(frozen=True)
class ImageBuild:
    target: str
    ref: str


def make_images(**variables: str) -> list[ImageBuild]:
    """The `docker build` commands `make images` would run (dry run: no Docker needed)."""
    args = [f"{k}={v}" for k, v in variables.items()]
    result = subprocess.run(
        ["make", "-s", "-n", "images", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    builds = []
    for line in result.stdout.splitlines():
        words = shlex.split(line)
        # `DOCKER_BUILDKIT=0 nice -n 10 docker build ...`: the build wherever it starts.
        at = next((i for i in range(len(words) - 1) if words[i : i + 2] == ["docker", "build"]), -1)
        if at >= 0:
            builds.append(
                ImageBuild(words[words.index("--target") + 1], words[words.index("-t") + 1])
            )
    return builds


def repo_path_exists(path: str) -> bool:
    return (ROOT / Path(path)).exists()


def run_commands(stage: str) -> list[str]:
    """The shell text of every RUN in one stage (not its bases)."""
    return [c.value[0] for c in stages()[stage].commands if c.cmd.upper() == "RUN"]


LOCKS = ROOT / "deploy" / "docker" / "locks"


def installed_locks(stage: str) -> list[str]:
    """The lock files (deploy/docker/locks/NAME.txt) a stage's `pip install -r` commands install."""
    return [m for run in run_commands(stage) for m in re.findall(r"-r locks/([\w-]+)\.txt", run)]


def lock_group(lock: str) -> str:
    """The dependency group a lock file resolves: `modelserver-cpu` -> `modelserver`."""
    return re.sub(r"-(cpu|cuda)$", "", lock)


def installed_groups(stage: str) -> list[str]:
    """The dependency groups a stage installs, through their lock files."""
    return [lock_group(lock) for lock in installed_locks(stage)]


def lock_pins(lock: str) -> dict[str, tuple[str, list[str]]]:
    """A lock file's distributions: canonical name -> (exact version, sha256 hashes)."""
    pins: dict[str, tuple[str, list[str]]] = {}
    name = ""
    for line in (LOCKS / f"{lock}.txt").read_text().splitlines():
        if match := re.match(r"^([A-Za-z0-9][\w.-]*)(\[[\w,-]+\])?==(\S+)", line):
            name = canonicalize_name(match[1])
            pins[name] = (match[3], [])
        elif match := re.search(r"--hash=sha256:([0-9a-f]{64})", line):
            pins[name][1].append(match[1])
    return pins


@cache
def dependency_groups() -> dict[str, list[str | dict[str, str]]]:
    with PYPROJECT.open("rb") as handle:
        return tomllib.load(handle)["dependency-groups"]


def group(name: str) -> list[str]:
    """A group's requirements, with every `include-group` followed (PEP 735)."""
    requirements: list[str] = []
    for entry in dependency_groups()[name]:
        if isinstance(entry, dict):
            requirements.extend(r for r in group(entry["include-group"]) if r not in requirements)
        elif entry not in requirements:
            requirements.append(entry)
    return requirements


def closure(requirements: list[str]) -> set[str]:
    """The distributions `pip install` of these requirements brings: them and everything they
    require, read from the venv's installed metadata (markers evaluated here, extras followed)."""
    found: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        key = f"{name}[{','.join(sorted(requirement.extras))}]"
        if key in found:
            continue
        found.add(key)
        found.add(name)
        for line in importlib.metadata.requires(name) or []:
            needed = Requirement(line)
            extras = [""] + sorted(requirement.extras)
            if needed.marker is None or any(
                needed.marker.evaluate({"extra": extra}) for extra in extras
            ):
                todo.append(needed)
    return {key for key in found if "[" not in key}


def image_site_packages(requirements: list[str], folder: Path) -> Path:
    """A site-packages folder holding only the requirements' closure (symlinks into this venv's):
    what an image's venv built from them would hold. The project itself is left out: images run it
    from /app on PYTHONPATH."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in closure(requirements):
        distribution = importlib.metadata.distribution(name)
        for file in distribution.files or []:
            if file.parts[0] == ".." or file.parts[0].endswith(".pth"):
                continue
            source = Path(str(distribution.locate_file(file.parts[0])))
            link = folder / file.parts[0]
            if source.exists() and not link.exists():
                link.symlink_to(source)
    return folder
