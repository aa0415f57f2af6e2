"""Fixtures of the sensor and deferral tests."""

from __future__ import annotations

import pytest

from airflow_provider_phota.testing import PhotaEmulator


@pytest.fixture
def emu(held_clock_emulator: PhotaEmulator) -> PhotaEmulator:
    """The held-clock emulator of tests/conftest.py: waits end only when a test moves its clock."""
    return held_clock_emulator
