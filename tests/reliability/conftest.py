"""Fixtures of the reliability suite: the plugin's emulator behind connections with fast retries."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from reliability_support import connection_json

from airflow_provider_phota.testing import PhotaEmulator

SetConn = Callable[..., str]


@pytest.fixture
def emu(phota_emulator: PhotaEmulator) -> PhotaEmulator:
    """The session's emulator, reset: no profiles, jobs, charges, faults or recorded requests."""
    return phota_emulator


@pytest.fixture
def set_conn(emu: PhotaEmulator, monkeypatch: pytest.MonkeyPatch) -> SetConn:
    """Define a connection (through the environment) to the emulator with the fast extras, overridden by keywords;
    returns its id. ``password`` replaces the key."""

    def _set(conn_id: str = "phota_default", *, password: str | None = None, **extras: object) -> str:
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", connection_json(emu, password=password, **extras))
        return conn_id

    return _set


@pytest.fixture
def conn_id(set_conn: SetConn) -> str:
    return set_conn()
