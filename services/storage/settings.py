"""Settings of the storage service, read from `STORAGE_*` environment variables.

The defaults talk to the S3 server that `make run` starts on 127.0.0.1:9000 with the local
credentials of `scripts/s3_server.py`; any S3 endpoint works by setting these variables.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from services.common.errors import InvalidArgument
from services.common.fetch import AllowNetworks
from services.common.settings import MIB, ServerSettings
from services.storage.keys import check_prefix

# S3 caps a presigned URL at 7 days.
MAX_PRESIGN_SECONDS = 7 * 24 * 3600


class StorageSettings(ServerSettings):
    model_config = SettingsConfigDict(env_prefix="STORAGE_")

    listen: str = "127.0.0.1:50054"
    metrics_listen: str = "127.0.0.1:9154"

    # Object storage: host:port, without a scheme (`secure` picks https).
    s3_endpoint: str = "127.0.0.1:9000"
    access_key: SecretStr = Field(default=SecretStr("imagemesh"), repr=False)
    secret_key: SecretStr = Field(default=SecretStr("imagemesh-secret"), repr=False)
    secure: bool = False
    region: str = "us-east-1"
    bucket: str = Field(default="imagemesh", min_length=3, max_length=63)
    # Keys are <upload_dir or the request's prefix>/<YYYY-MM-DD>/<unix-ms>/<name> (seed 002).
    upload_dir: str = "imagemesh"
    # When set, links are <public_base_url>/<key> (a public bucket or a CDN in front of it)
    # instead of presigned GETs.
    public_base_url: str = ""
    # Presigned links are signed for this host (host:port) instead of s3_endpoint: the public
    # name clients reach the same S3 by (S3 checks the signature against the Host they send),
    # while uploads keep going to s3_endpoint inside the network. Signing needs no call to it.
    presign_endpoint: str = ""
    presign_secure: bool = True
    presign_expiry_seconds: int = Field(default=24 * 3600, ge=1, le=MAX_PRESIGN_SECONDS)
    # How long to wait for S3 before answering UNAVAILABLE, and how often to retry a failed
    # connection (urllib3 retries, 0.1 s backoff doubling).
    s3_connect_timeout_seconds: float = Field(default=3.0, gt=0)
    s3_read_timeout_seconds: float = Field(default=60.0, gt=0)
    s3_retries: int = Field(default=2, ge=0)
    # Blocking S3 calls run on this many threads (and as many pooled connections).
    s3_workers: int = Field(default=16, ge=1)
    # PutStream uploads in parts of this size (S3's minimum is 5 MiB) and refuses objects larger
    # than max_object_bytes; a client that sends nothing for stream_idle_timeout_seconds is cut off.
    part_size_bytes: int = Field(default=8 * MIB, ge=5 * MIB)
    max_object_bytes: int = Field(default=1024 * MIB, ge=1)
    stream_idle_timeout_seconds: float = Field(default=60.0, gt=0)

    # Fetch: download a remote image into the bucket.
    fetch_max_bytes: int = Field(default=32 * MIB, ge=1)
    fetch_timeout_seconds: float = Field(default=30.0, gt=0)
    fetch_max_redirects: int = Field(default=5, ge=0)
    # Fetch refuses hosts that resolve to loopback, private, link-local or reserved addresses
    # (no caller may reach internal hosts through it) unless the address is in one of these
    # networks, e.g. STORAGE_FETCH_ALLOW_NETWORKS=127.0.0.0/8,10.1.0.0/16.
    fetch_allow_networks: AllowNetworks = []

    @field_validator("upload_dir")
    @classmethod
    def _clean_upload_dir(cls, value: str) -> str:
        try:
            return check_prefix(value, field="upload_dir")
        except InvalidArgument as exc:
            raise ValueError(exc.message) from exc

    @field_validator("public_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @property
    def s3_url(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.s3_endpoint}"
