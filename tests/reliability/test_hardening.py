"""Input that once got past the gateway's checks and failed later as a 5xx (issue 19): numbers no
wire type holds, NaN and Infinity, nesting deeper than the services' protobuf decoders take, NUL
characters and over-long values the task database refuses. Each is refused at the edge with a
400 naming the field, or (NUL) stored normalised; none is a 5xx.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.reliability.answers import assert_refusal
from tests.reliability.corpus import (
    ASYNC,
    CHAT,
    CHAT_OK,
    DS_OK,
    EDITS,
    GEN,
    MULTI,
    OK,
    SYNTH,
    SYNTH_OK,
    TASK_OK,
    TASKS,
    Bad,
)
from tests.support.hosted import Hosted


def _nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def _raw(name: str, path: str, raw: bytes, says: str) -> Bad:
    headers = {"Content-Type": "application/json", **(ASYNC if path == SYNTH else {})}
    code = "InvalidParameter" if path in (SYNTH, MULTI) else ""
    return Bad(f"{path}:{name}", "POST", path, content=raw, headers=headers, says=says, code=code)


FINITE = "must be a finite number (got {}, which JSON does not allow)"
CASES = [
    Bad(
        "chat:max-tokens-2^31",
        "POST",
        CHAT,
        json={**CHAT_OK, "max_tokens": 2**31},
        says="max_tokens must be <= 2147483647 (got 2147483648)",
    ),
    Bad(
        "chat:max-completion-tokens-2^40",
        "POST",
        CHAT,
        json={**CHAT_OK, "max_completion_tokens": 2**40},
        says="max_completion_tokens must be <= 2147483647",
    ),
    _raw(
        "chat:extra-int-past-a-double",
        CHAT,
        b'{"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}], "seed_x": 1'
        + b"0" * 400
        + b"}",
        "seed_x: the number is too large (at most about 1.8e308)",
    ),
    _raw(
        "chat:extra-1e400",
        CHAT,
        b'{"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}], "top_k": 1e400}',
        "top_k: the number is too large",
    ),
    Bad(
        "chat:extra-nested-40",
        "POST",
        CHAT,
        json={**CHAT_OK, "deep": _nested(40)},
        says="nested more than 24 levels deep",
    ),
    Bad(
        "tasks:parameters-nested-40",
        "POST",
        TASKS,
        json={**TASK_OK, "parameters": {**TASK_OK["parameters"], "deep": _nested(40)}},
        says="nested more than 24 levels deep",
    ),
    _raw(
        "generations:guidance-NaN",
        GEN,
        b'{"prompt": "a cat", "size": "64x64", "guidance_scale": NaN}',
        "guidance_scale " + FINITE.format("NaN"),
    ),
    _raw(
        "chat:temperature--Infinity",
        CHAT,
        b'{"model": "gpt-5", "prompt": "hi", "temperature": -Infinity}',
        "temperature " + FINITE.format("-Infinity"),
    ),
    _raw(
        "tasks:parameters-Infinity",
        TASKS,
        b'{"model": "qwen-image", "parameters": {"prompt": "a cat", "cfg": Infinity}}',
        "parameters.cfg " + FINITE.format("Infinity"),
    ),
    _raw(
        "synthesis:parameters-NaN",
        SYNTH,
        b'{"model": "qwen-image", "input": {"prompt": "a cat"}, "parameters": {"seed": NaN}}',
        "parameters.seed " + FINITE.format("NaN"),
    ),
    _raw(
        "multimodal:parameters-NaN",
        MULTI,
        b'{"model": "qwen-image", "input": {"messages": []}, "parameters": {"n": NaN}}',
        "parameters.n " + FINITE.format("NaN"),
    ),
    Bad(
        "edits:image-url-port-past-65535",
        "POST",
        EDITS,
        json={**OK, "image": "http://203.0.113.9:99999999/cat.png"},
        says="has port 99999999, outside 1..65535",
    ),
    Bad(
        "tasks:provider-300-chars",
        "POST",
        TASKS,
        json={**TASK_OK, "provider": "p" * 300},
        says="provider",
    ),
]
assert SYNTH_OK and DS_OK and OK  # the bases the cases above were written from


@pytest.fixture(scope="module")
def client(hosted: Hosted) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hosted.url, timeout=60) as client:
        yield client


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_refused_at_the_edge(client: httpx.Client, case: Bad) -> None:
    answer = client.request(case.method, case.path, **case.request())
    assert answer.status_code == case.status, (answer.status_code, answer.text[:500])
    body = assert_refusal(answer, case.path)
    assert case.says in body["message"], body["message"]
    if case.code:
        assert body["code"] == case.code, body


def test_a_nul_in_a_task_prompt_is_stored_without_it(client: httpx.Client) -> None:
    """PostgreSQL's JSONB and text refuse U+0000: the task service stores the prompt without it."""
    parameters = {**TASK_OK["parameters"], "prompt": "a\u0000 cat", "num_inference_steps": 2}
    answer = client.post(TASKS, json={**TASK_OK, "parameters": parameters, "is_async": False})
    assert answer.status_code == 200, answer.text[:500]
    result = answer.json()["results"]["result"]
    assert result["prompt"] == "a cat", result
    shown = client.get(f"{TASKS}{result['id']}/result")
    assert shown.status_code == 200 and shown.json()["results"]["result"]["prompt"] == "a cat"
