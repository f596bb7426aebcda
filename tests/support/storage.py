"""Helpers for the storage tests: settings for a test bucket, a direct S3 view, test images."""

from __future__ import annotations

import io
import random
from typing import Any

from minio import Minio
from PIL import Image

from services.storage.settings import StorageSettings


def storage_settings(s3: Any, bucket: str, **overrides: Any) -> StorageSettings:
    """Settings for an in-process storage service on port 0 against `s3`'s `bucket`."""
    values: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "metrics_listen": "",
        "s3_endpoint": s3.endpoint,
        "access_key": s3.access_key,
        "secret_key": s3.secret_key,
        "bucket": bucket,
        "shutdown_grace_seconds": 5,
    }
    values.update(overrides)
    return StorageSettings(**values)


def minio_client(s3: Any) -> Minio:
    """The bucket seen directly, not through the service: what really got written."""
    return Minio(
        s3.endpoint,
        access_key=s3.access_key,
        secret_key=s3.secret_key,
        secure=False,
        region="us-east-1",
    )


def bucket_keys(client: Minio, bucket: str) -> set[str]:
    if not client.bucket_exists(bucket):
        return set()
    return {str(o.object_name) for o in client.list_objects(bucket, recursive=True)}


def read_object(client: Minio, bucket: str, key: str) -> bytes:
    response = client.get_object(bucket, key)
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()


def png_bytes(width: int = 16, height: int = 16, seed: int = 0, fmt: str = "PNG") -> bytes:
    """A real image of noise (noise does not compress: size grows with width x height)."""
    rng = random.Random(seed)
    image = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()
