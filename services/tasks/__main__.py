"""`python -m services.tasks`: the task service (settings from TASKS_* environment variables)."""

import sys

from pydantic import ValidationError

from services.common.server import run
from services.tasks.service import serve
from services.tasks.settings import TasksSettings


def main() -> None:
    try:
        settings = TasksSettings()
    except ValidationError as exc:
        # A bad variable is a message to the operator, not a traceback.
        sys.exit(f"tasks: bad settings (TASKS_* variables):\n{exc}")
    run(lambda: serve(settings))


if __name__ == "__main__":
    main()
