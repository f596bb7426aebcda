"""Decoding the two upload messages (Put, PutStream) with one copy of their bytes, not three.

The generated decoder copies an upload twice on top of gRPC's own copy: parsing `PutRequest`
copies `data` into the message, and reading `request.data` copies it out again (about 1-6 ms per
8 MB here, page faults included, a large part of what a put through the service cost over a put
straight to S3). The fields of these two messages are read here from the wire format instead:
`data` / `chunk` is one slice of the received bytes. Anything unusual (a field seen twice, a
group, a header message, malformed bytes) is left to the generated decoder, so what is accepted
or refused stays exactly what protobuf says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
from imagemesh.v1 import storage_pb2, storage_pb2_grpc

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


@dataclass(frozen=True)
class PutFields:
    """A decoded `PutRequest` (the same attribute names)."""

    data: bytes
    content_type: str = ""
    name: str = ""
    prefix: str = ""


def _varint(raw: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = raw[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(raw: bytes) -> dict[int, bytes]:
    """The length-delimited fields of a message (number -> bytes); other wire types skipped.
    ValueError / IndexError for what this reader leaves to protobuf."""
    fields: dict[int, bytes] = {}
    at, end = 0, len(raw)
    while at < end:
        tag, at = _varint(raw, at)
        number, kind = tag >> 3, tag & 7
        if kind == _LEN:
            length, at = _varint(raw, at)
            if at + length > end or number in fields:
                raise ValueError("truncated, or a field seen twice")
            fields[number] = raw[at : at + length]
            at += length
        elif kind == _VARINT:
            _, at = _varint(raw, at)
        elif kind in (_I64, _I32):
            at += 8 if kind == _I64 else 4
        else:
            raise ValueError("a group")
    if at != end:
        raise ValueError("truncated")
    return fields


def put_request(raw: bytes) -> PutFields | storage_pb2.PutRequest:
    try:
        fields = _fields(raw)
        return PutFields(
            data=fields.get(1, b""),
            content_type=fields.get(2, b"").decode(),
            name=fields.get(3, b"").decode(),
            prefix=fields.get(4, b"").decode(),
        )
    except (ValueError, IndexError):
        return storage_pb2.PutRequest.FromString(raw)


def put_stream_request(raw: bytes) -> bytes | storage_pb2.PutStreamRequest:
    """A chunk message's bytes; any other message (the header) as the generated class."""
    try:
        fields = _fields(raw)
    except (ValueError, IndexError):
        fields = {}
    if fields.keys() == {2}:
        return fields[2]
    return storage_pb2.PutStreamRequest.FromString(raw)


class _Captured:
    """Stands in for a server to take the generated method table."""

    name = ""
    handlers: dict[str, Any] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        return None

    def add_registered_method_handlers(self, name: str, handlers: dict[str, Any]) -> None:
        self.name, self.handlers = name, dict(handlers)


def add_storage_servicer(servicer: Any, server: grpc.aio.Server) -> None:
    """`add_StorageServicer_to_server`, with Put and PutStream decoded here."""
    captured = _Captured()
    storage_pb2_grpc.add_StorageServicer_to_server(servicer, captured)
    handlers = captured.handlers
    handlers["Put"] = handlers["Put"]._replace(request_deserializer=put_request)
    handlers["PutStream"] = handlers["PutStream"]._replace(request_deserializer=put_stream_request)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(captured.name, handlers),)
    )
    server.add_registered_method_handlers(captured.name, handlers)
