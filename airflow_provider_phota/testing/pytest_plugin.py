"""pytest plugin (entry point ``pytest11: phota``): emulator fixtures and the ``live`` marker.

pytest loads this module for every test run of anyone who installs the provider, so it imports nothing heavy at
module level (no Airflow, no Pillow, no aiohttp); the emulator is imported inside the fixtures.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from airflow_provider_phota.testing.emulator import PhotaEmulator

LIVE_KEY_ENV = "PHOTA_API_KEY"
CONN_ID = "phota_default"
DEFAULT_TRAINING_SECONDS = 1.0
DEFAULT_JOB_SECONDS = 0.5


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("phota", "Phota emulator")
    group.addoption(
        "--phota-training-seconds",
        type=float,
        default=DEFAULT_TRAINING_SECONDS,
        help="profile training time of the phota_emulator fixture (default %(default)s)",
    )
    group.addoption(
        "--phota-job-seconds",
        type=float,
        default=DEFAULT_JOB_SECONDS,
        help="async job time of the phota_emulator fixture (default %(default)s)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"live: talks to the real Phota API; runs only when {LIVE_KEY_ENV} is set")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``live`` tests unless a real key is configured, so a plain ``pytest`` never spends money."""
    if os.environ.get(LIVE_KEY_ENV):
        return
    skip = pytest.mark.skip(reason=f"live test: set {LIVE_KEY_ENV} to run it against the real API")
    for item in items:
        if item.get_closest_marker("live") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def phota_emulator_session(pytestconfig: pytest.Config) -> Iterator[PhotaEmulator]:
    """One emulator server for the whole session (starting one per test would cost a thread and a port each)."""
    from airflow_provider_phota.testing.emulator import PhotaEmulator

    with PhotaEmulator(
        api_key="test-key",
        training_seconds=pytestconfig.getoption("--phota-training-seconds"),
        job_seconds=pytestconfig.getoption("--phota-job-seconds"),
        deliver_callbacks_over_http=True,
    ) as emulator:
        yield emulator


@pytest.fixture
def phota_emulator(phota_emulator_session: PhotaEmulator) -> PhotaEmulator:
    """The session's emulator with fresh state: no profiles, jobs, charges, faults or recorded requests."""
    phota_emulator_session.reset()
    return phota_emulator_session


@pytest.fixture
def phota_conn_id(phota_emulator: PhotaEmulator, monkeypatch: pytest.MonkeyPatch) -> str:
    """An Airflow connection ``phota_default`` (via the environment) that points at the emulator."""
    connection = {"conn_type": "phota", "host": phota_emulator.base_url, "password": phota_emulator.api_key}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(connection))
    return CONN_ID
