"""The trigger event contract between the triggers and the operators/sensor that resume from them.

Every event is a small JSON dict with ``status`` in :data:`EVENT_STATUSES`, the resource id, the API's last
status and, where it applies, a message. Nothing else crosses the deferral boundary.
"""

from __future__ import annotations

EVENT_SUCCESS = "success"
EVENT_FAILED = "failed"
EVENT_TIMEOUT = "timeout"
EVENT_ERROR = "error"
EVENT_STATUSES = frozenset({EVENT_SUCCESS, EVENT_FAILED, EVENT_TIMEOUT, EVENT_ERROR})
