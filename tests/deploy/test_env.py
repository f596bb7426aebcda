"""The environment variables deploy/ sets are ones the services actually read.

What a service reads is taken from its settings classes (pydantic-settings): a field `listen`
under `env_prefix="STORAGE_"` reads STORAGE_LISTEN; a field with a validation alias reads the
alias (or each of its AliasChoices) instead. A variable no settings class reads is a typo or a
leftover, silently ignored at run time; this test makes it loud.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from types import ModuleType

import pytest
from pydantic import AliasChoices, AliasPath
from pydantic_settings import BaseSettings

from tests.deploy.images import dockerfile_env
from tests.deploy.manifests import ROOT, SERVICES, Obj, env_names, service_containers

# Read by libraries inside the service, not by our settings: name -> who reads it.
LIBRARY_ENV = {
    "HF_HOME": "huggingface_hub: where the hub cache lives",
    "HF_HUB_OFFLINE": "huggingface_hub: never call the hub for a local folder",
    "OMP_NUM_THREADS": "torch: CPU threads (defaults to the node's cores, not the pod's limit)",
}
# Families of variables a library reads: prefix -> who reads them.
LIBRARY_PREFIXES = {
    # services/common/tracing.py reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT and
    # OTEL_SERVICE_NAME; the OpenTelemetry SDK every other OTEL_* (sampler, headers, batching).
    "OTEL_": "opentelemetry-sdk and services/common/tracing.py",
}

# Dockerfile target -> the service it runs.
TARGETS = {
    "gateway": "gateway",
    "providers": "providers",
    "storage": "storage",
    "tasks": "tasks",
    "qwen-image-cpu": "qwen-image",
    "qwen-image-cuda": "qwen-image",
    "qwen-edit-cpu": "qwen-edit",
    "qwen-edit-cuda": "qwen-edit",
}


def settings_modules(service: str) -> list[ModuleType]:
    """`services/<name>/settings.py` and every `settings.py` below it."""
    package = SERVICES[service]
    folder = ROOT / Path(*package.split("."))
    if not (folder / "settings.py").exists():
        pytest.skip(f"{package}.settings does not exist yet")
    paths = sorted(folder.rglob("settings.py"))
    names = [".".join(p.relative_to(ROOT).with_suffix("").parts) for p in paths]
    return [importlib.import_module(name) for name in names]


def settings_classes(module: ModuleType) -> list[type[BaseSettings]]:
    return [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, BaseSettings) and cls.__module__ == module.__name__
    ]


def variables_read(cls: type[BaseSettings]) -> set[str]:
    """Every environment variable a settings class reads (upper case: not case sensitive)."""
    prefix = cls.model_config.get("env_prefix", "")
    names: set[str] = set()
    for field_name, field in cls.model_fields.items():
        alias = field.validation_alias or field.alias
        if alias is None:
            names.add(prefix + field_name)
        elif isinstance(alias, str):
            names.add(alias)
        elif isinstance(alias, AliasPath):
            names.add(str(alias.path[0]))
        elif isinstance(alias, AliasChoices):
            for choice in alias.choices:
                names.add(choice if isinstance(choice, str) else str(choice.path[0]))
    return {name.upper() for name in names}


def read_by(service: str) -> set[str]:
    classes = [cls for module in settings_modules(service) for cls in settings_classes(module)]
    assert classes, f"{SERVICES[service]}.settings defines no BaseSettings class"
    return set().union(*(variables_read(cls) for cls in classes))


def unread(names: set[str], service: str) -> list[str]:
    known = read_by(service) | set(LIBRARY_ENV)
    return sorted(
        name
        for name in names
        if name.upper() not in known and not name.upper().startswith(tuple(LIBRARY_PREFIXES))
    )


def test_the_reader_follows_prefixes_and_aliases():
    from pydantic import Field
    from pydantic_settings import SettingsConfigDict

    class Example(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="STORAGE_")
        listen: str = ""
        key: str = Field(default="", validation_alias=AliasChoices("STORAGE_KEY", "OPENAI_API_KEY"))
        url: str = Field(default="", validation_alias="SOME_URL")

    assert variables_read(Example) == {
        "STORAGE_LISTEN",
        "STORAGE_KEY",
        "OPENAI_API_KEY",
        "SOME_URL",
    }


def test_opentelemetry_variables_are_read_by_every_service():
    names = {"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME", "OTEL_TRACES_SAMPLER"}
    assert unread(names, "gateway") == []
    assert unread(names | {"OTEL_X"}, "tasks") == []  # the SDK's own names are not listed
    assert unread({"OTELX_ENDPOINT"}, "tasks") == ["OTELX_ENDPOINT"]


def test_a_misspelt_variable_is_caught():
    assert unread({"STORAGE_LISTEN", "STORAGE_LISTN", "OPENAI_API_KEY"}, "storage") == [
        "OPENAI_API_KEY",
        "STORAGE_LISTN",
    ]


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_manifests_set_only_variables_the_service_reads(
    service: str, rendered: dict[str, list[Obj]]
):
    problems = {}
    for build, objs in rendered.items():
        for name, container in service_containers(objs):
            if name == service:
                stray = unread(set(env_names(container)), service)
                if stray:
                    problems[build] = stray
    assert problems == {}, f"{service} reads none of these"


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_images_set_only_variables_the_service_reads(target: str):
    service = TARGETS[target]
    assert unread(set(dockerfile_env(target)), service) == []
