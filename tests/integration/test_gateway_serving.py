"""The gateway's serving layer driven directly, without HTTP, over the mesh's real backends."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator

import pytest
from PIL import Image

from services.gateway.catalog import Catalog
from services.gateway.clients import Backends
from services.gateway.delivery import Delivery
from services.gateway.edits.protocol import EditSpec, ImageRef
from services.gateway.edits.serving import ImageEditService
from services.gateway.errors import ApiError
from services.gateway.images.protocol import GenerationSpec
from services.gateway.images.serving import ImageGenerationService
from services.gateway.settings import DEFAULT_CATALOG, GatewaySettings
from services.gateway.sources import ImageSources
from tests.support.mesh import Mesh


@pytest.fixture(scope="module")
async def services(mesh: Mesh) -> AsyncIterator[tuple[ImageGenerationService, ImageEditService]]:
    settings = GatewaySettings(
        qwen_image_target=mesh.targets["qwen_image"],
        qwen_edit_target=mesh.targets["qwen_edit"],
        storage_target=mesh.targets["storage"],
        providers_target=mesh.targets["providers"],
        storage_link_prefixes=[mesh.link_prefix],
    )
    catalog = Catalog.load(DEFAULT_CATALOG)
    backends = Backends(settings)
    sources = ImageSources(settings, backends)
    delivery = Delivery(settings, backends)
    yield (
        ImageGenerationService(settings, catalog, backends, delivery),
        ImageEditService(settings, catalog, backends, sources, delivery),
    )
    await sources.close()
    await backends.close()


async def test_generate_then_edit_without_http(services) -> None:
    images, edits = services
    made = await images.generate(
        GenerationSpec(
            model="qwen-image",
            prompt="a cat",
            width=96,
            height=64,
            n=1,
            num_inference_steps=2,
            seed=3,
            response_format="b64_json",
        )
    )
    assert (made.model, made.width, made.height, len(made.images)) == ("qwen-image", 96, 64, 1)
    data = base64.b64decode(made.images[0].b64_json or "")
    assert Image.open(io.BytesIO(data)).size == (96, 64)

    edited = await edits.edit(
        EditSpec(
            model="qwen-image-edit",
            prompt="a hat",
            images=[ImageRef("image", data=data)],
            width=64,
            height=64,
            num_inference_steps=2,
            response_format="url",
        )
    )
    assert edited.images[0].url and (edited.width, edited.height) == (64, 64)


async def test_model_limits_are_checked_before_any_call(services) -> None:
    images, _ = services
    with pytest.raises(ApiError) as caught:
        await images.generate(GenerationSpec(model="qwen-image", prompt="a cat", n=5))
    assert caught.value.status == 400 and caught.value.param == "n"
