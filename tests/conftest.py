"""Test-wide Airflow setup: a private AIRFLOW_HOME, no example DAGs, and a metadata database made once.

The environment is set at import time, before anything imports Airflow (its configuration is read once).
The emulator fixtures (``phota_emulator``, ``phota_conn_id``) come from the provider's own pytest plugin.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
AIRFLOW_HOME = tempfile.mkdtemp(prefix="phota-tests-airflow-")
os.environ["AIRFLOW_HOME"] = AIRFLOW_HOME
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(TESTS / "dags")
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{AIRFLOW_HOME}/airflow.db"
os.environ.pop("AIRFLOW_CONN_PHOTA_DEFAULT", None)


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """A fresh metadata database, once per session, for tests that run DAGs with ``dag.test()``."""
    from airflow.utils.db import resetdb

    resetdb()
