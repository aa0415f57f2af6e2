"""PhotaHook: the one place that talks to the Phota API, synchronously (workers) and asynchronously (triggers).

Requests are built and responses parsed by :mod:`airflow_provider_phota.contract`; this class adds the Airflow
connection, client-side validation before any network call, the retry policy and typed results.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar, cast

from airflow_provider_phota import contract, metrics, storage
from airflow_provider_phota._compat import BaseHook
from airflow_provider_phota.contract import Endpoint, ImageResult, JobHandle, JobState, ProfileState, Violation
from airflow_provider_phota.exceptions import (
    PhotaError,
    PhotaNotFoundError,
    PhotaTimeoutError,
    PhotaValidationError,
    is_retryable,
    raise_if_invalid,
    surely_not_processed,
)
from airflow_provider_phota.get_provider_info import connection_type_info
from airflow_provider_phota.hooks.retry import RetryPolicy
from airflow_provider_phota.hooks.transport import (
    HTTP_EXTRAS,
    ApiResponse,
    AsyncClient,
    CaBundleExtra,
    ConnectionExtra,
    ConnectionSettings,
    SyncClient,
    drop_closed_loops,
    parsed,
)
from airflow_provider_phota.pricing import LIST_PRICES, PriceTable, PriceTableExtra

T = TypeVar("T")
# The extras a connection may set; the provider info's ``conn-fields`` declare the same names.
CONNECTION_EXTRAS: dict[str, ConnectionExtra | CaBundleExtra | PriceTableExtra] = {
    **HTTP_EXTRAS,
    "price_table": PriceTableExtra(),
}

if TYPE_CHECKING:
    import requests
    from airflow.sdk import ObjectStoragePath


def _check_id(name: str, value: Any, method: str) -> str:
    raise_if_invalid(contract.validate_id(name, value), method)
    return str(value)


# Parsers from a transport answer to a typed result: the contract's parsers plus the request id where it matters.
def _profile_ids(response: ApiResponse) -> list[str]:
    return contract.parse_profile_ids(response.body)


def _profile_id(response: ApiResponse) -> str:
    return contract.parse_profile_id(response.body)


def _profile_state(response: ApiResponse) -> ProfileState:
    return contract.parse_profile_state(response.body)


def _image_result(response: ApiResponse) -> ImageResult:
    return contract.parse_image_result(response.body, request_id=response.request_id)


def _job_handle(response: ApiResponse) -> JobHandle:
    return contract.parse_job_handle(response.body)


def _job_state(response: ApiResponse) -> JobState:
    return contract.parse_job_state(response.body, request_id=response.request_id)


def _webhook_secret(response: ApiResponse) -> str:
    return contract.parse_webhook_secret(response.body)


class _LoopConnectionCache:
    """Connections fetched by the async path, per event loop and connection id, for ``ttl`` seconds.

    A triggerer that resumes a thousand waits would otherwise look the same connection up a thousand times through
    the secrets backends (milliseconds of CPU each, all at once). Concurrent first lookups share one fetch. Entries
    live a minute, so a rotated key is picked up; a failed fetch is not kept. The entries of a closed loop are
    dropped (its futures keep the loop alive, so a weak mapping would never let go of them).
    """

    def __init__(self, ttl: float = 60.0) -> None:
        self.ttl = ttl
        self._entries: dict[asyncio.AbstractEventLoop, dict[str, tuple[float, asyncio.Future[Any]]]] = {}

    async def get(self, conn_id: str, fetch: Callable[[], Awaitable[T]]) -> T:
        drop_closed_loops(self._entries)
        entries = self._entries.setdefault(asyncio.get_running_loop(), {})
        cached = entries.get(conn_id)
        if cached is None or time.monotonic() - cached[0] > self.ttl or self._failed(cached[1]):
            cached = (time.monotonic(), asyncio.ensure_future(fetch()))
            entries[conn_id] = cached
        # shield: a waiter cancelled mid-fetch (a trigger being stopped) does not cancel the others' fetch
        return cast(T, await asyncio.shield(cached[1]))

    @staticmethod
    def _failed(future: asyncio.Future[Any]) -> bool:
        return future.done() and (future.cancelled() or future.exception() is not None)


_loop_connections = _LoopConnectionCache()


class PhotaHook(BaseHook):
    """Interact with the Phota image API.

    The connection keeps the API key as its password and the API origin as its host (empty means
    ``https://api.photalabs.com``; a host without a scheme means https; ``http://127.0.0.1:8089`` points at a
    local emulator). Extras tune timeouts (``read_timeout``, ``connect_timeout``) and retries (``max_attempts``,
    ``retry_wait``, ``retry_max_wait``, ``max_retry_after``), and ``price_table`` adds your rates to the list
    prices (:mod:`airflow_provider_phota.pricing`; ``hook.prices`` is the result). An explicit argument wins
    over an extra, an extra over the default; an extra out of its range fails with :class:`PhotaValidationError`
    naming it.

    Calls are retried on 429, 500/502/503/504, connection errors (TLS included), timeouts and malformed answers
    (a create without a tag only where a resend cannot duplicate it); an error raised after several attempts
    says how many.

    :param phota_conn_id: the Airflow connection to use.
    :param read_timeout: the HTTP read timeout in seconds of every call; replaces the connection's ``read_timeout``
        extra. (``timeout`` elsewhere in the provider is a total wait.)
    :param retry_policy: attempts and backoff of every call; replaces all of the connection's retry extras.
    :param call_log_level: the level of the one line per successful call (a task making thousands of calls, a
        batch, lowers it to ``logging.DEBUG``; retries and errors still warn).
    """

    conn_name_attr = "phota_conn_id"
    default_conn_name = "phota_default"
    conn_type = "phota"
    hook_name = "Phota"

    def __init__(
        self,
        phota_conn_id: str = default_conn_name,
        *,
        read_timeout: float | None = None,
        retry_policy: RetryPolicy | None = None,
        call_log_level: int = logging.INFO,
    ) -> None:
        super().__init__()
        self.phota_conn_id = phota_conn_id
        self._read_timeout = read_timeout
        self._retry_policy = retry_policy
        self._call_log_level = call_log_level
        self._async_client: AsyncClient | None = None

    # --- connection form --------------------------------------------------------------------------------------

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The connection form for UIs that read the hook (Airflow < 3.2); same source as the provider info."""

        behaviour = connection_type_info()["ui-field-behaviour"]
        return {
            "hidden_fields": list(behaviour["hidden-fields"]),
            "relabeling": dict(behaviour["relabeling"]),
            "placeholders": dict(behaviour["placeholders"]),
        }

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """wtforms widgets for the extras, generated from the same ``conn-fields`` the provider info declares.

        Text fields checked by the hook's own range rules: the FAB UIs of Airflow 2.11-3.1 accept only string,
        integer, password and boolean fields (a ``FloatField`` makes them drop the whole hook), and the hook reads
        numeric strings anyway.
        """

        try:
            from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
            from flask_babel import lazy_gettext
            from wtforms import StringField
            from wtforms.validators import Optional, ValidationError
        except ImportError:  # Airflow 3 without the FAB UI: the YAML metadata is what the UI reads.
            return {}

        def checked_by_the_hook(name: str) -> Any:
            def check(form: Any, field: Any) -> None:
                checked = CONNECTION_EXTRAS[name].read(name, field.data)
                if isinstance(checked, Violation):
                    raise ValidationError(checked.describe())

            return check

        return {
            name: StringField(
                lazy_gettext(spec["label"]),
                widget=BS3TextFieldWidget(),
                # A CA bundle path is a path on the workers, not on the web server: the hook checks it where it runs.
                validators=[Optional(), *([checked_by_the_hook(name)] if name != "ca_bundle" else [])],
                description=spec.get("description", ""),
            )
            for name, spec in connection_type_info()["conn-fields"].items()
        }

    # --- settings and clients ---------------------------------------------------------------------------------

    def _settings_from(self, conn: Any, extras: Mapping[str, Any]) -> ConnectionSettings:
        return ConnectionSettings.from_connection(
            host=conn.host,
            port=conn.port,
            password=conn.password,
            extras=extras,
            retry=self._retry_policy,
            read_timeout=self._read_timeout,
            conn_id=self.phota_conn_id,
        )

    @cached_property
    def _connection(self) -> Any:
        return self.get_connection(self.phota_conn_id)

    @cached_property
    def settings(self) -> ConnectionSettings:
        """The connection's settings (origin, key, timeouts, retry policy), read at the first synchronous call."""
        return self._settings_from(self._connection, self._connection.extra_dejson)

    @cached_property
    def prices(self) -> PriceTable:
        """The list prices with the connection's ``price_table`` extra on top (:mod:`airflow_provider_phota.pricing`);
        a bad table raises :class:`PhotaValidationError` naming its place."""
        value = self._connection.extra_dejson.get("price_table")
        if value in (None, ""):
            return LIST_PRICES
        prices = PriceTableExtra().read("price_table (connection extra)", value)
        if isinstance(prices, Violation):
            raise PhotaValidationError([prices], context=f"connection {self.phota_conn_id!r}")
        return prices

    @cached_property
    def client(self) -> SyncClient:
        """The synchronous HTTP client; one keep-alive session per hook."""
        client = SyncClient(self.settings, self.log)
        client.call_level = self._call_log_level
        return client

    def get_conn(self) -> requests.Session:
        """The keep-alive ``requests.Session`` every synchronous call of this hook reuses."""
        return self.client.session

    def close(self) -> None:
        """Close the synchronous session; the next call opens a new one. ``with PhotaHook() as hook:`` does it."""
        if "client" in self.__dict__:
            self.client.close()
            del self.__dict__["client"]

    def __enter__(self) -> PhotaHook:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def test_connection(self) -> tuple[bool, str]:
        """One cheap authenticated call (``GET /profiles/ids``): ``(True, summary)`` or ``(False, reason)``, the
        reason being the provider's error (a wrong key, a TLS problem, a refused connection). Never the key."""
        try:
            ids = self.list_profile_ids()
        except PhotaError as error:
            return False, f"Phota connection failed: {error}"
        return True, f"Connected to {self.settings.base_url}: the account has {len(ids)} profile(s)."

    # --- profiles ---------------------------------------------------------------------------------------------

    def list_profile_ids(self, tag: str | None = None) -> list[str]:
        """The account's profile ids, in the API's order.

        :param tag: only the profiles created with this tag.
        """
        raise_if_invalid(contract.validate_tag(tag), "list_profile_ids")
        return self.client.send(contract.list_profile_ids_request(tag), _profile_ids)

    def create_profile(
        self,
        image_urls: Sequence[str],
        *,
        tag: str | None = None,
        training_tier: str = "standard",
        known_profile_ids: Sequence[str] | None = None,
    ) -> str:
        """Create a profile and start its (paid) training; returns the profile id.

        Retrying a create is where duplicates come from, so it is careful. With a ``tag``, an ambiguous failure
        (500/502/504, dropped connection, timeout) is followed by a look at the tag's profiles, and a profile that
        appeared since the first attempt is returned instead of creating another; after a read timeout the first
        attempt may still be running on the server, so the look lasts up to the read timeout before a resend.
        Without a tag there is no way to recognise our own profile, so only failures that surely did nothing (429,
        503, connection refused) are retried; an ambiguous one is raised.

        :param image_urls: public http(s) URLs of the training photos: 10-50 for ``standard``, 5-10 for ``fast``.
        :param tag: a label (1-128 characters) to find the profile by later; it also makes retries safe.
        :param training_tier: ``"standard"`` or ``"fast"`` (cheaper, fewer photos).
        :param known_profile_ids: with a ``tag``, the tag's profile ids as the caller has just listed them (for
            :meth:`latest_profile`); the look at the tag before the first attempt is then not sent again.
        """
        body = contract.compact({"image_urls": image_urls, "tag": tag, "training_tier": training_tier})
        raise_if_invalid(contract.validate_create_profile(body), "create_profile")
        request = contract.create_profile_request(image_urls, tag=tag, training_tier=training_tier)
        if tag is None:
            retry_if = lambda error: is_retryable(error) and surely_not_processed(error)  # noqa: E731
            return self.client.send(request, _profile_id, retry_if)

        existing = set(self.list_profile_ids(tag) if known_profile_ids is None else known_profile_ids)
        last_error: Exception | None = None
        for attempt in self.settings.retry.attempts(self.log, tags=metrics.request_tags(request)):
            with attempt:
                created: list[str] = []
                if last_error is not None and not surely_not_processed(last_error):
                    # After a timeout the first attempt may still be in flight: give it the read timeout's budget.
                    wait = self.settings.read_timeout if isinstance(last_error, PhotaTimeoutError) else 0.0
                    created = self._profiles_created_since(tag, existing, wait)
                if created:
                    self.log.warning("An earlier attempt created profile %s (tag %r); using it", created[-1], tag)
                    profile_id = created[-1]
                else:
                    try:
                        profile_id = parsed(request, self.client.send_once(request), _profile_id)
                    except Exception as error:
                        last_error = error
                        raise
        return profile_id

    def _profiles_created_since(self, tag: str, existing: set[str], wait_seconds: float) -> list[str]:
        """Profiles of ``tag`` that are not in ``existing``, looking again (with backoff) for up to ``wait_seconds``."""
        deadline = time.monotonic() + wait_seconds
        pause = self.settings.retry.initial_wait
        while True:
            created = [pid for pid in self.list_profile_ids(tag) if pid not in existing]
            remaining = deadline - time.monotonic()
            if created or remaining <= 0:
                return created
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, self.settings.retry.max_wait)

    def latest_profile(
        self, tag: str, *, ready_only: bool = False, known_profile_ids: Sequence[str] | None = None
    ) -> ProfileState | None:
        """The newest profile of ``tag`` that is usable, or ``None``.

        :param tag: the profile tag to look up.
        :param ready_only: only a READY profile counts. By default a profile still training counts too; one that
            ended in ERROR or INACTIVE never does (paying again is the point of running again then).
        :param known_profile_ids: the tag's profile ids, in the API's order, as the caller has just listed them
            (to pass the same list to :meth:`create_profile` next); they are not listed again.
        """
        statuses = contract.PROFILE_SUCCESS_STATUSES if ready_only else contract.PROFILE_REUSABLE_STATUSES
        profile_ids = self.list_profile_ids(tag) if known_profile_ids is None else known_profile_ids
        for profile_id in reversed(profile_ids):
            state = self.get_profile_status(profile_id)
            if state.status in statuses:
                return state
        return None

    def get_profile_status(self, profile_id: str) -> ProfileState:
        """The profile's training status (``VALIDATING`` .. ``READY``, ``ERROR``, ``INACTIVE``) and message.

        :param profile_id: the id :meth:`create_profile` returned.
        """
        request = contract.profile_status_request(_check_id("profile_id", profile_id, "get_profile_status"))
        return self.client.send(request, _profile_state)

    def wait_for_profile(
        self, profile_id: str, *, poll_interval: float = 30.0, timeout: float | None = None
    ) -> ProfileState:
        """Poll a profile's training from the worker until READY, ERROR or INACTIVE (returned either way). A
        deferrable task waits in the triggerer instead.

        :param profile_id: the id :meth:`create_profile` returned.
        :param poll_interval: seconds between two polls (the service suggests 10-30 s).
        :param timeout: seconds to wait at most, then :class:`TimeoutError`; ``None`` waits as long as it takes.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            state = self.get_profile_status(profile_id)
            if state.is_ready or state.is_failed:
                return state
            if deadline is not None and time.monotonic() + poll_interval > deadline:
                raise TimeoutError(f"Profile {profile_id} is still {state.status} after {timeout:g} s")
            time.sleep(poll_interval)

    def get_profile_picture(self, profile_id: str) -> bytes:
        """The JPEG picture of a READY profile (404 before).

        :param profile_id: the profile's id.
        """
        request = contract.profile_picture_request(_check_id("profile_id", profile_id, "get_profile_picture"))
        return bytes(self.client.send(request).body)

    def delete_profile(self, profile_id: str) -> None:
        """Delete a profile. A 404 after an attempt that may have been processed (its answer lost to a timeout,
        a dropped connection or a 5xx) means that attempt deleted it: done, not an error.

        :param profile_id: the profile's id; a profile that never existed raises :class:`PhotaNotFoundError`.
        """
        request = contract.delete_profile_request(_check_id("profile_id", profile_id, "delete_profile"))
        maybe_deleted = False
        for attempt in self.settings.retry.attempts(self.log, tags=metrics.request_tags(request)):
            with attempt:
                try:
                    self.client.send_once(request)
                except PhotaNotFoundError:
                    if not maybe_deleted:
                        raise
                    self.log.info("Profile %s is gone: an earlier attempt whose answer was lost deleted it", profile_id)
                except Exception as error:
                    maybe_deleted = maybe_deleted or not surely_not_processed(error)
                    raise

    # --- images -----------------------------------------------------------------------------------------------

    def edit(self, prompt: str, images: Sequence[str], **options: Any) -> ImageResult:
        """Edit images with a prompt (synchronous, paid per output image).

        :param prompt: what to change; ``[[profile_id]]`` puts a trained identity in.
        :param images: 1-10 input images, each base64 or an http(s) URL.
        :param options: the API's other fields, e.g. ``profile_ids``, ``num_output_images``, ``aspect_ratio``,
            ``resolution``, ``base_model``, ``output_format``, ``response_mode``; see :meth:`run_image`.
        """
        return self.run_image(Endpoint.EDIT, {"prompt": prompt, "images": list(images), **options})

    def generate(self, prompt: str, **options: Any) -> ImageResult:
        """Generate images from a prompt (synchronous, paid per output image).

        :param prompt: the picture to make; ``[[profile_id]]`` puts a trained identity in.
        :param options: the API's other fields, as for :meth:`edit` (no ``images``).
        """
        return self.run_image(Endpoint.GENERATE, {"prompt": prompt, **options})

    def enhance(self, image: str, **options: Any) -> ImageResult:
        """Enhance one image to 2K (synchronous, paid per output image).

        :param image: the input image, base64 or an http(s) URL.
        :param options: the API's other fields, e.g. ``profile_ids``, ``prompt``, ``output_format``.
        """
        return self.run_image(Endpoint.ENHANCE, {"image": image, **options})

    def remix(self, input_image: str, reference_image: str, **options: Any) -> ImageResult:
        """Remix an image in the style of a reference, at 2K (synchronous, paid per output image).

        :param input_image: the image to remix, base64 or an http(s) URL.
        :param reference_image: the style reference, base64 or an http(s) URL.
        :param options: the API's other fields, e.g. ``profile_ids``, ``prompt``, ``output_format``.
        """
        images = {"input_image": input_image, "reference_image": reference_image}
        return self.run_image(Endpoint.REMIX, {**images, **options})

    @staticmethod
    def validate_image_options(endpoint: Endpoint | str, options: Mapping[str, Any]) -> dict[str, Any]:
        """The request body for ``options``, or a :class:`PhotaValidationError` naming every bad field. Nothing is
        sent, so an operator can check its arguments before any paid request.

        :param endpoint: ``"edit"``, ``"generate"``, ``"enhance"`` or ``"remix"``.
        :param options: the request's fields; ``None`` values are dropped (an unset option is not sent).
        """
        body = contract.compact(options)
        raise_if_invalid(contract.validate_image_request(endpoint, body), f"/{Endpoint(endpoint).value}")
        return body

    def run_image(self, endpoint: Endpoint | str, options: Mapping[str, Any]) -> ImageResult:
        """A synchronous image request; use :meth:`submit_job` for the API's async mode.

        The API has no idempotency key for a synchronous call: a retry after a read timeout can be charged again
        (async jobs cannot). In ``response_mode="urls"`` the result holds signed URLs (valid 24 h) to pass to
        :meth:`download`, which streams. In bytes mode (the API's default) the images come inside the JSON answer,
        parsed with ``json.loads`` and ``base64.b64decode``: the peak memory is about 4x the decoded image bytes
        (the raw body, its text and the base64 strings are alive at once while the JSON is parsed), so four
        24 MiB outputs take about 384 MiB (benchmark 4). Prefer urls mode for large outputs.

        :param endpoint: ``"edit"``, ``"generate"``, ``"enhance"`` or ``"remix"``.
        :param options: the request's fields, as for :meth:`validate_image_options`; no async fields.
        """
        async_fields = sorted(contract.ASYNC_FIELDS & {k for k, v in options.items() if v is not None})
        if async_fields:
            violations = [Violation(name, "belongs to async mode", "use submit_job()") for name in async_fields]
            raise_if_invalid(violations, "run_image")
        body = self.validate_image_options(endpoint, options)
        return self.client.send(contract.image_request(endpoint, body), _image_result)

    def submit_job(
        self,
        endpoint: Endpoint | str,
        options: Mapping[str, Any],
        *,
        client_request_id: str,
        callback_url: str | None = None,
    ) -> JobHandle:
        """Submit an async job (202); its result is download URLs. Resubmitting the same ``client_request_id``
        returns the original job, so this is retried freely: a retry never creates a second job or charge.

        :param endpoint: ``"edit"``, ``"generate"``, ``"enhance"`` or ``"remix"``.
        :param options: the request's fields, as for :meth:`run_image`.
        :param client_request_id: the idempotency key, 1-128 characters of ``[A-Za-z0-9._:-]`` (api-decisions D4).
        :param callback_url: an https URL the service POSTs the finished job to (api-decisions D6).
        """
        body = contract.job_body(endpoint, options, client_request_id=client_request_id, callback_url=callback_url)
        body = self.validate_image_options(endpoint, body)
        return self.client.send(contract.image_request(endpoint, body), _job_handle)

    def get_job(self, job_id: str) -> JobState:
        """The job's state; once SUCCEEDED its ``result`` holds the download URLs, once FAILED its error.

        :param job_id: the id :meth:`submit_job` returned.
        """
        return self.client.send(contract.job_request(_check_id("job_id", job_id, "get_job")), _job_state)

    def wait_for_job(self, job_id: str, *, poll_interval: float = 5.0, timeout: float | None = None) -> JobState:
        """Poll a job from the worker until it is terminal (SUCCEEDED or FAILED, returned either way). A deferrable
        operator waits in the triggerer instead.

        :param job_id: the id :meth:`submit_job` returned.
        :param poll_interval: seconds between two polls.
        :param timeout: seconds to wait at most, then :class:`TimeoutError`; ``None`` waits as long as it takes.
        """
        states, timed_out = self.wait_for_jobs([job_id], poll_interval=poll_interval, timeout=timeout, first_look=True)
        if timed_out:
            raise TimeoutError(f"Phota job {job_id} is not finished after {timeout:g} s")
        return states[job_id]

    def wait_for_jobs(
        self,
        job_ids: Sequence[str],
        *,
        poll_interval: float = 5.0,
        timeout: float | None = None,
        first_look: bool = False,
    ) -> tuple[dict[str, JobState], bool]:
        """Poll jobs from the worker, each at most once per ``poll_interval``, until all are terminal or ``timeout``
        passed (then one more look); returns the terminal states seen and whether the wait timed out. A job the API
        no longer knows (404) is left out, for the caller to ask about; a transient error is retried next round.

        :param job_ids: the ids :meth:`submit_job` returned.
        :param poll_interval: seconds between two polls of the same job.
        :param timeout: seconds to wait at most; ``None`` waits as long as it takes.
        :param first_look: look once before the first sleep (the caller has not just looked).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        terminal: dict[str, JobState] = {}
        outstanding = list(dict.fromkeys(job_ids))
        final = False
        while outstanding:
            if not first_look:
                remaining = poll_interval if deadline is None else min(poll_interval, deadline - time.monotonic())
                time.sleep(max(0.0, remaining))
            first_look = False
            final = deadline is not None and time.monotonic() >= deadline
            for job_id in list(outstanding):
                try:
                    state = self.get_job(job_id)
                except PhotaNotFoundError:
                    outstanding.remove(job_id)
                    continue
                except PhotaError as error:
                    if not is_retryable(error):
                        raise
                    self.log.warning("Phota job %s: transient error, still waiting: %s", job_id, error)
                    continue
                if state.is_terminal:
                    terminal[job_id] = state
                    outstanding.remove(job_id)
            if final and outstanding:
                return terminal, True
        return terminal, False

    def download(self, url: str, destination: str | os.PathLike[str] | ObjectStoragePath) -> int:
        """Stream a signed download URL to a file or storage path (atomically); returns the bytes written.

        The body is streamed in 1 MiB chunks, so memory stays flat whatever the image size; a transfer cut midway
        is retried whole and never leaves a partial file. The API key is not sent: the URL carries its own token.

        :param url: a signed URL from an image result's ``download_urls`` (valid 24 h).
        :param destination: a local path, or a storage path or URI (``s3://...``) through Airflow's object storage.
        """
        if not contract.is_http_url(url):
            raise_if_invalid([Violation("url", f"{url!r} is not a download URL", "an http(s) URL")], "download")
        target = storage.storage_path(destination)
        return self.client.download(url, lambda chunks: storage.atomic_write(target, chunks))

    def get_webhook_secret(self) -> str:
        """The account's secret that signs job callbacks (api-decisions D6)."""
        return self.client.send(contract.webhook_secret_request(), _webhook_secret)

    def verify_callback(self, raw_body: bytes, signature: str | None, *, secret: str | None = None) -> bool:
        """Check a callback's ``X-Phota-Signature`` in constant time.

        :param raw_body: the callback's body exactly as received (the signature covers the bytes).
        :param signature: the ``X-Phota-Signature`` header; missing means not verified.
        :param secret: the webhook secret; fetched with :meth:`get_webhook_secret` when not given.
        """
        return contract.verify_callback_signature(secret or self.get_webhook_secret(), raw_body, signature)

    # --- async (triggers) -------------------------------------------------------------------------------------

    async def _aclient(self) -> AsyncClient:
        """The async client. The connection is fetched with ``aget_connection`` (a synchronous fetch inside the
        triggerer's event loop crashes on Airflow 3), and shared with the other hooks of the loop for a minute."""
        if self._async_client is None:
            if "aiohttp" not in sys.modules:  # its first import takes ~0.4 s: not on the triggerer's event loop
                await asyncio.to_thread(importlib.import_module, "aiohttp")
            conn, extras = await _loop_connections.get(self.phota_conn_id, self._afetch_connection)
            self._async_client = AsyncClient(self._settings_from(conn, extras), self.log)
        return self._async_client

    async def _afetch_connection(self) -> tuple[Any, Mapping[str, Any]]:
        """The connection and its extras, through common-compat: ``BaseHook.aget_connection`` exists only from
        Airflow 3.1, and before 3.3.2 it (like ``extra_dejson``) masks secrets with a synchronous call that can
        deadlock the triggerer's event loop."""
        from airflow.providers.common.compat.connection import get_async_connection, get_async_extra_dejson

        conn = await get_async_connection(self.phota_conn_id, self)
        return conn, await get_async_extra_dejson(conn)

    async def alist_profile_ids(self, tag: str | None = None) -> list[str]:
        """:meth:`list_profile_ids` for the event loop (triggers).

        :param tag: only the profiles created with this tag.
        """
        raise_if_invalid(contract.validate_tag(tag), "list_profile_ids")
        client = await self._aclient()
        return await client.send(contract.list_profile_ids_request(tag), _profile_ids)

    async def aget_profile_status(self, profile_id: str) -> ProfileState:
        """:meth:`get_profile_status` for the event loop (triggers).

        :param profile_id: the profile's id.
        """
        request = contract.profile_status_request(_check_id("profile_id", profile_id, "aget_profile_status"))
        client = await self._aclient()
        return await client.send(request, _profile_state)

    async def aget_job(self, job_id: str) -> JobState:
        """:meth:`get_job` for the event loop (triggers).

        :param job_id: the job's id.
        """
        client = await self._aclient()
        return await client.send(contract.job_request(_check_id("job_id", job_id, "aget_job")), _job_state)

    async def aclose(self) -> None:
        """Release this hook's share of the event loop's HTTP session (the last share closes it); the next async
        call takes a new share. ``async with PhotaHook() as hook:`` does it. A session also closes with its event
        loop (``asyncio.run()`` closes it before it closes the loop), so a hook that is never closed leaks nothing
        either."""
        if self._async_client is not None:
            await self._async_client.aclose()

    async def __aenter__(self) -> PhotaHook:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
