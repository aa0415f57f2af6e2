"""Auth (api-decisions D10), routing, the headers every response carries (D17, [RN-0.2.0]) and error bodies (D8, D9)."""

from __future__ import annotations

import pytest
import requests
from emulator_helpers import Api

from airflow_provider_phota.contract import API_PREFIX
from airflow_provider_phota.testing import PhotaEmulator

ROUTES = [
    ("GET", "/profiles/ids"),
    ("POST", "/profiles/add"),
    ("GET", "/profiles/prof_x/status"),
    ("GET", "/profiles/prof_x/profile_picture"),
    ("DELETE", "/profiles/prof_x"),
    ("POST", "/edit"),
    ("POST", "/generate"),
    ("POST", "/enhance"),
    ("POST", "/remix"),
    ("GET", "/jobs/job_x"),
    ("GET", "/webhook-secret"),
]


def _assert_common_headers(response: requests.Response) -> None:
    assert response.headers["X-Request-Id"].startswith("req_")
    assert response.headers["X-Phota-Deprecation-Date"] == "2026-05-08"


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_missing_key_is_403_with_bare_detail(emu: PhotaEmulator, method: str, path: str) -> None:
    response = requests.request(method, emu.base_url + API_PREFIX + path, json={}, timeout=10)
    assert response.status_code == 403
    assert response.json() == {"detail": "Not authenticated"}
    _assert_common_headers(response)


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_wrong_key_is_401_with_request_id(emu: PhotaEmulator, method: str, path: str) -> None:
    response = requests.request(
        method, emu.base_url + API_PREFIX + path, json={}, headers={"X-API-Key": "wrong"}, timeout=10
    )
    assert response.status_code == 401
    body = response.json()
    assert body["type"] == "UNAUTHORIZED"
    assert body["detail"] == "Invalid API key"
    assert body["request_id"] == response.headers["X-Request-Id"]


def test_unknown_route_is_404_d8(api: Api) -> None:
    response = api.get("/no-such-thing")
    assert response.status_code == 404
    body = response.json()
    assert body["type"] == "NOT_FOUND"
    assert body["request_id"] == response.headers["X-Request-Id"]
    _assert_common_headers(response)


def test_wrong_method_is_an_error_with_headers(api: Api) -> None:
    response = api.post("/profiles/ids", {})
    assert response.status_code == 405
    _assert_common_headers(response)


@pytest.mark.parametrize(
    "path", ["/profiles/prof_missing/status", "/profiles/prof_missing/profile_picture", "/jobs/job_missing"]
)
def test_unknown_ids_are_404(api: Api, path: str) -> None:
    response = api.get(path)
    assert response.status_code == 404
    assert response.json()["type"] == "NOT_FOUND"


def test_delete_unknown_profile_is_404(api: Api) -> None:
    assert api.delete("/profiles/prof_missing").status_code == 404


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b"", b"{"])
def test_body_that_is_not_a_json_object_is_422(api: Api, raw: bytes) -> None:
    response = api.session.post(
        api.prefix + "/generate", data=raw, headers={**api.headers, "Content-Type": "application/json"}, timeout=10
    )
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert isinstance(detail, list)
    assert detail[0]["loc"][0] == "body"


def test_every_request_has_a_distinct_request_id(api: Api) -> None:
    ids = {api.get("/profiles/ids").headers["X-Request-Id"] for _ in range(5)}
    assert len(ids) == 5


def test_requests_are_recorded_with_status_and_request_id(emu: PhotaEmulator, api: Api) -> None:
    api.get("/profiles/ids", params={"tag": "alice"})
    api.post("/generate", {"prompt": "a"})
    recorded = emu.requests
    assert [(r.method, r.path, r.status) for r in recorded] == [
        ("GET", "/v1/phota/profiles/ids", 200),
        ("POST", "/v1/phota/generate", 200),
    ]
    assert recorded[0].query == {"tag": "alice"}
    assert recorded[1].json == {"prompt": "a"}
    assert recorded[1].headers["X-API-Key"] == emu.api_key
    assert emu.requests_to("/v1/phota/gen*", method="post") == [recorded[1]]
    assert emu.requests_to("/v1/phota/*", method="DELETE") == []


def test_webhook_secret(emu: PhotaEmulator, api: Api) -> None:
    response = api.get("/webhook-secret")
    assert response.status_code == 200
    assert response.json() == {"secret": emu.webhook_secret}
    assert len(emu.webhook_secret) >= 32


def test_admin_routes_need_no_key_and_are_not_recorded(emu: PhotaEmulator) -> None:
    response = requests.get(emu.base_url + "/_emulator/health", timeout=10)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert emu.requests == []
