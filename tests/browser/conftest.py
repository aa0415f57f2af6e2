"""One real Airflow deployment and one headless Chromium, shared by every browser test of the session.

The deployment (tests/integration/deployment_helpers.py) runs the shipped subject-pipeline example against an
in-process emulator, with the simple auth manager and real users and passwords (not all-admins):

* ``admin`` (admin) and ``viewer`` (viewer): ordinary users;
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
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))  # deployment_helpers

from deployment_helpers import AirflowDeployment  # noqa: E402

from airflow_provider_phota.testing import PhotaEmulator  # noqa: E402
from airflow_provider_phota.testing.samples import PhotoServer, make_subject_photos  # noqa: E402

API_KEY = "browser-test-key"
USERS = {"admin": ("admin", "admin-pass-1"), "viewer": ("viewer", "viewer-pass-2"), "outsider": ("viewer", "out-3")}
DAG_ID = "phota_subject_pipeline"
CHROMIUM = os.environ.get("PHOTA_CHROMIUM", "/usr/bin/chromium")
# Headless on a closed network: without the background-networking flags Chromium's own calls fail in bulk.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ENABLE_HINT = (
    "install Chromium with `scripts/ensure-chromium` (as root: apt-get install -y chromium) "
    "or point PHOTA_CHROMIUM at a Chromium binary"
)
START_TIMEOUT = 180.0


def _unavailable() -> str | None:
    """Why the browser tests cannot run here, or ``None``."""
    from airflow_provider_phota.plugins.gallery import gallery_supported

    if not gallery_supported():
        return "needs Airflow 3.1+ (plugin views and human-in-the-loop)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return f"Playwright is not installed (pip install -e '.[test]'); {ENABLE_HINT}"
    if not (os.access(CHROMIUM, os.X_OK) or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM}: {ENABLE_HINT}"
    return None


@pytest.fixture(scope="session", autouse=True)
def _browser_available() -> None:
    reason = _unavailable()
    if reason is None:
        return
    if os.environ.get("PHOTA_REQUIRE_BROWSER") == "1" and "Airflow 3.1" not in reason:
        pytest.fail(f"browser tests required (PHOTA_REQUIRE_BROWSER=1) but {reason}", pytrace=False)
    pytest.skip(f"browser tests skipped: {reason}")


@pytest.fixture(scope="session")
def screenshots() -> Path:
    folder = Path(os.environ.get("PHOTA_TEST_OUTPUT", ROOT / "test-output")) / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def emulator() -> Iterator[PhotaEmulator]:
    with PhotaEmulator(api_key=API_KEY, training_seconds=3.0, job_seconds=2.0) as emu:
        yield emu


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="phota-browser-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def photos(workdir: Path) -> Iterator[PhotoServer]:
    folder = workdir / "photos"
    make_subject_photos(folder, count=10, subject="browser-subject")
    with PhotoServer(folder) as server:
        yield server


@pytest.fixture(scope="session")
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


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:  # launch() gives Chromium a fresh temporary profile of its own
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Session:
    """A logged-in browser context (its own cookies) and its first page."""

    context: Any
    page: Any
    username: str


def log_in_through_ui(browser: Any, deployment: AirflowDeployment, username: str) -> Session:
    """Log in on the simple auth manager's login page, as a person would."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(f"{deployment.base_url}/auth/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(USERS[username][1])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/auth/login" not in url, timeout=30_000)
    return Session(context, page, username)


@pytest.fixture
def admin(browser: Any, deployment: AirflowDeployment) -> Iterator[Session]:
    session = log_in_through_ui(browser, deployment, "admin")
    yield session
    session.context.close()
