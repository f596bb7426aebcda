"""schemathesis against the running gateway's OpenAPI document: every route, bodies the document
describes (seed 001's task parameters, DashScope's and OpenAI's shapes, edits' image forms) and
bodies it refuses, each answered with anything but a 5xx.

The fuzzed mesh is a mesh of its own with small limits (64..128 pixels a side, 2..3 steps, at most
2 images, short sync waits) and the fake hosted providers, so that a valid request the generator
makes (it makes many) answers in a moment and chat and hosted models answer too. Every request is
counted (`fuzzing.TALLY`): the run ends with "fuzz: N requests tried, M 5xx seen".

The examples per operation and generation mode are `FUZZ_EXAMPLES` (a short run in the tests;
`make fuzz` runs more). Runs are derandomized, so a 5xx found once is found again (FUZZ_RANDOM=1
draws new examples instead); each one fixed gets a case in the hand-written corpus (corpus.py).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from services.gateway.app import build_app
from services.gateway.settings import GatewaySettings
from tests.conftest import S3Server
from tests.fakes.fixtures import ProviderFakes
from tests.fakes.pngs import noise_png, png
from tests.reliability.answers import assert_answered
from tests.reliability.fuzzing import TALLY
from tests.support.hosted import FAST_PROVIDERS
from tests.support.mesh import Mesh, start_mesh
from tests.support.website import Website, website

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))  # `make fuzz`: 100
BOUNDED = settings(
    max_examples=EXAMPLES,
    deadline=None,
    # FUZZ_RANDOM=1: new examples each run (hunting); by default the same ones every run.
    derandomize=os.environ.get("FUZZ_RANDOM") != "1",
    database=None,
    suppress_health_check=list(HealthCheck),
)
# The model servers' limits: a valid request stays tiny.
SMALL = {
    "MAX_QUEUE": "4",
    "DEFAULT_STEPS": "2",
    "MIN_SIZE": "64",
    "MAX_SIZE": "128",
    "MAX_STEPS": "3",
    "MAX_IMAGES": "2",
    "MAX_PROMPT_CHARS": "2000",
}


@pytest.fixture(scope="module")
def fuzz_mesh(s3_server: S3Server, provider_fakes: ProviderFakes) -> Iterator[Mesh]:
    provider_fakes.reset()
    mesh = start_mesh(
        s3_server.env(),
        s3_server.endpoint,
        extra_env={
            "qwen_image": {f"QWEN_IMAGE_{k}": v for k, v in SMALL.items()},
            "qwen_edit": {f"QWEN_IMAGE_EDIT_{k}": v for k, v in SMALL.items()},
            "providers": {**provider_fakes.env(), **FAST_PROVIDERS},
            "tasks": {"TASKS_GENERATE_DEADLINE_SECONDS": "30"},
            "gateway": {
                "GATEWAY_TASK_SYNC_WAIT_SECONDS": "3",
                # OpenAI-shaped requests without steps: the model server's default (2 here).
                "GATEWAY_OPENAI_DEFAULT_STEPS": "0",
                "GATEWAY_CHAT_DEADLINE_SECONDS": "5",
                "GATEWAY_FETCH_TIMEOUT_SECONDS": "3",
                "GATEWAY_MAX_BODY_BYTES": str(2 * 1024 * 1024),
                "GATEWAY_MAX_IMAGE_BYTES": str(1024 * 1024),
            },
        },
        name="fuzz",
    )
    yield mesh
    mesh.stop()


@pytest.fixture(scope="module")
def images_site() -> Iterator[Website]:
    """Image URLs the generated edits may name: images, a redirect, a bad redirect, not images."""
    with website() as site:
        site.add("/cat.png", png(64, 64))
        site.add("/wide.png", png(128, 64, (20, 200, 20)))
        site.add("/noise.png", noise_png(700, 700))
        site.add("/text", b"no pixels here", "text/plain")
        site.add("/empty.png", b"")
        site.redirect("/moved", "/cat.png")
        site.redirect("/loop", "/loop")
        site.redirect("/bad-location", "http://[::1")
        site.add("/error", b"down", "text/plain", status=503)
        yield site


def image_refs(site: Website) -> st.SearchStrategy[str]:
    """Values for the document's `image-ref` strings: mostly images the gateway can read, in
    each form it takes, and some it cannot (the generator's own strings come in anyway)."""
    readable = [png(64, 64), png(96, 64, (30, 30, 200)), png(64, 64, (0, 0, 0))]
    encoded = [base64.b64encode(data).decode() for data in readable]
    return st.one_of(
        st.sampled_from([f"data:image/png;base64,{text}" for text in encoded]),
        st.sampled_from(encoded),
        st.sampled_from([site.base + path for path in site.pages] + [site.base + "/missing"]),
        st.sampled_from(["gopher://x/y", "http://169.254.169.254/", "file:///etc/passwd"]),
        st.text(max_size=20),
    )


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_mesh: Mesh, images_site: Website) -> Any:
    schemathesis.openapi.format("image-ref", image_refs(images_site))
    return schemathesis.openapi.from_url(f"{fuzz_mesh.gateway_url}/openapi.json", timeout=30)


# Every operation the document lists, known at collection from the app's own document; the test
# below checks that the running gateway serves the same list.
DOCUMENT = build_app(GatewaySettings()).openapi()
OPERATIONS = [
    (method.upper(), path) for path, methods in DOCUMENT["paths"].items() for method in methods
]
# Refused values exist only where the document constrains something: a body or a header (a
# task id is any text, which every GET of a task answers).
RUNS = [
    (method, path, mode)
    for method, path in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or "requestBody" in DOCUMENT["paths"][path][method.lower()]
]


def test_every_route_is_fuzzed(fuzz_schema: Any) -> None:
    served = [
        (operation.method.upper(), operation.path)
        for operation in (result.ok() for result in fuzz_schema.get_all_operations())
    ]
    assert sorted(served) == sorted(OPERATIONS)
    assert len(OPERATIONS) >= 13


@pytest.mark.parametrize(
    ("method", "path", "mode"), RUNS, ids=[f"{m} {p} {mode.value}" for m, p, mode in RUNS]
)
@BOUNDED
@given(data=st.data())
def test_fuzz(
    fuzz_schema: Any,
    fuzz_mesh: Mesh,
    method: str,
    path: str,
    mode: GenerationMode,
    data: st.DataObject,
) -> None:
    operation = fuzz_schema[path][method]
    case = data.draw(operation.as_strategy(generation_mode=mode), label=f"{method} {path}")
    answer = case.call(base_url=fuzz_mesh.gateway_url, timeout=60)
    TALLY.count(f"{method} {path}", answer.status_code, case.as_curl_command(), answer.text[:300])
    assert answer.status_code < 500, (case.as_curl_command(), answer.status_code, answer.text[:500])
    if answer.status_code >= 400 and "json" in answer.headers.get("content-type", [""])[0]:
        assert_answered(_Answer(answer), path)


class _Answer:
    """What `answers.assert_refusal` reads, from schemathesis' response (headers in lists)."""

    def __init__(self, response: Any) -> None:
        self.status_code = response.status_code
        self.text = response.text
        self.headers = {name: values[0] for name, values in response.headers.items()}
        self._response = response

    def json(self) -> Any:
        return self._response.json()
