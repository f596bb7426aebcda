"""deploy/ rendered once per session: {build folder: objects} for every Kustomization."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.deploy.manifests import Obj, builds, render


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[Obj]]:
    # kubectl runs as a subprocess per build: render them side by side.
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(builds(), pool.map(render, builds()), strict=True))


@pytest.fixture(scope="session")
def overlays(rendered: dict[str, list[Obj]]) -> dict[str, list[Obj]]:
    """What an operator applies: the overlays and the examples built on them (not base)."""
    return {build: objs for build, objs in rendered.items() if build != "base"}
