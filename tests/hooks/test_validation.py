"""Bad arguments fail before any request: the error names the field and what it allows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hook_helpers import FAST_URLS, STANDARD_URLS

from airflow_provider_phota.contract import Endpoint
from airflow_provider_phota.exceptions import PhotaValidationError
from airflow_provider_phota.hooks.phota import PhotaHook
from airflow_provider_phota.testing import PhotaEmulator
from airflow_provider_phota.testing.samples import image_base64

IMAGE = image_base64(8, 8)
Call = Callable[[PhotaHook], Any]

CASES: list[Any] = [
    # profiles
    pytest.param(lambda h: h.create_profile(STANDARD_URLS[:9]), "image_urls", "10 to 50", id="standard-9-images"),
    pytest.param(
        lambda h: h.create_profile(STANDARD_URLS + FAST_URLS, training_tier="fast"),
        "image_urls",
        "5 to 10",
        id="fast-15-images",
    ),
    pytest.param(
        lambda h: h.create_profile(FAST_URLS[:4], training_tier="fast"), "image_urls", "5 to 50", id="fast-4-images"
    ),
    pytest.param(
        lambda h: h.create_profile(STANDARD_URLS, training_tier="turbo"),
        "training_tier",
        "'standard', 'fast'",
        id="unknown-tier",
    ),
    pytest.param(lambda h: h.create_profile(STANDARD_URLS, tag=""), "tag", "1 to 128", id="empty-tag"),
    pytest.param(lambda h: h.create_profile(STANDARD_URLS, tag="t" * 129), "tag", "1 to 128", id="long-tag"),
    pytest.param(
        lambda h: h.create_profile(["ftp://x/1.jpg", *STANDARD_URLS[1:]]), "image_urls[0]", "http(s)", id="ftp-url"
    ),
    pytest.param(lambda h: h.list_profile_ids("t" * 129), "tag", "1 to 128", id="list-long-tag"),
    pytest.param(lambda h: h.get_profile_status(""), "profile_id", "without '/'", id="empty-profile-id"),
    pytest.param(lambda h: h.get_profile_status("a/b"), "profile_id", "without '/'", id="slash-profile-id"),
    pytest.param(lambda h: h.get_profile_picture("  "), "profile_id", "non-empty", id="blank-profile-id"),
    pytest.param(lambda h: h.delete_profile("x/../y"), "profile_id", "without '/'", id="delete-slash-id"),
    pytest.param(lambda h: h.get_profile_status(".."), "profile_id", "not '.' or '..'", id="dotdot-profile-id"),
    pytest.param(lambda h: h.delete_profile("."), "profile_id", "not '.' or '..'", id="dot-profile-id"),
    pytest.param(lambda h: h.get_job(""), "job_id", "non-empty", id="empty-job-id"),
    pytest.param(lambda h: h.get_job(None), "job_id", "non-empty", id="none-job-id"),
    # image options
    pytest.param(lambda h: h.generate("p", aspect_ratio="2:1"), "aspect_ratio", "'16:9'", id="aspect-ratio"),
    pytest.param(lambda h: h.generate("p", resolution="8K"), "resolution", "'1K', '2K', '4K'", id="resolution"),
    pytest.param(lambda h: h.generate("p", output_format="gif"), "output_format", "'png', 'jpg'", id="format"),
    pytest.param(lambda h: h.generate("p", response_mode="json"), "response_mode", "'bytes', 'urls'", id="mode"),
    pytest.param(lambda h: h.generate("p", base_model="dall-e"), "base_model", "'flux-2'", id="unknown-model"),
    pytest.param(lambda h: h.generate("p", quality="high"), "quality", "omit it", id="quality-on-nb2"),
    pytest.param(
        lambda h: h.generate("p", base_model="flux-2", quality="low"), "quality", "gpt-image-2", id="quality-on-flux"
    ),
    pytest.param(
        lambda h: h.generate("p", base_model="gpt-image-2", quality="ultra"),
        "quality",
        "'auto', 'low', 'medium', 'high'",
        id="quality-value",
    ),
    pytest.param(
        lambda h: h.edit("p", [IMAGE], base_model="flux-2", resolution="4K"),
        "resolution",
        "'1K', '2K'",
        id="4k-on-flux",
    ),
    pytest.param(lambda h: h.edit("p", [IMAGE] * 11), "images", "1 to 10", id="11-edit-images"),
    pytest.param(lambda h: h.edit("p", []), "images", "is required", id="no-edit-images"),
    pytest.param(lambda h: h.edit("p", ["file:///etc/passwd"]), "images[0]", "http(s) URL", id="file-url-image"),
    pytest.param(lambda h: h.generate("p", num_output_images=0), "num_output_images", "1 to 4", id="0-outputs"),
    pytest.param(lambda h: h.generate("p", num_output_images=5), "num_output_images", "1 to 4", id="5-outputs"),
    pytest.param(lambda h: h.generate("p", num_output_images="2"), "num_output_images", "integer", id="str-outputs"),
    pytest.param(
        lambda h: h.generate("p", images=[IMAGE]), "images", "is not accepted by /generate", id="images-on-generate"
    ),
    pytest.param(
        lambda h: h.enhance(IMAGE, base_model="nb2"), "base_model", "is not accepted by /enhance", id="model-on-enhance"
    ),
    pytest.param(
        lambda h: h.remix(IMAGE, IMAGE, profile_ids="prof_1"), "profile_ids", "a list", id="profile-ids-string"
    ),
    pytest.param(lambda h: h.generate(123), "prompt", "a string", id="prompt-not-string"),
    # async fields belong to submit_job
    pytest.param(
        lambda h: h.run_image(Endpoint.GENERATE, {"prompt": "p", "client_request_id": "k"}),
        "client_request_id",
        "submit_job()",
        id="run-image-client-request-id",
    ),
    pytest.param(lambda h: h.generate("p", **{"async": True}), "async", "submit_job()", id="generate-async"),
    pytest.param(
        lambda h: h.edit("p", [IMAGE], callback_url="https://x.example/cb"),
        "callback_url",
        "submit_job()",
        id="edit-callback",
    ),
    pytest.param(
        lambda h: h.submit_job("generate", {"prompt": "p"}, client_request_id="has space"),
        "client_request_id",
        "A-Z a-z 0-9 . _ : -",
        id="client-request-id-space",
    ),
    pytest.param(
        lambda h: h.submit_job("generate", {"prompt": "p"}, client_request_id="k" * 129),
        "client_request_id",
        "1 to 128",
        id="client-request-id-long",
    ),
    pytest.param(
        lambda h: h.submit_job("generate", {"prompt": "p"}, client_request_id=""),
        "client_request_id",
        "1 to 128",
        id="client-request-id-empty",
    ),
    pytest.param(
        lambda h: h.submit_job(
            "generate", {"prompt": "p"}, client_request_id="k", callback_url="http://insecure.example/cb"
        ),
        "callback_url",
        "https://",
        id="callback-not-https",
    ),
    pytest.param(
        lambda h: h.submit_job("enhance", {"image": IMAGE, "aspect_ratio": "1:1"}, client_request_id="k"),
        "aspect_ratio",
        "is not accepted by /enhance",
        id="job-unknown-field",
    ),
    pytest.param(lambda h: h.download("ftp://x/y.png", "/tmp/y.png"), "url", "http(s) URL", id="download-url"),
    # base64 that is not an image (a one-byte text file, a GIF) is refused before it is sent, as the service would
    pytest.param(lambda h: h.enhance("eA=="), "image", "JPEG, PNG, WebP or HEIC", id="enhance-text-file"),
    pytest.param(
        lambda h: h.edit("p", [IMAGE, "R0lGODlhAQABAAAAACw="]), "images[1]", "JPEG, PNG, WebP or HEIC", id="edit-gif"
    ),
]


@pytest.mark.parametrize(("call", "field", "allowed"), CASES)
def test_invalid_arguments_raise_before_any_request(
    hook: PhotaHook, emu: PhotaEmulator, call: Call, field: str, allowed: str
) -> None:
    with pytest.raises(PhotaValidationError) as raised:
        call(hook)

    error = raised.value
    assert field in error.fields
    described = [v.describe() for v in error.violations if v.field == field]
    assert any(allowed in text for text in described), described
    assert field in str(error)
    assert allowed in str(error)
    assert error.retry_task is False
    assert isinstance(error, ValueError)
    assert emu.requests == []
    assert emu.downloads == []


def test_every_violation_is_reported_at_once(hook: PhotaHook, emu: PhotaEmulator) -> None:
    with pytest.raises(PhotaValidationError) as raised:
        hook.generate("p", aspect_ratio="2:1", resolution="8K", num_output_images=9, output_format="gif")

    assert set(raised.value.fields) == {"aspect_ratio", "resolution", "num_output_images", "output_format"}
    assert emu.requests == []


def test_validate_image_options_returns_the_compacted_body() -> None:
    body = PhotaHook.validate_image_options("generate", {"prompt": "p", "resolution": None, "aspect_ratio": "1:1"})
    assert body == {"prompt": "p", "aspect_ratio": "1:1"}
    with pytest.raises(PhotaValidationError, match="is not accepted by /remix"):
        PhotaHook.validate_image_options(Endpoint.REMIX, {"input_image": IMAGE, "reference_image": IMAGE, "x": 1})
