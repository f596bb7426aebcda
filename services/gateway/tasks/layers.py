"""A Qwen-Image-Layered task's own parameters: `layers` (2..8, default 4) and `resolution` (640 or
1024), checked at create with 400s naming `parameters.<field>`, onto TaskSpec fields 65-66; the
image to split is the task's `parameters.image` (fetched like an img2img task's, `inputs.py`)."""

from __future__ import annotations

from typing import Any

from imagemesh.v1 import tasks_pb2

from services.gateway.apierror import invalid
from services.gateway.layers.protocol import DEFAULT_LAYERS, MAX_LAYERS, MIN_LAYERS
from services.gateway.tasks.inputs import image_inputs

PREFIX = "parameters."
RESOLUTIONS = (640, 1024)


def set_layers(spec: tasks_pb2.TaskSpec, parameters: dict[str, Any], model: str) -> None:
    """The Layered fields onto `spec`, or a 400 naming the parameter."""
    if not any(i.field == "image" for i in image_inputs(parameters)):
        raise invalid(
            f"{PREFIX}image is required: {model} splits an image into layers", f"{PREFIX}image"
        )
    layers = parameters.get("layers", DEFAULT_LAYERS)
    if isinstance(layers, bool) or not isinstance(layers, int):
        raise invalid(f"{PREFIX}layers must be an integer (got {layers!r})", f"{PREFIX}layers")
    if not MIN_LAYERS <= layers <= MAX_LAYERS:
        raise invalid(
            f"{PREFIX}layers must be between {MIN_LAYERS} and {MAX_LAYERS} (got {layers})",
            f"{PREFIX}layers",
        )
    spec.layers = layers
    resolution = parameters.get("resolution")
    if resolution is not None:
        if isinstance(resolution, bool) or resolution not in RESOLUTIONS:
            raise invalid(
                f"{PREFIX}resolution must be 640 or 1024 (got {resolution!r})",
                f"{PREFIX}resolution",
            )
        spec.resolution = resolution


def refuse_elsewhere(parameters: dict[str, Any], model: str) -> None:
    """`layers` / `resolution` given to a model that does not split images."""
    for name in ("layers", "resolution"):
        if name in parameters:
            raise invalid(
                f"{PREFIX}{name} applies to a Qwen-Image-Layered model (qwen-image-layered); "
                f"{model} does not split images",
                f"{PREFIX}{name}",
            )
