"""Whether a failed call may go to another replica: only when no job can have run for it.

A model server runs a job once it is queued, and its answer has no other way back than the call
that carried it; so the rule is about what the failure proves:

- `ELSEWHERE`: nothing started. The call never reached a handler (UNAVAILABLE and none of the
  server's initial metadata, which its interceptor sends before anything else: connection
  refused, a server that stopped listening to drain), or the server refused it before queueing
  and said so (`imagemesh-not-started`: the pipeline still loading, the queue full).
- `IF_GONE`: the server took the call and the connection broke (UNAVAILABLE after its initial
  metadata). If the replica is gone (its `Load` does not answer), the job died with it and the
  call goes elsewhere, once per replica: it is run to the end once. If the replica still answers,
  the job may be running there, so the error is the answer (a 503), never a second run.
- `ANSWER`: anything else (a job that failed, a deadline, bad input), and any failure of a
  stream after an event came back from the server: the client may have seen it, so a stream is
  never started over.
"""

from __future__ import annotations

import enum

import grpc


class Verdict(enum.Enum):
    ELSEWHERE = "elsewhere"
    IF_GONE = "if_gone"
    ANSWER = "answer"


RETRYABLE_REFUSALS = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)


def verdict(
    code: grpc.StatusCode, accepted: bool, not_started: bool, relayed: bool = False
) -> Verdict:
    """`accepted`: the server's initial metadata came back; `not_started`: its trailer says the
    job was refused before the queue; `relayed`: a stream event came back already."""
    if relayed:
        return Verdict.ANSWER
    if not_started and code in RETRYABLE_REFUSALS:
        return Verdict.ELSEWHERE
    if code == grpc.StatusCode.UNAVAILABLE:
        return Verdict.IF_GONE if accepted else Verdict.ELSEWHERE
    return Verdict.ANSWER
