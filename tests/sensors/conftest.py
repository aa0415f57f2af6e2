"""Fixtures of the sensor and deferral tests: an emulator whose clock only the test moves, fast retries."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sensor_helpers import SLOW_SECONDS, connection_json

from airflow_provider_phota.testing import PhotaEmulator


@pytest.fixture(scope="module")
def slow_emulator() -> Iterator[PhotaEmulator]:
    with PhotaEmulator(api_key="sensor-test-key", training_seconds=SLOW_SECONDS, job_seconds=SLOW_SECONDS) as emu:
        yield emu


@pytest.fixture
def emu(slow_emulator: PhotaEmulator, monkeypatch: pytest.MonkeyPatch) -> PhotaEmulator:
    """The module's emulator, reset, with ``phota_default`` pointing at it (3 attempts, 10-50 ms backoff)."""
    slow_emulator.reset()
    monkeypatch.setenv("AIRFLOW_CONN_PHOTA_DEFAULT", connection_json(slow_emulator))
    return slow_emulator
