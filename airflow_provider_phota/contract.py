"""The Phota API contract, written once.

Everything the client and the emulator must agree on lives here: paths, headers, enums, field rules, status
sets, request builders, response parsers, and the decisions taken where the public docs are silent, each cited
as "api-decisions D<n>" (``docs/api-decisions.md``). The sync hook, the async client, the operators and the
emulator all import this module, so a rule is never written twice. It imports nothing from Airflow and no HTTP
client, so it is cheap to import at DAG-parse time.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import quote, urlsplit

# --- transport -----------------------------------------------------------------------------------------------

DEFAULT_BASE_URL = "https://api.photalabs.com"
API_PREFIX = "/v1/phota"
API_KEY_HEADER = "X-API-Key"
REQUEST_ID_HEADER = "X-Request-Id"  # on every response (api-decisions D17)
SIGNATURE_HEADER = "X-Phota-Signature"  # api-decisions D6
SIGNATURE_PREFIX = "sha256="  # api-decisions D6
SIGNED_URL_LIFETIME_SECONDS = 24 * 3600  # signed download URLs expire after 24 h
SERVER_TIME_CAP_SECONDS = 600  # the service ends a synchronous call after 600 s (504, refunded)


class Endpoint(StrEnum):
    """The four studio endpoints; the value is the path below the API prefix."""

    EDIT = "edit"
    GENERATE = "generate"
    ENHANCE = "enhance"
    REMIX = "remix"


class ProfileStatus(StrEnum):
    VALIDATING = "VALIDATING"
    QUEUING = "QUEUING"
    IN_PROGRESS = "IN_PROGRESS"
    READY = "READY"
    ERROR = "ERROR"
    INACTIVE = "INACTIVE"


# The training order (api-decisions D15); INACTIVE is not usable and not expected to change, so a waiter fails.
PROFILE_TRAINING_ORDER: tuple[ProfileStatus, ...] = (
    ProfileStatus.VALIDATING,
    ProfileStatus.QUEUING,
    ProfileStatus.IN_PROGRESS,
)
PROFILE_SUCCESS_STATUSES = frozenset({ProfileStatus.READY})
PROFILE_FAILED_STATUSES = frozenset({ProfileStatus.ERROR, ProfileStatus.INACTIVE})
# A profile in one of these is worth reusing instead of paying for a second training.
PROFILE_REUSABLE_STATUSES = frozenset(PROFILE_TRAINING_ORDER) | PROFILE_SUCCESS_STATUSES


class JobStatus(StrEnum):
    """Async job states (api-decisions D3). Clients treat any other value as "not finished yet"."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


JOB_TERMINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED})


class ErrorType(StrEnum):
    """The ``type`` of an error body (api-decisions D8)."""

    INVALID_REQUEST = "INVALID_REQUEST"
    CONTENT_MODERATION = "CONTENT_MODERATION"
    UNAUTHORIZED = "UNAUTHORIZED"
    FORBIDDEN = "FORBIDDEN"
    INSUFFICIENT_CREDIT = "INSUFFICIENT_CREDIT"
    NOT_FOUND = "NOT_FOUND"
    VALIDATION_ERROR = "VALIDATION_ERROR"
    RATE_LIMITED = "RATE_LIMITED"
    INTERNAL = "INTERNAL"
    UNAVAILABLE = "UNAVAILABLE"
    TIMEOUT = "TIMEOUT"
    JOB_FAILED = "JOB_FAILED"


# --- enums and limits -------------------------------------------------------------------------------------------

ASPECT_RATIOS: tuple[str, ...] = ("auto", "1:1", "3:4", "4:3", "9:16", "16:9")
RESOLUTIONS: tuple[str, ...] = ("1K", "2K", "4K")
OUTPUT_FORMATS: tuple[str, ...] = ("png", "jpg")
RESPONSE_MODES: tuple[str, ...] = ("bytes", "urls")
QUALITIES: tuple[str, ...] = ("auto", "low", "medium", "high")
QUALITY_BASE_MODEL = "gpt-image-2"  # quality only with this model (api-decisions D11)
DEFAULT_BASE_MODEL = "nb2"
BASE_MODEL_RESOLUTIONS: dict[str, tuple[str, ...]] = {
    "nb2": ("1K", "2K", "4K"),
    "gpt-image-2": ("1K", "2K", "4K"),
    "qwen-image-2": ("1K", "2K"),
    "flux-2": ("1K", "2K"),
    "reve": ("1K",),
}
BASE_MODELS: tuple[str, ...] = tuple(BASE_MODEL_RESOLUTIONS)
TRAINING_TIER_IMAGE_COUNTS: dict[str, tuple[int, int]] = {"standard": (10, 50), "fast": (5, 10)}
TRAINING_TIERS: tuple[str, ...] = tuple(TRAINING_TIER_IMAGE_COUNTS)
TRAINING_IMAGES_SCHEMA_RANGE = (5, 50)  # the schema's overall range; the tier narrows it (400 when it does)
TAG_LENGTH = (1, 128)
NUM_OUTPUT_IMAGES_RANGE = (1, 4)
MAX_EDIT_IMAGES = 10
CLIENT_REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # api-decisions D4
PROFILE_TOKEN_PATTERN = re.compile(r"\[\[([^\[\]]+)\]\]")  # inline [[profile_id]] in prompts
RESOLUTION_LONG_SIDE = {"1K": 1024, "2K": 2048, "4K": 4096}  # api-decisions D14
FIXED_RESOLUTION = "2K"  # /enhance and /remix always produce 2K (api-decisions D14)

ASYNC_FIELDS = frozenset({"async", "callback_url", "client_request_id"})
_OUTPUT_FIELDS = frozenset({"num_output_images", "output_format", "response_mode"})
_MODEL_FIELDS = frozenset({"aspect_ratio", "resolution", "base_model", "quality"})

# Fields each studio endpoint accepts. Anything else is rejected with 422 (api-decisions D12).
ENDPOINT_FIELDS: dict[Endpoint, frozenset[str]] = {
    Endpoint.EDIT: frozenset({"prompt", "images", "profile_ids"}) | _OUTPUT_FIELDS | _MODEL_FIELDS | ASYNC_FIELDS,
    Endpoint.GENERATE: frozenset({"prompt"}) | _OUTPUT_FIELDS | _MODEL_FIELDS | ASYNC_FIELDS,
    Endpoint.ENHANCE: frozenset({"image", "profile_ids", "prompt"}) | _OUTPUT_FIELDS | ASYNC_FIELDS,
    Endpoint.REMIX: frozenset({"input_image", "reference_image", "profile_ids", "prompt"})
    | _OUTPUT_FIELDS
    | ASYNC_FIELDS,
}
# Required fields per endpoint; /edit needs at least one image.
ENDPOINT_REQUIRED: dict[Endpoint, tuple[str, ...]] = {
    Endpoint.EDIT: ("images",),
    Endpoint.GENERATE: (),
    Endpoint.ENHANCE: ("image",),
    Endpoint.REMIX: ("input_image", "reference_image"),
}
# The single-image fields of each endpoint, for callers that resolve files into base64.
IMAGE_FIELDS: dict[Endpoint, tuple[str, ...]] = {
    Endpoint.EDIT: ("images",),
    Endpoint.GENERATE: (),
    Endpoint.ENHANCE: ("image",),
    Endpoint.REMIX: ("input_image", "reference_image"),
}


# --- validation -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Violation:
    """One broken rule: the field, what is wrong, what is allowed, and the HTTP status the service answers."""

    field: str
    message: str
    allowed: str = ""
    status: Literal[400, 422] = 422

    def describe(self) -> str:
        text = f"{self.field}: {self.message}"
        return f"{text} (allowed: {self.allowed})" if self.allowed else text


def _choices(values: Iterable[str]) -> str:
    return ", ".join(repr(v) for v in values)


def _check_enum(name: str, value: Any, allowed: Sequence[str], status: Literal[400, 422] = 422) -> list[Violation]:
    if value is None or value in allowed:
        return []
    return [Violation(name, f"{value!r} is not a valid value", _choices(allowed), status)]


def _check_int_range(name: str, value: Any, bounds: tuple[int, int]) -> list[Violation]:
    low, high = bounds
    if value is None:
        return []
    if isinstance(value, bool) or not isinstance(value, int):
        return [Violation(name, f"{value!r} is not an integer", f"an integer from {low} to {high}")]
    if not low <= value <= high:
        return [Violation(name, f"{value} is out of range", f"an integer from {low} to {high}")]
    return []


def _check_text(name: str, value: Any, *, required: bool = False) -> list[Violation]:
    if value is None:
        return [Violation(name, "is required", "a non-empty string")] if required else []
    if not isinstance(value, str):
        return [Violation(name, f"must be a string, got {type(value).__name__}", "a string")]
    if required and not value.strip():
        return [Violation(name, "must not be empty", "a non-empty string")]
    return []


IMAGE_FORMATS = "a JPEG, PNG, WebP or HEIC image"  # what the studio endpoints take [R-EDIT, R-ENH]
_HEIC_BRANDS = frozenset({b"heic", b"heix", b"mif1", b"msf1", b"hevc"})


def image_format(head: bytes) -> str | None:
    """``"jpeg"``, ``"png"``, ``"webp"`` or ``"heic"`` from a file's first bytes; ``None`` for anything else."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG"):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp" and head[8:12] in _HEIC_BRANDS:
        return "heic"
    return None


def base64_head(value: str) -> bytes | None:
    """The first decoded bytes of a base64 string, or ``None`` when its start is not base64."""
    head = "".join(value[:96].split())[:64]
    head = head[: len(head) - len(head) % 4]
    try:
        return base64.b64decode(head, validate=True)
    except (binascii.Error, ValueError):
        return None


def _check_image_value(name: str, value: Any) -> list[Violation]:
    """An image is a base64 string or an http(s) URL; the service detects which."""
    if not isinstance(value, str) or not value.strip():
        return [Violation(name, "must be a non-empty string", "a base64 image or an http(s) URL")]
    if "://" in value[:16] and urlsplit(value).scheme not in ("http", "https"):
        return [Violation(name, f"unsupported URL scheme in {value[:40]!r}", "a base64 image or an http(s) URL")]
    if value.startswith(("http://", "https://")):
        if not urlsplit(value).netloc:
            return [Violation(name, f"{value[:60]!r} is not a valid URL", "an http(s) URL with a host")]
        return []
    head = base64_head(value)
    if head is None or image_format(head) is None:
        # a well-formed string the service reads and refuses: 400, as for any input it cannot use
        return [Violation(name, "the base64 data is not an image", IMAGE_FORMATS, 400)]
    return []


def _check_string_list(name: str, value: Any, *, item_name: str) -> list[Violation]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, list | tuple):
        return [Violation(name, f"must be a list, got {type(value).__name__}", "a list of strings")]
    problems = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            problems.append(Violation(f"{name}[{index}]", f"{item!r} is not a valid {item_name}", "a non-empty string"))
    return problems


ID_RULE = "a non-empty string without '/', not '.' or '..'"


def validate_id(name: str, value: Any) -> list[Violation]:
    """A profile or job id. ``.`` and ``..`` would be dot segments of the URL path, which HTTP clients resolve away:
    ``GET /profiles/../status`` is ``GET /status``."""
    if isinstance(value, str) and value.strip() not in ("", ".", "..") and "/" not in value:
        return []
    return [Violation(name, f"{value!r} is not a valid id", ID_RULE)]


def is_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and " " not in value


def validate_tag(tag: Any, *, name: str = "tag") -> list[Violation]:
    if tag is None:
        return []
    low, high = TAG_LENGTH
    if not isinstance(tag, str) or not low <= len(tag) <= high:
        return [Violation(name, f"{tag!r} is not a valid tag", f"a string of {low} to {high} characters")]
    return []


def validate_client_request_id(value: Any) -> list[Violation]:
    if value is None:
        return []
    if not isinstance(value, str) or not CLIENT_REQUEST_ID_PATTERN.fullmatch(value):
        return [
            Violation(
                "client_request_id",
                f"{value!r} is not a valid idempotency key",
                "1 to 128 characters of A-Z a-z 0-9 . _ : -",
            )
        ]
    return []


def validate_create_profile(body: Mapping[str, Any]) -> list[Violation]:
    """Rules of ``POST /profiles/add``; the count per training tier is a 400, the schema range a 422."""
    problems: list[Violation] = []
    unknown = set(body) - {"image_urls", "tag", "training_tier"}
    problems += [
        Violation(name, "is not accepted by /profiles/add", "image_urls, tag, training_tier")
        for name in sorted(unknown)
    ]
    tier = body.get("training_tier") or "standard"
    problems += _check_enum("training_tier", body.get("training_tier"), TRAINING_TIERS)
    problems += validate_tag(body.get("tag"))
    urls = body.get("image_urls")
    if urls is None:
        return [*problems, Violation("image_urls", "is required", "a list of public http(s) image URLs")]
    if isinstance(urls, str) or not isinstance(urls, list | tuple):
        return [*problems, Violation("image_urls", f"must be a list, got {type(urls).__name__}", "a list of URLs")]
    for index, url in enumerate(urls):
        if not is_http_url(url):
            problems.append(Violation(f"image_urls[{index}]", f"{url!r} is not a URL", "a public http(s) image URL"))
    schema_low, schema_high = TRAINING_IMAGES_SCHEMA_RANGE
    if not schema_low <= len(urls) <= schema_high:
        problems.append(
            Violation("image_urls", f"{len(urls)} images given", f"{schema_low} to {schema_high} image URLs")
        )
    elif isinstance(tier, str) and tier in TRAINING_TIER_IMAGE_COUNTS:
        low, high = TRAINING_TIER_IMAGE_COUNTS[tier]
        if not low <= len(urls) <= high:
            problems.append(
                Violation(
                    "image_urls",
                    f"{len(urls)} images given for training_tier {tier!r}",
                    f"{low} to {high} image URLs for {tier!r} ("
                    + ", ".join(f"{t}: {a}-{b}" for t, (a, b) in TRAINING_TIER_IMAGE_COUNTS.items())
                    + ")",
                    400,
                )
            )
    return problems


def validate_image_request(endpoint: Endpoint | str, body: Mapping[str, Any]) -> list[Violation]:
    """Every rule of a studio request body, in the order the service would check them."""
    endpoint = Endpoint(endpoint)
    accepted = ENDPOINT_FIELDS[endpoint]
    problems = [
        Violation(name, f"is not accepted by /{endpoint.value}", _choices(sorted(accepted)))
        for name in sorted(set(body) - accepted)
    ]
    for name in ENDPOINT_REQUIRED[endpoint]:
        if body.get(name) in (None, [], ""):
            problems.append(Violation(name, "is required", "a base64 image or an http(s) URL"))
    problems += _check_text("prompt", body.get("prompt"))
    if endpoint is Endpoint.EDIT and body.get("images") is not None:
        images = body["images"]
        if isinstance(images, str) or not isinstance(images, list | tuple):
            problems.append(Violation("images", f"must be a list, got {type(images).__name__}", "a list of images"))
        else:
            if len(images) > MAX_EDIT_IMAGES:
                problems.append(Violation("images", f"{len(images)} images given", f"1 to {MAX_EDIT_IMAGES} images"))
            for index, image in enumerate(images):
                problems += _check_image_value(f"images[{index}]", image)
    for name in ("image", "input_image", "reference_image"):
        if body.get(name) is not None:
            problems += _check_image_value(name, body[name])
    profile_ids = body.get("profile_ids")
    problems += _check_string_list("profile_ids", profile_ids, item_name="profile id")
    if not problems and isinstance(profile_ids, list | tuple):
        problems += [v for i, item in enumerate(profile_ids) for v in validate_id(f"profile_ids[{i}]", item)]
    problems += _check_int_range("num_output_images", body.get("num_output_images"), NUM_OUTPUT_IMAGES_RANGE)
    problems += _check_enum("aspect_ratio", body.get("aspect_ratio"), ASPECT_RATIOS)
    problems += _check_enum("resolution", body.get("resolution"), RESOLUTIONS)
    problems += _check_enum("output_format", body.get("output_format"), OUTPUT_FORMATS)
    problems += _check_enum("response_mode", body.get("response_mode"), RESPONSE_MODES)
    problems += _check_enum("quality", body.get("quality"), QUALITIES)
    problems += _check_model_combination(body)
    problems += _check_async_fields(body)
    return problems


def _check_model_combination(body: Mapping[str, Any]) -> list[Violation]:
    """An unknown model is a 422; a known model with an unsupported resolution or quality a 400 (api-decisions D11)."""
    model = body.get("base_model")
    if model is not None and (not isinstance(model, str) or model not in BASE_MODEL_RESOLUTIONS):
        return [Violation("base_model", f"{model!r} is not a known model", _choices(BASE_MODELS))]
    model = model or DEFAULT_BASE_MODEL
    problems = []
    resolution = body.get("resolution")
    supported = BASE_MODEL_RESOLUTIONS[model]
    if resolution in RESOLUTIONS and resolution not in supported:
        problems.append(
            Violation(
                "resolution", f"{resolution!r} is not supported by base_model {model!r}", _choices(supported), 400
            )
        )
    if body.get("quality") is not None and model != QUALITY_BASE_MODEL:
        problems.append(
            Violation(
                "quality", f"is only accepted with base_model {QUALITY_BASE_MODEL!r}, not {model!r}", "omit it", 400
            )
        )
    return problems


def _check_async_fields(body: Mapping[str, Any]) -> list[Violation]:
    problems: list[Violation] = []
    is_async = body.get("async")
    if is_async is not None and not isinstance(is_async, bool):
        problems.append(Violation("async", f"{is_async!r} is not a boolean", "true, false"))
    if is_async is True and body.get("response_mode") != "urls":
        # api-decisions D5
        problems.append(Violation("response_mode", "async requests must ask for download URLs", "'urls'", 400))
    callback_url = body.get("callback_url")
    if callback_url is not None:
        if is_async is not True:
            problems.append(Violation("callback_url", "is only allowed with async: true", "omit it", 400))
        if not (is_http_url(callback_url) and urlsplit(callback_url).scheme == "https"):
            problems.append(Violation("callback_url", f"{callback_url!r} is not an HTTPS URL", "an https:// URL"))
    problems += validate_client_request_id(body.get("client_request_id"))
    return problems


# --- requests -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiRequest:
    """One HTTP request to the API, transport-neutral: the sync and async clients both send these."""

    method: Literal["GET", "POST", "DELETE"]
    path: str  # below the base URL, starting with the API prefix
    json: dict[str, Any] | None = None
    params: dict[str, str] | None = None
    binary: bool = False  # the response body is raw bytes (the profile picture), not JSON


def compact(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Drop unset options: a field the caller did not set is omitted, never sent as null."""
    return {name: value for name, value in fields.items() if value is not None}


def _api_path(*parts: str) -> str:
    return API_PREFIX + "".join("/" + quote(part, safe="") for part in parts)


def list_profile_ids_request(tag: str | None = None) -> ApiRequest:
    return ApiRequest("GET", _api_path("profiles", "ids"), params=compact({"tag": tag}) or None)


def create_profile_request(image_urls: Sequence[str], *, tag: str | None, training_tier: str | None) -> ApiRequest:
    body = compact({"image_urls": list(image_urls), "tag": tag, "training_tier": training_tier})
    return ApiRequest("POST", _api_path("profiles", "add"), json=body)


def profile_status_request(profile_id: str) -> ApiRequest:
    return ApiRequest("GET", _api_path("profiles", profile_id, "status"))


def profile_picture_request(profile_id: str) -> ApiRequest:
    return ApiRequest("GET", _api_path("profiles", profile_id, "profile_picture"), binary=True)


def delete_profile_request(profile_id: str) -> ApiRequest:
    return ApiRequest("DELETE", _api_path("profiles", profile_id))


def image_request(endpoint: Endpoint | str, body: Mapping[str, Any]) -> ApiRequest:
    """A studio request: synchronous, or an async job submit when ``body`` comes from :func:`job_body`."""
    return ApiRequest("POST", _api_path(Endpoint(endpoint).value), json=compact(body))


def job_request(job_id: str) -> ApiRequest:
    return ApiRequest("GET", _api_path("jobs", job_id))


def webhook_secret_request() -> ApiRequest:
    return ApiRequest("GET", _api_path("webhook-secret"))


def job_body(
    endpoint: Endpoint | str,
    options: Mapping[str, Any],
    *,
    client_request_id: str,
    callback_url: str | None = None,
) -> dict[str, Any]:
    """The body of an async submit: the options plus the fields async mode needs (api-decisions D4, D5)."""
    return compact(
        {
            **options,
            "async": True,
            "response_mode": "urls",
            "client_request_id": client_request_id,
            "callback_url": callback_url,
        }
    )


# --- responses ----------------------------------------------------------------------------------------------------


class MalformedResponse(ValueError):
    """A 2xx body that does not have the documented shape."""


@dataclass(frozen=True)
class ProfileState:
    profile_id: str
    status: str  # a ProfileStatus value, or an unknown string from a newer API
    message: str = ""

    @property
    def is_ready(self) -> bool:
        return self.status in PROFILE_SUCCESS_STATUSES

    @property
    def is_failed(self) -> bool:
        return self.status in PROFILE_FAILED_STATUSES

    @property
    def is_training(self) -> bool:
        return not (self.is_ready or self.is_failed)


@dataclass(frozen=True)
class ImageResult:
    """An image response. ``images`` holds decoded bytes in bytes mode; ``download_urls`` the URLs in urls mode."""

    images: list[bytes] = field(default_factory=list, repr=False)
    download_urls: list[str] = field(default_factory=list)
    known_subjects: dict[str, int] = field(default_factory=dict)
    request_id: str | None = None

    @property
    def count(self) -> int:
        return len(self.images) or len(self.download_urls)


@dataclass(frozen=True)
class JobHandle:
    job_id: str
    status: str
    poll_url: str = ""


@dataclass(frozen=True)
class JobState:
    """The state of an async job (api-decisions D2); ``result`` is filled once SUCCEEDED, ``error_*`` once FAILED."""

    job_id: str
    status: str
    endpoint: str = ""
    result: ImageResult | None = None
    error_type: str | None = None
    error_message: str | None = None
    created_at: str | None = None
    updated_at: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in JOB_TERMINAL_STATUSES

    @property
    def succeeded(self) -> bool:
        return self.status == JobStatus.SUCCEEDED


def _require(body: Any, name: str, kind: type | tuple[type, ...] = str) -> Any:
    if not isinstance(body, dict) or not isinstance(body.get(name), kind):
        raise MalformedResponse(f"response has no valid {name!r}: {str(body)[:200]}")
    return body[name]


def parse_profile_ids(body: Any) -> list[str]:
    """``{"profiles": [id, ...]}``; items shaped ``{"profile_id": ...}`` are accepted too (api-decisions D7)."""
    items = _require(body, "profiles", list)
    ids = []
    for item in items:
        if isinstance(item, str):
            ids.append(item)
        elif isinstance(item, dict) and isinstance(item.get("profile_id"), str):
            ids.append(item["profile_id"])
        else:
            raise MalformedResponse(f"unexpected profile item {item!r}")
    return ids


def parse_profile_id(body: Any) -> str:
    return str(_require(body, "profile_id"))


def parse_profile_state(body: Any) -> ProfileState:
    return ProfileState(
        profile_id=_require(body, "profile_id"),
        status=_require(body, "status"),
        message=body.get("message") or "",
    )


def parse_image_result(body: Any, *, request_id: str | None = None) -> ImageResult:
    """Parse a decoded image response: bytes mode's base64 ``images`` are decoded (strictly: a corrupt string is
    a malformed answer, retried, never a broken image), urls mode's ``download_urls`` kept as they are."""
    if not isinstance(body, dict):
        raise MalformedResponse(f"image response is not an object: {str(body)[:200]}")
    images = body.get("images") or []
    urls = body.get("download_urls") or []
    subjects = body.get("known_subjects")
    counts = subjects.get("counts") if isinstance(subjects, dict) else None
    if not isinstance(images, list) or not isinstance(urls, list) or not isinstance(counts, dict):
        raise MalformedResponse(f"image response lacks images/download_urls/known_subjects: {str(body)[:200]}")
    try:
        return ImageResult(
            images=[base64.b64decode(item, validate=True) for item in images],
            download_urls=[str(url) for url in urls],
            known_subjects={str(k): int(v) for k, v in counts.items()},
            request_id=request_id,
        )
    except (TypeError, ValueError, binascii.Error) as error:
        raise MalformedResponse(f"image response has an invalid image or count: {error}") from None


def parse_job_handle(body: Any) -> JobHandle:
    """``{"job_id", "status": "QUEUED", "poll_url"}`` (api-decisions D1)."""
    return JobHandle(
        job_id=_require(body, "job_id"),
        status=str(body.get("status") or JobStatus.QUEUED),
        poll_url=str(body.get("poll_url") or ""),
    )


def parse_job_state(body: Any, *, request_id: str | None = None) -> JobState:
    """The job body (api-decisions D2); ``result`` is an urls-mode image response once SUCCEEDED."""
    job_id = _require(body, "job_id")
    status = _require(body, "status")
    result = body.get("result")
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    return JobState(
        job_id=job_id,
        status=status,
        endpoint=str(body.get("endpoint") or ""),
        result=parse_image_result(result, request_id=request_id) if isinstance(result, dict) else None,
        error_type=error.get("type"),
        error_message=error.get("message"),
        created_at=body.get("created_at"),
        updated_at=body.get("updated_at"),
    )


def parse_webhook_secret(body: Any) -> str:
    return str(_require(body, "secret"))  # api-decisions D6


def error_detail(body: Any) -> tuple[str, str | None, str | None]:
    """``(detail, type, request_id)`` of an error body: api-decisions D8, D9 (422 lists) and bare auth errors."""
    if not isinstance(body, dict):
        return (str(body)[:500] if body else "", None, None)
    detail = body.get("detail")
    if isinstance(detail, list):  # FastAPI validation errors (api-decisions D9)
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                parts.append(f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg", "")))
        text = "; ".join(parts)
        return (text, body.get("type") or ErrorType.VALIDATION_ERROR, body.get("request_id"))
    return (str(detail or ""), body.get("type"), body.get("request_id"))


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP date; ``None`` when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


# --- callbacks (api-decisions D6) ------------------------------------------------------------------------------


def sign_callback(secret: str, raw_body: bytes) -> str:
    """The ``X-Phota-Signature`` value of a callback: ``sha256=`` + HMAC-SHA256 hex of the raw body."""
    return SIGNATURE_PREFIX + hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()


def verify_callback_signature(secret: str, raw_body: bytes, signature: str | None) -> bool:
    """Constant-time check of a callback signature against the account's webhook secret (bytes are compared, so
    a header with non-ASCII characters is simply wrong, never an error)."""
    if not signature:
        return False
    expected = sign_callback(secret, raw_body).encode()
    return hmac.compare_digest(expected, signature.strip().encode("utf-8", "replace"))


# --- outputs (api-decisions D14) -------------------------------------------------------------------------------

_RATIOS = {"1:1": (1, 1), "3:4": (3, 4), "4:3": (4, 3), "9:16": (9, 16), "16:9": (16, 9)}


def output_size(
    endpoint: Endpoint | str,
    *,
    resolution: str | None = None,
    aspect_ratio: str | None = None,
    input_size: tuple[int, int] | None = None,
) -> tuple[int, int]:
    """Pixel size of an output: the long side from the resolution, the short side from the aspect ratio.

    ``auto`` keeps the first input's ratio (/edit) or is square (/generate); /enhance and /remix are fixed at 2K and
    keep the input's ratio.
    """
    endpoint = Endpoint(endpoint)
    if endpoint in (Endpoint.ENHANCE, Endpoint.REMIX):
        resolution, aspect_ratio = FIXED_RESOLUTION, "auto"
    long_side = RESOLUTION_LONG_SIDE[resolution or "1K"]
    if aspect_ratio in _RATIOS:
        ratio_w, ratio_h = _RATIOS[aspect_ratio]
    elif input_size and endpoint is not Endpoint.GENERATE:
        ratio_w, ratio_h = input_size
    else:
        ratio_w, ratio_h = 1, 1
    if ratio_w >= ratio_h:
        return long_side, max(1, round(long_side * ratio_h / ratio_w))
    return max(1, round(long_side * ratio_w / ratio_h)), long_side


def referenced_profiles(prompt: str | None, profile_ids: Iterable[str] | None = None) -> list[str]:
    """Profiles a request names: ``[[id]]`` tokens in the prompt merged with ``profile_ids``, in order, once each."""
    found = PROFILE_TOKEN_PATTERN.findall(prompt or "")
    return list(dict.fromkeys([*found, *(profile_ids or [])]))


def file_extension(output_format: str | None) -> str:
    return "jpg" if output_format == "jpg" else "png"
