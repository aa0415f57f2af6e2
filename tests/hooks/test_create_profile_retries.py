"""Retrying a profile create without paying for two trainings."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hook_helpers import API, STANDARD_URLS, wait_for_records

from airflow_provider_phota.exceptions import PhotaConnectionError, PhotaServerError, PhotaTimeoutError
from airflow_provider_phota.hooks.phota import PhotaHook
from airflow_provider_phota.testing import PhotaEmulator

ADD = f"{API}/profiles/add"


def _profiles_with_tag(emu: PhotaEmulator, tag: str) -> list[str]:
    return [profile_id for profile_id, view in emu.profiles.items() if view.tag == tag]


AMBIGUOUS = [
    pytest.param({"status": 500}, id="500"),
    pytest.param({"status": 502}, id="502"),
    pytest.param({"status": 504}, id="504"),
    pytest.param({"drop": True}, id="drop"),
]


@pytest.mark.parametrize("fault", AMBIGUOUS)
def test_tagged_create_recognises_the_profile_an_answerless_attempt_made(
    hook: PhotaHook, emu: PhotaEmulator, fault: dict[str, Any]
) -> None:
    emu.inject_fault(ADD, after=True, **fault)  # the profile is created, the answer is lost

    profile_id = hook.create_profile(STANDARD_URLS, tag="once")

    assert _profiles_with_tag(emu, "once") == [profile_id]
    assert len(emu.charges("profile")) == 1
    assert len(emu.requests_to(ADD)) == 1  # found by the look-up: no second create
    assert [entry.query for entry in emu.requests_to(f"{API}/profiles/ids")] == [{"tag": "once"}] * 2


def test_tagged_create_ignores_older_profiles_with_the_same_tag(hook: PhotaHook, emu: PhotaEmulator) -> None:
    older = hook.create_profile(STANDARD_URLS, tag="shared")
    emu.inject_fault(ADD, status=500, after=True)

    newer = hook.create_profile(STANDARD_URLS, tag="shared", training_tier="standard")

    assert newer != older
    assert sorted(_profiles_with_tag(emu, "shared")) == sorted([older, newer])
    assert len(emu.charges("profile")) == 2


def test_tagged_create_retries_when_the_failed_attempt_created_nothing(hook: PhotaHook, emu: PhotaEmulator) -> None:
    emu.inject_fault(ADD, status=500)  # answered before any work

    profile_id = hook.create_profile(STANDARD_URLS, tag="retry")

    assert _profiles_with_tag(emu, "retry") == [profile_id]
    assert len(emu.requests_to(ADD)) == 2
    assert len(emu.charges("profile")) == 1


def test_tagged_create_after_a_timeout_waits_for_the_attempt_in_flight(make_hook: Any, emu: PhotaEmulator) -> None:
    """A read timeout is ambiguous and the first attempt may still be running on the server: the hook watches the
    tag for up to the read timeout instead of resending, and returns the profile that attempt creates."""
    hook = make_hook(read_timeout=0.4)
    emu.inject_fault(ADD, delay=0.6)  # answered after the client gave up, within the look-up window

    profile_id = hook.create_profile(STANDARD_URLS, tag="slow")

    time.sleep(0.3)  # any resend would be recorded by now (the POST itself is recorded when the emulator answers)
    posts = [entry for entry in emu.requests if entry.method == "POST"]
    assert len(posts) == 1  # never resent
    assert _profiles_with_tag(emu, "slow") == [profile_id]
    assert len(emu.charges("profile")) == 1
    looks = [entry for entry in emu.requests if entry.method == "GET"]
    assert len(looks) >= 2  # the one before the create, and the look-ups after the timeout


def test_tagged_create_exhausted_raises_without_duplicates(hook: PhotaHook, emu: PhotaEmulator) -> None:
    emu.inject_fault(ADD, status=503, count=10)

    with pytest.raises(PhotaServerError) as raised:
        hook.create_profile(STANDARD_URLS, tag="never")

    assert raised.value.status == 503
    assert len(emu.requests_to(ADD)) == 4
    assert emu.profiles == {}


@pytest.mark.parametrize(
    ("fault", "error_class"),
    [({"status": 500}, PhotaServerError), ({"status": 502}, PhotaServerError), ({"drop": True}, PhotaConnectionError)],
    ids=["500", "502", "drop"],
)
def test_untagged_create_raises_an_ambiguous_failure_after_one_attempt(
    hook: PhotaHook, emu: PhotaEmulator, fault: dict[str, Any], error_class: type[Exception]
) -> None:
    emu.inject_fault(ADD, after=True, **fault)

    with pytest.raises(error_class):
        hook.create_profile(STANDARD_URLS)

    assert len(emu.requests_to(ADD)) == 1
    assert len(emu.profiles) == 1  # the one the lost attempt made; no duplicate
    assert len(emu.charges("profile")) == 1


def test_untagged_create_does_not_retry_a_timeout(make_hook: Any, emu: PhotaEmulator) -> None:
    hook = make_hook(read_timeout=0.3)
    emu.inject_fault(ADD, delay=0.6)

    with pytest.raises(PhotaTimeoutError):
        hook.create_profile(STANDARD_URLS)

    wait_for_records(emu, 1)
    assert len(emu.requests_to(ADD)) == 1
    assert len(emu.profiles) == 1


@pytest.mark.parametrize("fault", [{"status": 429, "retry_after": 0}, {"status": 503}], ids=["429", "503"])
def test_untagged_create_retries_refusals(hook: PhotaHook, emu: PhotaEmulator, fault: dict[str, Any]) -> None:
    emu.inject_fault(ADD, count=2, **fault)

    profile_id = hook.create_profile(STANDARD_URLS)

    assert list(emu.profiles) == [profile_id]
    assert [entry.status for entry in emu.requests_to(ADD)] == [fault["status"], fault["status"], 200]
    assert len(emu.charges("profile")) == 1


def test_untagged_create_retries_connection_refused(make_hook: Any) -> None:
    hook = make_hook(host="http://127.0.0.1:9", max_attempts=2)
    sent: list[str] = []
    original = hook.client.send_once

    def counting(request: Any) -> Any:
        sent.append(request.path)
        return original(request)

    hook.client.send_once = counting
    with pytest.raises(PhotaConnectionError):
        hook.create_profile(STANDARD_URLS)

    assert sent == [ADD, ADD]  # never reached a server, so resending was safe


def test_tagged_create_with_known_ids_lists_the_tag_only_to_recover(hook: PhotaHook, emu: PhotaEmulator) -> None:
    """Ids the caller has just listed replace the look before the first attempt; the look after an ambiguous
    failure still happens, and still tells an older profile of the tag from the one the lost attempt made."""
    older = hook.create_profile(STANDARD_URLS, tag="known")
    listed = hook.list_profile_ids("known")
    looks_before = len(emu.requests_to(f"{API}/profiles/ids"))
    emu.inject_fault(ADD, status=500, after=True)  # the profile is created, the answer is lost

    newer = hook.create_profile(STANDARD_URLS, tag="known", known_profile_ids=listed)

    assert newer != older
    assert sorted(_profiles_with_tag(emu, "known")) == sorted([older, newer])
    assert len(emu.requests_to(ADD)) == 2  # the older one's, and the lost attempt: never resent
    assert [entry.query for entry in emu.requests_to(f"{API}/profiles/ids")][looks_before:] == [{"tag": "known"}]
