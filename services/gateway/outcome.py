"""The outcome of an image call, generation or edit: the delivered images and what the answer
says about them (`Outcome`), and `deliver_outcome`, which turns a backend's images into one.
The answer shapes (`images/protocol.py`), both serving classes and the stream events read it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

from imagemesh.v1 import common_pb2

from services.gateway.delivery import Delivered, Delivery
from services.gateway.errors import ApiError
from services.gateway.output_options import OutputOptions

FORMAT_NAMES = {"image/png": "png", "image/jpeg": "jpeg", "image/webp": "webp"}


@dataclass(frozen=True)
class Tokens:
    """OpenAI's image usage, as the model server counted it (0 for hosted models)."""

    input_text: int = 0
    input_image: int = 0
    output: int = 0

    @classmethod
    def of(cls, usage: common_pb2.Usage | None) -> Tokens:
        if usage is None:
            return cls()
        return cls(usage.input_text_tokens, usage.input_image_tokens, usage.output_tokens)


@dataclass
class Outcome:
    """Images made for one request, delivered as the client asked."""

    model: str
    images: list[Delivered]
    width: int
    height: int
    created: int = field(default_factory=lambda: int(time.time()))
    revised_prompt: str | None = None
    warnings: list[str] = field(default_factory=list)
    # Milliseconds spent where, for the Server-Timing header: "backend" (the gRPC call), "model"
    # (the pipeline itself, as the model server reports it), "delivery" (storage or base64).
    timings: dict[str, float] = field(default_factory=dict)
    tokens: Tokens = field(default_factory=Tokens)
    output_format: str = "png"  # of the images made: png, jpeg or webp
    output: OutputOptions = field(default_factory=OutputOptions)  # as the request gave them

    def server_timing(self) -> str:
        return ", ".join(f"{name};dur={ms:.1f}" for name, ms in self.timings.items())


class Asked(Protocol):
    """What a request (a GenerationSpec or an EditSpec) says about its answer."""

    response_format: str
    width: int  # 0 = the backend's default
    height: int
    output: OutputOptions


def first_size(images: list[common_pb2.Image], width: int, height: int) -> tuple[int, int]:
    if images and images[0].width and images[0].height:
        return images[0].width, images[0].height
    return width, height


async def deliver_outcome(
    delivery: Delivery,
    model: str,
    images: list[common_pb2.Image],
    spec: Asked,
    revised: str | None = None,
    warnings: list[str] | None = None,
    timings: dict[str, float] | None = None,
    usage: common_pb2.Usage | None = None,
) -> Outcome:
    """The images a backend made, delivered as `spec.response_format` asks (a 502 when there
    are none)."""
    warnings = warnings or []
    timings = timings if timings is not None else {}
    if not images:
        detail = f": {'; '.join(warnings)}" if warnings else ""
        raise ApiError(502, f"{model} returned no images{detail}")
    start = time.perf_counter()
    delivered = await delivery.deliver(images, spec.response_format)
    timings["delivery"] = (time.perf_counter() - start) * 1000
    width, height = first_size(images, spec.width, spec.height)
    return Outcome(
        model,
        delivered,
        width,
        height,
        revised_prompt=revised,
        warnings=warnings,
        timings=timings,
        tokens=Tokens.of(usage),
        output_format=FORMAT_NAMES.get(images[0].mime_type, "png"),
        output=spec.output,
    )
