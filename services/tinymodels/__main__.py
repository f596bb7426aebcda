"""`python -m services.tinymodels --out models [--force]`: build the tiny pipelines once."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from services.tinymodels import MODELS_DIR, stamp
from services.tinymodels.variants import VARIANTS


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.tinymodels", description=__doc__)
    parser.add_argument("--out", type=Path, default=MODELS_DIR, help="folder to build into")
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.perf_counter()
    stale = [
        v
        for v in VARIANTS
        if args.force or not stamp.is_current(args.out / v.folder, v.pipeline_class)
    ]
    if stale:
        # Imported only when there is work: torch and diffusers take seconds to import.
        from services.tinymodels.builder import build_all

        build_all(args.out, force=args.force)
    for variant in VARIANTS:
        print(args.out / variant.folder)
    logging.info(
        "tiny pipelines ready in %.1f s (%d built)", time.perf_counter() - started, len(stale)
    )


if __name__ == "__main__":
    main()
