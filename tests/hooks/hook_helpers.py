"""Helpers of the hook tests (a uniquely named module, importable next to the project's root conftest)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from airflow_provider_phota.exceptions import (
    PhotaAuthenticationError,
    PhotaBadRequestError,
    PhotaInsufficientCreditError,
    PhotaNotFoundError,
    PhotaUnprocessableError,
)
from airflow_provider_phota.hooks.phota import PhotaHook
from airflow_provider_phota.testing import PhotaEmulator

API = "/v1/phota"
STANDARD_URLS = [f"https://example.com/photos/{index}.jpg" for index in range(10)]
FAST_URLS = STANDARD_URLS[:5]


def ready_profile(hook: PhotaHook, emu: PhotaEmulator, **kwargs: str) -> str:
    """A trained profile (created through the hook, the emulator clock moved past the training)."""
    profile_id = hook.create_profile(STANDARD_URLS, **kwargs)
    emu.advance(emu.training_seconds)
    assert emu.profile_status(profile_id) == "READY"
    return profile_id


def wait_for_records(emu: PhotaEmulator, count: int, deadline: float = 5.0) -> None:
    """Wait until the emulator recorded ``count`` API requests, then check it recorded no more.

    A delayed request is recorded when the emulator finishes it, which can be after the client gave up; waiting
    also keeps such a late record from landing in the next test's (reset) request log.
    """
    end = time.monotonic() + deadline
    while len(emu.requests) < count and time.monotonic() < end:
        time.sleep(0.02)
    assert len(emu.requests) == count, [(r.method, r.path, r.status) for r in emu.requests]


# Statuses no retry can fix: each fails after one attempt with its typed error and error type.
NOT_RETRIED: list[Any] = [
    pytest.param(400, PhotaBadRequestError, "INVALID_REQUEST", id="400"),
    pytest.param(401, PhotaAuthenticationError, "UNAUTHORIZED", id="401"),
    pytest.param(402, PhotaInsufficientCreditError, "INSUFFICIENT_CREDIT", id="402"),
    pytest.param(403, PhotaAuthenticationError, "FORBIDDEN", id="403"),
    pytest.param(404, PhotaNotFoundError, "NOT_FOUND", id="404"),
    pytest.param(422, PhotaUnprocessableError, "VALIDATION_ERROR", id="422"),
]

# Transient faults: each is retried, and the call succeeds once the fault is gone.
FAULTS: list[Any] = [
    pytest.param({"status": 429, "retry_after": 0}, id="429"),
    pytest.param({"status": 500}, id="500"),
    pytest.param({"status": 502}, id="502"),
    pytest.param({"status": 503}, id="503"),
    pytest.param({"status": 504}, id="504"),
    pytest.param({"drop": True}, id="drop"),
    pytest.param({"malformed": True}, id="malformed"),
]
