"""LiblibAI (`liblibai`, seed 001): Star-3 Alpha text/image-to-image and custom WebUI models.

Every call is a signed `POST` (HMAC-SHA1 of `path&Timestamp&SignatureNonce`, in the query
string), answered in the `{"code", "msg", "data"}` envelope; a non-zero code is an error even
under HTTP 200 (whether auth failures also set HTTP 401 is unconfirmed, so both are checked).
A submit returns `generateUuid`; `/api/generate/webui/status` is polled with backoff until
`generateStatus` 5 (done), 6 (failed) or 7 (timed out). Only images that passed moderation are
listed; each is downloaded (URLs last 7 days).

Provider knobs pass through `extra` into `generateParams` (`aspectRatio`, `imgCount`, `steps`,
`sourceImage`, `imageSize`, `controlnet`, `additionalNetwork`, ...). `liblib-custom` also reads
`baseModelType` ("f1" picks the F.1 templates, anything else SD1.5/XL), `templateUuid`
(explicit template), `checkPointId` and a nested `generateParams` object, as in seed 001.
Source images must be public http(s) URLs: LiblibAI downloads them itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
from typing import Any

from services.common.errors import FailedPrecondition, InvalidArgument, ProviderFailed, ServiceError
from services.providers.adapter import Adapter
from services.providers.batch import run_all
from services.providers.polling import poll_until
from services.providers.registry import register_adapter
from services.providers.types import ImageGroup, ImageSpec, ImagesResult, Usage
from services.providers.upstream import RateLimited, Transient, Upstream

log = logging.getLogger("imagemesh.providers.liblib")

KEY_ENV = "LIBLIB_ACCESS_KEY / LIBLIB_SECRET_KEY"
STAR3_T2I = ("/api/generate/webui/text2img/ultra", "5d7e67009b344550bc1aa6ccbfa1d7f4")
STAR3_I2I = ("/api/generate/webui/img2img/ultra", "07e00af4fc464c7ab55ff906f8acf1b7")
CUSTOM_T2I = "/api/generate/webui/text2img"
CUSTOM_I2I = "/api/generate/webui/img2img"
TEMPLATES = {
    ("f1", False): "6f7c4652458d4802969f8d089cf5b91f",
    ("f1", True): "63b72710c9574457ba303d9d9b8df8bd",
    ("sd", False): "e10adc3949ba59abbe56e057f20f883e",
    ("sd", True): "9c7d531dc75f476aa833b3d452b8f7ad",
}
STATUS = "/api/generate/webui/status"
DONE, FAILED, TIMED_OUT = 5, 6, 7
# Envelope codes that are the caller's to fix, and those worth another attempt.
CALLER_CODES = {100000, 100030, 100031, 100032, 100050, 100052, 100053, 100120, 200001}
ACCOUNT_CODES = {100010, 100020, 100021}
TRANSIENT_CODES = {200000, 210000}
CUSTOM_ONLY = frozenset({"baseModelType", "templateUuid", "generateParams"})


def sign(path: str, secret: str, timestamp: str, nonce: str) -> str:
    """URL-safe base64 of HMAC-SHA1(secret, `path&timestamp&nonce`), without `=` padding."""
    content = f"{path}&{timestamp}&{nonce}".encode()
    digest = hmac.new(secret.encode(), content, hashlib.sha1).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def signed_query(path: str, access_key: str, secret: str) -> dict[str, str]:
    timestamp = str(int(time.time() * 1000))
    nonce = secrets.token_hex(8)
    return {
        "AccessKey": access_key,
        "Signature": sign(path, secret, timestamp, nonce),
        "Timestamp": timestamp,
        "SignatureNonce": nonce,
    }


def envelope_error(upstream: Upstream, code: int, msg: str) -> ServiceError:
    if code in (401, 403, 429):
        return upstream.error_for(code, msg, str(code))
    detail = f"{msg} (code {code})"
    if code == 100054:
        return RateLimited(f"LiblibAI concurrent-task limit reached: {detail}")
    if code in CALLER_CODES:
        return InvalidArgument(f"LiblibAI rejected the request: {detail}")
    if code in ACCOUNT_CODES:
        return FailedPrecondition(f"LiblibAI account problem: {detail}")
    if code in TRANSIENT_CODES:
        return Transient(f"LiblibAI is unavailable: {detail}")
    return ProviderFailed(f"LiblibAI failed: {detail}")


def _source_url(spec: ImageSpec, params: dict[str, Any]) -> str | None:
    if params.get("sourceImage"):
        return str(params["sourceImage"])
    if not spec.images:
        return None
    url = spec.images[0].url
    if not url.startswith(("http://", "https://")):
        raise InvalidArgument(
            "images[0]: LiblibAI downloads source images itself; give a public http(s) URL"
        )
    return url


@register_adapter("liblibai")
class Liblib(Adapter):
    provider = "liblibai"
    models = ("star-3-alpha-t2i", "star-3-alpha-i2i", "liblib-custom")
    kind = "image"

    def missing_config(self) -> str | None:
        missing = [
            name
            for name, value in (
                ("LIBLIB_ACCESS_KEY", self.settings.liblib_access_key),
                ("LIBLIB_SECRET_KEY", self.settings.liblib_secret_key),
            )
            if not value
        ]
        return " and ".join(missing) or None

    def upstream(self) -> Upstream:
        settings = self.settings
        return self.env.upstream(
            "liblibai",
            lambda: Upstream(
                settings, label="LiblibAI", base_url=settings.liblib_base_url, key_env=KEY_ENV
            ),
        )

    async def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """`data` of a signed call; a fresh signature per attempt, envelope errors mapped."""
        upstream = self.upstream()
        settings = self.settings

        async def attempt() -> dict[str, Any]:
            query = signed_query(
                path,
                settings.liblib_access_key.get_secret_value(),
                settings.liblib_secret_key.get_secret_value(),
            )
            request = upstream.client.build_request(
                "POST", path, params=query, json=body, timeout=upstream.timeout()
            )
            answer = upstream.parse_json(await upstream.send(request))
            code = answer.get("code", 0)
            if code not in (0, "0"):
                raise envelope_error(upstream, int(code), str(answer.get("msg") or ""))
            return answer.get("data") or {}

        return await upstream.retrying(attempt)

    def request_for(self, spec: ImageSpec) -> tuple[str, dict[str, Any]]:
        """(path, body) for the model."""
        if not spec.prompt.strip():
            raise InvalidArgument("prompt: give a prompt")
        extra = dict(spec.extra)
        params: dict[str, Any] = {"prompt": spec.prompt, "imgCount": spec.n or 1}
        if spec.steps:
            params["steps"] = spec.steps
        if spec.model == "liblib-custom":
            path, template = self._custom(spec, extra, params)
        else:
            params.update({k: v for k, v in extra.items() if k not in CUSTOM_ONLY})
            if spec.model == "star-3-alpha-t2i":
                path, template = STAR3_T2I
                if spec.width or spec.height:
                    params.setdefault("imageSize", {"width": spec.width, "height": spec.height})
                elif "imageSize" not in params:
                    params.setdefault("aspectRatio", "square")
                if spec.prompt_extend:
                    params.setdefault("promptMagic", 1)
            else:
                path, template = STAR3_I2I
                source = _source_url(spec, params)
                if not source:
                    raise InvalidArgument(
                        f"{spec.model} needs a source image (images or sourceImage)"
                    )
                params["sourceImage"] = source
        self._check(params, spec.model)
        return path, {"templateUuid": template, "generateParams": params}

    def _custom(
        self, spec: ImageSpec, extra: dict[str, Any], params: dict[str, Any]
    ) -> tuple[str, str]:
        base = "f1" if str(extra.get("baseModelType", "")).lower() in ("f1", "flux") else "sd"
        if spec.negative_prompt:
            params["negativePrompt"] = spec.negative_prompt
        if spec.guidance_scale is not None:
            params["cfgScale"] = spec.guidance_scale
        if spec.width and spec.height:
            params.update(width=spec.width, height=spec.height)
        if spec.seed is not None:
            params["seed"] = spec.seed
        nested = extra.get("generateParams") or {}
        if not isinstance(nested, dict):
            raise InvalidArgument("extra.generateParams: must be an object")
        params.update({k: v for k, v in extra.items() if k not in CUSTOM_ONLY})
        params.update(nested)
        source = _source_url(spec, params)
        if source:
            params["sourceImage"] = source
        template = str(extra.get("templateUuid") or TEMPLATES[(base, bool(source))])
        return (CUSTOM_I2I if source else CUSTOM_T2I), template

    @staticmethod
    def _check(params: dict[str, Any], model: str) -> None:
        count = params.get("imgCount")
        if not isinstance(count, int) or not 1 <= count <= 4:
            raise InvalidArgument(f"n (imgCount): {count}; {model} makes 1 to 4 images")
        size = params.get("imageSize")
        if isinstance(size, dict):
            for side in ("width", "height"):
                value = size.get(side)
                if not isinstance(value, int) or not 512 <= value <= 2048:
                    raise InvalidArgument(f"{side}: {value}; {model} takes 512 to 2048 pixels")

    async def generate(self, spec: ImageSpec) -> ImagesResult:
        path, body = self.request_for(spec)
        submitted = await self.call(path, body)
        uuid = str(submitted.get("generateUuid") or "")
        if not uuid:
            raise ProviderFailed(f"LiblibAI returned no generateUuid: {str(submitted)[:300]}")
        log.info("%s task %s submitted", spec.model, uuid)
        status = await poll_until(lambda: self._poll(uuid), self.settings, f"LiblibAI task {uuid}")
        return await self._result(spec, uuid, status, body["generateParams"]["imgCount"])

    async def _poll(self, uuid: str) -> dict[str, Any] | None:
        data = await self.call(STATUS, {"generateUuid": uuid})
        if int(data.get("generateStatus") or 0) in (DONE, FAILED, TIMED_OUT):
            return data
        return None

    async def _result(
        self, spec: ImageSpec, uuid: str, data: dict[str, Any], asked: int
    ) -> ImagesResult:
        status = int(data.get("generateStatus") or 0)
        message = str(data.get("generateMsg") or "").strip() or "no reason given"
        if status == FAILED:
            raise ProviderFailed(f"LiblibAI task {uuid} failed: {message}")
        if status == TIMED_OUT:
            raise ProviderFailed(f"LiblibAI task {uuid} timed out at LiblibAI (30 min)")
        items = [i for i in data.get("images") or [] if isinstance(i, dict)]
        passed = [i for i in items if i.get("imageUrl") and i.get("auditStatus", 3) == 3]
        warnings = [
            f"an image was withheld by LiblibAI moderation (auditStatus {i.get('auditStatus')})"
            for i in items
            if i not in passed
        ]
        # Blocked images are usually not listed at all: only the count tells.
        if len(items) < asked:
            warnings.append(
                f"{asked - len(items)} of {asked} images withheld by LiblibAI moderation"
            )
        if not passed:
            raise InvalidArgument(
                f"LiblibAI's moderation withheld every image of task {uuid}; change the prompt"
            )
        images = await run_all(
            self.env.images.fetch(i["imageUrl"], int(i.get("seed") or 0)) for i in passed
        )
        usage = Usage(width=images[0].width, height=images[0].height, image_count=len(images))
        return ImagesResult(
            [ImageGroup(images, 0, spec.prompt)],
            spec.model,
            total_images=len(images),
            usage=usage,
            warnings=warnings,
        )
