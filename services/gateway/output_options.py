"""OpenAI's output options on an image request, and where each one can apply.

- `output_format` png | jpeg | webp and `output_compression` 0..100 (JPEG / WebP quality, 100 =
  best; PNG ignores it, as OpenAI's API does): a local model encodes as asked; `gpt-image-1`
  gets both as they are; the other hosted models answer PNG only, so jpeg / webp is a 400.
- `quality` low | medium | high | auto (dall-e-3's standard = medium, hd = high): a local model
  runs the steps of its catalogue table (`quality_steps`; an explicit `num_inference_steps`
  wins, auto is the default steps); `gpt-image-1` gets it; another hosted model: 400.
- `background`: the local pipelines make RGB pictures, so `transparent` is a 400 there (opaque and
  auto apply); `gpt-image-1` gets it; another hosted model: transparent is a 400.
- `input_fidelity` (gpt-image-1's edits): any other model is a 400 saying so.

Each 400 names the field and says why it cannot apply, instead of ignoring it silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from imagemesh.v1 import common_pb2

from services.gateway.catalog import Entry
from services.gateway.errors import invalid
from services.gateway.knobs import ImageKnobs

PROTO_FORMATS = {
    "png": common_pb2.OUTPUT_FORMAT_PNG,
    "jpeg": common_pb2.OUTPUT_FORMAT_JPEG,
    "webp": common_pb2.OUTPUT_FORMAT_WEBP,
}
QUALITY_ALIASES = {"standard": "medium", "hd": "high"}
# The hosted provider whose API takes these fields itself (gpt-image-1).
PASS_THROUGH_PROVIDER = "openai"


@dataclass(frozen=True)
class OutputOptions:
    """The options as the request gave them; None = not given."""

    format: str | None = None
    compression: int | None = None
    quality: str | None = None  # low | medium | high | auto (aliases resolved)
    background: str | None = None
    input_fidelity: str | None = None

    @property
    def output_format(self) -> str:
        return self.format or "png"

    def given(self) -> dict[str, Any]:
        """The fields the request set, under OpenAI's names."""
        fields = {
            "output_format": self.format,
            "output_compression": self.compression,
            "quality": self.quality,
            "background": self.background,
            "input_fidelity": self.input_fidelity,
        }
        return {name: value for name, value in fields.items() if value is not None}


def options_from(knobs: ImageKnobs) -> OutputOptions:
    quality = QUALITY_ALIASES.get(knobs.quality or "", knobs.quality)
    return OutputOptions(
        knobs.output_format,
        knobs.output_compression,
        quality,
        knobs.background,
        knobs.input_fidelity,
    )


def check_applies(options: OutputOptions, entry: Entry, prefix: str = "") -> None:
    """A 400 for an option the model cannot honour, saying why."""
    passes = not entry.local and entry.provider == PASS_THROUGH_PROVIDER
    if options.input_fidelity is not None and not passes:
        raise invalid(
            f"{prefix}input_fidelity cannot apply to {entry.name}: it is gpt-image-1's setting "
            "for edits; leave it out",
            f"{prefix}input_fidelity",
        )
    if passes:
        return
    if options.background == "transparent":
        why = "it makes opaque RGB pictures" if entry.local else "it answers opaque pictures"
        raise invalid(
            f"{prefix}background 'transparent' cannot apply to {entry.name}: {why} (no alpha "
            "channel); send opaque or auto, or leave it out",
            f"{prefix}background",
        )
    if entry.local:
        return
    if options.output_format not in ("png",):
        raise invalid(
            f"{prefix}output_format {options.format!r} cannot apply to {entry.name}: it answers "
            "PNG only; leave it out or send png",
            f"{prefix}output_format",
        )
    if options.quality not in (None, "auto"):
        raise invalid(
            f"{prefix}quality cannot apply to {entry.name}: it has no quality setting; leave it "
            "out, or use a local model (its quality sets its steps)",
            f"{prefix}quality",
        )


def steps_for(options: OutputOptions, entry: Entry, steps: int) -> int:
    """The denoising steps of a local model's request: given ones, else its quality's (0: the
    default)."""
    if steps or options.quality in (None, "auto"):
        return steps
    table = {str(name): count for name, count in entry.quality_steps.items()}
    return table.get(options.quality or "", 0)


def set_on_request(request: Any, options: OutputOptions) -> None:
    """The encoding fields of a model server's GenerateRequest / EditRequest."""
    request.output_format = PROTO_FORMATS[options.output_format]
    if options.compression is not None:
        request.output_compression = options.compression


def hosted_extra(options: OutputOptions, entry: Entry) -> dict[str, Any]:
    """What a hosted provider gets in `extra`: gpt-image-1 takes every given field itself."""
    return options.given() if entry.provider == PASS_THROUGH_PROVIDER else {}
