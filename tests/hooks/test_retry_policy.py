"""The retry policy: its arithmetic in isolation, then what the sync client does with each kind of failure."""

from __future__ import annotations

import email.utils
import itertools
import random
import time
from typing import Any

import pytest
from hook_helpers import API, FAULTS, NOT_RETRIED, wait_for_records

from airflow_provider_phota import contract
from airflow_provider_phota.exceptions import (
    PhotaAPIError,
    PhotaAuthenticationError,
    PhotaBadRequestError,
    PhotaConnectionError,
    PhotaContentModerationError,
    PhotaInsufficientCreditError,
    PhotaMalformedResponseError,
    PhotaNotFoundError,
    PhotaRateLimitError,
    PhotaServerError,
    PhotaTimeoutError,
    PhotaUnprocessableError,
    PhotaValidationError,
    is_retryable,
    surely_not_processed,
)
from airflow_provider_phota.hooks.phota import PhotaHook
from airflow_provider_phota.hooks.retry import RetryPolicy
from airflow_provider_phota.testing import PhotaEmulator

IDS = f"{API}/profiles/ids"

# --- RetryPolicy.wait_seconds ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("attempt", "ceiling"), [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 8.0), (30, 8.0)])
def test_backoff_doubles_with_full_jitter_up_to_max_wait(attempt: int, ceiling: float) -> None:
    policy = RetryPolicy(initial_wait=1.0, max_wait=8.0)
    random.seed(attempt)

    waits = [policy.wait_seconds(attempt, PhotaServerError(500)) for _ in range(400)]

    assert min(waits) >= 0.5  # never less than half the first wait
    assert max(waits) <= ceiling
    assert max(waits) > 0.5 + 0.8 * (ceiling - 0.5)  # the jitter spans the whole window
    if ceiling > 1:
        assert len({round(w, 6) for w in waits}) > 100  # jittered, not constant


def test_backoff_ignores_retry_after_of_other_errors() -> None:
    policy = RetryPolicy(initial_wait=0.1, max_wait=0.2)
    timeout = PhotaTimeoutError("slow")
    timeout.retry_after = 60  # type: ignore[attr-defined]
    assert all(0.05 <= policy.wait_seconds(3, timeout) <= 0.2 for _ in range(50))
    assert all(0.05 <= policy.wait_seconds(1, None) <= 0.1 for _ in range(50))


@pytest.mark.parametrize(
    ("retry_after", "cap", "expected"),
    [(7.0, 120.0, 7.0), (500.0, 120.0, 120.0), (30.0, 0.2, 0.2), (0.0, 120.0, 0.0), (-3.0, 120.0, 0.0)],
)
def test_rate_limit_waits_retry_after_capped(retry_after: float, cap: float, expected: float) -> None:
    policy = RetryPolicy(initial_wait=5.0, max_wait=50.0, max_retry_after=cap)
    error = PhotaRateLimitError(429, "slow down", retry_after=retry_after)
    assert policy.wait_seconds(1, error) == expected
    assert policy.wait_seconds(4, error) == expected  # the attempt number does not matter


def test_rate_limit_without_retry_after_backs_off() -> None:
    policy = RetryPolicy(initial_wait=1.0, max_wait=30.0)
    error = PhotaRateLimitError(429, "slow down", retry_after=None)
    assert all(0.5 <= policy.wait_seconds(3, error) <= 4.0 for _ in range(50))


# --- RetryPolicy's own checks ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": 2.0}, "max_attempts"),
        ({"max_attempts": True}, "max_attempts"),
        ({"initial_wait": -1}, "initial_wait"),
        ({"max_wait": float("nan")}, "max_wait"),
        ({"max_retry_after": -0.5}, "max_retry_after"),
    ],
)
def test_a_policy_out_of_range_is_a_validation_error(arguments: dict[str, Any], field: str) -> None:
    with pytest.raises(PhotaValidationError) as raised:
        RetryPolicy(**arguments)
    assert raised.value.fields == [field]


def test_zero_waits_are_values() -> None:
    policy = RetryPolicy(max_attempts=1, initial_wait=0, max_wait=0, max_retry_after=0)
    assert policy.wait_seconds(3, PhotaServerError(500)) == 0.0
    assert policy.wait_seconds(1, PhotaRateLimitError(429, retry_after=9)) == 0.0


# --- contract.parse_retry_after ----------------------------------------------------------------------------------


def test_parse_retry_after_seconds_and_http_date() -> None:
    now = 1_700_000_000.0
    assert contract.parse_retry_after("5", now=now) == 5.0
    assert contract.parse_retry_after(" 12 ", now=now) == 12.0
    assert contract.parse_retry_after("0", now=now) == 0.0
    in_30s = email.utils.formatdate(now + 30, usegmt=True)  # e.g. "Tue, 14 Nov 2023 22:13:50 GMT"
    assert in_30s.endswith("GMT")
    assert contract.parse_retry_after(in_30s, now=now) == pytest.approx(30.0)
    assert contract.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480.0 - 90) == pytest.approx(90.0)
    assert contract.parse_retry_after(email.utils.formatdate(now - 60, usegmt=True), now=now) == 0.0  # in the past


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5e3", "Mon, 99 Foo 2024"])
def test_parse_retry_after_unreadable_is_none(value: str | None) -> None:
    assert contract.parse_retry_after(value, now=time.time()) is None


# --- which errors are retried, and which are surely harmless to resend ------------------------------------------


@pytest.mark.parametrize(
    ("error", "retryable", "harmless"),
    [
        (PhotaRateLimitError(429), True, True),
        (PhotaServerError(503), True, True),
        (PhotaServerError(500), True, False),
        (PhotaServerError(502), True, False),
        (PhotaServerError(504), True, False),
        (PhotaConnectionError("refused", before_send=True), True, True),
        (PhotaConnectionError("reset"), True, False),
        (PhotaTimeoutError("slow"), True, False),
        (PhotaMalformedResponseError("junk"), True, False),
        (PhotaBadRequestError(400), False, False),
        (PhotaAuthenticationError(401), False, False),
        (PhotaInsufficientCreditError(402), False, False),
        (PhotaNotFoundError(404), False, False),
        (PhotaUnprocessableError(422), False, False),
        (PhotaValidationError([]), False, False),
        (ValueError("not ours"), False, False),
    ],
)
def test_is_retryable_and_surely_not_processed(error: BaseException, retryable: bool, harmless: bool) -> None:
    assert is_retryable(error) is retryable
    assert surely_not_processed(error) is harmless


# --- the sync client over HTTP ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", FAULTS)
def test_transient_failures_are_retried_until_success(
    hook: PhotaHook, emu: PhotaEmulator, fault: dict[str, Any]
) -> None:
    profile_id = hook.create_profile([f"https://example.com/{i}.jpg" for i in range(10)])
    emu.inject_fault(f"{API}/profiles/*/status", count=2, **fault)

    state = hook.get_profile_status(profile_id)

    assert state.profile_id == profile_id
    attempts = emu.requests_to(f"{API}/profiles/*/status")
    assert len(attempts) == 3
    assert attempts[-1].status == 200
    assert [a.status for a in attempts[:2]] == [fault.get("status", 0 if fault.get("drop") else 200)] * 2


@pytest.mark.parametrize("fault", FAULTS)
def test_image_post_is_retried_and_charged_once(hook: PhotaHook, emu: PhotaEmulator, fault: dict[str, Any]) -> None:
    emu.inject_fault(f"{API}/generate", count=1, **fault)

    result = hook.generate("retry me")

    assert len(result.images) == 1
    assert len(emu.requests_to(f"{API}/generate")) == 2
    # A fault answered before the work (after=False) books nothing; only the successful attempt is charged.
    assert [c.ref for c in emu.charges("images")] == [result.request_id]


EXHAUSTED: list[Any] = [
    pytest.param({"status": 429, "retry_after": 0}, PhotaRateLimitError, id="429"),
    pytest.param({"status": 500}, PhotaServerError, id="500"),
    pytest.param({"status": 502}, PhotaServerError, id="502"),
    pytest.param({"status": 503}, PhotaServerError, id="503"),
    pytest.param({"status": 504}, PhotaServerError, id="504"),
    pytest.param({"drop": True}, PhotaConnectionError, id="drop"),
    pytest.param({"malformed": True}, PhotaMalformedResponseError, id="malformed"),
]


@pytest.mark.parametrize(("fault", "error_class"), EXHAUSTED)
def test_retries_stop_after_max_attempts_with_the_typed_error(
    hook: PhotaHook, emu: PhotaEmulator, fault: dict[str, Any], error_class: type[Exception]
) -> None:
    emu.inject_fault(IDS, count=10, **fault)

    with pytest.raises(error_class) as raised:
        hook.list_profile_ids()

    assert len(emu.requests_to(IDS)) == hook.settings.retry.max_attempts == 4
    last = emu.requests_to(IDS)[-1]
    error = raised.value
    if isinstance(error, PhotaAPIError):
        assert error.status == fault["status"]
        assert error.request_id == last.request_id
        assert error.detail == f"Injected fault: HTTP {fault['status']}"
    else:
        assert error.path == IDS  # type: ignore[attr-defined]
    if isinstance(error, PhotaConnectionError):
        assert error.before_send is False  # the request reached the server: ambiguous
        assert f"the connection to {emu.base_url.removeprefix('http://')} broke: " in str(error)
    assert error.attempts == 4
    assert str(error).endswith("(after 4 attempts)")


def test_a_permanent_error_after_retries_says_how_many_attempts(hook: PhotaHook, emu: PhotaEmulator) -> None:
    emu.inject_fault(IDS, status=503)
    emu.inject_fault(IDS, status=401)

    with pytest.raises(PhotaAuthenticationError) as raised:
        hook.list_profile_ids()

    assert [r.status for r in emu.requests_to(IDS)] == [503, 401]
    request_id = emu.requests[-1].request_id
    assert str(raised.value).endswith(
        f"answered 401 UNAUTHORIZED: Injected fault: HTTP 401 (request id {request_id}) (after 2 attempts)"
    )


def test_read_timeout_is_retried(make_hook: Any, emu: PhotaEmulator) -> None:
    hook = make_hook(read_timeout=0.5)
    emu.inject_fault(f"{API}/webhook-secret", delay=1.0)

    assert hook.get_webhook_secret() == emu.webhook_secret

    wait_for_records(emu, 2)


def test_read_timeouts_exhaust_with_a_timeout_error(make_hook: Any, emu: PhotaEmulator) -> None:
    hook = make_hook(read_timeout=0.3, max_attempts=2)
    emu.inject_fault(f"{API}/webhook-secret", delay=0.6, count=2)

    with pytest.raises(PhotaTimeoutError, match="webhook-secret"):
        hook.get_webhook_secret()

    wait_for_records(emu, 2)


def test_connection_refused_is_retried_then_raised(make_hook: Any) -> None:
    hook = make_hook(host="http://127.0.0.1:9", max_attempts=3)
    calls: list[int] = []
    original = hook.client.send_once

    def counting(request: Any) -> Any:
        calls.append(1)
        return original(request)

    hook.client.send_once = counting
    with pytest.raises(PhotaConnectionError) as raised:
        hook.list_profile_ids()

    assert len(calls) == 3
    assert raised.value.before_send is True  # never connected: surely not processed
    # The provider's words, not urllib3's "Max retries exceeded with url ...", and how many attempts were made.
    assert str(raised.value) == f"GET {IDS}: connection refused by 127.0.0.1:9 (after 3 attempts)"


def test_retry_after_is_honoured(hook: PhotaHook, emu: PhotaEmulator) -> None:
    emu.inject_fault(IDS, status=429, retry_after=1)

    assert hook.list_profile_ids() == []

    first, second = emu.requests_to(IDS)
    assert first.status == 429
    assert second.status == 200
    assert second.time - first.time >= 0.9


def test_retry_after_is_capped_by_max_retry_after(make_hook: Any, emu: PhotaEmulator) -> None:
    hook = make_hook(max_retry_after=0.2)
    emu.inject_fault(IDS, status=429, retry_after=30, count=2)
    started = time.monotonic()

    assert hook.list_profile_ids() == []

    assert time.monotonic() - started < 2.0
    times = [entry.time for entry in emu.requests_to(IDS)]
    assert len(times) == 3
    assert all(0.15 <= later - earlier < 1.0 for earlier, later in itertools.pairwise(times))


@pytest.mark.parametrize(("status", "error_class", "error_type"), NOT_RETRIED)
def test_client_errors_fail_after_one_attempt(
    hook: PhotaHook, emu: PhotaEmulator, status: int, error_class: type[PhotaAPIError], error_type: str
) -> None:
    emu.inject_fault(f"{API}/generate", status=status, count=5)

    with pytest.raises(error_class) as raised:
        hook.generate("once")

    (only,) = emu.requests_to(f"{API}/generate")
    error = raised.value
    assert type(error) is error_class
    assert (error.status, error.error_type) == (status, error_type)
    assert error.request_id == only.request_id
    assert error.detail == ("injected validation fault" if status == 422 else f"Injected fault: HTTP {status}")
    assert (error.method, error.path) == ("POST", f"{API}/generate")
    assert error.retry_task is False
    assert str(status) in str(error)
    assert only.request_id in str(error)
    assert error.attempts == 1
    assert "attempts" not in str(error)  # one attempt: nothing to say about retries


def test_content_moderation_is_its_own_error_after_one_attempt(hook: PhotaHook, emu: PhotaEmulator) -> None:
    with pytest.raises(PhotaContentModerationError) as raised:
        hook.generate("phota-moderate this")

    (only,) = emu.requests_to(f"{API}/generate")
    assert (raised.value.status, raised.value.error_type) == (400, "CONTENT_MODERATION")
    assert raised.value.request_id == only.request_id
    assert "moderation" in raised.value.detail
    assert emu.charges() == []


def test_real_service_errors_are_typed(hook: PhotaHook, emu: PhotaEmulator) -> None:
    """Errors the emulator produces by itself (not injected): 402 out of credit, 400 unknown profile, 422 schema."""
    emu.set_credit(0.01)
    with pytest.raises(PhotaInsufficientCreditError) as credit:
        hook.generate("costly")
    assert credit.value.error_type == "INSUFFICIENT_CREDIT"
    assert "credit" in credit.value.detail.lower()
    emu.set_credit(None)

    with pytest.raises(PhotaBadRequestError) as bad:
        hook.edit("x", ["https://example.com/a.png"], profile_ids=["prof_unknown"])
    assert bad.value.error_type == "INVALID_REQUEST"
    assert "prof_unknown" in bad.value.detail

    # A body the client would refuse, sent straight through the transport: the service's 422 (api-decisions D9).
    request = contract.image_request("generate", {"prompt": "x", "images": ["abc"]})
    with pytest.raises(PhotaUnprocessableError) as unprocessable:
        hook.client.send(request)
    assert unprocessable.value.status == 422
    assert "images" in unprocessable.value.detail
    assert unprocessable.value.request_id == emu.requests[-1].request_id

    assert [r.status for r in emu.requests] == [402, 400, 422]  # one attempt each
