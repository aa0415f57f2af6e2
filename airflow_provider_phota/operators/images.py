"""Operators for the studio endpoints: edit, generate, enhance and remix.

Every operator validates all of its arguments before any request (a bad enum, count or path fails the task
without retries and with the field and allowed values named), writes images to ``output_path`` through Airflow
object storage (atomically, under names unique per task, map index and job), and returns only a small dict for
XCom: output URIs, counts, ``known_subjects`` and the request or job id. Image bytes never go to XCom.

Modes:

* ``mode="async"`` (default): the API's async mode with a ``client_request_id`` that is stable for the same DAG
  run, task, map index and request. A retried or cleared task gets the original job back: one job, one charge.
  With ``deferrable=True`` the wait runs on the triggerer, otherwise the worker polls.
* ``mode="sync"``: one plain request. The API has no idempotency key for synchronous calls, so a retry after an
  ambiguous failure (dropped connection, read timeout) may be charged again; prefer async for costly batches.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_phota import contract
from airflow_provider_phota._compat import AirflowException, BaseOperator, Context
from airflow_provider_phota.contract import Endpoint, ImageResult, JobState, Violation
from airflow_provider_phota.exceptions import PhotaJobFailedError, PhotaValidationError
from airflow_provider_phota.operators.base import (
    DEFAULT_CONN_ID,
    PhotaHookMixin,
    fail_fast_on_permanent_errors,
    parse_list_argument,
    record_asset_events,
    validate_event,
)

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

MODES = ("async", "sync")
LIST_FIELDS = frozenset({"images", "profile_ids"})  # may arrive as a rendered string from a template
URL_LIFETIME_WARNING = "Download URLs expire after 24 hours: copy the images before then, or set output_path."
_BASE64_PATTERN = re.compile(r"[A-Za-z0-9+/\s]+={0,2}")
_KEY_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def stable_client_request_id(context: Context, endpoint: Endpoint | str, body: Mapping[str, Any]) -> str:
    """The async idempotency key: the same DAG run, task, map index and request always give the same key.

    A retried or cleared task therefore resubmits with the key of its first try and the service returns the
    original job (D4), never a second charge. A changed request (another prompt) gives a new key.
    """
    ti = context["ti"]
    identity = [ti.dag_id, ti.run_id, ti.task_id, getattr(ti, "map_index", -1), str(Endpoint(endpoint)), body]
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()
    readable = _KEY_SAFE.sub("-", ti.task_id)[:48]
    return f"af:{readable}:{digest[:48]}"


def _looks_like_base64(value: str) -> bool:
    if len(value) < 16 or not _BASE64_PATTERN.fullmatch(value):
        return False
    try:
        base64.b64decode(value[:4096].strip() + "=" * (-len(value[:4096].strip()) % 4), validate=False)
    except (binascii.Error, ValueError):
        return False
    return True


def classify_image(field: str, value: Any) -> tuple[str, Any] | Violation:
    """``("url"|"base64"|"path", value)`` for an image argument, or a violation naming the field.

    Accepted: an http(s) URL, a base64 string, an ``ObjectStoragePath``, a storage URI (``s3://...``,
    ``file://...``) or a local file path.
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


class _PhotaImageOperator(PhotaHookMixin, BaseOperator):
    """Shared machinery of the four studio operators; subclasses declare their endpoint and arguments."""

    endpoint: ClassVar[Endpoint]
    template_fields: Sequence[str] = ("prompt", "output_path", "output_format", "client_request_id")
    template_fields_renderers = {"profile_ids": "json", "images": "json"}
    ui_color = "#ddd6fe"

    def __init__(
        self,
        *,
        output_path: str | None = None,
        output_format: str = "png",
        response_mode: str | None = None,
        mode: str = "async",
        deferrable: bool = True,
        poll_interval: float = 5.0,
        job_timeout: float = 3600.0,
        client_request_id: str | None = None,
        phota_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.output_path = output_path
        self.output_format = output_format
        self.response_mode = response_mode
        self.mode = mode
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.job_timeout = job_timeout
        self.client_request_id = client_request_id
        self.phota_conn_id = phota_conn_id

    # --- request ----------------------------------------------------------------------------------------------

    def _operator_violations(self) -> list[Violation]:
        from airflow_provider_phota.storage import validate_storage_uri

        problems = []
        if self.mode not in MODES:
            problems.append(Violation("mode", f"{self.mode!r} is not a mode", "'async', 'sync'"))
        if self.mode == "async" and self.response_mode not in (None, "urls"):
            problems.append(Violation("response_mode", "async jobs always return download URLs", "'urls' or omit"))
        for name in ("poll_interval", "job_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                problems.append(Violation(name, f"{value!r} is not a positive number of seconds", "a number > 0"))
        if self.output_path is not None:
            problem = validate_storage_uri("output_path", self.output_path)
            if problem:
                problems.append(problem)
        return problems

    def _raw_options(self) -> dict[str, Any]:
        """The API fields this operator sends, read from its (rendered) attributes."""
        fields = contract.ENDPOINT_FIELDS[self.endpoint] - contract.ASYNC_FIELDS
        options = {name: getattr(self, name, None) for name in sorted(fields)}
        for name in LIST_FIELDS & options.keys():
            if options[name] is not None:
                options[name] = parse_list_argument(options[name], split=name != "images")
        if self.mode == "sync":
            options["response_mode"] = self.response_mode or ("bytes" if self.output_path else "urls")
        else:
            options.pop("response_mode", None)  # async mode sets it
        return contract.compact(options)

    def _resolve_images(self, options: dict[str, Any], problems: list[Violation]) -> dict[str, Any]:
        """Replace image arguments with what the API takes: URLs and base64 as given, files read and encoded."""
        resolved = dict(options)
        for name in contract.IMAGE_FIELDS[self.endpoint]:
            value = options.get(name)
            if value is None:
                continue
            if name != "images":
                resolved[name] = self._resolve_image(name, value, problems)
            elif isinstance(value, list):  # list arguments are normalised by _raw_options
                resolved[name] = [self._resolve_image(f"images[{i}]", item, problems) for i, item in enumerate(value)]
            else:
                problems.append(Violation("images", f"must be a list, got {type(value).__name__}", "a list of images"))
        return resolved

    def _resolve_image(self, field: str, value: Any, problems: list[Violation]) -> Any:
        kind = classify_image(field, value)
        if isinstance(kind, Violation):
            problems.append(kind)
            return value
        category, reference = kind
        return self._read_image(field, reference, problems) if category == "path" else reference

    @staticmethod
    def _read_image(field: str, path: ObjectStoragePath, problems: list[Violation]) -> str:
        try:
            return base64.b64encode(path.read_bytes()).decode("ascii")
        except FileNotFoundError:
            problems.append(Violation(field, f"{path} does not exist", "an existing file"))
        except (OSError, ValueError) as error:
            problems.append(Violation(field, f"{path} cannot be read: {error}", "a readable file"))
        return ""

    def prepare_request(self, context: Context) -> tuple[dict[str, Any], str | None]:
        """Validate everything and build the request body; no request is sent. Returns the body (options, plus the
        async fields in async mode) and the idempotency key (async mode)."""
        problems = self._operator_violations()
        options = self._resolve_images(self._raw_options(), problems)
        if problems:
            raise PhotaValidationError(problems, context=type(self).__name__)
        from airflow_provider_phota.hooks.phota import PhotaHook

        if self.mode == "sync":
            return PhotaHook.validate_image_options(self.endpoint, options), None
        key = self.client_request_id or stable_client_request_id(context, self.endpoint, options)
        PhotaHook.validate_image_options(
            self.endpoint, contract.job_body(self.endpoint, options, client_request_id=key)
        )
        return options, key

    # --- execution --------------------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        with fail_fast_on_permanent_errors():
            options, key = self.prepare_request(context)
            if key is None:
                self.log.info("Sending /%s request (sync mode)", self.endpoint.value)
                result = self.hook.run_image(self.endpoint, options)
                return self._deliver(context, result, ref=result.request_id or "sync", ref_key="request_id")
            handle = self.hook.submit_job(self.endpoint, options, client_request_id=key)
            self.log.info("Submitted /%s job %s (client_request_id %s)", self.endpoint.value, handle.job_id, key)
            if self.deferrable:
                self._defer(handle.job_id)
            state = self.hook.wait_for_job(handle.job_id, poll_interval=self.poll_interval, timeout=self.job_timeout)
            return self._finish_job(context, state)

    def _defer(self, job_id: str) -> None:
        from airflow_provider_phota.triggers.phota import PhotaJobTrigger

        deadline = time.time() + self.job_timeout
        self.defer(
            trigger=PhotaJobTrigger(job_id, self.phota_conn_id, self.poll_interval, deadline),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.job_timeout + 60),
        )

    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger: fetch the job once more (the authoritative answer) and store its outputs."""
        event = validate_event(event, f"{type(self).__name__} {self.task_id}")
        job_id = str(event.get("job_id") or "")
        with fail_fast_on_permanent_errors():
            state = self.hook.get_job(job_id)
            if not state.is_terminal:
                raise AirflowException(
                    f"Phota job {job_id} is still {state.status} ({event['status']}: {event.get('message', '')}); "
                    "a retry resubmits with the same client_request_id and resumes waiting for the same job"
                )
            return self._finish_job(context, state)

    def _finish_job(self, context: Context, state: JobState) -> dict[str, Any]:
        if not state.succeeded or state.result is None:
            raise PhotaJobFailedError(state.job_id, state.error_type, state.error_message)
        return self._deliver(context, state.result, ref=state.job_id, ref_key="job_id")

    # --- outputs ----------------------------------------------------------------------------------------------

    def _output_stem(self, context: Context, ref: str) -> str:
        ti = context["ti"]
        map_index = getattr(ti, "map_index", -1)
        suffix = f"-map{map_index}" if map_index is not None and map_index >= 0 else ""
        return f"{_KEY_SAFE.sub('-', self.task_id)}{suffix}-{_KEY_SAFE.sub('-', ref)[-24:]}"

    def _deliver(self, context: Context, result: ImageResult, *, ref: str, ref_key: str) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "endpoint": self.endpoint.value,
            ref_key: ref,
            "count": result.count,
            "known_subjects": dict(result.known_subjects),
        }
        with_identity = sum(result.known_subjects.values())
        self.log.info("Billing: %d output image(s); identity recognized %d time(s): %s", result.count,
                      with_identity, result.known_subjects or "none")  # fmt: skip
        if self.output_path is None:
            self.log.warning(URL_LIFETIME_WARNING)
            summary["download_urls"] = list(result.download_urls)
            summary["output_uris"] = []
        else:
            summary["output_uris"] = self._write_outputs(context, result, ref)
        record_asset_events(context, list(self.outlets), {k: v for k, v in summary.items() if k != "download_urls"})
        return summary

    def _write_outputs(self, context: Context, result: ImageResult, ref: str) -> list[str]:
        from airflow_provider_phota.storage import atomic_write, storage_path, uri_of

        assert self.output_path is not None
        folder = storage_path(self.output_path)
        stem = self._output_stem(context, ref)
        extension = contract.file_extension(self.output_format)
        uris = []
        sources: list[tuple[bytes | None, str | None]] = [(data, None) for data in result.images]
        sources += [(None, url) for url in result.download_urls]
        for index, (data, url) in enumerate(sources):
            target = folder / f"{stem}-{index:02d}.{extension}"
            size = atomic_write(target, [data]) if data is not None else self.hook.download(str(url), target)
            uris.append(uri_of(target))
            self.log.info("Wrote image %d/%d to %s (%d bytes)", index + 1, len(sources), uris[-1], size)
        return uris


_IMAGE_TEMPLATE_FIELDS = (*_PhotaImageOperator.template_fields, "profile_ids")
_MODEL_TEMPLATE_FIELDS = ("aspect_ratio", "resolution", "base_model", "quality")


class PhotaEditOperator(_PhotaImageOperator):
    """Edit 1-10 images with a prompt, keeping the identity of the named profiles.

    :param prompt: the instruction; may reference profiles inline as ``[[profile_id]]`` (templated).
    :param images: input images: URLs, base64, local paths or storage URIs (templated).
    :param profile_ids: candidate profiles to preserve (templated).
    :param num_output_images: 1-4 variations.
    :param aspect_ratio: ``auto``, ``1:1``, ``3:4``, ``4:3``, ``9:16``, ``16:9``.
    :param resolution: ``1K``, ``2K`` or ``4K`` (per base model).
    :param base_model: ``nb2`` (default), ``gpt-image-2``, ``qwen-image-2``, ``flux-2``, ``reve``.
    :param quality: ``auto``/``low``/``medium``/``high``, with ``gpt-image-2`` only.
    :param output_format: ``png`` or ``jpg`` (always sent explicitly).
    :param output_path: where images are written (``ObjectStoragePath`` URI or local path, templated); without it
        the operator returns signed URLs that expire after 24 h.
    :param mode: ``async`` (idempotent job, default) or ``sync``.
    :param deferrable: in async mode, wait on the triggerer.
    """

    endpoint = Endpoint.EDIT
    template_fields: Sequence[str] = (*_IMAGE_TEMPLATE_FIELDS, "images", *_MODEL_TEMPLATE_FIELDS)

    def __init__(
        self,
        *,
        prompt: str,
        images: Sequence[Any] | str,
        profile_ids: Sequence[str] | None = None,
        num_output_images: int | None = None,
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
    """Generate images from a prompt; bring profiles in with inline ``[[profile_id]]`` tokens.

    Arguments as :class:`PhotaEditOperator`, without ``images`` and ``profile_ids`` (not accepted by /generate).
    """

    endpoint = Endpoint.GENERATE
    template_fields: Sequence[str] = (*_PhotaImageOperator.template_fields, *_MODEL_TEMPLATE_FIELDS)

    def __init__(
        self,
        *,
        prompt: str,
        num_output_images: int | None = None,
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
    """Enhance one image (fixed at 2K, Nano Banana 2), optionally guided by a prompt and profiles.

    :param image: the input image: URL, base64, local path or storage URI (templated).
    :param profile_ids: identities to preserve (templated).
    :param prompt: optional guidance (templated).
    :param num_output_images: 1-4 variations.
    """

    endpoint = Endpoint.ENHANCE
    template_fields: Sequence[str] = (*_IMAGE_TEMPLATE_FIELDS, "image")

    def __init__(
        self,
        *,
        image: Any,
        profile_ids: Sequence[str] | None = None,
        prompt: str | None = None,
        num_output_images: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.image = image
        self.profile_ids = profile_ids
        self.prompt = prompt
        self.num_output_images = num_output_images


class PhotaRemixOperator(_PhotaImageOperator):
    """Restyle ``input_image`` after ``reference_image`` (2K, aspect ratio of the input), keeping identities.

    :param input_image: the content photo (templated).
    :param reference_image: the style source (templated).
    :param profile_ids: identities to keep (templated).
    :param prompt: what to keep or emphasize (templated).
    :param num_output_images: 1-4 variations.
    """

    endpoint = Endpoint.REMIX
    template_fields: Sequence[str] = (*_IMAGE_TEMPLATE_FIELDS, "input_image", "reference_image")

    def __init__(
        self,
        *,
        input_image: Any,
        reference_image: Any,
        profile_ids: Sequence[str] | None = None,
        prompt: str | None = None,
        num_output_images: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.input_image = input_image
        self.reference_image = reference_image
        self.profile_ids = profile_ids
        self.prompt = prompt
        self.num_output_images = num_output_images
