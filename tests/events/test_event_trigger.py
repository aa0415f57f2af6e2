"""PhotaProfileReadyEventTrigger, run for real against the held-clock emulator (nothing finishes unless the test
moves its clock). A restart is a new trigger instance: with the same asset state store (Airflow 3.3) it continues
from the stored watermark; without one (Airflow 3.0-3.2) it takes a new baseline.

The real triggerer, AssetWatcher and a scheduled DAG are in test_events_deployment.py.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from airflow_versions import AIRFLOW_2

from airflow_provider_phota.exceptions import PhotaValidationError
from airflow_provider_phota.hooks.phota import PhotaHook
from airflow_provider_phota.testing import PhotaEmulator
from airflow_provider_phota.triggers.events import WATERMARK_KEY, PhotaProfileReadyEventTrigger

pytestmark = pytest.mark.skipif(AIRFLOW_2, reason="AssetWatcher and BaseEventTrigger need Airflow 3")

LIST_PATH = "/v1/phota/profiles/ids"
PHOTOS = [f"https://example.com/p/{n}.jpg" for n in range(10)]


class MemoryAssetStore:
    """Stands in for the watched asset's ``asset_state_store`` (its async half), which outlives a trigger."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.writes = 0

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        assert value is not None
        self.values[key] = value
        self.writes += 1


class Running:
    """A trigger's ``run()`` on the test's event loop, its events collected as they come."""

    def __init__(self, trigger: PhotaProfileReadyEventTrigger, emulator: PhotaEmulator) -> None:
        self.trigger = trigger
        self.emulator = emulator
        self.events: list[dict[str, Any]] = []
        self.task = asyncio.ensure_future(self._collect(trigger.run()))

    async def _collect(self, events: AsyncIterator[Any]) -> None:
        async for event in events:
            self.events.append(event.payload)

    async def rounds(self, count: int = 2) -> None:
        """Wait until the trigger listed the profiles ``count`` more times: the last round saw every change made
        before this call."""
        target = len(self.emulator.requests_to(LIST_PATH, "GET")) + count
        for _ in range(2000):
            if len(self.emulator.requests_to(LIST_PATH, "GET")) >= target:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the trigger stopped polling")

    async def stop(self) -> None:
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


def create(tag: str) -> str:
    with PhotaHook() as hook:
        return hook.create_profile(PHOTOS, tag=tag)


def watcher(store: MemoryAssetStore | None, **kwargs: Any) -> PhotaProfileReadyEventTrigger:
    trigger = PhotaProfileReadyEventTrigger(tag="customers", poll_interval=0.02, **kwargs)
    trigger.asset_state_store = store  # what the 3.3 triggerer injects before run()
    return trigger


def test_the_trigger_serializes_to_its_own_arguments() -> None:
    trigger = PhotaProfileReadyEventTrigger(tag="customers", phota_conn_id="phota_shop", poll_interval=30)

    classpath, kwargs = trigger.serialize()
    module, name = classpath.rsplit(".", 1)
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)

    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs == {
        "tag": "customers",
        "phota_conn_id": "phota_shop",
        "poll_interval": 30.0,
        "max_concurrency": 8,
        "include_existing": False,
    }


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"poll_interval": 0}, "poll_interval"), ({"max_concurrency": 0}, "max_concurrency"), ({"tag": ""}, "tag")],
)
def test_bad_arguments_fail_when_the_dag_is_parsed_naming_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(PhotaValidationError, match=field):
        PhotaProfileReadyEventTrigger(**kwargs)


async def test_fires_once_per_profile_that_becomes_ready_and_continues_from_the_watermark_after_a_restart(
    held_clock_emulator: PhotaEmulator,
) -> None:
    emu = held_clock_emulator
    store = MemoryAssetStore()
    already_ready = create("customers")
    emu.advance(emu.training_seconds + 1)

    first = Running(watcher(store), emu)
    await first.rounds()
    new_a, new_b, failing = create("customers"), create("customers"), create("customers")
    other_tag = create("staff")
    await first.rounds()
    assert first.events == []  # the already READY profile is the baseline; the new ones are still training

    emu.set_profile_outcome(failing, "ERROR", "no face found")
    emu.advance(emu.training_seconds + 1)
    await first.rounds(3)
    assert sorted(e["profile_id"] for e in first.events) == sorted([new_a, new_b])
    assert {(e["tag"], e["status"]) for e in first.events} == {("customers", "READY")}
    await first.stop()
    (key,) = store.values
    assert key.startswith(WATERMARK_KEY)
    assert set(store.values[key]) == {already_ready, new_a, new_b, failing}
    assert other_tag not in store.values[key]

    # While no triggerer runs, one more customer finishes training; the restarted watcher fires for it only.
    late = create("customers")
    emu.advance(emu.training_seconds + 1)
    status_gets = len(emu.requests_to("/v1/phota/profiles/*/status", "GET"))
    second = Running(watcher(store), emu)
    await second.rounds(3)
    await second.stop()
    assert [e["profile_id"] for e in second.events] == [late]
    # Terminal profiles are never asked again: the restarted watcher asked for the late profile only.
    assert {r.path for r in emu.requests_to("/v1/phota/profiles/*/status", "GET")[status_gets:]} == {
        f"/v1/phota/profiles/{late}/status"
    }


async def test_without_an_asset_state_store_a_restart_takes_a_new_baseline(
    held_clock_emulator: PhotaEmulator,
) -> None:
    """Airflow 3.0-3.2: nothing fires twice, and a profile that became READY while the watcher was down is missed
    (``include_existing=True`` fires for every READY profile at each start instead)."""
    emu = held_clock_emulator
    first = Running(watcher(None), emu)
    await first.rounds()
    seen = create("customers")
    emu.advance(emu.training_seconds + 1)
    await first.rounds(3)
    await first.stop()
    assert [e["profile_id"] for e in first.events] == [seen]

    missed = create("customers")
    emu.advance(emu.training_seconds + 1)
    restarted = Running(watcher(None), emu)
    await restarted.rounds(3)
    await restarted.stop()
    assert restarted.events == []

    everything = Running(watcher(None, include_existing=True), emu)
    await everything.rounds(3)
    await everything.stop()
    assert sorted(e["profile_id"] for e in everything.events) == sorted([seen, missed])


async def test_status_gets_stay_within_max_concurrency(held_clock_emulator: PhotaEmulator) -> None:
    emu = held_clock_emulator
    for _ in range(12):
        create("customers")
    in_flight = 0
    peak = 0
    original = PhotaHook.aget_profile_status

    async def counted(self: PhotaHook, profile_id: str) -> Any:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            await asyncio.sleep(0.01)  # hold the slot so that GETs overlap
            return await original(self, profile_id)
        finally:
            in_flight -= 1

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(PhotaHook, "aget_profile_status", counted)
        running = Running(watcher(MemoryAssetStore(), max_concurrency=3), emu)
        await running.rounds(2)
        await running.stop()
    assert peak == 3


async def test_a_failing_list_is_logged_and_the_watcher_keeps_looking(held_clock_emulator: PhotaEmulator) -> None:
    emu = held_clock_emulator
    emu.inject_fault(LIST_PATH, status=401, count=2)
    running = Running(watcher(MemoryAssetStore()), emu)
    await running.rounds(3)
    profile_id = create("customers")
    emu.advance(emu.training_seconds + 1)
    await running.rounds(3)
    await running.stop()
    assert [e["profile_id"] for e in running.events] == [profile_id]
