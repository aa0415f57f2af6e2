"""The callback receiver without a deployment: FastAPI's TestClient, the session's metadata database, and callbacks
the emulator really signed (its recorded deliveries, replayed to the app).

A real API server receiving the emulator's HTTP callbacks is in test_events_deployment.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from airflow_versions import AIRFLOW_VERSION
from packaging.version import Version

from airflow_provider_phota import contract
from airflow_provider_phota.testing import PhotaEmulator

pytestmark = pytest.mark.skipif(
    Version("3.1") > AIRFLOW_VERSION, reason="the callback receiver lives in a FastAPI plugin app: Airflow 3.1+"
)

GENERATE_URI = "phota://jobs/generate"
UNREACHABLE_RECEIVER = "https://127.0.0.1:9/phota/callbacks"  # the emulator records the signed delivery anyway


@pytest.fixture
def client(airflow_db: None, phota_conn_id: str) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from airflow_provider_phota.plugins import callbacks
    from airflow_provider_phota.plugins.app import create_app

    callbacks.secret_cache.clear()
    _clear_events()
    with TestClient(create_app()) as test_client:
        yield test_client
    callbacks.secret_cache.clear()


def _clear_events() -> None:
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import delete

    with create_session() as session:
        session.execute(delete(AssetEvent))


@pytest.fixture
def generate_asset(airflow_db: None) -> None:
    """The asset a DAG scheduled on ``phota://jobs/generate`` would have registered."""
    from airflow.models.asset import AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        if session.scalar(select(AssetModel).where(AssetModel.uri == GENERATE_URI)) is None:
            session.add(AssetModel(name=GENERATE_URI, uri=GENERATE_URI, group="asset"))


def events(uri: str = GENERATE_URI) -> list[dict[str, Any]]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(AssetEvent).join(AssetModel, AssetModel.id == AssetEvent.asset_id).where(AssetModel.uri == uri)
        )
        return [dict(row.extra) for row in rows]


def signed_callback(emulator: PhotaEmulator, prompt: str = "a lighthouse at dusk") -> tuple[bytes, dict[str, str]]:
    """Submit a job with a callback URL and return the body and headers the emulator signed and sent."""
    from airflow_provider_phota.hooks.phota import PhotaHook

    key = f"cb-{time.monotonic_ns()}"
    with PhotaHook() as hook:
        handle = hook.submit_job(
            "generate",
            {"prompt": prompt, "num_output_images": 2},
            client_request_id=key,
            callback_url=UNREACHABLE_RECEIVER,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for delivery in emulator.callbacks:
            if delivery.job_id == handle.job_id:
                return delivery.body, dict(delivery.headers)
        time.sleep(0.05)
    raise AssertionError("the emulator sent no callback")


def post(client: Any, body: bytes, headers: dict[str, str]) -> Any:
    return client.post("/callbacks", content=body, headers=headers)


def resigned(emulator: PhotaEmulator, body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    signature = contract.sign_callback(emulator.webhook_secret, raw)
    return raw, {"Content-Type": "application/json", contract.SIGNATURE_HEADER: signature}


def test_a_signed_terminal_callback_becomes_one_asset_event_without_tokens(
    client: Any, generate_asset: None, phota_emulator: PhotaEmulator
) -> None:
    body, headers = signed_callback(phota_emulator)
    job = json.loads(body)

    answer = post(client, body, headers)

    assert answer.status_code == 204
    assert answer.content == b""
    (extra,) = events()
    assert extra["job_id"] == job["job_id"]
    assert extra["status"] == "SUCCEEDED"
    assert extra["endpoint"] == "generate"
    assert extra["error"] is None
    assert extra["updated_at"] == job["updated_at"]
    assert len(extra["outputs"]) == 2
    for output, signed in zip(extra["outputs"], job["result"]["download_urls"], strict=True):
        assert "?" in signed
        assert "token=" in signed
        assert output == signed.split("?", 1)[0]
    assert "token" not in json.dumps(extra)
    # The secret was fetched once, through the connection.
    assert len(phota_emulator.requests_to("/v1/phota/webhook-secret", "GET")) == 1


def test_a_failed_job_carries_its_error(client: Any, generate_asset: None, phota_emulator: PhotaEmulator) -> None:
    phota_emulator.fail_next_jobs(1)
    body, headers = signed_callback(phota_emulator)

    assert post(client, body, headers).status_code == 204

    (extra,) = events()
    assert extra["status"] == "FAILED"
    assert extra["outputs"] == []
    assert extra["error"]["type"] == "JOB_FAILED"


def test_a_replay_of_the_same_body_is_refused_and_records_nothing_more(
    client: Any, generate_asset: None, phota_emulator: PhotaEmulator
) -> None:
    body, headers = signed_callback(phota_emulator)
    assert post(client, body, headers).status_code == 204

    replay = post(client, body, headers)

    assert replay.status_code == 409
    assert replay.content == b""
    assert len(events()) == 1


def test_a_replay_older_than_the_window_is_refused_even_without_a_recorded_event(
    client: Any, generate_asset: None, phota_emulator: PhotaEmulator
) -> None:
    body, _ = signed_callback(phota_emulator)
    old = json.loads(body)
    old["updated_at"] = (datetime.now(UTC) - timedelta(hours=25)).isoformat().replace("+00:00", "Z")

    answer = post(client, *resigned(phota_emulator, old))

    assert answer.status_code == 409
    assert events() == []


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("unsigned", 401),
        ("not a sha256 signature", 401),
        ("signed with another secret", 401),
        ("body changed after signing", 401),
        ("non-ascii signature", 401),
        ("oversized", 413),
        ("oversized without a length", 413),
        ("not json", 400),
        ("not a job", 400),
        ("not terminal", 400),
        ("unknown endpoint", 400),
        ("no updated_at", 400),
        ("finished in the future", 400),
    ],
)
def test_refused_callbacks_say_nothing_and_record_nothing(
    client: Any, generate_asset: None, phota_emulator: PhotaEmulator, case: str, status: int
) -> None:
    body, headers = signed_callback(phota_emulator)
    job = json.loads(body)
    secret = phota_emulator.webhook_secret
    sign = contract.SIGNATURE_HEADER
    if case == "unsigned":
        headers.pop(sign)
    elif case == "not a sha256 signature":
        headers[sign] = "sha1=" + headers[sign].removeprefix("sha256=")[:40]
    elif case == "signed with another secret":
        headers[sign] = contract.sign_callback(secret + "x", body)
    elif case == "body changed after signing":
        body = body.replace(b"SUCCEEDED", b"SUCCEEDED ")
    elif case == "non-ascii signature":
        headers[sign] = ("sha256=" + "é" * 64).encode("latin-1")  # type: ignore[assignment]
    elif case == "oversized":
        body, headers = resigned(phota_emulator, {**job, "padding": "x" * (70 * 1024)})
    elif case == "not json":
        body, headers = b"{not json", {sign: contract.sign_callback(secret, b"{not json")}
    elif case == "not a job":
        body, headers = resigned(phota_emulator, {"hello": "world"})
    elif case == "not terminal":
        body, headers = resigned(phota_emulator, {**job, "status": "RUNNING"})
    elif case == "unknown endpoint":
        body, headers = resigned(phota_emulator, {**job, "endpoint": "../admin"})
    elif case == "no updated_at":
        body, headers = resigned(phota_emulator, {**job, "updated_at": None})
    elif case == "finished in the future":
        future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        body, headers = resigned(phota_emulator, {**job, "updated_at": future})

    if case == "oversized without a length":
        big, headers = resigned(phota_emulator, {**job, "padding": "x" * (70 * 1024)})
        answer = client.post("/callbacks", content=iter([big[:40000], big[40000:]]), headers=headers)
    else:
        answer = post(client, body, headers)

    assert answer.status_code == status
    assert answer.content == b""
    assert events() == []


def test_a_callback_no_dag_uses_is_accepted_and_recorded_nowhere(client: Any, phota_emulator: PhotaEmulator) -> None:
    body, _headers = signed_callback(phota_emulator)
    edited = {**json.loads(body), "endpoint": "remix"}

    assert post(client, *resigned(phota_emulator, edited)).status_code == 204

    assert events("phota://jobs/remix") == []


def test_without_a_secret_callbacks_are_refused_and_phota_is_not_asked_again_at_once(
    client: Any, generate_asset: None, phota_emulator: PhotaEmulator
) -> None:
    body, headers = signed_callback(phota_emulator)
    phota_emulator.inject_fault("/v1/phota/webhook-secret", status=401, count=100)

    assert post(client, body, headers).status_code == 503
    assert post(client, body, headers).status_code == 503

    assert len(phota_emulator.requests_to("/v1/phota/webhook-secret", "GET")) == 1
    assert events() == []


def test_the_connection_comes_from_the_airflow_option(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_phota.plugins import callbacks

    assert callbacks.callback_conn_id() == "phota_default"
    monkeypatch.setenv("AIRFLOW__PHOTA__CALLBACK_CONN_ID", "phota_callbacks")  # Airflow reads options anew
    assert callbacks.callback_conn_id() == "phota_callbacks"
