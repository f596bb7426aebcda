"""The registry of adapters: `@register_adapter("task-type")` and the loader (seed 000).

At start the service loads every `*.py` of the built-in `services/providers/adapters/` package,
then of the plug-in folder (`PROVIDERS_PLUGIN_DIR`), skipping files whose name starts with `_`.
Every `Adapter` subclass a file decorates with `@register_adapter` is registered under its task
type, and each model it declares is routed to it. A task type (or a model) claimed twice stops the
start with an error naming both files; so does a plug-in that fails to import. A user adds a
provider by dropping one file in the plug-in folder:

    from services.providers.adapter import Adapter
    from services.providers.registry import register_adapter

    @register_adapter("acme-images")
    class Acme(Adapter):
        provider, models, kind = "acme", ("acme-1",), "image"
        async def generate(self, spec): ...
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TypeVar

from services.common.errors import InvalidArgument, NotFound, Unavailable
from services.providers.adapter import KINDS, Adapter, AdapterEnv
from services.providers.types import ModelInfo

log = logging.getLogger("imagemesh.providers.registry")

BUILTIN_DIR = Path(__file__).resolve().parent / "adapters"
BUILTIN_PACKAGE = "services.providers.adapters"
PLUGIN_PACKAGE = "imagemesh_plugins"
# Set on the decorated class itself (never inherited), so a plug-in that subclasses or imports a
# registered adapter does not register it a second time.
_MARK = "__imagemesh_task_type__"

A = TypeVar("A", bound=type[Adapter])

RPC_NAMES = {
    "chat": "Chat",
    "chat_stream": "ChatStream",
    "generate": "GenerateImages",
    "edit": "EditImages",
}


class RegistryError(Exception):
    """The adapters cannot be loaded as configured; the message says which file and why."""


def register_adapter(task_type: str) -> Callable[[A], A]:
    """Registers an `Adapter` subclass under `task_type` (e.g. "openai-gpt5")."""
    if not isinstance(task_type, str) or not task_type.strip():
        raise RegistryError(f"@register_adapter needs a non-empty task type, got {task_type!r}")

    def decorate(cls: A) -> A:
        if not (isinstance(cls, type) and issubclass(cls, Adapter)):
            raise RegistryError(
                f"@register_adapter({task_type!r}) decorates Adapter subclasses, not {cls!r}"
            )
        cls.task_type = task_type
        setattr(cls, _MARK, task_type)
        return cls

    return decorate


@dataclass
class Registration:
    task_type: str
    cls: type[Adapter]
    path: Path


def _import_file(path: Path, builtin: bool) -> ModuleType:
    if builtin:
        return importlib.import_module(f"{BUILTIN_PACKAGE}.{path.stem}")
    # A unique module name per file: two plug-in folders may both hold `openai.py`.
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    name = f"{PLUGIN_PACKAGE}.{path.stem.replace('-', '_')}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise RegistryError(f"plug-in {path}: cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise RegistryError(f"plug-in {path} failed to load: {type(exc).__name__}: {exc}") from exc
    return module


def adapter_files(folder: Path) -> list[Path]:
    """The files the loader reads in `folder`: `*.py`, not starting with `_`, sorted."""
    return sorted(p for p in folder.glob("*.py") if not p.name.startswith("_") and p.is_file())


def discover(plugin_dir: Path | None = None) -> list[Registration]:
    """Imports the built-in adapters and the plug-ins; every registration, in load order."""
    folders: list[tuple[Path, bool]] = [(BUILTIN_DIR, True)]
    if plugin_dir is not None:
        if not plugin_dir.is_dir():
            raise RegistryError(f"PROVIDERS_PLUGIN_DIR={plugin_dir} is not a folder")
        folders.append((plugin_dir.resolve(), False))
    found: list[Registration] = []
    seen: dict[str, Path] = {}
    for folder, builtin in folders:
        for path in adapter_files(folder):
            module = _import_file(path, builtin)
            for cls in _registered_in(module):
                task_type = cls.__dict__[_MARK]
                if task_type in seen:
                    raise RegistryError(
                        f"task type {task_type!r} is registered twice: "
                        f"in {seen[task_type]} and in {path}"
                    )
                seen[task_type] = path
                found.append(Registration(task_type, cls, path))
    return found


def _registered_in(module: ModuleType) -> Iterable[type[Adapter]]:
    for value in list(vars(module).values()):
        if (
            isinstance(value, type)
            and _MARK in value.__dict__
            and value.__module__ == module.__name__
        ):
            yield value


class Registry:
    """The adapters of one server, and which adapter serves which model."""

    def __init__(self, registrations: list[Registration], env: AdapterEnv) -> None:
        self.adapters: dict[str, Adapter] = {}
        self._by_model: dict[str, Adapter] = {}
        owner: dict[str, Registration] = {}
        for reg in registrations:
            if reg.cls.kind not in KINDS:
                raise RegistryError(
                    f"{reg.path}: {reg.cls.__name__}.kind is {reg.cls.kind!r}; use one of {KINDS}"
                )
            if not reg.cls.models:
                raise RegistryError(f"{reg.path}: {reg.cls.__name__} declares no models")
            adapter = reg.cls(env)
            self.adapters[reg.task_type] = adapter
            for model in reg.cls.models:
                if model in owner:
                    first = owner[model]
                    raise RegistryError(
                        f"model {model!r} is claimed twice: by {first.task_type!r} in "
                        f"{first.path} and by {reg.task_type!r} in {reg.path}"
                    )
                owner[model] = reg
                self._by_model[model] = adapter
        log.info(
            "adapters: %s",
            ", ".join(f"{r.task_type} ({', '.join(r.cls.models)})" for r in registrations),
        )

    @classmethod
    def load(cls, env: AdapterEnv) -> Registry:
        return cls(discover(env.settings.plugin_dir), env)

    def model_names(self) -> list[str]:
        return sorted(self._by_model)

    def adapter_for(self, model: str) -> Adapter:
        """The adapter serving `model`; NotFound listing the models that exist otherwise."""
        adapter = self._by_model.get(model)
        if adapter is None:
            raise NotFound(
                f"model {model!r} is not served here; models: {', '.join(self.model_names())}"
            )
        return adapter

    def provider_of(self, model: str) -> str:
        """The provider serving `model` (a metrics label): "unknown" for a model not served."""
        adapter = self._by_model.get(model)
        return (adapter.provider or adapter.task_type) if adapter else "unknown"

    def ready_adapter_for(self, model: str, call: str) -> Adapter:
        """The adapter to run `call` (chat, chat_stream, generate, edit) for `model`.

        NOT_FOUND for an unknown model, INVALID_ARGUMENT when the model does not answer that
        call, UNAVAILABLE "set OPENAI_API_KEY to use gpt-5" when its provider is not configured.
        """
        adapter = self.adapter_for(model)
        can = adapter.capabilities()
        if call not in can:
            raise InvalidArgument(
                f"{model} is a {adapter.kind} model and does not answer {RPC_NAMES[call]}; "
                f"use {' or '.join(RPC_NAMES[c] for c in can)}"
            )
        missing = adapter.missing_config()
        if missing:
            raise Unavailable(f"set {missing} to use {model}")
        return adapter

    def models(self) -> list[ModelInfo]:
        out = []
        for name in self.model_names():
            adapter = self._by_model[name]
            missing = adapter.missing_config()
            out.append(
                ModelInfo(
                    name=name,
                    provider=adapter.provider or adapter.task_type,
                    task_type=adapter.task_type,
                    kind=adapter.kind,
                    ready=missing is None,
                    reason=f"set {missing} to use {name}" if missing else "",
                    capabilities=adapter.capabilities(),
                )
            )
        return out
