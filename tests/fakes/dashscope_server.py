"""A local DashScope: native `/api/v1` (Qwen-Image sync, Wanx async tasks) and
`/compatible-mode/v1` chat (qwen-plus), as shared/protocols/dashscope.md describes.

Bearer auth: native 401 `{"request_id","code":"InvalidApiKey","message"}`, compatible-mode 401
in the OpenAI envelope. Sync Qwen-Image rejects `X-DashScope-Async` (403), checks one user
message with one text, the size union and n == 1. Async creates require `X-DashScope-Async:
enable`; `GET /api/v1/tasks/{id}` goes PENDING -> RUNNING -> SUCCEEDED over `pending_polls` +
`running_polls` polls (FAILED or partial success when `task_outcome` says so; unknown ids are
UNKNOWN). Result URLs point back here (`/results/...png?Expires=...`) and serve real PNGs.

    fake = FakeDashScope(api_key="sk-test").start()
    fake.url  # -> http://127.0.0.1:<port>, for DASHSCOPE_BASE_URL
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.base import FakeProvider, Received
from tests.fakes.pngs import png

QWEN_SIZES = (
    "1664*928",
    "1472*1104",
    "1328*1328",
    "1104*1472",
    "928*1664",
    "1472*1140",
    "1140*1472",
)
WAN_MODELS = ("wanx2.1-t2i-turbo", "wanx2.1-t2i-plus", "wanx2.0-t2i-turbo", "wan2.1-t2i-turbo")
QWEN_MODELS = ("qwen-image", "qwen-image-plus", "qwen-image-max")
NATIVE_CODES = {
    400: "InvalidParameter",
    401: "InvalidApiKey",
    403: "AccessDenied",
    404: "ModelNotFound",
    429: "Throttling.RateQuota",
    500: "InternalError",
    503: "ServiceUnavailable",
}


@dataclass
class Task:
    task_id: str
    model: str
    prompt: str
    n: int
    width: int
    height: int
    prompt_extend: bool
    outcome: str
    polls: int = 0
    submit_time: str = ""


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S.000")


class FakeDashScope(FakeProvider):
    def __init__(self, api_key: str = "sk-test-dashscope") -> None:
        self.api_key = api_key
        self.tasks: dict[str, Task] = {}
        self._tasks_lock = threading.Lock()
        super().__init__()
        self.app = Starlette(
            routes=[
                Route("/compatible-mode/v1/chat/completions", self.chat, methods=["POST"]),
                Route(
                    "/api/v1/services/aigc/multimodal-generation/generation",
                    self.qwen_image,
                    methods=["POST"],
                ),
                Route(
                    "/api/v1/services/aigc/text2image/image-synthesis",
                    self.create_task,
                    methods=["POST"],
                ),
                Route("/api/v1/tasks/{task_id}", self.task, methods=["GET"]),
                Route("/results/{name}", self.result_image, methods=["GET"]),
            ]
        )

    def env(self) -> dict[str, str]:
        """The providers service's settings for this fake."""
        return {"DASHSCOPE_API_KEY": self.api_key, "DASHSCOPE_BASE_URL": self.url}

    def reset(self) -> None:
        super().reset()
        self.reply: str | None = None  # chat answer; None echoes the last user message
        self.pending_polls = 1  # polls answered PENDING, then
        self.running_polls = 1  # polls answered RUNNING, then the outcome
        self.task_outcome = "SUCCEEDED"  # SUCCEEDED | FAILED | PARTIAL
        self.failed_code = "InternalError.Algo"
        self.failed_message = "Inner server error: algorithm failed to generate the image."
        self.downloads = 0
        self.leaked_keys = 0
        # When set, result image URLs answer a 302 to this location (a storage host that
        # redirects somewhere it should not).
        self.result_location: str | None = None

    # -- shapes --------------------------------------------------------------------------------

    def error(self, status: int, code: str, message: str, path: str = "") -> Response:
        if path.startswith("/compatible-mode"):
            body = {
                "error": {
                    "message": message or f"error {status}",
                    "type": "invalid_request_error" if status < 500 else "server_error",
                    "param": None,
                    "code": code
                    or ("invalid_api_key" if status == 401 else NATIVE_CODES.get(status)),
                },
                "request_id": str(uuid.uuid4()),
            }
            return JSONResponse(body, status)
        body = {
            "request_id": str(uuid.uuid4()),
            "code": code or NATIVE_CODES.get(status, "InternalError"),
            "message": message or f"error {status}",
        }
        return JSONResponse(body, status)

    async def _begin(self, request: Request) -> tuple[Received, Response | None]:
        received = await self.record(request)
        if received.headers.get("authorization", "") != f"Bearer {self.api_key}":
            if received.path.startswith("/compatible-mode"):
                return received, self.error(
                    401, "invalid_api_key", "Incorrect API key provided. ", received.path
                )
            message = (
                "Invalid API-key provided."
                if received.headers.get("authorization")
                else "No API-key provided."
            )
            return received, self.error(401, "InvalidApiKey", message, received.path)
        return received, await self.injected(received.path)

    def _image_url(self, tag: str, index: int, width: int, height: int) -> str:
        expires = int(time.time()) + 86400
        return (
            f"{self.url}/results/{tag}-{index}-{width}x{height}.png"
            f"?Expires={expires}&OSSAccessKeyId=LTAItest&Signature=abc%3D"
        )

    async def result_image(self, request: Request) -> Response:
        self.record_download(request)
        if self.result_location is not None:
            return Response(status_code=302, headers={"Location": self.result_location})
        match = re.search(r"-(\d+)x(\d+)\.png$", request.path_params["name"])
        if match is None:
            return Response("NoSuchKey", 404)
        return Response(png(int(match[1]), int(match[2]), (40, 120, 200)), media_type="image/png")

    def record_download(self, request: Request) -> None:
        with self._lock:
            self.downloads += 1
            # Storage hosts must never see the API key.
            self.leaked_keys += "authorization" in request.headers

    # -- compatible-mode chat ------------------------------------------------------------------

    async def chat(self, request: Request) -> Response:
        received, early = await self._begin(request)
        if early is not None:
            return early
        body = received.body if isinstance(received.body, dict) else {}
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return self.error(
                400, "invalid_parameter_error", "messages must not be empty", received.path
            )
        last = next((m for m in reversed(messages) if m.get("role") == "user"), messages[-1])
        content = last.get("content")
        if isinstance(content, list):
            content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
        text = self.reply if self.reply is not None else f"You said: {content}"
        thinking = "Let me think." if body.get("enable_thinking") else ""
        usage = {
            "prompt_tokens": 22,
            "completion_tokens": len(text.split()),
            "total_tokens": 22 + len(text.split()),
        }
        if body.get("stream"):
            include = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(
                self._chunks(
                    text, thinking, body.get("model", "qwen-plus"), usage if include else None
                ),
                media_type="text/event-stream",
            )
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if thinking:
            message["reasoning_content"] = thinking
        return JSONResponse(
            {
                "choices": [
                    {"message": message, "finish_reason": "stop", "index": 0, "logprobs": None}
                ],
                "object": "chat.completion",
                "usage": usage,
                "created": int(time.time()),
                "system_fingerprint": None,
                "model": body.get("model", "qwen-plus"),
                "id": f"chatcmpl-{uuid.uuid4()}",
            }
        )

    async def _chunks(
        self, text: str, thinking: str, model: str, usage: dict[str, int] | None
    ) -> AsyncIterator[bytes]:
        base = {
            "id": f"chatcmpl-{uuid.uuid4()}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": None,
        }

        def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"delta": delta, "finish_reason": finish, "index": 0, "logprobs": None}
            return f"data: {json.dumps({**base, 'choices': [choice], 'usage': None})}\n\n".encode()

        yield event({"content": "", "role": "assistant"})
        if thinking:
            yield event({"content": None, "reasoning_content": thinking})
        words = text.split(" ")
        for i, word in enumerate(words):
            last = i == len(words) - 1
            yield event({"content": word if i == 0 else f" {word}"}, "stop" if last else None)
        if usage is not None:
            yield f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n".encode()
        yield b"data: [DONE]\n\n"

    # -- Qwen-Image, synchronous ---------------------------------------------------------------

    async def qwen_image(self, request: Request) -> Response:
        received, early = await self._begin(request)
        if early is not None:
            return early
        if "x-dashscope-async" in received.headers:
            return self.error(
                403,
                "AccessDenied",
                "current user api does not support asynchronous calls",
                received.path,
            )
        body = received.body if isinstance(received.body, dict) else {}
        if body.get("model") not in QWEN_MODELS:
            return self.error(400, "InvalidParameter", "Model not exist.", received.path)
        messages = (body.get("input") or {}).get("messages")
        if (
            not isinstance(messages, list)
            or len(messages) != 1
            or messages[0].get("role") != "user"
        ):
            return self.error(
                400,
                "InvalidParameter",
                "input.messages must hold exactly one user message",
                received.path,
            )
        content = messages[0].get("content") or []
        texts = [p["text"] for p in content if isinstance(p, dict) and "text" in p]
        if len(texts) != 1 or len(content) != 1:
            return self.error(
                400, "InvalidParameter", "content must hold exactly one text", received.path
            )
        parameters = body.get("parameters") or {}
        size = parameters.get("size", "1664*928")
        if size not in QWEN_SIZES:
            return self.error(
                400, "InvalidParameter", f"The size {size} is not supported.", received.path
            )
        if parameters.get("n", 1) != 1:
            return self.error(400, "InvalidParameter", "n must be 1 for this model", received.path)
        width, height = map(int, size.split("*"))
        request_id = str(uuid.uuid4())
        return JSONResponse(
            {
                "output": {
                    "choices": [
                        {
                            "finish_reason": "stop",
                            "message": {
                                "role": "assistant",
                                "content": [
                                    {"image": self._image_url(request_id, 0, width, height)}
                                ],
                            },
                        }
                    ],
                    "task_metric": {"TOTAL": 1, "SUCCEEDED": 1, "FAILED": 0},
                },
                "usage": {"width": width, "height": height, "image_count": 1},
                "request_id": request_id,
            }
        )

    # -- async tasks (Wanx, Qwen-Image) --------------------------------------------------------

    async def create_task(self, request: Request) -> Response:
        received, early = await self._begin(request)
        if early is not None:
            return early
        if received.headers.get("x-dashscope-async") != "enable":
            return self.error(
                403,
                "AccessDenied",
                "current user api does not support synchronous calls",
                received.path,
            )
        body = received.body if isinstance(received.body, dict) else {}
        model = body.get("model")
        if model not in WAN_MODELS + QWEN_MODELS[:2]:
            return self.error(400, "InvalidParameter", "Model not exist.", received.path)
        inputs = body.get("input") or {}
        if not str(inputs.get("prompt") or "").strip():
            return self.error(400, "InvalidParameter", "input.prompt is required", received.path)
        parameters = body.get("parameters") or {}
        n = parameters.get("n", 4 if model in WAN_MODELS else 1)
        if not isinstance(n, int) or not 1 <= n <= 4:
            return self.error(
                400, "InvalidParameter", f"n should be in [1, 4], got {n}", received.path
            )
        width, height = map(int, str(parameters.get("size", "1024*1024")).split("*"))
        if not (512 <= width <= 1440 and 512 <= height <= 1440):
            return self.error(
                400, "InvalidParameter", "size must be within 512*512 and 1440*1440", received.path
            )
        task = Task(
            task_id=str(uuid.uuid4()),
            model=model,
            prompt=inputs["prompt"],
            n=n,
            width=width,
            height=height,
            prompt_extend=bool(parameters.get("prompt_extend", True)),
            outcome=self.task_outcome,
            submit_time=_now(),
        )
        with self._tasks_lock:
            self.tasks[task.task_id] = task
        return JSONResponse(
            {
                "output": {"task_id": task.task_id, "task_status": "PENDING"},
                "request_id": str(uuid.uuid4()),
            }
        )

    async def task(self, request: Request) -> Response:
        received, early = await self._begin(request)
        if early is not None:
            return early
        task_id = request.path_params["task_id"]
        with self._tasks_lock:
            task = self.tasks.get(task_id)
            if task is not None:
                task.polls += 1
        request_id = str(uuid.uuid4())
        if task is None:
            return JSONResponse(
                {"request_id": request_id, "output": {"task_id": task_id, "task_status": "UNKNOWN"}}
            )
        output: dict[str, Any] = {"task_id": task_id, "submit_time": task.submit_time}
        if task.polls <= self.pending_polls:
            output["task_status"] = "PENDING"
        elif task.polls <= self.pending_polls + self.running_polls:
            output.update(task_status="RUNNING", scheduled_time=task.submit_time)
        elif task.outcome == "FAILED":
            output.update(
                task_status="FAILED",
                code=self.failed_code,
                message=self.failed_message,
                task_metrics={"TOTAL": task.n, "SUCCEEDED": 0, "FAILED": task.n},
            )
        else:
            results = []
            for i in range(task.n):
                if task.outcome == "PARTIAL" and i == task.n - 1:
                    results.append(
                        {
                            "code": "DataInspectionFailed",
                            "message": "Output data may contain inappropriate content.",
                        }
                    )
                    continue
                item = {
                    "orig_prompt": task.prompt,
                    "url": self._image_url(task_id, i, task.width, task.height),
                }
                if task.prompt_extend:
                    item["actual_prompt"] = f"{task.prompt}, highly detailed, soft light"
                results.append(item)
            done = sum(1 for r in results if "url" in r)
            output.update(
                task_status="SUCCEEDED",
                scheduled_time=task.submit_time,
                end_time=_now(),
                results=results,
                task_metrics={"TOTAL": task.n, "SUCCEEDED": done, "FAILED": task.n - done},
            )
            return JSONResponse(
                {"request_id": request_id, "output": output, "usage": {"image_count": done}}
            )
        return JSONResponse({"request_id": request_id, "output": output})
