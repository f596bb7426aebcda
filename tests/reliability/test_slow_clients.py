"""Slow clients against a real gateway process (issue 19 section 2): real sockets that send a
request a byte at a time, or nothing at all, must not keep a connection or a request slot.

The gateway here has short limits (a 2 s head timer, 1 s body idle, 4 s whole body, 4
connections at once), so the tests wait seconds, not the defaults' tens of seconds. The client
trickles slower than the limits allow (the issue's "one byte every 20 s", scaled to them) and
must be answered 408 and cut off; a request that is not slow still succeeds beside them.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.mesh import Mesh
from tests.support.processes import ServiceProcess
from tests.support.waiting import wait_until

LIMITS = {
    "GATEWAY_HEADER_TIMEOUT_SECONDS": "2",
    "GATEWAY_BODY_IDLE_SECONDS": "1",
    "GATEWAY_BODY_TIMEOUT_SECONDS": "4",
    "GATEWAY_LIMIT_CONCURRENCY": "4",
}
# A gap between two bytes longer than the idle limit, shorter than the socket's read timeout.
TRICKLE_GAP_SECONDS = 3.0
READ_CEILING_SECONDS = 60.0


@pytest.fixture(scope="module")
def gateway(mesh: Mesh) -> Iterator[tuple[ServiceProcess, int]]:
    process, url = mesh.another_gateway("slow-clients-gateway", LIMITS)
    yield process, int(url.rsplit(":", 1)[1])
    process.stop()


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=READ_CEILING_SECONDS)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _answer(raw: bytes) -> tuple[int, dict[str, str], dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return status, headers, json.loads(body) if body else {}


def _healthz(port: int) -> int:
    return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code


def test_a_request_head_sent_a_byte_at_a_time_is_cut_off(gateway: tuple[ServiceProcess, int]):
    _, port = gateway
    sock = _connect(port)
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    answer = b""
    try:
        for byte in head:
            sock.sendall(bytes([byte]))
            time.sleep(TRICKLE_GAP_SECONDS / 6)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server hung up mid-head, as it should
    answer = _read_all(sock)
    sock.close()
    status, headers, body = _answer(answer)
    assert status == 408, answer
    assert headers["connection"] == "close"
    assert "did not arrive within 2 s" in body["message"]


def test_a_body_that_stalls_is_answered_408_and_the_connection_closed(
    gateway: tuple[ServiceProcess, int],
):
    _, port = gateway
    sock = _connect(port)
    body = json.dumps({"prompt": "a cat", "size": "64x64", "num_inference_steps": 2}).encode()
    sock.sendall(
        b"POST /v1/images/generations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body[:1]
    )
    sent = 1
    try:
        while sent < len(body):  # one byte per gap: slower than the idle limit
            time.sleep(TRICKLE_GAP_SECONDS)
            sock.sendall(body[sent : sent + 1])
            sent += 1
    except (BrokenPipeError, ConnectionResetError):
        pass
    answer = _read_all(sock)
    sock.close()
    status, headers, envelope = _answer(answer)
    assert status == 408, answer
    assert "stalled: no data for 1 s" in envelope["message"]
    assert headers["connection"] == "close"
    assert envelope["request_id"] == headers["x-request-id"]
    assert sent < len(body)  # cut off before the client finished


def test_a_body_that_trickles_past_the_whole_body_limit_is_cut_off(
    gateway: tuple[ServiceProcess, int],
):
    """Bytes inside the idle limit each, but the whole body late: 408 all the same."""
    _, port = gateway
    sock = _connect(port)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000\r\n\r\n"
    )
    try:
        for _ in range(int(READ_CEILING_SECONDS / 0.25)):
            sock.sendall(b" ")
            time.sleep(0.25)
    except (BrokenPipeError, ConnectionResetError):
        pass
    status, _, envelope = _answer(_read_all(sock))
    sock.close()
    assert status == 408
    assert "did not arrive within 4 s" in envelope["message"]


def test_silent_connections_do_not_keep_the_slots(gateway: tuple[ServiceProcess, int]):
    """Connections that send nothing fill the concurrency limit only until their head timer
    fires: then they are closed and requests are served again."""
    _, port = gateway
    assert _healthz(port) == 200
    silent = [_connect(port) for _ in range(int(LIMITS["GATEWAY_LIMIT_CONCURRENCY"]))]
    try:
        assert _healthz(port) == 503  # uvicorn's limit_concurrency: the slots are taken
        for sock in silent:
            assert _answer(_read_all(sock))[0] == 408
        wait_until(lambda: _healthz(port) == 200, 30, "a slot free again")
    finally:
        for sock in silent:
            sock.close()
