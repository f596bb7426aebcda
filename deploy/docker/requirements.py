"""Writes the pinned requirement list of one image flavour, taken from pyproject.toml.

The Dockerfile installs each image from this list, so pyproject.toml stays the one place where
versions are pinned. Flavours:

    service  gateway, providers, storage: everything the services import, no torch stack
    model    the model servers: `service` plus the torch/diffusers stack
    torch    the torch pin alone (installed first, from the index the image flavour needs)
    stubs    grpcio-tools and the runtime it must match, for generating the stubs at build

Usage: python requirements.py FLAVOUR > requirements.txt (stdlib only: runs in a bare image).
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

# Imported only by the model servers (and the tiny-model builder).
MODEL_ONLY = frozenset(
    {
        "torch",
        "diffusers",
        "transformers",
        "tokenizers",
        "huggingface-hub",
        "accelerate",
        "safetensors",
    }
)
# Needed to build, never at run time: the stubs are generated in their own stage.
BUILD_ONLY = frozenset({"grpcio-tools"})
# The process supervisor of `make run`; Kubernetes restarts containers itself.
LOCAL_ONLY = frozenset({"supervisor"})
STUB_TOOLS = frozenset({"grpcio-tools", "grpcio", "protobuf"})

FLAVOURS = ("service", "model", "torch", "stubs")


def name_of(requirement: str) -> str:
    """The normalised distribution name of a requirement line (`psycopg[binary]==3` -> psycopg)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise ValueError(f"cannot read a package name from {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def dependencies(pyproject: Path) -> list[str]:
    with pyproject.open("rb") as handle:
        return list(tomllib.load(handle)["project"]["dependencies"])


def flavour(requirements: list[str], which: str) -> list[str]:
    def keep(requirement: str) -> bool:
        name = name_of(requirement)
        if which == "service":
            return name not in MODEL_ONLY | BUILD_ONLY | LOCAL_ONLY
        if which == "model":
            return name not in BUILD_ONLY | LOCAL_ONLY
        if which == "torch":
            return name == "torch"
        if which == "stubs":
            return name in STUB_TOOLS
        raise ValueError(f"unknown flavour {which!r}; choose from {', '.join(FLAVOURS)}")

    return [requirement for requirement in requirements if keep(requirement)]


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in FLAVOURS:
        print(f"usage: {argv[0]} {{{','.join(FLAVOURS)}}} [> requirements.txt]", file=sys.stderr)
        return 2
    pyproject = Path(__file__).with_name("pyproject.toml")
    if not pyproject.exists():
        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    print("\n".join(flavour(dependencies(pyproject), argv[1])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
