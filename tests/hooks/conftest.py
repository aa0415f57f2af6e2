"""Fixtures of the hook tests: the emulator, a connection with fast retries, and a hook bound to it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_phota.hooks.phota import PhotaHook
from airflow_provider_phota.testing.emulator import PhotaEmulator

CONN_ENV = "AIRFLOW_CONN_PHOTA_DEFAULT"
# Retries in milliseconds, four attempts, and a short read timeout, so the retry tests run fast.
FAST_EXTRAS: dict[str, Any] = {"retry_wait": 0.01, "retry_max_wait": 0.05, "max_attempts": 4, "read_timeout": 2}

SetConn = Callable[..., str]


@pytest.fixture
def emu(phota_emulator: PhotaEmulator) -> PhotaEmulator:
    return phota_emulator


@pytest.fixture
def slow_emu(phota_emulator_factory: Callable[..., PhotaEmulator]) -> PhotaEmulator:
    """An emulator whose profiles train for 100 s and jobs run for 100 s on its clock.

    Tests that look at an intermediate state move its clock with ``advance``; on the shared emulator (1 s of
    training) the real time a loaded machine takes between two calls could skip a state.
    """
    return phota_emulator_factory(training_seconds=100.0, job_seconds=100.0, api_key="slow-key")


@pytest.fixture
def slow_hook(slow_emu: PhotaEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[PhotaHook]:
    connection = {"conn_type": "phota", "host": slow_emu.base_url, "password": slow_emu.api_key, "extra": FAST_EXTRAS}
    monkeypatch.setenv("AIRFLOW_CONN_PHOTA_SLOW", json.dumps(connection))
    with PhotaHook("phota_slow") as phota_hook:
        yield phota_hook


@pytest.fixture
def set_conn(emu: PhotaEmulator, monkeypatch: pytest.MonkeyPatch) -> SetConn:
    """Point ``phota_default`` at the emulator with the fast extras, overridden/extended by keyword arguments.

    ``host``/``password`` may be replaced too (``password=None`` removes the key).
    """

    def _set(*, host: str | None = None, password: str | None = "", port: int | None = None, **extras: Any) -> str:
        connection: dict[str, Any] = {
            "conn_type": "phota",
            "host": emu.base_url if host is None else host,
            "extra": {**FAST_EXTRAS, **extras},
        }
        key = emu.api_key if password == "" else password
        if key is not None:
            connection["password"] = key
        if port is not None:
            connection["port"] = port
        monkeypatch.setenv(CONN_ENV, json.dumps(connection))
        return "phota_default"

    return _set


@pytest.fixture
def conn_id(set_conn: SetConn) -> str:
    return set_conn()


@pytest.fixture
def hook(conn_id: str) -> Iterator[PhotaHook]:
    with PhotaHook(conn_id) as phota_hook:
        assert phota_hook.settings.api_key  # bound now, before a test changes the environment
        yield phota_hook


@pytest.fixture
def make_hook(set_conn: SetConn) -> Iterator[Callable[..., PhotaHook]]:
    """A hook on a connection with the given extras (see ``set_conn``); closed at teardown.

    The connection is read at once (sync settings are otherwise read lazily, at the first call), so several hooks
    with different connections can live in one test.
    """
    made: list[PhotaHook] = []

    def _make(**conn: Any) -> PhotaHook:
        made.append(PhotaHook(set_conn(**conn)))
        assert made[-1].settings.base_url
        return made[-1]

    yield _make
    for item in made:
        item.close()
