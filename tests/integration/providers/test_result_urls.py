"""Provider result URLs (and input image URLs) go through the mesh's one fetcher: a result URL
on, or redirecting to, an internal address is refused as the provider's failure (ABORTED: the
gateway's 502) and never fetched; an input URL to one is the caller's INVALID_ARGUMENT.

A DashScope fake on 127.0.0.2 plays the hosted provider, whose storage host is allowed
(PROVIDERS_FETCH_ALLOW_NETWORKS=127.0.0.2/32); an internal site on 127.0.0.1 must never see a
request."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from imagemesh.v1 import common_pb2, providers_pb2

from tests.fakes.dashscope_server import FakeDashScope
from tests.fakes.fixtures import ProviderFakes
from tests.support.providers import Running, providers_settings, running_providers
from tests.support.storage import png_bytes
from tests.support.website import Website, website

P = providers_pb2
PROVIDER_HOST = "127.0.0.2"


@pytest.fixture(scope="module")
def internal() -> Iterator[Website]:
    with website("127.0.0.1") as site:
        site.add("/secret.png", png_bytes(8, 8, seed=1))
        yield site


@pytest.fixture(scope="module")
def remote_dashscope() -> Iterator[FakeDashScope]:
    fake = FakeDashScope()
    fake.host = PROVIDER_HOST
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
async def guarded(
    remote_dashscope: FakeDashScope, provider_fakes: ProviderFakes
) -> AsyncIterator[Running]:
    remote_dashscope.reset()
    settings = providers_settings(
        provider_fakes,
        dashscope_base_url=remote_dashscope.url,
        dashscope_api_key=remote_dashscope.api_key,
        fetch_allow_networks=f"{PROVIDER_HOST}/32",
    )
    async with running_providers(settings) as running:
        yield running


@pytest.mark.parametrize("model", ["qwen-image-plus", "wanx2.1-t2i-turbo"])
async def test_the_allowed_provider_host_serves_its_results(guarded: Running, model: str) -> None:
    answer = await guarded.stub.GenerateImages(P.ProviderImageRequest(model=model, prompt="x"))
    assert [len(g.images) for g in answer.results] == [1]
    assert answer.results[0].images[0].mime_type == "image/png"


@pytest.mark.parametrize("model", ["qwen-image-plus", "wanx2.1-t2i-turbo"])
async def test_a_result_url_redirecting_to_loopback_is_refused(
    guarded: Running, remote_dashscope: FakeDashScope, internal: Website, model: str
) -> None:
    remote_dashscope.result_location = f"{internal.base}/secret.png"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await guarded.stub.GenerateImages(P.ProviderImageRequest(model=model, prompt="x"))
    assert err.value.code() == grpc.StatusCode.ABORTED
    details = err.value.details()
    assert "result image: 127.0.0.1 is a loopback address" in details
    assert "the provider's result URL was refused" in details
    assert "PROVIDERS_FETCH_ALLOW_NETWORKS" in details
    assert remote_dashscope.downloads == 1  # a refusal is not retried
    assert internal.hits == []


async def test_by_default_a_result_url_on_loopback_is_refused(
    provider_fakes: ProviderFakes,
) -> None:
    settings = providers_settings(provider_fakes, fetch_allow_networks="")
    async with running_providers(settings) as running:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            request = P.ProviderImageRequest(model="qwen-image-plus", prompt="x")
            await running.stub.GenerateImages(request, timeout=10)
    assert err.value.code() == grpc.StatusCode.ABORTED
    assert "127.0.0.1 is a loopback address" in err.value.details()
    assert provider_fakes.dashscope.downloads == 0


async def test_an_input_image_url_to_loopback_is_the_callers_error(
    guarded: Running, provider_fakes: ProviderFakes, internal: Website
) -> None:
    request = P.ProviderEditRequest(
        model="gpt-image-1",
        images=[common_pb2.ImageInput(url=f"{internal.base}/secret.png")],
        prompt="a hat",
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await guarded.stub.EditImages(request, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "images[0]: 127.0.0.1 is a loopback address" in err.value.details()
    assert internal.hits == []
    assert provider_fakes.openai.received() == []
