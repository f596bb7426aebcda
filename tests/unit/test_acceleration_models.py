"""/v1/models shows what a model server runs with: its acceleration switches, read from the
server itself (ModelServer.Describe) by the gateway's model list."""

from __future__ import annotations

import json

import pytest

from services.gateway.catalog import Catalog
from services.gateway.clients import Backends
from services.gateway.model_list.serving import ModelListService
from services.gateway.settings import DEFAULT_CATALOG, GatewaySettings
from services.qwen_image.service import start
from services.qwen_image.settings import QwenImageSettings
from tests.support.tiny_models import ensure_tiny_models

CONFIG = {"Fn_compute_blocks": 1, "Bn_compute_blocks": 0, "residual_diff_threshold": 0.5}


@pytest.fixture(scope="module", autouse=True)
def tiny_models() -> None:
    ensure_tiny_models()


async def test_the_model_list_shows_a_servers_switches() -> None:
    server = await start(
        QwenImageSettings(
            listen="127.0.0.1:0",
            metrics_listen="",
            cache="dbcache",
            cache_config=json.dumps(CONFIG),
        )
    )
    # qwen_edit points at a closed port: listed, not ready, and no switches to show.
    settings = GatewaySettings(qwen_image_target=server.address, qwen_edit_target="127.0.0.1:9")
    backends = Backends(settings)
    try:
        listed = await ModelListService(
            settings, Catalog.load(DEFAULT_CATALOG).deployed(settings.model_servers), backends
        ).list("http://gateway/")
    finally:
        await backends.close()
        await server.close(0)
    by_name = {item["model"]: item for item in listed["data"]}
    image = by_name["qwen-image"]
    assert image["ready"] is True
    switches = image["acceleration"]
    assert (switches["cache"], switches["compile"], switches["quantize"]) == (
        "dbcache",
        "none",
        "none",
    )
    assert json.loads(switches["cache_config"]) == CONFIG
    assert by_name["qwen-image-edit"]["ready"] is False
    assert "acceleration" not in by_name["qwen-image-edit"]
