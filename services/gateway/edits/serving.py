"""Image edits: resolve the input images, route by model, call the backend, deliver.

Input images are fetched and checked concurrently (`ImageSources`); the Qwen-Image-Edit server
gets an ImageEditing.EditStream call (with a mask: inpainting), the Qwen-Image server an
ImageGeneration.GenerateStream call with the one input image (img2img; with a mask:
inpainting), hosted models Providers.EditImages. A local server sends each image as its own
result message, delivered as it arrives (`arriving.py`). Plain class: testable without HTTP. `stream` gives a local model's
steps and previews (EditStream / GenerateStream) before the delivered images.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from imagemesh.v1 import common_pb2, providers_pb2, qwen_edit_pb2, qwen_image_pb2

from services.gateway.arriving import ArrivingOutcome, arrivals, deliver_arriving, whole
from services.gateway.catalog import Catalog, Entry
from services.gateway.clients import Backends
from services.gateway.control_fields import check_controls, fetch_controls, set_controls
from services.gateway.delivery import Delivery
from services.gateway.edits.masks import check_mask_size
from services.gateway.edits.protocol import EditSpec
from services.gateway.errors import invalid
from services.gateway.knobs import check_count
from services.gateway.lora_field import check_loras
from services.gateway.openai_defaults import fill
from services.gateway.outcome import Outcome, deliver_outcome
from services.gateway.output_options import check_applies, hosted_extra
from services.gateway.sampling_fields import set_sampling
from services.gateway.settings import GatewaySettings
from services.gateway.sizes import require_multiple_of_16
from services.gateway.sources import ImageSources, Input
from services.gateway.streaming import DoneEvent, StreamEvent, relay


class ImageEditService:
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

    async def _inputs(self, spec: EditSpec) -> tuple[Entry, list[bytes], bytes | None]:
        """The model's entry, then the input images and mask, fetched and checked."""
        # Model first: an unknown model is answered before any image is downloaded.
        entry = self._catalog.resolve(spec.model, "edit")
        check_count(spec.n, entry)
        check_loras(spec.loras, entry)
        check_applies(spec.output, entry)
        check_controls(spec.control, entry)
        if entry.local:
            require_multiple_of_16(spec.width, spec.height, entry.name)
        elif spec.strength is not None:
            raise invalid(
                f"strength applies to the local models' img2img and inpainting; "
                f"{entry.name} does not take it",
                "strength",
            )
        # The model's limit before any image is fetched (catalog `max_input_images`).
        if len(spec.images) > entry.input_limit:
            takes = (
                "one input image (img2img; with a mask, inpainting)"
                if entry.input_limit == 1
                else f"at most {entry.input_limit} input images"
            )
            raise invalid(f"{entry.name} takes {takes}, got {len(spec.images)}", "image")
        refs = [*spec.images, *([spec.mask] if spec.mask else [])]
        loaded = await self._sources.load_all(
            [Input(ref.param, ref.data, ref.text) for ref in refs]
        )
        images, mask = loaded[: len(spec.images)], loaded[len(spec.images)] if spec.mask else None
        if mask is not None:
            check_mask_size(images[0], mask, spec.images[0].param)
        await fetch_controls(spec.control, self._sources)
        return entry, images, mask

    async def edit(self, spec: EditSpec) -> Outcome:
        """Every image at once (the DashScope tasks route)."""
        return await whole(await self.answer(spec))

    async def answer(self, spec: EditSpec) -> Outcome | ArrivingOutcome:
        """The delivered images; a local model's `b64_json` images still arriving (`arriving.py`:
        the first one is here, so an error before it raised ApiError)."""
        return await self._edit(spec, *await self._inputs(spec))

    async def _edit(
        self, spec: EditSpec, entry: Entry, images: list[bytes], mask: bytes | None
    ) -> Outcome | ArrivingOutcome:
        timings: dict[str, float] = {}
        start = time.perf_counter()
        if entry.local:
            spec = fill(spec, entry, self._settings, edit=True)
            _, call, request = self._local(entry, spec, images, mask)
            request.result_per_image = True  # one image per message: never the batch twice
            messages = self._backends.stream(
                entry.backend,
                call,
                request,
                deadline=self._settings.edit_deadline_seconds,
                what=entry.name,
            )
            arriving = arrivals(messages, entry.name)
            return await deliver_arriving(self._delivery, entry.name, arriving, spec, None, start)
        response = await self._backends.unary(
            "providers",
            self._backends.providers.EditImages,
            self._hosted_request(entry, spec, images, mask),
            deadline=self._settings.edit_deadline_seconds,
            what=entry.name,
        )
        made = [image for group in response.results for image in group.images]
        revised = next((g.actual_prompt for g in response.results if g.actual_prompt), None)
        timings["backend"] = (time.perf_counter() - start) * 1000
        return await deliver_outcome(
            self._delivery, entry.name, made, spec, revised, list(response.warnings), timings
        )

    async def stream(self, spec: EditSpec) -> AsyncIterator[StreamEvent]:
        """Progress, previews, then the delivered images; errors raise ApiError."""
        entry, images, mask = await self._inputs(spec)
        if not entry.local:
            yield DoneEvent(await whole(await self._edit(spec, entry, images, mask)))
            return
        spec = fill(spec, entry, self._settings, edit=True)
        _, call, request = self._local(entry, spec, images, mask)
        request.partial_images = spec.partial_images
        messages = self._backends.stream(
            entry.backend,
            call,
            request,
            deadline=self._settings.edit_deadline_seconds,
            what=entry.name,
        )

        async def finish(result: common_pb2.GenerationResult) -> Outcome:
            return await deliver_outcome(
                self._delivery, entry.name, list(result.images), spec, usage=result.usage
            )

        async for event in relay(messages, finish, entry.name):
            yield event

    def _local(
        self, entry: Entry, spec: EditSpec, images: list[bytes], mask: bytes | None
    ) -> tuple[Any, Any, Any]:
        """The local server's unary and stream methods, and the request for them."""
        if entry.backend == "qwen_image":
            stub = self._backends.image_stub(entry.name, entry.server)
            return stub.Generate, stub.GenerateStream, self._image_request(spec, images, mask)
        edit = self._backends.qwen_edit
        return edit.Edit, edit.EditStream, self._local_request(spec, images, mask)

    @staticmethod
    def _image_request(
        spec: EditSpec, images: list[bytes], mask: bytes | None
    ) -> qwen_image_pb2.GenerateRequest:
        """Qwen-Image's img2img (inpainting with a mask): the one image, at its own size unless
        a size was asked for."""
        request = qwen_image_pb2.GenerateRequest(
            prompt=spec.prompt,
            negative_prompt=spec.negative_prompt,  # None stays unset: no true CFG
            width=spec.width,
            height=spec.height,
            num_inference_steps=spec.num_inference_steps,
            num_images=spec.n,
        )
        request.image.data = images[0]
        if mask is not None:
            request.mask.data = mask
        if spec.strength is not None:
            request.strength = spec.strength
        set_sampling(request, spec)
        set_controls(request, spec.control)
        return request

    @staticmethod
    def _local_request(
        spec: EditSpec, images: list[bytes], mask: bytes | None
    ) -> qwen_edit_pb2.EditRequest:
        request = qwen_edit_pb2.EditRequest(
            images=[common_pb2.ImageInput(data=data) for data in images],
            prompt=spec.prompt,
            negative_prompt=spec.negative_prompt,
            num_inference_steps=spec.num_inference_steps,
            num_images=spec.n,
            width=spec.width,
            height=spec.height,
        )
        if mask is not None:
            request.mask.data = mask
        if spec.strength is not None:
            request.strength = spec.strength
        set_sampling(request, spec)
        return request

    @staticmethod
    def _hosted_request(
        entry: Entry, spec: EditSpec, images: list[bytes], mask: bytes | None
    ) -> providers_pb2.ProviderEditRequest:
        size = f"{spec.width}x{spec.height}" if spec.width and spec.height else "auto"
        request = providers_pb2.ProviderEditRequest(
            model=entry.name,
            images=[common_pb2.ImageInput(data=data) for data in images],
            # One mask for the whole edit applies to every image (OpenAI's edits API).
            masks=[common_pb2.ImageInput(data=mask)] * len(images) if mask else [],
            prompt=spec.prompt,
            prompts=spec.prompts,
            n=spec.n,
            size=size,
        )
        if extra := hosted_extra(spec.output, entry):
            request.extra.update(extra)
        return request
