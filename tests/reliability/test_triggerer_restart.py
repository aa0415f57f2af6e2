"""Triggerer restart mid-wait: the trigger is rebuilt from its serialized row and sends exactly one event, keeps the
original deadline, and never sends a request that costs money."""

from __future__ import annotations

import asyncio
import importlib
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from reliability_support import API, STANDARD_URLS, connection_json

from airflow_provider_phota.contract import Endpoint
from airflow_provider_phota.hooks.phota import PhotaHook
from airflow_provider_phota.testing import PhotaEmulator
from airflow_provider_phota.triggers.phota import PhotaJobTrigger, ProfileReadyTrigger

HOUR = 3600.0
CONN = "phota_restart"


@pytest.fixture(scope="module")
def slow_emulator() -> Iterator[PhotaEmulator]:
    """Training and jobs take an hour of emulator time: nothing finishes unless the test moves the clock."""
    with PhotaEmulator(api_key="reliability-restart-key", training_seconds=HOUR, job_seconds=HOUR) as emulator:
        yield emulator


@pytest.fixture
def slow(slow_emulator: PhotaEmulator, monkeypatch: pytest.MonkeyPatch) -> PhotaEmulator:
    slow_emulator.reset()
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", connection_json(slow_emulator))
    return slow_emulator


def _start_job(emu: PhotaEmulator) -> tuple[str, str]:
    with PhotaHook(CONN) as hook:
        job_id = hook.submit_job(Endpoint.GENERATE, {"prompt": "a fox"}, client_request_id="restart-1").job_id
    return job_id, f"{API}/jobs/*"


def _start_profile(emu: PhotaEmulator) -> tuple[str, str]:
    with PhotaHook(CONN) as hook:
        profile_id = hook.create_profile(STANDARD_URLS, tag="restart")
    return profile_id, f"{API}/profiles/*/status"


KINDS: dict[str, tuple[Callable[[PhotaEmulator], tuple[str, str]], type[Any], str]] = {
    "job": (_start_job, PhotaJobTrigger, "images"),
    "profile": (_start_profile, ProfileReadyTrigger, "profile"),
}


def _rebuild(trigger: Any) -> Any:
    """What another triggerer does with the database row: classpath + JSON kwargs."""
    classpath, kwargs = json.loads(json.dumps(trigger.serialize()))
    module, _, name = classpath.rpartition(".")
    return getattr(importlib.import_module(module), name)(**kwargs)


async def _wait_for_polls(emu: PhotaEmulator, glob: str, count: int) -> None:
    end = time.monotonic() + 10
    while len(emu.requests_to(glob, "GET")) < count:
        assert time.monotonic() < end, "the trigger did not poll"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("kind", KINDS)
async def test_restart_mid_wait_sends_one_event_and_never_pays_again(kind: str, slow: PhotaEmulator) -> None:
    start, trigger_class, charge_kind = KINDS[kind]
    resource_id, glob = start(slow)
    paid_requests = len(slow.requests)  # the submit / the create (and the tag listing before it)
    deadline = time.time() + 60
    original = trigger_class(resource_id, CONN, 0.05, deadline)
    events: list[dict[str, Any]] = []

    async def run(trigger: Any) -> None:
        async for event in trigger.run():
            events.append(event.payload)

    task = asyncio.create_task(run(original))
    await _wait_for_polls(slow, glob, 3)
    task.cancel()  # the triggerer stops mid-wait
    with pytest.raises(asyncio.CancelledError):
        await task
    assert events == []

    rebuilt = _rebuild(original)
    assert rebuilt.deadline == deadline  # absolute wall-clock time: not restarted from zero
    slow.advance(HOUR + 1)
    await asyncio.wait_for(run(rebuilt), 10)

    assert [(e["status"], e[original.id_field]) for e in events] == [("success", resource_id)]
    later = slow.requests[paid_requests:]
    assert later
    assert {r.method for r in later} == {"GET"}  # polls only: no submit, no create
    assert len(slow.charges(charge_kind)) == 1
    assert len(slow.jobs) + len(slow.profiles) == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_deadline_that_passed_while_down_is_reported_at_once(kind: str, slow: PhotaEmulator) -> None:
    start, trigger_class, _ = KINDS[kind]
    resource_id, glob = start(slow)
    deadline = time.time() + 0.5
    original = trigger_class(resource_id, CONN, 30.0, deadline)  # long poll interval: only the deadline ends it
    events: list[dict[str, Any]] = []

    async def run(trigger: Any) -> None:
        async for event in trigger.run():
            events.append(event.payload)

    task = asyncio.create_task(run(original))
    await _wait_for_polls(slow, glob, 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(max(0.0, deadline - time.time()) + 0.05)  # the triggerer is down past the deadline

    polls_before = len(slow.requests_to(glob, "GET"))
    restarted = time.monotonic()
    await asyncio.wait_for(run(_rebuild(original)), 10)

    assert [e["status"] for e in events] == ["timeout"]  # the original deadline, not a fresh one
    assert time.monotonic() - restarted < 5
    assert len(slow.requests_to(glob, "GET")) == polls_before + 1  # one final check, then the event
