"""A local model's batch taken one image at a time (issue 18 §2).

Asked with `result_per_image`, a model server's GenerateStream / EditStream ends with one `result`
event per image (`GenerationResult.images_total` says how many). `arrivals` yields them in order,
so the gateway holds one image's message at a time, never the whole batch. `deliver_arriving`
waits for the first image (any error before it is an ordinary error answer), then:
- `url`: uploads each image as it arrives, its bytes dropped once stored: a whole `Outcome`;
- `b64_json`: an `ArrivingOutcome`, the first image here and the rest still coming, which
  `streamed_json.py` writes as the answer (base64 encoded one image at a time) or `whole`
  collects for the callers that need every image at once (the DashScope tasks route).
"""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from imagemesh.v1 import common_pb2

from services.gateway.delivery import Delivered, Delivery
from services.gateway.errors import ApiError
from services.gateway.outcome import FORMAT_NAMES, Asked, Outcome, Tokens


@dataclass(frozen=True)
class Arrival:
    index: int  # 0-based, in the batch's order
    total: int  # images in the batch
    image: common_pb2.Image
    usage: common_pb2.Usage
    elapsed_seconds: float  # the pipeline's time, as the model server reports it


async def arrivals(
    messages: AsyncIterator[common_pb2.GenerationEvent], what: str
) -> AsyncIterator[Arrival]:
    """The result events of a stream, one image each; progress events are skipped. A server
    that sends the whole batch in one result (images_total unset) is taken as it comes. The
    stream is read to its end (its trailer reports the replica's load to the router), and
    closed with this iterator."""
    index, total, results = 0, 0, 0
    try:
        async for message in messages:
            if message.WhichOneof("event") != "result":
                continue
            result, results = message.result, results + 1
            total = result.images_total or len(result.images)
            for image in result.images:
                yield Arrival(index, total, image, result.usage, result.elapsed_seconds)
                index += 1
            del message, result  # the last image's message goes before the stream's end
    finally:
        aclose = getattr(messages, "aclose", None)
        if aclose is not None:
            await aclose()
    if not results or index < total:
        got = f"after {index} of {total} images" if results else "without a result"
        raise ApiError(502, f"{what} ended its stream {got}")


def as_base64(arrival: Arrival) -> Delivered:
    image = arrival.image
    b64 = base64.b64encode(image.data).decode("ascii")
    return Delivered(b64_json=b64, width=image.width, height=image.height, seed=image.seed)


@dataclass
class ArrivingOutcome:
    """A `b64_json` answer whose images are still arriving: `outcome` says everything but the
    images (its `images` is empty), `first` is here (None once taken by its writer), `rest`
    follows."""

    outcome: Outcome
    first: Arrival | None
    rest: AsyncIterator[Arrival]

    async def aclose(self) -> None:
        """Ends the model server's stream (a client gone, an answer cut short)."""
        aclose = getattr(self.rest, "aclose", None)
        if aclose is not None:
            await aclose()


async def whole(answer: Outcome | ArrivingOutcome) -> Outcome:
    """Every image delivered at once (each image's base64 made as it arrives)."""
    if isinstance(answer, Outcome):
        return answer
    outcome = answer.outcome
    try:
        if answer.first is not None:
            outcome.images.append(as_base64(answer.first))
            answer.first = None
        async for arrival in answer.rest:
            outcome.images.append(as_base64(arrival))
    finally:
        await answer.aclose()
    return outcome


async def deliver_arriving(
    delivery: Delivery,
    model: str,
    images: AsyncIterator[Arrival],
    spec: Asked,
    revised: str | None,
    started: float,  # time.perf_counter() when the backend call began
) -> Outcome | ArrivingOutcome:
    first = await anext(aiter(images), None)
    if first is None:
        raise ApiError(502, f"{model} returned no images")
    timings = {
        "backend": (time.perf_counter() - started) * 1000,  # until the first image
        "model": first.elapsed_seconds * 1000,
    }
    image = first.image
    outcome = Outcome(
        model,
        [],
        image.width or spec.width,
        image.height or spec.height,
        revised_prompt=revised,
        timings=timings,
        tokens=Tokens.of(first.usage),
        output_format=FORMAT_NAMES.get(image.mime_type, "png"),
        output=spec.output,
    )
    if spec.response_format != "url":
        return ArrivingOutcome(outcome, first, images)
    start = time.perf_counter()
    try:
        outcome.images.append(await delivery.upload(first.index, image))
        del first, image  # stored: its bytes need not stay
        async for arrival in images:
            outcome.images.append(await delivery.upload(arrival.index, arrival.image))
    finally:
        aclose = getattr(images, "aclose", None)
        if aclose is not None:
            await aclose()
    timings["delivery"] = (time.perf_counter() - start) * 1000
    return outcome
