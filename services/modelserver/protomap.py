"""Model-server results and progress as imagemesh.v1 messages, and output formats from them."""

from __future__ import annotations

from collections.abc import Iterator

from imagemesh.v1 import common_pb2

from services.modelserver.images import EncodedImage
from services.modelserver.jobs import Progress
from services.modelserver.runner import GenerationOutput, PartialOutput
from services.modelserver.tokens import image_tokens

_FORMAT_NAMES: dict[int, str] = {
    common_pb2.OUTPUT_FORMAT_UNSPECIFIED: "png",
    common_pb2.OUTPUT_FORMAT_PNG: "png",
    common_pb2.OUTPUT_FORMAT_JPEG: "jpeg",
    common_pb2.OUTPUT_FORMAT_WEBP: "webp",
}


def output_format_name(value: int) -> str:
    """ "png", "jpeg", "webp"; an enum value this server does not know is passed on as its number,
    which the request check rejects by name."""
    return _FORMAT_NAMES.get(value, f"OutputFormat({value})")


def image_to_proto(image: EncodedImage) -> common_pb2.Image:
    return common_pb2.Image(
        data=image.data,
        mime_type=image.mime_type,
        width=image.width,
        height=image.height,
        seed=image.seed,
    )


def usage_of(output: GenerationOutput) -> common_pb2.Usage:
    """Pixels and images, and OpenAI's token counts (`tokens.py` says what each counts)."""
    made = sum(image_tokens(image.width, image.height) for image in output.images)
    given = output.input_tokens
    return common_pb2.Usage(
        width=output.width,
        height=output.height,
        image_count=len(output.images),
        input_tokens=given.text + given.image,
        output_tokens=made,
        input_text_tokens=given.text,
        input_image_tokens=given.image,
        total_tokens=given.text + given.image + made,
    )


def result_to_proto(output: GenerationOutput) -> common_pb2.GenerationResult:
    return common_pb2.GenerationResult(
        images=[image_to_proto(image) for image in output.images],
        usage=usage_of(output),
        model=output.model,
        elapsed_seconds=output.elapsed_seconds,
    )


def results_one_by_one(output: GenerationOutput) -> Iterator[common_pb2.GenerationEvent]:
    """A result as one event per image (a request's `result_per_image`), each image made into a
    message only when the one before has been sent: the server never holds the batch twice, and
    the gateway can deliver each image as it arrives."""
    usage = usage_of(output)
    for image in output.images:
        yield common_pb2.GenerationEvent(
            result=common_pb2.GenerationResult(
                images=[image_to_proto(image)],
                usage=usage,
                model=output.model,
                elapsed_seconds=output.elapsed_seconds,
                images_total=len(output.images),
            )
        )


def event_to_proto(
    event: Progress | PartialOutput | GenerationOutput,
) -> common_pb2.GenerationEvent:
    if isinstance(event, PartialOutput):
        return common_pb2.GenerationEvent(
            partial_image=common_pb2.PartialImage(
                partial_image_index=event.index,
                step=event.step,
                image=image_to_proto(event.image),
            )
        )
    if isinstance(event, Progress):
        return common_pb2.GenerationEvent(
            progress=common_pb2.Progress(
                step=event.step,
                total_steps=event.total_steps,
                queue_position=event.queue_position,
            )
        )
    return common_pb2.GenerationEvent(result=result_to_proto(event))
