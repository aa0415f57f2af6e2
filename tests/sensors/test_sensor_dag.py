"""End to end: the deferrable ProfileReadySensor in a real Airflow task run (``dag.test()`` runs its trigger
inline, rebuilt from ``serialize()``), against the emulator's real training clock."""

from __future__ import annotations

import threading
import time

from airflow_versions import AIRFLOW_VERSION
from dagrun_support import return_value, run_dag, task_states, try_numbers
from packaging.version import Version
from sensor_helpers import URLS

from airflow_provider_phota.hooks.phota import PhotaHook
from airflow_provider_phota.testing import PhotaEmulator


def finish_training_after_polls(emu: PhotaEmulator, profile_id: str, polls: int) -> threading.Thread:
    """Hold the profile in training until ``polls`` status requests were seen (the sensor's check before deferring,
    then the trigger's polls), then let it become READY. dag.test() starts tasks slowly (seconds to tens of
    seconds on a loaded machine), so the emulator's 1 s training clock alone could finish before the sensor looks."""
    path = f"/v1/phota/profiles/{profile_id}/status"
    emu.set_profile_outcome(profile_id, "IN_PROGRESS", "Training")

    def watch() -> None:
        deadline = time.monotonic() + 120
        while len(emu.requests_to(path)) < polls and time.monotonic() < deadline:
            time.sleep(0.02)
        emu.set_profile_outcome(profile_id, "READY")

    thread = threading.Thread(target=watch, name="finish-training", daemon=True)
    thread.start()
    return thread


def test_deferrable_sensor_waits_for_training_in_a_dag_run(
    airflow_db: None, phota_conn_id: str, phota_emulator: PhotaEmulator
) -> None:
    with PhotaHook(phota_conn_id) as hook:
        profile_id = hook.create_profile(URLS, tag="dag-subject")
    watcher = finish_training_after_polls(phota_emulator, profile_id, polls=3)
    dag_run = run_dag("sensor_wait", profile_id=profile_id)
    watcher.join(timeout=5)

    assert dag_run.state == "success"
    (ti,) = dag_run.get_task_instances()
    assert ti.state == "success"
    assert return_value(dag_run, "wait_for_profile") == {"profile_id": profile_id, "status": "READY", "message": ""}
    # checked once in the task (IN_PROGRESS), deferred, and the inline trigger polled until READY
    status_requests = phota_emulator.requests_to(f"/v1/phota/profiles/{profile_id}/status")
    assert len(status_requests) >= 4
    assert {r.status for r in status_requests} == {200}
    if Version("3.1") <= AIRFLOW_VERSION:  # 3.0's dag.test() leaves it set after the inline resume
        assert ti.next_method is None  # resumed through execute_complete and finished
    # a wait never creates or charges anything: the only POST is the setup's create
    assert [r.method for r in phota_emulator.requests if r.method != "GET"] == ["POST"]
    assert len(phota_emulator.charges("profile")) == 1


def delete_after_polls(emu: PhotaEmulator, profile_id: str, polls: int) -> threading.Thread:
    """Delete the profile once ``polls`` status requests were seen (the task's own check before deferring)."""
    path = f"/v1/phota/profiles/{profile_id}/status"

    def watch() -> None:
        deadline = time.monotonic() + 120
        while len(emu.requests_to(path)) < polls and time.monotonic() < deadline:
            time.sleep(0.01)
        with PhotaHook() as hook:
            hook.delete_profile(profile_id)

    thread = threading.Thread(target=watch, name="delete-profile", daemon=True)
    thread.start()
    return thread


def test_profile_deleted_during_the_deferred_wait_fails_without_retries(
    airflow_db: None, phota_conn_id: str, phota_emulator: PhotaEmulator
) -> None:
    """The trigger sees the 404: the task fails at once, as a 404 before deferring does, despite retries=2."""
    with PhotaHook(phota_conn_id) as hook:
        profile_id = hook.create_profile(URLS, tag="deleted-subject")
    phota_emulator.set_profile_outcome(profile_id, "IN_PROGRESS", "Training")
    watcher = delete_after_polls(phota_emulator, profile_id, polls=1)

    dag_run = run_dag("sensor_wait_with_retries", profile_id=profile_id)
    watcher.join(timeout=5)

    assert task_states(dag_run) == {"wait_for_profile": "failed"}
    assert try_numbers(dag_run) == {"wait_for_profile": 1}
    statuses = [r.status for r in phota_emulator.requests_to(f"/v1/phota/profiles/{profile_id}/status")]
    assert statuses[0] == 200  # the task's check, before deferring
    assert statuses[-1] == 404  # the trigger's
    assert statuses.count(404) == 1  # no retry looked again
