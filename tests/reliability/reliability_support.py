"""Shared constants and helpers of the reliability suite (a uniquely named module, importable next to conftest)."""

from __future__ import annotations

import json
import time
from typing import Any
from unittest.mock import MagicMock

from airflow_provider_phota.testing import PhotaEmulator

API = "/v1/phota"
MAX_ATTEMPTS = 3
# Fast retries so a fault case takes milliseconds: three attempts, 10-20 ms backoff, Retry-After capped at 50 ms.
FAST_EXTRAS: dict[str, Any] = {
    "retry_wait": 0.01,
    "retry_max_wait": 0.02,
    "max_attempts": MAX_ATTEMPTS,
    "read_timeout": 1.0,
    "max_retry_after": 0.05,
}
# The read-timeout cases use a shorter timeout and a delay longer than it.
READ_TIMEOUT = 0.6
READ_TIMEOUT_DELAY = 0.9
STANDARD_URLS = [f"https://example.com/reliability/{index}.jpg" for index in range(10)]
# 1x1 PNG: a valid base64 image for /edit, /enhance and /remix.
PNG_1X1 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def connection_json(emu: PhotaEmulator, *, password: str | None = None, **extras: Any) -> str:
    return json.dumps(
        {
            "conn_type": "phota",
            "host": emu.base_url,
            "password": emu.api_key if password is None else password,
            "extra": {**FAST_EXTRAS, **extras},
        }
    )


def wait_for_records(emu: PhotaEmulator, path_glob: str, count: int, *, downloads: bool = False) -> list[Any]:
    """Wait until the emulator recorded ``count`` requests to ``path_glob`` (a delayed request is recorded when the
    emulator finishes it, which can be after the client gave up), then return them; no more may arrive."""
    end = time.monotonic() + 5.0

    def matching() -> list[Any]:
        if downloads:
            return list(emu.downloads)
        return emu.requests_to(path_glob)

    while len(matching()) < count and time.monotonic() < end:
        time.sleep(0.02)
    time.sleep(0.05)
    return matching()


def task_context(
    *, dag_id: str = "reliability", run_id: str = "manual__r1", task_id: str = "task", map_index: int = -1
) -> dict[str, Any]:
    """A minimal execution context for calling ``operator.execute()`` directly: a task instance identity (what the
    idempotency key and the output names derive from) and the outlet events accessor."""
    ti = MagicMock()
    ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number = dag_id, run_id, task_id, map_index, 1
    return {"ti": ti, "task_instance": ti, "outlet_events": MagicMock(), "run_id": run_id}


def visible_files(folder: Any) -> list[str]:
    return sorted(p.name for p in folder.iterdir())
