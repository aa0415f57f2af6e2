"""Profiles ([R-ADD], [R-STATUS], [R-DEL], api-decisions D7, D15, D16): creation and charges, the training state
machine, tags, pictures, deletion."""

from __future__ import annotations

import http.server
import io
import threading
import time
from collections.abc import Iterator

import pytest
from emulator_helpers import TRAINING_URLS, Api
from PIL import Image

from airflow_provider_phota.testing import PhotaEmulator
from airflow_provider_phota.testing.samples import open_image


def _status(api: Api, profile_id: str) -> dict[str, str]:
    response = api.get(f"/profiles/{profile_id}/status")
    assert response.status_code == 200
    return dict(response.json())


def test_create_returns_id_and_charges_by_tier(emu: PhotaEmulator, api: Api) -> None:
    standard = api.create_profile()
    fast = api.create_profile(image_urls=TRAINING_URLS[:5], training_tier="fast")
    assert standard.startswith("prof_")
    assert standard != fast
    charges = emu.charges("profile")
    assert [(c.ref, c.amount_usd, c.units) for c in charges] == [(standard, 2.90, 1), (fast, 1.49, 1)]
    assert emu.total_charged_usd() == pytest.approx(4.39)
    assert emu.profiles[fast].tier == "fast"


def test_status_walks_the_d15_order(emu: PhotaEmulator, api: Api) -> None:
    profile_id = api.create_profile()
    seen = [_status(api, profile_id)["status"]]
    for fraction in (0.15, 0.3, 0.5, 0.1):  # cumulative: 0.15, 0.45, 0.95, 1.05 of training_seconds
        emu.advance(fraction * emu.training_seconds)
        seen.append(_status(api, profile_id)["status"])
    assert seen == ["VALIDATING", "QUEUING", "IN_PROGRESS", "IN_PROGRESS", "READY"]
    body = _status(api, profile_id)
    assert body == {"profile_id": profile_id, "status": "READY", "message": ""}
    assert emu.profile_status(profile_id) == "READY"


def test_status_follows_real_time(emu: PhotaEmulator, api: Api) -> None:
    profile_id = api.create_profile()
    assert _status(api, profile_id)["status"] == "VALIDATING"
    deadline = time.monotonic() + emu.training_seconds + 3
    while _status(api, profile_id)["status"] != "READY":
        assert time.monotonic() < deadline, "training never finished"
        time.sleep(0.05)


def test_training_error_marker(emu: PhotaEmulator, api: Api) -> None:
    urls = [*TRAINING_URLS[:9], "https://example.com/phota-training-error.jpg"]
    profile_id = api.create_profile(image_urls=urls)
    emu.advance(0.5 * emu.training_seconds)
    assert _status(api, profile_id)["status"] == "IN_PROGRESS"
    emu.advance(emu.training_seconds)
    assert _status(api, profile_id) == {
        "profile_id": profile_id,
        "status": "ERROR",
        "message": "No detectable subject in the training images",
    }


@pytest.mark.parametrize("status", ["ERROR", "INACTIVE", "READY"])
def test_forced_outcome(emu: PhotaEmulator, api: Api, status: str) -> None:
    profile_id = api.create_profile()
    emu.set_profile_outcome(profile_id, status=status, message="forced by the test")
    assert _status(api, profile_id) == {"profile_id": profile_id, "status": status, "message": "forced by the test"}
    emu.advance(10 * emu.training_seconds)
    assert emu.profile_status(profile_id) == status


def test_forced_outcome_rejects_unknown_status(emu: PhotaEmulator, api: Api) -> None:
    profile_id = api.create_profile()
    with pytest.raises(ValueError, match="DONE"):
        emu.set_profile_outcome(profile_id, status="DONE")


def test_list_filters_by_tag_in_creation_order(api: Api) -> None:
    assert api.get("/profiles/ids").json() == {"profiles": []}
    first = api.create_profile(tag="alice")
    second = api.create_profile(tag="bob")
    third = api.create_profile(tag="alice")
    untagged = api.create_profile()
    assert api.get("/profiles/ids").json() == {"profiles": [first, second, third, untagged]}
    assert api.get("/profiles/ids", params={"tag": "alice"}).json() == {"profiles": [first, third]}
    assert api.get("/profiles/ids", params={"tag": "nobody"}).json() == {"profiles": []}


def test_profile_picture_only_once_ready(emu: PhotaEmulator, api: Api) -> None:
    profile_id = api.create_profile()
    early = api.get(f"/profiles/{profile_id}/profile_picture")
    assert early.status_code == 404
    assert early.json()["type"] == "NOT_FOUND"
    emu.advance(emu.training_seconds)
    picture = api.get(f"/profiles/{profile_id}/profile_picture")
    assert picture.status_code == 200
    assert picture.headers["Content-Type"] == "image/jpeg"
    assert open_image(picture.content).format == "JPEG"
    assert api.get(f"/profiles/{profile_id}/profile_picture").content == picture.content


def test_delete(emu: PhotaEmulator, api: Api) -> None:
    profile_id = api.create_profile()
    response = api.delete(f"/profiles/{profile_id}")
    assert response.status_code == 200
    assert response.json() == {"profile_id": profile_id, "status": "ok"}
    assert api.get(f"/profiles/{profile_id}/status").status_code == 404
    assert api.get("/profiles/ids").json() == {"profiles": []}
    assert api.delete(f"/profiles/{profile_id}").status_code == 404


# --- loopback training images are fetched and decoded -------------------------------------------------------------


class _ImageServer(http.server.BaseHTTPRequestHandler):
    """Serves /good.png (an image), /text.png (not an image); everything else is 404."""

    def do_GET(self) -> None:
        if self.path.startswith("/good"):
            buffer = io.BytesIO()
            Image.new("RGB", (32, 32), "red").save(buffer, format="PNG")
            self._answer(200, buffer.getvalue())
        elif self.path.startswith("/text"):
            self._answer(200, b"hello, not an image")
        else:
            self._answer(404, b"missing")

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


@pytest.fixture(scope="module")
def image_server() -> Iterator[str]:
    server_class = type("Server", (http.server.ThreadingHTTPServer,), {"request_queue_size": 128})
    server = server_class(("127.0.0.1", 0), _ImageServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_loopback_training_images_are_checked(emu: PhotaEmulator, api: Api, image_server: str) -> None:
    good = [f"{image_server}/good/{i}.png" for i in range(10)]
    assert api.post("/profiles/add", {"image_urls": good}).status_code == 200
    not_an_image = "is not a JPEG, PNG, WebP or HEIC image"
    for bad, reason in ((f"{image_server}/missing.png", "HTTP 404"), (f"{image_server}/text.png", not_an_image)):
        response = api.post("/profiles/add", {"image_urls": [*good[:9], bad]})
        assert response.status_code == 400
        body = response.json()
        assert body["type"] == "INVALID_REQUEST"
        assert bad in body["detail"]
        assert "image_urls[9]" in body["detail"]
        assert reason in body["detail"]
    assert len(emu.charges("profile")) == 1


def test_unreachable_loopback_url_is_400(emu: PhotaEmulator, api: Api) -> None:
    response = api.post("/profiles/add", {"image_urls": [*TRAINING_URLS[:9], "http://127.0.0.1:9/x.jpg"]})
    assert response.status_code == 400
    assert "could not be fetched" in response.json()["detail"]
    assert emu.ledger == []
