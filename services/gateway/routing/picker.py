"""Which replica takes a call: least outstanding work by power of two choices, or round-robin.

Plain classes over anything with a `work` number (milliseconds, `load.py`), so they are tested with fake loads. Power of
two choices draws two distinct replicas at random and takes the one with less work (a tie goes to
either): close to "the least loaded of all" without every gateway rushing to the same replica
between two reports. With two replicas it is exactly "the less loaded one". Round-robin is kept
for comparison (`GATEWAY_ROUTING_POLICY=round_robin`, bench/routing.py).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Literal, Protocol, TypeVar

Policy = Literal["least_work", "round_robin"]


class Weighed(Protocol):
    @property
    def work(self) -> float: ...


C = TypeVar("C", bound=Weighed)


class Picker(Protocol):
    def choose(self, candidates: Sequence[C]) -> C: ...


class LeastWork:
    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def choose(self, candidates: Sequence[C]) -> C:
        if len(candidates) == 1:
            return candidates[0]
        first, second = self._rng.sample(list(candidates), 2)
        return second if second.work < first.work else first


class RoundRobin:
    def __init__(self) -> None:
        self._next = 0

    def choose(self, candidates: Sequence[C]) -> C:
        chosen = candidates[self._next % len(candidates)]
        self._next += 1
        return chosen


def picker(policy: Policy, rng: random.Random | None = None) -> Picker:
    return LeastWork(rng) if policy == "least_work" else RoundRobin()
