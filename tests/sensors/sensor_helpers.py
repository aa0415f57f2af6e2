"""Constants and helpers of the sensor and deferral tests (``conftest`` is not importable by name)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

CONN_ID = "phota_default"
URLS = [f"https://example.com/p/{i}.jpg" for i in range(10)]
STATUS_GLOB = "/v1/phota/profiles/*/status"


def make_context(task_id: str = "task", *, map_index: int = -1) -> dict[str, Any]:
    """The minimal task context these operators read: the task instance's identity (for idempotency keys and file
    names) and, for a reschedule-mode sensor, its first reschedule date."""
    ti = SimpleNamespace(
        dag_id="sensor_tests",
        run_id="manual__2026-01-01T00:00:00+00:00",
        task_id=task_id,
        map_index=map_index,
        try_number=1,
        max_tries=0,  # Airflow 2's sensors read it
        get_first_reschedule_date=lambda context: None,
    )
    return {"ti": ti, "task_instance": ti}
