"""The gateway's routing pieces without gRPC: the picker over fake loads, a replica's work
accounting, the failover rule, target parsing and re-resolution."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

import grpc
import pytest

from services.common.loadreport import Load, Pace
from services.gateway.routing import load as load_module
from services.gateway.routing.failover import Verdict, verdict
from services.gateway.routing.load import ReplicaLoad, Typical, weight
from services.gateway.routing.picker import LeastWork, RoundRobin
from services.gateway.routing.replicas import ReplicaSet, parse_targets

UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED


@dataclass
class Fake:
    name: str
    work: float


def test_least_work_takes_the_idle_replica_of_two_every_time() -> None:
    picker = LeastWork(random.Random(1))
    busy, idle = Fake("busy", 5), Fake("idle", 0)
    assert {picker.choose([busy, idle]).name for _ in range(50)} == {"idle"}


def test_least_work_of_many_never_takes_the_most_loaded_and_favours_the_least() -> None:
    picker = LeastWork(random.Random(2))
    replicas = [Fake(str(work), work) for work in (0, 3, 6, 9)]
    counts = Counter(picker.choose(replicas).name for _ in range(4000))
    assert "9" not in counts  # it loses every pair it is drawn in
    assert counts["0"] > counts["3"] > counts["6"] > 0  # wins 3, 2, 1 of the 6 pairs


def test_least_work_spreads_ties() -> None:
    picker = LeastWork(random.Random(3))
    counts = Counter(picker.choose([Fake("a", 1), Fake("b", 1)]).name for _ in range(400))
    assert counts["a"] > 100 and counts["b"] > 100


def test_round_robin_ignores_the_work() -> None:
    picker = RoundRobin()
    replicas = [Fake("busy", 9), Fake("idle", 0)]
    assert [picker.choose(replicas).name for _ in range(4)] == ["busy", "idle"] * 2


def test_work_is_the_steps_reported_plus_the_calls_sent_since() -> None:
    load = ReplicaLoad()
    first = load.sent(weight(images=2, steps=20))
    assert load.work == 40
    load.report(Load(queued=3, running=1, steps=70))  # the server has counted the call by now
    assert load.work == 70
    second = load.sent(weight(images=1, steps=2))
    load.ended(first)  # sent before the report: the report counted it, nothing to take off
    assert load.work == 72
    load.ended(second)
    load.ended(second)  # a stream may end twice: counted once
    assert load.work == 70 and load.in_flight == 0


def test_a_replica_is_weighed_by_the_time_it_needs_at_its_own_pace() -> None:
    slow, fast = ReplicaLoad(), ReplicaLoad()
    slow.report(Load(0, 1, steps=10, ms=5000, pace=Pace(step_ms=500, call_ms=0)))
    fast.report(Load(2, 1, steps=30, ms=1500, pace=Pace(step_ms=50, call_ms=0)))
    assert (slow.work, fast.work) == (5000, 1500)
    picker = LeastWork(random.Random(4))
    assert {picker.choose([slow, fast]) is fast for _ in range(20)} == {True}  # more steps


def test_a_call_sent_since_the_report_costs_a_call_and_its_steps_at_the_replica_pace() -> None:
    load = ReplicaLoad()
    load.report(Load(0, 0, steps=0, ms=0, pace=Pace(step_ms=200, call_ms=470)))
    short = load.sent(weight(images=1, steps=2))
    assert load.work == 470 + 2 * 200
    load.sent(weight(images=2, steps=50))
    assert load.work == 470 + 400 + 470 + 2 * 50 * 200
    load.ended(short)
    assert load.work == 470 + 2 * 50 * 200


def test_a_replica_that_has_timed_no_call_is_weighed_at_the_pace_of_its_backend() -> None:
    typical = Typical()
    timed, fresh = ReplicaLoad(typical=typical), ReplicaLoad(typical=typical)
    fresh.report(Load(0, 1, steps=50))  # just started: no pace of its own yet
    assert fresh.work == 50  # nobody has a pace: steps
    timed.report(Load(1, 1, steps=4, ms=1700, pace=Pace(step_ms=200, call_ms=470)))
    assert fresh.work == 50 * 200  # the same milliseconds as the timed replica's
    assert timed.work == 1700


def test_a_number_left_out_is_estimated_at_the_default_steps() -> None:
    load = ReplicaLoad()
    load.report(Load(queued=1, running=1))  # an older server: images only
    assert load.work == 2 * load_module.DEFAULT_STEPS
    load.sent(weight(images=0, steps=0))  # n and steps left to the server
    assert load.work == 3 * load_module.DEFAULT_STEPS


def test_a_replica_that_could_not_be_reached_is_skipped_until_it_answers_or_time_passes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100.0]
    load = ReplicaLoad(clock=lambda: now[0])
    load.unreachable()
    assert not load.usable
    now[0] += load_module.DOWN_RETRY_SECONDS + 0.1
    assert load.usable  # tried again even without a poll
    load.unreachable()
    assert not load.usable
    load.report(Load(0, 0), serving=True)
    assert load.usable
    load.report(Load(0, 0), serving=False)  # draining or loading
    assert not load.usable


@pytest.mark.parametrize(
    ("code", "accepted", "not_started", "relayed", "expected"),
    [
        (UNAVAILABLE, False, False, False, Verdict.ELSEWHERE),  # connection refused
        (UNAVAILABLE, True, True, False, Verdict.ELSEWHERE),  # still loading
        (EXHAUSTED, True, True, False, Verdict.ELSEWHERE),  # queue full
        (EXHAUSTED, True, False, False, Verdict.ANSWER),  # out of memory while running
        (UNAVAILABLE, True, False, False, Verdict.IF_GONE),  # connection lost mid-call
        (UNAVAILABLE, False, False, True, Verdict.ANSWER),  # a stream event came back
        (grpc.StatusCode.DEADLINE_EXCEEDED, True, False, False, Verdict.ANSWER),
        (grpc.StatusCode.INVALID_ARGUMENT, True, False, False, Verdict.ANSWER),
        (grpc.StatusCode.INTERNAL, True, True, False, Verdict.ANSWER),
    ],
)
def test_failover_only_when_no_job_can_have_run(
    code: grpc.StatusCode, accepted: bool, not_started: bool, relayed: bool, expected: Verdict
) -> None:
    assert verdict(code, accepted, not_started, relayed) is expected


def test_targets_parse_and_name_a_bad_entry() -> None:
    entries = parse_targets("10.0.0.1:50051, dns:///qwen-image:50051")
    assert [(e.text, e.host, e.port) for e in entries] == [
        ("10.0.0.1:50051", "", 0),
        ("dns:///qwen-image:50051", "qwen-image", 50051),
    ]
    for bad in ("dns:///qwen-image", "dns:///:1", "dns:///a:99999", " , "):
        with pytest.raises(ValueError):
            parse_targets(bad)


class FakeChannel:
    def __init__(self, address: str) -> None:
        self.address = address
        self.closed = False

    async def close(self, grace: float | None = None) -> None:
        self.closed = True


async def test_dns_targets_are_resolved_again_adding_and_dropping_replicas() -> None:
    answers: dict[str, list[str] | OSError] = {"qwen-image": ["10.0.0.1:1", "10.0.0.2:1"]}

    async def resolve(host: str, port: int) -> list[str]:
        answer = answers[host]
        if isinstance(answer, OSError):
            raise answer
        return answer

    channels: list[FakeChannel] = []

    def connect(address: str) -> FakeChannel:
        channels.append(FakeChannel(address))
        return channels[-1]

    replicas = ReplicaSet("qwen_image", "dns:///qwen-image:1,127.0.0.1:2", connect, resolve)  # type: ignore[arg-type]
    # Before the first resolution the name is its own replica (gRPC resolves it).
    assert sorted(r.address for r in replicas.replicas) == ["127.0.0.1:2", "dns:///qwen-image:1"]
    await replicas.refresh()
    assert sorted(r.address for r in replicas.replicas) == [
        "10.0.0.1:1",
        "10.0.0.2:1",
        "127.0.0.1:2",
    ]
    kept = next(r for r in replicas.replicas if r.address == "10.0.0.2:1")
    answers["qwen-image"] = ["10.0.0.2:1", "10.0.0.3:1"]  # a pod went, another came
    await replicas.refresh()
    assert sorted(r.address for r in replicas.replicas) == [
        "10.0.0.2:1",
        "10.0.0.3:1",
        "127.0.0.1:2",
    ]
    assert kept in replicas.replicas  # its channel and load survive a refresh
    answers["qwen-image"] = OSError("no such host")  # the resolver fails: keep what we have
    await replicas.refresh()
    assert sorted(r.address for r in replicas.replicas) == [
        "10.0.0.2:1",
        "10.0.0.3:1",
        "127.0.0.1:2",
    ]
    await replicas.close()
    gone = {c.address: c.closed for c in channels}
    assert gone["dns:///qwen-image:1"] and gone["10.0.0.1:1"] and gone["10.0.0.3:1"]
