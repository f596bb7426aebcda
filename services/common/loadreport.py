"""The trailing metadata a model server puts on every answer, for the gateway's routing.

`imagemesh-load: queued=3,running=4,steps=120` says how many images wait in the server's queue,
how many its running pipeline call carries, and how many denoising steps are left image by image
(all of the waiting jobs', the rest of the running call's), as the call ends. Once the server has
timed a call it adds its pace and prediction: `...,ms=5400,step_ms=197.5,call_ms=470`: the
milliseconds until its queue is drained, one step of one image, the rest of a call.
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
class Pace:
    """How fast a replica runs: one denoising step of one image, and the rest of a call."""

    step_ms: float
    call_ms: float

    def cost(self, steps: int, calls: int = 1) -> float:
        """Milliseconds of `calls` calls that hold `steps` steps image by image."""
        return calls * self.call_ms + steps * self.step_ms


@dataclass(frozen=True)
class Load:
    queued: int  # images waiting
    running: int  # images in the running call
    steps: int | None = None  # denoising steps left, image by image (None: not reported)
    ms: int | None = None  # predicted milliseconds until drained (None: not measured yet)
    pace: Pace | None = None  # None: not measured yet

    @property
    def images(self) -> int:
        return self.queued + self.running


def format_load(
    queued: int, running: int, steps: int, ms: int | None = None, pace: Pace | None = None
) -> str:
    text = f"queued={queued},running={running},steps={steps}"
    if ms is not None and pace is not None:
        text += f",ms={ms},step_ms={pace.step_ms:.3g},call_ms={pace.call_ms:.4g}"
    return text


def parse_load(value: str) -> Load | None:
    """The numbers of an `imagemesh-load` value; None when it is not one (unknown keys are
    ignored, so a server may add more; `steps` and the pace may be missing)."""
    fields: dict[str, float] = {}
    for part in value.split(","):
        key, _, number = part.partition("=")
        try:
            fields[key.strip()] = max(0.0, float(number))
        except ValueError:
            continue
    if "queued" not in fields or "running" not in fields:
        return None
    steps = fields.get("steps")
    ms, step_ms = fields.get("ms"), fields.get("step_ms")
    paced = ms is not None and bool(step_ms)
    return Load(
        int(fields["queued"]),
        int(fields["running"]),
        None if steps is None else int(steps),
        int(ms) if paced and ms is not None else None,
        Pace(step_ms or 0.0, fields.get("call_ms", 0.0)) if paced else None,
    )


def trailer(
    queued: int,
    running: int,
    steps: int,
    not_started: bool = False,
    ms: int | None = None,
    pace: Pace | None = None,
) -> tuple[tuple[str, str], ...]:
    """The metadata pairs a server sets as its trailing metadata."""
    pairs = ((LOAD_KEY, format_load(queued, running, steps, ms, pace)),)
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
