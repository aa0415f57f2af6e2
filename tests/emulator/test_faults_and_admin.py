"""Fault injection, prepaid credit (402), signed download URLs and the admin API."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from emulator_helpers import Api

from airflow_provider_phota.testing import PhotaEmulator

ADMIN = "/_emulator"


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (429, "RATE_LIMITED"),
        (500, "INTERNAL"),
        (502, "UNAVAILABLE"),
        (503, "UNAVAILABLE"),
        (504, "TIMEOUT"),
        (400, "INVALID_REQUEST"),
        (401, "UNAUTHORIZED"),
        (402, "INSUFFICIENT_CREDIT"),
        (403, "FORBIDDEN"),
        (404, "NOT_FOUND"),
    ],
)
def test_status_fault_d8_body_then_normal(emu: PhotaEmulator, api: Api, status: int, error_type: str) -> None:
    emu.inject_fault("/v1/phota/profiles/*/status", status=status, count=2)
    profile_id = api.create_profile()
    for _ in range(2):
        response = api.get(f"/profiles/{profile_id}/status")
        assert response.status_code == status
        assert response.json()["type"] == error_type
        assert response.json()["request_id"] == response.headers["X-Request-Id"]
        assert ("Retry-After" in response.headers) == (status == 429)
    assert api.get(f"/profiles/{profile_id}/status").status_code == 200
    assert [r.status for r in emu.requests_to("/v1/phota/profiles/*/status")] == [status, status, 200]


def test_429_retry_after_value(emu: PhotaEmulator, api: Api) -> None:
    emu.inject_fault("/v1/phota/profiles/ids", status=429, retry_after=7)
    assert api.get("/profiles/ids").headers["Retry-After"] == "7"


def test_422_fault_has_d9_body(emu: PhotaEmulator, api: Api) -> None:
    emu.inject_fault("/v1/phota/generate", status=422)
    response = api.post("/generate", {"prompt": "x"})
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)


def test_method_filter(emu: PhotaEmulator, api: Api) -> None:
    emu.inject_fault("/v1/phota/profiles/*", status=500, method="DELETE")
    profile_id = api.create_profile()
    assert api.get(f"/profiles/{profile_id}/status").status_code == 200
    assert api.delete(f"/profiles/{profile_id}").status_code == 500
    assert api.delete(f"/profiles/{profile_id}").status_code == 200


def test_drop_closes_connection(emu: PhotaEmulator, api: Api) -> None:
    emu.inject_fault("/v1/phota/profiles/ids", drop=True)
    with pytest.raises(requests.ConnectionError):
        api.get("/profiles/ids")
    assert api.get("/profiles/ids").status_code == 200
    assert [r.status for r in emu.requests] == [0, 200]


def test_delay_lets_a_client_time_out(emu: PhotaEmulator, api: Api) -> None:
    emu.inject_fault("/v1/phota/profiles/ids", delay=0.6)
    with pytest.raises(requests.ReadTimeout):
        api.session.get(api.prefix + "/profiles/ids", headers=api.headers, timeout=0.2)
    emu.inject_fault("/v1/phota/profiles/ids", delay=0.3)
    started = time.monotonic()
    response = api.get("/profiles/ids")
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3


def test_malformed_is_200_with_invalid_json(emu: PhotaEmulator, api: Api) -> None:
    emu.inject_fault("/v1/phota/webhook-secret", malformed=True)
    response = api.get("/webhook-secret")
    assert response.status_code == 200
    with pytest.raises(ValueError):  # noqa: PT011 - any JSON decode error
        response.json()


def test_fault_before_processing_changes_nothing(emu: PhotaEmulator, api: Api) -> None:
    emu.inject_fault("/v1/phota/profiles/add", status=503)
    assert api.post("/profiles/add", {"image_urls": [f"https://e.com/{i}.jpg" for i in range(10)]}).status_code == 503
    assert emu.profiles == {}
    assert emu.ledger == []


def test_fault_after_processing_keeps_the_work(emu: PhotaEmulator, api: Api) -> None:
    emu.inject_fault("/v1/phota/generate", status=503, after=True)
    body = {"prompt": "x", "async": True, "response_mode": "urls", "client_request_id": "retry-me"}
    assert api.post("/generate", body).status_code == 503
    assert len(emu.jobs) == 1
    retried = api.post("/generate", body)
    assert retried.status_code == 202
    assert retried.json()["job_id"] == next(iter(emu.jobs))
    assert len(emu.charges("images")) == 1


def test_504_after_processing_refunds_a_sync_call(emu: PhotaEmulator, api: Api) -> None:
    emu.inject_fault("/v1/phota/generate", status=504, after=True)
    response = api.post("/generate", {"prompt": "x", "num_output_images": 2})
    assert response.status_code == 504
    assert response.json()["type"] == "TIMEOUT"
    kinds = [(c.kind, c.ref) for c in emu.ledger]
    request_id = response.headers["X-Request-Id"]
    assert kinds == [("images", request_id), ("refund", request_id)]
    assert emu.charges("refund")[0].amount_usd == pytest.approx(-0.10)
    assert emu.total_charged_usd() == 0


def test_clear_faults(emu: PhotaEmulator, api: Api) -> None:
    emu.inject_fault("/v1/phota/*", status=500, count=10)
    emu.clear_faults()
    assert api.get("/profiles/ids").status_code == 200


def test_bad_fault_spec_is_rejected(emu: PhotaEmulator) -> None:
    with pytest.raises(ValueError, match="status"):
        emu.inject_fault("/v1/*", status=418)
    with pytest.raises(ValueError, match="needs"):
        emu.inject_fault("/v1/*")


# --- credit ---------------------------------------------------------------------------------------------------------


def test_insufficient_credit_is_402_and_charges_nothing(emu: PhotaEmulator, api: Api) -> None:
    emu.set_credit(2.98)
    api.create_profile()  # 2.90
    response = api.post("/profiles/add", {"image_urls": [f"https://e.com/{i}.jpg" for i in range(10)]})
    assert response.status_code == 402
    assert response.json()["type"] == "INSUFFICIENT_CREDIT"
    assert api.post("/generate", {"prompt": "x", "num_output_images": 2}).status_code == 402  # 0.10 > 0.08 left
    assert api.post("/generate", {"prompt": "x"}).status_code == 200  # 0.05 fits
    assert len(emu.profiles) == 1
    assert emu.total_charged_usd() == pytest.approx(2.95)
    emu.set_credit(None)
    assert api.post("/generate", {"prompt": "x", "num_output_images": 4}).status_code == 200


def test_async_submit_over_credit_creates_no_job(emu: PhotaEmulator, api: Api) -> None:
    emu.set_credit(0.0)
    response = api.post("/generate", {"prompt": "x", "async": True, "response_mode": "urls"})
    assert response.status_code == 402
    assert emu.jobs == {}


# --- signed URLs ----------------------------------------------------------------------------------------------------


def _one_url(api: Api) -> str:
    return str(api.post("/generate", {"prompt": "x", "response_mode": "urls"}).json()["download_urls"][0])


def test_signed_url_rejects_a_bad_token(emu: PhotaEmulator, api: Api) -> None:
    url = _one_url(api)
    query = parse_qs(urlsplit(url).query)
    base = url.split("?", 1)[0]
    forged_expiry = int(query["expires"][0]) + 3600
    assert requests.get(f"{base}?token={query['token'][0]}&expires={forged_expiry}", timeout=10).status_code == 403
    assert requests.get(f"{base}?token=deadbeef&expires={query['expires'][0]}", timeout=10).status_code == 403
    assert requests.get(base, timeout=10).status_code == 403
    assert [d.status for d in emu.downloads] == [403, 403, 403]


def test_signed_url_expires_after_24h(emu: PhotaEmulator, api: Api) -> None:
    url = _one_url(api)
    expires = int(parse_qs(urlsplit(url).query)["expires"][0])
    assert expires - time.time() == pytest.approx(24 * 3600, abs=5)
    emu.advance(23 * 3600)
    assert requests.get(url, timeout=10).status_code == 200
    emu.advance(3600 + 5)
    response = requests.get(url, timeout=10)
    assert response.status_code == 403
    assert "expired" in response.json()["detail"]


# --- admin API ------------------------------------------------------------------------------------------------------


def test_admin_api_drives_the_same_state(emu: PhotaEmulator, api: Api) -> None:
    admin = emu.base_url + ADMIN
    fault = requests.post(admin + "/faults", json={"path_glob": "/v1/phota/profiles/ids", "status": 503}, timeout=10)
    assert fault.status_code == 200
    assert api.get("/profiles/ids").status_code == 503
    requests.post(admin + "/faults", json={"path_glob": "/v1/phota/*", "status": 500, "count": 5}, timeout=10)
    assert requests.delete(admin + "/faults", timeout=10).status_code == 200
    assert api.get("/profiles/ids").status_code == 200

    profile_id = api.create_profile()
    assert requests.post(admin + "/advance", json={"seconds": emu.training_seconds}, timeout=10).status_code == 200
    assert emu.profile_status(profile_id) == "READY"
    outcome = {"status": "INACTIVE", "message": "paused"}
    assert requests.post(f"{admin}/profiles/{profile_id}/outcome", json=outcome, timeout=10).status_code == 200
    assert api.get(f"/profiles/{profile_id}/status").json()["status"] == "INACTIVE"
    assert requests.post(f"{admin}/profiles/prof_nope/outcome", json=outcome, timeout=10).status_code == 404

    ledger = requests.get(admin + "/ledger", timeout=10).json()
    assert ledger["total_usd"] == pytest.approx(2.90)
    assert ledger["charges"][0]["ref"] == profile_id
    recorded = requests.get(admin + "/requests", timeout=10).json()["requests"]
    assert [entry["status"] for entry in recorded] == [s.status for s in emu.requests]

    assert requests.post(admin + "/credit", json={"usd": 0}, timeout=10).status_code == 200
    assert api.post("/generate", {"prompt": "x"}).status_code == 402
    assert requests.post(admin + "/reset", timeout=10).status_code == 200
    assert emu.profiles == {}
    assert emu.ledger == []
    assert emu.requests == []
    assert api.post("/generate", {"prompt": "x"}).status_code == 200  # credit is unlimited again


def test_admin_jobs_is_the_jobs_view(emu: PhotaEmulator, api: Api) -> None:
    body = {"prompt": "a lighthouse", "async": True, "response_mode": "urls", "client_request_id": "admin-jobs-1"}
    job_id = api.post("/generate", body).json()["job_id"]
    assert api.post("/generate", body).json()["job_id"] == job_id  # the same key: no second job
    jobs = requests.get(emu.base_url + ADMIN + "/jobs", timeout=10).json()["jobs"]
    assert [(job["job_id"], job["endpoint"], job["client_request_id"]) for job in jobs] == [
        (job_id, "generate", "admin-jobs-1")
    ]
    assert jobs[0]["status"] == emu.jobs[job_id].status


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/faults", {"path_glob": "/v1/*", "status": 418}),
        ("/faults", {"path_glob": "/v1/*", "bogus": 1}),
        ("/advance", {"seconds": -1}),
        ("/credit", {"usd": "lots"}),
    ],
)
def test_admin_api_rejects_bad_input(emu: PhotaEmulator, path: str, body: dict[str, object]) -> None:
    response = requests.post(emu.base_url + ADMIN + path, json=body, timeout=10)
    assert response.status_code == 400
    assert response.json()["type"] == "INVALID_REQUEST"
