"""The API key travels in ``X-API-Key`` to the API only: never to signed download URLs, errors or logs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from hook_helpers import API, STANDARD_URLS, wait_for_records

from airflow_provider_phota.exceptions import (
    PhotaAuthenticationError,
    PhotaConnectionError,
    PhotaError,
    PhotaServerError,
    PhotaTimeoutError,
)
from airflow_provider_phota.hooks.phota import PhotaHook
from airflow_provider_phota.testing import PhotaEmulator

WRONG_KEY = "wrong-key-9f8e7d6c5b4a"


def _sent_requests(hook: PhotaHook) -> list[requests.PreparedRequest]:
    """Record every request the hook's session really sends (after requests merged all headers)."""
    sent: list[requests.PreparedRequest] = []

    def remember(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        sent.append(response.request)

    hook.get_conn().hooks["response"].append(remember)
    return sent


def test_key_only_in_x_api_key_to_the_api_never_to_downloads(
    hook: PhotaHook, emu: PhotaEmulator, tmp_path: Path
) -> None:
    sent = _sent_requests(hook)

    (url,) = hook.generate("a key-free download", response_mode="urls").download_urls
    hook.download(url, tmp_path / "out.png")

    api_request, download_request = sent
    assert api_request.url is not None
    assert api_request.url.startswith(emu.base_url + API)
    assert api_request.headers["X-API-Key"] == emu.api_key
    assert download_request.url == url
    assert "X-API-Key" not in download_request.headers
    assert all(emu.api_key not in str(value) for value in download_request.headers.values())
    assert emu.api_key not in url
    # The emulator saw the key on the API request, in the documented header and nowhere else.
    (recorded,) = emu.requests
    assert recorded.headers["X-API-Key"] == emu.api_key
    assert [name for name, value in recorded.headers.items() if emu.api_key in value] == ["X-API-Key"]
    assert emu.api_key not in str(recorded.query)
    assert [d.status for d in emu.downloads] == [200]


def test_settings_repr_hides_the_key(hook: PhotaHook, emu: PhotaEmulator) -> None:
    assert hook.settings.api_key == emu.api_key
    assert emu.api_key not in repr(hook.settings)
    assert emu.api_key not in str(hook.settings)


def _errors(hook: PhotaHook, emu: PhotaEmulator, wrong_key_hook: PhotaHook) -> list[PhotaError]:
    """One error of each kind the transport can raise."""
    attempts: list[Callable[[], object]] = [
        wrong_key_hook.list_profile_ids,  # 401
        lambda: hook.get_profile_status("missing"),  # 404
        lambda: hook.generate("x", resolution="9K"),  # validation
    ]
    found: list[PhotaError] = []
    for attempt in attempts:
        with pytest.raises(PhotaError) as raised:
            attempt()
        found.append(raised.value)
    emu.inject_fault(f"{API}/profiles/ids", status=500, count=10)
    with pytest.raises(PhotaServerError) as server:
        hook.list_profile_ids()
    emu.clear_faults()
    emu.inject_fault(f"{API}/profiles/ids", drop=True, count=10)
    with pytest.raises(PhotaConnectionError) as dropped:
        hook.list_profile_ids()
    emu.clear_faults()
    return [*found, server.value, dropped.value]


def test_key_never_in_exception_messages(hook: PhotaHook, emu: PhotaEmulator, make_hook: Any) -> None:
    wrong = make_hook(password=WRONG_KEY)
    errors = _errors(hook, emu, wrong)

    assert isinstance(errors[0], PhotaAuthenticationError)
    assert errors[0].status == 401
    for error in errors:
        text = f"{error} {error!r} {error.args} {vars(error)}"
        assert emu.api_key not in text
        assert WRONG_KEY not in text


def test_key_never_in_log_records(
    hook: PhotaHook, emu: PhotaEmulator, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """Airflow hooks log through structlog (rendered to the captured output); the HTTP libraries log to stdlib
    logging (caplog). Both are searched, and both are shown to contain the calls' log lines first."""
    caplog.set_level(logging.DEBUG)
    emu.inject_fault(f"{API}/profiles/ids", status=503)
    hook.list_profile_ids()
    hook.create_profile(STANDARD_URLS, tag="logs")
    with pytest.raises(PhotaError):
        hook.get_profile_status("missing")

    captured = capfd.readouterr()
    text = captured.out + captured.err + caplog.text + " ".join(str(r.__dict__) for r in caplog.records)
    assert "Phota GET /v1/phota/profiles/ids -> 503" in text  # the call log line
    assert "retrying in" in text  # the retry warning
    assert "Phota POST /v1/phota/profiles/add -> 200" in text
    assert '"GET /v1/phota/profiles/ids HTTP/1.1"' in caplog.text  # urllib3's debug line
    assert emu.api_key not in text


def test_timeout_error_message_has_no_key(make_hook: Any, emu: PhotaEmulator) -> None:
    hook = make_hook(read_timeout=0.3, max_attempts=1)
    emu.inject_fault(f"{API}/webhook-secret", delay=0.8)

    with pytest.raises(PhotaTimeoutError) as raised:
        hook.get_webhook_secret()

    assert emu.api_key not in f"{raised.value} {raised.value!r}"
    assert "webhook-secret" in str(raised.value)
    wait_for_records(emu, 1)
