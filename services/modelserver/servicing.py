"""The gRPC side both servicers share: a request message to a spec, the generator's output to
`GenerationResult` / `GenerationEvent` messages.

With a request's `result_per_image` the stream is a unary call answered one image per message:
no progress or previews, then one `result` event per image (`protomap.results_one_by_one`).

A server's servicer derives from `Calls` and its generated base class, names its `spec_from`, and
binds its two rpc names to `Calls.unary` and `Calls.stream`. Every answer's trailing metadata
carries the queue's load (`services/modelserver/load.py`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

import grpc
from imagemesh.v1 import common_pb2

from services.common.errors import InvalidArgument
from services.modelserver import load
from services.modelserver.controlnets import name_of
from services.modelserver.generator import ModelGenerator
from services.modelserver.loras import LoraRef
from services.modelserver.protomap import (
    event_to_proto,
    output_format_name,
    result_to_proto,
    results_one_by_one,
)
from services.modelserver.refusals import NotStarted
from services.modelserver.runner import GenerationOutput


def sampling_fields(request: Any) -> dict[str, Any]:
    """The `SamplingSpec` fields of a request message: both servers' requests name them alike;
    an optional field left unset is None (the server's default)."""

    def optional(name: str) -> Any:
        return getattr(request, name) if request.HasField(name) else None

    return {
        "prompt": request.prompt,
        "negative_prompt": optional("negative_prompt"),
        "width": request.width,
        "height": request.height,
        "num_inference_steps": request.num_inference_steps,
        "true_cfg_scale": optional("true_cfg_scale"),
        "guidance_scale": optional("guidance_scale"),
        "seed": optional("seed"),
        "num_images": request.num_images,
        "output_format": output_format_name(request.output_format),
        "partial_images": request.partial_images,
        "loras": tuple(
            LoraRef(ref.name, ref.scale if ref.HasField("scale") else None) for ref in request.loras
        ),
        "output_compression": optional("output_compression"),
    }


def _has_controls(request: Any) -> bool:
    fields = request.DESCRIPTOR.fields_by_name
    if "controls" not in fields:
        return False
    optional = ("control_guidance_start", "control_guidance_end")
    return bool(request.controls) or any(request.HasField(name) for name in optional)


class Calls:
    """A servicer's two calls, unary and streamed, on the server's generator."""

    # Whether the server runs ControlNets (request fields `controls`, `control_guidance_*`);
    # one that does not refuses them naming its model, before any work.
    takes_controls: ClassVar[bool] = False

    def __init__(self, generator: ModelGenerator[Any, Any, Any]) -> None:
        self._generator = generator

    def _spec(self, request: Any) -> Any:
        if not self.takes_controls and _has_controls(request):
            settings = self._generator.settings
            model = settings.model_name or name_of(settings.location)
            raise InvalidArgument(
                f"controls: {model} takes no ControlNet inputs; diffusers 0.42 has no ControlNet "
                "edit pipeline (qwen-image takes them, for text to image and masked edits)"
            )
        return self.spec_from(request)

    def spec_from(self, request: Any) -> Any:
        """The generator's spec for a request message."""
        raise NotImplementedError

    async def unary(
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> common_pb2.GenerationResult:
        not_started = False
        try:
            return result_to_proto(await self._generator.generate(self._spec(request)))
        except NotStarted:
            not_started = True
            raise
        finally:
            self._report(context, not_started)

    async def stream(
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[common_pb2.GenerationEvent]:
        not_started = False
        try:
            one_by_one = bool(getattr(request, "result_per_image", False))
            async for event in self._generator.generate_stream(self._spec(request)):
                if not one_by_one:
                    yield event_to_proto(event)
                elif isinstance(event, GenerationOutput) and event.images:
                    for message in results_one_by_one(event):
                        yield message
                elif isinstance(event, GenerationOutput):
                    yield event_to_proto(event)
                # else: progress, which a unary caller of the stream does not read; and until
                # the first image nothing has come back, so a replica that dies mid-job can
                # still be failed over as a unary call is (gateway/routing/failover.py).
        except NotStarted:
            not_started = True
            raise
        finally:
            self._report(context, not_started)

    def _report(self, context: grpc.aio.ServicerContext, not_started: bool) -> None:
        """Every answer, error or not, ends with the queue's load (the gateway's routing reads
        it), and a refusal given before the job was queued says so."""
        context.set_trailing_metadata(load.trailer(self._generator.runner.queue, not_started))
