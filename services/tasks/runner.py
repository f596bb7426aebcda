"""What running a task means: make its images on its backend and keep them in our bucket.

A local model (TASK_BACKEND_QWEN_IMAGE) gets `ImageGeneration.Generate` (with the spec's input
image, mask and strength: img2img / inpainting), its prompt first polished
by `Providers.RewritePrompt` when the spec asks for prompt_extend (a failed rewrite keeps the
prompt: it is an improvement, never a reason to fail). A hosted model gets
`Providers.GenerateImages` with the provider's own knobs (`spec.extra`). Either way each image goes
to `Storage.Put`, so a task's result always holds our own links, and `Storage.Delete` can remove
them when the result expires.
"""

from __future__ import annotations

import asyncio
import logging
import re

from imagemesh.v1 import (
    common_pb2,
    providers_pb2,
    qwen_edit_pb2,
    qwen_image_pb2,
    storage_pb2,
    tasks_pb2,
)

from services.common import requestid
from services.common.errors import ProviderFailed
from services.tasks.backends import BackendError, Backends
from services.tasks.convert import spec_of
from services.tasks.records import TaskImage, TaskOutput, TaskRecord

log = logging.getLogger("imagemesh.tasks")

_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Uploads run side by side up to this many image bytes at a time: each one in flight holds a few
# copies of its image (bytes, request, serialised request).
UPLOAD_BATCH_BYTES = 8 * 1024 * 1024


class TaskRunner:
    def __init__(self, backends: Backends) -> None:
        self._backends = backends
        self._settings = backends.settings

    async def __call__(self, task: TaskRecord) -> TaskOutput:
        spec = spec_of(task)
        if spec.backend == tasks_pb2.TASK_BACKEND_PROVIDERS:
            images, revised, warnings = await self._hosted(spec)
        elif spec.HasField("layers"):
            images, revised, warnings = await self._layers(spec), None, []
        else:
            images, revised, warnings = await self._local(spec)
        if not images:
            detail = f": {'; '.join(warnings)}" if warnings else ""
            raise ProviderFailed(f"{spec.model} returned no images{detail}")
        stored = await self._upload_all(images, spec)
        return TaskOutput(
            stored,
            requested=spec.n,
            actual_prompt=revised,
            extra={"warnings": warnings} if warnings else {},
        )

    async def _local(
        self, spec: tasks_pb2.TaskSpec
    ) -> tuple[list[common_pb2.Image], str | None, list[str]]:
        revised = await self._extend(spec) if spec.prompt_extend else None
        request = qwen_image_pb2.GenerateRequest(
            prompt=revised or spec.prompt,
            # Unset unless given: "" would turn true CFG on (the proto keeps them apart).
            negative_prompt=spec.negative_prompt or None,
            width=spec.width,
            height=spec.height,
            num_inference_steps=spec.num_inference_steps,
            num_images=spec.n,
        )
        if spec.HasField("true_cfg_scale"):
            request.true_cfg_scale = spec.true_cfg_scale
        if spec.HasField("guidance_scale"):
            request.guidance_scale = spec.guidance_scale
        if spec.HasField("seed"):
            request.seed = spec.seed
        request.loras.extend(spec.loras)
        request.output_format = spec.output_format
        if spec.HasField("output_compression"):
            request.output_compression = spec.output_compression
        # Img2img / inpainting: the input image (and mask), checked by the gateway at create.
        if spec.HasField("image"):
            request.image.CopyFrom(spec.image)
        if spec.HasField("mask"):
            request.mask.CopyFrom(spec.mask)
        if spec.HasField("strength"):
            request.strength = spec.strength
        result = await self._backends.call(
            self._backends.image_stub(spec.model, spec.server).Generate,
            request,
            deadline=self._settings.generate_deadline_seconds,
            what=spec.model,
        )
        return list(result.images), revised, []

    async def _layers(self, spec: tasks_pb2.TaskSpec) -> list[common_pb2.Image]:
        """Qwen-Image-Layered: the spec's image split into `layers` RGBA layers on its
        qwen_edit deployment (ImageEditing.Edit); the layers are the task's images."""
        request = qwen_edit_pb2.EditRequest(
            images=[spec.image],
            prompt=spec.prompt,
            negative_prompt=spec.negative_prompt or None,
            width=spec.width,
            height=spec.height,
            num_inference_steps=spec.num_inference_steps,
            num_images=1,
            layers=spec.layers,
            output_format=spec.output_format,
        )
        for name in ("resolution", "true_cfg_scale", "seed"):
            if spec.HasField(name):
                setattr(request, name, getattr(spec, name))
        request.loras.extend(spec.loras)
        result = await self._backends.call(
            self._backends.edit_stub(spec.model, spec.server).Edit,
            request,
            deadline=self._settings.generate_deadline_seconds,
            what=spec.model,
        )
        return list(result.images)

    async def _hosted(
        self, spec: tasks_pb2.TaskSpec
    ) -> tuple[list[common_pb2.Image], str | None, list[str]]:
        request = providers_pb2.ProviderImageRequest(
            model=spec.model,
            prompt=spec.prompt,
            negative_prompt=spec.negative_prompt,
            width=spec.width,
            height=spec.height,
            n=spec.n,
            num_inference_steps=spec.num_inference_steps,
            prompt_extend=spec.prompt_extend,
            watermark=spec.watermark,
        )
        if spec.HasField("seed"):
            request.seed = spec.seed
        if spec.HasField("guidance_scale"):
            request.guidance_scale = spec.guidance_scale
        elif spec.HasField("true_cfg_scale"):
            request.guidance_scale = spec.true_cfg_scale
        if spec.HasField("extra"):
            request.extra.CopyFrom(spec.extra)
        response = await self._backends.call(
            self._backends.providers.GenerateImages,
            request,
            deadline=self._settings.generate_deadline_seconds,
            what=spec.model,
        )
        images = [image for group in response.results for image in group.images]
        revised = next((g.actual_prompt for g in response.results if g.actual_prompt), None)
        return images, revised, list(response.warnings)

    async def _extend(self, spec: tasks_pb2.TaskSpec) -> str | None:
        try:
            answer = await self._backends.call(
                self._backends.providers.RewritePrompt,
                providers_pb2.RewritePromptRequest(
                    prompt=spec.prompt, model=self._settings.prompt_extend_model
                ),
                deadline=self._settings.prompt_extend_deadline_seconds,
                what="prompt rewrite",
            )
        except BackendError as exc:
            log.warning("prompt_extend skipped, prompt used as given: %s", exc.message)
            return None
        if not answer.rewritten:
            log.info("prompt_extend skipped, prompt used as given: %s", answer.reason)
            return None
        return str(answer.actual_prompt)

    async def _upload_all(
        self, images: list[common_pb2.Image], spec: tasks_pb2.TaskSpec
    ) -> list[TaskImage]:
        stored: list[TaskImage] = []
        batch: list[tuple[int, common_pb2.Image]] = []
        size = 0
        for index, image in enumerate(images):
            bytes_ = image.ByteSize()  # without copying the data out of the message
            if batch and size + bytes_ > UPLOAD_BATCH_BYTES:
                stored += await asyncio.gather(*(self._upload(i, im, spec) for i, im in batch))
                batch, size = [], 0
            batch.append((index, image))
            size += bytes_
        stored += await asyncio.gather(*(self._upload(i, im, spec) for i, im in batch))
        return stored

    async def _upload(
        self, index: int, image: common_pb2.Image, spec: tasks_pb2.TaskSpec
    ) -> TaskImage:
        mime = image.mime_type or "image/png"
        rid = requestid.get_request_id()
        # Names as in the seed's links (<request id>-<n>.png); a client's odd request id is not
        # a safe file name, so it is used only when it is plain.
        stem = rid if _SAFE_ID.match(rid) else requestid.new_request_id()
        stored = await self._backends.call(
            self._backends.storage.Put,
            storage_pb2.PutRequest(
                data=image.data,
                content_type=mime,
                name=f"{stem}-{index + 1}.{_EXTENSIONS.get(mime, 'png')}",
            ),
            deadline=self._settings.storage_deadline_seconds,
            what="storage",
        )
        return TaskImage(
            index=index,
            url=stored.url,
            key=stored.key,
            seed=image.seed,
            width=image.width or spec.width,
            height=image.height or spec.height,
            url_expires_at=int(stored.url_expires_at),
        )
