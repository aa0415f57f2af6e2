"""Parsing image responses: bytes mode's base64 images decoded exactly, urls mode's URLs kept, bad shapes refused."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import pytest

from airflow_provider_phota.contract import ImageResult, MalformedResponse, parse_image_result

IMAGES = [os.urandom(size) for size in (0, 1, 2, 3, 1000, 65_537)]


def body(images: list[bytes], **fields: object) -> dict[str, object]:
    return {
        "images": [base64.b64encode(image).decode() for image in images],
        "download_urls": [],
        "known_subjects": {"counts": {"prof_1": len(images)}},
        **fields,
    }


@pytest.mark.parametrize("indent", [None, 2])
def test_bytes_mode_images_are_decoded_exactly(indent: int | None) -> None:
    raw = json.dumps(body(IMAGES), indent=indent).encode()

    result = parse_image_result(json.loads(raw), request_id="req_1")

    assert result == ImageResult(images=IMAGES, known_subjects={"prof_1": len(IMAGES)}, request_id="req_1")
    assert result.count == len(IMAGES)


def test_urls_mode_keeps_the_urls_and_the_counts() -> None:
    urls = ["https://cdn.example.com/a.png?token=x", "https://cdn.example.com/b.png?token=y"]

    result = parse_image_result({"download_urls": urls, "known_subjects": {"counts": {"prof_1": 2}}})

    assert (result.images, result.download_urls, result.known_subjects) == ([], urls, {"prof_1": 2})
    assert result.count == 2


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param([], id="not-an-object"),
        pytest.param({"images": [], "download_urls": []}, id="no-known-subjects"),
        pytest.param({"images": "AAAA", "known_subjects": {"counts": {}}}, id="images-not-a-list"),
        pytest.param(body([b"x"], download_urls="https://x/a.png"), id="urls-not-a-list"),
        pytest.param({"images": ["AAA"], "known_subjects": {"counts": {}}}, id="bad-padding"),
        pytest.param({"images": ["AA!A"], "known_subjects": {"counts": {}}}, id="not-base64"),
        pytest.param({"images": [7], "known_subjects": {"counts": {}}}, id="image-not-a-string"),
        pytest.param(body([b"x"], known_subjects={"counts": {"prof_1": "many"}}), id="count-not-a-number"),
    ],
)
def test_malformed_answers_raise_malformed_response(answer: Any) -> None:
    """A 2xx of the wrong shape is MalformedResponse (the transport retries it), never a broken image."""
    with pytest.raises(MalformedResponse):
        parse_image_result(answer)
