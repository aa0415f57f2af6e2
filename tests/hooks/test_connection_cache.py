"""The async path's connection cache: one lookup for many waits, refreshed after its lifetime or a failure."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from airflow_provider_phota.hooks.phota import PhotaHook, _LoopConnectionCache


async def test_concurrent_first_lookups_share_one_fetch() -> None:
    cache, calls = _LoopConnectionCache(), []

    async def fetch() -> str:
        calls.append(1)
        await asyncio.sleep(0.01)
        return "settings"

    results = await asyncio.gather(*(cache.get("phota_default", fetch) for _ in range(200)))

    assert results == ["settings"] * 200
    assert len(calls) == 1


async def test_entries_expire_and_failures_are_not_kept() -> None:
    cache, calls = _LoopConnectionCache(ttl=0.05), []

    async def fetch() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("secrets backend down")
        return len(calls)

    with pytest.raises(RuntimeError):
        await cache.get("c", fetch)
    assert await cache.get("c", fetch) == 2  # the failure was not cached
    assert await cache.get("c", fetch) == 2  # cached
    await asyncio.sleep(0.06)
    assert await cache.get("c", fetch) == 3  # expired: fetched again (a rotated key is picked up)


def test_each_event_loop_has_its_own_entries() -> None:
    cache, calls = _LoopConnectionCache(), []

    async def fetch() -> int:
        calls.append(1)
        return len(calls)

    assert asyncio.run(cache.get("c", fetch)) == 1
    assert asyncio.run(cache.get("c", fetch)) == 2  # a new loop (a new test, a new triggerer) looks up again


async def test_a_thousand_hooks_look_the_connection_up_once(
    phota_conn_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.providers.common.compat import connection

    lookups = []
    original = connection.get_async_connection

    async def counting(conn_id: str, hook: Any = None) -> Any:
        lookups.append(conn_id)
        return await original(conn_id, hook)

    monkeypatch.setattr(connection, "get_async_connection", counting)
    hooks = [PhotaHook(phota_conn_id) for _ in range(1000)]
    await asyncio.gather(*(hook.alist_profile_ids() for hook in hooks[:50]))
    await asyncio.gather(*(hook._aclient() for hook in hooks[50:]))
    await asyncio.gather(*(hook.aclose() for hook in hooks))

    assert lookups == [phota_conn_id]
