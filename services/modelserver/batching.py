"""Which waiting jobs share one pipeline call, and how a shared call is run.

A job's `Batchable` says what its call needs: jobs whose `key`s are equal (and not None) can run
as one call, because the key holds everything such a call must share (pipeline class, size,
steps, guidance and true CFG, scheduler settings, adapters). `take` forms a call in arrival
order: the oldest waiting job decides the key, compatible jobs behind it join while the images
fit, incompatible ones keep their place. Every call takes the oldest job, so a job is the oldest
after at most as many calls as there are jobs ahead of it: no job starves behind a stream of
compatible ones.

`execute` runs one call in the pipeline thread. After each denoising step `BatchStep` reports
the step to every member still wanted; a member whose caller left stops getting steps and its
images are dropped, and the call stops early only when every member is gone. An error from a
shared call is retried member by member, so one bad request never fails its neighbours. CUDA
out-of-memory splits the call in halves and retries them; a single member that still does not
fit fails with `ResourceExhausted` naming its size and steps, and the device cache is emptied.
"""

from __future__ import annotations

import contextvars
import threading
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import torch

from services.common.errors import ResourceExhausted

PreviewFn = Callable[[], Any]  # decodes one member's preview at this step
ItemT = TypeVar("ItemT")


class JobCancelled(Exception):
    """Raised inside the pipeline (from the step callback) when the job's caller is gone."""


class BatchStepFn(Protocol):
    """Called after each step (1-based) of a call; `previews[i]`, when given and not None,
    decodes member i's preview at that step."""

    def __call__(self, index: int, previews: Sequence[PreviewFn | None] = ()) -> None: ...


@dataclass(frozen=True)
class Batchable(Generic[ItemT]):
    """One job's part of a pipeline call: its item, and the call that runs many items at once."""

    item: ItemT
    call: Callable[[list[ItemT], BatchStepFn], list[Any]]  # one result per item, in order
    key: Hashable | None = None  # equal keys share a call; None: always alone
    images: int = 1  # images this job adds to a call
    describe: str = "this request"  # named when it does not fit the device


class Member(Protocol):
    """What `execute` needs of a queued job."""

    work: Batchable[Any]
    cancelled: threading.Event
    context: contextvars.Context

    def step(self, index: int, preview: PreviewFn | None = None) -> None: ...


M = TypeVar("M", bound=Member)


def plan(waiting: Sequence[M], max_images: int) -> list[M]:
    """The jobs the next call would take: the oldest, and compatible jobs behind it, in arrival
    order, while their images fit in `max_images` (the oldest always goes, whatever its size)."""
    if not waiting:
        return []
    head = waiting[0]
    batch, images = [head], head.work.images
    if head.work.key is None:
        return batch
    for job in list(waiting)[1:]:
        if images >= max_images:
            break
        if job.work.key == head.work.key and images + job.work.images <= max_images:
            batch.append(job)
            images += job.work.images
    return batch


def take(waiting: deque[M], max_images: int) -> list[M]:
    """Removes and returns the next call's jobs (see `plan`)."""
    batch = plan(waiting, max_images)
    for job in batch:
        waiting.remove(job)
    return batch


class BatchStep:
    """The step function of one call: fans each step out to the members still wanted."""

    def __init__(self, members: Sequence[Member]) -> None:
        self.members = list(members)
        self.gone: set[int] = set()

    def __call__(self, index: int, previews: Sequence[PreviewFn | None] = ()) -> None:
        for i, member in enumerate(self.members):
            if i in self.gone:
                continue
            try:
                member.step(index, previews[i] if i < len(previews) else None)
            except JobCancelled:
                self.gone.add(i)  # its images are made with the rest, and dropped
        if len(self.gone) == len(self.members):
            raise JobCancelled()


@dataclass(frozen=True)
class Outcome:
    result: Any = None
    error: BaseException | None = None
    cancelled: bool = False


CANCELLED = Outcome(cancelled=True)


def execute(members: Sequence[Member], on_call: Callable[[int], None]) -> list[Outcome]:
    """Runs the members as one call (blocking; `on_call(images)` before each pipeline call) and
    returns one outcome per member, in order."""
    outcomes = [CANCELLED] * len(members)
    live = [i for i, member in enumerate(members) if not member.cancelled.is_set()]
    if not live:
        return outcomes
    group = [members[i] for i in live]
    for i, outcome in zip(live, _call(group, on_call), strict=True):
        outcomes[i] = outcome
    return outcomes


def _call(group: list[Member], on_call: Callable[[int], None]) -> list[Outcome]:
    step = BatchStep(group)
    head = group[0]
    try:
        on_call(sum(member.work.images for member in group))
        # The head's context: log lines of the call carry the oldest caller's request id.
        results = head.context.run(head.work.call, [m.work.item for m in group], step)
    except JobCancelled:
        return [CANCELLED] * len(group)
    except torch.OutOfMemoryError as exc:
        free_device_memory()
        if len(group) == 1:
            return [Outcome(error=_too_big(head, exc))]
        half = len(group) // 2
        return execute(group[:half], on_call) + execute(group[half:], on_call)
    except Exception as exc:  # noqa: BLE001 - whatever failed, each member is retried alone
        if len(group) == 1:
            return [Outcome(error=exc)]
        return [outcome for member in group for outcome in execute([member], on_call)]
    return [
        CANCELLED if i in step.gone else Outcome(result=result) for i, result in enumerate(results)
    ]


def _too_big(member: Member, exc: BaseException) -> ResourceExhausted:
    error = ResourceExhausted(
        f"out of device memory for {member.work.describe} even alone; "
        "ask for fewer images or a smaller size"
    )
    error.__cause__ = exc
    return error


def free_device_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
