"""Fixtures of the emulator tests, on top of the plugin's ``phota_emulator``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from emulator_helpers import Api

from airflow_provider_phota.testing import PhotaEmulator


@pytest.fixture
def emu(phota_emulator: PhotaEmulator) -> PhotaEmulator:
    return phota_emulator


@pytest.fixture
def api(emu: PhotaEmulator) -> Iterator[Api]:
    with requests.Session() as session:
        yield Api(emu, session)
