"""The async hook's HTTP session outside a triggerer: in a user's script, every pattern cleans up after itself.

Each script runs in a subprocess against the emulator of this test process, so what it prints at interpreter
exit (aiohttp's "Unclosed client session" / "Unclosed connector", logged when a session is garbage collected
open) is seen as a user would see it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap

import aiohttp
import pytest
from hook_helpers import ready_profile

from airflow_provider_phota.hooks import transport
from airflow_provider_phota.hooks.phota import PhotaHook
from airflow_provider_phota.testing import PhotaEmulator

# asyncio.run() around one call of a hook that is never closed: the pattern of a user's script.
ASYNCIO_RUN = """
    import asyncio, sys
    from airflow_provider_phota.hooks.phota import PhotaHook

    print(asyncio.run(PhotaHook().aget_profile_status(sys.argv[1])).status)
"""

# ``async with``: the hook's share of the session is released when the block ends, before the loop closes.
ASYNC_WITH = """
    import asyncio, sys
    from airflow_provider_phota.hooks import transport
    from airflow_provider_phota.hooks.phota import PhotaHook

    async def main():
        async with PhotaHook() as hook:
            state = await hook.aget_profile_status(sys.argv[1])
        print("sessions in use after the block:", transport.shared_sessions.users())
        return state

    print(asyncio.run(main()).status)
"""


def run_script(script: str, emu: PhotaEmulator, *arguments: str) -> subprocess.CompletedProcess[str]:
    connection = {"conn_type": "phota", "host": emu.base_url, "password": emu.api_key}
    environment = {**os.environ, "AIRFLOW_CONN_PHOTA_DEFAULT": json.dumps(connection)}
    return subprocess.run(
        # ResourceWarnings are shown too: an unclosed socket or transport would be named.
        [sys.executable, "-W", "always::ResourceWarning", "-c", textwrap.dedent(script), *arguments],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_clean(finished: subprocess.CompletedProcess[str]) -> None:
    # Airflow's logging prints aiohttp's messages on stdout, the warnings module on stderr: look at both.
    output = finished.stdout + finished.stderr
    assert finished.returncode == 0, output
    assert "nclosed" not in output, output  # "Unclosed client session", "Unclosed connector", "unclosed <socket"


def test_asyncio_run_of_one_call_leaves_no_unclosed_session(hook: PhotaHook, emu: PhotaEmulator) -> None:
    profile_id = ready_profile(hook, emu)

    finished = run_script(ASYNCIO_RUN, emu, profile_id)

    assert_clean(finished)
    assert finished.stdout.strip().splitlines()[-1] == "READY"
    assert len(emu.requests_to(f"/v1/phota/profiles/{profile_id}/status")) == 1


def test_async_with_releases_the_session_at_the_end_of_the_block(hook: PhotaHook, emu: PhotaEmulator) -> None:
    profile_id = ready_profile(hook, emu)

    finished = run_script(ASYNC_WITH, emu, profile_id)

    assert_clean(finished)
    assert finished.stdout.strip().splitlines()[-2:] == ["sessions in use after the block: 0", "READY"]


def test_each_asyncio_run_gets_a_fresh_session_closed_with_its_loop(hook: PhotaHook, emu: PhotaEmulator) -> None:
    """One hook kept across two ``asyncio.run()`` calls (a script's global): each loop has its own session, and a
    loop's session is closed when the loop closes, never reused by the next loop."""
    profile_id = ready_profile(hook, emu)
    kept = PhotaHook(hook.phota_conn_id)
    sessions: list[aiohttp.ClientSession] = []

    async def status() -> str:
        state = await kept.aget_profile_status(profile_id)
        assert kept._async_client is not None
        session = kept._async_client._session
        assert session is not None
        assert not session.closed
        sessions.append(session)
        return state.status

    assert asyncio.run(status()) == "READY"
    assert sessions[0].closed  # closed by asyncio.run() before it closed the loop
    assert asyncio.run(status()) == "READY"
    assert sessions[1] is not sessions[0]
    assert sessions[1].closed
    assert transport.shared_sessions._sessions == {}  # no entry of a closed loop is kept


@pytest.mark.parametrize("pattern", ["aclose", "async with"])
async def test_a_released_session_is_closed_before_the_loop_ends(
    pattern: str, hook: PhotaHook, emu: PhotaEmulator
) -> None:
    other = PhotaHook(hook.phota_conn_id)
    if pattern == "aclose":
        assert await other.alist_profile_ids() == []
        assert other._async_client is not None
        session = other._async_client._session
        await other.aclose()
    else:
        async with other as entered:
            assert entered is other
            assert await other.alist_profile_ids() == []
            assert other._async_client is not None
            session = other._async_client._session
    assert session is not None
    assert session.closed
    assert transport.shared_sessions.users() == 0
