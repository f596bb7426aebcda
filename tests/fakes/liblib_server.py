"""A local LiblibAI open API, as shared/protocols/liblibai.md describes.

POST-only JSON; the query carries `AccessKey`, `Signature`, `Timestamp`, `SignatureNonce`, and
the signature is recomputed (URL-safe base64 HMAC-SHA1 of `path&Timestamp&SignatureNonce`, no
padding): an unknown key, a bad signature or a timestamp older than 5 minutes is code 401
"签名验证失败" under HTTP 200 (`auth_http_status = 401` answers HTTP 401 instead). Everything is
in the `{"code", "msg", "data"}` envelope. Submits check `templateUuid` against the endpoint,
`prompt`, `imgCount` 1-4 and `sourceImage` for img2img, and return a 32-hex `generateUuid`;
`/api/generate/webui/status` goes 1 -> 2 -> 5 over `waiting_polls` + `running_polls` polls,
or to 6 / 7 when `task_outcome` says so, and lists only images that passed moderation, served
here under `/sd-images/`.

    fake = FakeLiblib(access_key="ak", secret_key="sk").start()
    fake.url  # -> for LIBLIB_BASE_URL
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.base import FakeProvider, Received
from tests.fakes.pngs import png

ENDPOINTS = {
    "/api/generate/webui/text2img/ultra": {"5d7e67009b344550bc1aa6ccbfa1d7f4"},
    "/api/generate/webui/img2img/ultra": {"07e00af4fc464c7ab55ff906f8acf1b7"},
    "/api/generate/webui/text2img": {
        "6f7c4652458d4802969f8d089cf5b91f",
        "e10adc3949ba59abbe56e057f20f883e",
        "b689de89e8c9407a874acd415b3aa126",
        "7d888009f81d4252a7c458c874cd017f",
        "bf085132c7134622895b783b520b39ff",
    },
    "/api/generate/webui/img2img": {
        "63b72710c9574457ba303d9d9b8df8bd",
        "9c7d531dc75f476aa833b3d452b8f7ad",
        "74509e1b072a4c45a7f1843a963c8462",
    },
}
ASPECTS = {"square": (1024, 1024), "portrait": (768, 1024), "landscape": (1280, 720)}
STATUS_PATH = "/api/generate/webui/status"


def signature(path: str, secret: str, timestamp: str, nonce: str) -> str:
    digest = hmac.new(secret.encode(), f"{path}&{timestamp}&{nonce}".encode(), hashlib.sha1)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


@dataclass
class Generation:
    uuid: str
    count: int
    width: int
    height: int
    outcome: str
    polls: int = 0


class FakeLiblib(FakeProvider):
    def __init__(self, access_key: str = "test-access", secret_key: str = "test-secret") -> None:
        self.access_key = access_key
        self.secret_key = secret_key
        self.generations: dict[str, Generation] = {}
        self._gen_lock = threading.Lock()
        super().__init__()
        routes = [Route(path, self.submit, methods=["POST"]) for path in ENDPOINTS]
        routes += [
            Route(STATUS_PATH, self.status, methods=["POST"]),
            Route("/sd-images/{name}", self.image, methods=["GET"]),
        ]
        self.app = Starlette(routes=routes)

    def env(self) -> dict[str, str]:
        """The providers service's settings for this fake."""
        return {
            "LIBLIB_ACCESS_KEY": self.access_key,
            "LIBLIB_SECRET_KEY": self.secret_key,
            "LIBLIB_BASE_URL": self.url,
        }

    def reset(self) -> None:
        super().reset()
        self.auth_http_status = 200  # HTTP status of a signature failure (unconfirmed: 200/401)
        self.waiting_polls = 1  # polls answered 1 (waiting), then
        self.running_polls = 1  # polls answered 2 (running), then the outcome
        self.task_outcome = "DONE"  # DONE | FAILED | TIMEOUT | MODERATED (last image blocked)
        self.downloads = 0

    def error(self, status: int, code: str, message: str, path: str = "") -> Response:
        """A failure queued with `fail_next`: HTTP `status`, envelope `code` (default: status)."""
        body = {"code": int(code or status), "msg": message or "请求失败", "data": None}
        return JSONResponse(body, status)

    @staticmethod
    def _envelope(code: int, msg: str, data: Any = None, status: int = 200) -> Response:
        return JSONResponse({"code": code, "msg": msg, "data": data}, status)

    async def _begin(self, request: Request) -> tuple[Received, Response | None]:
        received = await self.record(request)
        query = received.query
        fields = ("AccessKey", "Signature", "Timestamp", "SignatureNonce")
        denied = self._envelope(401, "签名验证失败", status=self.auth_http_status)
        if any(not query.get(f) for f in fields) or query["AccessKey"] != self.access_key:
            return received, denied
        expected = signature(
            received.path, self.secret_key, query["Timestamp"], query["SignatureNonce"]
        )
        try:
            age = time.time() - int(query["Timestamp"]) / 1000
        except ValueError:
            return received, denied
        if not hmac.compare_digest(expected, query["Signature"]) or abs(age) > 300:
            return received, denied
        if not received.headers.get("content-type", "").startswith("application/json"):
            return received, self._envelope(
                100000, "参数错误: Content-Type 必须为 application/json"
            )
        return received, await self.injected(received.path)

    async def submit(self, request: Request) -> Response:
        received, early = await self._begin(request)
        if early is not None:
            return early
        body = received.body if isinstance(received.body, dict) else {}
        template = body.get("templateUuid")
        if template not in ENDPOINTS[received.path]:
            return self._envelope(100120, "模板不存在")
        params = body.get("generateParams") or {}
        if not str(params.get("prompt") or "").strip():
            return self._envelope(100000, "参数错误: prompt 不能为空")
        count = params.get("imgCount")
        if not isinstance(count, int) or not 1 <= count <= 4:
            return self._envelope(100000, "参数错误: imgCount 取值 1-4")
        if "img2img" in received.path and not str(params.get("sourceImage") or "").startswith(
            "http"
        ):
            return self._envelope(100000, "参数错误: sourceImage 必须为图片URL")
        width, height = ASPECTS.get(str(params.get("aspectRatio", "square")), (1024, 1024))
        size = params.get("imageSize")
        if isinstance(size, dict):
            width, height = int(size.get("width", 0)), int(size.get("height", 0))
            if not (512 <= width <= 2048 and 512 <= height <= 2048):
                return self._envelope(100000, "参数错误: imageSize 取值 512-2048")
        if "width" in params and "height" in params:
            width, height = int(params["width"]), int(params["height"])
        generation = Generation(uuid.uuid4().hex, count, width, height, self.task_outcome)
        with self._gen_lock:
            self.generations[generation.uuid] = generation
        return self._envelope(0, "", {"generateUuid": generation.uuid})

    async def status(self, request: Request) -> Response:
        received, early = await self._begin(request)
        if early is not None:
            return early
        key = (received.body or {}).get("generateUuid") if isinstance(received.body, dict) else None
        with self._gen_lock:
            generation = self.generations.get(str(key))
            if generation is not None:
                generation.polls += 1
        if generation is None:
            return self._envelope(100051, "生图任务不存在")
        data: dict[str, Any] = {
            "generateUuid": generation.uuid,
            "percentCompleted": 0,
            "generateMsg": "",
            "pointsCost": 10,
            "accountBalance": 1356402,
            "images": [],
        }
        polls = generation.polls
        if polls <= self.waiting_polls:
            data["generateStatus"] = 1
        elif polls <= self.waiting_polls + self.running_polls:
            data["generateStatus"] = 2
        elif generation.outcome == "FAILED":
            data.update(generateStatus=6, generateMsg="生图失败: 模型推理异常")
        elif generation.outcome == "TIMEOUT":
            data.update(generateStatus=7, generateMsg="任务超时")
        else:
            data.update(generateStatus=5, percentCompleted=1)
            for i in range(generation.count):
                if generation.outcome == "MODERATED" and i == generation.count - 1:
                    continue  # blocked images are not listed
                name = f"{generation.uuid}-{i}-{generation.width}x{generation.height}.png"
                data["images"].append(
                    {
                        "imageUrl": f"{self.url}/sd-images/{name}",
                        "seed": 12345 + i,
                        "auditStatus": 3,
                    }
                )
        return self._envelope(0, "", data)

    async def image(self, request: Request) -> Response:
        with self._lock:
            self.downloads += 1
        match = re.search(r"-(\d+)x(\d+)\.png$", request.path_params["name"])
        if match is None:
            return Response("not found", 404)
        return Response(png(int(match[1]), int(match[2]), (90, 160, 60)), media_type="image/png")
