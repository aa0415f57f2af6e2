"""The async methods (used by triggers), over real HTTP against the emulator."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from hook_helpers import API, FAULTS, NOT_RETRIED, STANDARD_URLS, wait_for_records

from airflow_provider_phota.contract import JobStatus, ProfileStatus
from airflow_provider_phota.exceptions import (
    PhotaAPIError,
    PhotaAuthenticationError,
    PhotaConnectionError,
    PhotaMalformedResponseError,
    PhotaNotFoundError,
    PhotaRateLimitError,
    PhotaServerError,
    PhotaTimeoutError,
    PhotaValidationError,
)
from airflow_provider_phota.hooks import transport
from airflow_provider_phota.hooks.phota import PhotaHook
from airflow_provider_phota.testing import PhotaEmulator

IDS = f"{API}/profiles/ids"
MakeHook = Callable[..., PhotaHook]


@pytest.fixture
async def ahook(conn_id: str) -> AsyncIterator[PhotaHook]:
    hook = PhotaHook(conn_id)
    yield hook
    await hook.aclose()


@pytest.fixture
async def amake_hook(set_conn: Callable[..., str]) -> AsyncIterator[Callable[..., Any]]:
    """Async hooks on connections with the given extras; the connection is read at once, closed at teardown."""
    made: list[PhotaHook] = []

    async def _make(**conn: Any) -> PhotaHook:
        hook = PhotaHook(set_conn(**conn))
        await hook._aclient()
        made.append(hook)
        return hook

    yield _make
    for hook in made:
        await hook.aclose()


def _create_profile(emu: PhotaEmulator, **kwargs: Any) -> str:
    with PhotaHook() as hook:
        return hook.create_profile(STANDARD_URLS, **kwargs)


async def test_alist_profile_ids_with_and_without_tag(ahook: PhotaHook, emu: PhotaEmulator) -> None:
    red = _create_profile(emu, tag="red")
    other = _create_profile(emu)

    assert sorted(await ahook.alist_profile_ids()) == sorted([red, other])
    assert await ahook.alist_profile_ids("red") == [red]
    assert await ahook.alist_profile_ids(tag="none") == []
    assert [entry.query for entry in emu.requests_to(IDS)][-3:] == [{}, {"tag": "red"}, {"tag": "none"}]


async def test_aget_profile_status_through_training(slow_hook: PhotaHook, slow_emu: PhotaEmulator) -> None:
    hook, emu = slow_hook, slow_emu  # 100 s of training on the emulator's clock
    profile_id = hook.create_profile(STANDARD_URLS)
    try:
        first = await hook.aget_profile_status(profile_id)
        emu.advance(50)
        middle = await hook.aget_profile_status(profile_id)
        emu.advance(60)
        last = await hook.aget_profile_status(profile_id)
    finally:
        await hook.aclose()

    assert (first.status, first.is_training) == (ProfileStatus.VALIDATING, True)
    assert (middle.status, middle.is_training) == (ProfileStatus.IN_PROGRESS, True)
    assert (last.profile_id, last.status, last.is_ready) == (profile_id, ProfileStatus.READY, True)


async def test_aget_job_until_succeeded(slow_hook: PhotaHook, slow_emu: PhotaEmulator) -> None:
    hook, emu = slow_hook, slow_emu
    handle = hook.submit_job("generate", {"prompt": "async"}, client_request_id="a-1")
    try:
        queued = await hook.aget_job(handle.job_id)
        emu.advance(emu.job_seconds)
        done = await hook.aget_job(handle.job_id)
    finally:
        await hook.aclose()

    assert queued.status == JobStatus.QUEUED
    assert not queued.is_terminal
    assert done.succeeded
    assert done.result is not None
    assert len(done.result.download_urls) == 1
    assert done.result.request_id == emu.requests_to(f"{API}/jobs/*")[-1].request_id


async def test_async_not_found_and_validation(ahook: PhotaHook, emu: PhotaEmulator) -> None:
    with pytest.raises(PhotaNotFoundError):
        await ahook.aget_job("job_missing")
    with pytest.raises(PhotaNotFoundError):
        await ahook.aget_profile_status("prof_missing")
    assert len(emu.requests) == 2

    for call in (ahook.aget_job(""), ahook.aget_profile_status("a/b"), ahook.alist_profile_ids("x" * 129)):
        with pytest.raises(PhotaValidationError):
            await call
    assert len(emu.requests) == 2  # validation sent nothing


async def test_aclose_releases_the_shared_session(emu: PhotaEmulator, conn_id: str) -> None:
    assert transport.shared_sessions.users() == 0
    hook = PhotaHook(conn_id)
    await hook.alist_profile_ids()
    assert hook._async_client is not None
    session = hook._async_client._session

    assert transport.shared_sessions.users() == 1
    await hook.aclose()

    assert transport.shared_sessions.users() == 0
    assert session.closed
    await hook.aclose()  # idempotent
    assert transport.shared_sessions.users() == 0

    assert await hook.alist_profile_ids() == []  # a closed hook opens a new share on its next call
    assert transport.shared_sessions.users() == 1
    assert hook._async_client._session is not session
    await hook.aclose()
    assert transport.shared_sessions.users() == 0


async def test_two_hooks_in_one_loop_share_one_session(emu: PhotaEmulator, conn_id: str) -> None:
    first, second = PhotaHook(conn_id), PhotaHook(conn_id)
    await asyncio.gather(first.alist_profile_ids(), second.alist_profile_ids())
    assert first._async_client is not None
    assert second._async_client is not None
    session = first._async_client._session

    assert second._async_client._session is session
    assert transport.shared_sessions.users() == 2
    await first.aclose()
    assert transport.shared_sessions.users() == 1
    assert not session.closed
    assert await second.alist_profile_ids() == []  # still usable
    await second.aclose()
    assert transport.shared_sessions.users() == 0
    assert session.closed


async def test_async_path_uses_aget_connection(
    emu: PhotaEmulator, conn_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A synchronous connection fetch on the triggerer's event loop crashes on Airflow 3: never do one there.
    (Before 3.3.2 common-compat runs ``get_connection`` in a worker thread, as ``aget_connection`` itself would
    block; from 3.3.2 it calls ``aget_connection``.)"""
    loop_thread = threading.current_thread()
    original = PhotaHook.get_connection

    def off_the_loop(conn_id: str) -> Any:
        if threading.current_thread() is loop_thread:
            raise AssertionError("get_connection() called on the event loop")
        return original(conn_id)

    monkeypatch.setattr(PhotaHook, "get_connection", staticmethod(off_the_loop))
    hook = PhotaHook(conn_id)
    try:
        assert await hook.alist_profile_ids() == []
        profile_id = _create_profile_via_requests(emu)
        assert (await hook.aget_profile_status(profile_id)).profile_id == profile_id
        with pytest.raises(PhotaNotFoundError):
            await hook.aget_job("job_x")
    finally:
        await hook.aclose()
    assert all(entry.headers["X-API-Key"] == emu.api_key for entry in emu.requests)


def _create_profile_via_requests(emu: PhotaEmulator) -> str:
    import requests

    response = requests.post(
        f"{emu.base_url}{API}/profiles/add",
        json={"image_urls": STANDARD_URLS},
        headers={"X-API-Key": emu.api_key},
        timeout=10,
    )
    response.raise_for_status()
    return str(response.json()["profile_id"])


async def test_async_settings_come_from_the_connection_extras(amake_hook: Any) -> None:
    hook = await amake_hook(read_timeout=7, max_attempts=3, retry_wait=0.02)
    settings = (await hook._aclient()).settings

    assert settings.read_timeout == 7.0
    assert (settings.retry.max_attempts, settings.retry.initial_wait) == (3, 0.02)


async def test_async_key_is_only_in_the_header_never_in_logs(
    ahook: PhotaHook, emu: PhotaEmulator, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    emu.inject_fault(IDS, status=500)
    await ahook.alist_profile_ids()
    with pytest.raises(PhotaNotFoundError) as raised:
        await ahook.aget_job("job_missing")

    captured = capfd.readouterr()
    text = captured.out + captured.err + caplog.text
    assert "retrying in" in text  # the retry warning was logged (and searched)
    assert emu.api_key not in text
    assert emu.api_key not in f"{raised.value} {raised.value!r}"
    assert [entry.headers.get("X-API-Key") for entry in emu.requests] == [emu.api_key] * 3


# --- retries --------------------------------------------------------------------------------------------------


async def _count_attempts(hook: PhotaHook) -> list[str]:
    """The hook's own attempts (calls of the client's ``send_once``), as opposed to HTTP requests on the wire."""
    client = await hook._aclient()
    attempts: list[str] = []
    original = client.send_once

    async def counting(request: Any) -> Any:
        attempts.append(request.path)
        return await original(request)

    client.send_once = counting  # type: ignore[method-assign]
    return attempts


# aiohttp itself resends an idempotent request (GET) once when the server disconnects (RFC 9112 9.3.1), so one
# attempt of the hook meets two injected drops; requests's adapter does not (sync: one request per attempt).


@pytest.mark.parametrize("fault", FAULTS)
async def test_async_transient_failures_are_retried(
    ahook: PhotaHook, emu: PhotaEmulator, fault: dict[str, Any]
) -> None:
    attempts = await _count_attempts(ahook)
    emu.inject_fault(IDS, count=2, **fault)

    assert await ahook.alist_profile_ids() == []

    assert len(emu.requests_to(IDS)) == 3
    assert emu.requests_to(IDS)[-1].status == 200
    assert len(attempts) == (2 if fault.get("drop") else 3)


EXHAUSTED: list[Any] = [
    pytest.param({"status": 429, "retry_after": 0}, PhotaRateLimitError, id="429"),
    pytest.param({"status": 503}, PhotaServerError, id="503"),
    pytest.param({"status": 504}, PhotaServerError, id="504"),
    pytest.param({"drop": True}, PhotaConnectionError, id="drop"),
    pytest.param({"malformed": True}, PhotaMalformedResponseError, id="malformed"),
]


@pytest.mark.parametrize(("fault", "error_class"), EXHAUSTED)
async def test_async_retries_stop_after_max_attempts(
    ahook: PhotaHook, emu: PhotaEmulator, fault: dict[str, Any], error_class: type[Exception]
) -> None:
    emu.inject_fault(f"{API}/jobs/*", count=10, **fault)

    attempts = await _count_attempts(ahook)

    with pytest.raises(error_class) as raised:
        await ahook.aget_job("job_1")

    assert attempts == [f"{API}/jobs/job_1"] * 4
    requests = emu.requests_to(f"{API}/jobs/*")
    assert len(requests) == 4 * (2 if fault.get("drop") else 1)
    if isinstance(raised.value, PhotaAPIError):
        assert raised.value.status == fault["status"]
        assert raised.value.request_id == requests[-1].request_id
    assert str(raised.value).endswith("(after 4 attempts)")


@pytest.mark.parametrize(("status", "error_class", "error_type"), NOT_RETRIED)
async def test_async_client_errors_fail_after_one_attempt(
    ahook: PhotaHook, emu: PhotaEmulator, status: int, error_class: type[PhotaAPIError], error_type: str
) -> None:
    profile_id = _create_profile_via_requests(emu)
    emu.inject_fault(f"{API}/profiles/*/status", status=status, count=5)

    with pytest.raises(error_class) as raised:
        await ahook.aget_profile_status(profile_id)

    (only,) = emu.requests_to(f"{API}/profiles/*/status")
    error = raised.value
    assert type(error) is error_class
    assert (error.status, error.error_type, error.request_id) == (status, error_type, only.request_id)
    assert error.detail == ("injected validation fault" if status == 422 else f"Injected fault: HTTP {status}")


async def test_async_wrong_key_is_an_authentication_error(amake_hook: Any, emu: PhotaEmulator) -> None:
    hook = await amake_hook(password="wrong-async-key-1234")

    with pytest.raises(PhotaAuthenticationError) as raised:
        await hook.alist_profile_ids()

    assert raised.value.status == 401
    assert "wrong-async-key-1234" not in str(raised.value)
    assert len(emu.requests) == 1


async def test_async_read_timeout_is_retried(amake_hook: Any, emu: PhotaEmulator) -> None:
    hook = await amake_hook(read_timeout=0.5)
    emu.inject_fault(IDS, delay=1.0)

    assert await hook.alist_profile_ids() == []

    await asyncio.to_thread(wait_for_records, emu, 2)


async def test_async_read_timeouts_exhaust_with_a_timeout_error(amake_hook: Any, emu: PhotaEmulator) -> None:
    hook = await amake_hook(read_timeout=0.3, max_attempts=2)
    emu.inject_fault(IDS, delay=0.6, count=2)

    with pytest.raises(PhotaTimeoutError, match="profiles/ids"):
        await hook.alist_profile_ids()

    await asyncio.to_thread(wait_for_records, emu, 2)


async def test_async_connection_refused_is_retried_then_raised(amake_hook: Any) -> None:
    hook = await amake_hook(host="http://127.0.0.1:9", max_attempts=3)
    calls = await _count_attempts(hook)
    with pytest.raises(PhotaConnectionError) as raised:
        await hook.alist_profile_ids()

    assert calls == [IDS] * 3
    assert raised.value.before_send is True
    assert str(raised.value) == f"GET {IDS}: connection refused by 127.0.0.1:9 (after 3 attempts)"


async def test_async_retry_after_is_honoured(ahook: PhotaHook, emu: PhotaEmulator) -> None:
    emu.inject_fault(IDS, status=429, retry_after=1)

    assert await ahook.alist_profile_ids() == []

    first, second = emu.requests_to(IDS)
    assert (first.status, second.status) == (429, 200)
    assert second.time - first.time >= 0.9


async def test_async_retry_after_is_capped(amake_hook: Any, emu: PhotaEmulator) -> None:
    hook = await amake_hook(max_retry_after=0.2)
    emu.inject_fault(IDS, status=429, retry_after=30)
    started = time.monotonic()

    assert await hook.alist_profile_ids() == []

    assert time.monotonic() - started < 2.0
    first, second = emu.requests_to(IDS)
    assert 0.15 <= second.time - first.time < 1.0
