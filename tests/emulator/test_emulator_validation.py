"""The contract's request rules as the emulator answers them (api-decisions D4, D5, D11, D12): the status code,
the body shape and that nothing is charged.

The emulator takes the rules from the contract module; these tests pin the answers a client sees over HTTP.
"""

from __future__ import annotations

from typing import Any

import pytest
from emulator_helpers import Api

from airflow_provider_phota.testing import PhotaEmulator

URL = "https://example.com/in.jpg"
URLS_10 = [f"https://example.com/{i}.jpg" for i in range(10)]

# (path, body, status, field)
CASES: list[tuple[str, dict[str, Any], int, str]] = [
    # enums (422)
    ("/generate", {"prompt": "p", "aspect_ratio": "2:1"}, 422, "aspect_ratio"),
    ("/generate", {"prompt": "p", "resolution": "8K"}, 422, "resolution"),
    ("/generate", {"prompt": "p", "output_format": "gif"}, 422, "output_format"),
    ("/generate", {"prompt": "p", "response_mode": "stream"}, 422, "response_mode"),
    ("/generate", {"prompt": "p", "base_model": "gpt-image-2", "quality": "ultra"}, 422, "quality"),
    ("/edit", {"images": [URL], "aspect_ratio": "21:9"}, 422, "aspect_ratio"),
    # ranges
    ("/generate", {"prompt": "p", "num_output_images": 0}, 422, "num_output_images"),
    ("/generate", {"prompt": "p", "num_output_images": 5}, 422, "num_output_images"),
    ("/enhance", {"image": URL, "num_output_images": 5}, 422, "num_output_images"),
    ("/edit", {"images": [URL], "num_output_images": "2"}, 422, "num_output_images"),
    ("/edit", {"images": [URL] * 11}, 422, "images"),
    ("/edit", {"images": "https://example.com/a.jpg"}, 422, "images"),
    ("/edit", {"images": [URL, "ftp://example.com/x.png"]}, 422, "images[1]"),
    # required fields
    ("/edit", {"prompt": "p"}, 422, "images"),
    ("/edit", {"prompt": "p", "images": []}, 422, "images"),
    ("/enhance", {}, 422, "image"),
    ("/remix", {"input_image": URL}, 422, "reference_image"),
    ("/generate", {"prompt": 5}, 422, "prompt"),
    ("/edit", {"images": [URL], "profile_ids": "prof_1"}, 422, "profile_ids"),
    # api-decisions D12: fields an endpoint does not accept
    ("/generate", {"prompt": "p", "images": [URL]}, 422, "images"),
    ("/generate", {"prompt": "p", "profile_ids": ["prof_1"]}, 422, "profile_ids"),
    ("/enhance", {"image": URL, "base_model": "nb2"}, 422, "base_model"),
    ("/enhance", {"image": URL, "resolution": "2K"}, 422, "resolution"),
    ("/enhance", {"image": URL, "aspect_ratio": "1:1"}, 422, "aspect_ratio"),
    ("/remix", {"input_image": URL, "reference_image": URL, "base_model": "nb2"}, 422, "base_model"),
    ("/remix", {"input_image": URL, "reference_image": URL, "resolution": "2K"}, 422, "resolution"),
    ("/edit", {"images": [URL], "image": URL}, 422, "image"),
    ("/generate", {"prompt": "p", "colour": "red"}, 422, "colour"),
    # api-decisions D11: unknown model 422; unsupported resolution / quality elsewhere 400
    ("/generate", {"prompt": "p", "base_model": "dall-e"}, 422, "base_model"),
    ("/generate", {"prompt": "p", "base_model": "flux-2", "resolution": "4K"}, 400, "resolution"),
    ("/generate", {"prompt": "p", "base_model": "qwen-image-2", "resolution": "4K"}, 400, "resolution"),
    ("/edit", {"images": [URL], "base_model": "reve", "resolution": "2K"}, 400, "resolution"),
    ("/generate", {"prompt": "p", "base_model": "nb2", "quality": "high"}, 400, "quality"),
    ("/generate", {"prompt": "p", "quality": "low"}, 400, "quality"),
    # api-decisions D5 and the async fields ([ASYNC], D4)
    ("/generate", {"prompt": "p", "async": True}, 400, "response_mode"),
    ("/generate", {"prompt": "p", "async": True, "response_mode": "bytes"}, 400, "response_mode"),
    ("/generate", {"prompt": "p", "callback_url": "https://example.com/hook"}, 400, "callback_url"),
    (
        "/generate",
        {"prompt": "p", "async": True, "response_mode": "urls", "callback_url": "http://example.com/hook"},
        422,
        "callback_url",
    ),
    ("/generate", {"prompt": "p", "async": "yes", "response_mode": "urls"}, 422, "async"),
    (
        "/generate",
        {"prompt": "p", "async": True, "response_mode": "urls", "client_request_id": "has space"},
        422,
        "client_request_id",
    ),
    (
        "/generate",
        {"prompt": "p", "async": True, "response_mode": "urls", "client_request_id": "x" * 129},
        422,
        "client_request_id",
    ),
    # profiles ([R-ADD], [PROF], [RN-0.5])
    ("/profiles/add", {}, 422, "image_urls"),
    ("/profiles/add", {"image_urls": URLS_10[:4]}, 422, "image_urls"),
    ("/profiles/add", {"image_urls": URLS_10 * 6}, 422, "image_urls"),
    ("/profiles/add", {"image_urls": URLS_10[:9]}, 400, "image_urls"),
    ("/profiles/add", {"image_urls": URLS_10[:9], "training_tier": "standard"}, 400, "image_urls"),
    (
        "/profiles/add",
        {"image_urls": [*URLS_10, "https://example.com/x.jpg"], "training_tier": "fast"},
        400,
        "image_urls",
    ),
    ("/profiles/add", {"image_urls": URLS_10, "training_tier": "turbo"}, 422, "training_tier"),
    ("/profiles/add", {"image_urls": URLS_10, "tag": ""}, 422, "tag"),
    ("/profiles/add", {"image_urls": URLS_10, "tag": "t" * 129}, 422, "tag"),
    ("/profiles/add", {"image_urls": URLS_10, "name": "bob"}, 422, "name"),
    ("/profiles/add", {"image_urls": [*URLS_10[:9], "not a url"]}, 422, "image_urls[9]"),
    ("/profiles/add", {"image_urls": "https://example.com/1.jpg"}, 422, "image_urls"),
]


@pytest.mark.parametrize(("path", "body", "status", "field"), CASES)
def test_rule(emu: PhotaEmulator, api: Api, path: str, body: dict[str, Any], status: int, field: str) -> None:
    response = api.post(path, body)
    assert response.status_code == status, response.text
    payload = response.json()
    if status == 422:
        locations = [item["loc"] for item in payload["detail"]]
        assert ["body", field] in locations
        assert all(item["type"] and item["msg"] for item in payload["detail"])
    else:
        assert payload["type"] == "INVALID_REQUEST"
        assert payload["detail"].startswith(field)
        assert payload["request_id"] == response.headers["X-Request-Id"]
    assert emu.ledger == []
    assert emu.profiles == {}
    assert emu.jobs == {}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/profiles/add", {"image_urls": URLS_10[:5], "training_tier": "fast"}),
        ("/profiles/add", {"image_urls": URLS_10, "training_tier": "fast"}),
        ("/profiles/add", {"image_urls": URLS_10 * 5, "tag": "t" * 128}),
        ("/profiles/add", {"image_urls": URLS_10, "tag": "a"}),
        ("/generate", {"prompt": "p", "base_model": "gpt-image-2", "quality": "low", "resolution": "4K"}),
        ("/generate", {"prompt": "p", "base_model": "reve", "resolution": "1K", "num_output_images": 4}),
        ("/generate", {"prompt": "p", "base_model": "flux-2", "resolution": "2K"}),
        ("/generate", {}),
        ("/edit", {"images": [URL] * 10, "num_output_images": 1}),
        ("/remix", {"input_image": URL, "reference_image": URL, "output_format": "jpg", "response_mode": "bytes"}),
    ],
)
def test_boundary_values_are_accepted(api: Api, path: str, body: dict[str, Any]) -> None:
    response = api.post(path, body)
    assert response.status_code == 200, response.text


def test_422_lists_every_unprocessable_field_and_wins_over_400(api: Api) -> None:
    response = api.post(
        "/generate",
        {"prompt": "p", "aspect_ratio": "x", "num_output_images": 9, "base_model": "flux-2", "resolution": "4K"},
    )
    assert response.status_code == 422
    fields = {item["loc"][1] for item in response.json()["detail"]}
    assert fields == {"aspect_ratio", "num_output_images"}


@pytest.mark.parametrize("tag", ["", "t" * 129])
def test_list_profiles_tag_query_is_validated(api: Api, tag: str) -> None:
    response = api.get("/profiles/ids", params={"tag": tag})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "tag"]
