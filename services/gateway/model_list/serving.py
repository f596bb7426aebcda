"""GET /v1/models: the catalogue, with readiness per model.

A local model is ready when its server's gRPC health answers SERVING; a hosted one when the
providers service lists it as ready (its key configured). Each item carries both the seed-004
fields (`model`, `url`: where to call it) and OpenAI's (`id`, `object`, `owned_by`, `created`); a
local model also what its server describes: the acceleration switches (`acceleration`: cache,
compile, quantize), its LoRA adapters (`loras`: `[{"name", "available", "loaded"}]`, `reason`
when unavailable, and `max_loras_per_request`) and its ControlNets (`controlnets`:
`[{"name", "kind"}]`, kind "control" or "inpainting"; what a `control_image` item may name).

Per-model lists are the pattern for what a model can be given by name (LoRA adapters now;
switches, families, ControlNets later): a key under the model, a list of `{"name": ..., ...}`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from imagemesh.v1 import common_pb2

from services.gateway.catalog import ENDPOINTS, Catalog
from services.gateway.clients import Backends
from services.gateway.settings import GatewaySettings

# When the gateway started: OpenAI's `created` of a model (ours are configured, not trained).
_STARTED = int(time.time())


class ModelListService:
    def __init__(self, settings: GatewaySettings, catalog: Catalog, backends: Backends) -> None:
        self._settings = settings
        self._catalog = catalog
        self._backends = backends

    async def list(self, base_url: str) -> dict[str, Any]:
        # A model on a deployment of its own (`server:`) is as ready as that deployment.
        local = sorted({e.server or e.backend for e in self._catalog.entries if e.local})
        healths, hosted, described = await asyncio.gather(
            self._backends.healths(local),
            self._backends.provider_models(),
            self._backends.describes(local),
        )
        base = (self._settings.public_base_url or base_url).rstrip("/")
        data = []
        for entry in self._catalog.entries:
            if entry.local:
                server = entry.server or entry.backend
                status = healths.get(server, "UNREACHABLE")
                ready, reason = status == "SERVING", f"{server} server is {status}"
            else:
                found = hosted.get(entry.name)
                if found is None:
                    ready = False
                    reason = (
                        "providers service is not answering"
                        if not hosted
                        else f"the providers service does not serve {entry.name}"
                    )
                else:
                    ready, reason = found.ready, found.reason
            item: dict[str, Any] = {
                "id": entry.name,
                "object": "model",
                "created": _STARTED,
                "owned_by": entry.owned_by,
                "model": entry.name,
                "url": base + ENDPOINTS[entry.kinds[0]],
                "endpoints": [base + ENDPOINTS[k] for k in entry.kinds],
                "backend": entry.backend,
                "ready": ready,
            }
            if not ready:
                item["reason"] = reason
            info = described.get(entry.server or entry.backend) if entry.local else None
            if info is not None:
                # CACHE / COMPILE / QUANTIZE as the model server runs them.
                item["acceleration"] = acceleration(info)
                item["loras"] = loras(info)
                item["max_loras_per_request"] = info.max_loras_per_request
                item["controlnets"] = controlnets(info)
            data.append(item)
        return {"object": "list", "project": self._settings.project, "data": data}


def acceleration(info: common_pb2.ModelServerInfo) -> dict[str, str]:
    switches = {"cache": info.cache, "compile": info.compile, "quantize": info.quantize}
    if info.cache_config:
        switches["cache_config"] = info.cache_config
    return switches


def controlnets(info: common_pb2.ModelServerInfo) -> list[dict[str, str]]:
    """The server's ControlNets (its CONTROLNET_LOCATION, in that order); where each was loaded
    from stays inside the mesh."""
    return [{"name": net.name, "kind": net.kind} for net in info.controlnets]


def loras(info: common_pb2.ModelServerInfo) -> list[dict[str, Any]]:
    """The server's adapters: what a request's `lora` may name."""
    listed = []
    for lora in info.loras:
        item: dict[str, Any] = {"name": lora.name, "available": lora.available}
        item["loaded"] = lora.loaded
        if not lora.available:
            item["reason"] = lora.reason
        listed.append(item)
    return listed
