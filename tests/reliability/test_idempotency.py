"""Idempotency, checked on the emulator's billing ledger: retries, kills and re-runs never pay twice."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pendulum
import pytest
from dagrun_support import return_value, run_dag, task_states, try_numbers
from PIL import Image
from reliability_support import API, MAX_ATTEMPTS, READ_TIMEOUT, READ_TIMEOUT_DELAY, STANDARD_URLS, task_context

from airflow_provider_phota._compat import AirflowException, AirflowFailException
from airflow_provider_phota.contract import CLIENT_REQUEST_ID_PATTERN
from airflow_provider_phota.hooks.phota import PhotaHook
from airflow_provider_phota.operators.images import PhotaGenerateOperator, PhotaStudioOperator
from airflow_provider_phota.operators.profile import PhotaCreateProfileOperator
from airflow_provider_phota.testing import PhotaEmulator
from airflow_provider_phota.testing.emulator import MARKER_MODERATE

# The set_conn fixture of tests/reliability/conftest.py (not imported: in a run of several test folders, "conftest"
# may be another folder's module).
SetConn = Callable[..., str]


def _images(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if not p.name.endswith("-manifest.json"))
    assert all(not p.name.startswith(".") for p in files), files  # no partial file left behind
    for path in files:
        with Image.open(path) as image:
            image.load()
    return files


def _submitted_keys(emu: PhotaEmulator) -> list[str]:
    return [request.json["client_request_id"] for request in emu.requests_to(f"{API}/generate", "POST")]


# --- async jobs ---------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("airflow_db")
def test_deferred_task_failing_after_submit_is_retried_onto_the_same_job(
    emu: PhotaEmulator, conn_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first try submits, defers, and dies on resume (a worker lost mid-task); Airflow retries it."""
    original = PhotaStudioOperator.execute_complete
    resumed: list[str] = []

    def dies_once(self: Any, context: Any, event: Any = None, **kwargs: Any) -> Any:
        resumed.append(event["status"])
        if len(resumed) == 1:
            raise AirflowException("worker lost after the job was submitted")
        return original(self, context, event, **kwargs)

    monkeypatch.setattr(PhotaStudioOperator, "execute_complete", dies_once)

    dag_run = run_dag("reliability_generate_deferrable_retry", out=str(tmp_path))

    assert task_states(dag_run) == {"generate": "success"}
    assert try_numbers(dag_run) == {"generate": 2}
    # The retry found the job in the manifest, already SUCCEEDED meanwhile: collected at once, without a submit or
    # a deferral.
    assert len(emu.requests_to(f"{API}/generate", "POST")) == 1
    assert len(emu.jobs) == 1
    assert resumed == ["success"]
    assert len(emu.charges("images")) == 1
    summary = return_value(dag_run, "generate")
    assert summary["job_id"] in emu.jobs
    assert len(_images(tmp_path)) == 2


def test_worker_killed_after_submit_then_retried_gets_the_same_job(
    emu: PhotaEmulator,
    conn_id: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A task killed right after the submit (SystemExit: nothing of the first try's memory survives)."""
    context = task_context(task_id="generate")

    def make() -> PhotaGenerateOperator:
        return PhotaGenerateOperator(
            task_id="generate", prompt="a red fox", output_path=str(tmp_path), poll_interval=0.05, timeout=30
        )

    first = make()
    monkeypatch.setattr(first.hook, "get_job", _raise(SystemExit("killed")))
    with pytest.raises(SystemExit):
        first.execute(context)
    assert len(emu.jobs) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["generate-manifest.json"]  # the job, noted before the wait
    emu.advance(emu.job_seconds / 2)  # the job left QUEUED while the task was down
    capfd.readouterr()

    summary = make().execute(context)  # the retry: a new process, the same task instance identity

    assert list(emu.jobs) == [summary["job_id"]]
    assert len(emu.charges("images")) == 1
    keys = _submitted_keys(emu)
    assert len(keys) == 1  # the retry took the job over from the manifest: no second submit
    assert len(_images(tmp_path)) == 1
    assert f"Reattached to job {summary['job_id']} (client_request_id {keys[0]})" in capfd.readouterr().out


def test_cleared_and_rerun_task_reuses_its_job_and_rewrites_the_same_files(
    emu: PhotaEmulator, conn_id: str, tmp_path: Path
) -> None:
    context = task_context(task_id="generate", run_id="scheduled__2026-01-01")

    def make() -> PhotaGenerateOperator:
        return PhotaGenerateOperator(
            task_id="generate",
            prompt="a blue whale",
            num_output_images=2,
            output_path=str(tmp_path),
            poll_interval=0.05,
        )

    first = make().execute(context)
    second = make().execute(context)  # cleared: same DAG run, same task, same request

    # the same job, key, files and cost: the re-run took everything over from the manifest
    assert second == first
    assert len(emu.jobs) == 1
    assert len(emu.charges("images")) == 1
    assert [f"file://{p}" for p in _images(tmp_path)] == sorted(first["output_uris"])


FAILED_JOB_DAGS = ["reliability_generate_retry", "reliability_generate_deferrable_retry"]


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("dag_id", FAILED_JOB_DAGS)
def test_retry_after_a_failed_job_pays_for_one_new_job_and_a_clear_reattaches_to_it(
    dag_id: str, emu: PhotaEmulator, conn_id: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The first job ends FAILED with a retryable error: the task pays for one new job under a derived key (the same
    key would return the same FAILED job forever), and clearing the task after its success submits nothing: the
    manifest knows both jobs."""
    emu.fail_next_jobs(1)
    logical_date = pendulum.datetime(2026, 2, 1 + FAILED_JOB_DAGS.index(dag_id), tz="UTC")

    dag_run = run_dag(dag_id, logical_date=logical_date, out=str(tmp_path))

    assert task_states(dag_run) == {"generate": "success"}
    assert try_numbers(dag_run) == {"generate": 1}  # replaced within the try: no Airflow retry spent on it
    failed_id, new_id = emu.jobs
    assert (emu.jobs[failed_id].status, emu.jobs[new_id].status) == ("FAILED", "SUCCEEDED")
    first_key = emu.jobs[failed_id].client_request_id
    new_key = emu.jobs[new_id].client_request_id
    assert first_key is not None
    assert new_key is not None
    assert new_key != first_key
    assert CLIENT_REQUEST_ID_PATTERN.fullmatch(new_key)
    assert _submitted_keys(emu) == [first_key, new_key]
    # The ledger: both jobs were charged (the emulator refunds the failed one; the provider does not count on it).
    assert [c.ref for c in emu.charges("images")] == [failed_id, new_id]
    summary = return_value(dag_run, "generate")
    assert summary["job_id"] == new_id
    assert len(_images(tmp_path)) == summary["images"]

    cleared = run_dag(dag_id, logical_date=logical_date, out=str(tmp_path))  # the same run, its task cleared

    assert cleared.run_id == dag_run.run_id
    assert task_states(cleared) == {"generate": "success"}
    assert list(emu.jobs) == [failed_id, new_id]  # no third job
    assert _submitted_keys(emu) == [first_key, new_key]  # and no submit at all
    assert [c.ref for c in emu.charges("images")] == [failed_id, new_id]
    assert return_value(cleared, "generate") == summary  # the same job, files and cost, counted once


def test_a_retry_after_a_moderated_job_does_not_submit_again(emu: PhotaEmulator, conn_id: str, tmp_path: Path) -> None:
    """A FAILED job that no retry can fix (moderation) fails without retries, and a cleared task does not pay
    for another job: it finds the FAILED job and fails the same way."""
    context = task_context(task_id="generate")

    def make() -> PhotaGenerateOperator:
        return PhotaGenerateOperator(
            task_id="generate",
            prompt=f"a portrait {MARKER_MODERATE}",
            output_path=str(tmp_path),
            deferrable=False,
            poll_interval=0.05,
        )

    with pytest.raises(AirflowFailException, match="CONTENT_MODERATION"):
        make().execute(context)
    with pytest.raises(AirflowFailException, match="CONTENT_MODERATION"):
        make().execute(context)

    assert len(emu.jobs) == 1
    assert len(_submitted_keys(emu)) == 1  # the second run found the FAILED row in the manifest


@pytest.mark.usefixtures("airflow_db")
def test_retry_after_a_lost_submit_answer_reattaches_to_the_original_job(
    emu: PhotaEmulator, conn_id: str, tmp_path: Path
) -> None:
    """Every attempt of the first try's submit reached the service and lost its answer: the job exists, the try
    failed with a connection error. The retry submits the same key and reattaches: one job, one charge."""
    emu.inject_fault(f"{API}/generate", drop=True, after=True, count=MAX_ATTEMPTS)

    dag_run = run_dag("reliability_generate_retry", out=str(tmp_path))

    assert task_states(dag_run) == {"generate": "success"}
    assert try_numbers(dag_run) == {"generate": 2}
    (job_id,) = emu.jobs
    keys = _submitted_keys(emu)
    assert len(keys) == MAX_ATTEMPTS + 1
    assert set(keys) == {emu.jobs[job_id].client_request_id}
    assert len(emu.charges("images")) == 1
    assert emu.charges("refund") == []
    assert return_value(dag_run, "generate")["job_id"] == job_id
    # The "Reattached to job" line is checked where the log is reliably captured (the retry executed directly,
    # above): with the OpenLineage provider installed, a task's log in a dag.test() that follows a deferring one in
    # the same process reaches neither stdout nor structlog's capture.


# --- profiles -----------------------------------------------------------------------------------------------------

AMBIGUOUS_AFTER_PROCESSING: dict[str, dict[str, Any]] = {
    "500": {"status": 500},
    "502": {"status": 502},
    "504": {"status": 504},
    "drop": {"drop": True},
    "malformed": {"malformed": True},
}


@pytest.mark.parametrize("fault_id", AMBIGUOUS_AFTER_PROCESSING)
def test_tagged_create_whose_answer_was_lost_leaves_one_profile(
    fault_id: str, emu: PhotaEmulator, conn_id: str
) -> None:
    """The server created the profile, then the answer was lost (``after=True``): the retry finds it by tag."""
    emu.inject_fault(f"{API}/profiles/add", after=True, count=MAX_ATTEMPTS, **AMBIGUOUS_AFTER_PROCESSING[fault_id])

    profile_id = PhotaHook(conn_id).create_profile(STANDARD_URLS, tag="lost-answer")

    assert list(emu.profiles) == [profile_id]
    assert len(emu.charges("profile")) == 1
    assert len(emu.requests_to(f"{API}/profiles/add")) == 1  # found by its tag instead of being resent


def test_tagged_create_after_a_read_timeout_leaves_one_profile(emu: PhotaEmulator, set_conn: SetConn) -> None:
    hook = PhotaHook(set_conn(read_timeout=READ_TIMEOUT))
    emu.inject_fault(f"{API}/profiles/add", delay=READ_TIMEOUT_DELAY, count=MAX_ATTEMPTS)

    try:
        profile_id = hook.create_profile(STANDARD_URLS, tag="slow-server")
    finally:
        time.sleep(READ_TIMEOUT_DELAY + 0.3)  # let every request still in flight finish on the server

    assert list(emu.profiles) == [profile_id]
    assert len(emu.charges("profile")) == 1


@pytest.mark.usefixtures("airflow_db")
def test_profile_task_failing_after_create_is_retried_onto_the_same_profile(
    emu: PhotaEmulator, conn_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = PhotaHook.create_profile
    created: list[str] = []

    def dies_after_create(self: PhotaHook, *args: Any, **kwargs: Any) -> str:
        created.append(original(self, *args, **kwargs))
        raise AirflowException("worker lost after the profile was created")

    monkeypatch.setattr(PhotaHook, "create_profile", dies_after_create)

    dag_run = run_dag("reliability_profile_retry", tag="retried-subject")

    assert task_states(dag_run) == {"create_profile": "success"}
    assert try_numbers(dag_run) == {"create_profile": 2}
    assert return_value(dag_run, "create_profile")["profile_id"] == created[0]
    assert list(emu.profiles) == created  # the retry reused it by tag: one create, one profile
    assert len(emu.charges("profile")) == 1


def test_cleared_profile_task_reuses_the_ready_profile(emu: PhotaEmulator, conn_id: str) -> None:
    context = task_context(task_id="create_profile")

    def make() -> PhotaCreateProfileOperator:
        return PhotaCreateProfileOperator(task_id="create_profile", image_urls=STANDARD_URLS, tag="cleared")

    first = make().execute(context)["profile_id"]
    emu.advance(emu.training_seconds + 1)
    assert emu.profile_status(first) == "READY"

    assert make().execute(context)["profile_id"] == first

    assert list(emu.profiles) == [first]
    assert len(emu.charges("profile")) == 1
    assert len(emu.requests_to(f"{API}/profiles/add")) == 1


def _raise(error: BaseException) -> Any:
    def raiser(*args: Any, **kwargs: Any) -> Any:
        raise error

    return raiser


def test_failed_jobs_of_one_request_are_bounded(
    emu: PhotaEmulator, conn_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every job FAILED (retryably): the task pays for one new job after each, until the bound stops the spending;
    a re-run pays for nothing more."""
    from airflow_provider_phota.engine import runner

    monkeypatch.setattr(runner, "MAX_FAILED_JOBS", 3)
    emu.fail_next_jobs(10)
    context = task_context(task_id="generate")

    def make() -> PhotaGenerateOperator:
        return PhotaGenerateOperator(task_id="generate", prompt="a gull", output_path=str(tmp_path), poll_interval=0.05)

    with pytest.raises(AirflowFailException, match=r"JOB_FAILED: .* \(3 jobs FAILED\)"):
        make().execute(context)
    assert len(emu.jobs) == 3
    with pytest.raises(AirflowFailException, match=r"\(3 jobs FAILED\)"):
        make().execute(context)

    assert len(emu.jobs) == 3  # the re-run paid for nothing
    assert len(emu.charges("images")) == 3
    assert len(set(_submitted_keys(emu))) == 3
