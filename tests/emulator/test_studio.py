"""Synchronous studio calls ([R-EDIT], [R-GEN], [R-ENH], [RMX], api-decisions D14): real images of the right size
and format, known_subjects, prices."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import requests
from emulator_helpers import Api

from airflow_provider_phota import contract
from airflow_provider_phota.testing import PhotaEmulator
from airflow_provider_phota.testing.samples import PhotoServer, image_base64, open_image

URL = "https://example.com/in.jpg"


def _bytes_images(response: requests.Response) -> list[bytes]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["download_urls"] == []
    return [base64.b64decode(item) for item in body["images"]]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/edit", {"images": [URL], "prompt": "make it sunny"}),
        ("/generate", {"prompt": "a lighthouse"}),
        ("/enhance", {"image": URL}),
        ("/remix", {"input_image": URL, "reference_image": URL}),
    ],
)
@pytest.mark.parametrize("output_format", ["png", "jpg"])
def test_every_endpoint_returns_real_images(api: Api, path: str, body: dict[str, Any], output_format: str) -> None:
    response = api.post(path, {**body, "num_output_images": 2, "output_format": output_format})
    outputs = _bytes_images(response)
    assert len(outputs) == 2
    assert outputs[0] != outputs[1]
    formats = {open_image(data).format for data in outputs}
    assert formats == {"JPEG" if output_format == "jpg" else "PNG"}
    assert response.json()["known_subjects"] == {"counts": {}}


def test_default_format_is_png_and_one_output(api: Api) -> None:
    outputs = _bytes_images(api.post("/generate", {"prompt": "x"}))
    assert len(outputs) == 1
    image = open_image(outputs[0])
    assert (image.format, image.size) == ("PNG", (1024, 1024))


def test_different_prompts_give_different_images(api: Api) -> None:
    first = _bytes_images(api.post("/generate", {"prompt": "a red barn"}))[0]
    second = _bytes_images(api.post("/generate", {"prompt": "a blue boat"}))[0]
    assert first != second


def test_4k_16_9_jpeg(api: Api) -> None:
    response = api.post(
        "/generate", {"prompt": "wide vista", "resolution": "4K", "aspect_ratio": "16:9", "output_format": "jpg"}
    )
    image = open_image(_bytes_images(response)[0])
    assert (image.format, image.size) == ("JPEG", (4096, 2304))


@pytest.mark.parametrize(
    ("path", "body", "size"),
    [
        ("/generate", {"resolution": "2K", "aspect_ratio": "3:4"}, (1536, 2048)),
        ("/generate", {"resolution": "1K", "aspect_ratio": "9:16"}, (576, 1024)),
        ("/generate", {"resolution": "2K", "aspect_ratio": "auto"}, (2048, 2048)),
        ("/edit", {"images": [image_base64(400, 200)]}, (1024, 512)),
        ("/edit", {"images": [image_base64(400, 200)], "aspect_ratio": "4:3"}, (1024, 768)),
        ("/edit", {"images": [URL]}, (1024, 1024)),
        ("/enhance", {"image": image_base64(300, 600)}, (1024, 2048)),
        ("/remix", {"input_image": image_base64(600, 300), "reference_image": URL}, (2048, 1024)),
    ],
)
def test_output_size_follows_d14(api: Api, path: str, body: dict[str, Any], size: tuple[int, int]) -> None:
    image = open_image(_bytes_images(api.post(path, body))[0])
    assert image.size == size


def test_own_signed_url_is_read_as_input(api: Api) -> None:
    first = api.post("/generate", {"prompt": "tall", "aspect_ratio": "9:16", "response_mode": "urls"}).json()[
        "download_urls"
    ][0]
    response = api.post("/edit", {"images": [first], "prompt": "again"})
    assert open_image(_bytes_images(response)[0]).size == (576, 1024)


def test_loopback_url_input_sets_the_ratio(api: Api, tmp_path: Path) -> None:
    (tmp_path / "wide.png").write_bytes(base64.b64decode(image_base64(300, 100)))
    with PhotoServer(tmp_path) as server:
        response = api.post("/edit", {"images": [server.url_for("wide.png")]})
    assert open_image(_bytes_images(response)[0]).size == (1024, 341)


def test_heic_input_is_accepted_and_auto_is_square(api: Api) -> None:
    """HEIC is an accepted input ([R-EDIT], [RN-0.1.1]); the emulator reads only its header, so its size is unknown."""
    heic = base64.b64encode(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic").decode()
    response = api.post("/enhance", {"image": heic})
    assert response.status_code == 200, response.text
    assert open_image(_bytes_images(response)[0]).size == (2048, 2048)


def test_expired_own_url_is_refused_as_input(emu: PhotaEmulator, api: Api) -> None:
    """[RN-0.2.0]: download links expire after 24 h; the service cannot fetch an expired one, so it is a 400."""
    url = api.post("/generate", {"response_mode": "urls"}).json()["download_urls"][0]
    emu.advance(24 * 3600 + 1)
    charged = len(emu.ledger)
    response = api.post("/edit", {"images": [url]})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("images[0]: ")
    assert "expired" in response.json()["detail"]
    assert len(emu.ledger) == charged


def test_urls_mode(emu: PhotaEmulator, api: Api) -> None:
    response = api.post("/generate", {"prompt": "x", "response_mode": "urls", "num_output_images": 3})
    body = response.json()
    assert body["images"] == []
    assert len(body["download_urls"]) == 3
    for url in body["download_urls"]:
        assert url.startswith(emu.base_url + "/cdn/")
        assert "token=" in url
        assert "expires=" in url
        download = requests.get(url, timeout=10)
        assert download.status_code == 200
        assert download.headers["Content-Type"] == "image/png"
        assert int(download.headers["Content-Length"]) == len(download.content)
        assert open_image(download.content).size == (1024, 1024)
    assert len(emu.downloads) == 3
    assert len(emu.requests) == 1  # downloads are not API requests


def test_known_subjects_from_tokens_and_profile_ids(api: Api) -> None:
    alice = api.ready_profile(tag="alice")
    bob = api.ready_profile(tag="bob")
    response = api.post(
        "/edit",
        {
            "images": [URL],
            "prompt": f"[[{alice}]] and [[{bob}]] on a beach",
            "profile_ids": [alice],
            "num_output_images": 3,
        },
    )
    assert response.json()["known_subjects"] == {"counts": {alice: 3, bob: 3}}
    generated = api.post("/generate", {"prompt": f"portrait of [[{bob}]]"})
    assert generated.json()["known_subjects"] == {"counts": {bob: 1}}
    enhanced = api.post("/enhance", {"image": URL, "profile_ids": [alice]})
    assert enhanced.json()["known_subjects"] == {"counts": {alice: 1}}


def test_unknown_or_unready_profile_is_400_without_charge(emu: PhotaEmulator, api: Api) -> None:
    training = api.create_profile()
    for body, name in (
        ({"images": [URL], "profile_ids": ["prof_nope"]}, "prof_nope"),
        ({"images": [URL], "prompt": f"[[{training}]]"}, training),
    ):
        response = api.post("/edit", body)
        assert response.status_code == 400
        assert response.json()["type"] == "INVALID_REQUEST"
        assert name in response.json()["detail"]
    assert emu.charges("images") == []


def test_moderation_marker_is_400_content_moderation(emu: PhotaEmulator, api: Api) -> None:
    response = api.post("/generate", {"prompt": "something phota-moderate"})
    assert response.status_code == 400
    assert response.json()["type"] == "CONTENT_MODERATION"
    assert emu.ledger == []


@pytest.mark.parametrize(
    ("path", "body", "plain", "identity"),
    [
        ("/generate", {}, 0.05, 0.08),
        ("/generate", {"base_model": "gpt-image-2"}, 0.06, 0.09),
        ("/generate", {"base_model": "flux-2"}, 0.025, 0.04),
        ("/enhance", {"image": URL}, 0.12, 0.15),
        ("/remix", {"input_image": URL, "reference_image": URL}, 0.12, 0.15),
    ],
)
def test_image_charges(
    emu: PhotaEmulator, api: Api, path: str, body: dict[str, Any], plain: float, identity: float
) -> None:
    profile_id = api.ready_profile()
    plain_response = api.post(path, {**body, "num_output_images": 2, "prompt": "scene"})
    with_identity = api.post(path, {**body, "num_output_images": 3, "prompt": f"[[{profile_id}]] scene"})
    images = emu.charges("images")
    assert [(c.units, c.with_identity) for c in images] == [(2, 0), (3, 3)]
    assert images[0].amount_usd == pytest.approx(2 * plain)
    assert images[1].amount_usd == pytest.approx(3 * identity)
    assert images[0].ref == plain_response.headers["X-Request-Id"]
    assert images[1].ref == with_identity.headers["X-Request-Id"]
    assert images[0].endpoint == path
    assert emu.total_charged_usd() == pytest.approx(2.90 + 2 * plain + 3 * identity)


def test_output_size_matches_contract_for_every_model_resolution(api: Api) -> None:
    for model, resolutions in contract.BASE_MODEL_RESOLUTIONS.items():
        resolution = resolutions[-1]
        response = api.post("/generate", {"base_model": model, "resolution": resolution, "aspect_ratio": "4:3"})
        expected = contract.output_size("generate", resolution=resolution, aspect_ratio="4:3")
        assert open_image(_bytes_images(response)[0]).size == expected
