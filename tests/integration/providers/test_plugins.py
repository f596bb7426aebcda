"""Plug-ins: a file dropped in the plug-in folder is served without code changes, and a bad
folder stops the service at start with an error naming the files. The real process
(`python -m services.providers`), configured by environment as supervisord and Kubernetes do."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import grpc
import pytest
from imagemesh.v1 import providers_pb2, providers_pb2_grpc
from PIL import Image

from tests.fakes.fixtures import ProviderFakes
from tests.support.ports import free_port
from tests.support.processes import ServiceProcess, grpc_serving
from tests.support.providers import providers_settings, running_providers

P = providers_pb2

# What a user drops in the folder: one file, imports from the service, nothing else.
PLUGIN = textwrap.dedent(
    '''
    """Acme: a provider of our own. Chat asks the OpenAI-compatible upstream, images are made here."""

    import io

    from PIL import Image as Picture

    from services.providers.adapter import Adapter
    from services.providers.registry import register_adapter
    from services.providers.types import ChatResult, Image, ImageGroup, ImagesResult


    @register_adapter("acme-images")
    class AcmeImages(Adapter):
        provider = "acme"
        models = ("acme-1",)
        kind = "image"

        async def generate(self, spec):
            width, height = spec.width or 64, spec.height or 32
            buffer = io.BytesIO()
            Picture.new("RGB", (width, height), (1, 2, 3)).save(buffer, format="PNG")
            image = Image(buffer.getvalue(), width=width, height=height)
            return ImagesResult([ImageGroup([image], 0, spec.prompt)], spec.model, total_images=1)


    @register_adapter("acme-chat")
    class AcmeChat(Adapter):
        provider = "acme"
        models = ("acme-chat",)

        def missing_config(self):
            return None if self.settings.openai_api_key else "OPENAI_API_KEY"

        async def chat(self, spec):
            return ChatResult(text=f"acme heard: {spec.prompt}", model=spec.model)
    '''
)
# Files starting with "_" are helpers, never loaded: this one would break the start if it were.
HELPER = "raise RuntimeError('a helper must not be loaded as a plug-in')\n"
DUPLICATE = textwrap.dedent(
    """
    from services.providers.adapter import Adapter
    from services.providers.registry import register_adapter


    @register_adapter("openai-gpt5")
    class MyGpt5(Adapter):
        models = ("my-gpt-5",)

        async def chat(self, spec):
            raise NotImplementedError
    """
)


def _plugin_dir(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    for name, body in files.items():
        (folder / name).write_text(body)
    return folder


async def test_a_dropped_in_plugin_is_served(tmp_path: Path, provider_fakes: ProviderFakes) -> None:
    folder = _plugin_dir(tmp_path, {"acme.py": PLUGIN, "_shared.py": HELPER})
    settings = providers_settings(provider_fakes, plugin_dir=folder)
    async with running_providers(settings) as running:
        models = {m.name: m for m in (await running.stub.ListModels(P.ListModelsRequest())).models}
        request = P.ProviderImageRequest(model="acme-1", prompt="a logo", width=40, height=20)
        answer = await running.stub.GenerateImages(request, timeout=10)
        chat = await running.stub.Chat(P.ChatRequest(model="acme-chat", prompt="hi"), timeout=10)
    assert (models["acme-1"].provider, models["acme-1"].task_type) == ("acme", "acme-images")
    assert models["acme-1"].ready and "gpt-5" in models  # built-ins are still there
    assert Image.open(io.BytesIO(answer.results[0].images[0].data)).size == (40, 20)
    assert chat.text == "acme heard: hi"


def _start(name: str, env: dict[str, str], target: str) -> ServiceProcess:
    return ServiceProcess.module(
        name, "services.providers", env=env, ready=lambda: grpc_serving(target), ready_timeout=30
    )


def test_the_process_reads_conventional_env_names_and_the_plugin_folder(
    tmp_path: Path, provider_fakes: ProviderFakes
) -> None:
    folder = _plugin_dir(tmp_path, {"acme.py": PLUGIN})
    target = f"127.0.0.1:{free_port()}"
    env = {
        **provider_fakes.env(),  # OPENAI_API_KEY, DASHSCOPE_BASE_URL, LIBLIB_ACCESS_KEY, ...
        "PROVIDERS_LISTEN": target,
        "PROVIDERS_METRICS_LISTEN": "",
        "PROVIDERS_PLUGIN_DIR": str(folder),
    }
    process = _start("providers-plugins", env, target).start()
    try:
        with grpc.insecure_channel(target) as channel:
            stub = providers_pb2_grpc.ProvidersStub(channel)
            models = {m.name: m for m in stub.ListModels(P.ListModelsRequest(), timeout=5).models}
            chat = stub.Chat(P.ChatRequest(model="gpt-5", prompt="hello"), timeout=10)
    finally:
        assert process.stop() == 0
    assert all(m.ready for m in models.values()), [m.reason for m in models.values()]
    assert "acme-1" in models
    assert chat.text == "You said: hello"


def test_a_duplicate_task_type_stops_the_start_naming_both_files(tmp_path: Path) -> None:
    folder = _plugin_dir(tmp_path, {"my_gpt5.py": DUPLICATE})
    target = f"127.0.0.1:{free_port()}"
    env = {"PROVIDERS_LISTEN": target, "PROVIDERS_PLUGIN_DIR": str(folder)}
    env["PROVIDERS_METRICS_LISTEN"] = ""
    process = _start("providers-duplicate", env, target)
    process.log_path.unlink(missing_ok=True)
    with pytest.raises(RuntimeError) as err:
        process.start()
    log = str(err.value)
    assert "task type 'openai-gpt5' is registered twice" in log
    assert "services/providers/adapters/openai_chat.py" in log
    assert str(folder / "my_gpt5.py") in log
    assert "exited with 2" in log and "Traceback" not in log
