"""The hand-written bad-input corpus: requests a client may send by mistake (or on purpose) to
every endpoint of the gateway, each of which must be refused with a 4xx envelope.

Families: bodies that are not a JSON object (sent to every JSON endpoint), bad fields of each
request shape, bad image inputs, bad multipart forms, bad task ids, bad methods and paths. Each
case is one request and names the answer a client gets: its exact `status`, a fragment its
message `says` (what to fix, in the gateway's words), and on the DashScope-compatible endpoints
DashScope's error `code`. The base requests are cheap (64x64, 2 steps), so a case that were
wrongly accepted would still answer quickly.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

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


def png_data_url(width: int, height: int) -> str:
    """A real (grey) PNG of that size, as a data URL."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), (128, 128, 128)).save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


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
    status: int = 400
    says: str = ""
    # DashScope's error code, on the DashScope-compatible endpoints (their envelope's `code`).
    code: str = ""

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


# Bodies that are no JSON object, each sent to every JSON endpoint, and what the answer says.
NOT_AN_OBJECT: dict[str, tuple[bytes, str]] = {
    "empty": (b"", "the body is empty; send a JSON object"),
    "blank": (b"  \n\t ", "the body is empty; send a JSON object"),
    "truncated": (b'{"prompt": "a cat", "n": ', "the body is not valid JSON: Expecting value"),
    "array": (b'[{"prompt": "a cat"}]', "the body must be a JSON object"),
    "string": (b'"a cat"', "the body must be a JSON object"),
    "number": (b"42", "the body must be a JSON object"),
    "null": (b"null", "the body must be a JSON object"),
    "not-utf8": (b'{"prompt": "\xff\xfe"}', "the body is not UTF-8 JSON"),
    "nested-100k": (b"[" * 100_000, "the body is not valid JSON: nested too deeply"),
    "int-5000-digits": (
        b'{"n": 1' + b"0" * 5000 + b"}",
        "the body is not valid JSON: a number has too many digits",
    ),
    "lone-surrogate": (
        b'{"prompt": "\\ud800 a cat", "model": "qwen-image"}',
        "the body is not valid JSON: a string holds an unpaired \\u surrogate",
    ),
    "single-quotes": (b"{'prompt': 'a cat'}", "Expecting property name enclosed in double quotes"),
    "trailing-comma": (
        b'{"prompt": "a cat",}',
        "Expecting property name enclosed in double quotes",
    ),
    "comment": (b'{"prompt": "a cat" /* and a dog */}', "Expecting ',' delimiter"),
}
JSON_PATHS = (GEN, EDITS, CHAT, TASKS, SYNTH, MULTI)
DASHSCOPE_ONLY = (SYNTH, MULTI)


def _not_an_object() -> list[Bad]:
    return [
        Bad(
            f"{path}:{name}",
            "POST",
            path,
            content=raw,
            headers={"Content-Type": "application/json", **(ASYNC if path == SYNTH else {})},
            says=says,
            code="InvalidParameter" if path in DASHSCOPE_ONLY else "",
        )
        for path in JSON_PATHS
        for name, (raw, says) in NOT_AN_OBJECT.items()
    ]


def _gen(name: str, body: dict[str, Any], says: str, status: int = 400) -> Bad:
    return Bad(f"generations:{name}", "POST", GEN, json=body, status=status, says=says)


SIZE_FORM = "size must be WIDTHxHEIGHT such as 1024x1024 or 1328*1328, or auto"
GENERATIONS = [
    _gen("no-prompt", {"size": "64x64"}, "prompt is required"),
    _gen("prompt-null", {**OK, "prompt": None}, "prompt must be a string (got null)"),
    _gen("prompt-blank", {**OK, "prompt": "   "}, "prompt must not be empty"),
    _gen("prompt-list", {**OK, "prompt": ["a", "cat"]}, 'prompt must be a string (got ["a"'),
    _gen("prompt-object", {**OK, "prompt": {"text": "a cat"}}, "prompt must be a string (got {"),
    _gen("prompt-100k-chars", {**OK, "prompt": "x" * 100_000}, "prompt: 100000 characters"),
    _gen(
        "negative-100k-chars",
        {**OK, "negative_prompt": "y" * 100_000},
        "negative_prompt: 100000 characters; at most 8000",
    ),
    _gen("n-zero", {**OK, "n": 0}, "n must be >= 1 (got 0)"),
    _gen("n-negative", {**OK, "n": -3}, "n must be >= 1 (got -3)"),
    _gen("n-11", {**OK, "n": 11}, "n must be <= 10 (got 11)"),
    _gen("n-5-over-model-cap", {**OK, "n": 5}, "n must be between 1 and 4 for qwen-image (got 5)"),
    _gen("n-float", {**OK, "n": 1.5}, "n must be a whole number (got 1.5)"),
    _gen("n-text", {**OK, "n": "two"}, 'n must be an integer (got "two")'),
    _gen("n-huge", {**OK, "n": 2**70}, f"n must be <= 10 (got {2**70})"),
    _gen("size-words", {**OK, "size": "big"}, f"{SIZE_FORM} (got 'big')"),
    _gen("size-zero", {**OK, "size": "0x0"}, "each side must be between 16 and 4096 pixels"),
    _gen("size-negative", {**OK, "size": "-64x-64"}, f"{SIZE_FORM} (got '-64x-64')"),
    _gen("size-one-side", {**OK, "size": "1024x"}, f"{SIZE_FORM} (got '1024x')"),
    _gen("size-three-sides", {**OK, "size": "64x64x64"}, f"{SIZE_FORM} (got '64x64x64')"),
    _gen("size-not-16", {**OK, "size": "100x100"}, "width must be a multiple of 16"),
    _gen("size-below-min", {**OK, "size": "16x16"}, "width: 16 is outside 64..2048 pixels"),
    _gen("size-over-max", {**OK, "size": "4096x4096"}, "width: 4096 is outside 64..2048 pixels"),
    _gen("size-int", {**OK, "size": 64}, "size must be a string (got 64)"),
    _gen("width-over", {**OK, "width": 8192, "height": 64}, "width must be <= 4096 (got 8192)"),
    _gen("width-text", {**OK, "width": "wide"}, 'width must be an integer (got "wide")'),
    _gen("height-zero", {**OK, "height": 0}, "height must be >= 16 (got 0)"),
    _gen("aspect-ratio", {**OK, "aspect_ratio": "7:3"}, "aspect_ratio must be one of 1:1, 16:9"),
    _gen(
        "steps-one",
        {**OK, "num_inference_steps": 1},
        "num_inference_steps: 1 is outside 2..100",
    ),
    _gen(
        "steps-500",
        {**OK, "num_inference_steps": 500},
        "num_inference_steps must be <= 100 (got 500)",
    ),
    _gen(
        "steps-text",
        {**OK, "num_inference_steps": "many"},
        'num_inference_steps must be an integer (got "many")',
    ),
    _gen("cfg-negative", {**OK, "true_cfg_scale": -1}, "true_cfg_scale must be >= 0 (got -1)"),
    _gen("cfg-huge", {**OK, "true_cfg_scale": 1e9}, "true_cfg_scale must be <= 50 (got"),
    _gen("guidance-text", {**OK, "guidance_scale": "high"}, "guidance_scale must be a number"),
    _gen("seed-negative", {**OK, "seed": -1}, "seed must be >= 0 (got -1)"),
    _gen("seed-2^64", {**OK, "seed": 2**64}, "seed must be <= 9223372036854775807"),
    _gen("seed-float", {**OK, "seed": 1.25}, "seed must be a whole number (got 1.25)"),
    _gen(
        "format-gif",
        {**OK, "response_format": "gif"},
        "response_format must be 'url' or 'b64_json' (got \"gif\")",
    ),
    _gen(
        "output-format-bmp",
        {**OK, "output_format": "bmp"},
        "output_format must be 'png', 'jpeg' or 'webp' (got \"bmp\")",
    ),
    _gen(
        "output-compression-101",
        {**OK, "output_compression": 101},
        "output_compression must be <= 100 (got 101)",
    ),
    _gen(
        "quality-ultra",
        {**OK, "quality": "ultra"},
        "quality must be 'low', 'medium', 'high', 'auto', 'standard' or 'hd' (got \"ultra\")",
    ),
    _gen(
        "background-transparent",
        {**OK, "background": "transparent"},
        "background 'transparent' cannot apply to qwen-image: it makes opaque RGB pictures",
    ),
    _gen(
        "input-fidelity-local",
        {**OK, "input_fidelity": "high"},
        "input_fidelity cannot apply to qwen-image: it is gpt-image-1's setting for edits",
    ),
    _gen(
        "misspelled-negative-prompt",
        {**OK, "negative_promt": "blur"},
        "unknown field negative_promt: did you mean negative_prompt?",
    ),
    _gen(
        "misspelled-steps",
        {**OK, "num_inference_step": 4},
        "unknown field num_inference_step: did you mean num_inference_steps?",
    ),
    _gen(
        "format-upper",
        {**OK, "response_format": "URL"},
        "response_format must be 'url' or 'b64_json' (got \"URL\")",
    ),
    _gen("model-unknown", {**OK, "model": "dall-e-9"}, "model 'dall-e-9' does not exist", 404),
    _gen(
        "model-chat",
        {**OK, "model": "gpt-5"},
        "model 'gpt-5' is served at /v1/chat/completions, not /v1/images/generations",
    ),
    _gen(
        "model-edit",
        {**OK, "model": "qwen-image-edit"},
        "model 'qwen-image-edit' is served at /v1/images/edits, not /v1/images/generations",
    ),
    _gen("model-int", {**OK, "model": 7}, "model must be a string (got 7)"),
    _gen(
        "model-path",
        {**OK, "model": "../../etc/passwd"},
        "model '../../etc/passwd' does not exist",
        404,
    ),
    _gen("watermark-text", {**OK, "watermark": "maybe"}, "watermark must be true or false"),
    _gen(
        "prompt-extend-text",
        {**OK, "prompt_extend": "sometimes"},
        'prompt_extend must be true or false (got "sometimes")',
    ),
    _gen(
        "hosted-size-not-offered",
        {**OK, "model": "qwen-image-plus", "size": "64x64"},
        "size 64*64 is not offered by qwen-image-plus; use one of 1664*928",
    ),
    _gen(
        "ds-no-input", {"model": "qwen-image", "input": None}, "input must be an object (got null)"
    ),
    _gen(
        "ds-empty-messages",
        {"input": {"messages": []}},
        "input: give input.messages[0].content[0].text (or input.prompt)",
    ),
    _gen(
        "ds-content-int",
        {"input": {"messages": [{"role": "user", "content": 5}]}},
        "must be a string (got 5)",
    ),
    _gen(
        "ds-no-user-text",
        {"input": {"messages": [{"role": "system", "content": "hi"}]}},
        "input.messages[0].content[0].text is required",
    ),
    _gen(
        "ds-parameters-list",
        {"input": DS_OK["input"], "parameters": [1, 2]},
        "parameters must be an object (got [1, 2])",
    ),
    _gen(
        "ds-size-bad",
        {**DS_OK, "parameters": {**DS_OK["parameters"], "size": "64-64"}},
        f"parameters.{SIZE_FORM} (got '64-64')",
    ),
    _gen(
        "strength-on-generations",
        {**OK, "image": NOT_AN_IMAGE, "strength": 0.5},
        "image belongs to POST /v1/images/edits",
    ),
    _gen(
        "ds-n-zero",
        {**DS_OK, "parameters": {**DS_OK["parameters"], "n": 0}},
        "parameters.n must be >= 1 (got 0)",
    ),
    # pydantic's lax mode would read true as 1 (services/gateway/numbers.py).
    _gen(
        "ds-n-true",
        {**DS_OK, "parameters": {**DS_OK["parameters"], "n": True}},
        "parameters.n: a number is due here, not true or false",
    ),
    _gen("steps-false", {**OK, "num_inference_steps": False}, "not true or false"),
    # ControlNet fields (services/gateway/control_fields.py; the names by the model server).
    _gen(
        "control-start-after-end",
        {
            **OK,
            "control_image": png_data_url(64, 64),
            "control_guidance_start": 0.8,
            "control_guidance_end": 0.2,
        },
        "control_guidance_start (0.8) must be below control_guidance_end (0.2)",
    ),
    _gen(
        "control-end-above-one",
        {**OK, "control_image": png_data_url(64, 64), "control_guidance_end": 1.5},
        "control_guidance_end must be <= 1",
    ),
    _gen(
        "control-scale-negative",
        {**OK, "control_image": png_data_url(64, 64), "controlnet_conditioning_scale": -1},
        "controlnet_conditioning_scale must be within 0..10 (got -1)",
    ),
    _gen(
        "control-scales-count",
        {**OK, "control_image": [png_data_url(64, 64)] * 2, "controlnet_conditioning_scale": [1]},
        "controlnet_conditioning_scale has 1 values for 2 control_image pictures",
    ),
    _gen(
        "control-scale-alone",
        {**OK, "controlnet_conditioning_scale": 0.5},
        "controlnet_conditioning_scale applies to control_image; send control_image too",
    ),
    _gen(
        "control-unknown-controlnet",
        {**OK, "control_image": {"image": png_data_url(64, 64), "controlnet": "nope"}},
        "unknown ControlNet 'nope'; qwen-image-tiny has qwen-image-controlnet-tiny (control)",
    ),
    _gen(
        "control-not-an-image",
        {**OK, "control_image": NOT_AN_IMAGE},
        "control_image: the bytes are not a readable image; send a PNG, JPEG or WebP image",
    ),
    _gen(
        "control-hosted",
        {**OK, "model": "gpt-image-1", "control_image": png_data_url(64, 64)},
        "control_image: gpt-image-1 takes no ControlNet inputs",
    ),
    _gen(
        "ds-control-end-alone",
        {**DS_OK, "parameters": {**DS_OK["parameters"], "control_guidance_end": 0.5}},
        "parameters.control_guidance_end applies to control_image",
    ),
]


def _edit(name: str, image: Any, says: str, **more: Any) -> Bad:
    return Bad(f"edits:{name}", "POST", EDITS, json={**OK, "image": image, **more}, says=says)


IMAGE_REQUIRED = "image is required: give one or more images"
NOT_BASE64 = "image: base64 image bytes is not valid base64"
UNREADABLE = "the bytes are not a readable image; send a PNG, JPEG or WebP image"
INTERNAL = "address; internal hosts may not be fetched"
EDIT_JSON = [
    Bad("edits:no-image", "POST", EDITS, json=OK, says=IMAGE_REQUIRED),
    _edit("image-null", None, IMAGE_REQUIRED),
    _edit("image-int", 42, "image must be a string: an http(s) URL, a data: URL or base64"),
    _edit("image-empty-string", "", "image is empty"),
    _edit("image-empty-list", [], IMAGE_REQUIRED),
    _edit("image-list-of-objects", [{"x": 1}], "image[0] must be a string"),
    _edit("image-words", "my cat!", NOT_BASE64),
    _edit("image-bad-base64", "!!!notbase64!!!", NOT_BASE64),
    _edit(
        "image-data-url-no-base64",
        "data:image/png,rawbytes",
        "image: a data URL must look like data:image/png;base64,",
    ),
    _edit(
        "image-data-url-text",
        "data:text/plain;base64,aGVsbG8=",
        "image: the data URL's type is 'text/plain'; it must be image/*",
    ),
    _edit(
        "image-data-url-svg", "data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=", f"image: {UNREADABLE}"
    ),
    _edit("image-not-an-image", NOT_AN_IMAGE, f"image: {UNREADABLE}"),
    _edit("image-file-scheme", "file:///etc/passwd", "image: scheme 'file' is not allowed"),
    _edit("image-ftp", "ftp://example.com/cat.png", "image: scheme 'ftp' is not allowed"),
    _edit("image-gopher", "gopher://127.0.0.1:70/_x", "image: scheme 'gopher' is not allowed"),
    # Not a URL the gateway knows (no //), so it is read as base64, and is none.
    _edit("image-javascript", "javascript:alert(1)", NOT_BASE64),
    _edit(
        "image-metadata",
        "http://169.254.169.254/latest/meta-data/",
        f"image: 169.254.169.254 is a link-local {INTERNAL}",
    ),
    _edit(
        "image-private-10", "http://10.1.2.3/cat.png", f"image: 10.1.2.3 is a private {INTERNAL}"
    ),
    _edit(
        "image-private-192",
        "http://192.168.0.1/cat.png",
        f"image: 192.168.0.1 is a private {INTERNAL}",
    ),
    _edit(
        "image-cgnat", "http://100.64.0.1/cat.png", f"image: 100.64.0.1 is a non-public {INTERNAL}"
    ),
    _edit("image-ipv6-loopback", "http://[::1]:9/cat.png", f"image: ::1 is a loopback {INTERNAL}"),
    _edit(
        "image-unspecified", "http://0.0.0.0:9/cat.png", f"image: 0.0.0.0 is a private {INTERNAL}"
    ),
    _edit(
        "image-multicast", "http://224.0.0.1/cat.png", f"image: 224.0.0.1 is a multicast {INTERNAL}"
    ),
    _edit("image-no-host", "http:///cat.png", "image: http:///cat.png has no host"),
    _edit("image-bad-ip", "http://999.999.999.999/cat.png", "image: not a valid URL"),
    _edit(
        "image-unresolvable",
        "http://nothing-here.invalid/cat.png",
        "image: cannot resolve host 'nothing-here.invalid'",
    ),
    _edit(
        "mask-not-an-image",
        NOT_AN_IMAGE,
        "mask: base64 image bytes is not valid base64",
        mask="!!!",
    ),
    _edit("strength-zero", NOT_AN_IMAGE, "strength must be > 0 (got 0)", strength=0),
    _edit("strength-above-one", NOT_AN_IMAGE, "strength must be <= 1 (got 1.5)", strength=1.5),
    _edit(
        "strength-hosted",
        NOT_AN_IMAGE,
        "strength applies to the local models' img2img and inpainting; gpt-image-1 does not",
        model="gpt-image-1",
        strength=0.5,
    ),
    _edit(
        "qwen-image-two-images",
        [NOT_AN_IMAGE] * 2,
        "qwen-image takes one input image (img2img; with a mask, inpainting), got 2",
        model="qwen-image",
    ),
    _edit(
        "mask-size",
        png_data_url(64, 64),
        "mask is 32x16 but image is 64x64; send a mask of the image's size",
        mask=png_data_url(32, 16),
    ),
    _edit("too-many-images", [NOT_AN_IMAGE] * 40, "at most 16 images per edit (got 40)"),
    _edit(
        "control-on-edit-model",
        png_data_url(64, 64),
        "control_image: qwen-image-edit takes no ControlNet inputs (diffusers 0.42 has no "
        "ControlNet edit pipeline)",
        model="qwen-image-edit",
        control_image=png_data_url(64, 64),
    ),
    _edit(
        "control-img2img",
        png_data_url(64, 64),
        "diffusers 0.42 has no ControlNet img2img pipeline",
        model="qwen-image",
        control_image=png_data_url(64, 64),
    ),
    _edit("n-zero", NOT_AN_IMAGE, "n must be >= 1 (got 0)", n=0),
    _edit("size-bad", NOT_AN_IMAGE, f"{SIZE_FORM} (got 'huge')", size="huge"),
]


def _form(
    name: str,
    data: dict[str, str],
    files: list[tuple[str, tuple[str, bytes, str]]],
    says: str,
) -> Bad:
    return Bad(f"edits-form:{name}", "POST", EDITS, data=data, files=files, says=says)


PNG_NAMED = ("cat.png", b"\x89PNG\r\n\x1a\n not really", "image/png")
FORMS = [
    _form(
        "no-image",
        {"prompt": "a hat"},
        [("other", ("a.txt", b"x", "text/plain"))],
        "other must be a text field, not a file",
    ),
    _form(
        "empty-file",
        {"prompt": "a hat"},
        [("image", ("cat.png", b"", "image/png"))],
        "image is empty; upload a PNG, JPEG or WebP file",
    ),
    _form(
        "text-file",
        {"prompt": "a hat"},
        [("image", ("cat.png", b"hello", "image/png"))],
        f"image: {UNREADABLE}",
    ),
    _form("fake-png", {"prompt": "a hat"}, [("image", PNG_NAMED)], f"image: {UNREADABLE}"),
    _form(
        "n-words",
        {"prompt": "a hat", "n": "abc"},
        [("image", PNG_NAMED)],
        'n must be an integer (got "abc")',
    ),
    _form(
        "size-words",
        {"prompt": "a hat", "size": "big"},
        [("image", PNG_NAMED)],
        f"{SIZE_FORM} (got 'big')",
    ),
    _form(
        "file-as-prompt",
        {},
        [("prompt", ("p.txt", b"hat", "text/plain"))],
        "prompt must be a text field, not a file",
    ),
    _form(
        "40-files",
        {"prompt": "a hat"},
        [("image", PNG_NAMED)] * 40,
        "Too many files. Maximum number of files is 32.",
    ),
    Bad(
        "edits-form:no-boundary",
        "POST",
        EDITS,
        content=b"hello",
        headers={"Content-Type": "multipart/form-data"},
        says="Missing boundary in multipart.",
    ),
    Bad(
        "edits-form:truncated",
        "POST",
        EDITS,
        content=b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\nab',
        headers={"Content-Type": "multipart/form-data; boundary=b"},
        says="prompt is required",
    ),
    Bad(
        "edits-form:not-utf8-field",
        "POST",
        EDITS,
        content=b'--b\r\nContent-Disposition: form-data; name="prompt"\r\n\r\n\xff\xfe\xfd\r\n--b--\r\n',
        headers={"Content-Type": "multipart/form-data; boundary=b"},
        says=IMAGE_REQUIRED,
    ),
    Bad(
        "edits:urlencoded",
        "POST",
        EDITS,
        content=b"prompt=a+hat&image=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        says="the body is not valid JSON: Expecting value at line 1 column 1",
    ),
    Bad(
        "generations:multipart",
        "POST",
        GEN,
        content=b"--b--\r\n",
        headers={"Content-Type": "multipart/form-data; boundary=b"},
        status=415,
        says="/v1/images/generations takes a JSON body (Content-Type: application/json)",
    ),
]


def _chat(name: str, body: dict[str, Any], says: str, status: int = 400) -> Bad:
    return Bad(f"chat:{name}", "POST", CHAT, json=body, status=status, says=says)


GIVE_MESSAGES = "body: give messages (a list of {role, content}) or a prompt"
CHATS = [
    _chat("no-messages", {"model": "gpt-5"}, GIVE_MESSAGES),
    _chat(
        "messages-string",
        {"model": "gpt-5", "messages": "hi"},
        'messages must be a list (got "hi")',
    ),
    _chat("messages-empty", {"model": "gpt-5", "messages": []}, GIVE_MESSAGES),
    _chat(
        "role-robot",
        {"model": "gpt-5", "messages": [{"role": "robot", "content": "x"}]},
        "messages[0].role must be 'system', 'developer', 'user', 'assistant' or 'tool'",
    ),
    _chat(
        "no-role",
        {"model": "gpt-5", "messages": [{"content": "x"}]},
        "messages[0].role is required",
    ),
    _chat(
        "content-int",
        {"model": "gpt-5", "messages": [{"role": "user", "content": 7}]},
        "must be a string (got 7)",
    ),
    _chat(
        "part-type-bogus",
        {"model": "gpt-5", "messages": [{"role": "user", "content": [{"type": "bogus"}]}]},
        "[0].type must be 'text' or 'image_url' (got \"bogus\")",
    ),
    _chat("model-unknown", {**CHAT_OK, "model": "gpt-99"}, "model 'gpt-99' does not exist", 404),
    _chat(
        "model-image",
        {**CHAT_OK, "model": "qwen-image"},
        "model 'qwen-image' is served at /v1/images/generations, /v1/images/edits, not "
        "/v1/chat/completions",
    ),
    _chat("max-tokens-negative", {**CHAT_OK, "max_tokens": -5}, "max_tokens must be >= 1 (got -5)"),
    _chat("temperature-text", {**CHAT_OK, "temperature": "hot"}, "temperature must be a number"),
    _chat("temperature-9", {**CHAT_OK, "temperature": 9}, "temperature must be <= 2.0 (got 9)"),
    _chat("images-int", {**CHAT_OK, "images": 3}, "images must be a list (got 3)"),
]


def _task(name: str, body: dict[str, Any], says: str, status: int = 400) -> Bad:
    return Bad(f"tasks:{name}", "POST", TASKS, json=body, status=status, says=says)


TASK_CREATES = [
    _task("empty-object", {}, "model is required"),
    _task("model-empty", {**TASK_OK, "model": ""}, 'model must not be empty (got "")'),
    _task("model-unknown", {**TASK_OK, "model": "nope"}, "model 'nope' does not exist", 404),
    _task("model-chat", {**TASK_OK, "model": "gpt-5"}, "model 'gpt-5'"),
    _task("parameters-list", {**TASK_OK, "parameters": ["a"]}, "parameters must be an object"),
    _task(
        "no-prompt", {**TASK_OK, "parameters": {"size": "64*64"}}, "parameters.prompt is required"
    ),
    _task(
        "size-bad",
        {**TASK_OK, "parameters": {"prompt": "a", "size": "x"}},
        f"parameters.{SIZE_FORM} (got 'x')",
    ),
    _task(
        "n-zero", {**TASK_OK, "parameters": {"prompt": "a", "n": 0}}, "parameters.n must be >= 1"
    ),
    _task(
        "is-async-text",
        {**TASK_OK, "is_async": "perhaps"},
        'is_async must be true or false (got "perhaps")',
    ),
    _task(
        "mask-without-image",
        {**TASK_OK, "parameters": {"prompt": "a", "mask": png_data_url(64, 64)}},
        "parameters.mask needs the image it applies to: give parameters.image too",
    ),
    _task(
        "control-image",
        {**TASK_OK, "parameters": {"prompt": "a", "control_image": png_data_url(64, 64)}},
        "parameters.control_image: tasks do not take ControlNet inputs yet",
    ),
    _task(
        "strength-above-one",
        {**TASK_OK, "parameters": {"prompt": "a", "image": png_data_url(64, 64), "strength": 3}},
        "parameters.strength must be > 0 and <= 1 (got 3)",
    ),
    _task(
        "image-twice",
        {
            **TASK_OK,
            "parameters": {"prompt": "a", "image": "x", "base_image_url": "y"},
        },
        "give one of parameters.image and parameters.base_image_url, not both",
    ),
    _task(
        "mask-size",
        {
            **TASK_OK,
            "parameters": {
                "prompt": "a",
                "image": png_data_url(64, 64),
                "mask": png_data_url(32, 16),
            },
        },
        "mask is 32x16 but parameters.image is 64x64",
    ),
]


def _synth(
    name: str,
    body: dict[str, Any],
    code: str,
    says: str,
    status: int = 400,
    headers: dict[str, str] = ASYNC,
) -> Bad:
    return Bad(
        f"synthesis:{name}",
        "POST",
        SYNTH,
        json=body,
        headers=headers,
        status=status,
        says=says,
        code=code,
    )


SYNTHESES = [
    _synth(
        "not-async",
        SYNTH_OK,
        "AccessDenied",
        "does not support synchronous calls; send the header X-DashScope-Async: enable",
        403,
        headers={},
    ),
    _synth("no-model", {"input": SYNTH_OK["input"]}, "BadRequest.EmptyModel", "model is required"),
    _synth("no-input", {"model": "qwen-image"}, "BadRequest.EmptyInput", "input is required"),
    _synth(
        "input-string",
        {**SYNTH_OK, "input": "a cat"},
        "InvalidParameter",
        'input must be an object (got "a cat")',
    ),
    _synth(
        "prompt-empty",
        {**SYNTH_OK, "input": {"prompt": ""}},
        "InvalidParameter",
        "input.prompt must not be empty",
    ),
    _synth(
        "model-unknown",
        {**SYNTH_OK, "model": "wanx9"},
        "ModelNotFound",
        "model 'wanx9' does not exist",
        404,
    ),
    _synth(
        "size-bad",
        {**SYNTH_OK, "parameters": {"size": "64-64"}},
        "InvalidParameter",
        f"parameters.{SIZE_FORM} (got '64-64')",
    ),
    _synth(
        "n-words",
        {**SYNTH_OK, "parameters": {"n": "many"}},
        "InvalidParameter",
        'parameters.n must be an integer (got "many")',
    ),
]


def _multi(name: str, body: dict[str, Any], code: str, says: str, status: int = 400) -> Bad:
    return Bad(f"multimodal:{name}", "POST", MULTI, json=body, status=status, says=says, code=code)


MULTIMODAL = [
    _multi(
        "mask-without-image",
        {**DS_OK, "input": {**DS_OK["input"], "mask_image_url": png_data_url(64, 64)}},
        "InvalidParameter",
        "input.mask_image_url needs the image it applies to",
    ),
    _multi("no-model", {"input": DS_OK["input"]}, "BadRequest.EmptyModel", "model is required"),
    _multi("no-input", {"model": "qwen-image"}, "BadRequest.EmptyInput", "input is required"),
    _multi(
        "messages-empty",
        {**DS_OK, "input": {"messages": []}},
        "InvalidParameter",
        "input: give input.messages[0].content[0].text (or input.prompt)",
    ),
    _multi(
        "model-unknown",
        {**DS_OK, "model": "qwen-image-9"},
        "ModelNotFound",
        "model 'qwen-image-9' does not exist",
        404,
    ),
    _multi(
        "size-bad",
        {**DS_OK, "parameters": {"size": "1x1"}},
        "InvalidParameter",
        "parameters.size: each side must be between 16 and 4096 pixels (got 1x1)",
    ),
    _multi(
        "steps-500",
        {**DS_OK, "parameters": {**DS_OK["parameters"], "num_inference_steps": 500}},
        "InvalidParameter",
        "parameters.num_inference_steps must be <= 100 (got 500)",
    ),
    _multi(
        "image-not-an-image",
        {
            "model": "qwen-image-edit",
            "input": {
                "messages": [{"role": "user", "content": [{"image": NOT_AN_IMAGE}, {"text": "x"}]}]
            },
        },
        "InvalidParameter",
        f"image[0]: {UNREADABLE}",
    ),
]

# Task ids a client may make up, and how the message shows each; every one of the three task
# routes answers 404 (GET /api/v1/tasks/{id} is DashScope's 200 UNKNOWN, tested apart). A `/`
# in the id (`%2F`) makes another path, which no route serves.
UNKNOWN_TASK = "does not exist (or has expired; results are kept for 24 h)"
TASK_IDS = {
    "nope": f"task 'nope' {UNKNOWN_TASK}",
    "a" * 5000: f"task '{'a' * 5000}' {UNKNOWN_TASK}",
    "%00": f"task '\\x00' {UNKNOWN_TASK}",
    "%E2%98%83": f"task '\N{SNOWMAN}' {UNKNOWN_TASK}",
    "1%20OR%201=1": f"task '1 OR 1=1' {UNKNOWN_TASK}",
    "..%2F..%2Fetc": "no such endpoint: {method} /api/v1/tasks/../../etc{suffix}; see /docs",
}
TASK_ROUTES = [("GET", "/status"), ("GET", "/result"), ("POST", "/cancel")]


def _task_ids() -> list[Bad]:
    return [
        Bad(
            f"task-id:{method}{suffix}:{task_id[:12]}",
            method,
            f"{TASKS}{task_id}{suffix}",
            status=404,
            says=says.format(method=method, suffix=suffix),
        )
        for task_id, says in TASK_IDS.items()
        for method, suffix in TASK_ROUTES
    ]


def _route(name: str, method: str, path: str, status: int, says: str, **more: Any) -> Bad:
    return Bad(f"route:{name}", method, path, status=status, says=says, **more)


ROUTES = [
    _route("unknown", "GET", "/v1/nothing", 404, "no such endpoint: GET /v1/nothing; see /docs"),
    # The client normalises the dots away: what reaches the gateway is /etc/passwd.
    _route("traversal", "GET", "/v1/../../etc/passwd", 404, "no such endpoint: GET /etc/passwd"),
    _route("get-generations", "GET", GEN, 405, f"GET is not allowed on {GEN}; see /docs"),
    _route("put-generations", "PUT", GEN, 405, f"PUT is not allowed on {GEN}"),
    _route("delete-edits", "DELETE", EDITS, 405, f"DELETE is not allowed on {EDITS}"),
    _route("patch-chat", "PATCH", CHAT, 405, f"PATCH is not allowed on {CHAT}"),
    _route("post-models", "POST", "/v1/models", 405, "POST is not allowed on /v1/models"),
    _route("post-healthz", "POST", "/healthz", 405, "POST is not allowed on /healthz"),
    _route("delete-task", "DELETE", f"{TASKS}abc", 405, f"DELETE is not allowed on {TASKS}abc"),
    _route(
        "v2",
        "POST",
        "/v2/images/generations",
        404,
        "no such endpoint: POST /v2/images/generations",
        json=OK,
    ),
]


LAYERS = "/v1/images/layers"
LAYERS_OK = {
    "model": "qwen-image-layered",
    "prompt": "a card",
    "num_inference_steps": 2,
    "response_format": "b64_json",
}


def _layers(name: str, body: dict[str, Any], says: str, status: int = 400) -> Bad:
    image = {"image": png_data_url(64, 64)}
    return Bad(
        f"layers:{name}",
        "POST",
        LAYERS,
        json={**LAYERS_OK, **image, **body},
        status=status,
        says=says,
    )


LAYER_CASES = [
    _layers("too-many-layers", {"layers": 9}, "layers must be"),
    _layers("one-layer", {"layers": 1}, "layers must be"),
    _layers("layers-text", {"layers": "four"}, "layers must be an integer"),
    _layers("resolution", {"resolution": 800}, "resolution must be"),
    _layers("no-image", {"image": None}, "image is required"),
    _layers("image-list", {"image": [png_data_url(64, 64)] * 2}, "one image per request"),
    _layers("not-an-image", {"image": NOT_AN_IMAGE}, "image"),
    _layers("size-off-grid", {"size": "60x48"}, "width must be a multiple of 16"),
    _layers("jpeg", {"output_format": "jpeg"}, "output_format must be"),
    _layers("stream", {"stream": True}, "/v1/images/layers does not stream"),
    _layers("misspelt", {"layer": 3}, "did you mean layers?"),
    _layers("edit-model", {"model": "qwen-image-edit"}, "not /v1/images/layers"),
    _layers("unknown-model", {"model": "nope"}, "model 'nope' does not exist", status=404),
    Bad(
        "layers-form:no-image",
        "POST",
        LAYERS,
        data={"model": "qwen-image-layered", "layers": "3"},
        files=[("other", ("x.txt", b"x", "text/plain"))],
        says="must be a text field",
    ),
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
        *LAYER_CASES,
    ]
