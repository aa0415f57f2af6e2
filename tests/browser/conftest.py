"""One real Airflow deployment and one headless Chromium, shared by the browser tests of a module (there is one,
test_ui.py). Module scope, not session: Playwright's sync API keeps an event loop in the main thread while it
runs, and the rest of the suite's asyncio tests must not find it there, so both are stopped when the module ends.

The deployment (tests/integration/deployment_helpers.py) runs the shipped subject-pipeline example against an
in-process emulator, with the simple auth manager and real users and passwords (not all-admins):

* ``admin`` (admin) and ``viewer`` (viewer): ordinary users;
* ``author`` (user): Airflow's ``user`` role, which may create and patch XCom entries through the REST API: the
  attacker of the gallery's security tests;
* ``outsider`` (viewer): refused every DAG by the tests' auth manager (support/phota_test_auth.py), as a real
  deployment's auth manager refuses a user a DAG.

Chromium is Debian's (``scripts/ensure-chromium`` installs it), driven by Playwright with ``executable_path``.
Without it, or without Playwright, the tests skip and say how to enable them; ``PHOTA_REQUIRE_BROWSER=1`` (set by
``.ci/run``) makes that a failure. They need Airflow 3.1+ (plugin views, human-in-the-loop) and skip before.

Screenshots go to ``$PHOTA_TEST_OUTPUT/browser`` (default: ``test-output/browser`` in the checkout).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import API_KEY, CHROMIUM, CHROMIUM_FLAGS, ROOT, USERS, Session, log_in_through_ui, unavailable
from deployment_helpers import AirflowDeployment

from airflow_provider_phota.testing import PhotaEmulator
from airflow_provider_phota.testing.samples import PhotoServer, make_subject_photos

HERE = Path(__file__).parent
START_TIMEOUT = 180.0


@pytest.fixture(scope="module", autouse=True)
def _browser_available() -> None:
    reason = unavailable()
    if reason is None:
        return
    if os.environ.get("PHOTA_REQUIRE_BROWSER") == "1" and "Airflow 3.1" not in reason:
        pytest.fail(f"browser tests required (PHOTA_REQUIRE_BROWSER=1) but {reason}", pytrace=False)
    pytest.skip(f"browser tests skipped: {reason}")


@pytest.fixture(scope="module")
def screenshots() -> Path:
    folder = Path(os.environ.get("PHOTA_TEST_OUTPUT", ROOT / "test-output")) / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def emulator() -> Iterator[PhotaEmulator]:
    with PhotaEmulator(api_key=API_KEY, training_seconds=3.0, job_seconds=2.0) as emu:
        yield emu


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="phota-browser-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def photos(workdir: Path) -> Iterator[PhotoServer]:
    folder = workdir / "photos"
    make_subject_photos(folder, count=10, subject="browser-subject")
    with PhotoServer(folder) as server:
        yield server


@pytest.fixture(scope="module")
def deployment(workdir: Path, emulator: PhotaEmulator) -> Iterator[AirflowDeployment]:
    """API server (simple auth manager, real users), scheduler, triggerer and DAG processor, with the subject
    pipeline example as the only DAG and ``phota_default`` pointing at the emulator."""
    home, dags = workdir / "airflow-home", workdir / "dags"
    home.mkdir()
    dags.mkdir()
    shutil.copy(ROOT / "example_dags" / "phota_subject_pipeline.py", dags)
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({name: password for name, (_, password) in USERS.items()}))
    connection = {"conn_type": "phota", "host": emulator.base_url, "password": API_KEY}
    environment = {
        "AIRFLOW_CONN_PHOTA_DEFAULT": json.dumps(connection),
        "AIRFLOW__CORE__AUTH_MANAGER": "phota_test_auth.DagOutsidersAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{name}:{role}" for name, (role, _) in USERS.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "PHOTA_TEST_DAG_OUTSIDERS": "outsider",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE / "support"), os.environ.get("PYTHONPATH")])),
        "PHOTA_EXAMPLE_POLL_SECONDS": "1",
        "PHOTA_GALLERY_CACHE_DIR": str(home / "gallery-cache"),
    }
    airflow = AirflowDeployment(home, dags, environment, parallelism=3)
    try:
        airflow.start()
        airflow.wait_for("the API server", lambda: airflow.api("GET", "/monitor/health"), START_TIMEOUT)
        airflow.log_in("admin", USERS["admin"][1])
        airflow.wait_for("the execution API", airflow.execution_api_ready, START_TIMEOUT)
        airflow.wait_for("scheduler, triggerer and DAG processor", airflow.healthy, START_TIMEOUT)
        yield airflow
    finally:
        killed = airflow.stop()
        print(f"\nbrowser deployment timeline (s since start): {airflow.timeline}; SIGKILLed: {killed}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:  # launch() gives Chromium a fresh temporary profile of its own
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def admin(browser: Any, deployment: AirflowDeployment) -> Iterator[Session]:
    session = log_in_through_ui(browser, deployment, "admin")
    yield session
    session.context.close()
