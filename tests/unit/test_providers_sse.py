"""The providers' upstream SSE reader: events split anywhere by the network, CRLF line ends,
multi-line data, an error event after good ones, and chunks of one read merged in order."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from services.common.errors import ProviderFailed, ServiceError
from services.providers.adapters._openai_wire import delta_of, merge_into
from services.providers.settings import ProvidersSettings
from services.providers.sse import sse_batches
from services.providers.upstream import Upstream


def _upstream() -> Upstream:
    return Upstream(ProvidersSettings(), label="Fake", base_url="http://x", key_env="FAKE_KEY")


def _error_of(upstream: Upstream, error: object) -> ServiceError:
    return ProviderFailed(f"{upstream.label} failed mid-stream: {error}")


def _response(*pieces: bytes) -> httpx.Response:
    async def body() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    return httpx.Response(200, content=body())


async def _batches(*pieces: bytes) -> list[list[dict]]:
    return [b async for b in sse_batches(_response(*pieces), _upstream(), _error_of)]


def _chunk(text: str) -> bytes:
    event = {"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {"content": text}}]}
    return b"data: " + json.dumps(event).encode() + b"\n\n"


async def test_events_of_one_read_come_together_and_a_split_event_waits_for_its_end() -> None:
    a, b, c = _chunk("a"), _chunk("b"), _chunk("c")
    batches = await _batches(a + b + c[:7], c[7:] + b"data: [DONE]\n\n", _chunk("after done"))
    texts = [[e["choices"][0]["delta"]["content"] for e in batch] for batch in batches]
    assert texts == [["a", "b"], ["c"]]


async def test_crlf_comments_and_multi_line_data() -> None:
    stream = b': keep-alive\r\n\r\nevent: x\r\ndata: {"n":\r\ndata: 1}\r\n\r\ndata: [DONE]\r\n\r\n'
    assert await _batches(stream[:40], stream[40:]) == [[{"n": 1}]]


async def test_an_error_event_ends_the_stream_after_the_events_before_it() -> None:
    seen = []
    with pytest.raises(ProviderFailed, match="Fake failed mid-stream"):
        async for batch in sse_batches(
            _response(_chunk("a") + b'data: {"error": {"message": "boom"}}\n\n' + _chunk("z")),
            _upstream(),
            _error_of,
        ):
            seen.append(batch)
    assert [[e["choices"][0]["delta"]["content"] for e in b] for b in seen] == [["a"]]


async def test_an_unreadable_event_is_a_provider_failure() -> None:
    with pytest.raises(ProviderFailed, match="unreadable stream event"):
        await _batches(b"data: {not json\n\n")


def test_merged_deltas_keep_text_usage_and_finish_but_not_reasoning_after_text() -> None:
    first = delta_of({"id": "c1", "model": "m", "choices": [{"delta": {"content": "Hello"}}]})
    assert first is not None
    last = delta_of(
        {
            "choices": [{"delta": {"content": " world"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 2, "completion_tokens": 2},
        }
    )
    assert last is not None and merge_into(first, last)
    assert (first.text, first.finish_reason, first.id, first.model) == (
        "Hello world",
        "stop",
        "c1",
        "m",
    )
    assert first.usage is not None and first.usage.completion_tokens == 2
    thinking = delta_of({"choices": [{"delta": {"reasoning_content": "hmm"}}]})
    assert thinking is not None and not merge_into(first, thinking)
    assert first.text == "Hello world" and not first.reasoning
