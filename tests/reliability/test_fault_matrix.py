"""The fault matrix: every endpoint, sync and async, under every transient fault and every permanent error.

Transient faults (429 with Retry-After, 500, 502, 503, 504, a dropped connection, a read timeout, a malformed 2xx
body) are injected ``MAX_ATTEMPTS - 1`` times: the call must succeed on the last attempt, and the emulator must
have seen exactly ``MAX_ATTEMPTS`` requests. Permanent errors (400, 401, 402, 403, 404, 422) must fail after exactly
one request with the typed error carrying the status and the request id.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from reliability_support import (
    API,
    MAX_ATTEMPTS,
    PNG_1X1,
    READ_TIMEOUT,
    READ_TIMEOUT_DELAY,
    STANDARD_URLS,
    wait_for_records,
)

from airflow_provider_phota.contract import Endpoint
from airflow_provider_phota.exceptions import (
    PhotaAPIError,
    PhotaAuthenticationError,
    PhotaBadRequestError,
    PhotaConnectionError,
    PhotaInsufficientCreditError,
    PhotaMalformedResponseError,
    PhotaNotFoundError,
    PhotaServerError,
    PhotaTimeoutError,
    PhotaUnprocessableError,
)
from airflow_provider_phota.hooks.phota import PhotaHook
from airflow_provider_phota.testing import PhotaEmulator
from airflow_provider_phota.triggers.phota import PhotaJobTrigger, ProfileReadyTrigger

# The set_conn fixture (tests/reliability/conftest.py): a connection name, extras overridden by keyword.
# Not imported from conftest: with several test folders in one run, "conftest" is another folder's module.
SetConn = Callable[..., str]

# --- faults -----------------------------------------------------------------------------------------------------

# Retry-After: 1 is sent by the server; max_retry_after (0.05 s) caps it so the matrix stays fast. One test below
# honours the real second.
TRANSIENT: dict[str, dict[str, Any]] = {
    "429": {"status": 429, "retry_after": 1},
    "500": {"status": 500},
    "502": {"status": 502},
    "503": {"status": 503},
    "504": {"status": 504},
    "drop": {"drop": True},
    "read_timeout": {"delay": READ_TIMEOUT_DELAY},
    "malformed": {"malformed": True},
}
PERMANENT: dict[int, type[PhotaAPIError]] = {
    400: PhotaBadRequestError,
    401: PhotaAuthenticationError,
    402: PhotaInsufficientCreditError,
    403: PhotaAuthenticationError,
    404: PhotaNotFoundError,
    422: PhotaUnprocessableError,
}


def fault_status(fault: dict[str, Any], ok: int = 200) -> int:
    """The status the emulator records for a faulted request."""
    if fault.get("drop"):
        return 0
    if fault.get("delay"):
        return ok  # answered normally, too late
    return int(fault.get("status") or 200)  # a malformed body comes with 200


# --- endpoint calls ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """An endpoint call: what to fault (glob, method), and ``prepare`` (run before the fault is armed) returning
    the call itself and a check of its result."""

    glob: str
    method: str
    prepare: Callable[[PhotaHook, PhotaEmulator, Path], tuple[Callable[[PhotaHook], Any], Callable[[Any], None]]]
    download: bool = False  # recorded in emu.downloads, not emu.requests
    ok_status: int = 200
    charges: str | None = None  # the ledger kind this call books once


def _profile(setup: PhotaHook, emu: PhotaEmulator, *, ready: bool = False) -> str:
    profile_id = setup.create_profile(STANDARD_URLS)
    if ready:
        emu.advance(emu.training_seconds + 1)
    return profile_id


def _one_image(result: Any) -> None:
    assert result.count == 1


def _list(setup: PhotaHook, emu: PhotaEmulator, tmp: Path) -> Any:
    profile_id = _profile(setup, emu)
    return (lambda hook: hook.list_profile_ids()), (lambda result: _eq(result, [profile_id]))


def _create_tagged(setup: PhotaHook, emu: PhotaEmulator, tmp: Path) -> Any:
    def check(profile_id: str) -> None:
        assert list(emu.profiles) == [profile_id]
        assert len(emu.charges("profile")) == 1

    return (lambda hook: hook.create_profile(STANDARD_URLS, tag="matrix")), check


def _status(setup: PhotaHook, emu: PhotaEmulator, tmp: Path) -> Any:
    profile_id = _profile(setup, emu)
    return (lambda hook: hook.get_profile_status(profile_id)), (lambda state: _eq(state.profile_id, profile_id))


def _picture(setup: PhotaHook, emu: PhotaEmulator, tmp: Path) -> Any:
    profile_id = _profile(setup, emu, ready=True)
    return (lambda hook: hook.get_profile_picture(profile_id)), (lambda data: _eq(data[:3], b"\xff\xd8\xff"))


def _delete(setup: PhotaHook, emu: PhotaEmulator, tmp: Path) -> Any:
    profile_id = _profile(setup, emu)
    return (lambda hook: hook.delete_profile(profile_id)), (lambda _: _eq(dict(emu.profiles), {}))


def _edit(setup: PhotaHook, emu: PhotaEmulator, tmp: Path) -> Any:
    return (lambda hook: hook.edit("make it blue", [PNG_1X1])), _one_image


def _generate(setup: PhotaHook, emu: PhotaEmulator, tmp: Path) -> Any:
    return (lambda hook: hook.generate("a lighthouse")), _one_image


def _enhance(setup: PhotaHook, emu: PhotaEmulator, tmp: Path) -> Any:
    return (lambda hook: hook.enhance(PNG_1X1)), _one_image


def _remix(setup: PhotaHook, emu: PhotaEmulator, tmp: Path) -> Any:
    return (lambda hook: hook.remix(PNG_1X1, PNG_1X1)), _one_image


def _submit(setup: PhotaHook, emu: PhotaEmulator, tmp: Path) -> Any:
    def check(handle: Any) -> None:
        assert list(emu.jobs) == [handle.job_id]
        assert len(emu.charges("images")) == 1

    return (lambda hook: hook.submit_job(Endpoint.GENERATE, {"prompt": "a fox"}, client_request_id="matrix-1")), check


def _get_job(setup: PhotaHook, emu: PhotaEmulator, tmp: Path) -> Any:
    job_id = setup.submit_job(Endpoint.GENERATE, {"prompt": "a fox"}, client_request_id="matrix-2").job_id
    return (lambda hook: hook.get_job(job_id)), (lambda state: _eq(state.job_id, job_id))


def _secret(setup: PhotaHook, emu: PhotaEmulator, tmp: Path) -> Any:
    return (lambda hook: hook.get_webhook_secret()), (lambda secret: _eq(secret, emu.webhook_secret))


def _download(setup: PhotaHook, emu: PhotaEmulator, tmp: Path) -> Any:
    url = setup.generate("a lighthouse", response_mode="urls").download_urls[0]
    target = tmp / "out" / "image.png"

    def check(written: int) -> None:
        assert written == target.stat().st_size == emu.downloads[-1].size
        assert target.read_bytes()[:4] == b"\x89PNG"
        assert [p.name for p in target.parent.iterdir()] == ["image.png"]  # no partial file left by a failed try

    return (lambda hook: hook.download(url, target)), check


def _eq(actual: Any, expected: Any) -> None:
    assert actual == expected


SYNC_CALLS: dict[str, Call] = {
    "list_profile_ids": Call(f"{API}/profiles/ids", "GET", _list),
    "create_profile_tagged": Call(f"{API}/profiles/add", "POST", _create_tagged),
    "get_profile_status": Call(f"{API}/profiles/*/status", "GET", _status),
    "get_profile_picture": Call(f"{API}/profiles/*/profile_picture", "GET", _picture),
    "delete_profile": Call(f"{API}/profiles/*", "DELETE", _delete),
    "edit": Call(f"{API}/edit", "POST", _edit, charges="images"),
    "generate": Call(f"{API}/generate", "POST", _generate, charges="images"),
    "enhance": Call(f"{API}/enhance", "POST", _enhance, charges="images"),
    "remix": Call(f"{API}/remix", "POST", _remix, charges="images"),
    "submit_job": Call(f"{API}/generate", "POST", _submit, ok_status=202),
    "get_job": Call(f"{API}/jobs/*", "GET", _get_job),
    "get_webhook_secret": Call(f"{API}/webhook-secret", "GET", _secret),
    "download": Call("/cdn/*", "GET", _download, download=True),
}
# Binary answers (the profile picture, a signed download) have no JSON to be malformed: a 2xx body that is not an
# image is checked separately below.
BINARY = {"get_profile_picture", "download"}


def _records(emu: PhotaEmulator, call: Call, count: int) -> list[Any]:
    if call.download:
        return wait_for_records(emu, call.glob, count, downloads=True)
    return [r for r in wait_for_records(emu, call.glob, count) if r.method == call.method]


def _hooks(set_conn: SetConn, fault: dict[str, Any]) -> tuple[PhotaHook, PhotaHook]:
    """A setup hook (default fast connection) and the hook under test (a short read timeout for delay faults)."""
    setup = PhotaHook(set_conn("phota_setup"))
    timeout = {"read_timeout": READ_TIMEOUT} if fault.get("delay") else {}
    return setup, PhotaHook(set_conn("phota_matrix", **timeout))


# Two read-timeout cases behave better than "succeed on the last attempt", so they have tests of their own below:
# a tagged create waits for its in-flight first attempt instead of resending, and a delete whose answer was lost
# treats the retry's 404 as done.
OWN_TESTS = {("create_profile_tagged", "read_timeout"), ("delete_profile", "read_timeout")}
SYNC_TRANSIENT = [
    pytest.param(
        name,
        fault,
        id=f"{name}-{fault_id}",
    )
    for name in SYNC_CALLS
    for fault_id, fault in TRANSIENT.items()
    if not (fault_id == "malformed" and name in BINARY) and (name, fault_id) not in OWN_TESTS
]


@pytest.mark.parametrize(("name", "fault"), SYNC_TRANSIENT)
def test_sync_call_succeeds_after_transient_faults(
    name: str, fault: dict[str, Any], emu: PhotaEmulator, set_conn: SetConn, tmp_path: Path
) -> None:
    call = SYNC_CALLS[name]
    setup, hook = _hooks(set_conn, fault)
    invoke, check = call.prepare(setup, emu, tmp_path)
    emu.inject_fault(call.glob, method=call.method, count=MAX_ATTEMPTS - 1, **fault)

    try:
        result = invoke(hook)
    finally:
        records = _records(emu, call, MAX_ATTEMPTS)  # waits for delayed requests still in flight, too

    check(result)
    assert [r.status for r in records] == [fault_status(fault, call.ok_status)] * (MAX_ATTEMPTS - 1) + [call.ok_status]
    if call.charges:
        # A fault answered before the work books nothing: one charge. After a read timeout the server did the work
        # and the answer came too late; a synchronous call has no idempotency key in the API, so every timed-out
        # attempt is charged too (the README says so: prefer async mode for costly batches). No more than that.
        assert len(emu.charges(call.charges)) == (MAX_ATTEMPTS if fault.get("delay") else 1)


SYNC_PERMANENT = [pytest.param(name, status, id=f"{name}-{status}") for name in SYNC_CALLS for status in PERMANENT]


@pytest.mark.parametrize(("name", "status"), SYNC_PERMANENT)
def test_sync_call_fails_once_on_permanent_errors(
    name: str, status: int, emu: PhotaEmulator, set_conn: SetConn, tmp_path: Path
) -> None:
    call = SYNC_CALLS[name]
    setup, hook = _hooks(set_conn, {})
    invoke, _check = call.prepare(setup, emu, tmp_path)
    emu.inject_fault(call.glob, method=call.method, status=status, count=MAX_ATTEMPTS)

    with pytest.raises(PERMANENT[status]) as raised:
        invoke(hook)

    (record,) = _records(emu, call, 1)
    assert record.status == status
    assert raised.value.status == status
    if not call.download:  # downloads are not API requests: the emulator keeps no request id for them
        assert raised.value.request_id == record.request_id
    if name == "download":
        assert not (tmp_path / "out" / "image.png").exists()


# A binary answer must be an image: a 2xx non-image body (a proxy's error page) is retried, never returned or written.
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_call_retries_a_2xx_body_that_is_not_an_image(
    name: str, emu: PhotaEmulator, set_conn: SetConn, tmp_path: Path
) -> None:
    call = SYNC_CALLS[name]
    setup, hook = _hooks(set_conn, {})
    invoke, check = call.prepare(setup, emu, tmp_path)
    emu.inject_fault(call.glob, method=call.method, count=MAX_ATTEMPTS - 1, malformed=True)

    check(invoke(hook))

    assert len(_records(emu, call, MAX_ATTEMPTS)) == MAX_ATTEMPTS


def test_delete_whose_answer_was_lost_succeeds(emu: PhotaEmulator, set_conn: SetConn) -> None:
    """The first DELETE is processed but its answer arrives after the read timeout; the retry's 404 means done."""
    profile_id = PhotaHook(set_conn("phota_setup")).create_profile(STANDARD_URLS)
    hook = PhotaHook(set_conn("phota_matrix", read_timeout=READ_TIMEOUT))
    emu.inject_fault(f"{API}/profiles/*", method="DELETE", delay=READ_TIMEOUT_DELAY)

    hook.delete_profile(profile_id)

    assert profile_id not in emu.profiles
    records = [r for r in wait_for_records(emu, f"{API}/profiles/{profile_id}", 2) if r.method == "DELETE"]
    assert sorted(r.status for r in records) == [200, 404]  # the lost answer, and the retry that found it gone


# --- untagged profile creation: only failures that surely did nothing are retried ---------------------------------

UNTAGGED_NOT_RETRIED: dict[str, tuple[dict[str, Any], type[Exception]]] = {
    "500": ({"status": 500}, PhotaServerError),
    "502": ({"status": 502}, PhotaServerError),
    "504": ({"status": 504}, PhotaServerError),
    "drop": ({"drop": True}, PhotaConnectionError),
    "read_timeout": ({"delay": READ_TIMEOUT_DELAY}, PhotaTimeoutError),
    "malformed": ({"malformed": True}, PhotaMalformedResponseError),
}


@pytest.mark.parametrize("fault_id", UNTAGGED_NOT_RETRIED)
def test_untagged_create_is_not_resent_after_an_ambiguous_failure(
    fault_id: str, emu: PhotaEmulator, set_conn: SetConn
) -> None:
    fault, error_class = UNTAGGED_NOT_RETRIED[fault_id]
    _setup, hook = _hooks(set_conn, fault)
    emu.inject_fault(f"{API}/profiles/add", count=MAX_ATTEMPTS, **fault)

    with pytest.raises(error_class):
        hook.create_profile(STANDARD_URLS)

    assert len(wait_for_records(emu, f"{API}/profiles/add", 1)) == 1
    assert emu.requests_to(f"{API}/profiles/ids") == []  # no tag: nothing to look up


@pytest.mark.parametrize("status", [429, 503])
def test_untagged_create_is_retried_after_a_refusal(status: int, emu: PhotaEmulator, set_conn: SetConn) -> None:
    _setup, hook = _hooks(set_conn, {})
    emu.inject_fault(f"{API}/profiles/add", status=status, retry_after=1, count=MAX_ATTEMPTS - 1)

    profile_id = hook.create_profile(STANDARD_URLS)

    assert [r.status for r in emu.requests_to(f"{API}/profiles/add")] == [status, status, 200]
    assert list(emu.profiles) == [profile_id]
    assert len(emu.charges("profile")) == 1


def test_retry_after_of_one_second_is_honoured(emu: PhotaEmulator, set_conn: SetConn) -> None:
    hook = PhotaHook(set_conn(max_retry_after=120))
    emu.inject_fault(f"{API}/profiles/ids", status=429, retry_after=1)

    assert hook.list_profile_ids() == []

    first, second = emu.requests_to(f"{API}/profiles/ids")
    assert (first.status, second.status) == (429, 200)
    assert second.time - first.time >= 0.9


# --- async: the hook's async client and both triggers ---------------------------------------------------------------


@dataclass(frozen=True)
class AsyncCall:
    glob: str
    prepare: Callable[[PhotaHook, PhotaEmulator], Callable[[PhotaHook], Any]]
    trigger: bool = False


def _alist(setup: PhotaHook, emu: PhotaEmulator) -> Any:
    profile_id = _profile(setup, emu)

    async def call(hook: PhotaHook) -> None:
        assert await hook.alist_profile_ids() == [profile_id]

    return call


def _astatus(setup: PhotaHook, emu: PhotaEmulator) -> Any:
    profile_id = _profile(setup, emu)

    async def call(hook: PhotaHook) -> None:
        assert (await hook.aget_profile_status(profile_id)).profile_id == profile_id

    return call


def _ajob(setup: PhotaHook, emu: PhotaEmulator) -> Any:
    job_id = setup.submit_job(Endpoint.GENERATE, {"prompt": "a fox"}, client_request_id="matrix-async").job_id

    async def call(hook: PhotaHook) -> None:
        assert (await hook.aget_job(job_id)).job_id == job_id

    return call


async def _run_trigger(trigger: Any) -> list[dict[str, Any]]:
    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return await asyncio.wait_for(collect(), 20)


def _profile_trigger(setup: PhotaHook, emu: PhotaEmulator) -> Any:
    profile_id = _profile(setup, emu, ready=True)
    return lambda conn: ProfileReadyTrigger(profile_id, conn, 0.05, time.time() + 30)


def _job_trigger(setup: PhotaHook, emu: PhotaEmulator) -> Any:
    job_id = setup.submit_job(Endpoint.GENERATE, {"prompt": "a fox"}, client_request_id="matrix-trigger").job_id
    emu.advance(emu.job_seconds + 1)
    return lambda conn: PhotaJobTrigger(job_id, conn, 0.05, time.time() + 30)


ASYNC_CALLS: dict[str, AsyncCall] = {
    "alist_profile_ids": AsyncCall(f"{API}/profiles/ids", _alist),
    "aget_profile_status": AsyncCall(f"{API}/profiles/*/status", _astatus),
    "aget_job": AsyncCall(f"{API}/jobs/*", _ajob),
    "ProfileReadyTrigger": AsyncCall(f"{API}/profiles/*/status", _profile_trigger, trigger=True),
    "PhotaJobTrigger": AsyncCall(f"{API}/jobs/*", _job_trigger, trigger=True),
}


@pytest.mark.parametrize(
    ("name", "fault"),
    [pytest.param(n, f, id=f"{n}-{fid}") for n in ASYNC_CALLS for fid, f in TRANSIENT.items()],
)
async def test_async_call_succeeds_after_transient_faults(
    name: str, fault: dict[str, Any], emu: PhotaEmulator, set_conn: SetConn
) -> None:
    call = ASYNC_CALLS[name]
    setup, _ = _hooks(set_conn, fault)
    conn = "phota_matrix"
    prepared = call.prepare(setup, emu)
    emu.inject_fault(call.glob, method="GET", count=MAX_ATTEMPTS - 1, **fault)

    if call.trigger:
        events = await _run_trigger(prepared(conn))
        assert [e["status"] for e in events] == ["success"]
    else:
        hook = PhotaHook(conn)
        try:
            await prepared(hook)
        finally:
            await hook.aclose()

    # Exactly MAX_ATTEMPTS requests reached the server. For a dropped connection aiohttp itself may resend an
    # idempotent GET once on a new connection (RFC 9112 9.3.1), so the hook may have used only two of its attempts
    # for those three requests; the count the server saw is the same either way, and no more.
    records = wait_for_records(emu, call.glob, MAX_ATTEMPTS)
    records = [r for r in records if r.method == "GET"]
    assert [r.status for r in records] == [fault_status(fault)] * (MAX_ATTEMPTS - 1) + [200]


@pytest.mark.parametrize(
    ("name", "status"), [pytest.param(n, s, id=f"{n}-{s}") for n in ASYNC_CALLS for s in PERMANENT]
)
async def test_async_call_fails_once_on_permanent_errors(
    name: str, status: int, emu: PhotaEmulator, set_conn: SetConn
) -> None:
    call = ASYNC_CALLS[name]
    setup, _ = _hooks(set_conn, {})
    conn = "phota_matrix"
    prepared = call.prepare(setup, emu)
    emu.inject_fault(call.glob, method="GET", status=status, count=MAX_ATTEMPTS)

    if call.trigger:
        events = await _run_trigger(prepared(conn))
        assert [e["status"] for e in events] == ["error"]
        assert f"answered {status}" in events[0]["message"]
        (record,) = wait_for_records(emu, call.glob, 1)
        assert record.request_id in events[0]["message"]
    else:
        hook = PhotaHook(conn)
        try:
            with pytest.raises(PERMANENT[status]) as raised:
                await prepared(hook)
        finally:
            await hook.aclose()
        (record,) = wait_for_records(emu, call.glob, 1)
        assert (raised.value.status, raised.value.request_id) == (status, record.request_id)
    assert record.status == status


def test_matrix_covers_every_endpoint_and_fault() -> None:
    """The matrix's own census, stated once (the README quotes these numbers)."""
    assert len(SYNC_CALLS) == 13
    assert len(ASYNC_CALLS) == 5
    assert len(SYNC_TRANSIENT) == 13 * 8 - len(BINARY) - len(OWN_TESTS)  # those two have tests of their own
    assert len(SYNC_PERMANENT) == 13 * 6
    assert len(TRANSIENT) == 8
    assert len(PERMANENT) == 6
