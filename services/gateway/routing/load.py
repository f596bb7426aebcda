"""What the gateway knows of one replica's work, without gRPC.

Work is the time a replica needs for what it holds, in milliseconds: what it last reported left
(its prediction for its queued jobs and the rest of its running call) + the calls the gateway
sent it since that report and that are still in flight, each at the replica's own pace (ms for
the rest of a call + ms per step of one image x its steps, image by image). So a 50-step image
weighs about 25 times a 2-step one plus the fixed cost of a call, and a replica twice as slow
weighs its steps twice. A report comes with every answer (its trailing metadata) and with every
`Load` poll; it already counts the calls the server had received, so the gateway's own count
starts over from it. A call sent before the report but not yet arrived is counted by neither for
a moment: the poll corrects it within one period.

A replica that has not timed a call yet (just started) is weighed at the pace its backend's
replicas last reported (`Typical`); before any replica has, every replica's work is its steps
(1 ms a step), which is also what an older server's report without a pace gives. A report without
steps counts its images at `DEFAULT_STEPS` each, and so does a call that leaves its steps to the
server's default.

A replica is usable unless it is down (it could not be reached: connection refused, reset, no
answer to the poll) or not serving (its `Load` says the pipeline is loading or the server drains).
A down replica is tried again after `DOWN_RETRY_SECONDS` even with no poll to say it came back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from services.common.loadreport import Load, Pace

DOWN_RETRY_SECONDS = 2.0
DEFAULT_STEPS = 50  # the model servers' default_steps: the estimate when a number is missing
STEPS_ONLY = Pace(step_ms=1.0, call_ms=0.0)  # no pace known anywhere: work counts steps


def weight(images: int, steps: int) -> int:
    """A call's work: its images times its steps (0 steps: the server's default)."""
    return max(1, images) * (steps or DEFAULT_STEPS)


class Typical:
    """The pace one backend's replicas last reported, shared by them: the estimate for a
    replica that has not timed a call yet."""

    def __init__(self) -> None:
        self.pace: Pace | None = None


@dataclass
class Ticket:
    """One call the gateway has in flight to a replica."""

    epoch: int  # the report it was sent after
    steps: int  # its work: images x steps
    done: bool = False


class ReplicaLoad:
    def __init__(self, clock: object = time.monotonic, typical: Typical | None = None) -> None:
        self._clock = clock
        self._typical = typical or Typical()
        self.reported = 0  # steps left, image by image, as last reported
        self.reported_ms: int | None = None  # the replica's own prediction, with its pace
        self.own_pace: Pace | None = None
        self.since_report = 0  # steps of the calls sent since then, still in flight
        self.calls_since_report = 0  # and how many calls they are
        self.in_flight = 0  # calls in flight, whenever sent
        self.serving = True
        self.down_since: float | None = None
        self.epoch = 0  # reports seen

    @property
    def pace(self) -> Pace:
        return self.own_pace or self._typical.pace or STEPS_ONLY

    @property
    def work(self) -> float:
        """Milliseconds of work it holds, as far as the gateway knows (see the module)."""
        pace = self.pace
        if self.own_pace is not None and self.reported_ms is not None:
            reported = float(self.reported_ms)
        else:
            reported = pace.cost(self.reported, calls=0)
        return reported + pace.cost(self.since_report, self.calls_since_report)

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
        self.calls_since_report += 1
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
            self.calls_since_report = max(0, self.calls_since_report - 1)

    def report(self, load: Load, serving: bool | None = None) -> None:
        """A trailer's or a poll's numbers (a poll also says whether it serves)."""
        self.reported = load.steps if load.steps is not None else load.images * DEFAULT_STEPS
        self.reported_ms = load.ms
        self.own_pace = load.pace
        if load.pace is not None:
            self._typical.pace = load.pace
        self.since_report = 0
        self.calls_since_report = 0
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
