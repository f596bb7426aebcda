"""`python -m services.storage` as a real process: health, reflection, draining on SIGTERM."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from imagemesh.v1 import storage_pb2, storage_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from services.common.channels import channel_options
from services.common.settings import MIB
from tests.support.ports import free_port
from tests.support.processes import ServiceProcess, grpc_serving
from tests.support.storage import minio_client, read_object
from tests.support.waiting import wait_until

BUCKET = "test-storage-process"
SERVICE = "imagemesh.v1.Storage"


class Storage:
    def __init__(self, s3_server) -> None:
        self.port, self.metrics_port = free_port(), free_port()
        self.target = f"127.0.0.1:{self.port}"
        env = {
            **s3_server.env(),
            "STORAGE_LISTEN": self.target,
            "STORAGE_METRICS_LISTEN": f"127.0.0.1:{self.metrics_port}",
            "STORAGE_BUCKET": BUCKET,
            "STORAGE_SHUTDOWN_GRACE_SECONDS": "30",
        }
        self.process = ServiceProcess.module(
            "storage", "services.storage", env=env, ready=lambda: grpc_serving(self.target, SERVICE)
        )

    def in_flight(self, method: str) -> float:
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics").text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "imagemesh_grpc_in_flight" and sample.labels["method"] == method:
                    return sample.value
        return 0.0


@pytest.fixture(scope="module")
def storage(s3_server) -> Iterator[Storage]:
    storage = Storage(s3_server)
    storage.process.start()
    yield storage
    storage.process.stop()


def test_health_answers_serving(storage: Storage) -> None:
    with grpc.insecure_channel(storage.target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", SERVICE):
            answer = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_storage_service(storage: Storage) -> None:
    with grpc.insecure_channel(storage.target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        [answer] = list(stub.ServerReflectionInfo(iter([request]), timeout=5))
    names = {s.name for s in answer.list_services_response.service}
    assert {SERVICE, "grpc.health.v1.Health"} <= names


def test_sigterm_lets_an_upload_in_progress_finish(storage: Storage, s3_server) -> None:
    """Last in this module: the process exits 0 once the upload is done."""
    data = os.urandom(12 * MIB)
    send_the_rest = threading.Event()

    def requests():
        yield storage_pb2.PutStreamRequest(
            header=storage_pb2.PutHeader(content_type="image/png", name="drain.png", size=len(data))
        )
        yield storage_pb2.PutStreamRequest(chunk=data[:MIB])
        send_the_rest.wait(30)
        for offset in range(MIB, len(data), MIB):
            yield storage_pb2.PutStreamRequest(chunk=data[offset : offset + MIB])

    with grpc.insecure_channel(storage.target, options=channel_options()) as channel:
        call = storage_pb2_grpc.StorageStub(channel).PutStream.future(requests(), timeout=60)
        method = f"/{SERVICE}/PutStream"
        wait_until(lambda: storage.in_flight(method) == 1, 10, "the upload in flight")
        storage.process.signal(signal.SIGTERM)
        # Shutting down: new calls are refused while the upload is still open.
        wait_until(lambda: not grpc_serving(storage.target), 10, "the shutdown")
        send_the_rest.set()
        stored = call.result()

    assert storage.process.proc is not None
    assert storage.process.proc.wait(timeout=30) == 0
    assert stored.size == len(data)
    assert read_object(minio_client(s3_server), BUCKET, stored.key) == data
