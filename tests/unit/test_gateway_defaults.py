"""Seed 003's defaults for OpenAI-shaped requests to local models, seed 002's for DashScope-shaped
ones (the model server's), quality's steps, and the misspelled-field check: plain functions."""

from __future__ import annotations

from imagemesh.v1 import common_pb2

from services.gateway.catalog import Catalog
from services.gateway.edits.protocol import EditSpec, ImageRef
from services.gateway.images.protocol import GenerationSpec
from services.gateway.images.serving import ImageGenerationService
from services.gateway.misspellings import suggestion
from services.gateway.openai_defaults import fill
from services.gateway.output_options import OutputOptions
from services.gateway.settings import DEFAULT_CATALOG, GatewaySettings

CATALOG = Catalog.load(DEFAULT_CATALOG)
QWEN_IMAGE = CATALOG.resolve("qwen-image", "image")
QWEN_EDIT = CATALOG.resolve("qwen-image-edit", "edit")
SETTINGS = GatewaySettings()


def test_openai_shaped_generations_get_seed_003s_table() -> None:
    spec = fill(GenerationSpec(model=None, prompt="a fox"), QWEN_IMAGE, SETTINGS)
    assert (spec.width, spec.height, spec.num_inference_steps) == (1664, 928, 50)
    assert (spec.true_cfg_scale, spec.negative_prompt, spec.seed) == (4.0, "", None)
    request = ImageGenerationService._local_request(spec, spec.prompt)
    # "" travels as set: the model server runs true CFG with it.
    assert request.HasField("negative_prompt") and request.negative_prompt == ""
    assert request.true_cfg_scale == 4.0 and not request.HasField("seed")


def test_seed_003s_fixed_seed_is_a_setting_and_given_fields_win() -> None:
    settings = GatewaySettings(openai_default_seed=42)
    given = GenerationSpec(
        model=None, prompt="a fox", width=256, height=128, negative_prompt="blur", seed=7
    )
    spec = fill(given, QWEN_IMAGE, settings)
    assert (spec.width, spec.height, spec.negative_prompt, spec.seed) == (256, 128, "blur", 7)
    assert fill(GenerationSpec(model=None, prompt="a fox"), QWEN_IMAGE, settings).seed == 42


def test_dashscope_shaped_requests_keep_the_model_servers_defaults() -> None:
    spec = fill(GenerationSpec(model=None, prompt="a", shape="dashscope"), QWEN_IMAGE, SETTINGS)
    assert (spec.width, spec.height, spec.num_inference_steps) == (0, 0, 0)
    assert (spec.true_cfg_scale, spec.negative_prompt) == (None, None)
    request = ImageGenerationService._local_request(spec, spec.prompt)
    assert not request.HasField("negative_prompt") and not request.HasField("true_cfg_scale")


def test_an_edit_keeps_its_size_and_gets_seed_003s_edit_negative_prompt() -> None:
    edit = EditSpec(model=None, prompt="blue sky", images=[ImageRef("image", data=b"x")])
    spec = fill(edit, QWEN_EDIT, SETTINGS, edit=True)
    assert (spec.width, spec.height, spec.num_inference_steps) == (0, 0, 50)
    assert (spec.true_cfg_scale, spec.negative_prompt) == (4.0, " ")


def test_quality_picks_the_models_steps_unless_steps_are_given() -> None:
    def steps(quality: str | None, given: int = 0) -> int:
        spec = GenerationSpec(
            model=None, prompt="a", num_inference_steps=given, output=OutputOptions(quality=quality)
        )
        return fill(spec, QWEN_IMAGE, SETTINGS).num_inference_steps

    assert [steps(q) for q in ("low", "medium", "high", "auto", None)] == [10, 25, 50, 50, 50]
    assert steps("low", given=7) == 7


def test_output_format_reaches_the_request() -> None:
    spec = GenerationSpec(model=None, prompt="a", output=OutputOptions("webp", 40))
    request = ImageGenerationService._local_request(spec, "a")
    assert request.output_format == common_pb2.OUTPUT_FORMAT_WEBP
    assert request.output_compression == 40
    plain = ImageGenerationService._local_request(GenerationSpec(model=None, prompt="a"), "a")
    assert not plain.HasField("output_compression")


def test_misspellings_of_ours_are_suggested_and_openais_own_fields_are_not() -> None:
    known = ["negative_prompt", "num_inference_steps", "output_format", "seed", "size", "n"]
    assert suggestion("negative_promt", known) == "negative_prompt"
    assert suggestion("Num-Inference-Steps", known) == "num_inference_steps"  # never read
    assert suggestion("seed", known) is None
    assert suggestion("num_inference_step", known) == "num_inference_steps"
    assert suggestion("output_formt", known) == "output_format"
    assert [suggestion(name, known) for name in ("user", "style", "moderation", "foo")] == [
        None
    ] * 4
