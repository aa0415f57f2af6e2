"""A real Airflow deployment runs the deferrable sensor and image operator against the emulator.

Airflow's API server, scheduler (LocalExecutor, parallelism 2), triggerer and DAG processor run as processes on a
sqlite database in a private AIRFLOW_HOME, on free loopback ports, with a ``phota_default`` connection to an
in-process emulator. The test creates a profile, triggers ``tests/integration/dags/phota_integration.py`` and holds
the emulator's clock, so both waits are real deferrals and end only when the test says so:

1. the sensor's task instance is seen ``deferred`` with its ProfileReadyTrigger claimed by a triggerer job, and
   the triggerer polls the profile while the task is deferred (no worker runs it then); only then does training
   "finish" (the emulator's clock moves on);
2. the same for the image operator and its job trigger (PhotaBatchTrigger, one row), then the job finishes;
3. the run succeeds; the triggers' own log parts say they fired, the images are on disk and open, the job was
   submitted and charged once. Every process of the deployment is stopped, and none is left.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from deployment_helpers import AirflowDeployment
from PIL import Image

from airflow_provider_phota import contract
from airflow_provider_phota.testing import PhotaEmulator
from airflow_provider_phota.testing.emulator import RecordedRequest

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent
DAG_ID = "phota_integration"
SENSOR, GENERATE = "wait_for_profile", "generate"
API_KEY = "integration-key"
# The emulator's clock stands still for the test: nothing finishes until the test moves it by these amounts.
TRAINING_SECONDS = 600.0
JOB_SECONDS = 600.0
PROFILE_TRIGGER = "airflow_provider_phota.triggers.phota.ProfileReadyTrigger"
JOB_TRIGGER = "airflow_provider_phota.triggers.batch.PhotaBatchTrigger"
# Bounds of the phases. On a 2-core machine the components are up about 30-40 s after the start and a task
# starts in 1-5 s; the bounds leave room for a machine busy with other work.
START_TIMEOUT = 180.0
PARSE_TIMEOUT = 60.0
TASK_TIMEOUT = 60.0


@pytest.fixture
def emulator() -> Iterator[PhotaEmulator]:
    with PhotaEmulator(api_key=API_KEY, training_seconds=TRAINING_SECONDS, job_seconds=JOB_SECONDS) as emu:
        yield emu


@pytest.fixture
def deployment(tmp_path: Path, emulator: PhotaEmulator) -> Iterator[AirflowDeployment]:
    connection = {"conn_type": "phota", "host": emulator.base_url, "password": API_KEY}
    airflow = AirflowDeployment(
        tmp_path / "airflow-home",
        HERE / "dags",
        {"AIRFLOW_CONN_PHOTA_DEFAULT": json.dumps(connection)},
        parallelism=2,
    )
    try:
        airflow.start()
        yield airflow
    finally:
        killed = airflow.stop()
        airflow.mark("stopped")
        print(f"\nreal deployment timeline (s since start): {airflow.timeline}")
        if killed:
            print(f"needed SIGKILL after the grace period: {killed}")
        leftovers = airflow.leftovers()
        assert not leftovers, f"processes of the deployment still alive after the stop: {leftovers}"


def create_profile(emulator: PhotaEmulator) -> str:
    """Create the profile directly (the DAG only waits for it); remote photo URLs are accepted unchecked."""
    urls = [f"https://example.com/p/{index}.jpg" for index in range(10)]
    request = contract.create_profile_request(urls, tag="integration", training_tier="standard")
    response = requests.post(
        emulator.base_url + request.path, json=request.json, headers={contract.API_KEY_HEADER: API_KEY}, timeout=10
    )
    response.raise_for_status()
    return str(response.json()["profile_id"])


def gets_since(emulator: PhotaEmulator, start: int, path: str) -> list[RecordedRequest]:
    """The GETs of ``path`` among the emulator's requests from index ``start`` on."""
    return [entry for entry in emulator.requests[start:] if entry.method == "GET" and entry.path == path]


def wait_until_deferred(
    airflow: AirflowDeployment, emulator: PhotaEmulator, run_id: str, task_id: str, trigger: str, poll_path: str
) -> tuple[dict[str, Any], list[RecordedRequest]]:
    """Wait until the task instance is deferred on ``trigger``, the trigger is claimed by a triggerer job, the
    triggerer has polled ``poll_path`` since then, and the scheduler has seen the deferring workload end (see
    ``scheduler_handled_deferral``). Returns the task instance and those polls: requests made while the task was
    deferred, when no worker ran it."""
    deferred_since: list[int] = []  # the emulator's request count when the task was first seen deferred

    def probe() -> tuple[dict[str, Any], list[RecordedRequest]] | None:
        ti = airflow.task_instances(DAG_ID, run_id).get(task_id)
        if ti is None:
            return None
        if ti["state"] in ("success", "failed", "upstream_failed", "skipped", "removed"):
            raise airflow.fail(f"{task_id} is {ti['state']} before it was seen deferred: {ti}")
        if ti["state"] != "deferred" or not ti.get("triggerer_job"):
            return None
        assert (ti.get("trigger") or {}).get("classpath") == trigger, ti
        if not deferred_since:
            deferred_since.append(len(emulator.requests))
            return None
        polls = gets_since(emulator, deferred_since[0], poll_path)
        if not polls or not airflow.scheduler_handled_deferral(DAG_ID, task_id, run_id):
            return None
        return ti, polls

    return airflow.wait_for(f"{task_id} to be deferred and polled by the triggerer", probe, TASK_TIMEOUT)


def test_deferrable_dag_in_a_real_deployment(
    deployment: AirflowDeployment, emulator: PhotaEmulator, tmp_path: Path
) -> None:
    airflow = deployment
    profile_id = create_profile(emulator)
    output_dir = tmp_path / "outputs"
    output_dir.mkdir()

    airflow.wait_for("the API server", lambda: airflow.api("GET", "/monitor/health"), START_TIMEOUT)
    airflow.wait_for("the execution API", airflow.execution_api_ready, START_TIMEOUT)
    airflow.wait_for("scheduler, triggerer and DAG processor to be healthy", airflow.healthy, START_TIMEOUT)

    def dag_parsed() -> dict[str, Any] | None:
        try:
            dag = airflow.api("GET", f"/dags/{DAG_ID}")
        except requests.HTTPError:
            return None
        return dag if not dag["is_paused"] else None

    try:
        airflow.wait_for(f"the DAG processor to parse {DAG_ID}", dag_parsed, PARSE_TIMEOUT)
    except AssertionError as error:
        raise AssertionError(f"{error}\nimport errors: {airflow.import_errors()}") from None

    run = airflow.api(
        "POST",
        f"/dags/{DAG_ID}/dagRuns",
        json={"logical_date": None, "conf": {"profile_id": profile_id, "output_path": str(output_dir)}},
    )
    run_id = run["dag_run_id"]

    # 1. The sensor finds training unfinished and defers; training finishes once the triggerer is polling.
    status_path = contract.profile_status_request(profile_id).path
    sensor, profile_polls = wait_until_deferred(airflow, emulator, run_id, SENSOR, PROFILE_TRIGGER, status_path)
    assert sensor["triggerer_job"]["job_type"] == "TriggererJob"
    assert emulator.profile_status(profile_id) != "READY"
    emulator.advance(TRAINING_SECONDS)

    # 2. The image operator submits one job and defers; the job finishes once the triggerer is polling.
    generate_job = airflow.wait_for("the image job", lambda: next(iter(emulator.jobs), None), TASK_TIMEOUT)
    job_path = contract.job_request(generate_job).path
    generate, job_polls = wait_until_deferred(airflow, emulator, run_id, GENERATE, JOB_TRIGGER, job_path)
    assert generate["triggerer_job"]["job_type"] == "TriggererJob"
    assert emulator.jobs[generate_job].status in ("QUEUED", "RUNNING")
    emulator.advance(JOB_SECONDS)

    # 3. The run succeeds.
    def run_finished() -> dict[str, Any] | None:
        state = airflow.dag_run(DAG_ID, run_id)
        if state["state"] == "failed":
            raise airflow.fail(f"DAG run {run_id} failed: {airflow.task_instances(DAG_ID, run_id)}")
        return state if state["state"] == "success" else None

    airflow.wait_for("the DAG run to succeed", run_finished, TASK_TIMEOUT)
    states = {task: ti["state"] for task, ti in airflow.task_instances(DAG_ID, run_id).items()}
    assert states == {SENSOR: "success", GENERATE: "success"}

    # The polls during the deferrals came from the triggers' aiohttp client; the sensor's check before it
    # deferred came from the worker's sync (requests) client.
    for polls in (profile_polls, job_polls):
        agents = {entry.headers.get("User-Agent", "") for entry in polls}
        assert all("aiohttp" in agent for agent in agents), agents
    worker_checks = [entry for entry in emulator.requests_to(status_path, "GET") if entry not in profile_polls]
    assert any("python-requests" in entry.headers.get("User-Agent", "") for entry in worker_checks), worker_checks

    # Each task's log has the part its trigger wrote on the triggerer (``attempt=1.log.trigger.<job>.log``).
    for task_id in (SENSOR, GENERATE):
        logs = list(airflow.task_logs(DAG_ID, task_id))
        trigger_parts = [path for path in logs if ".log.trigger." in path.name]
        assert trigger_parts, f"no trigger log part for {task_id}: {[path.name for path in logs]}"
        text = "".join(path.read_text(errors="replace") for path in trigger_parts)
        fired = [line for line in text.splitlines() if "Trigger fired event" in line]
        assert len(fired) == 1, text[-2000:]
        assert "'status': 'success'" in fired[0], fired[0]

    # One job, submitted and charged once; its two images are on disk and are real images.
    assert len(emulator.requests_to(f"{contract.API_PREFIX}/generate", "POST")) == 1
    assert [(charge.ref, charge.units) for charge in emulator.charges("images")] == [(generate_job, 2)]
    # Beside them, the task's manifest (its state across tries), which names exactly those two files.
    manifest = json.loads((output_dir / "generate-manifest.json").read_text())
    outputs = sorted(path for path in output_dir.iterdir() if path.suffix == ".png")
    assert len(outputs) == 2, outputs
    assert sorted(manifest["rows"][0]["output_uris"]) == [path.as_uri() for path in outputs]
    for path in outputs:
        with Image.open(path) as image:
            image.load()
            assert image.size == (1024, 1024), (path, image.size)
