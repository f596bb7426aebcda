"""A hosted provider misbehaving, seen through the gateway (gateway -> providers service -> the
local imitation of the provider): slow past the deadline, resetting connections, answering JSON
cut off in the middle. Each ends in an envelope saying what happened (504, 503, 502), within the
deadline, and the next request after the provider recovers succeeds: nothing stays broken.

tests/integration/providers/ covers the providers service's own mapping and retries (5xx retried,
429 with Retry-After, refused connections, slow answers at the service's own timeout).
"""

from __future__ import annotations

import httpx
import pytest

from tests.fakes.fixtures import ProviderFakes
from tests.reliability.conftest import CHAT_DEADLINE_SECONDS
from tests.support.hosted import Hosted

CHAT = {"model": "gpt-5", "messages": [{"role": "user", "content": "hello"}]}
WANX = {"model": "wanx2.1-t2i-turbo", "prompt": "a kite", "size": "1024*1024", "n": 1}
# More than the providers service's attempts (3): a fault that lasts, not a blip.
LASTING = 5


def _post(hosted: Hosted, path: str, body: dict) -> httpx.Response:
    # A client that waits well past the gateway's deadline: an answer must come before this.
    return httpx.post(hosted.url + path, json=body, timeout=CHAT_DEADLINE_SECONDS + 60)


def _envelope(answer: httpx.Response, status: int, *words: str) -> None:
    body = answer.json()
    assert answer.status_code == status and body["code"] == status, body
    for word in words:
        assert word in body["message"], body["message"]
    assert "Traceback" not in answer.text


def _recovered(hosted: Hosted, fakes: ProviderFakes) -> None:
    fakes.reset()
    answer = _post(hosted, "/v1/chat/completions", CHAT)
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"]


def test_a_provider_slower_than_the_deadline_is_504(hosted: Hosted, fakes: ProviderFakes) -> None:
    fakes.openai.delay(CHAT_DEADLINE_SECONDS + 30)
    _envelope(_post(hosted, "/v1/chat/completions", CHAT), 504, "gpt-5", "deadline")
    _recovered(hosted, fakes)


def test_one_reset_connection_is_retried_unseen(hosted: Hosted, fakes: ProviderFakes) -> None:
    fakes.openai.reset_next(1)
    answer = _post(hosted, "/v1/chat/completions", CHAT)
    assert answer.status_code == 200, answer.text
    assert len(fakes.openai.received("/chat/completions")) == 1  # the reset one is not recorded


def test_connections_reset_every_time_are_503(hosted: Hosted, fakes: ProviderFakes) -> None:
    fakes.openai.reset_next(LASTING)
    _envelope(_post(hosted, "/v1/chat/completions", CHAT), 503, "gpt-5")
    _recovered(hosted, fakes)


@pytest.mark.parametrize("times", [1, LASTING])
def test_json_cut_off_midway_is_502(hosted: Hosted, fakes: ProviderFakes, times: int) -> None:
    """A 200 with a broken body is not retried (the call may have had its effect): 502."""
    fakes.openai.garbage_next(times)
    _envelope(_post(hosted, "/v1/chat/completions", CHAT), 502, "gpt-5", "not JSON")
    _recovered(hosted, fakes)


def test_a_hosted_image_task_answered_with_garbage_is_502(
    hosted: Hosted, fakes: ProviderFakes
) -> None:
    fakes.dashscope.garbage_next(LASTING, path="/tasks/")
    _envelope(_post(hosted, "/v1/images/generations", WANX), 502, "wanx2.1-t2i-turbo")
    fakes.reset()
    assert _post(hosted, "/v1/images/generations", WANX).status_code == 200


def test_a_hosted_image_task_whose_creation_is_reset_is_503(
    hosted: Hosted, fakes: ProviderFakes
) -> None:
    fakes.dashscope.reset_next(LASTING, path="image-synthesis")
    _envelope(_post(hosted, "/v1/images/generations", WANX), 503, "wanx2.1-t2i-turbo")
    fakes.reset()
    assert _post(hosted, "/v1/images/generations", WANX).status_code == 200


def test_reset_polls_of_a_running_task_are_polled_again(
    hosted: Hosted, fakes: ProviderFakes
) -> None:
    """The task runs at the provider whatever happens to one poll: polls are retried."""
    fakes.dashscope.reset_next(LASTING, path="/tasks/")
    answer = _post(hosted, "/v1/images/generations", WANX)
    assert answer.status_code == 200, answer.text
