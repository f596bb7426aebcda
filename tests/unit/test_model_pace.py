"""A model server's pace (ms per step of one image, ms for the rest of a call) as its calls run,
and the drain time it predicts from it, over plain job records."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from services.modelserver import pace as pace_module
from services.modelserver.pace import PaceMeter


@dataclass
class Timed:
    total_steps: int
    images: int = 1
    steps_done: int = 0
    first_step: tuple[int, float] | None = None
    last_step: tuple[int, float] | None = None


def ran(meter: PaceMeter, steps: int, step_s: float, images: int = 1, call_s: float = 0.47) -> None:
    """A finished call of `images` images, its steps timed `step_s` apart."""
    start = 100.0 + call_s / 2  # the first step ends after the encoding and one step
    job = Timed(steps, images, steps, (1, start + step_s), (steps, start + steps * step_s))
    meter.observe(call_s + steps * step_s, images, job)


def test_a_finished_call_gives_its_step_time_per_image_and_the_rest_of_the_call() -> None:
    meter = PaceMeter()
    assert meter.pace is None
    ran(meter, 50, 0.2, images=2)
    assert meter.pace is not None
    assert meter.pace.step_ms == pytest.approx(100)  # one step of the call holds two images
    assert meter.pace.call_ms == pytest.approx(470)


def test_the_pace_follows_a_change_of_speed_over_a_few_calls() -> None:
    meter = PaceMeter()
    ran(meter, 10, 0.2)
    ran(meter, 10, 0.4)
    assert meter.pace is not None
    assert meter.pace.step_ms == pytest.approx(200 + pace_module.WEIGHT * 200)
    for _ in range(20):
        ran(meter, 10, 0.4)
    assert meter.pace.step_ms == pytest.approx(400, rel=0.01)


def test_a_call_with_fewer_than_two_step_events_teaches_nothing() -> None:
    meter = PaceMeter()
    meter.observe(1.0, 1, Timed(1, 1, 1, (1, 100.5), (1, 100.5)))
    meter.observe(1.0, 1, Timed(4, 1, 0))  # no step callback at all
    assert meter.pace is None
    assert meter.remaining_ms([Timed(50)], [], 0.0) is None


def test_the_drain_time_counts_each_waiting_job_as_a_call_and_the_rest_of_the_running_one() -> None:
    meter = PaceMeter()
    ran(meter, 50, 0.2)  # 200 ms a step, 470 ms the rest
    waiting = [Timed(2), Timed(2, images=3)]
    running = Timed(50, steps_done=10)
    waiting_ms = (470 + 2 * 200) + (470 + 3 * 2 * 200)
    # 2.47 s into a 10.47 s call: 8 s left, as its 40 steps left say too.
    assert meter.remaining_ms(waiting, [running], 2.47) == pytest.approx(waiting_ms + 8000, abs=1)
    # A call running slower than predicted still has at least its steps left.
    assert meter.remaining_ms([], [running], 9.0) == 40 * 200
    assert meter.remaining_ms([], [], 0.0) == 0


def test_a_running_call_that_has_stepped_twice_is_predicted_at_its_own_step_time() -> None:
    meter = PaceMeter()
    ran(meter, 2, 0.01)  # small pictures: 10 ms a step
    big = Timed(40, steps_done=3, first_step=(1, 50.0), last_step=(3, 50.4))  # 200 ms a step
    # The rest of the call (470 ms) and 40 steps at its own 200 ms, less the second it ran.
    assert meter.remaining_ms([], [big], 1.0) == pytest.approx(470 + 40 * 200 - 1000, abs=1)
    starting = Timed(40, steps_done=1, first_step=(1, 50.0), last_step=(1, 50.0))
    # One step event: the mean pace still (470 ms + 40 x 10 ms, less 0.3 s).
    assert meter.remaining_ms([], [starting], 0.3) == pytest.approx(470 + 400 - 300, abs=1)
