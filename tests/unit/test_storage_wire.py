"""The storage service's own decoding of Put / PutStream messages reads what protobuf reads."""

from __future__ import annotations

import pytest
from google.protobuf.message import DecodeError
from imagemesh.v1 import storage_pb2

from services.storage.wire import PutFields, put_request, put_stream_request


@pytest.mark.parametrize(
    "message",
    [
        storage_pb2.PutRequest(data=b"\x89PNG" * 1000, content_type="image/png"),
        storage_pb2.PutRequest(data=b"x", content_type="image/webp", name="été.webp", prefix="a/b"),
        storage_pb2.PutRequest(content_type="image/png"),  # no data: the uploader refuses it
    ],
)
def test_a_put_reads_like_the_generated_decoder(message: storage_pb2.PutRequest) -> None:
    decoded = put_request(message.SerializeToString())
    assert isinstance(decoded, PutFields)
    assert (decoded.data, decoded.content_type, decoded.name, decoded.prefix) == (
        message.data,
        message.content_type,
        message.name,
        message.prefix,
    )


def test_unknown_fields_are_skipped_and_field_order_does_not_matter() -> None:
    # field 9 varint, field 10 fixed64, then prefix (4) before data (1)
    raw = b"\x48\x96\x01" + b"\x51" + b"\0" * 8 + b"\x22\x01p" + b"\x0a\x03abc"
    decoded = put_request(raw)
    assert isinstance(decoded, PutFields) and (decoded.data, decoded.prefix) == (b"abc", "p")


def test_what_it_does_not_read_goes_to_protobuf() -> None:
    twice = b"\x0a\x01a\x0a\x01b"  # data seen twice: protobuf keeps the last
    assert put_request(twice).data == b"b"
    with pytest.raises(DecodeError):
        put_request(b"\x0a\x05ab")  # truncated
    with pytest.raises(DecodeError):
        put_request(b"\x12\x02\xff\xfe")  # content_type not UTF-8


def test_a_stream_chunk_is_its_bytes_and_a_header_the_message() -> None:
    chunk = storage_pb2.PutStreamRequest(chunk=b"\x00" * 300)
    assert put_stream_request(chunk.SerializeToString()) == b"\x00" * 300
    header = storage_pb2.PutStreamRequest(
        header=storage_pb2.PutHeader(content_type="image/png", size=3)
    )
    decoded = put_stream_request(header.SerializeToString())
    assert isinstance(decoded, storage_pb2.PutStreamRequest)
    assert decoded.WhichOneof("part") == "header" and decoded.header.size == 3
    assert put_stream_request(b"") == storage_pb2.PutStreamRequest()
