"""The model catalogue: public model names -> the backend that serves them (one YAML file).

Loaded once at start from `GATEWAY_CATALOG_PATH` (default: `catalog.yaml` beside this module).
`resolve(name, kind)` answers the entry or raises the 404 (unknown model, listing what exists) or
400 (a model that exists but does not answer this endpoint) envelope.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from services.gateway.errors import ApiError, invalid

Kind = Literal["image", "edit", "chat", "layers"]
Backend = Literal["qwen_image", "qwen_edit", "providers"]

ENDPOINTS: dict[str, str] = {
    "image": "/v1/images/generations",
    "edit": "/v1/images/edits",
    "chat": "/v1/chat/completions",
    "layers": "/v1/images/layers",
}


# Input images per edit by backend: Qwen-Image's img2img takes one; the Qwen-Image-Edit server
# Edit-Plus's three (QWEN_IMAGE_EDIT_MAX_INPUT_IMAGES; with the Edit pipeline it refuses past
# one itself); hosted APIs take up to 16 (OpenAI's limit).
BACKEND_INPUTS: dict[str, int] = {"qwen_image": 1, "qwen_edit": 3, "providers": 16}


class Entry(BaseModel):
    name: str = Field(min_length=1)
    backend: Backend
    kinds: list[Kind] = Field(min_length=1)
    provider: str = ""
    max_images: int = Field(default=4, ge=1, le=10)
    # Input images one edit may give (a mask not counted), checked before any is fetched;
    # unset: the backend's (BACKEND_INPUTS).
    max_input_images: int | None = Field(default=None, ge=1, le=16)
    # OpenAI's `quality` -> denoising steps, for local models (auto: the default steps).
    quality_steps: dict[Literal["low", "medium", "high"], int] = Field(default_factory=dict)
    # The deployment of `backend` that serves this model when it is not the default one: a name
    # in GATEWAY_MODEL_SERVERS (Qwen-Image 2.1 is a qwen_image server with its own weights).
    server: str = ""
    # A few-step model sampled without guidance (Qwen-Image 2.1 Turbo): seed 003's defaults
    # leave its steps and true CFG to the model server.
    few_step: bool = False

    @property
    def owned_by(self) -> str:
        return self.provider or "imagemesh"

    @property
    def local(self) -> bool:
        return self.backend != "providers"

    @property
    def input_limit(self) -> int:
        return self.max_input_images or BACKEND_INPUTS[self.backend]


class CatalogFile(BaseModel):
    defaults: dict[Kind, str] = Field(default_factory=dict)
    models: list[Entry] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> CatalogFile:
        names = [entry.name for entry in self.models]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"models listed twice: {duplicates}")
        for kind, name in self.defaults.items():
            if name not in names:
                raise ValueError(f"default {kind} model {name!r} is not in models")
        return self


class CatalogError(Exception):
    """The catalogue file is missing or malformed (the gateway refuses to start)."""


class Catalog:
    def __init__(self, entries: list[Entry], defaults: dict[str, str] | None = None) -> None:
        self.entries = list(entries)
        self.defaults = dict(defaults or {})
        self._by_name = {entry.name: entry for entry in self.entries}

    @classmethod
    def load(cls, path: Path) -> Catalog:
        try:
            raw = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise CatalogError(f"cannot read the model catalogue {path}: {exc}") from exc
        try:
            parsed = CatalogFile.model_validate(raw)
        except ValidationError as exc:
            raise CatalogError(f"model catalogue {path} is invalid: {exc}") from exc
        return cls(parsed.models, {str(kind): name for kind, name in parsed.defaults.items()})

    def deployed(self, servers: Iterable[str]) -> Catalog:
        """The entries this gateway can serve: one whose `server` has no address (not among
        `servers`, GATEWAY_MODEL_SERVERS) is left out, so it is neither listed nor routed: a
        model nobody deployed is unknown here (404), not a service that is down (503)."""
        known = set(servers)
        entries = [entry for entry in self.entries if not entry.server or entry.server in known]
        kept = {entry.name for entry in entries}
        return Catalog(entries, {k: n for k, n in self.defaults.items() if n in kept})

    def names(self, kind: str | None = None) -> list[str]:
        return [e.name for e in self.entries if kind is None or kind in e.kinds]

    def resolve(self, name: str | None, kind: Kind) -> Entry:
        """The entry for `name` (or the default of `kind` when no model was named)."""
        if not name:
            name = self.defaults.get(kind)
            if not name:
                raise invalid(
                    f"model is required; models for {ENDPOINTS[kind]}: {', '.join(self.names(kind))}",
                    "model",
                )
        entry = self._by_name.get(name)
        if entry is None:
            raise ApiError(
                404,
                f"model {name!r} does not exist; models for {ENDPOINTS[kind]}: "
                f"{', '.join(self.names(kind))} (GET /v1/models lists all)",
                "model",
            )
        if kind not in entry.kinds:
            served = ", ".join(ENDPOINTS[k] for k in entry.kinds)
            raise invalid(
                f"model {name!r} is served at {served}, not {ENDPOINTS[kind]}; models for "
                f"{ENDPOINTS[kind]}: {', '.join(self.names(kind))}",
                "model",
            )
        return entry
