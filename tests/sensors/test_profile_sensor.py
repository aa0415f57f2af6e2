"""ProfileReadySensor and PhotaCreateProfileOperator(wait_for_ready=True): every way of waiting, unit level.

The tasks are built directly and ``execute`` is called with a minimal context; a deferral is the ``TaskDeferred``
it raises, and ``execute_complete`` is fed the events the trigger can send.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
)
from airflow_versions import AIRFLOW_2, AIRFLOW_VERSION, AirflowRescheduleException
from packaging.version import Version
from sensor_helpers import CONN_ID, STATUS_GLOB, URLS, make_context

from airflow_provider_phota.hooks.phota import PhotaHook
from airflow_provider_phota.operators.profile import PhotaCreateProfileOperator
from airflow_provider_phota.sensors.phota import ProfileReadySensor
from airflow_provider_phota.testing import PhotaEmulator
from airflow_provider_phota.triggers.phota import ProfileReadyTrigger
from airflow_provider_phota.waiting import DEFER_TIMEOUT_GRACE_SECONDS


def create_profile(tag: str | None = None) -> str:
    with PhotaHook(CONN_ID) as hook:
        return hook.create_profile(URLS, tag=tag)


def sensor(profile_id: str, **kwargs: Any) -> ProfileReadySensor:
    kwargs.setdefault("deferrable", True)
    return ProfileReadySensor(task_id="wait_for_profile", profile_id=profile_id, **kwargs)


def status_gets(emu: PhotaEmulator) -> int:
    return len(emu.requests_to(STATUS_GLOB, "GET"))


@pytest.fixture
def after_status_calls(monkeypatch: pytest.MonkeyPatch) -> dict[int, Callable[[], Any]]:
    """``actions[n]`` runs once the sync hook's n-th profile status call (1-based) returned."""
    actions: dict[int, Callable[[], Any]] = {}
    calls = []
    original = PhotaHook.get_profile_status

    def spy(hook: PhotaHook, profile_id: str) -> Any:
        state = original(hook, profile_id)
        calls.append(state.status)
        if len(calls) in actions:
            actions[len(calls)]()
        return state

    monkeypatch.setattr(PhotaHook, "get_profile_status", spy)
    return actions


# --- deferrable sensor ---------------------------------------------------------------------------------------------


def test_training_profile_defers_on_the_trigger(emu: PhotaEmulator) -> None:
    profile_id = create_profile()
    task = sensor(profile_id, poke_interval=15, timeout=600)

    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(make_context())
    after = time.time()

    trigger = deferred.value.trigger
    assert type(trigger) is ProfileReadyTrigger
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_phota.triggers.phota.ProfileReadyTrigger"
    assert set(kwargs) == {"profile_id", "phota_conn_id", "poll_interval", "deadline"}
    assert (kwargs["profile_id"], kwargs["phota_conn_id"], kwargs["poll_interval"]) == (profile_id, CONN_ID, 15.0)
    assert before + 600 <= kwargs["deadline"] <= after + 600
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout == timedelta(seconds=600 + DEFER_TIMEOUT_GRACE_SECONDS)
    assert DEFER_TIMEOUT_GRACE_SECONDS == 60
    assert status_gets(emu) == 1  # checked once before deferring


def test_ready_profile_returns_without_deferring(emu: PhotaEmulator) -> None:
    profile_id = create_profile()
    emu.set_profile_outcome(profile_id, "READY")

    result = sensor(profile_id).execute(make_context())

    assert result == {"profile_id": profile_id, "status": "READY", "message": ""}
    assert status_gets(emu) == 1


@pytest.mark.parametrize("status", ["ERROR", "INACTIVE"])
def test_failed_profile_fails_without_retries_before_deferring(emu: PhotaEmulator, status: str) -> None:
    profile_id = create_profile()
    emu.set_profile_outcome(profile_id, status, "Faces too small in 7 of 10 photos")

    with pytest.raises(AirflowFailException, match=f"{profile_id} is {status}: Faces too small in 7 of 10 photos"):
        sensor(profile_id).execute(make_context())


@pytest.mark.parametrize("flag", ["soft_fail", "never_fail"])
def test_failed_profile_with_soft_fail_or_never_fail_is_skipped(emu: PhotaEmulator, flag: str) -> None:
    profile_id = create_profile()
    emu.set_profile_outcome(profile_id, "ERROR", "Faces too small")

    # BaseSensorOperator decides, in deferrable mode as in poke mode: the check before deferring is its poke.
    with pytest.raises(AirflowSkipException, match=f"Skipping due to {flag} is set to True") as deferrable:
        sensor(profile_id, **{flag: True}).execute(make_context())
    assert "Faces too small" in str(deferrable.value.__cause__)
    with pytest.raises(AirflowSkipException, match=f"Skipping due to {flag} is set to True"):
        sensor(profile_id, deferrable=False, mode="poke", **{flag: True}).execute(make_context())


def test_unknown_profile_fails_without_retries(emu: PhotaEmulator) -> None:
    with pytest.raises(AirflowFailException, match="404"):
        sensor("prof_missing").execute(make_context())
    assert status_gets(emu) == 1


def test_transient_errors_before_deferring_stay_retryable(emu: PhotaEmulator) -> None:
    """A 503 that outlasts the hook's retries is not a permanent failure: Airflow's task retries apply."""
    from airflow_provider_phota.exceptions import PhotaServerError

    profile_id = create_profile()
    emu.inject_fault(STATUS_GLOB, status=503, count=3)

    with pytest.raises(PhotaServerError):
        sensor(profile_id).execute(make_context())
    assert status_gets(emu) == 3


DEFAULTS_PROBE = """
import json
from airflow_provider_phota.operators.images import PhotaGenerateOperator
from airflow_provider_phota.operators.profile import PhotaCreateProfileOperator
from airflow_provider_phota.sensors.phota import ProfileReadySensor
tasks = [
    ProfileReadySensor(task_id="a", profile_id="p"),
    PhotaCreateProfileOperator(task_id="b", image_urls=[]),
    PhotaGenerateOperator(task_id="c", prompt="x"),
]
print(json.dumps([[task.deferrable, getattr(task, "mode", None)] for task in tasks]))
"""


@pytest.mark.parametrize(
    ("setting", "deferrable", "sensor_mode"), [("False", False, "reschedule"), ("True", True, "poke")]
)
def test_deferrable_defaults_to_the_deployment_setting(setting: str, deferrable: bool, sensor_mode: str) -> None:
    """``deferrable`` follows ``[operators] default_deferrable``, as in the Apache providers; a sensor that does not
    defer reschedules, so a 20-minute training never holds a worker slot."""
    env = {**os.environ, "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": setting}
    output = subprocess.run([sys.executable, "-c", DEFAULTS_PROBE], capture_output=True, text=True, env=env, check=True)

    assert json.loads(output.stdout.strip().splitlines()[-1]) == [
        [deferrable, sensor_mode],
        [deferrable, None],
        [deferrable, None],
    ]


def test_a_sensor_that_does_not_defer_reschedules_unless_told_otherwise() -> None:
    assert ProfileReadySensor(task_id="a", profile_id="p", deferrable=False).mode == "reschedule"
    assert ProfileReadySensor(task_id="b", profile_id="p", deferrable=False, mode="poke").mode == "poke"
    assert ProfileReadySensor(task_id="c", profile_id="p", deferrable=True).mode == "poke"


# --- poke and reschedule modes -----------------------------------------------------------------------------------


def test_poke_mode_waits_until_ready(emu: PhotaEmulator, after_status_calls: dict[int, Callable[[], Any]]) -> None:
    profile_id = create_profile()
    after_status_calls[3] = lambda: emu.advance(3600)

    task = sensor(profile_id, deferrable=False, mode="poke", poke_interval=0.05, timeout=30)
    result = task.execute(make_context())

    assert result == {"profile_id": profile_id, "status": "READY", "message": ""}
    assert status_gets(emu) == 4


def test_poke_mode_error_fails_and_soft_fail_skips(emu: PhotaEmulator) -> None:
    profile_id = create_profile()
    emu.set_profile_outcome(profile_id, "ERROR", "Blurry photos")

    with pytest.raises(AirflowFailException, match="Blurry photos"):
        sensor(profile_id, deferrable=False, mode="poke", poke_interval=0.05).execute(make_context())
    with pytest.raises(AirflowSkipException):
        sensor(profile_id, deferrable=False, poke_interval=0.05, soft_fail=True).execute(make_context())  # reschedule


def test_poke_mode_timeout(emu: PhotaEmulator) -> None:
    profile_id = create_profile()
    started = time.monotonic()

    with pytest.raises(AirflowSensorTimeout):
        sensor(profile_id, deferrable=False, mode="poke", poke_interval=0.05, timeout=0.3).execute(make_context())

    assert 0.3 <= time.monotonic() - started < 5
    assert status_gets(emu) >= 4
    soft = sensor(profile_id, deferrable=False, mode="poke", poke_interval=0.05, timeout=0.1, soft_fail=True)
    with pytest.raises(AirflowSkipException):
        soft.execute(make_context())


def test_reschedule_mode_releases_the_slot_between_pokes(emu: PhotaEmulator) -> None:
    profile_id = create_profile()
    task = sensor(profile_id, deferrable=False, poke_interval=60, timeout=600)  # reschedule: the default then
    assert task.mode == "reschedule"

    with pytest.raises(AirflowRescheduleException):
        task.execute(make_context())
    assert status_gets(emu) == 1

    emu.advance(3600)
    assert task.execute(make_context()) == {"profile_id": profile_id, "status": "READY", "message": ""}


# --- resuming from the trigger -----------------------------------------------------------------------------------


def event(status: str, **extra: Any) -> dict[str, Any]:
    return {"status": status, "profile_id": "prof_1", "api_status": "IN_PROGRESS", "message": "", **extra}


def test_execute_complete_success_returns_the_result() -> None:
    success = event("success", api_status="READY", message="")
    assert sensor("prof_1").execute_complete(make_context(), success) == {
        "profile_id": "prof_1",
        "status": "READY",
        "message": "",
    }


@pytest.mark.parametrize(
    ("payload", "error", "match"),
    [
        pytest.param(event("failed", api_status="ERROR", message="Blurry"), AirflowFailException, "ERROR: Blurry"),
        pytest.param(event("timeout", message="still IN_PROGRESS"), AirflowSensorTimeout, "still IN_PROGRESS"),
        pytest.param(event("error", message="answered 503"), AirflowException, "answered 503"),
        pytest.param(event("error", message="answered 503", retryable=True), AirflowException, "answered 503"),
        pytest.param(event("error", message="answered 404", retryable=False), AirflowFailException, "answered 404"),
        pytest.param(None, AirflowFailException, "unexpected trigger event"),
        pytest.param({}, AirflowFailException, "unexpected trigger event"),
        pytest.param({"status": "weird"}, AirflowFailException, "unexpected trigger event"),
        pytest.param("success", AirflowFailException, "unexpected trigger event"),
    ],
    ids=[
        "failed",
        "timeout",
        "error-from-an-older-trigger",
        "error-retryable",
        "error-not-retryable",
        "none",
        "empty",
        "unknown-status",
        "not-a-dict",
    ],
)
def test_execute_complete_maps_each_event(payload: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match) as raised:
        sensor("prof_1").execute_complete(make_context(), payload)
    if error is AirflowException:  # a retryable trigger error: not the no-retry subclasses
        assert not isinstance(raised.value, AirflowFailException | AirflowSensorTimeout)


def test_a_trigger_error_that_cannot_heal_fails_as_it_would_before_deferring(emu: PhotaEmulator) -> None:
    """A 404 before deferring fails without retries; the same 404 seen by the trigger must too (and skips with
    soft_fail through the base class's resume path)."""
    with pytest.raises(AirflowFailException, match="404") as before:
        sensor("prof_missing").execute(make_context())
    gone = {"event": event("error", message=str(before.value.__cause__), retryable=False)}

    with pytest.raises(AirflowFailException, match="404"):
        sensor("prof_missing").resume_execution("execute_complete", gone, make_context())
    with pytest.raises(AirflowSkipException):
        sensor("prof_missing", soft_fail=True).resume_execution("execute_complete", gone, make_context())


def test_resume_with_a_timeout_event_skips_with_soft_fail() -> None:
    """The path the task runner takes after the trigger fired: the base class's resume_execution."""
    kwargs = {"event": event("timeout", message="late")}
    with pytest.raises(AirflowSensorTimeout):
        sensor("prof_1").resume_execution("execute_complete", kwargs, make_context())
    with pytest.raises(AirflowSkipException):
        sensor("prof_1", soft_fail=True).resume_execution("execute_complete", kwargs, make_context())
    success = {"event": event("success", api_status="READY", message="")}
    assert sensor("prof_1").resume_execution("execute_complete", success, make_context())["status"] == "READY"


def test_defer_timeout_backstop_is_a_sensor_timeout() -> None:
    """If the triggerer was down at the deadline, Airflow's defer timeout fires: a sensor timeout from 3.1 on. The
    README's support table states what 3.0 and 2.11 do instead; this checks that it still says the truth."""
    if AIRFLOW_2:
        from airflow.exceptions import TaskDeferralError

        fail: dict[str, Any] = {"error": "Trigger/execution timeout"}
        with pytest.raises(TaskDeferralError):
            sensor("prof_1").resume_execution("__fail__", fail, make_context())
        with pytest.raises(AirflowSkipException):
            sensor("prof_1", soft_fail=True).resume_execution("__fail__", fail, make_context())
        return
    from airflow.sdk.bases.operator import TriggerFailureReason

    fail = {"error": TriggerFailureReason.TRIGGER_TIMEOUT}
    with pytest.raises(AirflowSensorTimeout):
        sensor("prof_1").resume_execution("__fail__", fail, make_context())
    with pytest.raises(AirflowSensorTimeout if Version("3.1") > AIRFLOW_VERSION else AirflowSkipException):
        sensor("prof_1", soft_fail=True).resume_execution("__fail__", fail, make_context())


# --- PhotaCreateProfileOperator(wait_for_ready=True) ---------------------------------------------------------------


def create_operator(**kwargs: Any) -> PhotaCreateProfileOperator:
    kwargs.setdefault("wait_for_ready", True)
    kwargs.setdefault("deferrable", True)
    return PhotaCreateProfileOperator(task_id="create_profile", image_urls=URLS, **kwargs)


def test_create_and_wait_defers_on_the_new_profile(emu: PhotaEmulator) -> None:
    task = create_operator(tag="subject-1", poll_interval=20, timeout=1800)

    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(make_context("create_profile"))
    after = time.time()

    assert len(emu.profiles) == 1
    (profile_id,) = emu.profiles
    assert type(deferred.value.trigger) is ProfileReadyTrigger
    _, kwargs = deferred.value.trigger.serialize()
    assert (kwargs["profile_id"], kwargs["phota_conn_id"], kwargs["poll_interval"]) == (profile_id, CONN_ID, 20.0)
    assert before + 1800 <= kwargs["deadline"] <= after + 1800
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout == timedelta(seconds=1800 + 60)
    assert deferred.value.kwargs == {"reused": False}
    assert len(emu.charges("profile")) == 1
    assert status_gets(emu) == 1  # one look after the create, then the trigger


def test_create_and_wait_on_a_reused_training_profile_says_so_after_the_deferral(emu: PhotaEmulator) -> None:
    existing = create_profile(tag="subject-3")
    task = create_operator(tag="subject-3", training_tier="standard")

    with pytest.raises(TaskDeferred) as deferred:
        task.execute(make_context("create_profile"))
    resume = {**(deferred.value.kwargs or {}), "event": event("success", profile_id=existing, api_status="READY")}
    result = task.resume_execution("execute_complete", resume, make_context("create_profile"))

    assert result == {
        "profile_id": existing,
        "status": "READY",
        "message": "",
        "tag": "subject-3",
        "training_tier": "standard",
        "reused": True,
        "cost_usd": 0.0,
        "cost_basis": "$0.00: an existing profile was reused, no training paid",
    }
    assert len(emu.profiles) == 1
    assert len(emu.charges("profile")) == 1


def test_create_and_wait_returns_the_id_when_already_ready(emu: PhotaEmulator) -> None:
    existing = create_profile(tag="subject-2")
    emu.set_profile_outcome(existing, "READY")

    result = create_operator(tag="subject-2").execute(make_context("create_profile"))
    assert (result["profile_id"], result["status"], result["reused"]) == (existing, "READY", True)
    assert len(emu.profiles) == 1  # reused, not created again
    assert len(emu.requests_to("/v1/phota/profiles/add", "POST")) == 1  # only the setup's


def test_create_and_wait_fails_without_deferring_when_training_already_failed(
    emu: PhotaEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = PhotaHook.create_profile

    def create_then_fail(hook: PhotaHook, *args: Any, **kwargs: Any) -> str:
        profile_id = original(hook, *args, **kwargs)
        emu.set_profile_outcome(profile_id, "ERROR", "No detectable subject")
        return profile_id

    monkeypatch.setattr(PhotaHook, "create_profile", create_then_fail)

    with pytest.raises(AirflowFailException, match="is ERROR: No detectable subject"):
        create_operator().execute(make_context("create_profile"))
    assert status_gets(emu) == 1


def test_create_operator_execute_complete_maps_events(emu: PhotaEmulator) -> None:  # its connection prices it
    task = create_operator()
    context = make_context("create_profile")
    success = task.execute_complete(context, event("success", api_status="READY", message=""))
    assert (success["profile_id"], success["status"], success["reused"]) == ("prof_1", "READY", False)
    with pytest.raises(AirflowFailException, match="prof_1 is ERROR: Blurry"):
        task.execute_complete(context, event("failed", api_status="ERROR", message="Blurry"))
    with pytest.raises(AirflowSensorTimeout, match="prof_1"):
        task.execute_complete(context, event("timeout", message="late"))
    with pytest.raises(AirflowException, match="answered 503") as raised:
        task.execute_complete(context, event("error", message="answered 503", retryable=True))
    assert not isinstance(raised.value, AirflowFailException)
    with pytest.raises(AirflowFailException, match="answered 404"):
        task.execute_complete(context, event("error", message="answered 404", retryable=False))
    for bad in (None, {}, {"status": "weird"}):
        with pytest.raises(AirflowFailException, match="unexpected trigger event"):
            task.execute_complete(context, bad)
