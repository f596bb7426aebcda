"""What the gateway knows of one replica's work, without gRPC.

Work is counted in denoising steps, image by image: a 50-step image is 25 times the work of a
2-step one. work = the steps the replica last reported left (its queued jobs' and the rest of its
running call's) + the steps of the calls the gateway sent it since that report and that are still
in flight. A report comes with every answer (its trailing metadata) and with every `Load` poll; it
already counts the calls the server had received, so the gateway's own count starts over from it.
A call sent before the report but not yet arrived is counted by neither for a moment: the poll
corrects it within one period. A report without steps (an older server) counts its images at
`DEFAULT_STEPS` each, and so does a call that leaves its steps to the server's default.

A replica is usable unless it is down (it could not be reached: connection refused, reset, no
answer to the poll) or not serving (its `Load` says the pipeline is loading or the server drains).
A down replica is tried again after `DOWN_RETRY_SECONDS` even with no poll to say it came back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from services.common.loadreport import Load

DOWN_RETRY_SECONDS = 2.0
DEFAULT_STEPS = 50  # the model servers' default_steps: the estimate when a number is missing


def weight(images: int, steps: int) -> int:
    """A call's work: its images times its steps (0 steps: the server's default)."""
    return max(1, images) * (steps or DEFAULT_STEPS)


@dataclass
class Ticket:
    """One call the gateway has in flight to a replica."""

    epoch: int  # the report it was sent after
    steps: int  # its work: images x steps
    done: bool = False


class ReplicaLoad:
    def __init__(self, clock: object = time.monotonic) -> None:
        self._clock = clock
        self.reported = 0  # steps left, image by image, as last reported
        self.since_report = 0  # steps of the calls sent since then, still in flight
        self.in_flight = 0  # calls in flight, whenever sent
        self.serving = True
        self.down_since: float | None = None
        self.epoch = 0  # reports seen

    @property
    def work(self) -> int:
        return self.reported + self.since_report

    @property
    def down(self) -> bool:
        if self.down_since is None:
            return False
        return self._now() - self.down_since < DOWN_RETRY_SECONDS

    @property
    def usable(self) -> bool:
        return self.serving and not self.down

    def sent(self, steps: int) -> Ticket:
        """A call of `steps` work (`weight(images, steps)`) went to the replica."""
        self.since_report += steps
        self.in_flight += 1
        return Ticket(self.epoch, steps)

    def ended(self, ticket: Ticket) -> None:
        """The call answered or failed (idempotent: a stream may end twice)."""
        if ticket.done:
            return
        ticket.done = True
        self.in_flight -= 1
        if ticket.epoch == self.epoch:
            self.since_report = max(0, self.since_report - ticket.steps)

    def report(self, load: Load, serving: bool | None = None) -> None:
        """A trailer's or a poll's numbers (a poll also says whether it serves)."""
        self.reported = load.steps if load.steps is not None else load.images * DEFAULT_STEPS
        self.since_report = 0
        self.epoch += 1
        self.down_since = None
        if serving is not None:
            self.serving = serving

    def unreachable(self) -> None:
        """A connection to it failed: skip it until it answers again."""
        if self.down_since is None or not self.down:
            self.down_since = self._now()

    def _now(self) -> float:
        return float(self._clock())  # type: ignore[operator]
