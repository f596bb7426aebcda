"""The trailing metadata a model server puts on every answer, for the gateway's routing.

`imagemesh-load: queued=3,running=4,steps=120` says how many images wait in the server's queue,
how many its running pipeline call carries, and how many denoising steps are left image by image
(all of the waiting jobs', the rest of the running call's), as the call ends.
`imagemesh-not-started: 1` marks a refusal given before the job entered the queue (the pipeline
still loading, the queue full): nothing ran, so the gateway may send the same call to another
replica. Both sides read the format from here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

LOAD_KEY = "imagemesh-load"
NOT_STARTED_KEY = "imagemesh-not-started"


@dataclass(frozen=True)
class Load:
    queued: int  # images waiting
    running: int  # images in the running call
    steps: int | None = None  # denoising steps left, image by image (None: not reported)

    @property
    def images(self) -> int:
        return self.queued + self.running


def format_load(queued: int, running: int, steps: int) -> str:
    return f"queued={queued},running={running},steps={steps}"


def parse_load(value: str) -> Load | None:
    """The numbers of an `imagemesh-load` value; None when it is not one (unknown keys are
    ignored, so a server may add more; `steps` may be missing)."""
    fields: dict[str, int] = {}
    for part in value.split(","):
        key, _, number = part.partition("=")
        try:
            fields[key.strip()] = max(0, int(number))
        except ValueError:
            continue
    if "queued" not in fields or "running" not in fields:
        return None
    return Load(fields["queued"], fields["running"], fields.get("steps"))


def trailer(
    queued: int, running: int, steps: int, not_started: bool = False
) -> tuple[tuple[str, str], ...]:
    """The metadata pairs a server sets as its trailing metadata."""
    pairs = ((LOAD_KEY, format_load(queued, running, steps)),)
    return (*pairs, (NOT_STARTED_KEY, "1")) if not_started else pairs


def read(metadata: Iterable[tuple[str, str | bytes]] | None) -> tuple[Load | None, bool]:
    """(the load, whether the call was refused before it started) from trailing metadata."""
    load, not_started = None, False
    for key, value in metadata or ():
        text = value.decode(errors="replace") if isinstance(value, bytes) else value
        if key == LOAD_KEY:
            load = parse_load(text)
        elif key == NOT_STARTED_KEY:
            not_started = text == "1"
    return load, not_started
