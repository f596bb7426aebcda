"""What both model servers say about their output, over real gRPC on the tiny pipelines: the
encoding asked for (format and JPEG/WebP quality), OpenAI's token counts on `Usage` (by the
model's own tokenizer), true CFG with an empty negative prompt, and an edit's default size."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from imagemesh.v1 import (
    common_pb2,
    qwen_edit_pb2,
    qwen_edit_pb2_grpc,
    qwen_image_pb2,
    qwen_image_pb2_grpc,
)
from PIL import Image
from transformers import AutoTokenizer

from services.qwen_edit.service import start as start_edit
from services.qwen_edit.settings import QwenEditSettings
from services.qwen_image.service import start as start_image
from services.qwen_image.settings import QwenImageSettings
from tests.support.tiny_models import TINY_EDIT_DIR, TINY_IMAGE_DIR, ensure_tiny_models

PROMPT = "a red fox in the snow, golden light"


@pytest.fixture(scope="module")
async def stub() -> AsyncIterator[qwen_image_pb2_grpc.ImageGenerationStub]:
    ensure_tiny_models()
    service = await start_image(
        QwenImageSettings(listen="127.0.0.1:0", metrics_listen="", location=str(TINY_IMAGE_DIR))
    )
    async with grpc.aio.insecure_channel(service.address) as channel:
        yield qwen_image_pb2_grpc.ImageGenerationStub(channel)
    await service.close(0)


@pytest.fixture(scope="module")
async def edit_stub() -> AsyncIterator[qwen_edit_pb2_grpc.ImageEditingStub]:
    ensure_tiny_models()
    service = await start_edit(
        QwenEditSettings(listen="127.0.0.1:0", metrics_listen="", location=str(TINY_EDIT_DIR))
    )
    async with grpc.aio.insecure_channel(service.address) as channel:
        yield qwen_edit_pb2_grpc.ImageEditingStub(channel)
    await service.close(0)


def request(**fields: Any) -> qwen_image_pb2.GenerateRequest:
    base: dict[str, Any] = {"prompt": PROMPT, "width": 64, "height": 64}
    base.update(num_inference_steps=2, seed=5)
    return qwen_image_pb2.GenerateRequest(**{**base, **fields})


def tokens(text: str) -> int:
    tokenizer = AutoTokenizer.from_pretrained(TINY_IMAGE_DIR / "tokenizer")
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


@pytest.mark.parametrize(
    ("output_format", "pil_format", "mime"),
    [
        (common_pb2.OUTPUT_FORMAT_JPEG, "JPEG", "image/jpeg"),
        (common_pb2.OUTPUT_FORMAT_WEBP, "WEBP", "image/webp"),
    ],
)
async def test_output_compression_sets_the_quality_of_lossy_formats(
    stub: qwen_image_pb2_grpc.ImageGenerationStub, output_format: int, pil_format: str, mime: str
) -> None:
    low = await stub.Generate(request(output_format=output_format, output_compression=5))
    high = await stub.Generate(request(output_format=output_format, output_compression=100))
    unset = await stub.Generate(request(output_format=output_format))
    sizes = [len(r.images[0].data) for r in (low, unset, high)]
    assert sizes[0] < sizes[1] < sizes[2], sizes  # 5 < 95 (the default) < 100
    for result in (low, high):
        image = result.images[0]
        assert image.mime_type == mime
        assert Image.open(io.BytesIO(image.data)).format == pil_format


async def test_png_ignores_output_compression(
    stub: qwen_image_pb2_grpc.ImageGenerationStub,
) -> None:
    plain = await stub.Generate(request())
    compressed = await stub.Generate(request(output_compression=3))
    assert plain.images[0].data == compressed.images[0].data


async def test_output_compression_out_of_range_is_refused(
    stub: qwen_image_pb2_grpc.ImageGenerationStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Generate(request(output_compression=101))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "output_compression: 101 is outside 0..100" in (caught.value.details() or "")


async def test_usage_counts_tokens_with_the_models_tokenizer(
    stub: qwen_image_pb2_grpc.ImageGenerationStub,
) -> None:
    result = await stub.Generate(request(width=128, height=64, num_images=2))
    usage = result.usage
    assert usage.input_text_tokens == tokens(PROMPT) > 0
    assert (usage.input_image_tokens, usage.input_tokens) == (0, usage.input_text_tokens)
    assert usage.output_tokens == 2 * (128 // 16) * (64 // 16)
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    negative = await stub.Generate(request(negative_prompt="blurry, dark"))
    assert negative.usage.input_text_tokens == tokens(PROMPT) + tokens("blurry, dark")


async def test_an_empty_negative_prompt_runs_true_cfg(
    stub: qwen_image_pb2_grpc.ImageGenerationStub,
) -> None:
    """Unset: no true CFG; "" (set): true CFG at the pipeline's 4.0, so another picture."""
    unset = await stub.Generate(request())
    empty = await stub.Generate(request(negative_prompt=""))
    no_cfg = await stub.Generate(request(negative_prompt="", true_cfg_scale=1.0))
    assert empty.images[0].data != unset.images[0].data
    assert no_cfg.images[0].data == unset.images[0].data


def png(size: tuple[int, int]) -> common_pb2.ImageInput:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, "PNG")
    return common_pb2.ImageInput(data=buffer.getvalue())


async def test_an_edit_without_a_size_keeps_the_input_size_rounded_to_16(
    edit_stub: qwen_edit_pb2_grpc.ImageEditingStub,
) -> None:
    result = await edit_stub.Edit(
        qwen_edit_pb2.EditRequest(
            prompt="make it blue", images=[png((150, 70))], num_inference_steps=2, seed=1
        )
    )
    image = result.images[0]
    assert Image.open(io.BytesIO(image.data)).size == (144, 64) == (image.width, image.height)
    # The input image joins the sequence at about a megapixel: 1504x704 for 150x70 (32-grid).
    usage = result.usage
    assert usage.input_image_tokens == (1504 // 16) * (704 // 16)
    assert usage.input_tokens == usage.input_text_tokens + usage.input_image_tokens
    assert usage.output_tokens == (144 // 16) * (64 // 16)
