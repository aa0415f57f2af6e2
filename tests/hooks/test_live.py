"""Against the real Phota API: read-only calls that cost nothing. Skipped unless PHOTA_API_KEY is set.

``PHOTA_BASE_URL`` may point them elsewhere (default: the public service).
"""

from __future__ import annotations

import json
import os

import pytest

from airflow_provider_phota.hooks.phota import PhotaHook

pytestmark = pytest.mark.phota_live


@pytest.fixture
def live_hook(monkeypatch: pytest.MonkeyPatch) -> PhotaHook:
    key = os.environ["PHOTA_API_KEY"]
    connection = {
        "conn_type": "phota",
        "host": os.environ.get("PHOTA_BASE_URL", ""),
        "password": key,
        "extra": {"max_attempts": 3, "read_timeout": 60},
    }
    monkeypatch.setenv("AIRFLOW_CONN_PHOTA_LIVE", json.dumps(connection))
    return PhotaHook("phota_live")


def test_live_list_profile_ids(live_hook: PhotaHook) -> None:
    with live_hook:
        ids = live_hook.list_profile_ids()
    assert isinstance(ids, list)
    assert all(isinstance(profile_id, str) and profile_id for profile_id in ids)


def test_live_test_connection(live_hook: PhotaHook) -> None:
    with live_hook:
        ok, message = live_hook.test_connection()
    assert ok is True, message
    assert os.environ["PHOTA_API_KEY"] not in message


def test_live_wrong_key_fails_cleanly(monkeypatch: pytest.MonkeyPatch) -> None:
    connection = {
        "conn_type": "phota",
        "host": os.environ.get("PHOTA_BASE_URL", ""),
        "password": "phota-invalid-key-for-tests",
        "extra": {"max_attempts": 1},
    }
    monkeypatch.setenv("AIRFLOW_CONN_PHOTA_LIVE_BAD", json.dumps(connection))
    with PhotaHook("phota_live_bad") as hook:
        ok, message = hook.test_connection()
    assert ok is False
    assert "phota-invalid-key-for-tests" not in message
