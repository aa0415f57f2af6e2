"""PhotaBatchTrigger, run for real against the held-clock emulator: one trigger for a wave of jobs."""

from __future__ import annotations

import asyncio
import importlib
import itertools
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from trigger_helpers import CONN_ID, FAST_RETRIES

from airflow_provider_phota.contract import Endpoint
from airflow_provider_phota.hooks import transport
from airflow_provider_phota.hooks.phota import PhotaHook
from airflow_provider_phota.testing import PhotaEmulator
from airflow_provider_phota.triggers.batch import PhotaBatchTrigger

JOB_GLOB = "/v1/phota/jobs/*"
INTERVAL = 0.2


def submit_jobs(count: int, prefix: str = "wave") -> list[str]:
    with PhotaHook(CONN_ID) as hook:
        return [
            hook.submit_job(Endpoint.GENERATE, {"prompt": f"poster {n}"}, client_request_id=f"{prefix}-{n}").job_id
            for n in range(count)
        ]


async def collect(trigger: PhotaBatchTrigger, timeout: float = 20.0) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    events = await asyncio.wait_for(run(), timeout)
    for payload in events:
        assert json.loads(json.dumps(payload)) == payload
    return events


def gets_per_job(emu: PhotaEmulator) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {}
    for request in emu.requests_to(JOB_GLOB, "GET"):
        times.setdefault(request.path.rsplit("/", 1)[-1], []).append(request.time)
    return times


def test_the_trigger_serializes_to_its_own_arguments_without_the_key() -> None:
    trigger = PhotaBatchTrigger(["job_a", "job_b"], CONN_ID, 5, 1234.5, max_concurrency=8, progress={"rows": 9})

    classpath, kwargs = trigger.serialize()
    module, name = classpath.rsplit(".", 1)
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)

    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs == {
        "job_ids": ["job_a", "job_b"],
        "phota_conn_id": CONN_ID,
        "poll_interval": 5.0,
        "deadline": 1234.5,
        "max_concurrency": 8,
        "progress": {"rows": 9},
    }


async def test_each_outstanding_job_gets_at_most_one_get_per_interval(
    emu: PhotaEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_ids = submit_jobs(40)
    asked: dict[str, list[float]] = {}
    original: Callable[..., Awaitable[Any]] = PhotaHook.aget_job

    async def spy(hook: PhotaHook, job_id: str) -> Any:
        asked.setdefault(job_id, []).append(time.monotonic())
        return await original(hook, job_id)

    monkeypatch.setattr(PhotaHook, "aget_job", spy)
    started = time.time()

    (event,) = await collect(PhotaBatchTrigger(job_ids, CONN_ID, INTERVAL, started + 1.3))

    assert event["status"] == "timeout"
    assert event["message"] == "40 of 40 jobs still not finished at the deadline"
    assert event["counts"] == {"QUEUED": 40}
    assert set(asked) == set(job_ids)
    rounds = {len(stamps) for stamps in asked.values()}
    assert len(rounds) == 1  # every job was asked in every round, once
    assert rounds.pop() >= 4
    for stamps in asked.values():
        assert min(b - a for a, b in itertools.pairwise(stamps)) >= INTERVAL - 0.001  # the final re-check too
    assert len(emu.requests_to(JOB_GLOB, "GET")) == sum(len(stamps) for stamps in asked.values())
    assert {r.method for r in emu.requests[len(job_ids) :]} == {"GET"}  # a trigger only reads


async def test_success_once_every_job_is_terminal_and_finished_jobs_are_not_asked_again(
    emu: PhotaEmulator,
) -> None:
    job_ids = submit_jobs(10)
    emu.fail_next_jobs(2)
    failing = submit_jobs(2, prefix="failing")
    emu.advance(3600)  # every job is due: 10 succeed, 2 fail

    (event,) = await collect(
        PhotaBatchTrigger([*job_ids, *failing, "job_unknown"], CONN_ID, INTERVAL, time.time() + 10)
    )

    assert event == {
        "status": "success",
        "jobs": 13,
        "counts": {"SUCCEEDED": 10, "FAILED": 2, "NOT_FOUND": 1},
        "message": "",
    }
    assert all(len(stamps) == 1 for stamps in gets_per_job(emu).values())
    assert transport.shared_sessions.users() == 0


async def test_jobs_finishing_over_time_are_dropped_from_the_rounds(emu: PhotaEmulator) -> None:
    first = submit_jobs(5, prefix="early")
    emu.advance(1800)
    second = submit_jobs(5, prefix="late")  # these finish 1800 s of emulator time later
    emu.advance(1801)  # the first five are due now
    trigger = PhotaBatchTrigger([*first, *second], CONN_ID, INTERVAL, time.time() + 10)

    async def finish_later() -> None:
        await asyncio.sleep(INTERVAL * 2.5)
        emu.advance(1800)

    events, _ = await asyncio.gather(collect(trigger), finish_later())

    assert [event["status"] for event in events] == ["success"]
    times = gets_per_job(emu)
    assert all(len(times[job]) == 1 for job in first)
    assert all(len(times[job]) >= 2 for job in second)  # asked again until they finished


async def test_gets_are_bounded_in_concurrency(emu: PhotaEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    job_ids = submit_jobs(30)
    emu.advance(3600)
    in_flight, peak = 0, 0
    original: Callable[..., Awaitable[Any]] = PhotaHook.aget_job

    async def counting(hook: PhotaHook, job_id: str) -> Any:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            await asyncio.sleep(0.05)  # a slow answer: without a bound, every GET would be in flight at once
            return await original(hook, job_id)
        finally:
            in_flight -= 1

    monkeypatch.setattr(PhotaHook, "aget_job", counting)
    # spread over 0.8 x 0.01 s, the 30 GETs leave almost at once: only the semaphore holds them back
    (event,) = await collect(PhotaBatchTrigger(job_ids, CONN_ID, 0.01, time.time() + 10, max_concurrency=4))

    assert event["status"] == "success"
    assert peak == 4


async def test_transient_errors_leave_the_job_for_the_next_round(
    emu: PhotaEmulator, phota_connection: Callable[..., str]
) -> None:
    phota_connection(emulator=emu, **FAST_RETRIES)
    job_ids = submit_jobs(3)
    emu.advance(3600)
    emu.inject_fault(JOB_GLOB, status=503, count=FAST_RETRIES["max_attempts"])  # one GET fails after its retries

    (event,) = await collect(PhotaBatchTrigger(job_ids, CONN_ID, INTERVAL, time.time() + 10))

    assert event["status"] == "success"
    assert event["counts"] == {"SUCCEEDED": 3}


async def test_a_wrong_key_ends_the_wait_without_retries(emu: PhotaEmulator) -> None:
    job_ids = submit_jobs(3)
    emu.inject_fault(JOB_GLOB, status=401, count=100)

    (event,) = await collect(PhotaBatchTrigger(job_ids, CONN_ID, INTERVAL, time.time() + 10))

    assert event["status"] == "error"
    assert event["retryable"] is False
    assert "401" in event["message"]


async def test_progress_is_one_line_per_round_and_only_on_a_change(
    emu: PhotaEmulator, task_log: Callable[[], str]
) -> None:
    job_ids = submit_jobs(4)
    progress = {"rows": 10, "succeeded": 3, "failed": 1, "pending": 2}

    (event,) = await collect(PhotaBatchTrigger(job_ids, CONN_ID, INTERVAL, time.time() + 1.0, progress=progress))

    assert event["status"] == "timeout"
    lines = [line for line in task_log().splitlines() if "Phota batch after" in line]
    rounds = Counter(len(stamps) for stamps in gets_per_job(emu).values())
    assert list(rounds) != [1]  # several rounds ran
    assert len(lines) == 1  # nothing changed after the first round
    assert "4 jobs in this wave: 0 succeeded, 0 failed, 0 running, 4 queued" in lines[0]
    assert "batch of 10 rows: 3 done and 1 failed before this wave, 2 waiting for a later wave" in lines[0]
