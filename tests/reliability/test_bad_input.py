"""The hand-written bad-input corpus (corpus.py) against every endpoint of a full gateway: each
request is refused with exactly the status its case names, in an envelope whose message holds the
case's fragment (what to fix) and, on the DashScope-compatible endpoints, DashScope's error code;
none is a 5xx or a traceback.

tests/integration/test_gateway_bad_input.py checks the exact wording of the common mistakes;
this suite checks breadth. Property-based cases from the OpenAPI schema: test_bad_input_generated.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.reliability.answers import assert_refusal
from tests.reliability.corpus import TASKS, Bad, corpus
from tests.support.hosted import Hosted

CASES = corpus()


@pytest.fixture(scope="module")
def client(hosted: Hosted) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hosted.url, timeout=60) as client:
        yield client


def test_the_corpus_is_broad_and_names_every_answer() -> None:
    assert len(CASES) >= 150
    assert len({case.path for case in CASES}) >= 10
    assert len({case.id for case in CASES}) == len(CASES)
    assert all(400 <= case.status < 500 and case.says.strip() for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_refused_with_an_envelope(client: httpx.Client, case: Bad) -> None:
    answer = client.request(case.method, case.path, **case.request())
    assert answer.status_code == case.status, (answer.status_code, answer.text[:500])
    body = assert_refusal(answer, case.path)
    assert case.says in body["message"], body["message"]
    if case.code:
        assert body["code"] == case.code, body


def test_an_unknown_task_is_dashscopes_unknown_status(client: httpx.Client) -> None:
    """DashScope answers GET /api/v1/tasks/{id} for an id it does not know with 200 UNKNOWN
    (its SDK relies on it); the gateway does the same, never a 5xx."""
    answer = client.get(f"{TASKS}no-such-task")
    assert answer.status_code == 200
    assert answer.json()["output"]["task_status"] == "UNKNOWN"
