"""The bucket, through the official `minio` SDK, with S3 failures turned into statuses.

The SDK is blocking: every call runs on this store's own thread pool, so a slow S3 never stalls the
event loop and the pool size bounds the connections. No broken state is cached: when S3 cannot be
reached the call answers UNAVAILABLE "object storage unreachable at <endpoint>", the bucket is
checked (and created if missing) again before the next write, and that next call succeeds as soon
as S3 is back, without a restart.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import io
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, BinaryIO, Protocol, TypeVar, cast

import certifi
import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError
from minio.helpers import MIN_PART_SIZE

from services.common import tracing
from services.common.errors import FailedPrecondition, NotFound, ServiceError, Unavailable
from services.storage.settings import StorageSettings

log = logging.getLogger("imagemesh.storage.s3")

T = TypeVar("T")

_MISSING_KEY = {"NoSuchKey", "NoSuchObject", "NotFound"}
_CREDENTIALS = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}


class Readable(Protocol):
    """What the SDK reads an upload from: `read(n)` returning up to n bytes, b"" at the end."""

    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    content_type: str
    etag: str


class ObjectStore:
    """One bucket on one S3 endpoint."""

    def __init__(self, settings: StorageSettings) -> None:
        self.endpoint = settings.s3_endpoint
        self.bucket = settings.bucket
        self._region = settings.region
        self._part_size = settings.part_size_bytes
        self._executor = ThreadPoolExecutor(settings.s3_workers, thread_name_prefix="s3")
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(
                connect=settings.s3_connect_timeout_seconds,
                read=settings.s3_read_timeout_seconds,
            ),
            maxsize=settings.s3_workers,
            cert_reqs="CERT_REQUIRED",
            ca_certs=certifi.where(),
            retries=urllib3.Retry(
                total=settings.s3_retries,
                backoff_factor=0.1,
                status_forcelist=[500, 502, 503, 504],
            ),
        )
        self._client = Minio(
            settings.s3_endpoint,
            access_key=settings.access_key.get_secret_value(),
            secret_key=settings.secret_key.get_secret_value(),
            secure=settings.secure,
            region=settings.region,
            http_client=http,
        )
        # Presigning is computed locally (the region is set), so a client for the public host
        # never connects anywhere.
        self._presigner = (
            Minio(
                settings.presign_endpoint,
                access_key=settings.access_key.get_secret_value(),
                secret_key=settings.secret_key.get_secret_value(),
                secure=settings.presign_secure,
                region=settings.region,
            )
            if settings.presign_endpoint
            else self._client
        )
        self._bucket_ready = False

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Runs a blocking SDK call on the pool, keeping the request id for its log lines."""
        context = contextvars.copy_context()
        call = functools.partial(context.run, fn, *args, **kwargs)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, call)
        except ServiceError:
            raise
        except S3Error as exc:
            raise self._s3_error(exc) from exc
        except (ServerError, InvalidResponseError) as exc:
            self._bucket_ready = False
            raise Unavailable(
                f"object storage at {self.endpoint} failed: {_first_line(exc)}; retry later"
            ) from exc
        except (urllib3.exceptions.HTTPError, OSError, MinioException) as exc:
            # Connection refused, DNS, timeouts: S3 may come back empty (an in-memory server) or
            # the bucket may have gone; check it again before the next write.
            self._bucket_ready = False
            log.warning("object storage unreachable at %s: %s", self.endpoint, _first_line(exc))
            raise Unavailable(f"object storage unreachable at {self.endpoint}") from exc

    def _s3_error(self, exc: S3Error) -> ServiceError:
        if exc.code in _MISSING_KEY:
            return NotFound(f"key: no object {exc.object_name!r} in bucket {self.bucket!r}")
        if exc.code == "NoSuchBucket":
            self._bucket_ready = False
            return Unavailable(f"bucket {self.bucket!r} is missing at {self.endpoint}; retry")
        if exc.code in _CREDENTIALS:
            return Unavailable(
                f"object storage at {self.endpoint} refused our credentials ({exc.code}); "
                "check STORAGE_ACCESS_KEY / STORAGE_SECRET_KEY"
            )
        return Unavailable(f"object storage at {self.endpoint} answered {exc.code}: {exc.message}")

    async def ensure_bucket(self) -> None:
        """Creates the bucket when it is missing; cheap once it is known to exist."""
        if self._bucket_ready:
            return
        if not await self._call(self._client.bucket_exists, self.bucket):
            try:
                await self._call(self._client.make_bucket, self.bucket, self._region)
                log.info("created bucket %s at %s", self.bucket, self.endpoint)
            except Unavailable:
                # Another replica may have created it between our check and our call.
                if not await self._call(self._client.bucket_exists, self.bucket):
                    raise
        self._bucket_ready = True

    async def put(
        self, key: str, data: Readable, length: int, content_type: str, metadata: dict[str, str]
    ) -> str:
        """Uploads `length` bytes and returns the etag.

        A known length goes up in one PUT (the bytes are in memory already; a multipart upload
        would add three requests and take about twice as long). Length -1 streams until EOF in
        parts of `part_size_bytes`, several in flight, and aborts the upload if the reader fails.
        """
        await self.ensure_bucket()
        with tracing.span("upload to S3", **{"imagemesh.bytes": length}):
            result = await self._call(
                self._client.put_object,
                self.bucket,
                key,
                cast(BinaryIO, data),
                length,
                content_type=content_type,
                metadata=metadata,
                part_size=self._part_size if length < 0 else max(length, MIN_PART_SIZE),
            )
        return str(result.etag or "").strip('"')

    async def put_bytes(
        self, key: str, data: bytes, content_type: str, metadata: dict[str, str]
    ) -> str:
        return await self.put(key, io.BytesIO(data), len(data), content_type, metadata)

    async def stat(self, key: str) -> ObjectInfo:
        info = await self._call(self._client.stat_object, self.bucket, key)
        return ObjectInfo(
            key=key,
            size=int(info.size or 0),
            content_type=info.content_type or "application/octet-stream",
            etag=str(info.etag or "").strip('"'),
        )

    async def get(self, key: str, max_bytes: int) -> tuple[bytes, ObjectInfo]:
        info = await self.stat(key)
        if info.size > max_bytes:
            raise FailedPrecondition(
                f"key: {key!r} is {info.size} bytes, over the {max_bytes}-byte message limit; "
                "download it through its link (Presign) instead"
            )
        return await self._call(self._read, key), info

    def _read(self, key: str) -> bytes:
        response = self._client.get_object(self.bucket, key)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def presign_get(
        self, key: str, expires_seconds: int, request_date: datetime | None = None
    ) -> str:
        """A presigned GET. Computed locally (the region is configured): no call to S3.
        `request_date` (default now) signs it as of that time: the same date and expiry give
        the same signature, which is how a link given back is checked (services/storage/links)."""
        return self._presigner.presigned_get_object(
            self.bucket, key, expires=timedelta(seconds=expires_seconds), request_date=request_date
        )

    async def delete(self, keys: list[str]) -> int:
        """Removes the keys; returns how many S3 reported no error for."""
        errors = await self._call(self._delete, keys)
        for error in errors:
            log.warning("delete %s failed: %s %s", error.name, error.code, error.message)
        return len(keys) - len(errors)

    def _delete(self, keys: list[str]) -> list[Any]:
        # remove_objects is lazy: the request is sent while the errors are iterated.
        return list(self._client.remove_objects(self.bucket, [DeleteObject(k) for k in keys]))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
