"""Fixtures of the sensor and deferral tests: an emulator whose clock only the test moves, and a fast-retry connection.

Training and jobs take an hour of emulator time here, so nothing finishes unless a test says so
(``emu.advance``, ``emu.set_profile_outcome``): the waits are decided by the test, not by a race.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sensor_helpers import FAST_RETRIES, SLOW_SECONDS

from airflow_provider_phota.testing import PhotaEmulator


@pytest.fixture
def emu(phota_emulator_factory: Callable[..., PhotaEmulator], phota_connection: Callable[..., str]) -> PhotaEmulator:
    """A reset slow emulator with ``phota_default`` pointing at it (3 attempts, 10-50 ms backoff)."""
    emulator = phota_emulator_factory(training_seconds=SLOW_SECONDS, job_seconds=SLOW_SECONDS)
    phota_connection(emulator=emulator, **FAST_RETRIES)
    return emulator
