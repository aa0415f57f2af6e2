"""What the emulator remembers (profiles, jobs, idempotency keys, files, the ledger, recorded traffic, faults) behind
one lock, and the clock tests can move. The HTTP app, the admin API and the in-process handle all go through
:class:`EmulatorState`, so a rule lives in one place."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_phota import contract, pricing
from airflow_provider_phota.contract import Endpoint, ErrorType, JobStatus, ProfileStatus, Violation
from airflow_provider_phota.testing.emulator.records import (
    CallbackDelivery,
    Charge,
    Download,
    Fault,
    JobView,
    ProfileView,
    RecordedRequest,
)

# --- constants ------------------------------------------------------------------------------------------------

CDN_PREFIX = "/cdn"
IDEMPOTENCY_SECONDS = 24 * 3600.0  # api-decisions D4: client_request_id is remembered 24 h (the default)

# Deterministic markers: put them in a prompt / image URL to get a given outcome.
MARKER_TRAINING_ERROR = "phota-training-error"
MARKER_NO_SUBJECT = "phota-no-subject"
MARKER_MODERATE = "phota-moderate"
MARKER_FAIL_JOB = "phota-fail-job"
TRAINING_ERROR_MESSAGE = "No detectable subject in the training images"

# Training phases as fractions of training_seconds (api-decisions D15) and job phases as fractions of job_seconds
# (api-decisions D3).
TRAINING_PHASES: tuple[tuple[float, ProfileStatus], ...] = (
    (0.1, ProfileStatus.VALIDATING),
    (0.3, ProfileStatus.QUEUING),
    (1.0, ProfileStatus.IN_PROGRESS),
)
TRAINING_MESSAGES = {
    ProfileStatus.VALIDATING: "Validating training images",
    ProfileStatus.QUEUING: "Waiting for a training slot",
    ProfileStatus.IN_PROGRESS: "Training",
    ProfileStatus.READY: "",
}
JOB_QUEUED_FRACTION = 0.2

# The ledger prices from the provider's own table (airflow_provider_phota.pricing): the list prices for training
# [RN-0.5] and enhance/remix [RN-0.6], and for the per-model rates these EMULATOR-ONLY placeholders, because the
# /pricing page could not be read. Tests give the same table to a connection (its price_table extra) to compare a
# task's reported cost with the ledger's charge.
EMULATOR_MODEL_RATES: dict[str, dict[str, dict[str, str]]] = {
    "images": {
        "nb2": {"plain": "0.05", "with_identity": "0.08"},
        "gpt-image-2": {"plain": "0.06", "with_identity": "0.09"},
        "qwen-image-2": {"plain": "0.03", "with_identity": "0.05"},
        "flux-2": {"plain": "0.025", "with_identity": "0.04"},
        "reve": {"plain": "0.04", "with_identity": "0.06"},
    }
}
EMULATOR_PRICES = pricing.LIST_PRICES.merged(pricing.parse_price_table(EMULATOR_MODEL_RATES)[0])

FAULT_TYPES = {
    400: ErrorType.INVALID_REQUEST,
    401: ErrorType.UNAUTHORIZED,
    402: ErrorType.INSUFFICIENT_CREDIT,
    403: ErrorType.FORBIDDEN,
    404: ErrorType.NOT_FOUND,
    429: ErrorType.RATE_LIMITED,
    500: ErrorType.INTERNAL,
    502: ErrorType.UNAVAILABLE,
    503: ErrorType.UNAVAILABLE,
    504: ErrorType.TIMEOUT,
}
FAULT_STATUSES = (*FAULT_TYPES, 422)


# --- internal state -------------------------------------------------------------------------------------------


@dataclass
class _Profile:
    profile_id: str
    tag: str | None
    tier: str
    image_urls: list[str]
    created: float  # emulator clock
    forced_status: ProfileStatus | None = None
    forced_message: str = ""
    picture: bytes | None = None


@dataclass
class _Job:
    job_id: str
    endpoint: Endpoint
    body: dict[str, Any]
    client_request_id: str | None
    callback_url: str | None
    created: float  # emulator clock
    created_wall: float
    known_subjects: dict[str, int]
    status: JobStatus | None = None  # set once terminal; before that the status follows the clock
    result: dict[str, Any] | None = None
    error: dict[str, str] | None = None
    finished_wall: float | None = None
    forced_failure: bool = False  # set by fail_next_jobs: FAILED with JOB_FAILED whatever the prompt
    input_size: tuple[int, int] | None = None  # of the first input image, read when the job was submitted
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class _StoredFile:
    data: bytes
    content_type: str
    expires: int


class ApiError(Exception):
    """An error answer with an api-decisions D8 body (or a bare ``detail`` body for the missing-key 403, D10)."""

    def __init__(
        self,
        status: int,
        detail: str,
        error_type: str | None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.error_type = error_type
        self.headers = dict(headers or {})


class RequestInvalid(Exception):
    """A 422 answer with an api-decisions D9 body."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        super().__init__(items)
        self.items = items


def utc_iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).isoformat().replace("+00:00", "Z")


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def raise_violations(violations: list[Violation]) -> None:
    """The contract's violations as the answer the service gives: 422 (api-decisions D9) wins over 400 (D8)."""
    unprocessable = [v for v in violations if v.status == 422]
    if unprocessable:
        raise RequestInvalid(
            [{"loc": ["body", v.field], "msg": v.describe(), "type": "value_error"} for v in unprocessable]
        )
    if violations:
        raise ApiError(400, violations[0].describe(), ErrorType.INVALID_REQUEST)


def decode_json_object(raw: bytes) -> dict[str, Any]:
    """api-decisions D9: a body that is not a JSON object is a 422."""
    if not raw:
        raise RequestInvalid([{"loc": ["body"], "msg": "Field required", "type": "missing"}])
    try:
        body = json.loads(raw)
    except ValueError as error:
        problem = {"loc": ["body"], "msg": f"JSON decode error: {error}", "type": "json_invalid"}
        raise RequestInvalid([problem]) from None
    if not isinstance(body, dict):
        raise RequestInvalid([{"loc": ["body"], "msg": "Input should be a valid dictionary", "type": "dict_type"}])
    return body


class EmulatorState:
    """Everything the emulator remembers, behind one lock; the HTTP handlers, the admin API and the in-process
    :class:`PhotaEmulator` methods all go through these methods, so a rule lives in one place."""

    def __init__(
        self,
        *,
        api_key: str,
        training_seconds: float,
        job_seconds: float,
        signing_key: str,
        idempotency_seconds: float = IDEMPOTENCY_SECONDS,
    ) -> None:
        if idempotency_seconds < 0:
            raise ValueError("idempotency_seconds must be >= 0")
        self.api_key = api_key
        self.training_seconds = training_seconds
        self.job_seconds = job_seconds
        self.idempotency_seconds = idempotency_seconds
        self.signing_key = signing_key
        self.webhook_secret = "whsec_" + secrets.token_hex(24)
        self.lock = threading.RLock()
        self.clock_offset = 0.0
        self.profiles: dict[str, _Profile] = {}
        self.jobs: dict[str, _Job] = {}
        self.idempotency: dict[tuple[str, str], tuple[str, float]] = {}
        self.files: dict[str, _StoredFile] = {}
        self.ledger: list[Charge] = []
        self.requests: list[RecordedRequest] = []
        self.downloads: list[Download] = []
        self.callbacks: list[CallbackDelivery] = []
        self.faults: list[Fault] = []
        self.credit_usd: float | None = None
        self.jobs_to_fail = 0  # the next this many new jobs end FAILED (fail_next_jobs)

    # clock: the state machines follow monotonic time + offset; timestamps and URL expiry follow wall time + offset
    def now(self) -> float:
        return time.monotonic() + self.clock_offset

    def wall(self) -> float:
        return time.time() + self.clock_offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the emulator clock only moves forward")
        with self.lock:
            self.clock_offset += seconds

    def reset(self) -> None:
        with self.lock:
            self.clock_offset = 0.0
            for collection in (
                self.profiles,
                self.jobs,
                self.idempotency,
                self.files,
            ):
                collection.clear()
            for log in (self.ledger, self.requests, self.downloads, self.callbacks, self.faults):
                log.clear()
            self.credit_usd = None
            self.jobs_to_fail = 0

    # faults
    def add_fault(self, fault: Fault) -> None:
        if fault.status is not None and fault.status not in FAULT_STATUSES:
            raise ValueError(f"unsupported fault status {fault.status}; use one of {sorted(FAULT_STATUSES)}")
        if fault.count < 1:
            raise ValueError("count must be at least 1")
        if not (fault.status or fault.delay or fault.drop or fault.malformed):
            raise ValueError("a fault needs status, delay, drop or malformed")
        with self.lock:
            self.faults.append(fault)

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def take_fault(self, method: str, path: str) -> Fault | None:
        """The first armed fault for this request, consuming one of its uses."""
        with self.lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.count -= 1
                    if fault.count <= 0:
                        self.faults.remove(fault)
                    return dataclasses.replace(fault)
        return None

    # ledger
    def charge(self, charge: Charge) -> None:
        """Book a charge, or answer 402 when it would exceed the remaining credit (then nothing is booked)."""
        with self.lock:
            if self.credit_usd is not None and self.total_charged() + charge.amount_usd > self.credit_usd + 1e-9:
                raise ApiError(
                    402,
                    f"Insufficient credit: this request costs ${charge.amount_usd:.2f}, "
                    f"${max(0.0, self.credit_usd - self.total_charged()):.2f} left",
                    ErrorType.INSUFFICIENT_CREDIT,
                )
            self.ledger.append(charge)

    def refund(self, ref: str, kind: str | None = None) -> None:
        """Refund every charge booked for ``ref`` (a job id or a sync call's request id), or only those of ``kind``."""
        with self.lock:
            charged = [c for c in self.ledger if c.ref == ref and c.kind != "refund" and kind in (None, c.kind)]
            self.ledger.extend(
                Charge("refund", c.endpoint, c.units, -c.amount_usd, c.ref, c.with_identity) for c in charged
            )

    def total_charged(self) -> float:
        with self.lock:
            return round(sum(c.amount_usd for c in self.ledger), 6)

    def fail_next_jobs(self, count: int) -> None:
        if count < 0:
            raise ValueError("count must be >= 0")
        with self.lock:
            self.jobs_to_fail = count

    def set_credit(self, usd: float | None) -> None:
        with self.lock:
            self.credit_usd = usd

    def record(self, entry: RecordedRequest) -> None:
        with self.lock:
            self.requests.append(entry)

    # profiles
    def profile(self, profile_id: str) -> _Profile:
        with self.lock:
            found = self.profiles.get(profile_id)
        if found is None:
            raise ApiError(404, f"Profile {profile_id!r} not found", ErrorType.NOT_FOUND)
        return found

    def profile_state(self, profile: _Profile) -> tuple[ProfileStatus, str]:
        """api-decisions D15: the status follows the clock through the training phases unless an outcome was forced."""
        if profile.forced_status is not None:
            return profile.forced_status, profile.forced_message
        if self.training_seconds > 0:
            progress = (self.now() - profile.created) / self.training_seconds
            for limit, status in TRAINING_PHASES:
                if progress < limit:
                    return status, TRAINING_MESSAGES[status]
        if any(MARKER_TRAINING_ERROR in url for url in profile.image_urls):
            return ProfileStatus.ERROR, TRAINING_ERROR_MESSAGE
        return ProfileStatus.READY, ""

    def set_profile_outcome(self, profile_id: str, status: str, message: str = "") -> None:
        profile = self.profile(profile_id)
        with self.lock:
            profile.forced_status = ProfileStatus(status)
            profile.forced_message = message

    def profile_views(self) -> Mapping[str, ProfileView]:
        with self.lock:
            items = list(self.profiles.values())
        return MappingProxyType(
            {p.profile_id: ProfileView(p.tag, p.tier, self.profile_state(p)[0].value, p.created) for p in items}
        )

    # jobs
    def job(self, job_id: str) -> _Job:
        with self.lock:
            found = self.jobs.get(job_id)
        if found is None:
            raise ApiError(404, f"Job {job_id!r} not found", ErrorType.NOT_FOUND)
        return found

    def job_status(self, job: _Job) -> JobStatus:
        """api-decisions D3: QUEUED, then RUNNING by the clock; SUCCEEDED/FAILED only once the job was settled."""
        if job.status is not None:
            return job.status
        if self.now() - job.created < JOB_QUEUED_FRACTION * self.job_seconds:
            return JobStatus.QUEUED
        return JobStatus.RUNNING

    def job_is_due(self, job: _Job) -> bool:
        return job.status is None and self.now() - job.created >= self.job_seconds

    def job_body(self, job: _Job) -> dict[str, Any]:
        """api-decisions D2."""
        status = self.job_status(job)
        if job.finished_wall is not None:
            updated = job.finished_wall
        elif status is JobStatus.RUNNING:
            updated = job.created_wall + JOB_QUEUED_FRACTION * self.job_seconds
        else:
            updated = job.created_wall
        return {
            "job_id": job.job_id,
            "status": status.value,
            "endpoint": job.endpoint.value,
            "result": job.result,
            "error": job.error,
            "created_at": utc_iso(job.created_wall),
            "updated_at": utc_iso(updated),
        }

    def job_views(self) -> Mapping[str, JobView]:
        with self.lock:
            items = list(self.jobs.values())
        return MappingProxyType(
            {
                j.job_id: JobView(
                    j.endpoint.value, self.job_status(j).value, j.client_request_id, j.created, j.result, j.error
                )
                for j in items
            }
        )

    def add_job(self, job: _Job) -> None:
        """Keep a new job, remember its idempotency key, and mark it to fail if ``fail_next_jobs`` asked so."""
        with self.lock:
            if self.jobs_to_fail > 0:
                self.jobs_to_fail -= 1
                job.forced_failure = True
            self.jobs[job.job_id] = job
            if job.client_request_id is not None:
                self.idempotency[(job.endpoint.value, job.client_request_id)] = (job.job_id, self.wall())

    def remembered_job(self, endpoint: Endpoint, client_request_id: str | None) -> _Job | None:
        """api-decisions D4: the job an earlier submit with this key on this endpoint created, if still remembered."""
        if client_request_id is None:
            return None
        with self.lock:
            entry = self.idempotency.get((endpoint.value, client_request_id))
            if entry is None or self.wall() - entry[1] > self.idempotency_seconds:
                return None
            return self.jobs.get(entry[0])

    # signed download URLs
    def _token(self, name: str, expires: int) -> str:
        return hmac.new(self.signing_key.encode(), f"{name}:{expires}".encode(), hashlib.sha256).hexdigest()

    def store_file(self, base_url: str, data: bytes, output_format: str) -> str:
        """Keep an output and return its signed URL, valid 24 h on the emulator clock."""
        ext = contract.file_extension(output_format)
        name = f"{uuid.uuid4().hex}.{ext}"
        wall = self.wall()
        expires = int(wall) + contract.SIGNED_URL_LIFETIME_SECONDS
        content_type = "image/jpeg" if ext == "jpg" else "image/png"
        with self.lock:
            self.files[name] = _StoredFile(data, content_type, expires)
        day = datetime.fromtimestamp(wall, UTC).strftime("%Y%m%d")
        return f"{base_url}{CDN_PREFIX}/{day}/{name}?token={self._token(name, expires)}&expires={expires}"

    def open_file(self, name: str, token: str, expires: str) -> _StoredFile:
        """The file behind a signed URL; 403 for a bad token or an expired link, 404 for an unknown file."""
        try:
            expires_at = int(expires)
        except ValueError:
            raise ApiError(403, "Invalid or missing download token", ErrorType.FORBIDDEN) from None
        if not hmac.compare_digest(self._token(name, expires_at), token):
            raise ApiError(403, "Invalid download token", ErrorType.FORBIDDEN)
        if self.wall() > expires_at:
            raise ApiError(403, "Download link expired", ErrorType.FORBIDDEN)
        with self.lock:
            stored = self.files.get(name)
        if stored is None:
            raise ApiError(404, "File not found", ErrorType.NOT_FOUND)
        return stored

    def file_by_url(self, url: str, base_url: str) -> tuple[bytes | None, str | None] | None:
        """One of our own signed URLs, read as a fetch would read it (so inputs can point at earlier outputs without
        a self-fetch): ``(data, None)``, ``(None, problem)`` for a bad token, an expired link or an unknown file, or
        ``None`` when the URL is not one of ours."""
        if not base_url or not url.startswith(base_url + CDN_PREFIX + "/"):
            return None
        parts = urlsplit(url)
        query = dict(part.split("=", 1) for part in parts.query.split("&") if "=" in part)
        try:
            stored = self.open_file(parts.path.rsplit("/", 1)[-1], query.get("token", ""), query.get("expires", ""))
        except ApiError as error:
            return None, f"could not be fetched (HTTP {error.status}: {error.detail})"
        return stored.data, None
