"""The callback receiver: Phota's signed job callbacks become Asset events that DAGs can be scheduled on (3.1+).

``POST /phota/callbacks`` (the plugin app is mounted under ``/phota``) takes the api-decisions D6 callback: the job
body (D2) as JSON, signed with ``X-Phota-Signature: sha256=<hex>``, the HMAC-SHA256 of the raw body keyed with the
account's webhook secret. The secret is fetched with ``GET /webhook-secret`` through the connection named by the
Airflow option ``[phota] callback_conn_id`` (default ``phota_default``) and cached for :data:`SECRET_TTL_SECONDS`.

A terminal callback (``SUCCEEDED`` or ``FAILED``) becomes one event of every asset with the URI
``phota://jobs/<endpoint>`` (:func:`job_asset_uri`), with ``extra`` = ``job_id``, ``status``, ``endpoint``,
``updated_at``, ``outputs`` (the download URLs without their query strings: no tokens, so not downloadable; fetch
the job for signed URLs) and ``error`` (``{"type", "message"}`` of a failed job, else ``None``). Airflow records an
event only for an asset it knows, i.e. one some DAG references (``schedule=[Asset("phota://jobs/generate")]``);
for an endpoint no DAG uses, the callback is accepted and nothing is recorded.

Refused without detail (an empty body) and without recording anything: more than :data:`MAX_BODY_BYTES` (413),
no or a badly formed or a wrong signature (401), a body that is not a terminal job of a known endpoint (400), and a
replay (409): a job finished more than :data:`REPLAY_WINDOW` ago, or a job whose same status is already recorded.
The signature proves the body came from the holder of the webhook secret, byte for byte; it carries no time and no
destination, so the receiver dedupes, and bounds the replay window with the job's signed ``updated_at``.

Airflow does not authenticate a plugin's routes, and Phota cannot log in: the signature is the route's only check.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from airflow.assets.manager import asset_manager
from airflow.configuration import conf
from airflow.models.asset import AssetEvent, AssetModel
from airflow.utils.session import create_session
from fastapi import APIRouter, Request, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from airflow_provider_phota import contract
from airflow_provider_phota.contract import Endpoint, JobState
from airflow_provider_phota.hooks.phota import PhotaHook

log = logging.getLogger(__name__)

ROUTE = "/callbacks"
"""The receiver's path inside the plugin app: ``<airflow>/phota/callbacks``."""
JOB_ASSET_URI = "phota://jobs/{endpoint}"
MAX_BODY_BYTES = 64 * 1024
"""A job body with four download URLs is about 2 KB; anything much larger is not a Phota callback."""
SECRET_TTL_SECONDS = 300.0
"""How long the webhook secret is reused; a rotated secret is picked up within this time."""
SECRET_FAILURE_TTL_SECONDS = 30.0
"""After a failed secret fetch, callbacks are refused (503) this long without asking again: junk traffic cannot
turn into a stream of requests to Phota."""
REPLAY_WINDOW = timedelta(hours=24)
"""A callback whose job finished longer ago is a replay; also how far back recorded events are compared. 24 h is
the lifetime of the job's download URLs: later, its outputs are gone anyway."""
CLOCK_SKEW = timedelta(minutes=5)
CONFIG_SECTION, CONFIG_CONN_ID = "phota", "callback_conn_id"
DEFAULT_CONN_ID = "phota_default"

router = APIRouter()


def job_asset_uri(endpoint: str) -> str:
    """The URI of the asset a job callback of ``endpoint`` (``edit``, ``generate``, ``enhance``, ``remix``) updates."""
    return JOB_ASSET_URI.format(endpoint=endpoint)


def callback_conn_id() -> str:
    """The connection whose account signs the callbacks: ``[phota] callback_conn_id``, else ``phota_default``."""

    return str(conf.get(CONFIG_SECTION, CONFIG_CONN_ID, fallback=DEFAULT_CONN_ID))


class _SecretCache:
    """The webhook secret of the callback connection, fetched once per TTL by one caller at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: tuple[float, str | None] | None = None  # (fetched at, secret or None after a failure)

    def get(self) -> str | None:
        with self._lock:
            if self._value is not None:
                fetched, secret = self._value
                ttl = SECRET_TTL_SECONDS if secret is not None else SECRET_FAILURE_TTL_SECONDS
                if time.monotonic() - fetched < ttl:
                    return secret
            secret = self._fetch()
            self._value = (time.monotonic(), secret)
            return secret

    @staticmethod
    def _fetch() -> str | None:

        conn_id = callback_conn_id()
        try:
            with PhotaHook(conn_id) as hook:
                return hook.get_webhook_secret()
        except Exception as error:  # a missing connection, Phota down: refuse callbacks for a while, say why here
            log.warning("Phota callbacks: cannot fetch the webhook secret through %r: %s", conn_id, error)
            return None

    def clear(self) -> None:
        with self._lock:
            self._value = None


secret_cache = _SecretCache()
_record_lock = threading.Lock()  # check-then-record of one API server process; the row lock covers the others


async def _read_capped(request: Request) -> bytes | None:
    """The raw body, or ``None`` once it is longer than :data:`MAX_BODY_BYTES` (never read further)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return None
    return bytes(body)


def _well_formed_signature(value: str | None) -> bool:
    if not value or not value.startswith(contract.SIGNATURE_PREFIX):
        return False
    digest = value[len(contract.SIGNATURE_PREFIX) :]
    return len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)


def _terminal_job(raw: bytes) -> JobState | None:
    """The callback's job, if it is a terminal job of a known endpoint with a plain job id."""
    try:
        body = json.loads(raw)
        job = contract.parse_job_state(body)
    except (ValueError, TypeError):  # json.JSONDecodeError and contract.MalformedResponse are ValueErrors
        return None
    if (
        not job.is_terminal
        or job.endpoint not in {e.value for e in Endpoint}
        or contract.validate_id("job_id", job.job_id)
    ):
        return None
    return job


def _finished_at(job: JobState) -> datetime | None:
    if not isinstance(job.updated_at, str):
        return None
    try:
        when = datetime.fromisoformat(job.updated_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


def without_token(url: str) -> str:
    """A download URL without its query string and fragment (where signed URLs carry their token)."""
    return urlunsplit(urlsplit(url)._replace(query="", fragment=""))


def event_extra(job: JobState) -> dict[str, Any]:
    """What an asset event of this job carries: ids, status and token-free outputs."""
    failed = job.status == contract.JobStatus.FAILED
    return {
        "job_id": job.job_id,
        "status": job.status,
        "endpoint": job.endpoint,
        "updated_at": job.updated_at,
        "outputs": [without_token(url) for url in (job.result.download_urls if job.result else [])],
        "error": {"type": job.error_type, "message": job.error_message} if failed else None,
    }


def _same_job(recorded: Any, extra: Mapping[str, Any]) -> bool:
    return (
        isinstance(recorded, Mapping)
        and recorded.get("job_id") == extra["job_id"]
        and recorded.get("status") == extra["status"]
    )


def record_event(extra: Mapping[str, Any]) -> bool | None:
    """Record one event of every asset with the job's URI, in one transaction: ``True``; ``False`` when the same
    job and status are already recorded (a replay); ``None`` when no asset has that URI (no DAG uses it)."""

    uri = job_asset_uri(extra["endpoint"])
    with _record_lock, create_session() as session:
        # FOR UPDATE on the asset rows serializes check-then-record across API server processes (PostgreSQL,
        # MySQL); SQLite has one writer anyway.
        assets = session.scalars(select(AssetModel).where(AssetModel.uri == uri).with_for_update()).all()
        if not assets:
            return None
        since = datetime.now(UTC) - REPLAY_WINDOW - CLOCK_SKEW
        recorded = session.scalars(
            select(AssetEvent.extra).where(
                AssetEvent.asset_id.in_([asset.id for asset in assets]), AssetEvent.timestamp >= since
            )
        )
        if any(_same_job(previous, extra) for previous in recorded):
            return False
        for asset in assets:
            asset_manager.register_asset_change(asset=asset, extra=dict(extra), session=session)
    return True


def _refused(status: int) -> Response:
    return Response(status_code=status)


@router.post(ROUTE, status_code=204, include_in_schema=False)
async def receive_callback(request: Request) -> Response:
    """Verify a Phota job callback and record it as an asset event (see the module docstring)."""
    raw = await _read_capped(request)
    if raw is None:
        return _refused(413)
    signature = request.headers.get(contract.SIGNATURE_HEADER)
    if not _well_formed_signature(signature):
        return _refused(401)
    secret = await run_in_threadpool(secret_cache.get)
    if secret is None:
        return _refused(503)
    if not contract.verify_callback_signature(secret, raw, signature):
        return _refused(401)
    job = _terminal_job(raw)
    if job is None:
        return _refused(400)
    finished = _finished_at(job)
    now = datetime.now(UTC)
    if finished is None or finished > now + CLOCK_SKEW:
        return _refused(400)
    if now - finished > REPLAY_WINDOW:
        return _refused(409)
    outcome = await run_in_threadpool(record_event, event_extra(job))
    if outcome is False:
        return _refused(409)
    if outcome is None:
        log.info("Phota callback for job %s: no DAG uses %s, nothing recorded", job.job_id, job_asset_uri(job.endpoint))
    return Response(status_code=204)
