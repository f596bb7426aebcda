"""The gateway's side of the task queue: validate a task at create time, run it later.

`prepare` checks a task with the gateway's own catalogue and size rules, so an unknown model
(404, listing the task models) or a bad parameter (400, naming `parameters.<field>`) is refused
before anything is queued. `run` makes the images through the same serving layer as
`/v1/images/generations` (local Qwen-Image, or the providers service for hosted models) and keeps
them in our bucket: a task's result always holds our own links.

Parameters are seed 001's (DashScope's knobs beside the prompt): `prompt`, `negative_prompt`,
`size` (`1024*1024`), `width`/`height`, `aspect_ratio`, `n`, `seed`, `num_inference_steps`,
`true_cfg_scale`/`guidance_scale`, `prompt_extend`, `watermark`. Hosted models also take their
provider's own knobs (LiblibAI's `aspectRatio`, `imgCount`, `steps`, `sourceImage`,
`generateParams`, ...), passed through to the providers service untouched.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from pydantic import ConfigDict, Field, ValidationError

from services.gateway.catalog import Catalog, Entry
from services.gateway.clients import Backends
from services.gateway.delivery import Delivery
from services.gateway.errors import ApiError, invalid
from services.gateway.images.protocol import GenerationSpec, ImageKnobs
from services.gateway.images.serving import (
    ImageGenerationService,
    Outcome,
    check_count,
    first_size,
)
from services.gateway.settings import GatewaySettings
from services.gateway.sizes import require_multiple_of_16, resolve_size
from services.gateway.tasks.records import TaskImage, TaskOutput, TaskRecord
from services.gateway.tasks.serving import PreparedTask, TaskRequest
from services.gateway.validation import explain

PREFIX = "parameters."
# Seed 001 names providers its own way ("aliyun"); the catalogue says "dashscope".
PROVIDER_NAMES = {
    "aliyun": "dashscope",
    "dashscope": "dashscope",
    "liblibai": "liblibai",
    "liblib": "liblibai",
    "openai": "openai",
    "local": "",
    "imagemesh": "",
}


class TaskParameters(ImageKnobs):
    """Seed 001's `parameters`; unknown keys are a hosted provider's own knobs."""

    model_config = ConfigDict(extra="allow")

    prompt: str = Field(min_length=1)


class GatewayTaskBackend:
    def __init__(
        self,
        settings: GatewaySettings,
        catalog: Catalog,
        backends: Backends,
        images: ImageGenerationService,
        delivery: Delivery,
    ) -> None:
        self._settings = settings
        self._catalog = catalog
        self._backends = backends
        self._images = images
        self._delivery = delivery

    def models(self) -> list[str]:
        """Models a task can name: text-to-image ones, and hosted image-to-image ones."""
        return [e.name for e in self._catalog.entries if _task_model(e)]

    def entry(self, model: str) -> Entry:
        entry = next((e for e in self._catalog.entries if e.name == model), None)
        if entry is None:
            raise ApiError(
                404,
                f"model {model!r} does not exist; models for tasks: {', '.join(self.models())} "
                "(GET /v1/models lists all)",
                "model",
            )
        if not _task_model(entry):
            raise invalid(
                f"model {model!r} edits images you upload: use POST /v1/images/edits; models for "
                f"tasks: {', '.join(self.models())}",
                "model",
            )
        return entry

    async def prepare(self, request: TaskRequest) -> PreparedTask:
        entry = self.entry(request.model)
        provider = _check_provider(entry, request.provider)
        knobs = _parse(request.parameters)
        if knobs.response_format != "url":
            raise invalid(
                f"{PREFIX}response_format must be url for tasks: their images are kept in "
                "storage and answered as links",
                f"{PREFIX}response_format",
            )
        extra = dict(knobs.model_extra or {}) if not entry.local else {}
        given = request.parameters
        n = knobs.n
        if "n" not in given and isinstance(extra.get("imgCount"), int):
            n = extra["imgCount"]  # LiblibAI's name for it
        steps = knobs.num_inference_steps or 0
        if not steps and isinstance(extra.get("steps"), int):
            steps = extra["steps"]
        if not 1 <= n <= 10:
            raise invalid(f"{PREFIX}n must be between 1 and 10 (got {n})", f"{PREFIX}n")
        check_count(n, entry, PREFIX)
        width, height = resolve_size(
            knobs.size, knobs.width, knobs.height, knobs.aspect_ratio, PREFIX
        )
        if entry.local:
            require_multiple_of_16(width, height, entry.name, PREFIX)
        true_cfg, guidance = knobs.true_cfg_scale, knobs.guidance_scale
        if true_cfg is None and guidance is not None and entry.local:
            # As at the DashScope image endpoint: seed 002's guidance_scale is Qwen's true CFG.
            true_cfg, guidance = guidance, None
        spec = GenerationSpec(
            model=entry.name,
            prompt=knobs.prompt,
            negative_prompt=knobs.negative_prompt or "",
            width=width,
            height=height,
            n=n,
            response_format="url",
            num_inference_steps=steps,
            true_cfg_scale=true_cfg,
            guidance_scale=guidance,
            seed=knobs.seed,
            prompt_extend=knobs.prompt_extend,
            watermark=knobs.watermark,
            extra=extra,
            param_prefix=PREFIX,
        )
        return PreparedTask(model=entry.name, spec=asdict(spec), provider=provider)

    async def run(self, task: TaskRecord) -> TaskOutput:
        spec = GenerationSpec(**task.spec)
        entry = self.entry(task.model)
        outcome = await (self._images.generate(spec) if entry.local else self._hosted(entry, spec))
        images = [
            TaskImage(
                index=index,
                url=image.url or "",
                key=image.key,
                seed=image.seed,
                width=image.width or outcome.width,
                height=image.height or outcome.height,
                url_expires_at=image.url_expires_at,
            )
            for index, image in enumerate(outcome.images)
        ]
        extra: dict[str, Any] = {"warnings": outcome.warnings} if outcome.warnings else {}
        return TaskOutput(
            images, requested=spec.n, actual_prompt=outcome.revised_prompt, extra=extra
        )

    async def _hosted(self, entry: Entry, spec: GenerationSpec) -> Outcome:
        """Providers.GenerateImages with the provider's own knobs, images kept in our bucket."""
        request = self._images._hosted_request(entry, spec)
        if spec.extra:
            request.extra.update(spec.extra)
        response = await self._backends.unary(
            "providers",
            self._backends.providers.GenerateImages,
            request,
            deadline=self._settings.generate_deadline_seconds,
            what=entry.name,
        )
        made = [image for group in response.results for image in group.images]
        warnings = list(response.warnings)
        if not made:
            detail = f": {'; '.join(warnings)}" if warnings else ""
            raise ApiError(502, f"{entry.name} returned no images{detail}")
        delivered = await self._delivery.deliver(made, "url")
        width, height = first_size(made, spec.width, spec.height)
        revised = next((g.actual_prompt for g in response.results if g.actual_prompt), None)
        return Outcome(
            entry.name, delivered, width, height, revised_prompt=revised, warnings=warnings
        )


def _task_model(entry: Entry) -> bool:
    return "image" in entry.kinds or (not entry.local and "edit" in entry.kinds)


def _check_provider(entry: Entry, given: str) -> str:
    if not given:
        return entry.provider
    wanted = PROVIDER_NAMES.get(given.strip().lower())
    if wanted is None:
        raise invalid(
            f"provider {given!r} is unknown; use one of {', '.join(PROVIDER_NAMES)} or leave it out",
            "provider",
        )
    if wanted != entry.provider:
        served_by = entry.provider or "local (imagemesh)"
        raise invalid(
            f"model {entry.name!r} is served by {served_by}, not {given!r}; "
            "fix provider or leave it out",
            "provider",
        )
    return entry.provider


def _parse(parameters: dict[str, Any]) -> TaskParameters:
    try:
        return TaskParameters.model_validate(parameters)
    except ValidationError as exc:
        errors = [
            {**e, "loc": ("parameters", *e.get("loc", ()))} for e in exc.errors(include_url=False)
        ]
        message, param = explain(errors)
        raise invalid(message, param) from None
