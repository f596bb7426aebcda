"""`python -m bench [name ...]`: runs the benchmark suite (`make bench`), or the ones named.

A benchmark is any `bench/<name>.py` (not starting with `_`) that defines `main()`; it prints its
own table and target (MET / NOT MET) and writes JSON into bench/results/. Without names, the
suite runs (DEFAULT: mesh overhead, throughput, the provider route, payload, storage, the step
cache and regional compile, queue-aware routing; about eighteen minutes on an idle 2-core
machine); `all` runs every
benchmark, the deep dives too (model_server: the gRPC server alone vs in-process, n=4, memory).
BENCH_QUICK=1 makes every one shorter. Exits non-zero when a benchmark fails to run, not when a
target is missed: the numbers are for people to read.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT = [
    "overhead",
    "throughput",
    "providers",
    "payload",
    "storage",
    "cache",
    "compile",
    "routing",
]


def discover() -> list[str]:
    return sorted(
        info.name
        for info in pkgutil.iter_modules([str(HERE)])
        if not info.name.startswith("_") and not info.ispkg
    )


def main(argv: list[str]) -> int:
    names = discover() if argv == ["all"] else argv or DEFAULT
    unknown = set(names) - set(discover())
    if unknown:
        print(f"unknown benchmark(s): {', '.join(sorted(unknown))}; have: {', '.join(discover())}")
        return 2
    failed = []
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        run = getattr(module, "main", None)
        if not callable(run):
            continue
        print(f"== bench.{name}", flush=True)
        start = time.perf_counter()
        try:
            run()
        except Exception:  # noqa: BLE001 - report it and go on with the next benchmark
            traceback.print_exc()
            failed.append(name)
        print(f"== bench.{name}: {time.perf_counter() - start:.1f} s\n", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
