"""A model server's step hook for tests: records every step, can hold a job in its first step.

Tests use it to make queue states happen for certain instead of for long enough: a held job keeps
the pipeline busy until the test releases it or the job's caller goes away.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

HOLD_LIMIT_SECONDS = 60.0


class StepGate:
    def __init__(self) -> None:
        self.steps: list[tuple[Any, int]] = []  # (job, step) in the order they ran
        self._armed = False
        self._release = threading.Event()
        self.held = threading.Event()
        self.held_job: Any = None

    def arm(self) -> None:
        """The next job to start is held in its first step."""
        self._armed, self.held_job = True, None
        self._release.clear()
        self.held.clear()

    def release(self) -> None:
        self._release.set()

    async def wait_held(self) -> Any:
        assert await asyncio.to_thread(self.held.wait, HOLD_LIMIT_SECONDS), "no job started"
        return self.held_job

    def steps_of(self, job: Any) -> list[int]:
        return [step for ran, step in self.steps if ran is job]

    def __call__(self, job: Any, step: int) -> None:  # runs in the pipeline thread
        self.steps.append((job, step))
        if step != 1 or not self._armed:
            return
        self._armed, self.held_job = False, job
        self.held.set()
        for _ in range(int(HOLD_LIMIT_SECONDS / 0.02)):
            # Released by the test, or by the job's caller going away.
            if self._release.wait(0.02) or job.cancelled.is_set():
                return
