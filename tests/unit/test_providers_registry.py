"""The adapter registry: what the loader reads, and the start-up errors that name files."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from services.providers.adapter import Adapter, AdapterEnv
from services.providers.registry import (
    BUILTIN_DIR,
    Registry,
    RegistryError,
    discover,
    register_adapter,
)
from services.providers.settings import ProvidersSettings
from services.providers.upstream import UpstreamPool

ADAPTER = textwrap.dedent(
    """
    from services.providers.adapter import Adapter, AdapterEnv
    from services.providers.registry import register_adapter


    @register_adapter("{task}")
    class A(Adapter):
        models = ("{model}",)

        async def chat(self, spec):
            raise NotImplementedError
    """
)


def _folder(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, body in files.items():
        (tmp_path / name).write_text(body)
    return tmp_path


def test_builtin_adapters_are_found_and_helpers_skipped() -> None:
    found = {r.task_type: r.path.name for r in discover()}
    assert found == {
        "openai-gpt5": "openai_chat.py",
        "gpt-image-1": "openai_images.py",
        "dashscope-qwen-chat": "dashscope_chat.py",
        "dashscope-qwen-image": "dashscope_image.py",
        "dashscope-wanx": "dashscope_wanx.py",
        "liblibai": "liblib.py",
    }
    assert any(p.name.startswith("_") for p in BUILTIN_DIR.glob("*.py"))


def test_two_plugins_with_one_task_type_name_both_files(tmp_path: Path) -> None:
    folder = _folder(
        tmp_path,
        {
            "a.py": ADAPTER.format(task="acme", model="m1"),
            "b.py": ADAPTER.format(task="acme", model="m2"),
        },
    )
    with pytest.raises(RegistryError) as err:
        discover(folder)
    assert (
        f"task type 'acme' is registered twice: in {folder / 'a.py'} and in {folder / 'b.py'}"
        in str(err.value)
    )


def test_a_model_claimed_twice_names_both(tmp_path: Path) -> None:
    folder = _folder(tmp_path, {"mine.py": ADAPTER.format(task="mine", model="gpt-5")})
    with pytest.raises(RegistryError) as err:
        settings = ProvidersSettings()
        Registry(discover(folder), AdapterEnv(settings, UpstreamPool(settings), images=None))  # type: ignore[arg-type]
    message = str(err.value)
    assert "model 'gpt-5' is claimed twice" in message
    assert "openai_chat.py" in message and str(folder / "mine.py") in message


def test_a_broken_plugin_names_its_file(tmp_path: Path) -> None:
    folder = _folder(tmp_path, {"broken.py": "import no_such_module_here\n"})
    with pytest.raises(RegistryError) as err:
        discover(folder)
    assert f"plug-in {folder / 'broken.py'} failed to load: ModuleNotFoundError" in str(err.value)


def test_underscore_files_and_other_files_are_not_loaded(tmp_path: Path) -> None:
    folder = _folder(
        tmp_path,
        {
            "_helper.py": "raise RuntimeError('loaded')\n",
            "notes.txt": "not python",
            "ok.py": ADAPTER.format(task="ok", model="ok-1"),
        },
    )
    assert [r.task_type for r in discover(folder)][-1] == "ok"


def test_a_plugin_may_extend_a_builtin_without_registering_it_again(tmp_path: Path) -> None:
    body = textwrap.dedent(
        """
        from services.providers.adapters.openai_chat import OpenAIChat
        from services.providers.registry import register_adapter


        @register_adapter("openai-gpt5-mini")
        class Mini(OpenAIChat):
            models = ("gpt-5-mini",)
        """
    )
    found = discover(_folder(tmp_path, {"mini.py": body}))
    assert [r.task_type for r in found].count("openai-gpt5") == 1
    assert found[-1].task_type == "openai-gpt5-mini"


def test_a_missing_plugin_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="is not a folder"):
        discover(tmp_path / "nope")


def test_the_decorator_takes_adapters_only() -> None:
    with pytest.raises(RegistryError, match="decorates Adapter subclasses"):
        register_adapter("x")(object)  # type: ignore[arg-type]
    with pytest.raises(RegistryError, match="non-empty task type"):
        register_adapter("")

    @register_adapter("fine")
    class Fine(Adapter):
        models = ("fine-1",)

    assert Fine.task_type == "fine"
