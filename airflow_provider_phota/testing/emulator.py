"""A local emulator of the Phota image API, for tests and offline development.

It speaks the HTTP API of the public Phota documentation (https://docs.photalabs.com) with the project's decisions
where the docs are silent (``docs/api-decisions.md``, cited as "api-decisions D<n>"; source pages are cited by their
tag from that page's "Source pages" table, e.g. [R-EDIT]). The request rules a client can check before sending
(enums, ranges, field sets) come from :mod:`airflow_provider_phota.contract`; on top of them the emulator makes the
checks only the service can make: the content of input images (JPEG, PNG, WebP or HEIC, readable, reachable when
fetched), that referenced profiles exist and are READY, and that a training set has a subject. It adds the server,
the state (profiles, jobs, ledger, files), a clock that tests can move, fault injection and an admin API.
``tests/emulator/test_conformance.py`` states the service's refusals as literal data, independently of the contract,
so a rule that is wrong there fails a row.

Run it in-process (``with PhotaEmulator() as emu: ...``; the server lives in a background thread with its own event
loop) or from the command line (``phota-emulator --port 8089``). See ``docs/emulator.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import concurrent.futures
import contextlib
import dataclasses
import fnmatch
import functools
import hashlib
import hmac
import ipaddress
import json
import re
import secrets
import signal
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, NamedTuple, cast
from urllib.parse import urlsplit, urlunsplit

from aiohttp import ClientSession, ClientTimeout, web

from airflow_provider_phota import contract, pricing
from airflow_provider_phota.contract import Endpoint, ErrorType, JobStatus, ProfileStatus, Violation
from airflow_provider_phota.testing import images

# --- constants ------------------------------------------------------------------------------------------------

DEPRECATION_HEADER = "X-Phota-Deprecation-Date"
DEPRECATION_DATE = "2026-05-08"  # [RN-0.2.0]: the announced output_format default change
ADMIN_PREFIX = "/_emulator"
CDN_PREFIX = "/cdn"
TICK_SECONDS = 0.05  # how often the background ticker settles due jobs (so callbacks fire without polling)
FETCH_TIMEOUT_SECONDS = 5.0  # loopback image fetches
IDEMPOTENCY_SECONDS = 24 * 3600  # api-decisions D4: client_request_id is remembered 24 h

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


# --- records exposed to tests ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    """One API request as the emulator saw it; ``status`` is 0 when the connection was dropped by a fault."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    status: int
    request_id: str
    headers: dict[str, str]
    time: float


@dataclass(frozen=True)
class Charge:
    """A ledger line. Refunds have kind ``refund`` and a negative amount, so the ledger sums to the bill."""

    kind: str  # "profile" | "images" | "refund"
    endpoint: str
    units: int
    amount_usd: float
    ref: str  # profile_id, job_id or (sync image calls) request_id
    with_identity: int = 0


@dataclass(frozen=True)
class Download:
    """One request to a signed download URL (not an API request, so it is not in ``requests``)."""

    path: str
    status: int
    size: int
    time: float


@dataclass(frozen=True)
class CallbackDelivery:
    """One callback POST (api-decisions D6). ``status`` is None when it could not be delivered; ``error`` says why."""

    job_id: str
    url: str
    headers: dict[str, str]
    body: bytes
    status: int | None
    error: str | None = None


@dataclass
class Fault:
    """An injected failure for the next ``count`` requests whose path matches ``path_glob``."""

    path_glob: str
    status: int | None = None
    count: int = 1
    retry_after: float | None = None
    delay: float | None = None
    drop: bool = False
    malformed: bool = False
    after: bool = False
    method: str | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method.upper() == method) and fnmatch.fnmatchcase(path, self.path_glob)


class ProfileView(NamedTuple):
    tag: str | None
    tier: str
    status: str
    created: float


class JobView(NamedTuple):
    endpoint: str
    status: str
    client_request_id: str | None
    created: float
    result: dict[str, Any] | None
    error: dict[str, str] | None


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


class _DropConnection(Exception):
    """Close the TCP connection without answering (fault ``drop``)."""


def _utc_iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).isoformat().replace("+00:00", "Z")


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _violations_to_error(violations: list[Violation]) -> Exception | None:
    """The contract's violations as the answer the service gives: 422 (api-decisions D9) wins over 400 (D8)."""
    unprocessable = [v for v in violations if v.status == 422]
    if unprocessable:
        return RequestInvalid(
            [{"loc": ["body", v.field], "msg": v.describe(), "type": "value_error"} for v in unprocessable]
        )
    if violations:
        return ApiError(400, violations[0].describe(), ErrorType.INVALID_REQUEST)
    return None


def _raise_violations(violations: list[Violation]) -> None:
    error = _violations_to_error(violations)
    if error is not None:
        raise error


class EmulatorState:
    """Everything the emulator remembers, behind one lock; the HTTP handlers, the admin API and the in-process
    :class:`PhotaEmulator` methods all go through these methods, so a rule lives in one place."""

    def __init__(self, *, api_key: str, training_seconds: float, job_seconds: float, signing_key: str) -> None:
        self.api_key = api_key
        self.training_seconds = training_seconds
        self.job_seconds = job_seconds
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

    def refund(self, charge: Charge) -> None:
        with self.lock:
            self.ledger.append(
                Charge("refund", charge.endpoint, charge.units, -charge.amount_usd, charge.ref, charge.with_identity)
            )

    def total_charged(self) -> float:
        with self.lock:
            return round(sum(c.amount_usd for c in self.ledger), 6)

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
            "created_at": _utc_iso(job.created_wall),
            "updated_at": _utc_iso(updated),
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

    def remembered_job(self, endpoint: Endpoint, client_request_id: str | None) -> _Job | None:
        """api-decisions D4: the job an earlier submit with this key on this endpoint created, if still remembered."""
        if client_request_id is None:
            return None
        with self.lock:
            entry = self.idempotency.get((endpoint.value, client_request_id))
            if entry is None or self.wall() - entry[1] > IDEMPOTENCY_SECONDS:
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


# --- the HTTP application -------------------------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
BODY = web.RequestKey("phota_body", object)
REQUEST_ID = web.RequestKey("phota_request_id", str)


def _error_response(error: Exception, request_id: str) -> web.Response:
    if isinstance(error, RequestInvalid):
        return web.json_response({"detail": error.items}, status=422)
    assert isinstance(error, ApiError)
    body: dict[str, Any] = {"detail": error.detail}
    if error.error_type is not None:  # api-decisions D10: the missing-key 403 carries only detail
        body |= {"type": error.error_type, "request_id": request_id}
    return web.json_response(body, status=error.status, headers=error.headers)


class EmulatorApp:
    """The aiohttp application: one pipeline for every API route, the signed-URL CDN, and the admin API."""

    def __init__(self, state: EmulatorState, *, deliver_callbacks_over_http: bool) -> None:
        self.state = state
        self.deliver_callbacks_over_http = deliver_callbacks_over_http
        self.base_url = ""  # set once the socket is bound
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="phota-render")
        self.session: ClientSession | None = None
        self.ticker: asyncio.Task[None] | None = None
        self.background: set[asyncio.Task[Any]] = set()

    def build(self) -> web.Application:
        app = web.Application(middlewares=[self.pipeline], client_max_size=256 * 1024**2)
        api = contract.API_PREFIX
        app.router.add_post(f"{api}/profiles/add", self.create_profile)
        app.router.add_get(f"{api}/profiles/ids", self.list_profiles)
        app.router.add_get(f"{api}/profiles/{{profile_id}}/status", self.profile_status)
        app.router.add_get(f"{api}/profiles/{{profile_id}}/profile_picture", self.profile_picture)
        app.router.add_delete(f"{api}/profiles/{{profile_id}}", self.delete_profile)
        for endpoint in Endpoint:
            app.router.add_post(f"{api}/{endpoint.value}", self.studio)
        app.router.add_get(f"{api}/jobs/{{job_id}}", self.get_job)
        app.router.add_get(f"{api}/webhook-secret", self.webhook_secret)
        app.router.add_get(f"{CDN_PREFIX}/{{day}}/{{name}}", self.download)
        admin = ADMIN_PREFIX
        app.router.add_get(f"{admin}/health", self.admin_health)
        app.router.add_post(f"{admin}/faults", self.admin_add_fault)
        app.router.add_delete(f"{admin}/faults", self.admin_clear_faults)
        app.router.add_get(f"{admin}/requests", self.admin_requests)
        app.router.add_get(f"{admin}/ledger", self.admin_ledger)
        app.router.add_get(f"{admin}/jobs", self.admin_jobs)
        app.router.add_get(f"{admin}/callbacks", self.admin_callbacks)
        app.router.add_post(f"{admin}/reset", self.admin_reset)
        app.router.add_post(f"{admin}/advance", self.admin_advance)
        app.router.add_post(f"{admin}/credit", self.admin_credit)
        app.router.add_post(f"{admin}/profiles/{{profile_id}}/outcome", self.admin_outcome)
        app.on_startup.append(self._on_startup)
        app.on_cleanup.append(self._on_cleanup)
        return app

    async def _on_startup(self, app: web.Application) -> None:
        self.session = ClientSession(timeout=ClientTimeout(total=FETCH_TIMEOUT_SECONDS))
        self.ticker = asyncio.create_task(self._tick_forever())

    async def _on_cleanup(self, app: web.Application) -> None:
        if self.ticker is not None:
            self.ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.ticker
        for task in list(self.background):
            task.cancel()
        if self.session is not None:
            await self.session.close()
        self.executor.shutdown(wait=False, cancel_futures=True)

    # -- pipeline -------------------------------------------------------------------------------------------------

    @web.middleware
    async def pipeline(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every request: request id and the api-decisions D17 headers; API routes also get auth, faults, parsing and
        recording."""
        request_id = _new_id("req")
        request[REQUEST_ID] = request_id
        if request.path.startswith(contract.API_PREFIX + "/") or request.path == contract.API_PREFIX:
            response = await self._api_pipeline(request, handler, request_id)
        else:  # the signed-URL CDN and the admin API: no key, not recorded as API requests
            response = await self._plain_pipeline(request, handler, request_id)
        response.headers[contract.REQUEST_ID_HEADER] = request_id
        response.headers[DEPRECATION_HEADER] = DEPRECATION_DATE
        return response

    async def _plain_pipeline(self, request: web.Request, handler: Handler, request_id: str) -> web.StreamResponse:
        try:
            request[BODY] = await self._parse_body(request)
            return await handler(request)
        except (ApiError, RequestInvalid) as error:
            return _error_response(error, request_id)
        except web.HTTPException as error:
            kind = ErrorType.NOT_FOUND if error.status == 404 else ErrorType.INVALID_REQUEST
            return _error_response(ApiError(error.status, error.reason, kind), request_id)

    async def _api_pipeline(self, request: web.Request, handler: Handler, request_id: str) -> web.StreamResponse:
        """auth -> faults -> parse -> validate/handle (in the handler) -> faults applied after -> record."""
        raw = await request.read()
        status = 0
        try:
            fault: Fault | None = None
            response: web.StreamResponse
            try:
                self._check_route(request)
                self._authenticate(request)
                fault = self.state.take_fault(request.method, request.path)
                if fault is not None and fault.delay:
                    await asyncio.sleep(fault.delay)
                answers = fault is not None and bool(fault.status or fault.drop or fault.malformed)
                if fault is not None and answers and not fault.after:
                    response = self._fault_response(fault, request_id)
                else:
                    try:
                        request[BODY] = self._decode_json(raw) if request.method == "POST" else None
                        response = await handler(request)
                    except (ApiError, RequestInvalid) as error:
                        response = _error_response(error, request_id)
                    if fault is not None and answers:  # after=True: the work is done, the answer is lost
                        self._refund_on_timeout(fault, request_id)
                        response = self._fault_response(fault, request_id)
            except (ApiError, RequestInvalid) as error:
                response = _error_response(error, request_id)
            status = response.status
            return response
        except _DropConnection:
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=499)  # never reaches the client: the socket is already closed
        finally:
            self.state.record(
                RecordedRequest(
                    method=request.method,
                    path=request.path,
                    query=dict(request.query),
                    json=self._loads_or_none(raw),
                    status=status,
                    request_id=request_id,
                    headers=dict(request.headers),
                    time=self.state.now(),
                )
            )

    @staticmethod
    def _check_route(request: web.Request) -> None:
        """Unknown routes are 404 before auth, as FastAPI answers them; a wrong method is 405."""
        problem = request.match_info.http_exception
        if isinstance(problem, web.HTTPMethodNotAllowed):
            raise ApiError(405, f"Method {request.method} not allowed", ErrorType.INVALID_REQUEST)
        if problem is not None:
            raise ApiError(404, f"Not found: {request.path}", ErrorType.NOT_FOUND)

    def _authenticate(self, request: web.Request) -> None:
        """api-decisions D10: missing key 403 (bare detail), wrong key 401."""
        key = request.headers.get(contract.API_KEY_HEADER)
        if not key:
            raise ApiError(403, "Not authenticated", None)
        if not hmac.compare_digest(key.encode(), self.state.api_key.encode()):
            raise ApiError(401, "Invalid API key", ErrorType.UNAUTHORIZED)

    @staticmethod
    def _fault_response(fault: Fault, request_id: str) -> web.Response:
        if fault.drop:
            raise _DropConnection
        if fault.malformed and not fault.status:
            return web.Response(status=200, text='{"this is": not json', content_type="application/json")
        status = cast(int, fault.status)
        if status == 422:
            return _error_response(
                RequestInvalid([{"loc": ["body"], "msg": "injected validation fault", "type": "value_error"}]),
                request_id,
            )
        headers = {}
        if status == 429:
            headers["Retry-After"] = str(round(fault.retry_after if fault.retry_after is not None else 1))
        elif fault.retry_after is not None:
            headers["Retry-After"] = str(round(fault.retry_after))
        detail = f"Injected fault: HTTP {status}"
        return _error_response(ApiError(status, detail, FAULT_TYPES[status], headers=headers), request_id)

    def _refund_on_timeout(self, fault: Fault, request_id: str) -> None:
        """[RN-0.7]: a synchronous call cut at the time limit (504) is refunded; only its own charges are."""
        if fault.status != 504:
            return
        with self.state.lock:
            charged = [c for c in self.state.ledger if c.ref == request_id and c.kind != "refund"]
        for charge in charged:
            self.state.refund(charge)

    @staticmethod
    def _loads_or_none(raw: bytes) -> Any:
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return None

    @staticmethod
    def _decode_json(raw: bytes) -> dict[str, Any]:
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

    async def _parse_body(self, request: web.Request) -> Any:
        if request.method != "POST":
            return None
        raw = await request.read()
        return self._decode_json(raw) if raw else {}

    # -- profiles -------------------------------------------------------------------------------------------------

    async def create_profile(self, request: web.Request) -> web.Response:
        body = cast(dict[str, Any], request[BODY])
        _raise_violations(contract.validate_create_profile(body))
        urls = [str(url) for url in body["image_urls"]]
        await self._check_training_images(urls)
        tier = body.get("training_tier") or "standard"
        profile_id = _new_id("prof")[:21]
        price = pricing.training_cost(tier, EMULATOR_PRICES).usd
        assert price is not None  # every tier has a list price
        self.state.charge(Charge("profile", "/profiles/add", 1, float(price), profile_id))
        profile = _Profile(profile_id, body.get("tag"), tier, urls, self.state.now())
        with self.state.lock:
            self.state.profiles[profile_id] = profile
        return web.json_response({"profile_id": profile_id})

    async def _check_training_images(self, urls: list[str]) -> None:
        """A training set the service cannot use is a descriptive 400 ([RN-0.1.1]): loopback URLs (and our own
        download URLs) must be reachable JPEG, PNG, WebP or HEIC images ([R-ADD]) that decode completely; a URL with
        the ``phota-no-subject`` marker stands for a set without a detectable subject. Other hosts are not fetched."""
        local = [(index, url) for index, url in enumerate(urls) if self._fetches(url)]
        results = await asyncio.gather(*(self._fetch_image(url) for _, url in local))
        for (index, url), (data, problem) in zip(local, results, strict=True):
            if problem is None and data is not None:
                problem = await self._in_executor(functools.partial(images.input_image_problem, full_decode=True), data)
            if problem is not None:
                raise ApiError(400, f"image_urls[{index}]: {url} {problem}", ErrorType.INVALID_REQUEST)
        if any(MARKER_NO_SUBJECT in url for url in urls):
            raise ApiError(400, f"image_urls: {TRAINING_ERROR_MESSAGE}", ErrorType.INVALID_REQUEST)

    def _fetches(self, url: str) -> bool:
        """The emulator fetches loopback URLs and its own download URLs; it never calls the internet."""
        return _is_loopback_url(url) or (bool(self.base_url) and url.startswith(self.base_url + CDN_PREFIX + "/"))

    async def _fetch_image(self, url: str) -> tuple[bytes | None, str | None]:
        own = self.state.file_by_url(url, self.base_url)
        if own is not None:
            return own
        assert self.session is not None
        try:
            async with self.session.get(url) as response:
                if response.status != 200:
                    return None, f"could not be fetched (HTTP {response.status})"
                return await response.read(), None
        except Exception as error:
            return None, f"could not be fetched ({type(error).__name__}: {error})"

    async def list_profiles(self, request: web.Request) -> web.Response:
        tag = request.query.get("tag")
        problems = contract.validate_tag(tag)
        if problems:
            items = [{"loc": ["query", "tag"], "msg": v.describe(), "type": "value_error"} for v in problems]
            raise RequestInvalid(items)
        with self.state.lock:
            ids = [p.profile_id for p in self.state.profiles.values() if tag is None or p.tag == tag]
        return web.json_response({"profiles": ids})

    async def profile_status(self, request: web.Request) -> web.Response:
        profile = self.state.profile(request.match_info["profile_id"])
        status, message = self.state.profile_state(profile)
        return web.json_response({"profile_id": profile.profile_id, "status": status.value, "message": message})

    async def profile_picture(self, request: web.Request) -> web.Response:
        """api-decisions D16: JPEG once READY, 404 before."""
        profile = self.state.profile(request.match_info["profile_id"])
        status, _ = self.state.profile_state(profile)
        if status is not ProfileStatus.READY:
            raise ApiError(404, f"Profile {profile.profile_id!r} has no picture yet ({status.value})", "NOT_FOUND")
        if profile.picture is None:
            profile.picture = await self._in_executor(images.render_profile_picture, profile.profile_id)
        return web.Response(body=profile.picture, content_type="image/jpeg")

    async def delete_profile(self, request: web.Request) -> web.Response:
        profile = self.state.profile(request.match_info["profile_id"])
        with self.state.lock:
            self.state.profiles.pop(profile.profile_id, None)
        return web.json_response({"profile_id": profile.profile_id, "status": "ok"})

    # -- studio endpoints -----------------------------------------------------------------------------------------

    async def studio(self, request: web.Request) -> web.Response:
        """``/edit``, ``/generate``, ``/enhance``, ``/remix``: validate, then answer sync (200) or async (202)."""
        endpoint = Endpoint(request.path.rsplit("/", 1)[-1])
        body = cast(dict[str, Any], request[BODY])
        _raise_violations(contract.validate_image_request(endpoint, body))
        is_async = body.get("async") is True
        if is_async:
            known = self.state.remembered_job(endpoint, body.get("client_request_id"))
            if known is not None:
                return self._job_handle(known)
        subjects = self._known_subjects(endpoint, body)
        input_size = await self._check_input_images(endpoint, body)
        prompt = str(body.get("prompt") or "")
        if not is_async and MARKER_MODERATE in prompt:
            raise ApiError(400, "The prompt was blocked by content moderation", ErrorType.CONTENT_MODERATION)
        ref = _new_id("job") if is_async else request[REQUEST_ID]
        charge = self._price(endpoint, body, subjects, ref)
        self.state.charge(charge)
        if is_async:
            return self._submit_job(endpoint, body, subjects, ref, input_size)
        try:
            result = await self._render_outputs(
                endpoint, body, subjects, seed=request[REQUEST_ID], input_size=input_size
            )
        except BaseException:
            self.state.refund(charge)
            raise
        return web.json_response(result)

    def _known_subjects(self, endpoint: Endpoint, body: Mapping[str, Any]) -> dict[str, int]:
        """Every referenced profile ([[id]] in the prompt, ``profile_ids``) must exist and be READY ([QS], [R-EDIT]);
        each appears in every output (``known_subjects``, [R-EDIT], [RN-0.3])."""
        profile_ids = body.get("profile_ids") if endpoint is not Endpoint.GENERATE else None
        count = int(body.get("num_output_images") or 1)
        subjects: dict[str, int] = {}
        for profile_id in contract.referenced_profiles(body.get("prompt"), profile_ids):
            with self.state.lock:
                profile = self.state.profiles.get(profile_id)
            if profile is None:
                raise ApiError(400, f"profile {profile_id!r} does not exist", ErrorType.INVALID_REQUEST)
            status, _ = self.state.profile_state(profile)
            if status is not ProfileStatus.READY:
                raise ApiError(
                    400, f"profile {profile_id!r} is not READY (status {status.value})", ErrorType.INVALID_REQUEST
                )
            subjects[profile_id] = count
        return subjects

    @staticmethod
    def _price(endpoint: Endpoint, body: Mapping[str, Any], subjects: Mapping[str, int], ref: str) -> Charge:
        count = int(body.get("num_output_images") or 1)
        cost = pricing.cost_of(endpoint, body, EMULATOR_PRICES, count=count, known_subjects=subjects)
        assert cost.usd is not None  # the emulator's table prices every request
        return Charge("images", f"/{endpoint.value}", count, float(cost.usd), ref, cost.with_identity)

    async def _render_outputs(
        self,
        endpoint: Endpoint,
        body: Mapping[str, Any],
        subjects: Mapping[str, int],
        *,
        seed: str,
        input_size: tuple[int, int] | None,
    ) -> dict[str, Any]:
        """The image response ([R-GEN], [R-ENH], [QS]): real images of the api-decisions D14 size, base64 in bytes
        mode or signed URLs in urls mode."""
        width, height = contract.output_size(
            endpoint, resolution=body.get("resolution"), aspect_ratio=body.get("aspect_ratio"), input_size=input_size
        )
        output_format = "jpg" if body.get("output_format") == "jpg" else "png"
        prompt = str(body.get("prompt") or "")
        seed_text = f"{endpoint.value}\x00{prompt}\x00{seed}"
        count = int(body.get("num_output_images") or 1)
        outputs = await asyncio.gather(
            *(
                self._in_executor(
                    _render,
                    width,
                    height,
                    seed_text,
                    f"/{endpoint.value}: {prompt}" if prompt else f"/{endpoint.value}",
                    index,
                    output_format,
                )
                for index in range(count)
            )
        )
        counts = dict(subjects)
        if body.get("response_mode") == "urls":
            urls = [self.state.store_file(self.base_url, data, output_format) for data in outputs]
            return {"images": [], "download_urls": urls, "known_subjects": {"counts": counts}}
        encoded = [base64.b64encode(data).decode("ascii") for data in outputs]
        return {"images": encoded, "download_urls": [], "known_subjects": {"counts": counts}}

    async def _check_input_images(self, endpoint: Endpoint, body: Mapping[str, Any]) -> tuple[int, int] | None:
        """Refuse (400 ``INVALID_REQUEST``) input images the service would not take, and return the pixel size of the
        first one when it is known.

        An image field holds base64 or an http(s) URL; the service detects which ([R-EDIT], [R-ENH], [RMX]). Base64 is
        decoded and must be JPEG, PNG, WebP or HEIC ([R-EDIT], [R-ENH], [RN-0.1.1]) by its magic bytes, and readable.
        A URL on a loopback host, or one of the emulator's own download URLs, is fetched and checked the same way; it
        must answer 200 (our own URLs also need a valid, unexpired token). Other URLs are not fetched (the emulator
        never calls the internet) and are accepted unchecked.
        """
        fields: list[tuple[str, Any]]
        if endpoint is Endpoint.EDIT:
            fields = [(f"images[{index}]", value) for index, value in enumerate(body.get("images") or [])]
        else:
            names = {Endpoint.ENHANCE: ("image",), Endpoint.REMIX: ("input_image", "reference_image")}.get(endpoint, ())
            fields = [(name, body.get(name)) for name in names]
        checks = await asyncio.gather(*(self._read_input_image(value) for _, value in fields))
        problems = [f"{name}: {problem}" for (name, _), (_, problem) in zip(fields, checks, strict=True) if problem]
        if problems:
            raise ApiError(400, "; ".join(problems), ErrorType.INVALID_REQUEST)
        first = checks[0][0] if checks else None
        return await self._in_executor(images.input_image_size, first) if first else None

    async def _read_input_image(self, value: Any) -> tuple[bytes | None, str | None]:
        """``(bytes, None)`` for an acceptable image, ``(None, None)`` for a URL that is not fetched, ``(None,
        problem)`` for anything the service would refuse."""
        if not isinstance(value, str):  # the contract already refused it
            return None, None
        if value[:8].lower().startswith(("http://", "https://")):
            if not self._fetches(value):
                return None, None
            data, problem = await self._fetch_image(value)
            if problem is not None or data is None:
                return None, f"{value[:80]} {problem or 'could not be fetched'}"
            problem = await self._in_executor(images.input_image_problem, data)
            return (None, f"{value[:80]} {problem}") if problem else (data, None)
        data = await self._in_executor(_decode_base64, value)
        if data is None:
            return None, "is neither an http(s) URL nor base64 data"
        problem = await self._in_executor(images.input_image_problem, data)
        return (None, f"the base64 data {problem}") if problem else (data, None)

    # -- async jobs -----------------------------------------------------------------------------------------------

    def _submit_job(
        self,
        endpoint: Endpoint,
        body: dict[str, Any],
        subjects: dict[str, int],
        job_id: str,
        input_size: tuple[int, int] | None,
    ) -> web.Response:
        client_request_id = body.get("client_request_id")
        job = _Job(
            job_id=job_id,
            endpoint=endpoint,
            body=dict(body),
            client_request_id=client_request_id,
            callback_url=body.get("callback_url"),
            created=self.state.now(),
            created_wall=self.state.wall(),
            known_subjects=subjects,
            input_size=input_size,
        )
        with self.state.lock:
            if self.state.jobs_to_fail > 0:
                self.state.jobs_to_fail -= 1
                job.forced_failure = True
            self.state.jobs[job_id] = job
            if client_request_id is not None:
                self.state.idempotency[(endpoint.value, client_request_id)] = (job_id, self.state.wall())
        return self._job_handle(job)

    @staticmethod
    def _job_handle(job: _Job) -> web.Response:
        """api-decisions D1 (also for an idempotent repeat, D4)."""
        poll_url = contract.job_request(job.job_id).path
        return web.json_response(
            {"job_id": job.job_id, "status": JobStatus.QUEUED.value, "poll_url": poll_url}, status=202
        )

    async def settle(self, job: _Job) -> None:
        """Finish a due job exactly once, however many pollers and the ticker ask at the same time."""
        if not self.state.job_is_due(job):
            return
        async with job.lock:
            if not self.state.job_is_due(job):
                return
            prompt = str(job.body.get("prompt") or "")
            if MARKER_MODERATE in prompt or MARKER_FAIL_JOB in prompt or job.forced_failure:
                if MARKER_MODERATE in prompt:
                    error_type, message = ErrorType.CONTENT_MODERATION, "The prompt was blocked by content moderation"
                elif job.forced_failure:
                    error_type, message = ErrorType.JOB_FAILED, "The job failed (emulator: fail_next_jobs)"
                else:
                    error_type, message = ErrorType.JOB_FAILED, f"The job failed (emulator marker {MARKER_FAIL_JOB!r})"
                job.error = {"type": error_type, "message": message}
                with self.state.lock:
                    charged = [c for c in self.state.ledger if c.ref == job.job_id and c.kind == "images"]
                for charge in charged:
                    self.state.refund(charge)
                job.status = JobStatus.FAILED
            else:
                job.result = await self._render_outputs(
                    job.endpoint, job.body, job.known_subjects, seed=job.job_id, input_size=job.input_size
                )
                job.status = JobStatus.SUCCEEDED
            job.finished_wall = self.state.wall()
        if job.callback_url:
            self._spawn(self._deliver_callback(job))

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            with self.state.lock:
                due = [job for job in self.state.jobs.values() if self.state.job_is_due(job)]
            for job in due:
                self._spawn(self.settle(job))

    async def _deliver_callback(self, job: _Job) -> None:
        """api-decisions D6: POST the D2 body, signed with the webhook secret. Only loopback receivers are called."""
        url = cast(str, job.callback_url)
        raw = json.dumps(self.state.job_body(job)).encode()
        signature = contract.sign_callback(self.state.webhook_secret, raw)
        headers = {"Content-Type": "application/json", contract.SIGNATURE_HEADER: signature}
        status: int | None = None
        error: str | None = None
        if not _is_loopback_url(url):
            error = "not delivered: the emulator only calls loopback receivers"
        else:
            target = url
            if self.deliver_callbacks_over_http:
                target = urlunsplit(urlsplit(url)._replace(scheme="http"))
            assert self.session is not None
            try:
                async with self.session.post(target, data=raw, headers=headers) as response:
                    status = response.status
            except Exception as problem:
                error = f"{type(problem).__name__}: {problem}"
        with self.state.lock:
            self.state.callbacks.append(CallbackDelivery(job.job_id, url, headers, raw, status, error))

    async def get_job(self, request: web.Request) -> web.Response:
        job = self.state.job(request.match_info["job_id"])
        await self.settle(job)
        return web.json_response(self.state.job_body(job))

    async def webhook_secret(self, request: web.Request) -> web.Response:
        return web.json_response({"secret": self.state.webhook_secret})

    # -- signed downloads -----------------------------------------------------------------------------------------

    async def download(self, request: web.Request) -> web.StreamResponse:
        """A signed download. Faults apply here too: a status, a delay, ``drop`` (closed before any byte) and
        ``drop`` with ``after=True`` (half the body is sent, then the connection is cut mid-transfer)."""
        name = request.match_info["name"]
        status, size = 500, 0
        try:
            stored = self.state.open_file(name, request.query.get("token", ""), request.query.get("expires", ""))
            fault = self.state.take_fault(request.method, request.path)
            if fault is not None:
                if fault.delay:
                    await asyncio.sleep(fault.delay)
                if fault.status or fault.malformed:
                    response = self._fault_response(fault, request[REQUEST_ID])
                    status = response.status
                    return response
                if fault.drop:
                    status = 0
                    return await self._cut_download(request, stored.data if fault.after else b"")
            status, size = 200, len(stored.data)
            return web.Response(body=stored.data, content_type=stored.content_type)
        except ApiError as error:
            status = error.status
            raise
        finally:
            with self.state.lock:
                self.state.downloads.append(Download(request.path, status, size, self.state.now()))

    @staticmethod
    async def _cut_download(request: web.Request, data: bytes) -> web.StreamResponse:
        """Announce the whole body, send half of it, and close the connection: a transfer that dies midway."""
        response = web.StreamResponse(headers={"Content-Length": str(len(data))})
        if data:
            await response.prepare(request)
            await response.write(data[: len(data) // 2])
        if request.transport is not None:
            request.transport.abort()
        return response

    # -- admin API (no key; same state methods as the in-process API) ---------------------------------------------

    async def admin_health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "base_url": self.base_url})

    async def admin_add_fault(self, request: web.Request) -> web.Response:
        spec = cast(dict[str, Any], request[BODY])
        try:
            fault = Fault(**spec)
            self.state.add_fault(fault)
        except (TypeError, ValueError) as error:
            raise ApiError(400, str(error), ErrorType.INVALID_REQUEST) from None
        return web.json_response({"status": "ok", "fault": dataclasses.asdict(fault)})

    async def admin_clear_faults(self, request: web.Request) -> web.Response:
        self.state.clear_faults()
        return web.json_response({"status": "ok"})

    async def admin_requests(self, request: web.Request) -> web.Response:
        with self.state.lock:
            entries = [dataclasses.asdict(entry) for entry in self.state.requests]
        return web.json_response({"requests": entries})

    async def admin_ledger(self, request: web.Request) -> web.Response:
        with self.state.lock:
            entries = [dataclasses.asdict(entry) for entry in self.state.ledger]
        return web.json_response({"charges": entries, "total_usd": self.state.total_charged()})

    async def admin_jobs(self, request: web.Request) -> web.Response:
        """The ``jobs`` view of the in-process API, for an emulator in another process."""
        views = self.state.job_views()
        return web.json_response({"jobs": [{"job_id": job_id, **view._asdict()} for job_id, view in views.items()]})

    async def admin_callbacks(self, request: web.Request) -> web.Response:
        with self.state.lock:
            entries = [
                {**dataclasses.asdict(entry), "body": entry.body.decode("utf-8", "replace")}
                for entry in self.state.callbacks
            ]
        return web.json_response({"callbacks": entries})

    async def admin_reset(self, request: web.Request) -> web.Response:
        self.state.reset()
        return web.json_response({"status": "ok"})

    async def admin_advance(self, request: web.Request) -> web.Response:
        seconds = cast(dict[str, Any], request[BODY]).get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise ApiError(400, "seconds must be a number >= 0", ErrorType.INVALID_REQUEST)
        self.state.advance(float(seconds))
        return web.json_response({"status": "ok", "clock_offset": self.state.clock_offset})

    async def admin_credit(self, request: web.Request) -> web.Response:
        usd = cast(dict[str, Any], request[BODY]).get("usd")
        if usd is not None and (isinstance(usd, bool) or not isinstance(usd, int | float)):
            raise ApiError(400, "usd must be a number or null", ErrorType.INVALID_REQUEST)
        self.state.set_credit(None if usd is None else float(usd))
        return web.json_response({"status": "ok", "credit_usd": self.state.credit_usd})

    async def admin_outcome(self, request: web.Request) -> web.Response:
        spec = cast(dict[str, Any], request[BODY])
        try:
            self.state.set_profile_outcome(
                request.match_info["profile_id"], str(spec.get("status")), str(spec.get("message") or "")
            )
        except ValueError as error:
            raise ApiError(400, str(error), ErrorType.INVALID_REQUEST) from None
        return web.json_response({"status": "ok"})

    async def _in_executor(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)


_BASE64_WHITESPACE = re.compile(r"\s+")
_BASE64_TEXT = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def _decode_base64(value: str) -> bytes | None:
    """Raw base64 (standard alphabet; line breaks and missing padding tolerated), or ``None`` when it is not base64.
    A data URI (``data:image/png;base64,...``) is not raw base64 ([R-EDIT]: an image is raw base64 or a URL)."""
    text = _BASE64_WHITESPACE.sub("", value)
    if not text or not _BASE64_TEXT.fullmatch(text) or len(text.rstrip("=")) % 4 == 1:
        return None
    try:
        return base64.b64decode(text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _render(width: int, height: int, seed_text: str, caption: str, index: int, output_format: str) -> bytes:
    fmt: images.OutputFormat = "jpg" if output_format == "jpg" else "png"
    return images.render_image(width, height, seed_text=seed_text, caption=caption, index=index, output_format=fmt)


# --- in-process handle ------------------------------------------------------------------------------------------


class PhotaEmulator:
    """The emulator as a context manager: a real HTTP server on a background thread, plus test helpers."""

    def __init__(
        self,
        api_key: str = "test-key",
        *,
        training_seconds: float = 2.0,
        job_seconds: float = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
        deliver_callbacks_over_http: bool = False,
        signing_key: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._state = EmulatorState(
            api_key=api_key,
            training_seconds=training_seconds,
            job_seconds=job_seconds,
            signing_key=signing_key or secrets.token_hex(32),
        )
        self._app = EmulatorApp(self._state, deliver_callbacks_over_http=deliver_callbacks_over_http)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # lifecycle
    def start(self) -> PhotaEmulator:
        if self._thread is not None:
            return self
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._serve, args=(ready,), name="phota-emulator", daemon=True)
        self._thread.start()
        try:
            ready.result(timeout=30)
        except BaseException:
            self._thread.join(timeout=5)
            self._thread = None
            raise
        return self

    def _serve(self, ready: concurrent.futures.Future[None]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._bind())
        except BaseException as error:
            ready.set_exception(error)
            loop.close()
            return
        ready.set_result(None)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _bind(self) -> None:
        self._runner = web.AppRunner(self._app.build(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024, reuse_address=True)
        await site.start()
        server = cast(asyncio.base_events.Server, site._server)  # the only way to read the bound port
        self.port = server.sockets[0].getsockname()[1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        self._app.base_url = f"http://{host}:{self.port}"

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        loop = self._loop
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout=30)
        self._thread = None
        self._loop = None
        self._runner = None

    def __enter__(self) -> PhotaEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # identity
    @property
    def base_url(self) -> str:
        return self._app.base_url

    @property
    def api_key(self) -> str:
        return self._state.api_key

    @property
    def webhook_secret(self) -> str:
        return self._state.webhook_secret

    @property
    def training_seconds(self) -> float:
        return self._state.training_seconds

    @property
    def job_seconds(self) -> float:
        return self._state.job_seconds

    # state control
    def reset(self) -> None:
        self._state.reset()

    def advance(self, seconds: float) -> None:
        self._state.advance(seconds)

    def inject_fault(
        self,
        path_glob: str,
        *,
        status: int | None = None,
        count: int = 1,
        retry_after: float | None = None,
        delay: float | None = None,
        drop: bool = False,
        malformed: bool = False,
        after: bool = False,
        method: str | None = None,
    ) -> None:
        self._state.add_fault(Fault(path_glob, status, count, retry_after, delay, drop, malformed, after, method))

    def clear_faults(self) -> None:
        self._state.clear_faults()

    def set_credit(self, usd: float | None) -> None:
        self._state.set_credit(usd)

    def set_profile_outcome(self, profile_id: str, status: str = "ERROR", message: str = "") -> None:
        self._state.set_profile_outcome(profile_id, status, message)

    def fail_next_jobs(self, count: int = 1) -> None:
        """The next ``count`` new async jobs end FAILED with ``JOB_FAILED`` (a retryable failure), refunded like
        any failed job. A resubmit that returns an existing job does not count. Unlike the prompt marker, the
        request stays the same, so a test can show what a retry of the same request does after a failed job."""
        if count < 0:
            raise ValueError("count must be >= 0")
        with self._state.lock:
            self._state.jobs_to_fail = count

    def profile_status(self, profile_id: str) -> str:
        return self._state.profile_state(self._state.profile(profile_id))[0].value

    # observation
    @property
    def requests(self) -> list[RecordedRequest]:
        with self._state.lock:
            return list(self._state.requests)

    def requests_to(self, path_glob: str, method: str | None = None) -> list[RecordedRequest]:
        return [
            entry
            for entry in self.requests
            if fnmatch.fnmatchcase(entry.path, path_glob) and (method is None or entry.method == method.upper())
        ]

    @property
    def downloads(self) -> list[Download]:
        with self._state.lock:
            return list(self._state.downloads)

    @property
    def ledger(self) -> list[Charge]:
        with self._state.lock:
            return list(self._state.ledger)

    def charges(self, kind: str | None = None) -> list[Charge]:
        return [charge for charge in self.ledger if kind is None or charge.kind == kind]

    def total_charged_usd(self) -> float:
        return self._state.total_charged()

    @property
    def profiles(self) -> Mapping[str, ProfileView]:
        return self._state.profile_views()

    @property
    def jobs(self) -> Mapping[str, JobView]:
        return self._state.job_views()

    @property
    def callbacks(self) -> list[CallbackDelivery]:
        with self._state.lock:
            return list(self._state.callbacks)


# --- command line -----------------------------------------------------------------------------------------------


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="phota-emulator", description="Local emulator of the Phota image API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089, help="0 picks a free port")
    parser.add_argument("--api-key", default="test-key")
    parser.add_argument("--training-seconds", type=float, default=20.0)
    parser.add_argument("--job-seconds", type=float, default=5.0)
    parser.add_argument("--realistic", action="store_true", help="real-world timings: training 1200 s, jobs 60 s")
    parser.add_argument(
        "--deliver-callbacks-over-http",
        action="store_true",
        help="test-only: POST https callbacks to loopback receivers over plain http",
    )
    args = parser.parse_args(argv)
    if args.realistic:
        args.training_seconds, args.job_seconds = 1200.0, 60.0
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the emulator in the foreground until SIGINT or SIGTERM."""
    args = _parse_args(argv)
    stop = threading.Event()

    def _request_stop(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)
    emulator = PhotaEmulator(
        args.api_key,
        training_seconds=args.training_seconds,
        job_seconds=args.job_seconds,
        host=args.host,
        port=args.port,
        deliver_callbacks_over_http=args.deliver_callbacks_over_http,
    )
    with emulator:
        print(f"Phota emulator listening on {emulator.base_url}", flush=True)
        print(f"  API base: {emulator.base_url}{contract.API_PREFIX}  key: {args.api_key}", flush=True)
        print(f"  training {args.training_seconds:g} s, jobs {args.job_seconds:g} s; Ctrl-C stops", flush=True)
        while not stop.wait(0.5):
            pass
    print("Phota emulator stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
