"""Constants and helpers of the trigger tests (a uniquely named module: ``conftest`` is not importable by name)."""

from __future__ import annotations

import json

from airflow_provider_phota.testing import PhotaEmulator

CONN_ID = "phota_default"
FAST_RETRIES = {"retry_wait": 0.01, "retry_max_wait": 0.05, "max_attempts": 3}
SLOW_SECONDS = 3600.0  # training and job time of the tests' emulator: only emu.advance() finishes them


def connection_json(emu: PhotaEmulator, *, password: str | None = None) -> str:
    return json.dumps(
        {
            "conn_type": "phota",
            "host": emu.base_url,
            "password": emu.api_key if password is None else password,
            "extra": FAST_RETRIES,
        }
    )
