"""Idempotency, checked on the emulator's billing ledger: retries, kills and re-runs never pay twice."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from conftest import SetConn
from dagrun_support import return_value, run_dag, task_states, try_numbers
from PIL import Image
from reliability_support import API, MAX_ATTEMPTS, READ_TIMEOUT, READ_TIMEOUT_DELAY, STANDARD_URLS, task_context

from airflow_provider_phota._compat import AirflowException
from airflow_provider_phota.hooks.phota import PhotaHook
from airflow_provider_phota.operators.images import PhotaGenerateOperator, _PhotaImageOperator
from airflow_provider_phota.operators.profile import PhotaCreateProfileOperator
from airflow_provider_phota.testing import PhotaEmulator


def _images(folder: Path) -> list[Path]:
    files = sorted(folder.iterdir())
    assert all(not p.name.startswith(".") for p in files), files  # no partial file left behind
    for path in files:
        with Image.open(path) as image:
            image.load()
    return files


# --- async jobs ---------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("airflow_db")
def test_deferred_task_failing_after_submit_is_retried_onto_the_same_job(
    emu: PhotaEmulator, conn_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first try submits, defers, and dies on resume (a worker lost mid-task); Airflow retries it."""
    original = _PhotaImageOperator.execute_complete
    resumed: list[str] = []

    def dies_once(self: Any, context: Any, event: Any = None) -> Any:
        resumed.append(event["job_id"])
        if len(resumed) == 1:
            raise AirflowException("worker lost after the job was submitted")
        return original(self, context, event)

    monkeypatch.setattr(_PhotaImageOperator, "execute_complete", dies_once)

    dag_run = run_dag("reliability_generate_deferrable_retry", out=str(tmp_path))

    assert task_states(dag_run) == {"generate": "success"}
    assert try_numbers(dag_run) == {"generate": 2}
    submits = emu.requests_to(f"{API}/generate", "POST")
    assert len(submits) == 2
    assert len({s.json["client_request_id"] for s in submits}) == 1
    assert len(emu.jobs) == 1
    assert resumed == [next(iter(emu.jobs))] * 2  # both tries waited for the one job
    assert len(emu.charges("images")) == 1
    summary = return_value(dag_run, "generate")
    assert summary["job_id"] in emu.jobs
    assert len(_images(tmp_path)) == 2


def test_worker_killed_after_submit_then_retried_gets_the_same_job(
    emu: PhotaEmulator, conn_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task killed between the submit and the wait (SystemExit: nothing of the first try's memory survives)."""
    context = task_context(task_id="generate")

    def make() -> PhotaGenerateOperator:
        return PhotaGenerateOperator(task_id="generate", prompt="a red fox", output_path=str(tmp_path),
                                     deferrable=False, poll_interval=0.05, job_timeout=30)  # fmt: skip

    first = make()
    monkeypatch.setattr(first.hook, "wait_for_job", _raise(SystemExit("killed")))
    with pytest.raises(SystemExit):
        first.execute(context)
    assert len(emu.jobs) == 1
    assert list(tmp_path.iterdir()) == []

    summary = make().execute(context)  # the retry: a new process, the same task instance identity

    assert list(emu.jobs) == [summary["job_id"]]
    assert len(emu.charges("images")) == 1
    keys = [r.json["client_request_id"] for r in emu.requests_to(f"{API}/generate", "POST")]
    assert len(keys) == 2
    assert len(set(keys)) == 1
    assert len(_images(tmp_path)) == 1


def test_cleared_and_rerun_task_reuses_its_job_and_rewrites_the_same_files(
    emu: PhotaEmulator, conn_id: str, tmp_path: Path
) -> None:
    context = task_context(task_id="generate", run_id="scheduled__2026-01-01")
    operator = PhotaGenerateOperator(task_id="generate", prompt="a blue whale", num_output_images=2,
                                     output_path=str(tmp_path), deferrable=False, poll_interval=0.05)  # fmt: skip
    first = operator.execute(context)

    again = PhotaGenerateOperator(task_id="generate", prompt="a blue whale", num_output_images=2,
                                  output_path=str(tmp_path), deferrable=False, poll_interval=0.05)  # fmt: skip
    second = again.execute(context)  # cleared: same DAG run, same task, same request

    assert second == first
    assert len(emu.jobs) == 1
    assert len(emu.charges("images")) == 1
    assert [f"file://{p}" for p in _images(tmp_path)] == sorted(first["output_uris"])


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
    hook = PhotaHook(set_conn(timeout=READ_TIMEOUT))
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
    assert return_value(dag_run, "create_profile") == created[0]
    assert list(emu.profiles) == created  # the retry reused it by tag: one create, one profile
    assert len(emu.charges("profile")) == 1


def test_cleared_profile_task_reuses_the_ready_profile(emu: PhotaEmulator, conn_id: str) -> None:
    context = task_context(task_id="create_profile")

    def make() -> PhotaCreateProfileOperator:
        return PhotaCreateProfileOperator(task_id="create_profile", image_urls=STANDARD_URLS, tag="cleared")

    first = make().execute(context)
    emu.advance(emu.training_seconds + 1)
    assert emu.profile_status(first) == "READY"

    assert make().execute(context) == first

    assert list(emu.profiles) == [first]
    assert len(emu.charges("profile")) == 1
    assert len(emu.requests_to(f"{API}/profiles/add")) == 1


def _raise(error: BaseException) -> Any:
    def raiser(*args: Any, **kwargs: Any) -> Any:
        raise error

    return raiser
