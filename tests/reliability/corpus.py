"""The hand-written bad-input corpus: requests a client may send by mistake (or on purpose) to
every endpoint of the gateway, each of which must be refused with a 4xx envelope.

Families: bodies that are not a JSON object (sent to every JSON endpoint), bad fields of each
request shape, bad image inputs, bad multipart forms, bad task ids, bad methods and paths. Each
case is one request; `says` is a word its message must hold, where the case has an obvious one.
The base requests are cheap (64x64, 2 steps), so a case that were wrongly accepted would still
answer quickly.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

GEN = "/v1/images/generations"
EDITS = "/v1/images/edits"
CHAT = "/v1/chat/completions"
TASKS = "/api/v1/tasks/"
SYNTH = "/api/v1/services/aigc/text2image/image-synthesis"
MULTI = "/api/v1/services/aigc/multimodal-generation/generation"
ASYNC = {"X-DashScope-Async": "enable"}

OK = {"prompt": "a cat", "size": "64x64", "num_inference_steps": 2, "response_format": "b64_json"}
DS_OK = {
    "model": "qwen-image",
    "input": {"messages": [{"role": "user", "content": [{"text": "a cat"}]}]},
    "parameters": {"size": "64*64", "num_inference_steps": 2, "response_format": "b64_json"},
}
CHAT_OK = {"model": "gpt-5", "messages": [{"role": "user", "content": "hello"}]}
TASK_OK = {"model": "qwen-image", "parameters": {"prompt": "a cat", "size": "64*64", "n": 1}}
SYNTH_OK = {"model": "qwen-image", "input": {"prompt": "a cat"}, "parameters": {"size": "64*64"}}
NOT_AN_IMAGE = "data:image/png;base64," + base64.b64encode(b"plain text, no pixels").decode()


@dataclass(frozen=True)
class Bad:
    id: str
    method: str
    path: str
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    data: dict[str, str] | None = None
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None
    says: str = ""

    def request(self) -> dict[str, Any]:
        """Keyword arguments for httpx's `request(method, url, ...)`."""
        kwargs: dict[str, Any] = {"headers": dict(self.headers)}
        if self.json is not None:
            kwargs["json"] = self.json
        if self.content is not None:
            kwargs["content"] = self.content
        if self.data is not None:
            kwargs["data"] = self.data
        if self.files is not None:
            kwargs["files"] = self.files
        return kwargs


# Bodies that are no JSON object, each sent to every JSON endpoint.
NOT_AN_OBJECT: dict[str, bytes] = {
    "empty": b"",
    "blank": b"  \n\t ",
    "truncated": b'{"prompt": "a cat", "n": ',
    "array": b'[{"prompt": "a cat"}]',
    "string": b'"a cat"',
    "number": b"42",
    "null": b"null",
    "not-utf8": b'{"prompt": "\xff\xfe"}',
    "nested-100k": b"[" * 100_000,
    "int-5000-digits": b'{"n": 1' + b"0" * 5000 + b"}",
    "lone-surrogate": b'{"prompt": "\\ud800 a cat", "model": "qwen-image"}',
    "single-quotes": b"{'prompt': 'a cat'}",
    "trailing-comma": b'{"prompt": "a cat",}',
    "comment": b'{"prompt": "a cat" /* and a dog */}',
}
JSON_PATHS = (GEN, EDITS, CHAT, TASKS, SYNTH, MULTI)


def _not_an_object() -> list[Bad]:
    return [
        Bad(
            f"{path}:{name}",
            "POST",
            path,
            content=raw,
            headers={"Content-Type": "application/json", **(ASYNC if path == SYNTH else {})},
        )
        for path in JSON_PATHS
        for name, raw in NOT_AN_OBJECT.items()
    ]


def _gen(name: str, body: dict[str, Any], says: str = "") -> Bad:
    return Bad(f"generations:{name}", "POST", GEN, json=body, says=says)


GENERATIONS = [
    _gen("no-prompt", {"size": "64x64"}, "prompt"),
    _gen("prompt-null", {**OK, "prompt": None}, "prompt"),
    _gen("prompt-blank", {**OK, "prompt": "   "}, "prompt"),
    _gen("prompt-list", {**OK, "prompt": ["a", "cat"]}, "prompt"),
    _gen("prompt-object", {**OK, "prompt": {"text": "a cat"}}, "prompt"),
    _gen("prompt-100k-chars", {**OK, "prompt": "x" * 100_000}, "prompt"),
    _gen("negative-100k-chars", {**OK, "negative_prompt": "y" * 100_000}, "negative_prompt"),
    _gen("n-zero", {**OK, "n": 0}, "n"),
    _gen("n-negative", {**OK, "n": -3}, "n"),
    _gen("n-11", {**OK, "n": 11}, "n"),
    _gen("n-5-over-model-cap", {**OK, "n": 5}, "n"),
    _gen("n-float", {**OK, "n": 1.5}, "n"),
    _gen("n-text", {**OK, "n": "two"}, "n"),
    _gen("n-huge", {**OK, "n": 2**70}, "n"),
    _gen("size-words", {**OK, "size": "big"}, "size"),
    _gen("size-zero", {**OK, "size": "0x0"}),
    _gen("size-negative", {**OK, "size": "-64x-64"}),
    _gen("size-one-side", {**OK, "size": "1024x"}, "size"),
    _gen("size-three-sides", {**OK, "size": "64x64x64"}, "size"),
    _gen("size-not-16", {**OK, "size": "100x100"}, "multiple of 16"),
    _gen("size-below-min", {**OK, "size": "16x16"}, "width"),
    _gen("size-over-max", {**OK, "size": "4096x4096"}, "width"),
    _gen("size-int", {**OK, "size": 64}, "size"),
    _gen("width-over", {**OK, "width": 8192, "height": 64}, "width"),
    _gen("width-text", {**OK, "width": "wide"}, "width"),
    _gen("height-zero", {**OK, "height": 0}, "height"),
    _gen("aspect-ratio", {**OK, "aspect_ratio": "7:3"}, "aspect_ratio"),
    _gen("steps-one", {**OK, "num_inference_steps": 1}, "num_inference_steps"),
    _gen("steps-500", {**OK, "num_inference_steps": 500}, "num_inference_steps"),
    _gen("steps-text", {**OK, "num_inference_steps": "many"}, "num_inference_steps"),
    _gen("cfg-negative", {**OK, "true_cfg_scale": -1}, "true_cfg_scale"),
    _gen("cfg-huge", {**OK, "true_cfg_scale": 1e9}, "true_cfg_scale"),
    _gen("guidance-text", {**OK, "guidance_scale": "high"}, "guidance_scale"),
    _gen("seed-negative", {**OK, "seed": -1}, "seed"),
    _gen("seed-2^64", {**OK, "seed": 2**64}, "seed"),
    _gen("seed-float", {**OK, "seed": 1.25}, "seed"),
    _gen("format-gif", {**OK, "response_format": "gif"}, "response_format"),
    _gen("format-upper", {**OK, "response_format": "URL"}, "response_format"),
    _gen("model-unknown", {**OK, "model": "dall-e-9"}, "dall-e-9"),
    _gen("model-chat", {**OK, "model": "gpt-5"}, "chat"),
    _gen("model-edit", {**OK, "model": "qwen-image-edit"}),
    _gen("model-int", {**OK, "model": 7}, "model"),
    _gen("model-path", {**OK, "model": "../../etc/passwd"}),
    _gen("watermark-text", {**OK, "watermark": "maybe"}, "watermark"),
    _gen("prompt-extend-text", {**OK, "prompt_extend": "sometimes"}, "prompt_extend"),
    _gen("hosted-size-not-offered", {**OK, "model": "qwen-image-plus", "size": "64x64"}),
    _gen("ds-no-input", {"model": "qwen-image", "input": None}, "input"),
    _gen("ds-empty-messages", {"input": {"messages": []}}, "input"),
    _gen("ds-content-int", {"input": {"messages": [{"role": "user", "content": 5}]}}),
    _gen("ds-no-user-text", {"input": {"messages": [{"role": "system", "content": "hi"}]}}),
    _gen(
        "ds-parameters-list",
        {"input": DS_OK["input"], "parameters": [1, 2]},
        "parameters",
    ),
    _gen(
        "ds-size-bad",
        {**DS_OK, "parameters": {**DS_OK["parameters"], "size": "64-64"}},
        "parameters.size",
    ),
    _gen("ds-n-zero", {**DS_OK, "parameters": {**DS_OK["parameters"], "n": 0}}, "parameters.n"),
]


def _edit(name: str, image: Any, says: str = "image", **more: Any) -> Bad:
    return Bad(f"edits:{name}", "POST", EDITS, json={**OK, "image": image, **more}, says=says)


EDIT_JSON = [
    Bad("edits:no-image", "POST", EDITS, json=OK, says="image"),
    _edit("image-null", None),
    _edit("image-int", 42),
    _edit("image-empty-string", ""),
    _edit("image-empty-list", []),
    _edit("image-list-of-objects", [{"x": 1}]),
    _edit("image-words", "my cat!"),
    _edit("image-bad-base64", "!!!notbase64!!!"),
    _edit("image-data-url-no-base64", "data:image/png,rawbytes"),
    _edit("image-data-url-text", "data:text/plain;base64,aGVsbG8="),
    _edit("image-data-url-svg", "data:image/svg+xml;base64,PHN2Zz48L3N2Zz4="),
    _edit("image-not-an-image", NOT_AN_IMAGE, "not a readable image"),
    _edit("image-file-scheme", "file:///etc/passwd"),
    _edit("image-ftp", "ftp://example.com/cat.png"),
    _edit("image-gopher", "gopher://127.0.0.1:70/_x"),
    _edit("image-javascript", "javascript:alert(1)"),
    _edit("image-metadata", "http://169.254.169.254/latest/meta-data/", "link-local"),
    _edit("image-private-10", "http://10.1.2.3/cat.png", "private"),
    _edit("image-private-192", "http://192.168.0.1/cat.png", "private"),
    _edit("image-cgnat", "http://100.64.0.1/cat.png", "internal"),
    _edit("image-ipv6-loopback", "http://[::1]:9/cat.png", "loopback"),
    _edit("image-unspecified", "http://0.0.0.0:9/cat.png", "internal"),
    _edit("image-multicast", "http://224.0.0.1/cat.png", "internal"),
    _edit("image-no-host", "http:///cat.png", "host"),
    _edit("image-bad-ip", "http://999.999.999.999/cat.png"),
    _edit("image-unresolvable", "http://nothing-here.invalid/cat.png", "resolve"),
    _edit("mask-not-an-image", NOT_AN_IMAGE, "image", mask="!!!"),
    _edit("too-many-images", [NOT_AN_IMAGE] * 40, ""),
    _edit("n-zero", NOT_AN_IMAGE, "n", n=0),
    _edit("size-bad", NOT_AN_IMAGE, "size", size="huge"),
]


def _form(
    name: str,
    data: dict[str, str],
    files: list[tuple[str, tuple[str, bytes, str]]],
    says: str = "",
) -> Bad:
    return Bad(f"edits-form:{name}", "POST", EDITS, data=data, files=files, says=says)


PNG_NAMED = ("cat.png", b"\x89PNG\r\n\x1a\n not really", "image/png")
FORMS = [
    _form("no-image", {"prompt": "a hat"}, [("other", ("a.txt", b"x", "text/plain"))]),
    _form("empty-file", {"prompt": "a hat"}, [("image", ("cat.png", b"", "image/png"))], "empty"),
    _form("text-file", {"prompt": "a hat"}, [("image", ("cat.png", b"hello", "image/png"))]),
    _form("fake-png", {"prompt": "a hat"}, [("image", PNG_NAMED)], "image"),
    _form("n-words", {"prompt": "a hat", "n": "abc"}, [("image", PNG_NAMED)], "n"),
    _form("size-words", {"prompt": "a hat", "size": "big"}, [("image", PNG_NAMED)], "size"),
    _form("file-as-prompt", {}, [("prompt", ("p.txt", b"hat", "text/plain"))], "prompt"),
    _form("40-files", {"prompt": "a hat"}, [("image", PNG_NAMED)] * 40, "files"),
    Bad(
        "edits-form:no-boundary",
        "POST",
        EDITS,
        content=b"hello",
        headers={"Content-Type": "multipart/form-data"},
        says="boundary",
    ),
    Bad(
        "edits-form:truncated",
        "POST",
        EDITS,
        content=b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\nab',
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    ),
    Bad(
        "edits-form:not-utf8-field",
        "POST",
        EDITS,
        content=b'--b\r\nContent-Disposition: form-data; name="prompt"\r\n\r\n\xff\xfe\xfd\r\n--b--\r\n',
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    ),
    Bad(
        "edits:urlencoded",
        "POST",
        EDITS,
        content=b"prompt=a+hat&image=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ),
    Bad(
        "generations:multipart",
        "POST",
        GEN,
        content=b"--b--\r\n",
        headers={"Content-Type": "multipart/form-data; boundary=b"},
        says="JSON",
    ),
]


def _chat(name: str, body: dict[str, Any], says: str = "") -> Bad:
    return Bad(f"chat:{name}", "POST", CHAT, json=body, says=says)


CHATS = [
    _chat("no-messages", {"model": "gpt-5"}, "messages"),
    _chat("messages-string", {"model": "gpt-5", "messages": "hi"}, "messages"),
    _chat("messages-empty", {"model": "gpt-5", "messages": []}),
    _chat("role-robot", {"model": "gpt-5", "messages": [{"role": "robot", "content": "x"}]}),
    _chat("no-role", {"model": "gpt-5", "messages": [{"content": "x"}]}, "role"),
    _chat("content-int", {"model": "gpt-5", "messages": [{"role": "user", "content": 7}]}),
    _chat(
        "part-type-bogus",
        {"model": "gpt-5", "messages": [{"role": "user", "content": [{"type": "bogus"}]}]},
    ),
    _chat("model-unknown", {**CHAT_OK, "model": "gpt-99"}, "gpt-99"),
    _chat("model-image", {**CHAT_OK, "model": "qwen-image"}, "served at"),
    _chat("max-tokens-negative", {**CHAT_OK, "max_tokens": -5}, "max_tokens"),
    _chat("temperature-text", {**CHAT_OK, "temperature": "hot"}, "temperature"),
    _chat("temperature-9", {**CHAT_OK, "temperature": 9}, "temperature"),
    _chat("images-int", {**CHAT_OK, "images": 3}, "images"),
]


def _task(name: str, body: dict[str, Any], says: str = "") -> Bad:
    return Bad(f"tasks:{name}", "POST", TASKS, json=body, says=says)


TASK_CREATES = [
    _task("empty-object", {}, "model"),
    _task("model-empty", {**TASK_OK, "model": ""}, "model"),
    _task("model-unknown", {**TASK_OK, "model": "nope"}, "nope"),
    _task("model-chat", {**TASK_OK, "model": "gpt-5"}),
    _task("parameters-list", {**TASK_OK, "parameters": ["a"]}, "parameters"),
    _task("no-prompt", {**TASK_OK, "parameters": {"size": "64*64"}}, "prompt"),
    _task("size-bad", {**TASK_OK, "parameters": {"prompt": "a", "size": "x"}}, "size"),
    _task("n-zero", {**TASK_OK, "parameters": {"prompt": "a", "n": 0}}, "n"),
    _task("is-async-text", {**TASK_OK, "is_async": "perhaps"}, "is_async"),
]


def _synth(name: str, body: dict[str, Any], headers: dict[str, str] = ASYNC) -> Bad:
    return Bad(f"synthesis:{name}", "POST", SYNTH, json=body, headers=headers)


SYNTHESES = [
    _synth("not-async", SYNTH_OK, headers={}),
    _synth("no-model", {"input": SYNTH_OK["input"]}),
    _synth("no-input", {"model": "qwen-image"}),
    _synth("input-string", {**SYNTH_OK, "input": "a cat"}),
    _synth("prompt-empty", {**SYNTH_OK, "input": {"prompt": ""}}),
    _synth("model-unknown", {**SYNTH_OK, "model": "wanx9"}),
    _synth("size-bad", {**SYNTH_OK, "parameters": {"size": "64-64"}}),
    _synth("n-words", {**SYNTH_OK, "parameters": {"n": "many"}}),
]


def _multi(name: str, body: dict[str, Any]) -> Bad:
    return Bad(f"multimodal:{name}", "POST", MULTI, json=body)


MULTIMODAL = [
    _multi("no-model", {"input": DS_OK["input"]}),
    _multi("no-input", {"model": "qwen-image"}),
    _multi("messages-empty", {**DS_OK, "input": {"messages": []}}),
    _multi("model-unknown", {**DS_OK, "model": "qwen-image-9"}),
    _multi("size-bad", {**DS_OK, "parameters": {"size": "1x1"}}),
    _multi(
        "steps-500", {**DS_OK, "parameters": {**DS_OK["parameters"], "num_inference_steps": 500}}
    ),
    _multi(
        "image-not-an-image",
        {
            "model": "qwen-image-edit",
            "input": {
                "messages": [{"role": "user", "content": [{"image": NOT_AN_IMAGE}, {"text": "x"}]}]
            },
        },
    ),
]

# Task ids a client may make up; each of the four task routes must answer 4xx (or DashScope's
# 200 UNKNOWN for GET /api/v1/tasks/{id}, tested apart).
TASK_IDS = ["nope", "a" * 5000, "%00", "%E2%98%83", "1%20OR%201=1", "..%2F..%2Fetc"]
TASK_ROUTES = [("GET", "/status"), ("GET", "/result"), ("POST", "/cancel")]


def _task_ids() -> list[Bad]:
    return [
        Bad(f"task-id:{method}{suffix}:{task_id[:12]}", method, f"{TASKS}{task_id}{suffix}")
        for task_id in TASK_IDS
        for method, suffix in TASK_ROUTES
    ]


ROUTES = [
    Bad("route:unknown", "GET", "/v1/nothing", says="no such endpoint"),
    Bad("route:traversal", "GET", "/v1/../../etc/passwd"),
    Bad("route:get-generations", "GET", GEN, says="not allowed"),
    Bad("route:put-generations", "PUT", GEN, says="not allowed"),
    Bad("route:delete-edits", "DELETE", EDITS, says="not allowed"),
    Bad("route:patch-chat", "PATCH", CHAT, says="not allowed"),
    Bad("route:post-models", "POST", "/v1/models", says="not allowed"),
    Bad("route:post-healthz", "POST", "/healthz", says="not allowed"),
    Bad("route:delete-task", "DELETE", f"{TASKS}abc", says="not allowed"),
    Bad("route:v2", "POST", "/v2/images/generations", json=OK),
]


def corpus() -> list[Bad]:
    return [
        *_not_an_object(),
        *GENERATIONS,
        *EDIT_JSON,
        *FORMS,
        *CHATS,
        *TASK_CREATES,
        *SYNTHESES,
        *MULTIMODAL,
        *_task_ids(),
        *ROUTES,
    ]
