"""The deferrable path of the image operators: submit once, defer on the one job trigger (PhotaBatchTrigger, for
any number of jobs), resume from its event.

PhotaGenerateOperator stands for the four studio operators (they share the engine's ``_defer`` and
``execute_complete``).
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, TaskDeferred
from sensor_helpers import CONN_ID, make_context

from airflow_provider_phota.operators.images import PhotaGenerateOperator
from airflow_provider_phota.testing import PhotaEmulator
from airflow_provider_phota.testing.emulator import MARKER_MODERATE
from airflow_provider_phota.triggers.batch import PhotaBatchTrigger

SUBMIT = "/v1/phota/generate"
JOB_GLOB = "/v1/phota/jobs/*"


def generate(tmp_path: Path, prompt: str = "a lighthouse at dusk", **kwargs: Any) -> PhotaGenerateOperator:
    return PhotaGenerateOperator(
        task_id="generate",
        prompt=prompt,
        deferrable=True,
        output_path=str(tmp_path / "out"),
        num_output_images=2,
        poll_interval=7,
        timeout=900,
        **kwargs,
    )


def defer(task: PhotaGenerateOperator) -> TaskDeferred:
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(make_context("generate"))
    return deferred.value


def settle(emu: PhotaEmulator, job_id: str, status: str) -> None:
    """Finish the job on the emulator clock; its ticker settles due jobs every 50 ms."""
    emu.advance(3600)
    deadline = time.monotonic() + 5
    while emu.jobs[job_id].status != status:
        assert time.monotonic() < deadline, f"job {job_id} is {emu.jobs[job_id].status}, expected {status}"
        time.sleep(0.02)


def job_event(status: str, job_id: str, **extra: Any) -> dict[str, Any]:
    """A PhotaBatchTrigger event (the job id is not in it: the operator fetches its jobs once on resume)."""
    return {"status": status, "jobs": 1, "counts": {}, "message": "", **extra}


def job_of(deferred: TaskDeferred) -> str:
    (job_id,) = deferred.trigger.serialize()[1]["job_ids"]
    return str(job_id)


def test_submits_once_then_defers_on_the_job(emu: PhotaEmulator, tmp_path: Path) -> None:
    before = time.time()
    deferred = defer(generate(tmp_path))
    after = time.time()

    (job_id,) = emu.jobs
    assert type(deferred.trigger) is PhotaBatchTrigger
    classpath, kwargs = deferred.trigger.serialize()
    assert classpath == "airflow_provider_phota.triggers.batch.PhotaBatchTrigger"
    assert (kwargs["job_ids"], kwargs["phota_conn_id"], kwargs["poll_interval"]) == ([job_id], CONN_ID, 7.0)
    assert before + 900 <= kwargs["deadline"] <= after + 900
    assert deferred.method_name == "execute_complete"
    assert timedelta(seconds=899 + 60) <= deferred.timeout <= timedelta(seconds=900 + 60)
    (submit,) = emu.requests_to(SUBMIT, "POST")
    assert submit.json["async"] is True
    assert submit.json["client_request_id"].startswith("af:generate:")
    assert not deferred.kwargs  # the state is the manifest under output_path
    assert len(emu.requests_to(JOB_GLOB)) == 0  # the polling is the trigger's
    assert len(emu.charges("images")) == 1


def test_a_retried_task_defers_on_the_same_job_without_a_second_charge(emu: PhotaEmulator, tmp_path: Path) -> None:
    first = defer(generate(tmp_path))
    second = defer(generate(tmp_path))

    assert job_of(first) == job_of(second)
    assert len(emu.jobs) == 1
    assert len(emu.charges("images")) == 1
    keys = {r.json["client_request_id"] for r in emu.requests_to(SUBMIT, "POST")}
    assert len(keys) == 1


def test_success_event_fetches_the_job_once_and_writes_the_files(emu: PhotaEmulator, tmp_path: Path) -> None:
    task = generate(tmp_path)
    deferred = defer(task)
    job_id = job_of(deferred)
    settle(emu, job_id, "SUCCEEDED")
    gets_before = len(emu.requests_to(JOB_GLOB, "GET"))

    # the task runner's resume path: the deferral's kwargs plus the event
    resume = {**(deferred.kwargs or {}), "event": job_event("success", job_id)}
    result = task.resume_execution("execute_complete", resume, make_context("generate"))

    assert len(emu.requests_to(JOB_GLOB, "GET")) == gets_before + 1
    assert result["job_id"] == job_id
    assert result["client_request_id"] == emu.jobs[job_id].client_request_id
    assert result["images"] == 2
    assert len(result["output_uris"]) == 2
    assert result["download_urls"] == []  # written to storage: no expiring URLs in XCom
    assert result["manifest_uri"] == f"file://{tmp_path}/out/generate-manifest.json"
    written = sorted(p for p in (tmp_path / "out").iterdir() if p.suffix == ".png")
    assert [p.name for p in written] == [f"generate-row00001-{job_id[-12:]}-{i:02d}.png" for i in range(2)]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in written)
    assert len(emu.downloads) == 2


def test_error_event_for_a_job_that_did_finish_still_delivers(emu: PhotaEmulator, tmp_path: Path) -> None:
    """The job fetch on resume is the authoritative answer, not the trigger's last observation."""
    task = generate(tmp_path)
    job_id = job_of(defer(task))
    settle(emu, job_id, "SUCCEEDED")

    transient = job_event("error", job_id, message="503 from the API", retryable=True)
    result = task.execute_complete(make_context("generate"), transient)

    assert result["job_id"] == job_id
    assert len(result["output_uris"]) == 2


def test_error_event_that_cannot_heal_fails_without_retries(emu: PhotaEmulator, tmp_path: Path) -> None:
    """The trigger's 401 (another key on the triggerer) or 404 is final: the same outcome as the same error in the
    worker, whatever the job's state, and no request is spent on a job the task can no longer follow."""
    task = generate(tmp_path)
    job_id = job_of(defer(task))
    emu.advance(1000)  # the job is RUNNING: fetching it again would answer "still running"
    requests_before = len(emu.requests)
    refused = job_event("error", job_id, message="answered 401 UNAUTHORIZED: Invalid API key", retryable=False)

    with pytest.raises(AirflowFailException, match="answered 401"):
        task.execute_complete(make_context("generate"), refused)
    assert len(emu.requests) == requests_before


def test_timeout_event_while_running_fails_the_try_naming_the_job(emu: PhotaEmulator, tmp_path: Path) -> None:
    task = generate(tmp_path)
    job_id = job_of(defer(task))
    emu.advance(1000)  # past QUEUED, not finished
    assert emu.jobs[job_id].status == "RUNNING"

    with pytest.raises(
        AirflowException, match=r"1 Phota job\(s\) are not finished \(timeout: still RUNNING\)"
    ) as raised:
        task.execute_complete(make_context("generate"), job_event("timeout", job_id, message="still RUNNING"))

    # retryable on purpose: a retry finds the job in the manifest and waits for it again
    assert not isinstance(raised.value, AirflowFailException)
    assert "a retry resumes waiting for the same jobs" in str(raised.value)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["generate-manifest.json"]


def test_a_failed_job_is_replaced_and_the_task_defers_on_the_new_one(emu: PhotaEmulator, tmp_path: Path) -> None:
    """A job FAILED with an error a new job may not have: the same try submits a replacement under a derived key and
    defers on it; the FAILED job stays in the manifest, counted as charged."""
    task = generate(tmp_path)
    emu.fail_next_jobs(1)
    job_id = job_of(defer(task))
    settle(emu, job_id, "FAILED")

    with pytest.raises(TaskDeferred) as again:
        task.execute_complete(make_context("generate"), job_event("success", job_id))

    new_id = job_of(again.value)
    assert new_id != job_id
    first_key, new_key = (r.json["client_request_id"] for r in emu.requests_to(SUBMIT, "POST"))
    assert new_key != first_key
    manifest = json.loads((tmp_path / "out" / "generate-manifest.json").read_text())
    (failed,) = manifest["rows"][0]["failed_jobs"]
    assert (failed["job_id"], failed["error_type"]) == (job_id, "JOB_FAILED")
    assert failed["cost_basis"].endswith("a FAILED job, counted as charged")


def test_moderated_job_fails_without_retries(emu: PhotaEmulator, tmp_path: Path) -> None:
    task = generate(tmp_path, prompt=f"a portrait {MARKER_MODERATE}")
    job_id = job_of(defer(task))
    settle(emu, job_id, "FAILED")
    failed = job_event("success", job_id)

    with pytest.raises(AirflowFailException, match="CONTENT_MODERATION"):
        task.execute_complete(make_context("generate"), failed)


@pytest.mark.parametrize("payload", [None, {}, {"status": "weird", "job_id": "job_1"}])
def test_unexpected_event_fails_without_a_request(emu: PhotaEmulator, tmp_path: Path, payload: Any) -> None:
    with pytest.raises(AirflowFailException, match="unexpected trigger event"):
        generate(tmp_path).execute_complete(make_context("generate"), payload)
    assert emu.requests == []
