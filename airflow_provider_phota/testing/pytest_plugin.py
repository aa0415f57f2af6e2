"""pytest plugin: emulator fixtures, the ``phota_live`` marker and, on request, a scratch Airflow to ``dag.test()`` in.

It is opt-in: a project loads it from its ``conftest.py`` with
``pytest_plugins = ["airflow_provider_phota.testing.pytest_plugin"]`` (see ``docs/testing.md``). Even then:

- it imports nothing heavy at module level (no Airflow, no Pillow, no aiohttp); the emulator is imported inside
  the fixtures;
- everything it registers is namespaced, so it cannot touch another project's names: the marker ``phota_live``,
  fixtures ``phota_*`` (``_phota_*`` for private helpers), options ``--phota-*``, the ini setting
  ``phota_dags_folder``. A project's own ``live`` marker or ``emulator`` / ``conn_id`` fixtures are left alone;
- it leaves Airflow's configuration alone unless the project sets ``phota_dags_folder``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import sys
import tempfile
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
DAGS_FOLDER_INI = "phota_dags_folder"


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
    parser.addini(
        DAGS_FOLDER_INI,
        "your DAGs folder (relative to the rootdir); setting it gives the test session a scratch Airflow home and "
        "metadata database (fixture phota_airflow_db) whose DAGs folder it is",
        default="",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{LIVE_MARKER}: talks to the real Phota API; runs only when {LIVE_KEY_ENV} is set"
    )
    dags_folder = config.getini(DAGS_FOLDER_INI)
    if dags_folder:
        _use_scratch_airflow(config.rootpath / dags_folder)


def _use_scratch_airflow(dags_folder: os.PathLike[str]) -> None:
    """Point Airflow at a new, empty home and sqlite database with ``dags_folder`` as its DAGs folder.

    Airflow reads its configuration once, when it is first imported, so this runs at configure time, before the
    test modules (and their ``from airflow ...``) are imported; a project's ``AIRFLOW_HOME`` is never touched."""
    if "airflow" in sys.modules:
        raise pytest.UsageError(
            f"{DAGS_FOLDER_INI} is set but Airflow was imported before the phota plugin was loaded; "
            "do not import Airflow in conftest.py (import it in the test modules)"
        )
    home = tempfile.mkdtemp(prefix="phota-airflow-home-")
    os.environ.update(
        {
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__DAGS_FOLDER": os.fspath(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        }
    )
    if importlib.metadata.version("apache-airflow").startswith("2."):
        # Airflow 2's dag.test() refuses sqlite with the LocalExecutor that UNIT_TEST_MODE picks.
        os.environ["AIRFLOW__CORE__EXECUTOR"] = "SequentialExecutor"


@pytest.fixture(scope="session")
def phota_airflow_db(pytestconfig: pytest.Config) -> None:
    """A fresh Airflow metadata database, once per session, for tests that run DAGs with ``dag.test()``. Needs the
    ``phota_dags_folder`` ini setting (which makes the scratch Airflow home this database lives in)."""
    if not pytestconfig.getini(DAGS_FOLDER_INI):
        pytest.fail(f"phota_airflow_db needs the {DAGS_FOLDER_INI} ini setting (see docs/testing.md)", pytrace=False)
    from airflow.utils.db import resetdb

    resetdb()


@pytest.fixture(scope="session")
def phota_dag_bag(phota_airflow_db: None, pytestconfig: pytest.Config) -> Any:
    """The DAGs of the ``phota_dags_folder``, in a fresh database and ready for ``dag.test()`` on every supported
    Airflow: ``phota_dag_bag.get_dag("my_dag").test()``. A file that fails to import fails the test that asks."""
    from packaging.version import Version

    version = Version(importlib.metadata.version("apache-airflow"))
    dagbag: Any = importlib.import_module(  # moved in 3.2
        "airflow.dag_processing.dagbag" if version >= Version("3.2") else "airflow.models.dagbag"
    )
    bag = dagbag.DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])  # no examples: load_examples is off
    assert not bag.import_errors, bag.import_errors
    # Airflow 3.1+ syncs a DAG's bundle itself when dag.test() starts; 3.0 and 2.11 need the DAGs in the database.
    if version < Version("3"):
        bag.sync_to_db()
    elif version < Version("3.1"):
        from airflow.dag_processing.bundles.manager import DagBundlesManager

        DagBundlesManager().sync_bundles_to_db()  # type: ignore[no-untyped-call]
        bag.sync_to_db("dags-folder", None)
    return bag


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
    with _start_emulator(
        training_seconds=pytestconfig.getoption("--phota-training-seconds"),
        job_seconds=pytestconfig.getoption("--phota-job-seconds"),
    ) as emulator:
        yield emulator


def _start_emulator(*, training_seconds: float, job_seconds: float, api_key: str = "test-key") -> PhotaEmulator:
    """A running emulator as the fixtures make them: https callbacks delivered to the test's plain receivers."""
    from airflow_provider_phota.testing.emulator import PhotaEmulator

    return PhotaEmulator(
        api_key=api_key, training_seconds=training_seconds, job_seconds=job_seconds, deliver_callbacks_over_http=True
    ).start()


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
    reset_in_this_test: set[tuple[float, float, str]] = set()

    def make(*, training_seconds: float, job_seconds: float, api_key: str = "test-key") -> PhotaEmulator:
        key = (training_seconds, job_seconds, api_key)
        if key not in _phota_extra_emulators:
            _phota_extra_emulators[key] = _start_emulator(
                training_seconds=training_seconds, job_seconds=job_seconds, api_key=api_key
            )
        emulator = _phota_extra_emulators[key]
        if key not in reset_in_this_test:
            emulator.reset()
            reset_in_this_test.add(key)
        return emulator

    return make
