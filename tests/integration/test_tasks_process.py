"""`python -m services.tasks` refuses to start with a reason the operator can act on: bad
settings (never echoing a database password) and a database it cannot open."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


def start(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.tasks"],
        cwd=ROOT,
        env={**os.environ, "TASKS_METRICS_LISTEN": "", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_bad_settings_name_the_variables_and_hide_the_password() -> None:
    done = start({"TASKS_DATABASE_URL": "mysql://u:hunter2@db/tasks", "TASKS_WORKERS": "-1"})
    assert done.returncode != 0
    assert "tasks: bad settings (TASKS_* variables)" in done.stderr
    assert "database_url" in done.stderr and "sqlite or postgresql" in done.stderr
    assert "workers" in done.stderr
    assert "hunter2" not in done.stderr and "Traceback" not in done.stderr


def test_a_database_it_cannot_open_is_one_line_without_the_password() -> None:
    url = f"postgresql+psycopg://u:hunter2@127.0.0.1:{free_port()}/tasks"
    done = start({"TASKS_DATABASE_URL": url, "TASKS_LISTEN": f"127.0.0.1:{free_port()}"})
    assert done.returncode == 1
    assert (
        "tasks: cannot open the task database postgresql+psycopg://u:***@127.0.0.1" in done.stderr
    )
    assert "hunter2" not in done.stderr and "Traceback" not in done.stderr
