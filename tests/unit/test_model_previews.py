"""Partial images in the job queue: at which steps, in which order, and only for a reader."""

from __future__ import annotations

import pytest

from services.modelserver.jobs import JobQueue, Preview, Progress, StepFn
from services.modelserver.previews import PreviewPlan, preview_steps


@pytest.mark.parametrize(
    ("total", "count", "steps"),
    [
        (50, 3, (13, 25, 38)),
        (20, 1, (10,)),
        (4, 2, (1, 3)),
        (6, 3, (2, 3, 5)),
        (4, 3, (1, 2, 3)),
        (3, 3, (1, 2)),  # at most one per step before the last
        (2, 3, (1,)),
        (10, 0, ()),
    ],
)
def test_previews_are_evenly_spaced_before_the_last_step(
    total: int, count: int, steps: tuple[int, ...]
) -> None:
    assert preview_steps(total, count) == steps


def test_no_plan_without_previews() -> None:
    assert PreviewPlan.for_job(30, 0, 64, 64) is None
    plan = PreviewPlan.for_job(30, 2, 64, 64)
    assert plan is not None and plan.steps == (10, 20)


class Previewing:
    """Work of `steps` steps that offers a preview after each of `at`; counts the decodes."""

    def __init__(self, steps: int, at: tuple[int, ...]) -> None:
        self.steps, self.at, self.decoded = steps, at, 0

    def decode(self, step: int) -> Preview:
        self.decoded += 1
        return Preview(step, self.at.index(step), [f"picture at {step}"])

    def __call__(self, step: StepFn) -> str:
        for index in range(1, self.steps + 1):
            if index in self.at:
                step(index, lambda index=index: self.decode(index))
            else:
                step(index)
        return "done"


async def test_a_stream_gets_each_preview_after_its_step() -> None:
    queue = JobQueue("t", max_waiting=1)
    work = Previewing(steps=4, at=(1, 3))
    job = queue.submit(work, total_steps=4, streaming=True)
    events = [event async for event in queue.events(job)]
    names = [
        f"step {e.step}"
        if isinstance(e, Progress)
        else f"preview {e.index}@{e.step}"
        if isinstance(e, Preview)
        else e
        for e in events
    ]
    assert names == [
        "step 0",
        "step 1",
        "preview 0@1",
        "step 2",
        "step 3",
        "preview 1@3",
        "step 4",
        "done",
    ]
    await queue.close()


async def test_a_plain_call_never_pays_for_a_preview() -> None:
    queue = JobQueue("t", max_waiting=1)
    work = Previewing(steps=4, at=(1, 2, 3))
    assert await queue.result(queue.submit(work, total_steps=4)) == "done"
    assert work.decoded == 0
    await queue.close()
