"""Parsing image responses straight from the raw body: same result as json.loads, for every layout."""

from __future__ import annotations

import base64
import json
import os

import pytest

from airflow_provider_phota.contract import MalformedResponse, parse_image_result, parse_image_result_raw

IMAGES = [os.urandom(size) for size in (0, 1, 2, 3, 1000, 65_537)]


def body(images: list[bytes], **layout: object) -> dict[str, object]:
    return {
        "images": [base64.b64encode(image).decode() for image in images],
        "download_urls": [],
        "known_subjects": {"counts": {"prof_1": len(images)}},
        **layout,
    }


@pytest.mark.parametrize("indent", [None, 2])
@pytest.mark.parametrize("separators", [(",", ":"), (", ", ": ")])
def test_raw_parsing_matches_json_loads(indent: int | None, separators: tuple[str, str]) -> None:
    raw = json.dumps(body(IMAGES), indent=indent, separators=separators).encode()

    result = parse_image_result_raw(bytearray(raw), request_id="req_1")

    assert result == parse_image_result(json.loads(raw), request_id="req_1")
    assert result.images == IMAGES
    assert result.known_subjects == {"prof_1": len(IMAGES)}


@pytest.mark.parametrize(
    "raw",
    [
        # the key order differs, the array is empty, escaped slashes (valid JSON, not plain base64) are present
        b'{"known_subjects": {"counts": {}}, "download_urls": ["https://x/a.jpg"], "images": []}',
        b'{"images": ["' + base64.b64encode(b"\xff" * 60).replace(b"/", b"\\/") + b'"], "download_urls": [],'
        b' "known_subjects": {"counts": {}}}',
        # "images" also appears inside a string before the real key
        b'{"note": "\\"images\\": [", "images": ["AAAA"], "download_urls": [], "known_subjects": {"counts": {}}}',
    ],
)
def test_unusual_layouts_fall_back_to_the_plain_parser(raw: bytes) -> None:
    assert parse_image_result_raw(raw) == parse_image_result(json.loads(raw))


@pytest.mark.parametrize("raw", [b"", b"not json", b'{"images": ["AAAA"', b'{"images": []}'])
def test_malformed_bodies_raise_malformed_response(raw: bytes) -> None:
    with pytest.raises(MalformedResponse):
        parse_image_result_raw(raw)
