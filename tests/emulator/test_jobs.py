"""Async jobs ([ASYNC], [RN-0.7], api-decisions D1-D6): the job state machine, idempotent submits, signed callbacks,
many pollers."""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from emulator_helpers import Api

from airflow_provider_phota import contract
from airflow_provider_phota.testing import PhotaEmulator
from airflow_provider_phota.testing.samples import image_base64, open_image

ASYNC = {"async": True, "response_mode": "urls"}


def _submit(api: Api, path: str = "/generate", **fields: Any) -> dict[str, Any]:
    response = api.post(path, {"prompt": "a fox", **ASYNC, **fields})
    assert response.status_code == 202, response.text
    return dict(response.json())


def _job(api: Api, job_id: str) -> dict[str, Any]:
    response = api.get(f"/jobs/{job_id}")
    assert response.status_code == 200
    return dict(response.json())


def test_submit_returns_d1_handle(api: Api) -> None:
    handle = _submit(api)
    assert set(handle) == {"job_id", "status", "poll_url"}
    assert handle["status"] == "QUEUED"
    assert handle["poll_url"] == f"/v1/phota/jobs/{handle['job_id']}"


def test_job_walks_queued_running_succeeded(emu: PhotaEmulator, api: Api) -> None:
    job_id = _submit(api, num_output_images=2, output_format="jpg", aspect_ratio="16:9")["job_id"]
    first = _job(api, job_id)
    assert (first["status"], first["result"], first["error"], first["endpoint"]) == ("QUEUED", None, None, "generate")
    emu.advance(0.5 * emu.job_seconds)
    running = _job(api, job_id)
    assert running["status"] == "RUNNING"
    assert running["updated_at"] > running["created_at"]
    emu.advance(emu.job_seconds)
    done = _job(api, job_id)
    assert done["status"] == "SUCCEEDED"
    assert done["error"] is None
    assert done["created_at"].endswith("Z")
    assert done["result"]["images"] == []
    assert done["result"]["known_subjects"] == {"counts": {}}
    urls = done["result"]["download_urls"]
    assert len(urls) == 2
    image = open_image(requests.get(urls[0], timeout=10).content)
    assert (image.format, image.size) == ("JPEG", (1024, 576))
    assert _job(api, job_id) == done  # rendered once, stable afterwards
    assert emu.jobs[job_id].status == "SUCCEEDED"
    charges = emu.charges("images")
    assert [(c.ref, c.units) for c in charges] == [(job_id, 2)]


def test_job_output_keeps_the_ratio_of_the_input_read_at_submit(emu: PhotaEmulator, api: Api) -> None:
    """api-decisions D14: an async /edit with ``auto`` follows its first input, read once when the job is submitted."""
    job_id = _submit(api, "/edit", images=[image_base64(400, 200)])["job_id"]
    emu.advance(emu.job_seconds)
    done = _job(api, job_id)
    assert done["status"] == "SUCCEEDED"
    image = open_image(requests.get(done["result"]["download_urls"][0], timeout=10).content)
    assert image.size == (1024, 512)


def test_job_finishes_in_real_time_without_polling(emu: PhotaEmulator, api: Api) -> None:
    job_id = _submit(api)["job_id"]
    deadline = time.monotonic() + emu.job_seconds + 3
    while emu.jobs[job_id].status != "SUCCEEDED":  # the background ticker settles it
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert emu.requests_to("/v1/phota/jobs/*") == []


def test_fail_marker_gives_failed_job_and_refund(emu: PhotaEmulator, api: Api) -> None:
    job_id = _submit(api, prompt="phota-fail-job please")["job_id"]
    emu.advance(emu.job_seconds)
    body = _job(api, job_id)
    assert body["status"] == "FAILED"
    assert body["result"] is None
    assert body["error"]["type"] == "JOB_FAILED"
    assert body["error"]["message"]
    assert emu.total_charged_usd() == 0
    assert [c.kind for c in emu.ledger] == ["images", "refund"]


def test_async_moderation_is_a_failed_job(emu: PhotaEmulator, api: Api) -> None:
    job_id = _submit(api, prompt="phota-moderate")["job_id"]
    emu.advance(emu.job_seconds)
    assert _job(api, job_id)["error"]["type"] == "CONTENT_MODERATION"


def test_async_validation_errors_stay_immediate(api: Api) -> None:
    assert api.post("/generate", {**ASYNC, "num_output_images": 9}).status_code == 422
    assert (
        api.post("/edit", {**ASYNC, "images": ["https://example.com/a.png"], "profile_ids": ["x"]}).status_code == 400
    )


def test_same_client_request_id_returns_original_job_once_charged(emu: PhotaEmulator, api: Api) -> None:
    first = _submit(api, client_request_id="dag.task:run-1")
    again = _submit(api, client_request_id="dag.task:run-1", prompt="something else")
    assert again == first
    other_endpoint = _submit(
        api, "/enhance", image="https://example.com/a.jpg", prompt="x", client_request_id="dag.task:run-1"
    )
    assert other_endpoint["job_id"] != first["job_id"]
    other_key = _submit(api, client_request_id="dag.task:run-2")
    assert other_key["job_id"] != first["job_id"]
    assert len(emu.jobs) == 3
    assert sorted(c.endpoint for c in emu.charges("images")) == ["/enhance", "/generate", "/generate"]
    emu.advance(emu.job_seconds)
    assert _submit(api, client_request_id="dag.task:run-1") == first  # also after the job finished
    assert len(emu.charges("images")) == 3


def test_client_request_id_is_forgotten_after_24h(emu: PhotaEmulator, api: Api) -> None:
    first = _submit(api, client_request_id="k1")
    emu.advance(24 * 3600 + 1)
    assert _submit(api, client_request_id="k1")["job_id"] != first["job_id"]


def test_idempotency_window_is_a_setting_of_the_emulator() -> None:
    with PhotaEmulator(idempotency_seconds=60, job_seconds=3600) as short, requests.Session() as session:
        api = Api(short, session)
        first = _submit(api, client_request_id="k1")
        short.advance(59)
        assert _submit(api, client_request_id="k1") == first
        short.advance(2)
        assert _submit(api, client_request_id="k1")["job_id"] != first["job_id"]
        assert len(short.charges("images")) == 2  # the resubmit after the window is a new, paid job


def test_idempotency_window_cannot_be_negative() -> None:
    with pytest.raises(ValueError, match="idempotency_seconds"):
        PhotaEmulator(idempotency_seconds=-1)


def test_200_concurrent_pollers(emu: PhotaEmulator, api: Api) -> None:
    profile_id = api.create_profile()
    job_id = _submit(api, num_output_images=1)["job_id"]
    emu.advance(emu.job_seconds)  # due: the first pollers race to settle it
    paths = [f"/profiles/{profile_id}/status", f"/jobs/{job_id}"] * 100
    local = threading.local()

    def poll(path: str) -> tuple[int, str]:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        response = local.session.get(api.prefix + path, headers=api.headers, timeout=30)
        return response.status_code, response.json()["status"]

    with concurrent.futures.ThreadPoolExecutor(max_workers=200) as pool:
        results = list(pool.map(poll, paths))
    assert [status for status, _ in results] == [200] * 200
    assert {state for _, state in results[1::2]} == {"SUCCEEDED"}
    assert len(emu.charges("images")) == 1
    assert len({json.dumps(_job(api, job_id)["result"])}) == 1


# --- callbacks (api-decisions D6) -------------------------------------------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    received: list[tuple[dict[str, str], bytes]] = []
    handler = type("Receiver", (_Receiver,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()


def _wait_for(condition: Any, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.parametrize("prompt", ["a cat", "phota-fail-job"])
def test_callback_is_signed_d2_body(
    emu: PhotaEmulator, api: Api, receiver: tuple[str, list[tuple[dict[str, str], bytes]]], prompt: str
) -> None:
    url, received = receiver
    job_id = _submit(api, prompt=prompt, callback_url=url)["job_id"]
    emu.advance(emu.job_seconds)
    _wait_for(lambda: len(received) == 1 and len(emu.callbacks) == 1)
    headers, raw = received[0]
    secret = api.get("/webhook-secret").json()["secret"]
    assert contract.verify_callback_signature(secret, raw, headers["X-Phota-Signature"])
    assert not contract.verify_callback_signature("other-secret", raw, headers["X-Phota-Signature"])
    body = json.loads(raw)
    assert body == _job(api, job_id)
    assert body["status"] in ("SUCCEEDED", "FAILED")
    delivery = emu.callbacks[0]
    assert (delivery.job_id, delivery.url, delivery.status, delivery.body) == (job_id, url, 204, raw)


def test_callback_to_a_remote_host_is_recorded_not_sent(emu: PhotaEmulator, api: Api) -> None:
    _submit(api, callback_url="https://example.com/hook")
    emu.advance(emu.job_seconds)
    _wait_for(lambda: len(emu.callbacks) == 1)
    assert emu.callbacks[0].status is None
    assert "loopback" in (emu.callbacks[0].error or "")


def test_callback_over_https_fails_without_the_http_knob(api: Api) -> None:
    with PhotaEmulator(job_seconds=0.0) as strict:
        strict_api = Api(strict, api.session)
        port = strict.base_url.rsplit(":", 1)[1]
        _submit(strict_api, callback_url=f"https://127.0.0.1:{port}/hook")
        _wait_for(lambda: len(strict.callbacks) == 1)
        assert strict.callbacks[0].status is None  # TLS against a plain http server fails
        assert strict.callbacks[0].error
