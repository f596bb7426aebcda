"""Text to image, whatever the request's shape: route by model, call the backend, deliver.

Local models (qwen_image) get a GenerateRequest on GenerateStream, each image its own result
message, delivered as it arrives (`arriving.py`; the unary Generate stays for internal clients);
hosted models get Providers.GenerateImages. With `prompt_extend`, a local model's prompt is first
polished by Providers.RewritePrompt (seed 002); when that service or its chat model is not
available the prompt is used as given (the rewrite is an improvement, never a reason to fail a
generation). Plain class: testable without HTTP.

`stream` gives the same work as events (`services/gateway/streaming.py`): a local model's steps and
previews from GenerateStream, then the delivered images; a hosted model, which has no steps to
show, just the delivered images.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

from imagemesh.v1 import common_pb2, providers_pb2, qwen_image_pb2

from services.gateway.arriving import ArrivingOutcome, arrivals, deliver_arriving, whole
from services.gateway.catalog import Catalog, Entry
from services.gateway.clients import Backends
from services.gateway.control_fields import check_controls, fetch_controls, set_controls
from services.gateway.delivery import Delivery
from services.gateway.errors import ApiError
from services.gateway.images.protocol import GenerationSpec
from services.gateway.knobs import check_count
from services.gateway.lora_field import check_loras
from services.gateway.openai_defaults import fill
from services.gateway.outcome import Outcome, deliver_outcome
from services.gateway.output_options import check_applies, hosted_extra
from services.gateway.sampling_fields import set_sampling
from services.gateway.settings import GatewaySettings
from services.gateway.sizes import require_multiple_of_16
from services.gateway.sources import ImageSources
from services.gateway.streaming import DoneEvent, StreamEvent, relay

log = logging.getLogger("imagemesh.gateway.images")


class ImageGenerationService:
    def __init__(
        self,
        settings: GatewaySettings,
        catalog: Catalog,
        backends: Backends,
        delivery: Delivery,
        sources: ImageSources | None = None,  # fetches control_image pictures
    ) -> None:
        self._settings = settings
        self._catalog = catalog
        self._backends = backends
        self._delivery = delivery
        self._sources = sources

    def _entry(self, spec: GenerationSpec) -> Entry:
        entry = self._catalog.resolve(spec.model, "image")
        check_count(spec.n, entry, spec.param_prefix)
        check_loras(spec.loras, entry, spec.param_prefix)
        check_applies(spec.output, entry, spec.param_prefix)
        check_controls(spec.control, entry, spec.param_prefix)
        if entry.local:
            require_multiple_of_16(spec.width, spec.height, entry.name, spec.param_prefix)
        return entry

    async def generate(self, spec: GenerationSpec) -> Outcome:
        """Every image at once (the DashScope tasks route)."""
        return await whole(await self.answer(spec))

    async def answer(self, spec: GenerationSpec) -> Outcome | ArrivingOutcome:
        """The delivered images; a local model's `b64_json` images still arriving (`arriving.py`:
        the first one is here, so an error before it raised ApiError)."""
        entry = self._entry(spec)
        timings: dict[str, float] = {}
        if entry.local:
            spec = fill(spec, entry, self._settings)
            await fetch_controls(spec.control, self._sources, spec.param_prefix)
            revised = await self._extend(spec)
            request = self._local_request(spec, revised or spec.prompt)
            request.result_per_image = True  # one image per message: never the batch twice
            start = time.perf_counter()
            messages = self._backends.stream(
                entry.backend,
                self._backends.image_stub(entry.name, entry.server).GenerateStream,
                request,
                deadline=self._settings.generate_deadline_seconds,
                what=entry.name,
            )
            arriving = arrivals(messages, entry.name)
            return await deliver_arriving(
                self._delivery, entry.name, arriving, spec, revised, start
            )
        start = time.perf_counter()
        response = await self._backends.unary(
            "providers",
            self._backends.providers.GenerateImages,
            self._hosted_request(entry, spec),
            deadline=self._settings.generate_deadline_seconds,
            what=entry.name,
        )
        timings["backend"] = (time.perf_counter() - start) * 1000
        images = [image for group in response.results for image in group.images]
        revised = next((g.actual_prompt for g in response.results if g.actual_prompt), None)
        warnings = list(response.warnings)
        return await deliver_outcome(
            self._delivery, entry.name, images, spec, revised, warnings, timings
        )

    async def stream(self, spec: GenerationSpec) -> AsyncIterator[StreamEvent]:
        """Progress, previews, then the delivered images; errors raise ApiError."""
        entry = self._entry(spec)
        if not entry.local:
            yield DoneEvent(await self.generate(spec))
            return
        spec = fill(spec, entry, self._settings)
        await fetch_controls(spec.control, self._sources, spec.param_prefix)
        revised = await self._extend(spec)
        request = self._local_request(spec, revised or spec.prompt)
        request.partial_images = spec.partial_images
        messages = self._backends.stream(
            entry.backend,
            self._backends.image_stub(entry.name, entry.server).GenerateStream,
            request,
            deadline=self._settings.generate_deadline_seconds,
            what=entry.name,
        )

        async def finish(result: common_pb2.GenerationResult) -> Outcome:
            return await deliver_outcome(
                self._delivery, entry.name, list(result.images), spec, revised, usage=result.usage
            )

        async for event in relay(messages, finish, entry.name):
            yield event

    async def _extend(self, spec: GenerationSpec) -> str | None:
        wanted = spec.prompt_extend
        if wanted is None:
            wanted = self._settings.prompt_extend_default
        if not wanted:
            return None
        try:
            answer = await self._backends.unary(
                "providers",
                self._backends.providers.RewritePrompt,
                providers_pb2.RewritePromptRequest(
                    prompt=spec.prompt, model=self._settings.prompt_extend_model
                ),
                deadline=self._settings.prompt_extend_deadline_seconds,
                what="prompt rewrite",
            )
        except ApiError as exc:
            log.warning("prompt_extend skipped, prompt used as given: %s", exc.message)
            return None
        if not answer.rewritten:
            log.info("prompt_extend skipped, prompt used as given: %s", answer.reason)
            return None
        return str(answer.actual_prompt)

    @staticmethod
    def _local_request(spec: GenerationSpec, prompt: str) -> qwen_image_pb2.GenerateRequest:
        request = qwen_image_pb2.GenerateRequest(
            prompt=prompt,
            negative_prompt=spec.negative_prompt,  # None stays unset: no true CFG
            width=spec.width,
            height=spec.height,
            num_inference_steps=spec.num_inference_steps,
            num_images=spec.n,
        )
        set_sampling(request, spec)
        set_controls(request, spec.control)
        return request

    def _hosted_request(
        self, entry: Entry, spec: GenerationSpec
    ) -> providers_pb2.ProviderImageRequest:
        extend = spec.prompt_extend
        request = providers_pb2.ProviderImageRequest(
            model=entry.name,
            prompt=spec.prompt,
            negative_prompt=spec.negative_prompt or "",
            width=spec.width,
            height=spec.height,
            n=spec.n,
            num_inference_steps=spec.num_inference_steps,
            prompt_extend=self._settings.prompt_extend_default if extend is None else extend,
            watermark=spec.watermark,
        )
        if spec.seed is not None:
            request.seed = spec.seed
        if extra := hosted_extra(spec.output, entry):
            request.extra.update(extra)
        guidance = spec.guidance_scale if spec.guidance_scale is not None else spec.true_cfg_scale
        if guidance is not None:
            request.guidance_scale = guidance
        return request
