"""ProfileReadyTrigger and PhotaJobTrigger, run for real against the emulator.

Each test drives ``trigger.run()`` the way the triggerer does and collects every event, so "exactly one event" is
checked by the list's length, and the emulator's request log shows what the trigger sent.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from airflow_versions import AIRFLOW_VERSION
from packaging.version import Version
from trigger_helpers import CONN_ID, FAST_RETRIES

from airflow_provider_phota.contract import Endpoint, ErrorType, ProfileState
from airflow_provider_phota.hooks import transport
from airflow_provider_phota.hooks.phota import PhotaHook
from airflow_provider_phota.testing import PhotaEmulator
from airflow_provider_phota.testing.emulator import MARKER_FAIL_JOB, MARKER_TRAINING_ERROR, TRAINING_ERROR_MESSAGE
from airflow_provider_phota.triggers.phota import PhotaJobTrigger, ProfileReadyTrigger, _PhotaPollingTrigger

STATUS_GLOB = "/v1/phota/profiles/*/status"
JOB_GLOB = "/v1/phota/jobs/*"
EVENT_KEYS = {"status", "api_status", "message"}  # plus the resource id; error events add "retryable"
URLS = [f"https://example.com/p/{i}.jpg" for i in range(10)]
FAST = 0.05


async def until(condition: Callable[[], bool], task: asyncio.Task[Any], timeout: float = 30) -> None:
    """Wait for ``condition`` while ``task`` runs; a task that ended early or a condition never met fails the test
    instead of hanging it."""
    deadline = time.monotonic() + timeout
    while not condition():
        if task.done():
            task.result()  # its exception, if any
            raise AssertionError("the trigger ended before the condition was met")
        assert time.monotonic() < deadline, f"not met within {timeout} s"
        await asyncio.sleep(0.01)


# --- helpers ----------------------------------------------------------------------------------------------------


def create_profile(urls: list[str] | None = None) -> str:
    with PhotaHook(CONN_ID) as hook:
        return hook.create_profile(urls or URLS)


def submit_job(prompt: str = "a lighthouse at dusk", key: str = "trigger-test-1") -> str:
    with PhotaHook(CONN_ID) as hook:
        return hook.submit_job(Endpoint.GENERATE, {"prompt": prompt}, client_request_id=key).job_id


def in_(seconds: float) -> float:
    return time.time() + seconds


async def collect(trigger: _PhotaPollingTrigger, timeout: float = 15.0) -> list[dict[str, Any]]:
    """Every event the trigger sends until ``run()`` returns; each payload must survive a JSON round trip."""

    async def run() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    events = await asyncio.wait_for(run(), timeout)
    for payload in events:
        assert json.loads(json.dumps(payload)) == payload
    return events


@dataclass
class Poll:
    at: float  # wall time the poll started
    status: str | None  # None when the poll raised
    sessions: int  # users of the loop's shared aiohttp session right after the poll


@dataclass
class PollSpy:
    """Records every status call a trigger makes; ``after[n]`` runs once the n-th call (1-based) returned."""

    polls: list[Poll] = field(default_factory=list)
    after: dict[int, Callable[[], Any]] = field(default_factory=dict)

    def wrap(self, original: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def spy(hook: PhotaHook, resource_id: str) -> Any:
            at = time.time()
            try:
                state = await original(hook, resource_id)
            except Exception:
                self.polls.append(Poll(at, None, transport.shared_sessions.users()))
                raise
            self.polls.append(Poll(at, state.status, transport.shared_sessions.users()))
            action = self.after.get(len(self.polls))
            if action is not None:
                action()
            return state

        return spy


@pytest.fixture
def profile_polls(monkeypatch: pytest.MonkeyPatch) -> PollSpy:
    spy = PollSpy()
    monkeypatch.setattr(PhotaHook, "aget_profile_status", spy.wrap(PhotaHook.aget_profile_status))
    return spy


@pytest.fixture
def job_polls(monkeypatch: pytest.MonkeyPatch) -> PollSpy:
    spy = PollSpy()
    monkeypatch.setattr(PhotaHook, "aget_job", spy.wrap(PhotaHook.aget_job))
    return spy


def methods_since(emu: PhotaEmulator, start: int) -> list[str]:
    return [entry.method for entry in emu.requests[start:]]


# --- ProfileReadyTrigger: outcomes ------------------------------------------------------------------------------


async def test_ready_profile_sends_one_success_event(emu: PhotaEmulator, profile_polls: PollSpy) -> None:
    profile_id = create_profile()
    emu.advance(3600)  # training done
    before = len(emu.requests)

    events = await collect(ProfileReadyTrigger(profile_id, CONN_ID, FAST, in_(10)))

    assert len(events) == 1
    event = events[0]
    assert set(event) == EVENT_KEYS | {"profile_id"}
    assert event["status"] == "success"
    assert event["profile_id"] == profile_id
    assert event["api_status"] == "READY"
    assert event["message"] == ""
    assert len(profile_polls.polls) == 1
    assert methods_since(emu, before) == ["GET"]
    assert transport.shared_sessions.users() == 0  # the shared aiohttp session was released


async def test_waits_through_training_statuses_until_ready(emu: PhotaEmulator, profile_polls: PollSpy) -> None:
    profile_id = create_profile()
    profile_polls.after[3] = lambda: emu.advance(3600)  # training finishes after the third poll
    before = len(emu.requests)

    events = await collect(ProfileReadyTrigger(profile_id, CONN_ID, FAST, in_(10)))

    assert [e["status"] for e in events] == ["success"]
    assert [p.status for p in profile_polls.polls] == ["VALIDATING", "VALIDATING", "VALIDATING", "READY"]
    # one GET per poll, and a trigger only ever reads
    assert len(emu.requests_to(STATUS_GLOB)) == 4
    assert methods_since(emu, before) == ["GET"] * 4
    # polls are poll_interval apart, not a busy loop
    gaps = [b.at - a.at for a, b in zip(profile_polls.polls, profile_polls.polls[1:], strict=False)]
    assert min(gaps) >= FAST * 0.9
    # the session was in use during the wait and released after it
    assert all(p.sessions == 1 for p in profile_polls.polls)
    assert transport.shared_sessions.users() == 0


async def test_error_profile_fails_with_the_api_message(emu: PhotaEmulator) -> None:
    profile_id = create_profile()
    emu.set_profile_outcome(profile_id, "ERROR", "Faces too small in 7 of 10 photos")

    events = await collect(ProfileReadyTrigger(profile_id, CONN_ID, FAST, in_(10)))

    assert len(events) == 1
    assert events[0]["status"] == "failed"
    assert events[0]["api_status"] == "ERROR"
    assert events[0]["profile_id"] == profile_id
    assert events[0]["message"] == "Faces too small in 7 of 10 photos"


async def test_training_that_ends_in_error_fails(emu: PhotaEmulator, profile_polls: PollSpy) -> None:
    profile_id = create_profile([*URLS[:9], f"https://example.com/{MARKER_TRAINING_ERROR}.jpg"])
    profile_polls.after[1] = lambda: emu.advance(3600)

    events = await collect(ProfileReadyTrigger(profile_id, CONN_ID, FAST, in_(10)))

    assert [(e["status"], e["api_status"], e["message"]) for e in events] == [
        ("failed", "ERROR", TRAINING_ERROR_MESSAGE)
    ]
    assert [p.status for p in profile_polls.polls] == ["VALIDATING", "ERROR"]


async def test_inactive_profile_fails(emu: PhotaEmulator) -> None:
    profile_id = create_profile()
    emu.set_profile_outcome(profile_id, "INACTIVE", "Profile deactivated")

    events = await collect(ProfileReadyTrigger(profile_id, CONN_ID, FAST, in_(10)))

    assert [(e["status"], e["api_status"]) for e in events] == [("failed", "INACTIVE")]
    assert events[0]["message"] == "Profile deactivated"


# --- ProfileReadyTrigger: the deadline ---------------------------------------------------------------------------


async def test_timeout_comes_after_a_final_check_at_the_deadline(emu: PhotaEmulator, profile_polls: PollSpy) -> None:
    profile_id = create_profile()
    emu.set_profile_outcome(profile_id, "IN_PROGRESS", "Training")
    deadline = in_(0.4)

    events = await collect(ProfileReadyTrigger(profile_id, CONN_ID, 0.1, deadline))

    assert len(events) == 1
    event = events[0]
    assert event["status"] == "timeout"
    assert event["api_status"] == "IN_PROGRESS"
    assert f"profile_id {profile_id} still IN_PROGRESS at the deadline" == event["message"]
    polls = profile_polls.polls
    assert polls[-1].at >= deadline  # the final GET happened at (not before) the deadline
    assert all(p.at < deadline for p in polls[:-1])
    assert 3 <= len(polls) <= 7  # about 0.4 s / 0.1 s, plus the final check
    assert len(emu.requests_to(STATUS_GLOB, "GET")) == len(polls)  # exactly one request per poll


async def test_ready_during_the_last_sleep_is_success_not_timeout(emu: PhotaEmulator, profile_polls: PollSpy) -> None:
    """The poll interval is longer than the wait: the first poll sees training, the trigger sleeps until the
    deadline, training finishes meanwhile, and the final re-check (deadline already past) must report success."""
    profile_id = create_profile()
    profile_polls.after[1] = lambda: emu.advance(3600)
    deadline = in_(0.5)

    events = await collect(ProfileReadyTrigger(profile_id, CONN_ID, poll_interval=30, deadline=deadline))

    assert [(e["status"], e["api_status"]) for e in events] == [("success", "READY")]
    assert [p.status for p in profile_polls.polls] == ["VALIDATING", "READY"]
    assert profile_polls.polls[1].at >= deadline  # it was the re-check, not an early poll
    assert len(emu.requests_to(STATUS_GLOB)) == 2


async def test_deadline_already_past_still_checks_once(emu: PhotaEmulator) -> None:
    """A trigger rebuilt after its deadline (triggerer down for a while) checks once before timing out."""
    ready, training = create_profile(), create_profile()
    emu.set_profile_outcome(ready, "READY")
    emu.set_profile_outcome(training, "QUEUING")

    assert [e["status"] for e in await collect(ProfileReadyTrigger(ready, CONN_ID, FAST, in_(-60)))] == ["success"]
    events = await collect(ProfileReadyTrigger(training, CONN_ID, FAST, in_(-60)))
    assert [(e["status"], e["api_status"]) for e in events] == [("timeout", "QUEUING")]
    assert len(emu.requests_to(STATUS_GLOB)) == 2


# --- ProfileReadyTrigger: errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param({"status": 503}, id="503"),
        pytest.param({"status": 500}, id="500"),
        pytest.param({"drop": True}, id="dropped-connection"),
        pytest.param({"malformed": True}, id="malformed-body"),
    ],
)
async def test_transient_errors_beyond_the_hook_retries_are_survived(
    emu: PhotaEmulator, profile_polls: PollSpy, task_log: Callable[[], str], fault: dict[str, Any]
) -> None:
    profile_id = create_profile()
    emu.set_profile_outcome(profile_id, "READY")
    # 3 attempts per poll: two whole polls fail, the third poll's first attempt fails, its retry succeeds.
    emu.inject_fault(STATUS_GLOB, count=7, **fault)

    events = await collect(ProfileReadyTrigger(profile_id, CONN_ID, FAST, in_(20)))

    assert [(e["status"], e["api_status"]) for e in events] == [("success", "READY")]
    statuses = [p.status for p in profile_polls.polls]
    if fault.get("drop"):
        # aiohttp itself resends an idempotent GET once when a reused keep-alive connection is dropped, so
        # fewer hook attempts consume the 7 faults; at least the first whole poll still fails.
        assert statuses[0] is None
        assert statuses[-1] == "READY"
    else:
        assert statuses == [None, None, "READY"]
    assert len(emu.requests_to(STATUS_GLOB, "GET")) == 8  # 7 failures, then the answer
    # Airflow's structlog writes the trigger's log to stdout: one warning per failed poll
    assert task_log().count("transient error, still waiting") == statuses.count(None)
    assert transport.shared_sessions.users() == 0


async def test_errors_until_the_deadline_end_in_timeout_with_the_last_error(emu: PhotaEmulator) -> None:
    profile_id = create_profile()
    emu.inject_fault(STATUS_GLOB, status=503, count=1000)

    events = await collect(ProfileReadyTrigger(profile_id, CONN_ID, FAST, in_(0.3)))

    assert len(events) == 1
    assert events[0]["status"] == "timeout"
    assert events[0]["api_status"] is None  # never saw a status
    assert "(last error:" in events[0]["message"]
    assert "503" in events[0]["message"]


async def test_unknown_profile_is_one_error_event_without_retries(emu: PhotaEmulator) -> None:
    events = await collect(ProfileReadyTrigger("prof_does_not_exist", CONN_ID, FAST, in_(10)))

    assert len(events) == 1
    assert events[0]["status"] == "error"
    assert events[0]["profile_id"] == "prof_does_not_exist"
    assert "404" in events[0]["message"]
    assert events[0]["retryable"] is False  # the resuming task fails without retries, as before deferring
    assert len(emu.requests_to(STATUS_GLOB)) == 1  # 404 is not retried, neither by the hook nor the loop
    assert transport.shared_sessions.users() == 0


async def test_profile_deleted_while_waiting_is_an_error_not_a_wait_until_the_deadline(
    emu: PhotaEmulator, profile_polls: PollSpy
) -> None:
    profile_id = create_profile()

    def delete() -> None:
        with emu._state.lock:
            emu._state.profiles.pop(profile_id)

    profile_polls.after[2] = delete
    started = time.monotonic()

    events = await collect(ProfileReadyTrigger(profile_id, CONN_ID, FAST, in_(30)))

    assert [(e["status"], e["api_status"]) for e in events] == [("error", "VALIDATING")]
    assert time.monotonic() - started < 5


async def test_wrong_api_key_is_one_error_event_that_does_not_leak_the_key(
    emu: PhotaEmulator, phota_connection: Callable[..., str]
) -> None:
    profile_id = create_profile()
    phota_connection(emulator=emu, api_key="sk-wrong-secret-1234", **FAST_RETRIES)

    events = await collect(ProfileReadyTrigger(profile_id, CONN_ID, FAST, in_(10)))

    assert len(events) == 1
    assert events[0]["status"] == "error"
    assert "401" in events[0]["message"]
    assert events[0]["retryable"] is False
    assert "sk-wrong-secret-1234" not in json.dumps(events[0])
    assert len(emu.requests_to(STATUS_GLOB)) == 1


@pytest.mark.parametrize("then", ["READY", None])
async def test_unknown_status_is_not_finished(
    emu: PhotaEmulator, monkeypatch: pytest.MonkeyPatch, then: str | None
) -> None:
    """A status this provider does not know (a newer API) means "keep waiting", bounded by the deadline
    (api-decisions D3, D15)."""
    profile_id = create_profile()
    emu.set_profile_outcome(profile_id, "READY")
    original = PhotaHook.aget_profile_status
    calls = []

    async def newer_api(hook: PhotaHook, pid: str) -> ProfileState:
        calls.append(pid)
        if then is None or len(calls) <= 3:
            return ProfileState(pid, "RETRAINING", "Retraining with new photos")
        return await original(hook, pid)

    monkeypatch.setattr(PhotaHook, "aget_profile_status", newer_api)

    events = await collect(ProfileReadyTrigger(profile_id, CONN_ID, FAST, in_(0.5 if then is None else 10)))

    assert len(events) == 1
    if then == "READY":
        assert (events[0]["status"], events[0]["api_status"]) == ("success", "READY")
        assert len(calls) == 4
    else:
        assert (events[0]["status"], events[0]["api_status"]) == ("timeout", "RETRAINING")
        assert len(calls) >= 5


# --- ProfileReadyTrigger: serialization and the triggerer's rules -----------------------------------------------


@pytest.mark.parametrize(
    ("trigger_class", "id_field"), [(ProfileReadyTrigger, "profile_id"), (PhotaJobTrigger, "job_id")]
)
def test_serialize_round_trip(trigger_class: type[_PhotaPollingTrigger], id_field: str) -> None:
    deadline = time.time() + 1234.5
    trigger = trigger_class("res_123", "my_phota", 15, deadline)  # type: ignore[call-arg]

    classpath, kwargs = trigger.serialize()

    module, _, name = classpath.rpartition(".")
    assert getattr(importlib.import_module(module), name) is trigger_class
    assert kwargs == {id_field: "res_123", "phota_conn_id": "my_phota", "poll_interval": 15.0, "deadline": deadline}
    assert json.loads(json.dumps(kwargs)) == kwargs
    rebuilt = trigger_class(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert getattr(rebuilt, id_field) == "res_123"


async def test_serialized_kwargs_never_hold_the_api_key(emu: PhotaEmulator) -> None:
    profile_id = create_profile()
    emu.set_profile_outcome(profile_id, "READY")
    trigger = ProfileReadyTrigger(profile_id, CONN_ID, FAST, in_(10))

    await collect(trigger)  # after the connection was looked up, too

    assert emu.api_key not in json.dumps(trigger.serialize())
    assert emu.api_key not in repr(trigger.serialize())


@pytest.mark.skipif(
    Version("3.3.2") > AIRFLOW_VERSION,
    reason="before 3.3.2 common-compat looks the connection up in a worker thread (test_hook_async checks that)",
)
async def test_run_never_fetches_the_connection_synchronously(
    emu: PhotaEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A synchronous connection fetch inside the triggerer's event loop crashes on Airflow 3."""
    from airflow.providers.common.compat.sdk import BaseHook
    from airflow.sdk.execution_time import context as execution_context

    profile_id = create_profile()
    emu.set_profile_outcome(profile_id, "READY")

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("synchronous connection fetch inside a trigger")

    monkeypatch.setattr(BaseHook, "get_connection", classmethod(forbidden))
    monkeypatch.setattr(PhotaHook, "get_connection", classmethod(forbidden))
    monkeypatch.setattr(execution_context, "_get_connection", forbidden)
    with pytest.raises(AssertionError, match="synchronous"):
        PhotaHook(CONN_ID).settings  # noqa: B018 - the patch is effective for the sync path

    events = await collect(ProfileReadyTrigger(profile_id, CONN_ID, FAST, in_(10)))

    assert [e["status"] for e in events] == ["success"]


async def test_many_polls_send_exactly_one_get_each(emu: PhotaEmulator, profile_polls: PollSpy) -> None:
    profile_id = create_profile()
    profile_polls.after[8] = lambda: emu.set_profile_outcome(profile_id, "READY")
    before = len(emu.requests)

    events = await collect(ProfileReadyTrigger(profile_id, CONN_ID, 0.02, in_(10)))

    assert [e["status"] for e in events] == ["success"]
    assert len(profile_polls.polls) == 9
    assert methods_since(emu, before) == ["GET"] * 9
    assert {r.path for r in emu.requests[before:]} == {f"/v1/phota/profiles/{profile_id}/status"}


async def test_cancelled_trigger_releases_the_session_and_sends_nothing(
    emu: PhotaEmulator, profile_polls: PollSpy
) -> None:
    profile_id = create_profile()
    events: list[dict[str, Any]] = []

    async def run() -> None:
        async for event in ProfileReadyTrigger(profile_id, CONN_ID, FAST, in_(30)).run():
            events.append(event.payload)

    task = asyncio.create_task(run())
    await until(lambda: len(profile_polls.polls) >= 2, task)
    assert transport.shared_sessions.users() == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert events == []
    assert transport.shared_sessions.users() == 0


async def test_two_triggers_in_one_loop_share_one_session(emu: PhotaEmulator, profile_polls: PollSpy) -> None:
    first, second = create_profile(), create_profile()
    emu.set_profile_outcome(first, "IN_PROGRESS")
    emu.set_profile_outcome(second, "IN_PROGRESS")
    profile_polls.after[6] = lambda: (emu.set_profile_outcome(first, "READY"), emu.set_profile_outcome(second, "READY"))

    results = await asyncio.gather(
        collect(ProfileReadyTrigger(first, CONN_ID, FAST, in_(10))),
        collect(ProfileReadyTrigger(second, CONN_ID, FAST, in_(10))),
    )

    assert [[e["status"] for e in events] for events in results] == [["success"], ["success"]]
    assert max(p.sessions for p in profile_polls.polls) == 2  # two users of one shared session
    assert transport.shared_sessions.users() == 0


# --- PhotaJobTrigger ----------------------------------------------------------------------------------------------


async def test_job_success(emu: PhotaEmulator, job_polls: PollSpy) -> None:
    job_id = submit_job()
    job_polls.after[2] = lambda: emu.advance(3600)  # the emulator's ticker settles the job within 50 ms
    before = len(emu.requests)

    events = await collect(PhotaJobTrigger(job_id, CONN_ID, FAST, in_(10)))

    assert len(events) == 1
    event = events[0]
    assert set(event) == EVENT_KEYS | {"job_id"}  # no URLs in the event: the operator fetches the job
    assert (event["status"], event["job_id"], event["api_status"]) == ("success", job_id, "SUCCEEDED")
    assert event["message"] == ""
    assert job_polls.polls[0].status == "QUEUED"
    assert job_polls.polls[-1].status == "SUCCEEDED"
    assert set(methods_since(emu, before)) == {"GET"}
    assert len(emu.requests_to(JOB_GLOB)) == len(job_polls.polls)
    assert transport.shared_sessions.users() == 0


async def test_failed_job_carries_error_type_and_message(emu: PhotaEmulator) -> None:
    job_id = submit_job(prompt=f"a portrait {MARKER_FAIL_JOB}")
    emu.advance(3600)

    events = await collect(PhotaJobTrigger(job_id, CONN_ID, FAST, in_(10)))

    assert len(events) == 1
    event = events[0]
    assert set(event) == EVENT_KEYS | {"job_id"}
    assert (event["status"], event["job_id"], event["api_status"]) == ("failed", job_id, "FAILED")
    assert event["message"].startswith(f"{ErrorType.JOB_FAILED}: ")
    assert MARKER_FAIL_JOB in event["message"]


async def test_unknown_job_is_an_error(emu: PhotaEmulator) -> None:
    events = await collect(PhotaJobTrigger("job_missing", CONN_ID, FAST, in_(10)))

    assert [(e["status"], e["job_id"], e["retryable"]) for e in events] == [("error", "job_missing", False)]
    assert "404" in events[0]["message"]


async def test_job_timeout_after_a_final_check(emu: PhotaEmulator, job_polls: PollSpy) -> None:
    job_id = submit_job()
    deadline = in_(0.3)

    events = await collect(PhotaJobTrigger(job_id, CONN_ID, 0.1, deadline))

    assert [(e["status"], e["api_status"]) for e in events] == [("timeout", "QUEUED")]
    assert job_id in events[0]["message"]
    assert job_polls.polls[-1].at >= deadline
    assert len(emu.requests_to(JOB_GLOB)) == len(job_polls.polls)


async def test_job_finished_during_the_last_sleep_is_success(emu: PhotaEmulator, job_polls: PollSpy) -> None:
    job_id = submit_job()
    job_polls.after[1] = lambda: emu.advance(3600)
    deadline = in_(0.5)

    events = await collect(PhotaJobTrigger(job_id, CONN_ID, poll_interval=30, deadline=deadline))

    assert [(e["status"], e["api_status"]) for e in events] == [("success", "SUCCEEDED")]
    assert len(job_polls.polls) == 2
    assert job_polls.polls[1].at >= deadline


async def test_triggerer_restart_mid_wait_keeps_deadline_and_never_resubmits(
    emu: PhotaEmulator, job_polls: PollSpy
) -> None:
    job_id = submit_job(key="af:restart:1")
    after_submit = len(emu.requests)
    original = PhotaJobTrigger(job_id, CONN_ID, FAST, in_(30))
    events: list[dict[str, Any]] = []

    async def run(trigger: PhotaJobTrigger) -> None:
        async for event in trigger.run():
            events.append(event.payload)

    # The triggerer stops while the job is running: the trigger task is cancelled mid-wait.
    task = asyncio.create_task(run(original))
    await until(lambda: len(job_polls.polls) >= 3, task)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert events == []
    assert transport.shared_sessions.users() == 0

    # Another triggerer rebuilds it from the database row: classpath + kwargs.
    classpath, kwargs = json.loads(json.dumps(original.serialize()))
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.deadline == original.deadline
    emu.advance(3600)
    await asyncio.wait_for(run(rebuilt), 10)

    assert len(events) == 1
    assert (events[0]["status"], events[0]["job_id"]) == ("success", job_id)
    assert list(emu.jobs) == [job_id]
    assert len(emu.charges("images")) == 1
    assert len(emu.requests_to("/v1/phota/generate", "POST")) == 1  # the original submit only
    assert set(methods_since(emu, after_submit)) == {"GET"}
    assert len(emu.requests_to(JOB_GLOB, "GET")) == len(emu.requests) - after_submit


async def test_missing_connection_is_one_error_event(monkeypatch: pytest.MonkeyPatch) -> None:
    """A triggerer without the connection reports it as one error event instead of crashing the trigger."""
    import time

    from airflow_provider_phota.triggers.phota import ProfileReadyTrigger

    monkeypatch.delenv("AIRFLOW_CONN_PHOTA_MISSING", raising=False)
    trigger = ProfileReadyTrigger("prof_x", "phota_missing", 0.01, time.time() + 5)
    events = [event async for event in trigger.run()]

    assert len(events) == 1
    assert events[0].payload["status"] == "error"
    assert "phota_missing" in events[0].payload["message"]
    assert events[0].payload["retryable"] is True  # as in a worker: the connection may be added before a retry


def test_first_polls_are_spread_over_the_interval() -> None:
    """Triggers started together (a triggerer restart) take stable, different phases within the poll interval."""
    import time

    from airflow_provider_phota.triggers.phota import ProfileReadyTrigger

    triggers = [ProfileReadyTrigger(f"prof_{i}", CONN_ID, 10.0, time.time() + 60) for i in range(200)]
    delays = [trigger.first_poll_delay() for trigger in triggers]

    assert all(0 <= delay < 10.0 for delay in delays)
    assert delays == [trigger.first_poll_delay() for trigger in triggers]  # stable across rebuilds
    buckets = {int(delay) for delay in delays}
    assert buckets == set(range(10))  # every tenth of the interval is used: no burst


def test_aiohttp_is_first_imported_off_the_event_loop() -> None:
    """Its first import takes ~0.4 s; done on the triggerer's loop, it stalls every other trigger."""
    import subprocess
    import sys

    probe = """
import asyncio, os, sys, threading, json
conn = {"conn_type": "phota", "host": "http://127.0.0.1:9", "password": "k"}
os.environ["AIRFLOW_CONN_PHOTA_DEFAULT"] = json.dumps(conn)
from airflow_provider_phota.hooks.phota import PhotaHook
assert "aiohttp" not in sys.modules
importers = []
class Spy:
    def find_spec(self, name, path=None, target=None):
        if name == "aiohttp":
            importers.append(threading.current_thread() is threading.main_thread())
        return None
sys.meta_path.insert(0, Spy())
async def main():
    await PhotaHook()._aclient()
asyncio.run(main())
print(json.dumps(importers))
"""
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[false]"  # imported once, not on the loop's thread
