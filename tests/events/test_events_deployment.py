"""A real Airflow 3.3 deployment: signed emulator callbacks become asset events that run a DAG, and the welcome-pack
example DAG runs once per profile that becomes READY, also across a triggerer restart.

The deployment (tests/integration/deployment_helpers.py: API server, scheduler, triggerer, DAG processor on sqlite)
parses ``tests/events/dags`` plus a copy of ``example_dags/phota_welcome_pack.py``. The emulator holds its training
clock: a profile is READY only when the test says so (``set_profile_outcome``), one at a time.

1. Callbacks: a job submitted with ``callback_url`` = the API server's ``/phota/callbacks`` finishes; the emulator
   POSTs the signed body over HTTP; the receiver records one ``phota://jobs/generate`` event, which runs
   ``events_on_callback``. Then a bad signature, a replay of the delivered body and an oversized body are refused
   and create no event and no run.
2. The watcher: two customers become READY one after the other; each runs ``phota_welcome_pack`` once (its job
   renders two images). The triggerer is stopped; a third customer becomes READY while none runs; a new triggerer
   starts, continues from the watermark in the asset state store, and welcomes only the third.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from airflow_versions import AIRFLOW_VERSION
from packaging.version import Version

from airflow_provider_phota import contract
from airflow_provider_phota.testing import PhotaEmulator

sys.path.insert(0, str(Path(__file__).parents[1] / "integration"))
from deployment_helpers import AirflowDeployment

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        Version("3.3") > AIRFLOW_VERSION,
        reason="the watermark across a triggerer restart needs the asset state store (3.3); the receiver needs 3.1",
    ),
]

HERE = Path(__file__).parent
EXAMPLE = HERE.parents[1] / "example_dags" / "phota_welcome_pack.py"
API_KEY = "events-key"
TAG = "welcome-test"
HELD_SECONDS = 3600.0
START_TIMEOUT = 180.0
STEP_TIMEOUT = 90.0
LIST_PATH = "/v1/phota/profiles/ids"
CALLBACK_DAG, WELCOME_DAG = "events_on_callback", "phota_welcome_pack"


@pytest.fixture
def emulator() -> Iterator[PhotaEmulator]:
    with PhotaEmulator(
        api_key=API_KEY, training_seconds=HELD_SECONDS, job_seconds=1.0, deliver_callbacks_over_http=True
    ) as emu:
        yield emu


@pytest.fixture
def deployment(tmp_path: Path, emulator: PhotaEmulator) -> Iterator[AirflowDeployment]:
    dags = tmp_path / "dags"
    shutil.copytree(HERE / "dags", dags)
    shutil.copy(EXAMPLE, dags / EXAMPLE.name)
    connection = {"conn_type": "phota", "host": emulator.base_url, "password": API_KEY}
    airflow = AirflowDeployment(
        tmp_path / "airflow-home",
        dags,
        {
            "AIRFLOW_CONN_PHOTA_DEFAULT": json.dumps(connection),
            "PHOTA_EXAMPLE_CUSTOMER_TAG": TAG,
            "PHOTA_EXAMPLE_POLL_SECONDS": "1",
            "PHOTA_EXAMPLE_OUTPUT_URI": f"file://{tmp_path}/welcome-packs",
            "AIRFLOW__CORE__DEFAULT_TASK_RETRIES": "2",  # the stale-executor-event race (airflow-testing-facts)
            "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "1",
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
        },
        parallelism=2,
    )
    try:
        airflow.start()
        yield airflow
    finally:
        airflow.stop()
        leftovers = airflow.leftovers()
        assert not leftovers, f"processes of the deployment still alive after the stop: {leftovers}"


def wait_ready(airflow: AirflowDeployment) -> None:
    airflow.wait_for("the API server", lambda: airflow.api("GET", "/monitor/health"), START_TIMEOUT)
    airflow.wait_for("the execution API", airflow.execution_api_ready, START_TIMEOUT)
    airflow.wait_for("the components to be healthy", airflow.healthy, START_TIMEOUT)
    for dag_id in (CALLBACK_DAG, WELCOME_DAG):

        def parsed(dag_id: str = dag_id) -> Any:
            try:
                return airflow.api("GET", f"/dags/{dag_id}")
            except requests.HTTPError:
                return None

        try:
            airflow.wait_for(f"{dag_id} to be parsed", parsed, STEP_TIMEOUT)
        except AssertionError as error:
            raise AssertionError(f"{error}\nimport errors: {airflow.import_errors()}") from None


def runs(airflow: AirflowDeployment, dag_id: str) -> list[dict[str, Any]]:
    return list(airflow.api("GET", f"/dags/{dag_id}/dagRuns")["dag_runs"])


def asset_events(airflow: AirflowDeployment, uri: str) -> list[dict[str, Any]]:
    assets = [a for a in airflow.api("GET", "/assets", params={"uri_pattern": uri})["assets"] if a["uri"] == uri]
    events: list[dict[str, Any]] = []
    for asset in assets:
        events += airflow.api("GET", "/assets/events", params={"asset_id": asset["id"]})["asset_events"]
    return events


def successful_runs(airflow: AirflowDeployment, dag_id: str, count: int) -> list[dict[str, Any]]:
    def probe() -> list[dict[str, Any]] | None:
        found = runs(airflow, dag_id)
        if any(run["state"] == "failed" for run in found):
            raise airflow.fail(f"a run of {dag_id} failed: {found}")
        done = [run for run in found if run["state"] == "success"]
        return found if len(done) >= count and len(found) == len(done) else None

    return airflow.wait_for(f"{count} successful runs of {dag_id}", probe, STEP_TIMEOUT)


def welcomed(airflow: AirflowDeployment, run_id: str) -> list[str]:
    answer = airflow.api("GET", f"/dags/{WELCOME_DAG}/dagRuns/{run_id}/upstreamAssetEvents")
    return [event["extra"]["payload"]["profile_id"] for event in answer["asset_events"]]


def submit_with_callback(emulator: PhotaEmulator, callback_url: str) -> str:
    body = contract.job_body(
        "generate", {"prompt": "a lighthouse"}, client_request_id="cb-1", callback_url=callback_url
    )
    request = contract.image_request("generate", body)
    answer = requests.post(
        emulator.base_url + request.path, json=request.json, headers={contract.API_KEY_HEADER: API_KEY}, timeout=10
    )
    answer.raise_for_status()
    return str(answer.json()["job_id"])


def create_customer(emulator: PhotaEmulator) -> str:
    request = contract.create_profile_request(
        [f"https://example.com/{n}.jpg" for n in range(10)], tag=TAG, training_tier=None
    )
    answer = requests.post(
        emulator.base_url + request.path, json=request.json, headers={contract.API_KEY_HEADER: API_KEY}, timeout=10
    )
    answer.raise_for_status()
    return str(answer.json()["profile_id"])


def watcher_looked(airflow: AirflowDeployment, emulator: PhotaEmulator, times: int = 2) -> None:
    """Wait until the watcher has listed the profiles ``times`` more times from now."""
    target = len(emulator.requests_to(LIST_PATH, "GET")) + times
    airflow.wait_for(
        "the watcher to look", lambda: len(emulator.requests_to(LIST_PATH, "GET")) >= target or None, STEP_TIMEOUT
    )


def restart_triggerer(airflow: AirflowDeployment, while_down: Any) -> None:
    """SIGTERM the triggerer, wait for it to exit, call ``while_down()``, start a new one (same arguments)."""
    old = airflow.components["triggerer"]
    airflow.track()
    old.send_signal(signal.SIGTERM)
    old.wait(timeout=60)
    airflow.mark("triggerer stopped")
    while_down()
    with (airflow.home / "triggerer-2.out").open("wb") as output:
        airflow.components["triggerer"] = subprocess.Popen(
            [shutil.which("airflow", path=airflow.env["PATH"]) or "airflow", *airflow.component_args["triggerer"]],
            cwd=airflow.home,
            env=airflow.env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    airflow.mark("triggerer restarted")
    airflow.track()


def test_callbacks_and_the_profile_watcher_in_a_real_deployment(
    deployment: AirflowDeployment, emulator: PhotaEmulator
) -> None:
    airflow = deployment
    wait_ready(airflow)
    receiver = f"https://127.0.0.1:{airflow.api_port}/phota/callbacks"

    # 1. A signed callback, delivered by the emulator over HTTP, runs the DAG scheduled on phota://jobs/generate.
    job_id = submit_with_callback(emulator, receiver)
    delivered = airflow.wait_for(
        "the emulator to deliver the callback",
        lambda: next((d for d in emulator.callbacks if d.job_id == job_id and d.status is not None), None),
        STEP_TIMEOUT,
    )
    assert delivered.status == 204, delivered
    (run,) = successful_runs(airflow, CALLBACK_DAG, 1)
    (event,) = asset_events(airflow, "phota://jobs/generate")
    assert event["extra"]["job_id"] == job_id
    assert event["extra"]["status"] == "SUCCEEDED"
    assert "token=" not in json.dumps(event["extra"])

    # Refused: a bad signature, a replay of the delivered body, an oversized body. Nothing is recorded.
    url = f"{airflow.base_url}/phota/callbacks"
    headers = dict(delivered.headers)
    bad = {**headers, contract.SIGNATURE_HEADER: contract.sign_callback("not-the-secret", delivered.body)}
    assert requests.post(url, data=delivered.body, headers=bad, timeout=10).status_code == 401
    assert requests.post(url, data=delivered.body, headers=headers, timeout=10).status_code == 409
    big = delivered.body[:-1] + b', "padding": "' + b"x" * 100_000 + b'"}'
    big_headers = {**headers, contract.SIGNATURE_HEADER: contract.sign_callback(emulator.webhook_secret, big)}
    assert requests.post(url, data=big, headers=big_headers, timeout=10).status_code == 413
    assert len(asset_events(airflow, "phota://jobs/generate")) == 1
    assert [r["dag_run_id"] for r in runs(airflow, CALLBACK_DAG)] == [run["dag_run_id"]]

    # 2. The watcher: one welcome-pack run per customer that becomes READY.
    first, second = create_customer(emulator), create_customer(emulator)
    watcher_looked(airflow, emulator)  # both seen training: neither is in the watcher's baseline
    welcome_runs: list[dict[str, Any]] = []
    for count, customer in enumerate((first, second), start=1):
        emulator.set_profile_outcome(customer, "READY")
        welcome_runs = successful_runs(airflow, WELCOME_DAG, count)
    assert sorted(p for r in welcome_runs for p in welcomed(airflow, r["dag_run_id"])) == sorted([first, second])

    # A restart: the third customer becomes READY while no triggerer runs; the new one welcomes only that one.
    third = create_customer(emulator)
    restart_triggerer(airflow, lambda: emulator.set_profile_outcome(third, "READY"))
    welcome_runs = successful_runs(airflow, WELCOME_DAG, 3)
    welcomed_all = [p for r in welcome_runs for p in welcomed(airflow, r["dag_run_id"])]
    assert sorted(welcomed_all) == sorted([first, second, third])  # each once, none twice
    ready_events = asset_events(airflow, f"phota://examples/profiles-ready/{TAG}")
    assert sorted(e["extra"]["payload"]["profile_id"] for e in ready_events) == sorted([first, second, third])
    # Each welcome pack rendered its images (one generate job of two images per customer).
    assert len(emulator.charges("images")) == 3 + 1  # + the callback test's job
