"""Wanx text-to-image on DashScope (`dashscope-wanx`, seed 001): an asynchronous task.

`POST /api/v1/services/aigc/text2image/image-synthesis` with `X-DashScope-Async: enable` creates
the task; `GET /api/v1/tasks/{id}` is polled with backoff until SUCCEEDED / FAILED / CANCELED /
UNKNOWN, within the caller's deadline. Each result URL is downloaded (they expire after 24 h). A
SUCCEEDED task may still have failed items (partial success): they become warnings, and the call
fails only when no image came out. `n` defaults to 1 here, not DashScope's 4 (billed per image).
"""

from __future__ import annotations

import logging
from typing import Any

from services.common.errors import InvalidArgument, ProviderFailed, ServiceError
from services.providers.adapter import Adapter
from services.providers.adapters._dashscope import (
    NATIVE,
    check_native,
    check_seed,
    dashscope_missing,
    dashscope_upstream,
    size_param,
)
from services.providers.batch import run_all
from services.providers.polling import poll_until
from services.providers.registry import register_adapter
from services.providers.types import ImageGroup, ImageSpec, ImagesResult, Usage
from services.providers.upstream import Upstream

log = logging.getLogger("imagemesh.providers.wanx")

CREATE = f"{NATIVE}/services/aigc/text2image/image-synthesis"
TASK = f"{NATIVE}/tasks/{{task_id}}"
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELED", "UNKNOWN")
# Task error codes that are the caller's to fix.
CALLER_CODES = ("invalidparameter", "datainspectionfailed", "badrequest")
RESERVED = frozenset({"size", "n", "seed", "prompt_extend", "watermark"})


def task_error(task_id: str, output: dict[str, Any]) -> ServiceError:
    status = output.get("task_status")
    code = str(output.get("code") or "")
    message = str(output.get("message") or "").strip()
    if status == "UNKNOWN":
        return ProviderFailed(f"DashScope task {task_id} is unknown or expired (kept 24 h)")
    if status == "CANCELED":
        return ProviderFailed(f"DashScope task {task_id} was canceled")
    detail = f"{message} ({code})" if code else message or "no reason given"
    if code.lower().startswith(CALLER_CODES):
        return InvalidArgument(f"DashScope rejected the task: {detail}")
    return ProviderFailed(f"DashScope task {task_id} failed: {detail}")


@register_adapter("dashscope-wanx")
class Wanx(Adapter):
    provider = "dashscope"
    models = ("wanx2.1-t2i-turbo", "wanx2.1-t2i-plus", "wanx2.0-t2i-turbo")
    kind = "image"

    def missing_config(self) -> str | None:
        return dashscope_missing(self.env)

    def _body(self, spec: ImageSpec) -> dict[str, Any]:
        if not spec.prompt.strip():
            raise InvalidArgument("prompt: give a prompt")
        for name, side in (("width", spec.width), ("height", spec.height)):
            if side and not 512 <= side <= 1440:
                raise InvalidArgument(f"{name}: {side}; {spec.model} takes 512 to 1440 pixels")
        n = spec.n or 1
        if not 1 <= n <= 4:
            raise InvalidArgument(f"n: {n}; {spec.model} makes 1 to 4 images")
        inputs: dict[str, Any] = {"prompt": spec.prompt}
        if spec.negative_prompt:
            inputs["negative_prompt"] = spec.negative_prompt
        parameters = {k: v for k, v in spec.extra.items() if k not in RESERVED}
        parameters.update(n=n, prompt_extend=spec.prompt_extend, watermark=spec.watermark)
        if size := size_param(spec.width, spec.height):
            parameters["size"] = size
        if (seed := check_seed(spec.seed)) is not None:
            parameters["seed"] = seed
        return {"model": spec.model, "input": inputs, "parameters": parameters}

    async def generate(self, spec: ImageSpec) -> ImagesResult:
        upstream = dashscope_upstream(self.env)
        created = await upstream.json(
            "POST", CREATE, json=self._body(spec), headers={"X-DashScope-Async": "enable"}
        )
        check_native(upstream, created)
        task_id = str((created.get("output") or {}).get("task_id") or "")
        if not task_id:
            raise ProviderFailed(f"DashScope created no task: {str(created)[:300]}")
        log.info("%s task %s created", spec.model, task_id)
        done = await poll_until(
            lambda: self._poll(upstream, task_id), self.settings, f"DashScope task {task_id}"
        )
        return await self._result(spec, task_id, done)

    async def _poll(self, upstream: Upstream, task_id: str) -> dict[str, Any] | None:
        data = await upstream.json("GET", TASK.format(task_id=task_id))
        check_native(upstream, data)
        output = data.get("output") or {}
        if output.get("task_status") in TERMINAL:
            return data
        return None

    async def _result(self, spec: ImageSpec, task_id: str, data: dict[str, Any]) -> ImagesResult:
        output = data.get("output") or {}
        if output.get("task_status") != "SUCCEEDED":
            raise task_error(task_id, output)
        items = [r for r in output.get("results") or [] if isinstance(r, dict)]
        good = [r for r in items if r.get("url")]
        warnings = [
            f"an image failed: {r.get('message') or 'no reason given'} ({r.get('code') or '?'})"
            for r in items
            if not r.get("url")
        ]
        if not good:
            first = items[0] if items else {}
            raise task_error(
                task_id,
                {
                    "task_status": "FAILED",
                    "code": first.get("code"),
                    "message": first.get("message"),
                },
            )
        seed = spec.seed or 0
        images = await run_all(self.env.images.fetch(r["url"], seed) for r in good)
        actual = next((r["actual_prompt"] for r in good if r.get("actual_prompt")), "")
        group = ImageGroup(images, 0, spec.prompt, actual_prompt=actual)
        usage = Usage(width=images[0].width, height=images[0].height, image_count=len(images))
        return ImagesResult(
            [group], spec.model, total_images=len(images), usage=usage, warnings=warnings
        )
