"""The ControlNets a model server loads once (`<SERVER>_CONTROLNET_LOCATION`), the ControlNet
pipelines derived over its loaded pipeline, and a request's control inputs checked against them.

Each location (a `QwenImageControlNetModel` folder or hub id) is loaded once with
`from_pretrained` and named by its folder (the hub id's last part). Its kind comes from its
config: `extra_condition_channels` 0 is a control ControlNet (text to image,
`QwenImageControlNetPipeline`), more is an inpainting one (the packed mask beside the masked
image's latents, `QwenImageControlNetInpaintPipeline`). The pipelines are built at load with
`from_pipe` over the base pipeline's modules, so each adds only wrapper objects and the ControlNet
itself: a control ControlNet gets two (one picture; several pictures through
`QwenImageMultiControlNetModel([net])`, which in diffusers 0.42 takes one net only, a "union"
ControlNet, with one picture and scale each), an inpainting one gets one.

A request's inputs all name one ControlNet; empty names the first one of the kind the call needs
in CONTROLNET_LOCATION's order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from services.common.errors import InvalidArgument
from services.modelserver.loader import LoadedPipeline, PipelineLoadError

CONTROL = "control"
INPAINTING = "inpainting"
PIPELINE = "QwenImageControlNetPipeline"
INPAINT_PIPELINE = "QwenImageControlNetInpaintPipeline"


@dataclass(frozen=True)
class ControlRef:
    """One control input as the caller sent it: the picture's bytes (or a URL, refused; None on
    a masked edit: its own image), a ControlNet name ("" = the first fitting one), a scale."""

    image: bytes | str | None
    controlnet: str = ""
    scale: float | None = None


@dataclass(frozen=True)
class ControlEntry:
    """A loaded ControlNet as Describe lists it."""

    name: str
    kind: str
    location: str


@dataclass(frozen=True)
class ControlCall:
    """A checked request's control: one ControlNet, a picture and scale per input (picture None:
    the inpainting call's own image), the share of steps it acts on."""

    controlnet: str
    kind: str
    images: tuple[Image.Image | None, ...]
    scales: tuple[float, ...]
    start: float
    end: float


def name_of(location: str) -> str:
    return Path(location.rstrip("/")).name


def kind_of(net: Any) -> str:
    return INPAINTING if int(net.config.extra_condition_channels or 0) else CONTROL


class ControlNets:
    """The loaded ControlNets and the pipelines derived for them over one base pipeline."""

    def __init__(self, loaded: LoadedPipeline, locations: Sequence[str]) -> None:
        self.model = name_of(loaded.location)
        self._entries: dict[str, ControlEntry] = {}
        self._pipes: dict[tuple[str, bool], Any] = {}  # (name, several pictures) -> pipeline
        for location in locations:
            name = name_of(location)
            if name in self._entries:
                raise PipelineLoadError(
                    f"CONTROLNET_LOCATION: two ControlNets are named {name} "
                    f"({self._entries[name].location} and {location}); rename a folder"
                )
            net = _load(location, loaded)
            kind = kind_of(net)
            self._entries[name] = ControlEntry(name, kind, location)
            self._pipes.update(_derive(loaded.pipe, net, name, kind))

    def entries(self) -> list[ControlEntry]:
        return list(self._entries.values())

    def pipe_for(self, call: ControlCall) -> Any:
        return self._pipes[(call.controlnet, len(call.images) > 1)]

    def check(
        self,
        refs: Sequence[ControlRef],
        start: float | None,
        end: float | None,
        kind: str,
        decode: Callable[[bytes, str], Image.Image],
    ) -> ControlCall:
        """The control of a request whose call needs a ControlNet of `kind`, or `InvalidArgument`
        naming the field; `decode(bytes, field)` reads a picture."""
        if not self._entries:
            raise InvalidArgument(
                f"controls: {self.model} has no ControlNet loaded; "
                "set CONTROLNET_LOCATION on the server to serve one"
            )
        begin, finish = check_guidance(start, end)
        name = self._pick(refs, kind)
        if kind == INPAINTING and len(refs) > 1:
            raise InvalidArgument(
                f"controls: an inpainting ControlNet takes one control input, got {len(refs)}"
            )
        images: list[Image.Image | None] = []
        scales: list[float] = []
        for i, ref in enumerate(refs):
            field = f"controls[{i}]"
            scales.append(check_scale(ref.scale, f"{field}.conditioning_scale"))
            if ref.image is None:
                if kind != INPAINTING:
                    raise InvalidArgument(f"{field}.image: required; send the control picture")
                images.append(None)
            elif isinstance(ref.image, str):
                raise InvalidArgument(
                    f"{field}.image: model servers take image bytes, not URLs; fetch it first"
                )
            else:
                images.append(decode(ref.image, f"{field}.image"))
        return ControlCall(name, kind, tuple(images), tuple(scales), begin, finish)

    def _pick(self, refs: Sequence[ControlRef], kind: str) -> str:
        names = {ref.controlnet for ref in refs}
        if len(names) > 1:
            raise InvalidArgument(
                f"controls: all inputs of a request go to one ControlNet (got {', '.join(sorted(names))}); "
                "diffusers 0.42's multi-ControlNet takes several pictures through one net"
            )
        (asked,) = names
        fitting = [e.name for e in self._entries.values() if e.kind == kind]
        if not asked:
            if fitting:
                return fitting[0]
            raise InvalidArgument(
                f"controls: {self.model} has no {kind} ControlNet loaded "
                f"(loaded: {self._listing(None)})"
            )
        entry = self._entries.get(asked)
        if entry is None:
            raise InvalidArgument(
                f"controls[0].controlnet: unknown ControlNet {asked!r}; "
                f"{self.model} has {self._listing(None)}"
            )
        if entry.kind != kind:
            wanted = "a masked edit" if kind == INPAINTING else "text to image"
            raise InvalidArgument(
                f"controls[0].controlnet: {asked} is a {entry.kind} ControlNet; {wanted} takes "
                f"a {kind} one: {self._listing(kind) or 'none loaded'}"
            )
        return asked

    def _listing(self, kind: str | None) -> str:
        return ", ".join(
            f"{e.name} ({e.kind})" for e in self._entries.values() if kind is None or e.kind == kind
        )


def check_scale(value: float | None, field: str) -> float:
    scale = 1.0 if value is None else value
    if not (math.isfinite(scale) and scale >= 0):
        raise InvalidArgument(f"{field}: {scale:.4g} must be a number >= 0 (unset: 1)")
    return scale


def check_guidance(start: float | None, end: float | None) -> tuple[float, float]:
    begin = 0.0 if start is None else start
    finish = 1.0 if end is None else end
    for field, value in (("control_guidance_start", begin), ("control_guidance_end", finish)):
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise InvalidArgument(f"{field}: {value:.4g} is outside 0..1 (a share of the steps)")
    if begin >= finish:
        raise InvalidArgument(
            f"control_guidance_start: {begin:.4g} must be below control_guidance_end ({finish:.4g})"
        )
    return begin, finish


def call_arguments(
    call: ControlCall, image: Image.Image | None, mask: Image.Image | None
) -> dict[str, Any]:
    """The ControlNet arguments of one `pipe(...)` call (a list per input when several)."""
    pictures = [picture if picture is not None else image for picture in call.images]
    arguments: dict[str, Any] = {
        "control_guidance_start": call.start,
        "control_guidance_end": call.end,
    }
    if len(pictures) > 1:
        arguments["control_image"] = pictures
        arguments["controlnet_conditioning_scale"] = list(call.scales)
    else:
        arguments["control_image"] = pictures[0]
        arguments["controlnet_conditioning_scale"] = call.scales[0]
    if call.kind == INPAINTING:
        arguments["control_mask"] = mask
    return arguments


def _load(location: str, loaded: LoadedPipeline) -> Any:
    from diffusers import QwenImageControlNetModel

    try:
        net = QwenImageControlNetModel.from_pretrained(location, torch_dtype=loaded.dtype)
    except Exception as exc:
        raise PipelineLoadError(f"cannot load ControlNet from {location}: {exc}") from exc
    return net.to(loaded.device)


def _derive(pipe: Any, net: Any, name: str, kind: str) -> dict[tuple[str, bool], Any]:
    import diffusers

    def derived(class_name: str, controlnet: Any) -> Any:
        made = getattr(diffusers, class_name).from_pipe(pipe, controlnet=controlnet)
        made.set_progress_bar_config(disable=True)
        return made

    if kind == INPAINTING:
        return {(name, False): derived(INPAINT_PIPELINE, net)}
    several = diffusers.QwenImageMultiControlNetModel([net])
    return {(name, False): derived(PIPELINE, net), (name, True): derived(PIPELINE, several)}
