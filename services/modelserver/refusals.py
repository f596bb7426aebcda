"""Refusals a model server gives before a job enters its queue.

Nothing ran for them, so the answer says so (`imagemesh-not-started` in the trailing metadata,
`services/common/loadreport.py`) and the gateway may send the same call to another replica. Any
other error may come after the job started, and is never sent elsewhere.
"""

from __future__ import annotations

from services.common.errors import ResourceExhausted, ServiceError, Unavailable


class NotStarted(ServiceError):
    """Mixin: raised before the job was queued."""


class QueueFull(NotStarted, ResourceExhausted):
    """`max_queue` jobs already wait."""


class StillLoading(NotStarted, Unavailable):
    """The pipeline is not loaded yet (or the server is going away)."""
