"""Test-wide Airflow setup: a private AIRFLOW_HOME, no example DAGs, and a metadata database made once.

The environment is set at import time, before anything imports Airflow (its configuration is read once).
The emulator fixtures (``phota_emulator``, ``phota_conn_id``) come from the provider's own pytest plugin, loaded
here as a user's project loads it (it is not auto-loaded). These tests set up Airflow themselves (two DAG bundles),
so they do not use the plugin's ``phota_dags_folder`` setting.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from airflow_provider_phota.testing import PhotaEmulator

pytest_plugins = ["airflow_provider_phota.testing.pytest_plugin"]

TESTS = Path(__file__).parent
HELD_CLOCK_SECONDS = 3600.0  # see held_clock_emulator
AIRFLOW_HOME = tempfile.mkdtemp(prefix="phota-tests-airflow-")
os.environ["AIRFLOW_HOME"] = AIRFLOW_HOME
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(TESTS / "dags")
# Two DAG bundles: the tests' own DAGs and the shipped example DAGs (dag.test() runs only DAGs of a bundle).
os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps(
    [
        {"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle", "kwargs": {}},
        {
            "name": "example-dags",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(TESTS.parent / "example_dags")},
        },
    ]
)
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{AIRFLOW_HOME}/airflow.db"
AIRFLOW_2 = importlib.metadata.version("apache-airflow").startswith("2.")
if AIRFLOW_2:
    # Airflow 2's dag.test() refuses sqlite with the LocalExecutor that UNIT_TEST_MODE picks.
    os.environ["AIRFLOW__CORE__EXECUTOR"] = "SequentialExecutor"
os.environ.pop("AIRFLOW_CONN_PHOTA_DEFAULT", None)


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """A fresh metadata database, once per session, for tests that run DAGs with ``dag.test()``."""
    from airflow.utils.db import resetdb

    resetdb()


@pytest.fixture
def task_log(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[], str]]:
    """What the provider logged so far in this test. Airflow 3 logs to stdout; Airflow 2 through the ``logging``
    tree, whose ``airflow.task`` branch does not propagate to pytest's handler by default."""
    if not AIRFLOW_2:
        yield lambda: capfd.readouterr().out
        return
    task_logger = logging.getLogger("airflow.task")
    propagate, task_logger.propagate = task_logger.propagate, True
    caplog.set_level(logging.INFO)
    yield lambda: caplog.text
    task_logger.propagate = propagate


@pytest.fixture
def held_clock_emulator(
    phota_emulator_factory: Callable[..., PhotaEmulator], phota_connection: Callable[..., str]
) -> PhotaEmulator:
    """An emulator whose training and jobs take an hour of its clock, with ``phota_default`` pointing at it
    (3 attempts, 10-50 ms backoff). Nothing finishes unless the test moves the clock (``advance``,
    ``set_profile_outcome``), so every wait is decided by the test, not by a race."""
    emulator = phota_emulator_factory(training_seconds=HELD_CLOCK_SECONDS, job_seconds=HELD_CLOCK_SECONDS)
    phota_connection(emulator=emulator, retry_wait=0.01, retry_max_wait=0.05, max_attempts=3)
    return emulator
