"""Operators for the studio endpoints: edit, generate, enhance and remix.

Every operator checks all of its arguments before the first paid request: enums, counts, prompts, that every input
file is an image, that the profile ids are ids, and that the outputs can be kept (the output folder is writable,
the storage scheme's filesystem is installed). A bad argument fails the task without retries, naming the field and
what it allows, and nothing is charged. Images are written to ``output_path`` through Airflow object storage
(atomically, under names unique per task, map index and job), and the task returns a small
:class:`~airflow_provider_phota.results.ImageOperatorResult` for XCom. Image bytes never go to XCom.

Two ways to call the API:

* ``use_async_job=True`` (default): the API's async job, with a ``client_request_id`` that is stable for the same
  DAG run, task, map index and request. A task retried after a crash, a lost answer or a timeout gets the original
  job back: one job, one charge. A retry after the job itself FAILED with a retryable error submits a new job (see
  :func:`derived_client_request_id`). With ``deferrable=True`` the wait runs on the triggerer, otherwise the worker
  polls.
* ``use_async_job=False``: one synchronous request. The API has no idempotency key for synchronous calls, so a
  retry after an ambiguous failure (dropped connection, read timeout) may be charged again; prefer async jobs for
  costly batches.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import conf

from airflow_provider_phota import contract
from airflow_provider_phota._compat import AirflowException, AirflowFailException, BaseOperator, Context
from airflow_provider_phota.contract import (
    IMAGE_FORMATS,
    Endpoint,
    ImageResult,
    JobState,
    JobStatus,
    Violation,
    base64_head,
    image_format,
)
from airflow_provider_phota.events import EVENT_ERROR, error_is_retryable
from airflow_provider_phota.exceptions import PhotaCostLimitError, PhotaJobFailedError, PhotaValidationError
from airflow_provider_phota.operators.base import (
    DEFAULT_CONN_ID,
    PhotaHookMixin,
    fail_fast_on_permanent_errors,
    parse_list_argument,
    record_asset_events,
    validate_event,
    wait_argument_violations,
    warn_unused_wait_arguments,
)
from airflow_provider_phota.waiting import DEFER_TIMEOUT_GRACE_SECONDS

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_phota.lineage import LineageRecord
    from airflow_provider_phota.pricing import Cost
    from airflow_provider_phota.results import ImageOperatorResult

DEFAULT_POLL_INTERVAL = 5.0
DEFAULT_JOB_TIMEOUT = 3600.0
MAX_FAILED_JOBS = 10  # a request whose jobs FAILED this many times stops paying for new ones
REATTACH_AGE_SECONDS = 5.0  # a job created this long before our submit was an earlier try's
LIST_FIELDS = frozenset({"images", "profile_ids"})  # may arrive as a rendered string from a template
URL_LIFETIME_WARNING = "Download URLs expire after 24 hours: copy the images before then, or set output_path."
_BASE64_PATTERN = re.compile(r"[A-Za-z0-9+/\s]+={0,2}")
_INTEGER = re.compile(r"\s*[+-]?\d+\s*")
_KEY_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def stable_client_request_id(context: Context, endpoint: Endpoint | str, body: Mapping[str, Any]) -> str:
    """The async idempotency key: the same DAG run, task, map index and request always give the same key.

    A retried or cleared task therefore resubmits with the key of its first try and the service returns the
    original job, never a second charge (api-decisions D4). A changed request (another prompt) gives a new key.
    """
    ti = context["ti"]
    identity = [ti.dag_id, ti.run_id, ti.task_id, getattr(ti, "map_index", -1), str(Endpoint(endpoint)), body]
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()
    readable = _KEY_SAFE.sub("-", ti.task_id)[:48]
    return f"af:{readable}:{digest[:48]}"


def derived_client_request_id(client_request_id: str, failed_job_id: str) -> str:
    """The key of the job that replaces ``failed_job_id``, which ``client_request_id`` returned FAILED.

    Resubmitting the same key would return the same FAILED job forever. The new key is derived from both, so it is
    as stable as the first one: every later try of the task walks the same chain of keys (key, then the key after
    its failed job, ...) and reattaches to the first job that did not fail instead of paying for another.
    """
    digest = hashlib.sha256(f"{client_request_id}\x00{failed_job_id}".encode()).hexdigest()
    readable = _KEY_SAFE.sub("-", client_request_id.removeprefix("af:").split(":")[0])[:48] or "job"
    return f"af:{readable}:{digest[:48]}"


def _looks_like_base64(value: str) -> bool:
    return len(value) >= 16 and _BASE64_PATTERN.fullmatch(value) is not None and base64_head(value) is not None


def classify_image(field: str, value: Any) -> tuple[str, Any] | Violation:
    """``("url"|"base64"|"path", value)`` for an image argument, or a violation naming the field.

    Accepted: an http(s) URL, a base64 string, an ``ObjectStoragePath``, a storage URI (``s3://...``,
    ``file://...``) whose filesystem is installed, or a local file path.
    """
    from airflow_provider_phota.storage import storage_path, validate_storage_uri

    allowed = "an http(s) URL, a base64 image, a local file path or a storage URI (file://, s3://, ...)"
    if hasattr(value, "protocol") and hasattr(value, "read_bytes"):  # an ObjectStoragePath
        return ("path", value)
    if not isinstance(value, str) or not value.strip():
        return Violation(field, f"{value!r} is not an image reference", allowed)
    text = value.strip()
    if text.startswith(("http://", "https://")):
        return (
            ("url", text) if contract.is_http_url(text) else Violation(field, f"{text!r} is a malformed URL", allowed)
        )
    if "://" in text[:24]:
        return validate_storage_uri(field, text) or ("path", storage_path(text))
    if len(text) < 4096 and (text.startswith(("/", "~", "./", "../")) or os.path.exists(text)):
        return ("path", storage_path(text))
    if _looks_like_base64(text):
        return ("base64", text)
    return Violation(field, f"{text[:60]!r} is not a URL, a base64 image or an existing file", allowed)


def resolve_images(endpoint: Endpoint, options: Mapping[str, Any], problems: list[Violation]) -> dict[str, Any]:
    """``options`` with the image fields of ``endpoint`` replaced by what the API takes: URLs and base64 as given,
    files read and encoded. What is wrong is appended to ``problems``, naming the field (``images[1]``...)."""
    resolved = dict(options)
    for name in contract.IMAGE_FIELDS[endpoint]:
        value = options.get(name)
        if value is None:
            continue
        if name != "images":
            resolved[name] = _resolve_image(name, value, problems)
        elif isinstance(value, list):  # list arguments are normalised by the caller
            resolved[name] = [_resolve_image(f"images[{i}]", item, problems) for i, item in enumerate(value)]
        else:
            problems.append(Violation("images", f"must be a list, got {type(value).__name__}", "a list of images"))
    return resolved


def _resolve_image(field: str, value: Any, problems: list[Violation]) -> Any:
    kind = classify_image(field, value)
    if isinstance(kind, Violation):
        problems.append(kind)
        return value
    category, reference = kind
    if category in ("url", "base64"):
        return reference  # the service fetches a URL; the contract checks that base64 is an image
    return _read_image(field, reference, problems)


def _read_image(field: str, path: ObjectStoragePath, problems: list[Violation]) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        problems.append(Violation(field, f"{path} does not exist", "an existing file"))
        return ""
    except (OSError, ValueError) as error:
        problems.append(Violation(field, f"{path} cannot be read: {error}", "a readable file"))
        return ""
    if image_format(data[:16]) is None:
        problems.append(Violation(field, f"{path} is not an image", IMAGE_FORMATS))
    return base64.b64encode(data).decode("ascii")


def missing_prompt(endpoint: Endpoint, prompt: Any) -> list[Violation]:
    """The violation of an endpoint that needs a prompt (``/edit``, ``/generate``) given none or an empty one."""
    if prompt is not None and not (isinstance(prompt, str) and not prompt.strip()):
        return []
    message = "is required" if prompt is None else "is empty"
    return [Violation("prompt", message, f"a non-empty prompt: /{endpoint.value} needs one")]


def _parse_timestamp(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _is_earlier_job(state: JobState, submitted_at: float) -> bool:
    """Whether the job the submit returned existed before it: it has moved on from QUEUED, or it was created
    well before the submit (an earlier try's job that is still queued)."""
    if state.status != JobStatus.QUEUED:
        return True
    created = _parse_timestamp(state.created_at)
    return created is not None and created < submitted_at - REATTACH_AGE_SECONDS


class _PhotaImageOperator(PhotaHookMixin, BaseOperator):
    """Shared machinery of the four studio operators; subclasses declare their endpoint and arguments."""

    endpoint: ClassVar[Endpoint]
    prompt_required: ClassVar[bool] = False
    template_fields: Sequence[str] = (
        "phota_conn_id",
        "output_path",
        "output_format",
        "response_mode",
        "client_request_id",
        "max_cost_usd",
    )
    ui_color = "#ddd6fe"
    _lineage: LineageRecord | None = None  # what the task read and wrote, for OpenLineage

    def __init__(
        self,
        *,
        output_path: str | None = None,
        output_format: str = "png",
        response_mode: str | None = None,
        use_async_job: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: float = DEFAULT_JOB_TIMEOUT,
        client_request_id: str | None = None,
        max_cost_usd: float | str | None = None,
        phota_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.output_path = output_path
        self.output_format = output_format
        self.response_mode = response_mode
        self.use_async_job = use_async_job
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.client_request_id = client_request_id
        self.max_cost_usd = max_cost_usd
        self.phota_conn_id = phota_conn_id

    # --- request ----------------------------------------------------------------------------------------------

    def _operator_violations(self) -> list[Violation]:
        """What is wrong with the operator's own arguments (the API's fields are checked by the contract)."""
        from airflow_provider_phota.pricing import parse_limit
        from airflow_provider_phota.storage import validate_output_folder

        problems = []
        limit = parse_limit("max_cost_usd", self.max_cost_usd)
        if isinstance(limit, Violation):
            problems.append(limit)
        if not isinstance(self.use_async_job, bool):
            problems.append(Violation("use_async_job", f"{self.use_async_job!r} is not a boolean", "True, False"))
        if self.use_async_job is not False and self.response_mode not in (None, "urls"):
            problems.append(Violation("response_mode", "async jobs always return download URLs", "'urls' or omit"))
        if self.use_async_job is False and self.response_mode == "bytes" and self.output_path is None:
            problems.append(
                Violation(
                    "response_mode",
                    "'bytes' without output_path would pay for images that are then thrown away",
                    "'urls' (the default), or 'bytes' only with output_path",
                )
            )
        problems += wait_argument_violations(self)
        if self.output_path is not None:
            problem = validate_output_folder("output_path", self.output_path)
            if problem:
                problems.append(problem)
        if self.prompt_required:
            problems += missing_prompt(self.endpoint, getattr(self, "prompt", None))
        return problems

    def _raw_options(self) -> dict[str, Any]:
        """The API fields this operator sends, read from its (rendered) attributes."""
        fields = contract.ENDPOINT_FIELDS[self.endpoint] - contract.ASYNC_FIELDS
        options = {name: getattr(self, name, None) for name in sorted(fields)}
        for name in LIST_FIELDS & options.keys():
            if options[name] is not None:
                options[name] = parse_list_argument(options[name], split=name != "images")
        count = options.get("num_output_images")
        if isinstance(count, str) and _INTEGER.fullmatch(count):  # rendered from a template
            options["num_output_images"] = int(count)
        if self.use_async_job is False:
            options["response_mode"] = self.response_mode or "urls"
        else:
            options.pop("response_mode", None)  # an async job always answers with URLs
        return contract.compact(options)

    def prepare_request(self, context: Context) -> tuple[dict[str, Any], str | None]:
        """Check every argument and build the request; no request is sent.

        Returns the API options and, for an async job, its ``client_request_id`` (``None`` for a synchronous call).
        Raises :class:`PhotaValidationError` naming every bad field.
        """
        problems = self._operator_violations()
        options = resolve_images(self.endpoint, self._raw_options(), problems)
        key = None
        if self.use_async_job is False:
            body = options
        else:
            key = self.client_request_id or stable_client_request_id(context, self.endpoint, options)
            body = contract.job_body(self.endpoint, options, client_request_id=key)
        named = {problem.field for problem in problems}  # one message per field: the operator's is more precise
        problems += [v for v in contract.validate_image_request(self.endpoint, body) if v.field not in named]
        if problems:
            raise PhotaValidationError(problems, context=type(self).__name__)
        return options, key

    def check_cost_limit(self, options: Mapping[str, Any]) -> Cost | None:
        """With ``max_cost_usd``, refuse a request whose worst-case cost (every output with identity) is above it,
        or unknown, before anything is sent: :class:`PhotaCostLimitError`. Returns the estimate (``None`` without
        a limit). ``options`` come from :meth:`prepare_request`, which has validated ``max_cost_usd``."""
        from airflow_provider_phota.pricing import estimate_worst_case, limit_refusal, parse_limit, usd

        limit = parse_limit("max_cost_usd", self.max_cost_usd)
        if limit is None or isinstance(limit, Violation):
            return None
        estimate = estimate_worst_case(self.endpoint, options, self.hook.settings.prices)
        refusal = limit_refusal(estimate, limit, where=f"connection {self.phota_conn_id!r}")
        if refusal:
            raise PhotaCostLimitError(refusal)
        assert estimate.usd is not None  # an unknown cost is refused
        self.log.info("Worst-case cost %s fits max_cost_usd %s (%s)", usd(estimate.usd), usd(limit), estimate.basis)
        return estimate

    def _warn_about_ineffective_arguments(self) -> None:
        if self.use_async_job is False:
            warn_unused_wait_arguments(
                self,
                "with use_async_job=False: one synchronous request, no job to wait for or key to send",
                poll_interval=DEFAULT_POLL_INTERVAL,
                timeout=DEFAULT_JOB_TIMEOUT,
                others=["client_request_id"] if self.client_request_id is not None else [],
            )

    # --- execution --------------------------------------------------------------------------------------------

    def execute(self, context: Context) -> ImageOperatorResult:
        self._warn_about_ineffective_arguments()
        with fail_fast_on_permanent_errors():
            options, key = self.prepare_request(context)
            self.check_cost_limit(options)
            if key is None:
                self.log.info("Sending a synchronous /%s request", self.endpoint.value)
                result = self.hook.run_image(self.endpoint, options)
                return self._deliver(context, result, job_id=None, client_request_id=None)
            state, key = self._submit(options, key)
            if not state.is_terminal:
                if self.deferrable:
                    self._defer(state.job_id, key)
                state = self._wait_in_worker(state.job_id)
            return self._finish_job(context, state, key)

    def _submit(self, options: dict[str, Any], key: str) -> tuple[JobState, str]:
        """Submit the job and look at it once. A key that returns a FAILED job whose error a new job may not have
        leads to a derived key (:func:`derived_client_request_id`), at most :data:`MAX_FAILED_JOBS` times."""
        for _ in range(MAX_FAILED_JOBS):
            submitted_at = time.time()
            handle = self.hook.submit_job(self.endpoint, options, client_request_id=key)
            state = self.hook.get_job(handle.job_id)
            if _is_earlier_job(state, submitted_at):
                self.log.info("Reattached to job %s (%s, client_request_id %s)", state.job_id, state.status, key)
            else:
                self.log.info("Submitted /%s job %s (client_request_id %s)", self.endpoint.value, state.job_id, key)
            if state.status != JobStatus.FAILED:
                return state, key
            failure = PhotaJobFailedError(state.job_id, state.error_type, state.error_message)
            if not failure.retry_task:
                raise failure
            key = derived_client_request_id(key, state.job_id)
            self.log.warning(
                "Job %s had failed (%s): submitting a new job with client_request_id %s",
                state.job_id,
                failure.error_type,
                key,
            )
        raise AirflowFailException(
            f"{MAX_FAILED_JOBS} Phota jobs of this request FAILED (the last one {state.job_id}: "
            f"{state.error_type}: {state.error_message}); not paying for another. Change the request or set "
            "client_request_id to start over."
        )

    def _wait_in_worker(self, job_id: str) -> JobState:
        """Poll the job from the worker (:meth:`PhotaHook.wait_for_job`) until it is terminal, for at most
        ``timeout`` seconds; then the try fails, and its retry waits for the same job."""
        try:
            return self.hook.wait_for_job(job_id, poll_interval=self.poll_interval, timeout=self.timeout)
        except TimeoutError as error:
            raise AirflowException(
                f"{error}; a retry resubmits the same client_request_id and waits for the same job"
            ) from None

    def _defer(self, job_id: str, key: str) -> None:
        from airflow_provider_phota.triggers.phota import PhotaJobTrigger

        self.log.info("Deferring until job %s is done (polling every %.0f s)", job_id, self.poll_interval)
        self.defer(
            trigger=PhotaJobTrigger(job_id, self.phota_conn_id, self.poll_interval, time.time() + self.timeout),
            method_name="execute_complete",
            kwargs={"client_request_id": key},
            timeout=timedelta(seconds=self.timeout + DEFER_TIMEOUT_GRACE_SECONDS),
        )

    def execute_complete(
        self, context: Context, event: Mapping[str, Any] | None = None, client_request_id: str | None = None
    ) -> ImageOperatorResult:
        """Resume after the trigger: fetch the job once more (the authoritative answer) and store its outputs.

        :param context: the task context.
        :param event: the trigger's event.
        :param client_request_id: the key the job was submitted with (passed by the deferral).
        """
        event = validate_event(event, f"{type(self).__name__} {self.task_id}")
        job_id = str(event.get("job_id") or "")
        if event["status"] == EVENT_ERROR and not error_is_retryable(event):
            raise AirflowFailException(f"Waiting for Phota job {job_id} failed: {event.get('message')}")
        with fail_fast_on_permanent_errors():
            state = self.hook.get_job(job_id)
            if not state.is_terminal:
                raise AirflowException(
                    f"Phota job {job_id} is still {state.status} ({event['status']}: {event.get('message') or ''}); "
                    "a retry resubmits with the same client_request_id and resumes waiting for the same job"
                )
            return self._finish_job(context, state, client_request_id)

    def _finish_job(self, context: Context, state: JobState, key: str | None) -> ImageOperatorResult:
        if not state.succeeded or state.result is None:
            raise PhotaJobFailedError(state.job_id, state.error_type, state.error_message)
        return self._deliver(context, state.result, job_id=state.job_id, client_request_id=key)

    # --- outputs ----------------------------------------------------------------------------------------------

    def _output_stem(self, context: Context, ref: str) -> str:
        ti = context["ti"]
        map_index = getattr(ti, "map_index", -1)
        suffix = f"-map{map_index}" if map_index is not None and map_index >= 0 else ""
        return f"{_KEY_SAFE.sub('-', self.task_id)}{suffix}-{_KEY_SAFE.sub('-', ref)[-24:]}"

    def _deliver(
        self, context: Context, result: ImageResult, *, job_id: str | None, client_request_id: str | None
    ) -> ImageOperatorResult:
        from airflow_provider_phota import metrics
        from airflow_provider_phota.pricing import cost_of

        request = self._raw_options()
        cost = cost_of(
            self.endpoint,
            request,
            self.hook.settings.prices,
            count=result.count,
            known_subjects=result.known_subjects,
        )
        self.log.info(
            "Cost: %s. Billing: %d output image(s); identity recognised %d time(s): %s",
            cost.basis,
            result.count,
            sum(result.known_subjects.values()),
            result.known_subjects or "none",
        )
        metrics.record_images(self.endpoint.value, request, result.count, cost.usd)
        if self.output_path is None:
            self.log.warning(URL_LIFETIME_WARNING)
            output_uris, download_urls = [], list(result.download_urls)
        else:
            ref = job_id or result.request_id or "sync"
            output_uris, download_urls = self._write_outputs(context, result, ref), []
        summary: ImageOperatorResult = {
            "endpoint": self.endpoint.value,
            "job_id": job_id,
            "client_request_id": client_request_id,
            "request_id": result.request_id,
            "count": result.count,
            "known_subjects": dict(result.known_subjects),
            "output_uris": output_uris,
            "download_urls": download_urls,
            **cost.as_extra(),  # type: ignore[typeddict-item]
        }
        extra = {key: value for key, value in summary.items() if key != "download_urls"}
        record_asset_events(context, list(self.outlets), extra)
        self._lineage = self._lineage_record(request, summary, cost)
        return summary

    def _lineage_record(self, request: Mapping[str, Any], summary: ImageOperatorResult, cost: Cost) -> LineageRecord:
        """Inputs (image URLs without their query, storage URIs, base64 by hash; the profiles used), outputs (the
        written files, else the download URLs without their tokens) and the run facet of this task."""
        from airflow_provider_phota import lineage, metrics

        record = lineage.LineageRecord()
        for name in contract.IMAGE_FIELDS[self.endpoint]:
            value = request.get(name)
            items = value if isinstance(value, list) else [value] if value is not None else []
            for index, item in enumerate(items):
                kind = classify_image(name if name != "images" else f"images[{index}]", item)
                if not isinstance(kind, Violation):
                    record.inputs.append(lineage.image_input_dataset(*kind))
        profile_ids = request.get("profile_ids") if self.endpoint is not Endpoint.GENERATE else None
        record.profiles_used = contract.referenced_profiles(request.get("prompt"), profile_ids)
        record.outputs += [lineage.storage_dataset(uri) for uri in summary["output_uris"]]
        record.outputs += [lineage.url_dataset(url) for url in summary["download_urls"]]
        base_model = metrics.studio_tags(self.endpoint.value, request).get("base_model")
        record.run = lineage.image_run_facts(summary, base_model, cost.with_identity)
        return record

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The OpenLineage provider's hook: this task's inputs, outputs and ``phota`` run facet
        (:mod:`airflow_provider_phota.lineage`). Called only where that provider is installed.

        :param task_instance: the finished task instance (unused: the task noted what it did while it ran).
        """
        from airflow_provider_phota.lineage import operator_lineage

        return operator_lineage(self._lineage, self.hook.settings.base_url if self._lineage else "")

    def _write_outputs(self, context: Context, result: ImageResult, ref: str) -> list[str]:
        """The one place outputs are written: decoded bytes (``response_mode="bytes"``) or a streamed download of
        each signed URL, each file atomically."""
        from airflow_provider_phota.storage import atomic_write, storage_path, uri_of

        assert self.output_path is not None
        folder = storage_path(self.output_path)
        stem = self._output_stem(context, ref)
        extension = contract.file_extension(self.output_format)
        sources: list[bytes | str] = [*result.images, *result.download_urls]
        uris = []
        for index, source in enumerate(sources):
            target = folder / f"{stem}-{index:02d}.{extension}"
            size = atomic_write(target, [source]) if isinstance(source, bytes) else self.hook.download(source, target)
            uris.append(uri_of(target))
            self.log.info("Wrote image %d/%d to %s (%d bytes)", index + 1, len(sources), uris[-1], size)
        return uris


_COMMON_ARGUMENTS = """
    :param output_path: the folder the images are written to: a local path or an object storage URI such as
        ``s3://aws_default@bucket/prefix`` (templated). Without it the task returns signed URLs that expire after
        24 hours.
    :param output_format: ``png`` (default) or ``jpg``; always sent explicitly (templated).
    :param response_mode: only with ``use_async_job=False``: ``urls`` (default; with ``output_path`` each image is
        streamed to storage from its signed URL, memory stays flat) or ``bytes`` (the images come inside the JSON
        answer, which costs about four times the decoded size in memory while it is parsed; only together with
        ``output_path``). Async jobs always answer with URLs (templated).
    :param use_async_job: ``True`` (default): an async job with a stable ``client_request_id``, so retries and
        clears never pay twice. ``False``: one synchronous request, which the API cannot deduplicate.
    :param deferrable: wait for the job on the triggerer, freeing the worker slot. Defaults to
        ``[operators] default_deferrable`` (``False`` unless the deployment turns it on). Only with
        ``use_async_job=True``.
    :param poll_interval: seconds between job status checks (default 5). Only with ``use_async_job=True``.
    :param timeout: seconds to wait for the job (default 3600); then the try fails and a retry waits for the same
        job. Only with ``use_async_job=True``.
    :param client_request_id: the idempotency key to submit instead of the one derived from the DAG run, task, map
        index and request (1-128 characters of ``A-Z a-z 0-9 . _ : -``; templated). Only with
        ``use_async_job=True``.
    :param max_cost_usd: the most this task may spend, in dollars (templated). Before the first request, the
        worst-case cost (every output with identity, priced from the connection's price table) must fit, else the
        task fails without retries and nothing is sent; a request whose rate is unknown is refused. ``None``
        (default): no limit.
    :param phota_conn_id: the Phota connection (default ``phota_default``; templated).
"""
_MODEL_ARGUMENTS = """
    :param num_output_images: 1-4 images (templated).
    :param aspect_ratio: ``auto``, ``1:1``, ``3:4``, ``4:3``, ``9:16`` or ``16:9`` (templated).
    :param resolution: ``1K``, ``2K`` or ``4K``, as the base model allows (templated).
    :param base_model: ``nb2`` (default), ``gpt-image-2``, ``qwen-image-2``, ``flux-2`` or ``reve`` (templated).
    :param quality: ``auto``, ``low``, ``medium`` or ``high``, with ``gpt-image-2`` only (templated)."""
_IMAGE_NOTE = """Images are http(s) URLs, base64 strings, local
    file paths, storage URIs or ``ObjectStoragePath`` objects; files are read and sent as base64, and every image
    must be JPEG, PNG, WebP or HEIC."""
_MODEL_TEMPLATE_FIELDS = ("num_output_images", "aspect_ratio", "resolution", "base_model", "quality")


class PhotaEditOperator(_PhotaImageOperator):
    __doc__ = f"""Edit 1-10 images with a prompt, keeping the identity of the named profiles.

    Returns an :class:`~airflow_provider_phota.results.ImageOperatorResult`. {_IMAGE_NOTE}

    :param prompt: the instruction; may reference profiles inline as ``[[profile_id]]`` (templated).
    :param images: the input images, 1-10 (templated).
    :param profile_ids: the profiles whose identities to preserve (templated).{_MODEL_ARGUMENTS}{_COMMON_ARGUMENTS}"""

    endpoint = Endpoint.EDIT
    prompt_required = True
    template_fields: Sequence[str] = (
        *_PhotaImageOperator.template_fields,
        "prompt",
        "images",
        "profile_ids",
        *_MODEL_TEMPLATE_FIELDS,
    )
    template_fields_renderers = {"images": "json", "profile_ids": "json"}

    def __init__(
        self,
        *,
        prompt: str,
        images: Sequence[Any] | str,
        profile_ids: Sequence[str] | str | None = None,
        num_output_images: int | str | None = None,
        aspect_ratio: str | None = None,
        resolution: str | None = None,
        base_model: str | None = None,
        quality: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.prompt = prompt
        self.images = images
        self.profile_ids = profile_ids
        self.num_output_images = num_output_images
        self.aspect_ratio = aspect_ratio
        self.resolution = resolution
        self.base_model = base_model
        self.quality = quality


class PhotaGenerateOperator(_PhotaImageOperator):
    __doc__ = f"""Generate images from a prompt; bring profiles in with inline ``[[profile_id]]`` tokens.

    Returns an :class:`~airflow_provider_phota.results.ImageOperatorResult`.

    :param prompt: what to generate; ``[[profile_id]]`` puts that profile's identity in (templated).
    {_MODEL_ARGUMENTS.strip()}{_COMMON_ARGUMENTS}"""

    endpoint = Endpoint.GENERATE
    prompt_required = True
    template_fields: Sequence[str] = (*_PhotaImageOperator.template_fields, "prompt", *_MODEL_TEMPLATE_FIELDS)

    def __init__(
        self,
        *,
        prompt: str,
        num_output_images: int | str | None = None,
        aspect_ratio: str | None = None,
        resolution: str | None = None,
        base_model: str | None = None,
        quality: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.prompt = prompt
        self.num_output_images = num_output_images
        self.aspect_ratio = aspect_ratio
        self.resolution = resolution
        self.base_model = base_model
        self.quality = quality


class PhotaEnhanceOperator(_PhotaImageOperator):
    __doc__ = f"""Enhance one image (at 2K, keeping its aspect ratio), optionally guided by a prompt and profiles.

    Returns an :class:`~airflow_provider_phota.results.ImageOperatorResult`. {_IMAGE_NOTE}

    :param image: the input image (templated).
    :param profile_ids: the profiles whose identities to preserve (templated).
    :param prompt: optional guidance (templated).
    :param num_output_images: 1-4 variations (templated).{_COMMON_ARGUMENTS}"""

    endpoint = Endpoint.ENHANCE
    template_fields: Sequence[str] = (
        *_PhotaImageOperator.template_fields,
        "image",
        "profile_ids",
        "prompt",
        "num_output_images",
    )
    template_fields_renderers = {"profile_ids": "json"}

    def __init__(
        self,
        *,
        image: Any,
        profile_ids: Sequence[str] | str | None = None,
        prompt: str | None = None,
        num_output_images: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.image = image
        self.profile_ids = profile_ids
        self.prompt = prompt
        self.num_output_images = num_output_images


class PhotaRemixOperator(_PhotaImageOperator):
    __doc__ = f"""Restyle ``input_image`` after ``reference_image`` (at 2K, in the input's aspect ratio), keeping
    identities.

    Returns an :class:`~airflow_provider_phota.results.ImageOperatorResult`. {_IMAGE_NOTE}

    :param input_image: the content photo (templated).
    :param reference_image: the style source (templated).
    :param profile_ids: the profiles whose identities to keep (templated).
    :param prompt: what to keep or emphasise (templated).
    :param num_output_images: 1-4 variations (templated).{_COMMON_ARGUMENTS}"""

    endpoint = Endpoint.REMIX
    template_fields: Sequence[str] = (
        *_PhotaImageOperator.template_fields,
        "input_image",
        "reference_image",
        "profile_ids",
        "prompt",
        "num_output_images",
    )
    template_fields_renderers = {"profile_ids": "json"}

    def __init__(
        self,
        *,
        input_image: Any,
        reference_image: Any,
        profile_ids: Sequence[str] | str | None = None,
        prompt: str | None = None,
        num_output_images: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.input_image = input_image
        self.reference_image = reference_image
        self.profile_ids = profile_ids
        self.prompt = prompt
        self.num_output_images = num_output_images
