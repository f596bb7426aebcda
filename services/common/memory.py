"""Allocator tuning for processes that move large image payloads: `keep_large_buffers` (storage,
CPU first) and `return_large_buffers` (the gateway, memory first).

glibc serves every allocation over its mmap threshold (128 KiB, rising only as far as the largest
block freed) with a fresh mmap, and unmaps it on free: each multi-megabyte protobuf `bytes` field,
serialized message or HTTP body then costs a page fault per 4 KiB touched. Measured on a 2-core
dev machine (November 2026): building and serializing an 8 MB PutRequest took 1.8 ms of CPU per MB
with the defaults and 0.5 ms with these settings; a gRPC client sending it, 2.7 vs 0.8 ms per MB.
Keeping blocks below 32 MiB on the heap (and up to `trim_threshold` bytes of free heap) lets them
be reused. Skipped where the variables MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ are set
(the operator chose), and on a libc without `mallopt` (musl, macOS).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

MIB = 1024 * 1024
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def _mallopt(settings: dict[int, int]) -> bool:
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return all(mallopt(option, value) for option, value in settings.items())


def keep_large_buffers(mmap_threshold: int = 32 * MIB, trim_threshold: int = 256 * MIB) -> bool:
    """Applies the settings above to this process; returns whether they were applied."""
    return _mallopt({_M_MMAP_THRESHOLD: mmap_threshold, _M_TRIM_THRESHOLD: trim_threshold})


def return_large_buffers(mmap_threshold: int = 1 * MIB) -> bool:
    """The other trade, for a process whose memory should follow its live data (the gateway,
    which holds many clients' answers at once): every block over `mmap_threshold` is mapped on
    its own and given back when freed. A fixed threshold also stops glibc from raising it to the
    largest block freed, after which multi-MB buffers stay in the heap once freed. Measured with
    n=4 1328x1328 images through the gateway as links (bench/payload.py): peak growth 2.6x to
    3.6x the payload over three runs, 3.5x in the run without it; the page faults cost a few ms
    on a request that took 45 s."""
    return _mallopt({_M_MMAP_THRESHOLD: mmap_threshold})
