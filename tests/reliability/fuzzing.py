"""The fuzz run's figure: requests tried and 5xx seen, per operation and in all.

`test_fuzz.py` counts every request it sends here; the reliability conftest prints the figure at
the end of the run (pytest's terminal summary) and writes it to tests/artifacts/fuzz.json, which
`make fuzz` shows.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ARTIFACT = Path(__file__).resolve().parents[1] / "artifacts" / "fuzz.json"


@dataclass
class Tally:
    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)  # "<operation> <status>"
    # The first answers of each operation and status: what the generated requests reached.
    samples: dict[str, list[str]] = field(default_factory=dict)
    server_errors: list[dict[str, object]] = field(default_factory=list)

    def count(self, operation: str, status: int, request: str, answer: str) -> None:
        self.requests[operation] += 1
        self.statuses[f"{operation} {status}"] += 1
        seen = self.samples.setdefault(f"{operation} {status}", [])
        if len(seen) < 5:
            seen.append(answer)
        if status >= 500:
            self.server_errors.append(
                {"operation": operation, "status": status, "request": request, "answer": answer}
            )

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    def figure(self) -> str:
        return f"fuzz: {self.total} requests tried, {len(self.server_errors)} 5xx seen"

    def write(self) -> None:
        ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
        ARTIFACT.write_text(
            json.dumps(
                {
                    "requests": self.total,
                    "server_errors": len(self.server_errors),
                    "per_operation": dict(self.requests),
                    "statuses": dict(sorted(self.statuses.items())),
                    "samples": self.samples,
                    "5xx": self.server_errors[:50],
                },
                indent=1,
            )
        )


TALLY = Tally()
