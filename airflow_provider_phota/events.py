"""The trigger event contract between the triggers and the operators/sensor that resume from them.

Every event is a small JSON dict:

* ``status``: one of :data:`EVENT_STATUSES`;
* the resource id (``profile_id`` or ``job_id``);
* ``api_status``: the API's last status of the resource, ``None`` if the trigger never saw one;
* ``message``: what happened, ``""`` when there is nothing to say;
* ``retryable`` (``error`` events only): whether a task retry can help. A 404 or a 401 cannot, so the resuming task
  fails without retries, exactly as the same error before deferral does. Events without it (from a trigger
  serialized by an older version) count as retryable.

Nothing else crosses the deferral boundary: the resuming side fetches anything else it needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

EVENT_SUCCESS = "success"
EVENT_FAILED = "failed"
EVENT_TIMEOUT = "timeout"
EVENT_ERROR = "error"
EVENT_STATUSES = frozenset({EVENT_SUCCESS, EVENT_FAILED, EVENT_TIMEOUT, EVENT_ERROR})


def error_is_retryable(event: Mapping[str, Any]) -> bool:
    """Whether an ``error`` event leaves room for a task retry (a missing flag means yes: the older behaviour)."""
    return event.get("retryable") is not False
