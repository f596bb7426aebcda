"""Per-request LoRA adapters: which exist in `<SERVER>_LORA_DIR`, and the checks of a request's
`loras` list.

`LoraLibrary` is the folder: one adapter per `.safetensors` file, named by the file's stem. It is
listed again on every look-up, so an operator (or a Kubernetes volume) can add files while the
server runs. An adapter whose file failed to load is marked broken, with the reason, until its
file changes (size or modification time); requests naming it get FAILED_PRECONDITION (503 at the
gateway: the operator must act, the caller did nothing wrong) and `/v1/models` lists it as
unavailable, while every other adapter keeps working. Loading itself is `lora_adapters.py`'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from services.common.errors import FailedPrecondition, InvalidArgument, NotFound

MAX_SCALE = 2.0
DEFAULT_SCALE = 1.0
SUFFIX = ".safetensors"

# A call's adapters as (name, scale) pairs sorted by name: what set_adapters gets, and the part
# of the batch key that keeps jobs with other adapters (or other scales) out of a call.
LoraSet = tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class LoraRef:
    """One adapter of a request, as the caller sent it (scale None: DEFAULT_SCALE)."""

    name: str
    scale: float | None = None


@dataclass(frozen=True)
class LoraEntry:
    """One adapter as Describe lists it."""

    name: str
    available: bool
    reason: str = ""
    loaded: bool = False


FileState = tuple[float, int]  # (mtime, size): a changed file is tried again


class LoraLibrary:
    """The adapters of one server's `LORA_DIR` and what is known of each."""

    def __init__(self, folder: str, max_per_request: int) -> None:
        self.folder = Path(folder).expanduser() if folder else None
        self.max_per_request = max_per_request
        self._broken: dict[str, tuple[FileState, str]] = {}
        self.loaded: frozenset[str] = frozenset()  # kept up to date by LoraAdapters

    def files(self) -> dict[str, Path]:
        """Adapter name -> its file, in name order (empty without a folder)."""
        if self.folder is None or not self.folder.is_dir():
            return {}
        found = sorted(p for p in self.folder.glob(f"*{SUFFIX}") if p.is_file())
        return {path.name.removesuffix(SUFFIX): path for path in found}

    def path(self, name: str) -> Path | None:
        return self.files().get(name)

    def broken(self, name: str, path: Path) -> str | None:
        """Why the adapter's file does not load, or None (also when the file changed since)."""
        mark = self._broken.get(name)
        if mark is None:
            return None
        if _state(path) == mark[0]:
            return mark[1]
        self._broken.pop(name, None)
        return None

    def mark_broken(self, name: str, path: Path, reason: str) -> None:
        self._broken[name] = (_state(path), reason)

    def entries(self) -> list[LoraEntry]:
        listed = []
        for name, path in self.files().items():
            reason = self.broken(name, path)
            listed.append(LoraEntry(name, reason is None, reason or "", name in self.loaded))
        return listed

    def check(self, refs: tuple[LoraRef, ...]) -> LoraSet:
        """The request's adapters as a `LoraSet`, or the error naming what to fix."""
        if not refs:
            return ()
        if len(refs) > self.max_per_request:
            raise InvalidArgument(
                f"lora: {len(refs)} adapters given; at most {self.max_per_request} per request"
            )
        files = self.files()
        chosen: dict[str, float] = {}
        for index, ref in enumerate(refs):
            field = f"lora[{index}]" if len(refs) > 1 else "lora"
            scale = DEFAULT_SCALE if ref.scale is None else ref.scale
            if not ref.name:
                raise InvalidArgument(f"{field}.name: must not be empty; name an adapter")
            if not (math.isfinite(scale) and 0.0 <= scale <= MAX_SCALE):
                raise InvalidArgument(f"{field}.scale: {scale:g} is outside 0..{MAX_SCALE:g}")
            if ref.name in chosen:
                raise InvalidArgument(f"{field}.name: {ref.name} is given twice")
            path = files.get(ref.name)
            if path is None:
                raise NotFound(f"{field}.name: no adapter {ref.name!r}; {self.available(files)}")
            reason = self.broken(ref.name, path)
            if reason is not None:
                raise FailedPrecondition(unavailable(ref.name, reason))
            chosen[ref.name] = scale
        return tuple(sorted(chosen.items()))

    def available(self, files: dict[str, Path]) -> str:
        names = [name for name, path in files.items() if self.broken(name, path) is None]
        if names:
            return "available: " + ", ".join(names)
        if self.folder is None:
            return "this server has no adapters (its LORA_DIR setting is empty)"
        return f"this server has no adapters (no *{SUFFIX} files in its LORA_DIR)"


def unavailable(name: str, reason: str) -> str:
    return f"lora {name!r} is unavailable on this server: {reason}; the operator must replace it"


def _state(path: Path) -> FileState:
    try:
        stat = path.stat()
    except OSError:
        return (0.0, -1)
    return (stat.st_mtime, stat.st_size)
