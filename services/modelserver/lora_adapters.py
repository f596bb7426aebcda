"""The LoRA adapters loaded into one pipeline, switched per call (pipeline thread only).

Before each pipeline call `activate(loras)` makes the pipeline run with exactly the call's
adapters: it loads what is missing with diffusers' `load_lora_weights` (peft), evicting the least
recently used adapter beyond `<SERVER>_MAX_LOADED_LORAS` with `delete_adapters`, then
`set_adapters(names, scales)`; a call without adapters runs with LoRA disabled. The base weights
are never reloaded: peft keeps each adapter beside them, and disabling or switching adapters
leaves the base layers as they were, so the same seed without a LoRA gives the base picture
again. The pipeline's inpaint and img2img variants share its transformer (`from_pipe`), so they
run with the same adapters.

A file that does not load marks its adapter broken in the library (`loras.py`) and fails the
call with FAILED_PRECONDITION; whatever peft kept of it is deleted, and the other adapters are
untouched.
"""

from __future__ import annotations

import logging
import warnings
from collections import OrderedDict
from typing import Any

from services.common.errors import FailedPrecondition, NotFound
from services.modelserver.loras import LoraLibrary, LoraSet, unavailable

log = logging.getLogger("imagemesh.modelserver.lora")


class LoraAdapters:
    def __init__(self, pipe: Any, library: LoraLibrary, max_loaded: int) -> None:
        self.pipe = pipe
        self.library = library
        self.max_loaded = max_loaded
        self._lru: OrderedDict[str, None] = OrderedDict()
        self._active: LoraSet | None = ()  # None: unknown (a switch failed half-way)
        self.loads = 0  # adapters loaded from files so far (tests and benchmarks read it)

    @property
    def loaded(self) -> list[str]:
        """Adapter names in memory, least recently used first."""
        return list(self._lru)

    def activate(self, loras: LoraSet) -> None:
        """Makes the pipeline's next call run with exactly `loras` (blocking)."""
        for name, _ in loras:
            if name in self._lru:
                self._lru.move_to_end(name)
        if loras == self._active:
            return
        self._active = None
        if not loras:
            if self._lru:
                self.pipe.disable_lora()
            self._active = ()
            return
        names = [name for name, _ in loras]
        for name in names:
            if name not in self._lru:
                self._load(name, keep=names)
        self.pipe.enable_lora()
        self.pipe.set_adapters(names, [scale for _, scale in loras])
        self._active = loras

    def _load(self, name: str, keep: list[str]) -> None:
        path = self.library.path(name)
        if path is None:
            raise NotFound(f"lora: no adapter {name!r} any more (its file left the LORA_DIR)")
        reason = self.library.broken(name, path)
        if reason is not None:
            raise FailedPrecondition(unavailable(name, reason))
        while len(self._lru) >= self.max_loaded:
            victim = next((n for n in self._lru if n not in keep), None)
            if victim is None:
                break
            self._evict(victim)
        try:
            with warnings.catch_warnings():
                # peft warns on every adapter after the first: several adapters are the point.
                warnings.filterwarnings("ignore", "Already found a `peft_config`", UserWarning)
                self.pipe.load_lora_weights(
                    str(path.parent), weight_name=path.name, adapter_name=name
                )
        except Exception as exc:  # any failure to read the file or fit it to the model
            # The exception's text names server paths: it goes to the log, not to callers.
            reason = f"its file {path.name} does not load ({type(exc).__name__})"
            self.library.mark_broken(name, path, reason)
            log.error("lora %s: %s: %s", name, reason, exc)
            self._discard(name)
            raise FailedPrecondition(unavailable(name, reason)) from exc
        self.loads += 1
        self._lru[name] = None
        self.library.loaded = frozenset(self._lru)
        log.info("lora %s: loaded from %s (%d in memory)", name, path, len(self._lru))

    def _evict(self, name: str) -> None:
        self.pipe.delete_adapters([name])
        del self._lru[name]
        self.library.loaded = frozenset(self._lru)
        log.info("lora %s: evicted (least recently used)", name)

    def _discard(self, name: str) -> None:
        """Deletes whatever a failed load left of the adapter in the pipeline."""
        try:
            present = {n for names in self.pipe.get_list_adapters().values() for n in names}
            if name in present:
                self.pipe.delete_adapters([name])
        except Exception:  # noqa: BLE001 - nothing was left, or nothing can be removed
            log.warning("lora %s: could not remove what its failed load left", name)
