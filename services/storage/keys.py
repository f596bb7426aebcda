"""Object keys: `<upload_dir or prefix>/<YYYY-MM-DD>/<unix-ms>/<name>`, the layout of seed 002.

Names and prefixes come from callers, so they are checked here: a name is one path segment, a
prefix is one or more; neither may climb (`..`), start with `/`, or hold control characters. The
date is UTC, taken from the same instant as the millisecond timestamp.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import PurePosixPath

from services.common.errors import InvalidArgument
from services.storage.media_types import extension

MAX_NAME_CHARS = 255
# S3 limits a key to 1024 bytes.
MAX_KEY_BYTES = 1024


def _check_text(value: str, field: str) -> None:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidArgument(f"{field}: control characters are not allowed")
    if "\\" in value:
        raise InvalidArgument(f"{field}: {value!r} holds a backslash; use '/' between folders")


def check_name(name: str, field: str = "name") -> str:
    """One file name: no '/', no '..', not empty."""
    _check_text(name, field)
    if name == "." or ".." in name:
        raise InvalidArgument(f"{field}: {name!r} holds '..'; give a bare file name")
    if name.startswith("/"):
        raise InvalidArgument(f"{field}: {name!r} starts with '/'; give a bare file name")
    if "/" in name:
        raise InvalidArgument(
            f"{field}: {name!r} holds '/'; give a bare file name and put folders in prefix"
        )
    if len(name) > MAX_NAME_CHARS:
        raise InvalidArgument(f"{field}: longer than {MAX_NAME_CHARS} characters")
    return name


def check_prefix(prefix: str, field: str = "prefix") -> str:
    """A folder path like `users/42/edits` (a trailing '/' is dropped)."""
    _check_text(prefix, field)
    if prefix.startswith("/"):
        raise InvalidArgument(f"{field}: {prefix!r} starts with '/'; give a relative folder")
    parts = prefix.rstrip("/").split("/")
    if ".." in parts or "." in parts:
        raise InvalidArgument(f"{field}: {prefix!r} holds '..' or '.'; give a plain folder path")
    if "" in parts:
        raise InvalidArgument(f"{field}: {prefix!r} is empty or holds '//'")
    return "/".join(parts)


def check_key(key: str, field: str = "key") -> str:
    """An existing object's key, as returned by Put (any folder depth)."""
    if not key:
        raise InvalidArgument(f"{field}: required; give a key returned by Put")
    _check_text(key, field)
    if key.startswith("/") or ".." in key.split("/"):
        raise InvalidArgument(f"{field}: {key!r} must not start with '/' or hold '..'")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise InvalidArgument(f"{field}: longer than {MAX_KEY_BYTES} bytes")
    return key


def file_name(name: str, content_type: str) -> str:
    """The caller's name (checked; the type's extension added when it has none) or a random one."""
    if not name:
        return uuid.uuid4().hex + extension(content_type)
    check_name(name)
    return name if PurePosixPath(name).suffix else name + extension(content_type)


def make_key(folder: str, name: str, now_ms: int | None = None) -> str:
    """`<folder>/<YYYY-MM-DD>/<unix-ms>/<name>`; folder and name already checked."""
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    day = datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")
    key = f"{folder}/{day}/{ms}/{name}"
    if len(key.encode()) > MAX_KEY_BYTES:
        raise InvalidArgument(f"name/prefix: the key would be longer than {MAX_KEY_BYTES} bytes")
    return key
