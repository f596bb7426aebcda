"""The gateway's catalogue serves only what is deployed: an entry on a server of its own
(`server:`) is left out until GATEWAY_MODEL_SERVERS names that server."""

from __future__ import annotations

import pytest

from services.gateway.apierror import ApiError
from services.gateway.catalog import Catalog
from services.gateway.settings import GatewaySettings


def shipped() -> Catalog:
    return Catalog.load(GatewaySettings().catalog_path)


def test_a_model_on_an_unnamed_server_is_neither_listed_nor_routed() -> None:
    catalog = shipped().deployed([])
    assert "qwen-image-2.1" not in catalog.names()
    assert "qwen-image" in catalog.names("image")
    with pytest.raises(ApiError) as refused:
        catalog.resolve("qwen-image-2.1", "image")
    assert refused.value.status == 404 and "qwen-image-2.1" in refused.value.message


def test_naming_its_server_serves_it_and_keeps_the_defaults() -> None:
    full = shipped()
    catalog = full.deployed(["qwen-image-2.1"])
    assert catalog.resolve("qwen-image-2.1", "image").server == "qwen-image-2.1"
    assert "qwen-image-2.1-turbo" not in catalog.names()
    # qwen-image-layered's server is not named, so its default (for layers) goes with it.
    assert catalog.defaults == {k: full.defaults[k] for k in ("image", "edit", "chat")}
    assert full.deployed(["qwen-image-layered"]).defaults["layers"] == "qwen-image-layered"
