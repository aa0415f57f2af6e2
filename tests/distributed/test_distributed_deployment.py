"""The provider on a distributed Airflow deployment, with components killed mid-run.

From the test itself: a fresh PostgreSQL database (created, then dropped), a Redis key prefix of its own as the
Celery broker, the emulator in its own process (``phota-emulator``), and Airflow 3's components as processes: one
API server, one scheduler (CeleryExecutor), one DAG processor, **two triggerers** and **two Celery workers**
(concurrency 2). Each component has a hostname of its own (``[core] hostname_callable``), so the metadata database
says which worker ran a task and which triggerer holds a trigger. ``phota_default`` is set on every component.

The DAG (``dags/phota_distributed_batch.py``) trains a profile, waits for it on the triggerer, renders 60 rows as
deferrable async jobs in the ``phota_api`` pool and publishes a manifest. While it runs:

1. 429 bursts and 503s on the emulator: on submits (a 503 *after* the job was created, so the answer is lost), on
   job and profile polls, and a 502 after the profile was created;
2. the Celery worker running row 0's first try is SIGKILLed inside the window "job submitted, not yet deferred"
   (the DAG holds that try there, see its docstring): the scheduler fails the try after the heartbeat timeout and
   the retry, on the other worker, must reattach to the same job;
3. once one triggerer holds at least ``MIN_ORPHANS`` deferred job waits, it is SIGKILLed: the survivor must adopt
   them once the dead one's heartbeat is older than ``triggerer_health_check_threshold`` (10 s here).

Then, from the emulator's ledger and the metadata database: the run succeeded; exactly one charged job per row and
one profile training; every orphaned wait was adopted and fired on the survivor; every output file opens; the API
key is in no file under AIRFLOW_HOME and in no table. Every process is stopped, also when the test fails.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from deployment_helpers import AirflowDeployment
from distributed_support import (
    REDIS_URL,
    EmulatorProcess,
    MetadataDatabase,
    postgres_database,
    redis_key_prefix,
    sqlalchemy_url,
)
from PIL import Image

from airflow_provider_phota import contract

pytestmark = pytest.mark.distributed

HERE = Path(__file__).parent
DAGS = HERE / "dags"
DAG_ID = "phota_distributed_batch"
POOL, POOL_SLOTS = "phota_api", 3
ROWS = 60
HOLD_ROW = 0  # the DAG's HOLD_ROW
MIN_ORPHANS = 6  # kill a triggerer once it holds this many deferred job waits
TRAINING_SECONDS = 20.0
JOB_SECONDS = 40.0  # long enough for both kills to land while jobs are running
TRIGGERER_HEALTH_CHECK_THRESHOLD = 10.0
TRIGGERER_CAPACITY = 100  # either triggerer alone must hold every wait of the run (60 jobs + the profile)
WORKERS = ("worker-a", "worker-b")
TRIGGERERS = ("triggerer-a", "triggerer-b")
CELERY_WORKER = ["celery", "worker", "--concurrency", "2", "--queues", "default", "--skip-serve-logs"]
COMPONENTS = {
    "api-server": ["api-server"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    **{name: ["triggerer", "--skip-serve-logs"] for name in TRIGGERERS},
    **{name: [*CELERY_WORKER, "--celery-hostname", f"{name}@%h", "--without-mingle"] for name in WORKERS},
}
# Bounds of the phases (a healthy run takes 3-5 minutes on 2 busy cores); they only bound a broken run.
START_TIMEOUT = 240.0
HOLD_TIMEOUT = 240.0
KILL_TRIGGERER_TIMEOUT = 180.0
ADOPTION_TIMEOUT = 90.0
RUN_TIMEOUT = 480.0


@pytest.fixture
def api_key() -> str:
    return f"phota-dist-{secrets.token_hex(12)}"


@pytest.fixture
def emulator(tmp_path: Path, api_key: str) -> Iterator[EmulatorProcess]:
    emu = EmulatorProcess(
        tmp_path / "emulator.out", api_key=api_key, training_seconds=TRAINING_SECONDS, job_seconds=JOB_SECONDS
    )
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def database() -> Iterator[str]:
    with postgres_database() as name:
        yield name


@pytest.fixture
def broker_prefix() -> Iterator[str]:
    with redis_key_prefix() as prefix:
        yield prefix


def deployment_environment(
    database: str, prefix: str, emulator: EmulatorProcess, api_key: str, hold: Path
) -> dict[str, str]:
    connection = {
        "conn_type": "phota",
        "host": emulator.base_url,
        "password": api_key,
        "extra": {"max_attempts": 8, "retry_wait": 0.2, "retry_max_wait": 2, "read_timeout": 30},
    }
    url = sqlalchemy_url(database)
    return {
        "AIRFLOW_CONN_PHOTA_DEFAULT": json.dumps(connection),  # the connection on every worker and triggerer
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url,
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(32),
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "phota_test_hostname.hostname",
        "PYTHONPATH": str(HERE / "support"),
        "AIRFLOW__CELERY__BROKER_URL": REDIS_URL,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + url.replace("+psycopg2", ""),
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX": prefix,
        # A task message a dead worker had taken comes back after this, not after a day (the default).
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "60",
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "120",
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "15",
        # A try whose worker died is failed (and retried) after this many seconds without a heartbeat.
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
        # The survivor adopts a dead triggerer's triggers once its heartbeat is older than this.
        "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(TRIGGERER_HEALTH_CHECK_THRESHOLD),
        "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "3",
        "AIRFLOW__TRIGGERER__CAPACITY": str(TRIGGERER_CAPACITY),
        "PHOTA_DISTRIBUTED_HOLD_FILE": str(hold),
    }


@pytest.fixture
def deployment(
    tmp_path: Path, database: str, broker_prefix: str, emulator: EmulatorProcess, api_key: str
) -> Iterator[AirflowDeployment]:
    airflow = AirflowDeployment(
        tmp_path / "airflow-home",
        DAGS,
        deployment_environment(database, broker_prefix, emulator, api_key, tmp_path / "hold.json"),
        parallelism=4,  # the two workers' four slots; more would only queue messages in Redis
        components=COMPONENTS,
        component_env={name: {"PHOTA_COMPONENT_HOSTNAME": name} for name in COMPONENTS},
    )
    try:
        airflow.start()
        yield airflow
    finally:
        killed = airflow.stop()
        airflow.mark("stopped")
        print(f"\ndistributed deployment timeline (s since start): {airflow.timeline}")
        if killed:
            print(f"needed SIGKILL after the grace period: {killed}")
        leftovers = airflow.leftovers()
        assert not leftovers, f"processes of the deployment still alive after the stop: {leftovers}"


@pytest.fixture
def metadata(deployment: AirflowDeployment, database: str) -> Iterator[MetadataDatabase]:
    db = MetadataDatabase(database)
    try:
        yield db
    finally:
        db.close()


def arm_faults(emulator: EmulatorProcess) -> dict[int, int]:
    """429 bursts and 503s on submits and polls, a lost answer on the profile create; returns status -> count."""
    faults = [
        ("/generate", {"status": 429, "count": 6, "retry_after": 1, "method": "POST"}),
        ("/generate", {"status": 503, "count": 4, "after": True, "method": "POST"}),  # job created, answer lost
        ("/jobs/*", {"status": 429, "count": 10, "retry_after": 1}),
        ("/jobs/*", {"status": 503, "count": 10}),
        ("/profiles/*/status", {"status": 503, "count": 2}),
        ("/profiles/add", {"status": 502, "count": 1, "after": True}),  # profile created, answer lost
    ]
    totals: dict[int, int] = defaultdict(int)
    for path, spec in faults:
        emulator.inject_fault(path, **spec)
        totals[spec["status"]] += spec["count"]
    return dict(totals)


def wait_until_started(airflow: AirflowDeployment, metadata: MetadataDatabase) -> None:
    airflow.wait_for("the API server", lambda: airflow.api("GET", "/monitor/health"), START_TIMEOUT)
    airflow.wait_for("the execution API", airflow.execution_api_ready, START_TIMEOUT)
    airflow.wait_for("scheduler, triggerer and DAG processor to be healthy", airflow.healthy, START_TIMEOUT)

    def both_triggerers() -> dict[int, str] | None:
        live = metadata.live_triggerers(TRIGGERER_HEALTH_CHECK_THRESHOLD)
        return live if sorted(live.values()) == sorted(TRIGGERERS) else None

    airflow.wait_for("both triggerers to heartbeat", both_triggerers, START_TIMEOUT)

    def both_workers() -> bool | None:
        outputs = {name: (airflow.home / f"{name}.out").read_text(errors="replace") for name in WORKERS}
        return True if all(f"{name}@" in text and " ready." in text for name, text in outputs.items()) else None

    airflow.wait_for("both Celery workers to be ready", both_workers, START_TIMEOUT)

    def dag_parsed() -> dict[str, Any] | None:
        try:
            dag = airflow.api("GET", f"/dags/{DAG_ID}")
        except requests.HTTPError:
            return None
        return dag if not dag["is_paused"] else None

    try:
        airflow.wait_for(f"the DAG processor to parse {DAG_ID}", dag_parsed, START_TIMEOUT)
    except AssertionError as error:
        raise AssertionError(f"{error}\nimport errors: {airflow.import_errors()}") from None


def row_of(prompt: str) -> int:
    """The row number in a prompt of the DAG's ``row_prompt``."""
    return int(prompt.split("campaign row ", 1)[1][:3])


def duplicate_charges(emulator: EmulatorProcess) -> tuple[dict[int, list[str]], list[dict[str, Any]]]:
    """Row -> its charged jobs, and the image charges. A job is mapped to its row through the submit that
    carried its client_request_id."""
    prompts = {
        entry["json"]["client_request_id"]: entry["json"]["prompt"]
        for entry in emulator.requests()
        if entry["method"] == "POST" and entry["path"].endswith("/generate") and isinstance(entry["json"], dict)
    }
    jobs = emulator.jobs()
    charges = [charge for charge in emulator.charges() if charge["kind"] == "images"]
    by_row: dict[int, list[str]] = defaultdict(list)
    for charge in charges:
        by_row[row_of(prompts[jobs[charge["ref"]]["client_request_id"]])].append(charge["ref"])
    return dict(by_row), charges


def test_batch_survives_killed_worker_and_triggerer(
    deployment: AirflowDeployment,
    metadata: MetadataDatabase,
    emulator: EmulatorProcess,
    api_key: str,
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    airflow = deployment
    output_dir = tmp_path / "outputs"
    output_dir.mkdir()
    wait_until_started(airflow, metadata)
    airflow.api("POST", "/pools", json={"name": POOL, "slots": POOL_SLOTS, "include_deferred": False})
    injected = arm_faults(emulator)
    run = airflow.api(
        "POST",
        f"/dags/{DAG_ID}/dagRuns",
        json={"logical_date": None, "conf": {"rows": ROWS, "output_path": str(output_dir)}},
    )
    run_id = run["dag_run_id"]

    # --- 1. Kill the worker whose task has submitted its job and not yet deferred ------------------------------
    hold_file = tmp_path / "hold.json"

    def held() -> dict[str, Any] | None:
        if airflow.dag_run(DAG_ID, run_id)["state"] == "failed":
            raise airflow.fail(f"the run failed early: {metadata.task_instances(DAG_ID, run_id)}")
        return json.loads(hold_file.read_text()) if hold_file.exists() and hold_file.stat().st_size else None

    hold = airflow.wait_for(f"row {HOLD_ROW} to submit its job and hold before deferring", held, HOLD_TIMEOUT)
    state, try_number, hostname = metadata.task_instances(DAG_ID, run_id)[("render", HOLD_ROW)]
    assert (state, try_number, hostname) == ("running", hold["try_number"], hold["hostname"]), (state, try_number, hold)
    assert hold["job_id"] in emulator.jobs(), "the held try's job is not on the emulator"
    assert hold["hostname"] in WORKERS, hold
    killed_pids = airflow.kill(hold["hostname"])
    worker_killed_at = time.time()
    assert hold["pid"] in killed_pids, (hold, killed_pids)

    # --- 2. Kill the triggerer holding the most deferred job waits ---------------------------------------------
    def loaded_triggerer() -> tuple[int, str] | None:
        live = metadata.live_triggerers(TRIGGERER_HEALTH_CHECK_THRESHOLD)
        held_waits: dict[int, int] = defaultdict(int)
        for task_id, _, _, _, triggerer in metadata.deferred_waits(DAG_ID, run_id):
            if task_id == "render" and triggerer in live:
                held_waits[triggerer] += 1
        if len(live) != 2 or not held_waits:
            return None
        job_id, count = max(held_waits.items(), key=lambda item: item[1])
        return (job_id, live[job_id]) if count >= MIN_ORPHANS else None

    dead_job, dead_triggerer = airflow.wait_for(
        f"a triggerer to hold {MIN_ORPHANS} job waits", loaded_triggerer, KILL_TRIGGERER_TIMEOUT, interval=0.3
    )
    survivor_job = next(j for j, h in metadata.live_triggerers(60).items() if h != dead_triggerer)
    airflow.kill(dead_triggerer)
    killed_at = time.monotonic()
    silent_at_kill = metadata.heartbeat_age(dead_job)  # how long the dead triggerer had not heartbeat then
    orphans = {
        (task_id, map_index, try_number): trigger_id
        for task_id, map_index, try_number, trigger_id, triggerer in metadata.deferred_waits(DAG_ID, run_id)
        if triggerer == dead_job
    }
    assert len(orphans) >= MIN_ORPHANS, orphans

    # --- 3. The survivor adopts every orphaned wait ------------------------------------------------------------
    adopted_after: dict[int, float] = {}  # trigger id -> seconds from the kill until the survivor held it

    def all_adopted() -> bool | None:
        for trigger_id in orphans.values():
            if trigger_id in adopted_after:
                continue
            exists, owner = metadata.trigger_owner(trigger_id)
            assert owner in (dead_job, None, survivor_job), f"trigger {trigger_id} went to triggerer job {owner}"
            # A trigger already gone has fired and been cleaned up: only the survivor can have run it (the logs
            # are checked below); otherwise the survivor must hold it now.
            if owner == survivor_job or not exists:
                adopted_after[trigger_id] = round(time.monotonic() - killed_at, 1)
        return True if len(adopted_after) == len(orphans) else None

    airflow.wait_for("the surviving triggerer to adopt the orphaned waits", all_adopted, ADOPTION_TIMEOUT, 0.5)

    # --- 4. The run succeeds -----------------------------------------------------------------------------------
    def run_finished() -> dict[str, Any] | None:
        state = airflow.dag_run(DAG_ID, run_id)
        if state["state"] == "failed":
            raise airflow.fail(f"DAG run {run_id} failed: {metadata.task_instances(DAG_ID, run_id)}")
        return state if state["state"] == "success" else None

    airflow.wait_for("the DAG run to succeed", run_finished, RUN_TIMEOUT, interval=2)
    finished = time.monotonic()

    # Exactly one charged job per row and one profile training: nothing paid twice.
    by_row, image_charges = duplicate_charges(emulator)
    duplicates = {row: jobs for row, jobs in by_row.items() if len(jobs) > 1}
    assert not duplicates, (
        f"duplicate charge: {len(duplicates)} row(s) paid for more than one job "
        f"({len(image_charges)} charged jobs for {ROWS} rows): {duplicates}"
    )
    assert sorted(by_row) == list(range(ROWS)), f"rows without a charged job: {set(range(ROWS)) - set(by_row)}"
    all_charges = emulator.charges()
    assert [c for c in all_charges if c["kind"] == "refund"] == []
    profile_charges = [c for c in all_charges if c["kind"] == "profile"]
    assert len(profile_charges) == 1, f"duplicate charge: {len(profile_charges)} profile trainings: {profile_charges}"
    assert len(emulator.jobs()) == ROWS, f"{len(emulator.jobs())} jobs for {ROWS} rows"

    # Every task succeeded; the held row's killed try failed on the killed worker, and its retry, elsewhere,
    # reattached to the job that try had submitted.
    states = metadata.task_instances(DAG_ID, run_id)
    assert {state for state, _, _ in states.values()} == {"success"}, states
    assert len([key for key in states if key[0] == "render"]) == ROWS
    tries = metadata.tries(DAG_ID, run_id, "render", HOLD_ROW)
    (held_index,) = [i for i, entry in enumerate(tries) if entry[0] == hold["try_number"]]
    held_try, retry, last = tries[held_index], tries[held_index + 1], tries[-1]
    assert held_try[1] in ("failed", "up_for_retry"), tries
    assert held_try[2] == hold["hostname"], tries
    assert last[1] == "success", tries
    assert last[2] != hold["hostname"], tries
    retried_after = retry[3] - worker_killed_at  # from the kill to the start of the retry

    # The faults landed: the emulator answered every injected 429 and 503.
    recorded = emulator.requests()
    answered = {status: sum(1 for entry in recorded if entry["status"] == status) for status in (429, 503, 502)}
    assert answered == injected, (answered, injected)
    keys = {entry["headers"].get(contract.API_KEY_HEADER) for entry in recorded}
    assert keys == {api_key}, "every API request carried the connection's key"

    # Every orphaned wait fired on the survivor: its task's log has a trigger part from the surviving
    # triggerer's job that says so, and none from the dead one does.
    for task_id, map_index, try_number in orphans:
        folder = f"map_index={map_index}"
        parts = [path for path in airflow.task_logs(DAG_ID, task_id) if folder in path.parts]
        survivor_part = [p for p in parts if p.name == f"attempt={try_number}.log.trigger.{survivor_job}.log"]
        assert survivor_part, f"no log of {task_id}[{map_index}] from the survivor: {[p.name for p in parts]}"
        assert "Trigger fired event" in survivor_part[0].read_text(errors="replace"), survivor_part[0]
        for path in parts:
            if path.name == f"attempt={try_number}.log.trigger.{dead_job}.log":
                assert "Trigger fired event" not in path.read_text(errors="replace"), path

    # Every output exists and opens, and nothing else (no temporary file) is left in the folder.
    manifest = json.loads((output_dir / "manifest.json").read_text())["renders"]
    assert len(manifest) == ROWS
    assert manifest[HOLD_ROW]["job_id"] == hold["job_id"], "the retry of the killed try paid for a new job"
    assert {entry["job_id"] for entry in manifest} == {charge["ref"] for charge in image_charges}
    outputs = [Path(uri.removeprefix("file://")) for entry in manifest for uri in entry["output_uris"]]
    assert len(outputs) == sum(1 + row % 2 for row in range(ROWS))
    for path in outputs:
        with Image.open(path) as image:
            image.load()
            assert image.size == (1024, 1024), (path, image.size)
    # Beside them: the run's manifest and each task instance's own (the engine's state across tries).
    task_manifests = [output_dir / f"render-map{row}-manifest.json" for row in range(ROWS)]
    assert sorted(output_dir.iterdir()) == sorted([*outputs, output_dir / "manifest.json", *task_manifests])

    # The key is in no file of the deployment (logs, component output) and in no table. The searches find what
    # is there: the held job's id is in the logs and in the database.
    files = [path for path in airflow.home.rglob("*") if path.is_file()]
    leaked = [path for path in files if api_key.encode() in path.read_bytes()]
    assert leaked == [], f"the API key is in {leaked}"
    assert any(hold["job_id"].encode() in path.read_bytes() for path in files)
    assert metadata.tables_containing(api_key) == {}
    assert metadata.tables_containing(hold["job_id"]), "the table search finds nothing at all"

    adoption = sorted(adopted_after.values())
    print(
        f"\ndistributed run: {ROWS} rows, {len(image_charges)} charged jobs, {len(profile_charges)} profile "
        f"training; {len(orphans)} orphaned waits adopted {adoption[0]}-{adoption[-1]} s after the triggerer kill, "
        f"{adoption[-1] + silent_at_kill:.1f} s after its last heartbeat (threshold "
        f"{TRIGGERER_HEALTH_CHECK_THRESHOLD:.0f} s); the killed try retried {retried_after:.0f} s after the worker "
        f"kill; faults answered {answered}; run done {finished - started:.0f} s after the components started, "
        f"checks done {time.monotonic() - started:.0f} s; killed {hold['hostname']} and {dead_triggerer}"
    )
