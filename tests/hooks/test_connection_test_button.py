"""What Airflow 3.3's connection list "Test" button does with a Phota connection (docs/connection.md).

The button (airflow/ui, 3.3.2) sends the stored connection as the list shows it: the password masked as ``***`` and
the port as ``Number(port)``, which is ``0`` for a connection without one. These tests send that body to the API
server's ``POST /api/v2/connections/test`` in process: without a stored port Airflow refuses it before the provider
is asked (its behaviour, for every connection type); with the Base URL's port stored, the provider's
``test_connection`` runs with the stored key.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from airflow_versions import AIRFLOW_VERSION

from airflow_provider_phota.testing import PhotaEmulator

pytestmark = [
    pytest.mark.usefixtures("airflow_db"),
    pytest.mark.skipif(AIRFLOW_VERSION.release[:2] != (3, 3), reason="the 3.3 UI's button and API server"),
]


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Any:
    from fastapi.testclient import TestClient

    monkeypatch.setenv("AIRFLOW__CORE__TEST_CONNECTION", "Enabled")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    from airflow.api_fastapi.app import create_app

    return TestClient(create_app(), base_url="http://testserver/api/v2")


def stored(conn_id: str, **fields: Any) -> None:
    from airflow.models import Connection
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(Connection).filter(Connection.conn_id == conn_id).delete()
        session.add(Connection(conn_id=conn_id, conn_type="phota", **fields))


def list_button(api: Any, conn_id: str) -> Any:
    """What the list's Test button posts for the stored connection ``conn_id``."""
    row = api.get(f"/connections/{conn_id}").json()
    body = {name: row.get(name) or "" for name in ("conn_type", "connection_id", "description", "host", "login")}
    body |= {"password": row["password"], "schema": row.get("schema") or "", "extra": row.get("extra") or "{}"}
    body["port"] = row.get("port") or 0  # Number(null) is 0
    return api.post("/connections/test", json=body)


def test_without_a_stored_port_airflow_refuses_the_list_button(api: Any, phota_emulator: PhotaEmulator) -> None:
    stored("phota_button", host=phota_emulator.base_url, password=phota_emulator.api_key)

    answer = list_button(api, "phota_button")

    assert answer.status_code == 400
    assert "The host or port to test differs from the stored connection" in answer.json()["detail"]
    assert phota_emulator.requests == []  # refused before the provider was asked


def test_with_the_base_urls_port_stored_the_list_button_tests_the_connection(
    api: Any, phota_emulator: PhotaEmulator
) -> None:
    port = urlsplit(phota_emulator.base_url).port
    stored("phota_button", host=phota_emulator.base_url, port=port, password=phota_emulator.api_key)

    answer = list_button(api, "phota_button")

    assert answer.status_code == 200
    assert answer.json() == {
        "status": True,
        "message": f"Connected to {phota_emulator.base_url}: the account has 0 profile(s).",
    }
    assert phota_emulator.requests_to("/v1/phota/profiles/ids", "GET")
