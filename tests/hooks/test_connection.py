"""The Airflow connection: parsing host, port, key and extras; ``test_connection``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hook_helpers import API

from airflow_provider_phota.contract import DEFAULT_BASE_URL, profile_status_request
from airflow_provider_phota.exceptions import PhotaError, PhotaServerError, PhotaValidationError
from airflow_provider_phota.hooks.phota import PhotaHook
from airflow_provider_phota.hooks.retry import RetryPolicy
from airflow_provider_phota.hooks.transport import ConnectionSettings, base_url_from
from airflow_provider_phota.testing import PhotaEmulator

# --- base URL -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        (None, None, DEFAULT_BASE_URL),
        ("", None, DEFAULT_BASE_URL),
        ("   ", 8443, DEFAULT_BASE_URL),
        ("http://127.0.0.1:8089", None, "http://127.0.0.1:8089"),
        ("http://127.0.0.1:8089/", None, "http://127.0.0.1:8089"),
        ("https://api.photalabs.com", None, "https://api.photalabs.com"),
        ("api.photalabs.com", None, "https://api.photalabs.com"),  # no scheme: https
        ("api.example.com", 8443, "https://api.example.com:8443"),  # the port field
        ("http://127.0.0.1", 8089, "http://127.0.0.1:8089"),
        ("http://127.0.0.1:8089", 9999, "http://127.0.0.1:8089"),  # a port in the host wins
        ("https://api.photalabs.com/v1/phota", None, "https://api.photalabs.com"),  # trailing prefix dropped
        ("https://api.photalabs.com/v1/phota/", None, "https://api.photalabs.com"),
        ("api.example.com/v1/phota", 8443, "https://api.example.com:8443"),
        ("https://gateway.example.com/phota-proxy", None, "https://gateway.example.com/phota-proxy"),
        ("https://gateway.example.com/phota-proxy", 444, "https://gateway.example.com:444/phota-proxy"),
        ("http://[::1]", 8089, "http://[::1]:8089"),  # IPv6 keeps its brackets
    ],
)
def test_base_url_from(host: str | None, port: int | None, expected: str) -> None:
    assert base_url_from(host, port) == expected


# --- settings from the Airflow connection ----------------------------------------------------------------------


def _env_conn(monkeypatch: pytest.MonkeyPatch, **connection: Any) -> PhotaHook:
    monkeypatch.setenv("AIRFLOW_CONN_PHOTA_DEFAULT", json.dumps({"conn_type": "phota", **connection}))
    return PhotaHook()


def test_defaults_for_a_bare_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _env_conn(monkeypatch, password="k").settings

    assert settings == ConnectionSettings(base_url=DEFAULT_BASE_URL, api_key="k")
    assert settings.read_timeout == 660.0
    assert settings.connect_timeout == 10.0
    assert settings.retry == RetryPolicy() == RetryPolicy(5, 1.0, 30.0, 120.0)
    arguments = settings.http_arguments(profile_status_request("prof_1"))
    assert arguments["headers"] == {"X-API-Key": "k"}
    assert arguments["url"] == f"{DEFAULT_BASE_URL}/v1/phota/profiles/prof_1/status"


def test_host_and_port_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _env_conn(monkeypatch, host="phota.internal", port=8443, password="k").settings
    assert settings.base_url == "https://phota.internal:8443"


def test_extras_override_timeouts_and_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    extras = {
        "read_timeout": "30",  # numeric strings are accepted: a connection form may store them
        "connect_timeout": 2.5,
        "max_attempts": "2",
        "retry_wait": 0.5,
        "retry_max_wait": "4",
        "max_retry_after": 9,
    }
    settings = _env_conn(monkeypatch, host="http://127.0.0.1:1", password="k", extra=extras).settings

    assert (settings.read_timeout, settings.connect_timeout) == (30.0, 2.5)
    assert settings.retry == RetryPolicy(max_attempts=2, initial_wait=0.5, max_wait=4.0, max_retry_after=9.0)


# --- explicit argument > connection extra > default ------------------------------------------------------------


def test_an_explicit_retry_policy_replaces_every_retry_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    extras = {"read_timeout": 30, "max_attempts": 3, "retry_wait": 5, "retry_max_wait": 6, "max_retry_after": 7}
    monkeypatch.setenv(
        "AIRFLOW_CONN_PHOTA_DEFAULT", json.dumps({"conn_type": "phota", "password": "k", "extra": extras})
    )
    policy = RetryPolicy(max_attempts=9, initial_wait=0.25, max_wait=2.0, max_retry_after=1.0)

    settings = PhotaHook(read_timeout=5, retry_policy=policy).settings

    assert settings.read_timeout == 5.0  # the argument wins over the extra
    assert settings.retry is policy  # no extra applies on top of an explicit policy
    assert PhotaHook().settings.read_timeout == 30.0  # without the argument, the extra


def test_an_explicit_single_attempt_makes_one_attempt(set_conn: Any, emu: PhotaEmulator) -> None:
    """The connection asks for 4 attempts (FAST_EXTRAS); the hook's argument says 1, and 1 it is."""
    set_conn(max_attempts=4)
    emu.inject_fault(f"{API}/profiles/ids", status=503, count=5)

    with PhotaHook(retry_policy=RetryPolicy(max_attempts=1)) as hook, pytest.raises(PhotaServerError):
        hook.list_profile_ids()

    assert len(emu.requests) == 1


def test_zero_waits_in_the_extras_are_values(monkeypatch: pytest.MonkeyPatch) -> None:
    extras = {"retry_wait": 0, "retry_max_wait": 0.0, "max_retry_after": "0"}
    settings = _env_conn(monkeypatch, password="k", extra=extras).settings

    assert settings.retry == RetryPolicy(initial_wait=0.0, max_wait=0.0, max_retry_after=0.0)


def test_empty_extras_are_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty form field is stored as "" or null: the default applies."""
    extras = {name: "" for name in ("read_timeout", "connect_timeout", "max_attempts")} | {"retry_wait": None}
    settings = _env_conn(monkeypatch, password="k", extra=extras).settings

    assert settings == ConnectionSettings(base_url=DEFAULT_BASE_URL, api_key="k")


BAD_EXTRAS: list[Any] = [
    pytest.param("read_timeout", 0, "a number of seconds > 0", id="timeout-0"),
    pytest.param("read_timeout", -5, "a number of seconds > 0", id="timeout-negative"),
    pytest.param("read_timeout", "soon", "a number of seconds > 0", id="timeout-not-a-number"),
    pytest.param("connect_timeout", 0, "a number of seconds > 0", id="connect_timeout-0"),
    pytest.param("connect_timeout", [1], "a number of seconds > 0", id="connect_timeout-list"),
    pytest.param("max_attempts", 0, "an integer >= 1", id="max_attempts-0"),
    pytest.param("max_attempts", 2.5, "an integer >= 1", id="max_attempts-fraction"),
    pytest.param("max_attempts", "three", "an integer >= 1", id="max_attempts-word"),
    pytest.param("max_attempts", False, "an integer >= 1", id="max_attempts-false"),
    pytest.param("retry_wait", -0.1, "a number of seconds >= 0", id="retry_wait-negative"),
    pytest.param("retry_max_wait", -1, "a number of seconds >= 0", id="retry_max_wait-negative"),
    pytest.param("max_retry_after", -5, "a number of seconds >= 0", id="max_retry_after-negative"),
    pytest.param("max_retry_after", "inf", "a number of seconds >= 0", id="max_retry_after-infinite"),
]


@pytest.mark.parametrize(("extra", "value", "allowed"), BAD_EXTRAS)
def test_an_extra_out_of_range_is_a_validation_error_naming_it(
    set_conn: Any, emu: PhotaEmulator, extra: str, value: Any, allowed: str
) -> None:
    set_conn(**{extra: value})
    hook = PhotaHook()

    with pytest.raises(PhotaValidationError) as raised:
        hook.list_profile_ids()

    error = raised.value
    assert error.fields == [f"{extra} (connection extra)"]
    assert f"(allowed: {allowed})" in str(error)
    assert "'phota_default'" in str(error)
    assert error.retry_task is False  # a configuration error: an Airflow retry cannot help
    assert emu.requests == []


def test_every_bad_extra_is_named_at_once(set_conn: Any) -> None:
    set_conn(read_timeout=0, max_attempts=0, retry_wait=-1)

    with pytest.raises(PhotaValidationError) as raised:
        _ = PhotaHook().settings

    assert sorted(raised.value.fields) == [
        f"{name} (connection extra)" for name in ("max_attempts", "read_timeout", "retry_wait")
    ]


def test_a_bad_retry_extra_is_ignored_under_an_explicit_policy(set_conn: Any) -> None:
    set_conn(max_attempts=0)

    assert PhotaHook(retry_policy=RetryPolicy(max_attempts=2)).settings.retry.max_attempts == 2


@pytest.mark.parametrize("read_timeout", [0, -1.0])
def test_an_explicit_timeout_out_of_range_is_a_validation_error(set_conn: Any, read_timeout: float) -> None:
    set_conn()

    with pytest.raises(PhotaValidationError) as raised:
        _ = PhotaHook(read_timeout=read_timeout).settings

    assert raised.value.fields == ["read_timeout"]


def test_test_connection_names_a_bad_extra(set_conn: Any, emu: PhotaEmulator) -> None:
    set_conn(read_timeout=0)

    ok, message = PhotaHook().test_connection()

    assert ok is False
    assert "timeout (connection extra): 0 is out of range" in message
    assert emu.requests == []


def test_a_named_connection(monkeypatch: pytest.MonkeyPatch, emu: PhotaEmulator) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_PHOTA_STAGING",
        json.dumps({"conn_type": "phota", "host": emu.base_url, "password": emu.api_key}),
    )
    with PhotaHook("phota_staging") as hook:
        assert hook.list_profile_ids() == []
    assert len(emu.requests_to(f"{API}/profiles/ids")) == 1


def test_missing_password_is_a_phota_error_before_any_request(
    monkeypatch: pytest.MonkeyPatch, emu: PhotaEmulator
) -> None:
    hook = _env_conn(monkeypatch, host=emu.base_url)

    with pytest.raises(PhotaError, match="no API key"):
        hook.list_profile_ids()
    with pytest.raises(PhotaError, match="password"):
        _ = hook.settings
    assert emu.requests == []


def test_get_conn_is_the_reused_session(hook: PhotaHook, emu: PhotaEmulator) -> None:
    import requests

    session = hook.get_conn()
    assert isinstance(session, requests.Session)
    hook.list_profile_ids()
    assert hook.get_conn() is session
    hook.close()
    assert hook.get_conn() is not session  # a closed hook opens a fresh session on the next use
    assert hook.list_profile_ids() == []


# --- test_connection ----------------------------------------------------------------------------------------------


def test_test_connection_success(hook: PhotaHook, emu: PhotaEmulator) -> None:
    hook.create_profile([f"https://example.com/{i}.jpg" for i in range(10)])

    ok, message = hook.test_connection()

    assert ok is True
    assert emu.base_url in message
    assert "1 profile" in message
    assert emu.api_key not in message
    assert emu.requests[-1].path == f"{API}/profiles/ids"


def test_test_connection_with_a_wrong_key(make_hook: Any, emu: PhotaEmulator) -> None:
    hook = make_hook(password="not-the-right-key-4711")

    ok, message = hook.test_connection()

    assert ok is False
    assert "401" in message
    assert "not-the-right-key-4711" not in message
    assert emu.api_key not in message
    assert len(emu.requests) == 1  # an auth failure is not retried


def test_test_connection_with_an_unreachable_host(make_hook: Any, emu: PhotaEmulator) -> None:
    hook = make_hook(host="http://127.0.0.1:9", max_attempts=2)

    ok, message = hook.test_connection()

    assert ok is False
    assert "failed" in message
    assert "127.0.0.1" in message
    assert emu.api_key not in message
    assert emu.requests == []


def test_test_connection_without_a_key(monkeypatch: pytest.MonkeyPatch, emu: PhotaEmulator) -> None:
    ok, message = _env_conn(monkeypatch, host=emu.base_url).test_connection()
    assert ok is False
    assert "no API key" in message
    assert emu.requests == []
