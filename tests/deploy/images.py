"""Reading deploy/docker/Dockerfile, .dockerignore and `make images` without a Docker engine.

The Dockerfile is parsed with BuildKit's own parser (the `dockerfile` package); stages are
followed through their `FROM` chain, so a target's effective USER, CMD and ENV can be checked.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import dockerfile

from tests.deploy.manifests import ROOT

DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


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
        if words[:2] == ["docker", "build"]:
            builds.append(
                ImageBuild(words[words.index("--target") + 1], words[words.index("-t") + 1])
            )
    return builds


def repo_path_exists(path: str) -> bool:
    return (ROOT / Path(path)).exists()
