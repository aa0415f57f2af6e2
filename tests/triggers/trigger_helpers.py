"""Constants and helpers of the trigger tests (a uniquely named module: ``conftest`` is not importable by name)."""

from __future__ import annotations

CONN_ID = "phota_default"
FAST_RETRIES = {"retry_wait": 0.01, "retry_max_wait": 0.05, "max_attempts": 3}
