"""Checks a task at create time with the gateway's own rules, and makes the tasks service's spec.

`prepare` checks a task with the gateway's catalogue and size rules, so an unknown model (404,
listing the task models) or a bad parameter (400, naming `parameters.<field>`) is refused before
anything is queued, and answers the `CreateTaskRequest` the tasks service queues: the model, its
backend (the local Qwen-Image server or the providers service; a catalogue entry's `server`, such
as Qwen-Image 2.1's, goes in `TaskSpec.server`) and the normalised knobs.

Parameters are seed 001's (DashScope's knobs beside the prompt): `prompt`, `negative_prompt`,
`size` (`1024*1024`), `width`/`height`, `aspect_ratio`, `n`, `seed`, `num_inference_steps`,
`true_cfg_scale`/`guidance_scale`, `prompt_extend`, `watermark`, and for the local model
`lora` (its adapters; the model server checks them when the task runs: an unknown one fails the
task naming it). Hosted models also take their provider's own knobs (LiblibAI's `aspectRatio`,
`imgCount`, `steps`, `sourceImage`, `generateParams`, ...), passed through to the providers
service untouched. The local model also takes an input image, a mask and `strength` (img2img,
inpainting: `inputs.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from imagemesh.v1 import tasks_pb2
from pydantic import ConfigDict, Field, ValidationError

from services.gateway.apierror import ApiError, invalid
from services.gateway.catalog import Catalog, Entry
from services.gateway.control_fields import refuse_in_task
from services.gateway.knobs import ImageKnobs, check_count
from services.gateway.lora_field import check_loras, lora_refs
from services.gateway.output_options import (
    check_applies,
    hosted_extra,
    options_from,
    set_on_request,
)
from services.gateway.settings import GatewaySettings
from services.gateway.sizes import require_multiple_of_16, resolve_size
from services.gateway.tasks.inputs import image_inputs, shown, strength
from services.gateway.tasks.layers import refuse_elsewhere, set_layers
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


@dataclass(frozen=True)
class TaskRequest:
    """A create request, whichever API it came through."""

    model: str
    parameters: dict[str, Any]
    provider: str = ""
    api: str = "tasks"
    callback_url: str = ""


class TaskPreparer:
    def __init__(self, settings: GatewaySettings, catalog: Catalog) -> None:
        self._settings = settings
        self._catalog = catalog

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

    def prepare(self, request: TaskRequest) -> tasks_pb2.CreateTaskRequest:
        """The tasks service's request (owner left to the caller); 404 / 400 when it is wrong."""
        entry = self.entry(request.model)
        provider = _check_provider(entry, request.provider)
        request, callback_url = _callback(request)
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
        check_loras(knobs.lora or [], entry, PREFIX)
        refuse_in_task(given, PREFIX)
        output = options_from(knobs)
        check_applies(output, entry, PREFIX)
        width, height = resolve_size(
            knobs.size, knobs.width, knobs.height, knobs.aspect_ratio, PREFIX
        )
        if entry.local:
            require_multiple_of_16(width, height, entry.name, PREFIX)
        true_cfg, guidance = knobs.true_cfg_scale, knobs.guidance_scale
        if true_cfg is None and guidance is not None and entry.local:
            # As at the DashScope image endpoint: seed 002's guidance_scale is Qwen's true CFG.
            true_cfg, guidance = guidance, None
        extend = knobs.prompt_extend
        spec = tasks_pb2.TaskSpec(
            model=entry.name,
            backend=tasks_pb2.TASK_BACKEND_QWEN_IMAGE
            if entry.local
            else tasks_pb2.TASK_BACKEND_PROVIDERS,
            prompt=knobs.prompt,
            negative_prompt=knobs.negative_prompt or "",
            width=width,
            height=height,
            n=n,
            num_inference_steps=steps,
            prompt_extend=self._settings.prompt_extend_default if extend is None else extend,
            watermark=bool(knobs.watermark),
            # Another deployment of the local server (Qwen-Image 2.1): the tasks service's
            # TASKS_MODEL_SERVERS names where it runs.
            server=entry.server,
        )
        if true_cfg is not None:
            spec.true_cfg_scale = true_cfg
        if guidance is not None:
            spec.guidance_scale = guidance
        if knobs.seed is not None:
            spec.seed = knobs.seed
        if entry.local:
            # The images themselves are fetched by the caller (`TasksClient.create`).
            wanted = strength(request.parameters, bool(image_inputs(request.parameters)))
            if wanted is not None:
                spec.strength = wanted
        if "layers" in entry.kinds:
            set_layers(spec, request.parameters, entry.name)
        elif entry.local:
            refuse_elsewhere(request.parameters, entry.name)
        set_on_request(spec, output)  # TaskSpec names them as GenerateRequest does
        extra.update(hosted_extra(output, entry))
        if extra:
            spec.extra.update(extra)
        spec.loras.extend(lora_refs(knobs.lora or []))
        created = tasks_pb2.CreateTaskRequest(
            spec=spec,
            api=request.api,
            provider=provider or request.provider,
            callback_url=callback_url,
        )
        created.parameters.update(shown(request.parameters))
        return created


def _callback(request: TaskRequest) -> tuple[TaskRequest, str]:
    """The callback URL: seed 001's top-level field, or `parameters.callback_url` (DashScope's
    body has no place for it), which is no model knob and is not sent to a provider."""
    parameters = dict(request.parameters)
    given = parameters.pop("callback_url", None)
    if given is not None and not isinstance(given, str):
        raise invalid(f"{PREFIX}callback_url must be a URL string", f"{PREFIX}callback_url")
    url = request.callback_url or given or ""
    return replace(request, parameters=parameters), url


def _task_model(entry: Entry) -> bool:
    return (
        "image" in entry.kinds
        or "layers" in entry.kinds
        or (not entry.local and "edit" in entry.kinds)
    )


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
