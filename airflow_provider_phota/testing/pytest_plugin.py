"""pytest plugin (entry point ``pytest11: phota``): emulator fixtures and the ``phota_live`` marker.

pytest loads this module for every test run of anyone who installs the provider, so:

- it imports nothing heavy at module level (no Airflow, no Pillow, no aiohttp); the emulator is imported inside
  the fixtures;
- everything it registers is namespaced, so it cannot touch another project's names: the marker ``phota_live``,
  fixtures ``phota_*`` (``_phota_*`` for private helpers), options ``--phota-*``. A project's own ``live``
  marker or ``emulator`` / ``conn_id`` fixtures are left alone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from airflow_provider_phota.testing.emulator import PhotaEmulator

ConnectionFactory = Callable[..., str]
EmulatorFactory = Callable[..., "PhotaEmulator"]

LIVE_KEY_ENV = "PHOTA_API_KEY"
LIVE_MARKER = "phota_live"
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
    config.addinivalue_line(
        "markers", f"{LIVE_MARKER}: talks to the real Phota API; runs only when {LIVE_KEY_ENV} is set"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``phota_live`` tests unless a real key is configured, so a plain ``pytest`` never spends money."""
    if os.environ.get(LIVE_KEY_ENV):
        return
    skip = pytest.mark.skip(reason=f"{LIVE_MARKER} test: set {LIVE_KEY_ENV} to run it against the real API")
    for item in items:
        if item.get_closest_marker(LIVE_MARKER) is not None:
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
def phota_connection(phota_emulator: PhotaEmulator, monkeypatch: pytest.MonkeyPatch) -> ConnectionFactory:
    """Point an Airflow connection (via the environment) at an emulator, with chosen extras; returns its id.

    ``phota_connection(max_attempts=3, retry_wait=0.01)`` gives fast retries for fault tests;
    ``phota_connection(emulator=other, conn_id="phota_slow")`` targets another emulator.
    """

    def connect(
        conn_id: str = CONN_ID, *, emulator: PhotaEmulator | None = None, api_key: str | None = None, **extra: Any
    ) -> str:
        target = emulator or phota_emulator
        password = target.api_key if api_key is None else api_key
        connection: dict[str, Any] = {"conn_type": "phota", "host": target.base_url, "password": password}
        if extra:
            connection["extra"] = extra
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))
        return conn_id

    return connect


@pytest.fixture
def phota_conn_id(phota_connection: ConnectionFactory) -> str:
    """An Airflow connection ``phota_default`` (via the environment) that points at the emulator."""
    return phota_connection()


@pytest.fixture(scope="session")
def _phota_extra_emulators() -> Iterator[dict[tuple[float, float, str], PhotaEmulator]]:
    running: dict[tuple[float, float, str], PhotaEmulator] = {}
    yield running
    for emulator in running.values():
        emulator.stop()


@pytest.fixture
def phota_emulator_factory(
    _phota_extra_emulators: dict[tuple[float, float, str], PhotaEmulator],
) -> EmulatorFactory:
    """Another emulator with its own timings, e.g. ``phota_emulator_factory(training_seconds=3600,
    job_seconds=3600)``: nothing finishes unless the test moves its clock (``advance``, ``set_profile_outcome``),
    so waits are decided by the test, not by a race. One server per distinct setting per session; its state is
    reset the first time a test asks for it."""
    from airflow_provider_phota.testing.emulator import PhotaEmulator

    reset_in_this_test: set[tuple[float, float, str]] = set()

    def make(*, training_seconds: float, job_seconds: float, api_key: str = "test-key") -> PhotaEmulator:
        key = (training_seconds, job_seconds, api_key)
        if key not in _phota_extra_emulators:
            _phota_extra_emulators[key] = PhotaEmulator(
                api_key=api_key,
                training_seconds=training_seconds,
                job_seconds=job_seconds,
                deliver_callbacks_over_http=True,
            ).start()
        emulator = _phota_extra_emulators[key]
        if key not in reset_in_this_test:
            emulator.reset()
            reset_in_this_test.add(key)
        return emulator

    return make
