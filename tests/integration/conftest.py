"""Integration fixtures: the whole mesh (storage, both model servers, providers, gateway) as
real processes, started once per session and shared by every suite that asks for `mesh`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.mesh import Mesh, start_mesh


@pytest.fixture(scope="session")
def mesh(s3_server) -> Iterator[Mesh]:
    mesh = start_mesh(s3_server.env(), s3_server.endpoint)
    yield mesh
    mesh.stop()
