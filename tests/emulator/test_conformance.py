"""Conformance table: what the Phota service refuses, written out as literal data, checked over HTTP.

Every row is a request and the answer the service gives: the status, the error type and the field the answer names,
with the source it comes from: a page tag of the "Source pages" table in ``docs/api-decisions.md`` (e.g. [R-EDIT],
[RN-0.7]) or a project decision ("api-decisions D<n>"). Where the docs name a limit but not the status of breaking
it, the row says which status the project chose.

Nothing here is computed with ``airflow_provider_phota.contract``: the bodies, statuses and types are literals, so
a rule written wrong in the contract (which both the client and the emulator use) fails a row instead of agreeing
with itself. ``ACCEPTED`` holds the boundary values the service takes, so a rule that is too strict fails as well.

Bodies may hold placeholders, filled in per row: ``$READY``, ``$TRAINING``, ``$QUEUING``, ``$VALIDATING``,
``$ERROR``, ``$INACTIVE``, ``$DELETED`` (profiles in that state), ``$LOCAL/<file>`` (a file served on 127.0.0.1),
``$OUTPUT``, ``$OUTPUT_BAD_TOKEN``, ``$OUTPUT_EXPIRED`` (one of the emulator's own download URLs, intact, with a
changed token, or expired). A row whose ``setup`` is ``"credit:0"`` runs with no prepaid credit left.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import requests

from airflow_provider_phota.testing import PhotaEmulator
from airflow_provider_phota.testing.samples import PhotoServer

PREFIX = "/v1/phota"  # [HOME], [QS]
KEY_HEADER = "X-API-Key"  # [AUTH]
D9 = "HTTPValidationError"  # [OAS] schema of a 422; api-decisions D9: {"detail": [{"loc", "msg", "type"}, ...]}
BAD = "INVALID_REQUEST"  # api-decisions D8
MISSING = "NOT_FOUND"  # api-decisions D8
MODERATED = "CONTENT_MODERATION"  # [RN-0.1.1]
NO_CREDIT = "INSUFFICIENT_CREDIT"  # api-decisions D8


class Row(NamedTuple):
    name: str
    method: str
    path: str  # below /v1/phota; may hold a placeholder
    body: Any  # a JSON body, raw ``bytes`` sent as they are, or None
    status: int
    type: str | None  # D8 ``type``; ``D9`` for a 422 body; None: only ``detail`` is promised (auth errors)
    field: str  # 422: the field in ``loc`` ("" = the whole body); other statuses: a text ``detail`` must contain
    source: str
    setup: str = ""  # "credit:0"
    query: dict[str, str] | None = None
    key: str = "good"  # "good" | "missing" | "wrong"


# --- literal inputs ---------------------------------------------------------------------------------------------

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGPgOiEHAAHQAPEkXJH0AAAAAElFTkSuQmCC"  # 1x1 PNG
WEBP = "UklGRjoAAABXRUJQVlA4IC4AAAAQAgCdASoBAAEAAUAmJaACdLoB+AH4AAPIAP7Lt//TRRhTH3Jv/u82AMJf8IAA"  # 1x1 WebP
JPEG = (  # 1x1 JPEG
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwgJC4nICIsIxwcKDcpLDAxNDQ0Hyc5PTgy"
    "PC4zNDL/2wBDAQkJCQwLDBgNDRgyIRwhMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjL/wAARCAABAAED"
    "ASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKB"
    "kaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZ"
    "mqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAAAAECAwQF"
    "BgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5"
    "OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX"
    "2Nna4uPk5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwCOiiivkD83P//Z"
)
HEIC = "AAAAGGZ0eXBoZWljAAAAAG1pZjFoZWlj"  # an ftyp box, major brand heic
HEIF = "AAAAGGZ0eXBtaWYxAAAAAG1pZjFoZWlj"  # an ftyp box, major brand mif1
ONE_BYTE_TEXT = "eA=="  # b"x": the one-byte text file of the new-user run
TEXT = "aGVsbG8sIEkgYW0gYSB0ZXh0IGZpbGUK"  # b"hello, I am a text file\n"
GIF = "R0lGODdhAQABAIEAAArIHgAAAAAAAAAAACwAAAAAAQABAAAIBAABBAQAOw=="  # a real 1x1 GIF: not an accepted format
BMP = "Qk06AAAAAAAAADYAAAAoAAAAAQAAAAEAAAABABgAAAAAAAQAAADEDgAAxA4AAAAAAAAAAAAAHsgKAA=="  # a real 1x1 BMP
AVIF = "AAAAHGZ0eXBhdmlmAAAAAGF2aWZtaWYxbWlhZg=="  # ftyp avif (mif1 only as a compatible brand)
PDF = "JVBERi0xLjQgbm90IGFuIGltYWdl"  # b"%PDF-1.4 not an image"
FAKE_PNG = "iVBORw0KGgp0aGlzIGlzIG5vdCBhIHBuZw=="  # the PNG signature, then text
FAKE_JPEG = "/9j/dGhpcyBpcyBub3QgYSBqcGVn"  # the JPEG marker, then text
NOT_BASE64 = "not an image, not base64!"
DATA_URI = "data:image/png;base64," + PNG  # not raw base64
URL = "https://example.com/photo.jpg"  # not fetched by the emulator: never refused for its content


def urls(count: int) -> list[str]:
    return [f"https://example.com/training/{index}.jpg" for index in range(count)]


# Files served on 127.0.0.1 (base64 of their bytes), for URL inputs the emulator fetches.
LOCAL_FILES = {
    "one-byte.txt": ONE_BYTE_TEXT,
    "text.png": TEXT,
    "image.gif": GIF,
    "fake.png": FAKE_PNG,
    "photo.png": PNG,
    "photo.heic": HEIC,
}

ASYNC = {"async": True, "response_mode": "urls"}
GEN = {"prompt": "a lighthouse at dusk"}
EDIT = {"prompt": "warmer light", "images": [PNG]}
ENH = {"image": PNG}
RMX = {"input_image": PNG, "reference_image": PNG}

# --- the refusals ----------------------------------------------------------------------------------------------

ENDPOINTS: list[tuple[str, str, Any]] = [
    ("POST", "/profiles/add", {"image_urls": urls(10)}),
    ("GET", "/profiles/ids", None),
    ("GET", "/profiles/$READY/status", None),
    ("GET", "/profiles/$READY/profile_picture", None),
    ("DELETE", "/profiles/$READY", None),
    ("POST", "/edit", EDIT),
    ("POST", "/generate", GEN),
    ("POST", "/enhance", ENH),
    ("POST", "/remix", RMX),
    ("GET", "/jobs/job_0123456789abcdef", None),
    ("GET", "/webhook-secret", None),
]

AUTH: list[Row] = [
    *(
        Row(
            f"missing-key {method} {path}",
            method,
            path,
            body,
            403,
            None,
            "",
            "[OAS] 403: header missing; api-decisions D10",
            key="missing",
        )
        for method, path, body in ENDPOINTS
    ),
    *(
        Row(
            f"wrong-key {method} {path}",
            method,
            path,
            body,
            401,
            None,
            "",
            '[OAS] 401: invalid key; [AUTH] {"detail": ...}; api-decisions D10',
            key="wrong",
        )
        for method, path, body in ENDPOINTS
    ),
]

PROFILES_ADD: list[Row] = [
    Row("no image_urls", "POST", "/profiles/add", {}, 422, D9, "image_urls", "[R-ADD] image_urls: required"),
    Row(
        "image_urls null",
        "POST",
        "/profiles/add",
        {"image_urls": None},
        422,
        D9,
        "image_urls",
        "[R-ADD] image_urls: required string[]",
    ),
    Row(
        "image_urls a string",
        "POST",
        "/profiles/add",
        {"image_urls": URL},
        422,
        D9,
        "image_urls",
        "[R-ADD] image_urls: string[]",
    ),
    Row(
        "4 images",
        "POST",
        "/profiles/add",
        {"image_urls": urls(4)},
        422,
        D9,
        "image_urls",
        "[R-ADD] image_urls: 5-50 items (schema); [HOME] from 5 up to 50",
    ),
    Row(
        "51 images",
        "POST",
        "/profiles/add",
        {"image_urls": urls(51)},
        422,
        D9,
        "image_urls",
        "[R-ADD] image_urls: 5-50 items (schema)",
    ),
    Row(
        "fast, 4 images",
        "POST",
        "/profiles/add",
        {"image_urls": urls(4), "training_tier": "fast"},
        422,
        D9,
        "image_urls",
        "[R-ADD] image_urls: 5-50 items (schema)",
    ),
    Row(
        "standard, 51 images",
        "POST",
        "/profiles/add",
        {"image_urls": urls(51), "training_tier": "standard"},
        422,
        D9,
        "image_urls",
        "[R-ADD] image_urls: 5-50 items (schema)",
    ),
    Row(
        "default tier, 9 images",
        "POST",
        "/profiles/add",
        {"image_urls": urls(9)},
        400,
        BAD,
        "image_urls",
        "[R-ADD], [PROF], [RN-0.5]: standard (the default) needs 10-50; the server checks the count per tier, "
        "status 400 chosen by the project (the schema range is the 422)",
    ),
    Row(
        "standard, 9 images",
        "POST",
        "/profiles/add",
        {"image_urls": urls(9), "training_tier": "standard"},
        400,
        BAD,
        "image_urls",
        "[R-ADD], [PROF], [RN-0.5]: standard needs 10-50",
    ),
    Row(
        "standard, 5 images",
        "POST",
        "/profiles/add",
        {"image_urls": urls(5), "training_tier": "standard"},
        400,
        BAD,
        "image_urls",
        "[R-ADD], [PROF], [RN-0.5]: standard needs 10-50",
    ),
    Row(
        "fast, 11 images",
        "POST",
        "/profiles/add",
        {"image_urls": urls(11), "training_tier": "fast"},
        400,
        BAD,
        "image_urls",
        "[R-ADD], [PROF], [RN-0.5]: fast needs 5-10",
    ),
    Row(
        "fast, 50 images",
        "POST",
        "/profiles/add",
        {"image_urls": urls(50), "training_tier": "fast"},
        400,
        BAD,
        "image_urls",
        "[R-ADD], [PROF], [RN-0.5]: fast needs 5-10",
    ),
    Row(
        "tier turbo",
        "POST",
        "/profiles/add",
        {"image_urls": urls(10), "training_tier": "turbo"},
        422,
        D9,
        "training_tier",
        "[R-ADD] training_tier: standard | fast",
    ),
    Row(
        "tier Standard",
        "POST",
        "/profiles/add",
        {"image_urls": urls(10), "training_tier": "Standard"},
        422,
        D9,
        "training_tier",
        "[R-ADD] training_tier: standard | fast (enum values are exact)",
    ),
    Row(
        "tier empty",
        "POST",
        "/profiles/add",
        {"image_urls": urls(10), "training_tier": ""},
        422,
        D9,
        "training_tier",
        "[R-ADD] training_tier: standard | fast",
    ),
    Row(
        "tag empty",
        "POST",
        "/profiles/add",
        {"image_urls": urls(10), "tag": ""},
        422,
        D9,
        "tag",
        "[R-ADD], [RN-0.1.1] tag: 1-128 characters",
    ),
    Row(
        "tag 129 chars",
        "POST",
        "/profiles/add",
        {"image_urls": urls(10), "tag": "t" * 129},
        422,
        D9,
        "tag",
        "[R-ADD], [RN-0.1.1] tag: 1-128 characters",
    ),
    Row(
        "tag a number",
        "POST",
        "/profiles/add",
        {"image_urls": urls(10), "tag": 7},
        422,
        D9,
        "tag",
        "[R-ADD] tag: string | null",
    ),
    Row(
        "unknown field name",
        "POST",
        "/profiles/add",
        {"image_urls": urls(10), "name": "bob"},
        422,
        D9,
        "name",
        "[R-ADD] fields image_urls, training_tier, tag; api-decisions D12",
    ),
    Row(
        "unknown field images",
        "POST",
        "/profiles/add",
        {"image_urls": urls(10), "images": [PNG]},
        422,
        D9,
        "images",
        "[R-ADD] fields image_urls, training_tier, tag; api-decisions D12",
    ),
    Row(
        "url not a URL",
        "POST",
        "/profiles/add",
        {"image_urls": [*urls(9), "not a url"]},
        422,
        D9,
        "image_urls",
        "[R-ADD] image_urls: public URLs only",
    ),
    Row(
        "url is base64",
        "POST",
        "/profiles/add",
        {"image_urls": [*urls(9), PNG]},
        422,
        D9,
        "image_urls",
        "[R-ADD] training takes URLs only (no base64)",
    ),
    Row(
        "url ftp",
        "POST",
        "/profiles/add",
        {"image_urls": [*urls(9), "ftp://example.com/a.jpg"]},
        422,
        D9,
        "image_urls",
        "[R-ADD] image_urls: public (http) URLs",
    ),
    Row(
        "url a number",
        "POST",
        "/profiles/add",
        {"image_urls": [*urls(9), 5]},
        422,
        D9,
        "image_urls",
        "[R-ADD] image_urls: string[]",
    ),
    Row(
        "local one-byte text",
        "POST",
        "/profiles/add",
        {"image_urls": [*urls(9), "$LOCAL/one-byte.txt"]},
        400,
        BAD,
        "image_urls[9]",
        "[R-ADD] formats JPEG, PNG, WebP, HEIC; [RN-0.1.1] unusable set: descriptive 400",
    ),
    Row(
        "local text as .png",
        "POST",
        "/profiles/add",
        {"image_urls": [*urls(9), "$LOCAL/text.png"]},
        400,
        BAD,
        "image_urls[9]",
        "[R-ADD] formats JPEG, PNG, WebP, HEIC; [RN-0.1.1]",
    ),
    Row(
        "local GIF",
        "POST",
        "/profiles/add",
        {"image_urls": [*urls(9), "$LOCAL/image.gif"]},
        400,
        BAD,
        "image_urls[9]",
        "[R-ADD] formats JPEG, PNG, WebP, HEIC (GIF is not one); [RN-0.1.1]",
    ),
    Row(
        "local fake PNG",
        "POST",
        "/profiles/add",
        {"image_urls": [*urls(9), "$LOCAL/fake.png"]},
        400,
        BAD,
        "image_urls[9]",
        "[R-ADD] formats; [RN-0.1.1]: a PNG signature followed by text is no image",
    ),
    Row(
        "local 404",
        "POST",
        "/profiles/add",
        {"image_urls": [*urls(9), "$LOCAL/missing.jpg"]},
        400,
        BAD,
        "image_urls[9]",
        "[R-ADD] publicly reachable URLs; [RN-0.1.1]",
    ),
    Row(
        "own URL, bad token",
        "POST",
        "/profiles/add",
        {"image_urls": [*urls(9), "$OUTPUT_BAD_TOKEN"]},
        400,
        BAD,
        "image_urls[9]",
        "[R-ADD] reachable URLs; [RN-0.2.0] signed links",
    ),
    Row(
        "no subject",
        "POST",
        "/profiles/add",
        {"image_urls": [*urls(9), "https://example.com/phota-no-subject.jpg"]},
        400,
        BAD,
        "No detectable subject",
        "[RN-0.1.1]: a training set with no detectable subject is a descriptive 400 (emulator marker phota-no-subject)",
    ),
    Row(
        "no credit",
        "POST",
        "/profiles/add",
        {"image_urls": urls(10)},
        402,
        NO_CREDIT,
        "",
        "[R-ADD] 402; [OAS] 402 insufficient prepaid credit; [RN-0.5] $2.90 per standard profile",
        setup="credit:0",
    ),
    Row(
        "body not JSON",
        "POST",
        "/profiles/add",
        b"{not json",
        422,
        D9,
        "",
        "[OAS] HTTPValidationError; api-decisions D9",
    ),
    Row("body a list", "POST", "/profiles/add", [urls(10)], 422, D9, "", "[QS] JSON object bodies; api-decisions D9"),
    Row("body empty", "POST", "/profiles/add", b"", 422, D9, "", "[OAS] HTTPValidationError; api-decisions D9"),
]

PROFILES_IDS: list[Row] = [
    Row(
        "tag empty",
        "GET",
        "/profiles/ids",
        None,
        422,
        D9,
        "tag",
        "[R-IDS], [RN-0.1.1] tag: 1-128 characters",
        query={"tag": ""},
    ),
    Row(
        "tag 129 chars",
        "GET",
        "/profiles/ids",
        None,
        422,
        D9,
        "tag",
        "[R-IDS] tag: 1-128 characters",
        query={"tag": "t" * 129},
    ),
]

PROFILE_STATUS: list[Row] = [
    Row(
        "unknown id",
        "GET",
        "/profiles/prof_doesnotexist/status",
        None,
        404,
        MISSING,
        "prof_doesnotexist",
        "[R-STATUS] 404; api-decisions D8",
    ),
    Row(
        "deleted",
        "GET",
        "/profiles/$DELETED/status",
        None,
        404,
        MISSING,
        "",
        "[R-DEL] permanently removed; [R-STATUS] 404",
    ),
]

PROFILE_PICTURE: list[Row] = [
    Row(
        "unknown id",
        "GET",
        "/profiles/prof_doesnotexist/profile_picture",
        None,
        404,
        MISSING,
        "",
        "[REF] profile_picture; api-decisions D16",
    ),
    Row(
        "VALIDATING",
        "GET",
        "/profiles/$VALIDATING/profile_picture",
        None,
        404,
        MISSING,
        "",
        "api-decisions D16: 404 before READY",
    ),
    Row(
        "QUEUING",
        "GET",
        "/profiles/$QUEUING/profile_picture",
        None,
        404,
        MISSING,
        "",
        "api-decisions D16: 404 before READY",
    ),
    Row(
        "IN_PROGRESS",
        "GET",
        "/profiles/$TRAINING/profile_picture",
        None,
        404,
        MISSING,
        "",
        "api-decisions D16: 404 before READY",
    ),
    Row(
        "ERROR",
        "GET",
        "/profiles/$ERROR/profile_picture",
        None,
        404,
        MISSING,
        "",
        "api-decisions D16: bytes once READY, 404 otherwise",
    ),
    Row(
        "INACTIVE",
        "GET",
        "/profiles/$INACTIVE/profile_picture",
        None,
        404,
        MISSING,
        "",
        "api-decisions D16, D15: INACTIVE is not usable",
    ),
    Row("deleted", "GET", "/profiles/$DELETED/profile_picture", None, 404, MISSING, "", "[R-DEL]; api-decisions D16"),
]

PROFILE_DELETE: list[Row] = [
    Row(
        "unknown id",
        "DELETE",
        "/profiles/prof_doesnotexist",
        None,
        404,
        MISSING,
        "",
        "[R-DEL], [REF]; api-decisions D8",
    ),
    Row("deleted twice", "DELETE", "/profiles/$DELETED", None, 404, MISSING, "", "[R-DEL] permanently removed"),
]

JOBS: list[Row] = [
    Row(
        "unknown id",
        "GET",
        "/jobs/job_doesnotexist",
        None,
        404,
        MISSING,
        "job_doesnotexist",
        "api-decisions D2: unknown id 404",
    ),
    Row("a profile id", "GET", "/jobs/$READY", None, 404, MISSING, "", "api-decisions D2: unknown id 404"),
]


def _async_rows(path: str, base: dict[str, Any]) -> list[Row]:
    """The async-field rows ([ASYNC], [RN-0.7], api-decisions D4, D5); the same on every studio endpoint."""
    return [
        Row(
            "async without response_mode",
            "POST",
            path,
            {**base, "async": True},
            400,
            BAD,
            "response_mode",
            "[RN-0.7]: async submissions must use response_mode urls; api-decisions D5",
        ),
        Row(
            "async with bytes",
            "POST",
            path,
            {**base, "async": True, "response_mode": "bytes"},
            400,
            BAD,
            "response_mode",
            "[RN-0.7]; api-decisions D5",
        ),
        Row(
            "async a string",
            "POST",
            path,
            {**base, "async": "true", "response_mode": "urls"},
            422,
            D9,
            "async",
            "[ASYNC] async: bool",
        ),
        Row(
            "callback without async",
            "POST",
            path,
            {**base, "callback_url": "https://example.com/hook"},
            400,
            BAD,
            "callback_url",
            "[ASYNC] callback_url: only allowed with async true (status: the project's 400)",
        ),
        Row(
            "callback with async false",
            "POST",
            path,
            {**base, "async": False, "callback_url": "https://example.com/hook"},
            400,
            BAD,
            "callback_url",
            "[ASYNC] callback_url: only allowed with async true",
        ),
        Row(
            "callback http",
            "POST",
            path,
            {**base, **ASYNC, "callback_url": "http://example.com/hook"},
            422,
            D9,
            "callback_url",
            "[ASYNC] callback_url: an HTTPS URL",
        ),
        Row(
            "callback not a URL",
            "POST",
            path,
            {**base, **ASYNC, "callback_url": "hook"},
            422,
            D9,
            "callback_url",
            "[ASYNC] callback_url: an HTTPS URL",
        ),
        Row(
            "client_request_id with a space",
            "POST",
            path,
            {**base, **ASYNC, "client_request_id": "a b"},
            422,
            D9,
            "client_request_id",
            "api-decisions D4: 1-128 chars of [A-Za-z0-9._:-]",
        ),
        Row(
            "client_request_id 129 chars",
            "POST",
            path,
            {**base, **ASYNC, "client_request_id": "k" * 129},
            422,
            D9,
            "client_request_id",
            "api-decisions D4: 1-128 chars",
        ),
        Row(
            "client_request_id empty",
            "POST",
            path,
            {**base, **ASYNC, "client_request_id": ""},
            422,
            D9,
            "client_request_id",
            "api-decisions D4: 1-128 chars",
        ),
        Row(
            "client_request_id with a slash",
            "POST",
            path,
            {**base, **ASYNC, "client_request_id": "run/1"},
            422,
            D9,
            "client_request_id",
            "api-decisions D4: charset [A-Za-z0-9._:-]",
        ),
        Row(
            "client_request_id non-ASCII",
            "POST",
            path,
            {**base, **ASYNC, "client_request_id": "caf\u00e9"},
            422,
            D9,
            "client_request_id",
            "api-decisions D4: charset [A-Za-z0-9._:-]",
        ),
        Row(
            "client_request_id a number",
            "POST",
            path,
            {**base, **ASYNC, "client_request_id": 12},
            422,
            D9,
            "client_request_id",
            "[ASYNC] client_request_id: string; api-decisions D4",
        ),
    ]


def _output_rows(path: str, base: dict[str, Any], source: str) -> list[Row]:
    """num_output_images, output_format, response_mode: the same table on every studio endpoint."""
    return [
        Row(
            "num_output_images 0",
            "POST",
            path,
            {**base, "num_output_images": 0},
            422,
            D9,
            "num_output_images",
            f"{source}, [RN-0.1.0] num_output_images: 1-4",
        ),
        Row(
            "num_output_images 5",
            "POST",
            path,
            {**base, "num_output_images": 5},
            422,
            D9,
            "num_output_images",
            f"{source}, [RN-0.1.0] num_output_images: 1-4",
        ),
        Row(
            "output_format jpeg",
            "POST",
            path,
            {**base, "output_format": "jpeg"},
            422,
            D9,
            "output_format",
            f"{source}, [R-ENH] output_format: png | jpg",
        ),
        Row(
            "output_format webp",
            "POST",
            path,
            {**base, "output_format": "webp"},
            422,
            D9,
            "output_format",
            "[R-ENH] output_format: png | jpg",
        ),
        Row(
            "response_mode url",
            "POST",
            path,
            {**base, "response_mode": "url"},
            422,
            D9,
            "response_mode",
            "[R-ENH], [RN-0.2.0] response_mode: bytes | urls",
        ),
        Row("prompt a number", "POST", path, {**base, "prompt": 5}, 422, D9, "prompt", f"{source} prompt: string"),
        Row("body not JSON", "POST", path, b'{"prompt": ', 422, D9, "", "[OAS] HTTPValidationError; api-decisions D9"),
        Row("body a list", "POST", path, [base], 422, D9, "", "[OAS]; api-decisions D9"),
        Row(
            "no credit",
            "POST",
            path,
            base,
            402,
            NO_CREDIT,
            "",
            "[OAS] 402 insufficient prepaid credit",
            setup="credit:0",
        ),
        Row(
            "moderation",
            "POST",
            path,
            {**base, "prompt": "phota-moderate"},
            400,
            MODERATED,
            "",
            "[RN-0.1.1]: moderation is a 400 of type CONTENT_MODERATION (emulator marker phota-moderate)",
        ),
    ]


def _model_rows(path: str, base: dict[str, Any], source: str) -> list[Row]:
    """aspect_ratio, resolution, base_model, quality ([BM] section on models): /edit and /generate."""
    return [
        Row(
            "aspect_ratio 2:1",
            "POST",
            path,
            {**base, "aspect_ratio": "2:1"},
            422,
            D9,
            "aspect_ratio",
            f"{source} aspect_ratio: auto, 1:1, 3:4, 4:3, 9:16, 16:9",
        ),
        Row(
            "aspect_ratio 21:9",
            "POST",
            path,
            {**base, "aspect_ratio": "21:9"},
            422,
            D9,
            "aspect_ratio",
            f"{source} aspect_ratio: the 6 current values ([RN-0.1.0]'s 11 ratios are historical)",
        ),
        Row(
            "resolution 8K",
            "POST",
            path,
            {**base, "resolution": "8K"},
            422,
            D9,
            "resolution",
            "[R-GEN], [BM] resolution: 1K | 2K | 4K",
        ),
        Row(
            "resolution 1k",
            "POST",
            path,
            {**base, "resolution": "1k"},
            422,
            D9,
            "resolution",
            "[R-GEN] resolution: 1K | 2K | 4K (exact values)",
        ),
        Row(
            "base_model unknown",
            "POST",
            path,
            {**base, "base_model": "sdxl"},
            422,
            D9,
            "base_model",
            "[BM] base models; [RN-0.3] unknown model 422; api-decisions D11",
        ),
        Row(
            "base_model NB2",
            "POST",
            path,
            {**base, "base_model": "NB2"},
            422,
            D9,
            "base_model",
            "[BM] base_model ids are exact; api-decisions D11",
        ),
        Row(
            "quality ultra",
            "POST",
            path,
            {**base, "base_model": "gpt-image-2", "quality": "ultra"},
            422,
            D9,
            "quality",
            "[BM], [R-GEN] quality: auto | low | medium | high",
        ),
        Row(
            "quality, default model",
            "POST",
            path,
            {**base, "quality": "low"},
            400,
            BAD,
            "quality",
            "[BM], [RN-0.4]: quality only with gpt-image-2 (default model nb2), else 400; api-decisions D11",
        ),
        Row(
            "quality auto on nb2",
            "POST",
            path,
            {**base, "base_model": "nb2", "quality": "auto"},
            400,
            BAD,
            "quality",
            "[BM], [RN-0.4]: any other model + quality -> 400",
        ),
        Row(
            "quality on qwen-image-2",
            "POST",
            path,
            {**base, "base_model": "qwen-image-2", "quality": "high"},
            400,
            BAD,
            "quality",
            "[BM], [RN-0.4]",
        ),
        Row(
            "quality on flux-2",
            "POST",
            path,
            {**base, "base_model": "flux-2", "quality": "medium"},
            400,
            BAD,
            "quality",
            "[BM], [RN-0.4]",
        ),
        Row(
            "quality on reve",
            "POST",
            path,
            {**base, "base_model": "reve", "quality": "low"},
            400,
            BAD,
            "quality",
            "[BM], [RN-0.4]",
        ),
        Row(
            "4K on qwen-image-2",
            "POST",
            path,
            {**base, "base_model": "qwen-image-2", "resolution": "4K"},
            400,
            BAD,
            "resolution",
            "[BM] qwen-image-2: 1K, 2K; [RN-0.3] unsupported resolution 400; api-decisions D11",
        ),
        Row(
            "4K on flux-2",
            "POST",
            path,
            {**base, "base_model": "flux-2", "resolution": "4K"},
            400,
            BAD,
            "resolution",
            "[BM] flux-2: 1K, 2K; [RN-0.3]",
        ),
        Row(
            "2K on reve",
            "POST",
            path,
            {**base, "base_model": "reve", "resolution": "2K"},
            400,
            BAD,
            "resolution",
            "[BM] reve: 1K only; [RN-0.3]",
        ),
        Row(
            "4K on reve",
            "POST",
            path,
            {**base, "base_model": "reve", "resolution": "4K"},
            400,
            BAD,
            "resolution",
            "[BM] reve: 1K only; [RN-0.3]",
        ),
    ]


def _image_rows(path: str, base: dict[str, Any], field: str, shape: str) -> list[Row]:
    """Image inputs the service does not take ([R-EDIT], [R-ENH], [RMX]: base64 or a URL; [R-EDIT], [R-ENH],
    [RN-0.1.1]: JPEG, PNG, WebP, HEIC). ``shape`` is "list" for /edit's ``images``, else a single field."""

    def put(value: Any) -> dict[str, Any]:
        return {**base, "images": [PNG, value]} if shape == "list" else {**base, field: value}

    named = "images[1]" if shape == "list" else field
    formats = "[R-EDIT], [R-ENH], [RN-0.1.1]: JPEG, PNG, WebP, HEIC only; status 400"
    return [
        Row(f"{named} one-byte text file", "POST", path, put(ONE_BYTE_TEXT), 400, BAD, named, formats),
        Row(f"{named} text", "POST", path, put(TEXT), 400, BAD, named, formats),
        Row(f"{named} GIF", "POST", path, put(GIF), 400, BAD, named, f"{formats} (GIF is not one)"),
        Row(f"{named} BMP", "POST", path, put(BMP), 400, BAD, named, f"{formats} (BMP is not one)"),
        Row(f"{named} AVIF", "POST", path, put(AVIF), 400, BAD, named, f"{formats} (AVIF is not HEIC)"),
        Row(f"{named} PDF", "POST", path, put(PDF), 400, BAD, named, formats),
        Row(f"{named} PNG signature then text", "POST", path, put(FAKE_PNG), 400, BAD, named, formats),
        Row(f"{named} JPEG marker then text", "POST", path, put(FAKE_JPEG), 400, BAD, named, formats),
        Row(
            f"{named} neither base64 nor URL",
            "POST",
            path,
            put(NOT_BASE64),
            400,
            BAD,
            named,
            "[R-EDIT], [R-ENH], [QS], [RMX]: raw base64 or a URL",
        ),
        Row(
            f"{named} data URI",
            "POST",
            path,
            put(DATA_URI),
            400,
            BAD,
            named,
            "[R-EDIT], [R-ENH], [QS], [RMX]: raw base64 or a URL, not a data URI",
        ),
        Row(
            f"{named} local one-byte text",
            "POST",
            path,
            put("$LOCAL/one-byte.txt"),
            400,
            BAD,
            named,
            f"{formats} (a URL is fetched by the service)",
        ),
        Row(f"{named} local GIF", "POST", path, put("$LOCAL/image.gif"), 400, BAD, named, formats),
        Row(
            f"{named} local 404",
            "POST",
            path,
            put("$LOCAL/missing.jpg"),
            400,
            BAD,
            named,
            "[R-EDIT], [R-ENH], [RMX]: a publicly reachable URL",
        ),
        Row(
            f"{named} own URL, bad token",
            "POST",
            path,
            put("$OUTPUT_BAD_TOKEN"),
            400,
            BAD,
            named,
            "[RN-0.2.0], [QS]: signed links need their token",
        ),
        Row(
            f"{named} own URL, expired",
            "POST",
            path,
            put("$OUTPUT_EXPIRED"),
            400,
            BAD,
            named,
            "[RN-0.2.0], [R-ENH]: links expire after 24 h",
        ),
        Row(f"{named} empty", "POST", path, put(""), 422, D9, field, "[R-EDIT], [R-ENH], [RMX]: an image string"),
        Row(f"{named} a number", "POST", path, put(7), 422, D9, field, "[R-EDIT], [R-ENH], [RMX]: an image string"),
        Row(
            f"{named} ftp URL",
            "POST",
            path,
            put("ftp://example.com/a.png"),
            422,
            D9,
            field,
            "[R-EDIT], [R-ENH], [RMX]: base64 or an http(s) URL (status: the project's 422)",
        ),
    ]


def _profile_rows(path: str, make: Any, source: str) -> list[Row]:
    """Referenced profiles must exist and be READY ([QS], [R-EDIT]; status: the project's 400)."""
    return [
        Row(
            f"{label} profile",
            "POST",
            path,
            make(value),
            400,
            BAD,
            value if value.startswith("prof_") else "",
            f"{source}: every referenced profile must exist and be READY; status 400 chosen by the project",
        )
        for label, value in (
            ("unknown", "prof_doesnotexist"),
            ("IN_PROGRESS", "$TRAINING"),
            ("VALIDATING", "$VALIDATING"),
            ("ERROR", "$ERROR"),
            ("INACTIVE", "$INACTIVE"),
            ("deleted", "$DELETED"),
        )
    ]


EDIT_ROWS: list[Row] = [
    Row(
        "no images",
        "POST",
        "/edit",
        {"prompt": "p"},
        422,
        D9,
        "images",
        "[REF], [R-EDIT]: /edit edits 1..10 input images (required: the project's reading)",
    ),
    Row(
        "images empty",
        "POST",
        "/edit",
        {"prompt": "p", "images": []},
        422,
        D9,
        "images",
        "[R-EDIT]: 1..10 input images",
    ),
    Row(
        "11 images",
        "POST",
        "/edit",
        {"prompt": "p", "images": [PNG] * 11},
        422,
        D9,
        "images",
        "[R-EDIT] images: max 10 items",
    ),
    Row(
        "images a string",
        "POST",
        "/edit",
        {"prompt": "p", "images": PNG},
        422,
        D9,
        "images",
        "[R-EDIT] images: string[]",
    ),
    Row(
        "profile_ids a string",
        "POST",
        "/edit",
        {**EDIT, "profile_ids": "prof_1"},
        422,
        D9,
        "profile_ids",
        "[R-EDIT] profile_ids: string[]",
    ),
    Row(
        "profile_ids with a number",
        "POST",
        "/edit",
        {**EDIT, "profile_ids": [5]},
        422,
        D9,
        "profile_ids",
        "[R-EDIT] profile_ids: string[]",
    ),
    *(
        Row(
            f"field {name}",
            "POST",
            "/edit",
            {**EDIT, name: value},
            422,
            D9,
            name,
            "[R-EDIT] fields of EditRequest; api-decisions D12",
        )
        for name, value in (("image", PNG), ("input_image", PNG), ("reference_image", PNG), ("seed", 3))
    ),
    *_model_rows("/edit", EDIT, "[R-EDIT]"),
    *_output_rows("/edit", EDIT, "[R-EDIT]"),
    *_async_rows("/edit", EDIT),
    *_image_rows("/edit", EDIT, "images", "list"),
    Row(
        "images[0] one-byte text",
        "POST",
        "/edit",
        {"prompt": "p", "images": [ONE_BYTE_TEXT]},
        400,
        BAD,
        "images[0]",
        "[R-EDIT], [RN-0.1.1]: JPEG, PNG, WebP, HEIC only",
    ),
    *_profile_rows("/edit", lambda pid: {**EDIT, "profile_ids": [pid]}, "[R-EDIT] profile_ids"),
    *_profile_rows("/edit", lambda pid: {**EDIT, "prompt": f"[[{pid}]] at the beach"}, "[QS] [[profile_id]]"),
]

GENERATE_ROWS: list[Row] = [
    *(
        Row(
            f"field {name}",
            "POST",
            "/generate",
            {**GEN, name: value},
            422,
            D9,
            name,
            "[QS], [UC]: /generate takes no images and no profile_ids; api-decisions D12",
        )
        for name, value in (
            ("images", [PNG]),
            ("profile_ids", ["prof_1"]),
            ("image", PNG),
            ("input_image", PNG),
            ("reference_image", PNG),
            ("seed", 3),
        )
    ),
    *_model_rows("/generate", GEN, "[R-GEN]"),
    *_output_rows("/generate", GEN, "[R-GEN]"),
    *_async_rows("/generate", GEN),
    *_profile_rows("/generate", lambda pid: {"prompt": f"[[{pid}]] on a boat"}, "[QS], [BP] [[profile_id]]"),
]

ENHANCE_ROWS: list[Row] = [
    Row("no image", "POST", "/enhance", {}, 422, D9, "image", "[R-ENH] image: required"),
    Row("image null", "POST", "/enhance", {"image": None}, 422, D9, "image", "[R-ENH] image: required"),
    Row(
        "profile_ids a string",
        "POST",
        "/enhance",
        {**ENH, "profile_ids": "prof_1"},
        422,
        D9,
        "profile_ids",
        "[R-ENH] profile_ids: string[]",
    ),
    *(
        Row(
            f"field {name}",
            "POST",
            "/enhance",
            {**ENH, name: value},
            422,
            D9,
            name,
            "[R-ENH], [BM]: no base_model, aspect_ratio, resolution (fixed nb2 at 2K); api-decisions D12",
        )
        for name, value in (
            ("base_model", "nb2"),
            ("aspect_ratio", "1:1"),
            ("resolution", "2K"),
            ("quality", "high"),
            ("images", [PNG]),
            ("input_image", PNG),
        )
    ),
    *_output_rows("/enhance", ENH, "[R-ENH]"),
    *_async_rows("/enhance", ENH),
    *_image_rows("/enhance", ENH, "image", "single"),
    *_profile_rows("/enhance", lambda pid: {**ENH, "profile_ids": [pid]}, "[R-ENH] profile_ids"),
]

REMIX_ROWS: list[Row] = [
    Row(
        "no input_image",
        "POST",
        "/remix",
        {"reference_image": PNG},
        422,
        D9,
        "input_image",
        "[RMX] input_image: required",
    ),
    Row(
        "no reference_image",
        "POST",
        "/remix",
        {"input_image": PNG},
        422,
        D9,
        "reference_image",
        "[RMX] reference_image: required",
    ),
    *(
        Row(
            f"field {name}",
            "POST",
            "/remix",
            {**RMX, name: value},
            422,
            D9,
            name,
            "[RMX], [RN-0.6]: base_model, aspect_ratio, resolution not accepted; api-decisions D12",
        )
        for name, value in (
            ("base_model", "nb2"),
            ("aspect_ratio", "1:1"),
            ("resolution", "2K"),
            ("quality", "high"),
            ("image", PNG),
            ("images", [PNG]),
        )
    ),
    Row(
        "output_format gif",
        "POST",
        "/remix",
        {**RMX, "output_format": "gif"},
        422,
        D9,
        "output_format",
        "[RMX] output_format: jpg | png",
    ),
    Row(
        "response_mode stream",
        "POST",
        "/remix",
        {**RMX, "response_mode": "stream"},
        422,
        D9,
        "response_mode",
        "[RMX] response_mode: urls | bytes",
    ),
    Row(
        "no credit", "POST", "/remix", RMX, 402, NO_CREDIT, "", "[OAS] 402; [RN-0.6] $0.12 per output", setup="credit:0"
    ),
    Row(
        "moderation",
        "POST",
        "/remix",
        {**RMX, "prompt": "phota-moderate"},
        400,
        MODERATED,
        "",
        "[RN-0.1.1]: moderation is a 400 of type CONTENT_MODERATION (emulator marker phota-moderate)",
    ),
    Row("prompt a number", "POST", "/remix", {**RMX, "prompt": 5}, 422, D9, "prompt", "[RMX] prompt: string"),
    Row(
        "profile_ids a string",
        "POST",
        "/remix",
        {**RMX, "profile_ids": "prof_1"},
        422,
        D9,
        "profile_ids",
        "[RMX] profile_ids: identities to keep (a list)",
    ),
    Row("body not JSON", "POST", "/remix", b"[", 422, D9, "", "[OAS] HTTPValidationError; api-decisions D9"),
    *_async_rows("/remix", RMX),
    *_image_rows("/remix", {"reference_image": PNG}, "input_image", "single"),
    *_image_rows("/remix", {"input_image": PNG}, "reference_image", "single"),
    *_profile_rows("/remix", lambda pid: {**RMX, "profile_ids": [pid]}, "[RMX] profile_ids"),
]

TABLE: dict[str, list[Row]] = {
    "auth": AUTH,
    "profiles/add": PROFILES_ADD,
    "profiles/ids": PROFILES_IDS,
    "profiles/status": PROFILE_STATUS,
    "profiles/profile_picture": PROFILE_PICTURE,
    "profiles/delete": PROFILE_DELETE,
    "edit": EDIT_ROWS,
    "generate": GENERATE_ROWS,
    "enhance": ENHANCE_ROWS,
    "remix": REMIX_ROWS,
    "jobs": JOBS,
}
ROWS = [(group, row) for group, rows in TABLE.items() for row in rows]

# --- what the service takes (boundaries): each must succeed ---------------------------------------------------

ACCEPTED: list[Row] = [
    Row(
        "fast, 5 images",
        "POST",
        "/profiles/add",
        {"image_urls": urls(5), "training_tier": "fast"},
        200,
        None,
        "",
        "[R-ADD], [PROF], [RN-0.5]: fast 5-10",
    ),
    Row(
        "fast, 10 images",
        "POST",
        "/profiles/add",
        {"image_urls": urls(10), "training_tier": "fast"},
        200,
        None,
        "",
        "[R-ADD], [PROF], [RN-0.5]: fast 5-10",
    ),
    Row(
        "standard, 10 images",
        "POST",
        "/profiles/add",
        {"image_urls": urls(10)},
        200,
        None,
        "",
        "[R-ADD]: standard 10-50",
    ),
    Row(
        "standard, 50 images",
        "POST",
        "/profiles/add",
        {"image_urls": urls(50), "training_tier": "standard"},
        200,
        None,
        "",
        "[R-ADD]: standard 10-50",
    ),
    Row(
        "tag 128 chars",
        "POST",
        "/profiles/add",
        {"image_urls": urls(10), "tag": "t" * 128},
        200,
        None,
        "",
        "[R-ADD]: tag 1-128",
    ),
    Row(
        "tag 1 char", "POST", "/profiles/add", {"image_urls": urls(10), "tag": "a"}, 200, None, "", "[R-ADD]: tag 1-128"
    ),
    Row(
        "tag null",
        "POST",
        "/profiles/add",
        {"image_urls": urls(10), "tag": None},
        200,
        None,
        "",
        "[R-ADD]: tag string | null",
    ),
    Row(
        "local PNG and HEIC",
        "POST",
        "/profiles/add",
        {"image_urls": [*urls(8), "$LOCAL/photo.png", "$LOCAL/photo.heic"]},
        200,
        None,
        "",
        "[R-ADD]: PNG and HEIC are accepted training formats",
    ),
    Row(
        "own output as training image",
        "POST",
        "/profiles/add",
        {"image_urls": [*urls(9), "$OUTPUT"]},
        200,
        None,
        "",
        "[R-ADD]: reachable image URLs",
    ),
    Row("ids tag 128", "GET", "/profiles/ids", None, 200, None, "", "[R-IDS]: tag 1-128", query={"tag": "t" * 128}),
    Row(
        "picture READY",
        "GET",
        "/profiles/$READY/profile_picture",
        None,
        200,
        None,
        "",
        "api-decisions D16: JPEG once READY",
    ),
    Row(
        "edit 10 images, 4 outputs",
        "POST",
        "/edit",
        {"prompt": "p", "images": [PNG] * 10, "num_output_images": 4},
        200,
        None,
        "",
        "[R-EDIT]: max 10 images, 1-4 outputs",
    ),
    Row(
        "edit JPEG, WebP, HEIC, HEIF",
        "POST",
        "/edit",
        {"images": [JPEG, WEBP, HEIC, HEIF]},
        200,
        None,
        "",
        "[R-EDIT], [RN-0.1.1]: JPEG, PNG, WebP, HEIC/HEIF",
    ),
    Row(
        "edit base64 with line breaks",
        "POST",
        "/edit",
        {"images": [PNG[:40] + "\n" + PNG[40:]]},
        200,
        None,
        "",
        "[R-EDIT]: base64 (MIME line breaks are tolerated)",
    ),
    Row(
        "edit local PNG and HEIC",
        "POST",
        "/edit",
        {"images": ["$LOCAL/photo.png", "$LOCAL/photo.heic"]},
        200,
        None,
        "",
        "[R-EDIT]: image URLs",
    ),
    Row("edit remote URL", "POST", "/edit", {"images": [URL]}, 200, None, "", "[R-EDIT]: image URLs"),
    Row("edit own output", "POST", "/edit", {"images": ["$OUTPUT"]}, 200, None, "", "[R-EDIT]: image URLs"),
    Row(
        "edit READY profile both ways",
        "POST",
        "/edit",
        {"prompt": "[[$READY]] smiling", "images": [PNG], "profile_ids": ["$READY"]},
        200,
        None,
        "",
        "[QS], [BP]: the same id in both is harmless",
    ),
    Row("generate empty body", "POST", "/generate", {}, 200, None, "", '[R-GEN]: prompt defaults to ""'),
    Row(
        "generate gpt-image-2 4K low",
        "POST",
        "/generate",
        {"prompt": "p", "base_model": "gpt-image-2", "resolution": "4K", "quality": "low"},
        200,
        None,
        "",
        "[BM]: gpt-image-2 1K-4K with quality",
    ),
    Row(
        "generate quality null on nb2",
        "POST",
        "/generate",
        {"prompt": "p", "quality": None},
        200,
        None,
        "",
        "[BM] quality: enum | null",
    ),
    Row(
        "generate qwen 2K",
        "POST",
        "/generate",
        {"base_model": "qwen-image-2", "resolution": "2K"},
        200,
        None,
        "",
        "[BM]",
    ),
    Row("generate flux 2K", "POST", "/generate", {"base_model": "flux-2", "resolution": "2K"}, 200, None, "", "[BM]"),
    Row(
        "generate reve 1K 9:16, 4 outputs",
        "POST",
        "/generate",
        {"base_model": "reve", "resolution": "1K", "aspect_ratio": "9:16", "num_output_images": 4},
        200,
        None,
        "",
        "[BM], [R-GEN]",
    ),
    Row(
        "generate async, longest key, callback",
        "POST",
        "/generate",
        {**GEN, **ASYNC, "client_request_id": "Az09._:-" * 16, "callback_url": "https://example.com/hook"},
        202,
        None,
        "",
        "[RN-0.7], [ASYNC]; api-decisions D1, D4",
    ),
    Row(
        "enhance WebP, prompt, jpg",
        "POST",
        "/enhance",
        {"image": WEBP, "prompt": "p", "output_format": "jpg"},
        200,
        None,
        "",
        "[R-ENH], [RN-0.2.1]",
    ),
    Row(
        "enhance HEIC, 4 outputs, urls",
        "POST",
        "/enhance",
        {"image": HEIC, "num_output_images": 4, "response_mode": "urls"},
        200,
        None,
        "",
        "[R-ENH]",
    ),
    Row(
        "remix JPEG and HEIC, READY profile",
        "POST",
        "/remix",
        {"input_image": JPEG, "reference_image": HEIC, "profile_ids": ["$READY"]},
        200,
        None,
        "",
        "[RMX]",
    ),
]

PROFILE_STATES = {
    "$READY": "READY",
    "$TRAINING": "IN_PROGRESS",
    "$QUEUING": "QUEUING",
    "$VALIDATING": "VALIDATING",
    "$ERROR": "ERROR",
    "$INACTIVE": "INACTIVE",
}
PLACEHOLDER = re.compile(
    r"\$(?:READY|TRAINING|QUEUING|VALIDATING|ERROR|INACTIVE|DELETED|OUTPUT_BAD_TOKEN|"
    r"OUTPUT_EXPIRED|OUTPUT|LOCAL)"
)


# --- running a row ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import base64

    folder: Path = tmp_path_factory.mktemp("conformance-files")
    for name, data in LOCAL_FILES.items():
        (folder / name).write_bytes(base64.b64decode(data))
    with PhotoServer(folder) as server:
        yield server.base_url.rstrip("/")


class Runner:
    def __init__(self, emu: PhotaEmulator, session: requests.Session, local: str) -> None:
        self.emu = emu
        self.session = session
        self.local = local
        self.good = {KEY_HEADER: emu.api_key}
        self.before: tuple[int, int, int] = (0, 0, 0)  # ledger lines, jobs, profiles once the setup is done

    def _profile(self, status: str | None) -> str:
        response = self.session.post(
            self.emu.base_url + PREFIX + "/profiles/add", json={"image_urls": urls(10)}, headers=self.good, timeout=30
        )
        assert response.status_code == 200, response.text
        profile_id = str(response.json()["profile_id"])
        if status is None:
            self.session.delete(self.emu.base_url + PREFIX + "/profiles/" + profile_id, headers=self.good, timeout=30)
        else:
            self.emu.set_profile_outcome(profile_id, status)
        return profile_id

    def _output(self) -> str:
        response = self.session.post(
            self.emu.base_url + PREFIX + "/generate", json={"response_mode": "urls"}, headers=self.good, timeout=30
        )
        assert response.status_code == 200, response.text
        return str(response.json()["download_urls"][0])

    def values(self, text: str) -> dict[str, str]:
        """Fill every placeholder the row uses (profiles first: making an output advances nothing)."""
        found = set(PLACEHOLDER.findall(text))
        values: dict[str, str] = {"$LOCAL": self.local}
        for name, status in PROFILE_STATES.items():
            if name in found:
                values[name] = self._profile(status)
        if "$DELETED" in found:
            values["$DELETED"] = self._profile(None)
        if "$OUTPUT" in found:
            values["$OUTPUT"] = self._output()
        if "$OUTPUT_BAD_TOKEN" in found:
            values["$OUTPUT_BAD_TOKEN"] = re.sub(r"token=[0-9a-f]+", "token=" + "0" * 64, self._output())
        if "$OUTPUT_EXPIRED" in found:
            values["$OUTPUT_EXPIRED"] = self._output()
            self.emu.advance(24 * 3600 + 60)  # [RN-0.2.0]: links expire after 24 h
        return values

    def send(self, row: Row) -> tuple[requests.Response, dict[str, str]]:
        text = json.dumps([row.path, row.body if not isinstance(row.body, bytes) else None, row.query])
        values = self.values(text)

        def fill(value: Any) -> Any:
            if isinstance(value, str):
                return PLACEHOLDER.sub(lambda match: values[match.group(0)], value)
            if isinstance(value, list):
                return [fill(item) for item in value]
            if isinstance(value, dict):
                return {key: fill(item) for key, item in value.items()}
            return value

        if row.setup == "credit:0":
            self.emu.set_credit(0.0)
        self.before = (len(self.emu.ledger), len(self.emu.jobs), len(self.emu.profiles))
        headers = {"good": self.good, "missing": {}, "wrong": {KEY_HEADER: "not-the-key"}}[row.key]
        url = self.emu.base_url + PREFIX + fill(row.path)
        if isinstance(row.body, bytes):
            response = self.session.request(
                row.method, url, data=row.body, headers={**headers, "Content-Type": "application/json"}, timeout=60
            )
        else:
            body = fill(row.body)
            response = self.session.request(
                row.method, url, json=body, params=fill(row.query), headers=headers, timeout=60
            )
        return response, values


@pytest.fixture
def runner(phota_emulator: PhotaEmulator, local_files: str) -> Iterator[Runner]:
    with requests.Session() as session:
        yield Runner(phota_emulator, session, local_files)


def _field_of(loc: list[Any]) -> str:
    """The top field a D9 ``loc`` names (``["body", "images[1]"]`` and ``["body", "images", 1]`` name images)."""
    return str(loc[1]).split("[")[0] if len(loc) > 1 else ""


@pytest.mark.parametrize(("group", "row"), ROWS, ids=[f"{group}: {row.name}" for group, row in ROWS])
def test_refusal(runner: Runner, group: str, row: Row) -> None:
    emu = runner.emu
    response, _ = runner.send(row)
    assert response.status_code == row.status, f"{row.source}\n{response.status_code} {response.text[:500]}"
    assert response.headers.get("X-Request-Id"), "api-decisions D17"
    body = response.json()
    if row.type == D9:
        assert isinstance(body.get("detail"), list), body
        assert body["detail"], body
        for item in body["detail"]:
            assert isinstance(item.get("loc"), list), item
            assert item["loc"][0] in ("body", "query", "path"), item
            assert isinstance(item.get("msg"), str), item
            assert isinstance(item.get("type"), str), item
        fields = [_field_of(item["loc"]) for item in body["detail"]]
        assert row.field.split("[")[0] in fields, f"{row.source}: expected {row.field!r} in {fields}"
    else:
        assert isinstance(body.get("detail"), str), body
        assert body["detail"], body
        if row.type is not None:
            assert body.get("type") == row.type, f"{row.source}\n{body}"
            assert body.get("request_id") == response.headers["X-Request-Id"], "api-decisions D8, D17"
        if row.field:
            assert row.field in body["detail"], f"{row.source}: {row.field!r} not named in {body['detail']!r}"
    # a refused request is not billed and leaves nothing behind (the setup's profiles and outputs may be billed)
    assert (len(emu.ledger), len(emu.jobs), len(emu.profiles)) == runner.before, f"billed or kept: {emu.ledger}"


@pytest.mark.parametrize("row", ACCEPTED, ids=[row.name for row in ACCEPTED])
def test_accepted(runner: Runner, row: Row) -> None:
    response, _ = runner.send(row)
    assert response.status_code == row.status, f"{row.source}\n{response.status_code} {response.text[:500]}"


def test_one_byte_text_enhance_is_refused_and_not_billed(runner: Runner) -> None:
    """The new-user run of the issue: an enhance whose input was a one-byte text file."""
    response = runner.session.post(
        runner.emu.base_url + PREFIX + "/enhance", json={"image": ONE_BYTE_TEXT}, headers=runner.good, timeout=30
    )
    assert response.status_code == 400
    assert response.json()["type"] == "INVALID_REQUEST"
    assert response.json()["detail"].startswith("image:")
    assert runner.emu.ledger == []
    assert runner.emu.total_charged_usd() == 0


def test_async_submit_with_a_non_image_is_refused_at_once(runner: Runner) -> None:
    response = runner.session.post(
        runner.emu.base_url + PREFIX + "/enhance",
        json={"image": TEXT, **ASYNC, "client_request_id": "k1"},
        headers=runner.good,
        timeout=30,
    )
    assert response.status_code == 400
    assert runner.emu.jobs == {}
    assert runner.emu.ledger == []


def test_every_row_cites_a_source_page_or_decision() -> None:
    tags = {
        "QS",
        "AUTH",
        "REF",
        "ASYNC",
        "HOME",
        "PROF",
        "BP",
        "UC",
        "BM",
        "RMX",
        "OAS",
        "R-ADD",
        "R-IDS",
        "R-STATUS",
        "R-DEL",
        "R-EDIT",
        "R-GEN",
        "R-ENH",
    }
    for row in [*(row for _, row in ROWS), *ACCEPTED]:
        cited = set(re.findall(r"\[([A-Z-]+?)(?:-\d[\d.]*)?\]", row.source))
        assert (cited & (tags | {"RN"})) or "api-decisions D" in row.source, row
        assert "SPEC" not in row.source


def test_every_endpoint_has_rows() -> None:
    paths = {re.sub(r"\$[A-Z_]+|prof_\w+|job_\w+", "{id}", row.path) for _, row in ROWS}
    assert paths >= {
        "/profiles/add",
        "/profiles/ids",
        "/profiles/{id}/status",
        "/profiles/{id}/profile_picture",
        "/profiles/{id}",
        "/edit",
        "/generate",
        "/enhance",
        "/remix",
        "/jobs/{id}",
        "/webhook-secret",
    }
