"""Layers: resolve the image, route by model to its Qwen-Image-Layered server (a qwen_edit
deployment named by the catalogue's `server:`), call ImageEditing.Edit with the Layered fields,
deliver one RGBA image per layer. Plain class: testable without HTTP."""

from __future__ import annotations

import time

from imagemesh.v1 import common_pb2, qwen_edit_pb2

from services.gateway.catalog import Catalog
from services.gateway.clients import Backends
from services.gateway.delivery import Delivery
from services.gateway.layers.protocol import LayersSpec
from services.gateway.lora_field import check_loras
from services.gateway.outcome import Outcome, deliver_outcome
from services.gateway.sampling_fields import set_sampling
from services.gateway.settings import GatewaySettings
from services.gateway.sizes import require_multiple_of_16
from services.gateway.sources import ImageSources, Input


class LayersService:
    def __init__(
        self,
        settings: GatewaySettings,
        catalog: Catalog,
        backends: Backends,
        sources: ImageSources,
        delivery: Delivery,
    ) -> None:
        self._settings = settings
        self._catalog = catalog
        self._backends = backends
        self._sources = sources
        self._delivery = delivery

    async def split(self, spec: LayersSpec) -> Outcome:
        # Model first: an unknown model is answered before the image is downloaded.
        entry = self._catalog.resolve(spec.model, "layers")
        check_loras(spec.loras, entry)
        require_multiple_of_16(spec.width, spec.height, entry.name)
        (image,) = await self._sources.load_all(
            [Input(spec.image.param, spec.image.data, spec.image.text)]
        )
        stub = self._backends.edit_stub(entry.name, entry.server)
        start = time.perf_counter()
        result = await self._backends.unary(
            entry.backend,
            stub.Edit,
            request_of(spec, image),
            deadline=self._settings.edit_deadline_seconds,
            what=entry.name,
        )
        timings = {
            "model": result.elapsed_seconds * 1000,
            "backend": (time.perf_counter() - start) * 1000,
        }
        return await deliver_outcome(
            self._delivery,
            entry.name,
            list(result.images),
            spec,
            timings=timings,
            usage=result.usage,
        )


def request_of(spec: LayersSpec, image: bytes) -> qwen_edit_pb2.EditRequest:
    """The model server's request: the image, the Layered fields (EditRequest 70-73)."""
    request = qwen_edit_pb2.EditRequest(
        images=[common_pb2.ImageInput(data=image)],
        prompt=spec.prompt,
        negative_prompt=spec.negative_prompt,
        num_inference_steps=spec.num_inference_steps,
        num_images=1,
        width=spec.width,
        height=spec.height,
        layers=spec.layers,
        resolution=spec.resolution,
    )
    if spec.cfg_normalize is not None:
        request.cfg_normalize = spec.cfg_normalize
    if spec.caption_in_english is not None:
        request.caption_in_english = spec.caption_in_english
    set_sampling(request, spec)
    return request
