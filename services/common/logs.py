"""Logging setup: one line per record, each with the request id of the call it belongs to."""

from __future__ import annotations

import logging
import sys

from services.common.requestid import get_request_id

FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = get_request_id()
        return True


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RequestIdFilter())
    # FORMAT names no file, line, thread or process, and a service logs a line per call: the
    # logging HOWTO's "Optimization" switches drop those look-ups (a stack walk and three
    # more), a quarter of a line's cost.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries that log every request or every chunk at INFO drown the service's own lines.
    for noisy in ("werkzeug", "urllib3", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
