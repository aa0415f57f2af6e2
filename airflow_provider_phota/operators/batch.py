"""PhotaBatchOperator: a whole campaign of studio requests in one task and one trigger.

Phota has no batch endpoint, so the batch is built on the client side from the API's async jobs, keeping every
promise of the single-image operators for every row:

* **checked before anything is paid for**: every row is validated by the same code as the image operators
  (:func:`~airflow_provider_phota.operators.images.resolve_images` and the contract's per-endpoint rules), and one
  bad row fails the task before the first submit, naming the row number and the field;
* **paid once per row**: each row's job carries a ``client_request_id`` derived from the DAG run, the task, the map
  index and the row's request (and which occurrence of that request it is, so two identical rows are two renders),
  so a retried or cleared task gets the same jobs back. A FAILED job whose error a new job may not have is replaced
  by a job with a derived key (:func:`~airflow_provider_phota.operators.images.derived_client_request_id`), the
  image operators' rule, at most :data:`~airflow_provider_phota.operators.images.MAX_FAILED_JOBS` times per row;
* **in waves**: at most ``max_in_flight`` jobs are outstanding at once. The task submits a wave, defers to ONE
  :class:`~airflow_provider_phota.triggers.batch.PhotaBatchTrigger` that polls all of them (GET only), resumes to
  download what finished and submits the next wave, until every row is done. A 429 is waited out by the hook's
  retry policy (``Retry-After``); one that outlasts the retries ends the wave early (the try fails, for Airflow to
  retry, only when no job is left to wait for);
* **nothing lost**: outputs are written atomically per row under ``output_path``; a JSON manifest next to them is
  rewritten after every wave and is also the batch's state, so a retry after a crash resubmits nothing that already
  has a job and downloads nothing that is already written;
* **partial failure**: rows that fail for good (moderation, input the service refuses) do not stop the others; the
  task fails only if more than ``max_failed_rows`` rows failed, after every other output was written, naming the rows
  and the reasons;
* **priced**: with ``max_cost_usd`` the worst case of the whole batch (every output of every row with identity,
  :func:`~airflow_provider_phota.pricing.combined`) must fit before the first submit; each row's cost and the
  batch's total are in the manifest, the total in XCom and the Asset event, and the images and cost in the metrics.

XCom and the Asset events of the outlets get counts and the manifest's URI only
(:class:`~airflow_provider_phota.results.BatchOperatorResult`); one event per batch, not per row.
"""

from __future__ import annotations

import ast
import contextlib
import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import conf

from airflow_provider_phota import contract
from airflow_provider_phota._compat import AirflowException, AirflowFailException, BaseOperator, Context
from airflow_provider_phota.contract import OUTPUT_FORMATS, Endpoint, JobState, Violation
from airflow_provider_phota.events import EVENT_ERROR, EVENT_TIMEOUT, error_is_retryable
from airflow_provider_phota.exceptions import PhotaCostLimitError
from airflow_provider_phota.operators.base import (
    DEFAULT_CONN_ID,
    PhotaHookMixin,
    fail_fast_on_permanent_errors,
    parse_list_argument,
    record_asset_events,
    validate_event,
    wait_argument_violations,
)
from airflow_provider_phota.operators.images import (
    DEFAULT_JOB_TIMEOUT,
    DEFAULT_POLL_INTERVAL,
    LIST_FIELDS,
    MAX_FAILED_JOBS,
    PhotaEditOperator,
    PhotaEnhanceOperator,
    PhotaGenerateOperator,
    PhotaRemixOperator,
    classify_image,
    derived_client_request_id,
    missing_prompt,
    resolve_images,
    stable_client_request_id,
)
from airflow_provider_phota.waiting import DEFER_TIMEOUT_GRACE_SECONDS

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_phota.hooks.phota import PhotaHook
    from airflow_provider_phota.lineage import LineageRecord
    from airflow_provider_phota.pricing import Cost
    from airflow_provider_phota.results import BatchOperatorResult

# The API documents no rate limit (api-decisions D13 only says how a 429 looks). 100 jobs in flight keep the polling
# at 20 GETs/s at the default 5 s interval and one wave's submits at 100 POSTs, which the hook paces on 429s.
DEFAULT_MAX_IN_FLIGHT = 100
MAX_REPORTED_PROBLEMS = 20  # a validation message names at most this many problems, then counts the rest
MANIFEST_VERSION = 1
PROFILE_TAG = "profile_tag"  # a row column: the newest READY profile of this tag
SUBJECT_PLACEHOLDER = "{subject}"  # where that profile's [[id]] goes in the prompt
COUNT_ALIAS = "count"  # the marketing campaign files' name for num_output_images
OPERATOR_FIELDS = frozenset({*contract.ASYNC_FIELDS, "response_mode"})  # set by the operator, never by a row
OPERATORS = {
    cls.endpoint: cls for cls in (PhotaEditOperator, PhotaGenerateOperator, PhotaEnhanceOperator, PhotaRemixOperator)
}

PENDING, IN_FLIGHT, SUCCEEDED, FAILED = "pending", "in_flight", "succeeded", "failed"
FAILED_ROW_COST = "$0.00: the row failed, nothing charged (a FAILED job is refunded)"


@dataclass
class _Row:
    """One row of the batch and where it stands."""

    number: int  # 1-based, as in the campaign file
    request: dict[str, Any]  # the row's options as given (file paths, not their bytes), profile tag resolved
    first_key: str  # the client_request_id of the row's first job
    key: str = ""  # the key of its current job: first_key, or derived after FAILED jobs
    status: str = PENDING
    job_id: str | None = None
    failed_jobs: list[dict[str, Any]] = field(default_factory=list)  # FAILED jobs replaced by a new one
    output_uris: list[str] = field(default_factory=list)
    count: int = 0
    known_subjects: dict[str, int] = field(default_factory=dict)
    error: dict[str, str] | None = None  # why the row failed for good

    def __post_init__(self) -> None:
        self.key = self.key or self.first_key

    def fail(self, error_type: str, message: str) -> None:
        self.status, self.error = FAILED, {"type": error_type, "message": message}


@dataclass
class _Batch:
    rows: list[_Row]
    profiles: dict[str, str]  # profile tag -> the profile id its rows use (pinned for the whole batch)

    def having(self, status: str) -> list[_Row]:
        return [row for row in self.rows if row.status == status]

    def counts(self) -> dict[str, int]:
        counts = {status: len(self.having(status)) for status in (PENDING, IN_FLIGHT, SUCCEEDED, FAILED)}
        return {"rows": len(self.rows), **counts, "images": sum(row.count for row in self.having(SUCCEEDED))}


def _count_violations(name: str, value: Any, *, minimum: int) -> list[Violation]:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        return [Violation(name, f"{value!r} is out of range", f"an integer >= {minimum}")]
    return []


def _read_rows(location: str) -> list[Any] | Violation:
    """The rows of a CSV (with a header) or JSON (a list of objects) campaign file."""
    import csv
    import io

    from airflow_provider_phota.storage import storage_path, validate_storage_uri

    allowed = "a list of request dicts, or the URI or path of a .csv or .json file of rows"
    if "://" in location[:24]:
        problem = validate_storage_uri("requests", location)
        if problem is not None:
            return problem
    path = storage_path(location)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        return Violation("requests", f"{location!r} is neither a .csv nor a .json file", allowed)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return Violation("requests", f"{location} does not exist", allowed)
    except (OSError, ValueError) as error:
        return Violation("requests", f"{location} cannot be read: {error}", allowed)
    if suffix == ".csv":
        return list(csv.DictReader(io.StringIO(text)))
    try:
        rows = json.loads(text)
    except ValueError as error:
        return Violation("requests", f"{location} is not JSON: {error}", allowed)
    return rows if isinstance(rows, list) else Violation("requests", f"{location} is not a JSON list", allowed)


def _abbreviated(request: Mapping[str, Any], endpoint: Endpoint) -> dict[str, Any]:
    """The request for the manifest: inline base64 images are replaced by their length."""

    def short(value: Any) -> Any:
        if isinstance(value, str) and len(value) > 256 and "://" not in value[:16]:
            return f"<base64, {len(value)} characters>"
        return value

    shown = dict(request)
    for name in contract.IMAGE_FIELDS[endpoint]:
        value = shown.get(name)
        if isinstance(value, list):
            shown[name] = [short(item) for item in value]
        elif value is not None:
            shown[name] = short(value)
    return shown


class PhotaBatchOperator(PhotaHookMixin, BaseOperator):
    """Render a batch of requests to one studio endpoint (a marketing campaign) in one task and one trigger.

    Each row is one request: the endpoint's fields (``prompt``, ``images``, ``profile_ids``, ``num_output_images``,
    ``aspect_ratio``, ``resolution``, ``base_model``, ``quality``, ``output_format``... as the endpoint takes them;
    images as URLs, base64, local paths or storage URIs, as for the image operators). Two columns of campaign files
    are accepted as well: ``profile_tag`` (the rows of a tag use its newest READY profile, pinned for the whole
    batch; its ``[[id]]`` replaces ``{subject}`` in the prompt, is appended to a ``/generate`` prompt without one as
    ", featuring [[id]]", and is added to ``profile_ids`` elsewhere) and ``count`` (``num_output_images``).

    Returns a :class:`~airflow_provider_phota.results.BatchOperatorResult`; every row's job, outputs and error are in
    the manifest, ``<task_id>[-map<i>]-manifest.json`` under ``output_path``. Images are named
    ``<task_id>[-map<i>]-row<nnnnn>-<job ref>-<nn>.<ext>``.

    :param endpoint: ``edit``, ``generate``, ``enhance`` or ``remix`` (templated).
    :param requests: the rows: a list of request dicts (e.g. an upstream task's XCom, or a template rendering to a
        list literal), or the URI or local path of a ``.csv`` file (with a header) or a ``.json`` file (a list of
        objects) (templated).
    :param output_path: the folder the images and the manifest are written to: a local path or an object storage URI
        such as ``s3://aws_default@bucket/prefix``; required, because a batch's signed URLs would not fit in XCom
        (templated).
    :param output_format: ``png`` (default) or ``jpg`` for rows that do not set their own (templated).
    :param max_in_flight: at most this many jobs outstanding at once, i.e. the size of a wave (default 100; the API
        documents no rate limit, and 429s are waited out per ``Retry-After``).
    :param max_failed_rows: the task fails if more rows than this failed for good (default 0: any failed row fails
        the task, once every other row is done and written).
    :param deferrable: wait for each wave on the triggerer, freeing the worker slot. Defaults to
        ``[operators] default_deferrable``; otherwise the worker polls.
    :param poll_interval: seconds between two status checks of the same job (default 5).
    :param timeout: seconds to wait for one wave (default 3600); then the try fails, and a retry resumes with the
        same jobs.
    :param max_cost_usd: the most the whole batch may spend, in dollars (templated). After the rows are checked and
        before the first submit, the worst-case cost of every row together (every output with identity, priced from
        the connection's price table) must fit, else the task fails without retries and nothing is submitted; a row
        whose rate is unknown is refused. ``None`` (default): no limit.
    :param phota_conn_id: the Phota connection (default ``phota_default``; templated).
    """

    template_fields: Sequence[str] = (
        "endpoint",
        "requests",
        "output_path",
        "output_format",
        "max_cost_usd",
        "phota_conn_id",
    )
    template_fields_renderers = {"requests": "json"}
    ui_color = "#c4b5fd"
    _lineage: LineageRecord | None = None  # what the batch read and wrote, for OpenLineage

    def __init__(
        self,
        *,
        endpoint: str,
        requests: Sequence[Mapping[str, Any]] | str,
        output_path: str,
        output_format: str = "png",
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        max_failed_rows: int = 0,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: float = DEFAULT_JOB_TIMEOUT,
        max_cost_usd: float | str | None = None,
        phota_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.endpoint = endpoint
        self.requests = requests
        self.output_path = output_path
        self.output_format = output_format
        self.max_in_flight = max_in_flight
        self.max_failed_rows = max_failed_rows
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.max_cost_usd = max_cost_usd
        self.phota_conn_id = phota_conn_id

    @cached_property
    def hook(self) -> PhotaHook:
        """The hook, its per-call lines at DEBUG: one per submit, status check and download would be thousands per
        batch (retries and transient errors still warn); the batch logs one progress line per wave instead."""
        from airflow_provider_phota.hooks.phota import PhotaHook

        hook = PhotaHook(self.phota_conn_id)
        hook.client.call_level = logging.DEBUG
        return hook

    # --- checks -----------------------------------------------------------------------------------------------

    def _operator_violations(self) -> list[Violation]:
        from airflow_provider_phota.pricing import parse_limit
        from airflow_provider_phota.storage import validate_output_folder

        problems = []
        limit = parse_limit("max_cost_usd", self.max_cost_usd)
        if isinstance(limit, Violation):
            problems.append(limit)
        if self.endpoint not in set(Endpoint):
            allowed = ", ".join(repr(e.value) for e in Endpoint)
            problems.append(Violation("endpoint", f"{self.endpoint!r} is not a studio endpoint", allowed))
        if self.output_format not in OUTPUT_FORMATS:
            problems.append(Violation("output_format", f"{self.output_format!r} is not a valid value", "'png', 'jpg'"))
        problems += _count_violations("max_in_flight", self.max_in_flight, minimum=1)
        problems += _count_violations("max_failed_rows", self.max_failed_rows, minimum=0)
        problems += wait_argument_violations(self)
        problem = validate_output_folder("output_path", self.output_path)
        return [*problems, problem] if problem else problems

    def _raw_rows(self) -> list[Any] | Violation:
        value = self.requests
        if isinstance(value, str):
            text = value.strip()
            if not text.startswith("["):
                return _read_rows(text)
            try:  # a list rendered by a template: JSON, or the Python literal of an XCom value
                value = json.loads(text)
            except ValueError:
                try:
                    value = ast.literal_eval(text)
                except (ValueError, SyntaxError):
                    return Violation("requests", "is neither a list literal nor a file", "a list of request dicts")
        if not isinstance(value, list | tuple):
            return Violation("requests", f"must be a list, got {type(value).__name__}", "a list of request dicts")
        return list(value)

    def _normalize(self, raw: Any, profiles: Mapping[str, str]) -> tuple[dict[str, Any], list[Violation]]:
        """The row's options as the API takes them, files not yet read; and what is wrong with the row's shape."""
        if not isinstance(raw, Mapping):
            return {}, [Violation("row", f"must be an object, got {type(raw).__name__}", "a dict of request fields")]
        endpoint = Endpoint(self.endpoint)
        problems = []
        row = {str(k): v for k, v in raw.items() if v is not None and not (isinstance(v, str) and not v.strip())}
        if COUNT_ALIAS in row:
            if "num_output_images" in row:
                problems.append(Violation(COUNT_ALIAS, "is given together with num_output_images", "one of them"))
            row["num_output_images"] = row.pop(COUNT_ALIAS)
        for name in sorted(OPERATOR_FIELDS & row.keys()):
            problems.append(Violation(name, "is set by the batch operator (async jobs, download URLs)", "omit it"))
            row.pop(name)
        count = row.get("num_output_images")
        if isinstance(count, str):  # a CSV cell; a string that is no integer is left for the contract to name
            with contextlib.suppress(ValueError):
                row["num_output_images"] = int(count)
        for name in LIST_FIELDS & row.keys():
            row[name] = parse_list_argument(row[name], split=name != "images")
        row.setdefault("output_format", self.output_format)
        tag = row.pop(PROFILE_TAG, None)
        if tag is not None:
            if str(tag) not in profiles:
                problems.append(Violation(PROFILE_TAG, f"no READY profile has the tag {tag!r}", "a trained tag"))
            else:
                token = f"[[{profiles[str(tag)]}]]"
                prompt = row.get("prompt")
                if isinstance(prompt, str) and SUBJECT_PLACEHOLDER in prompt:
                    row["prompt"] = prompt.replace(SUBJECT_PLACEHOLDER, token)
                elif endpoint is Endpoint.GENERATE:
                    row["prompt"] = f"{prompt}, featuring {token}" if prompt else token
                else:
                    row["profile_ids"] = [*(row.get("profile_ids") or []), profiles[str(tag)]]
        return row, problems

    def _resolve(self, request: Mapping[str, Any], key: str) -> tuple[dict[str, Any], list[Violation]]:
        """The row's options with its files read, and every violation of the image operators' rules."""
        endpoint = Endpoint(self.endpoint)
        problems: list[Violation] = []
        if OPERATORS[endpoint].prompt_required:
            problems += missing_prompt(endpoint, request.get("prompt"))
        options = resolve_images(endpoint, request, problems)
        body = contract.job_body(endpoint, options, client_request_id=key)
        named = {problem.field for problem in problems}
        problems += [v for v in contract.validate_image_request(endpoint, body) if v.field not in named]
        return options, problems

    def _profiles(self, raw_rows: list[Any], pinned: Mapping[str, str]) -> dict[str, str]:
        """Profile tag -> the newest READY profile, for the tags the rows name (pinned ones are kept)."""
        tags = {str(row[PROFILE_TAG]).strip() for row in raw_rows if isinstance(row, Mapping) and row.get(PROFILE_TAG)}
        profiles = {tag: pinned[tag] for tag in tags if tag in pinned}
        with fail_fast_on_permanent_errors():
            for tag in sorted(tags - profiles.keys()):
                found = self.hook.latest_profile(tag, ready_only=True)
                if found is not None:
                    profiles[tag] = found.profile_id
        return profiles

    def prepare(self, context: Context, *, check_files: bool = True) -> _Batch:
        """Read and check every row, and attach what an earlier try of this task already did; nothing is submitted.

        Raises :class:`PhotaValidationError` naming every bad row (by number) and field. With ``check_files=False``
        (on resume: the rows were checked when the try started) input files are not read again, and the outputs the
        manifest lists are not looked for.
        """
        from airflow_provider_phota.exceptions import PhotaValidationError

        problems = self._operator_violations()
        if problems:
            raise PhotaValidationError(problems, context=type(self).__name__)
        raw_rows = self._raw_rows()
        if isinstance(raw_rows, Violation):
            raise PhotaValidationError([raw_rows], context=type(self).__name__)
        if not raw_rows:
            raise PhotaValidationError(
                [Violation("requests", "has no rows", "at least one row")], context=type(self).__name__
            )
        manifest = self._read_manifest(context)
        profiles = self._profiles(raw_rows, manifest.get("profiles") or {})
        rows: list[_Row] = []
        seen: dict[str, int] = {}
        for number, raw in enumerate(raw_rows, start=1):
            request, row_problems = self._normalize(raw, profiles)
            identity = json.dumps(request, sort_keys=True, default=str)
            seen[identity] = occurrence = seen.get(identity, 0) + 1
            key = stable_client_request_id(context, self.endpoint, {"row": request, "occurrence": occurrence})
            if check_files and not row_problems:
                row_problems += self._resolve(request, key)[1]
            problems += [Violation(f"row {number} {p.field}", p.message, p.allowed, p.status) for p in row_problems]
            rows.append(_Row(number, request, key))
        if problems:
            shown = problems[:MAX_REPORTED_PROBLEMS]
            if len(problems) > len(shown):
                more = len(problems) - len(shown)
                shown.append(Violation("requests", f"{more} more problem(s) not shown", "rows that pass every check"))
            raise PhotaValidationError(shown, context=type(self).__name__)
        batch = _Batch(rows, profiles)
        self._attach(batch, manifest, verify_outputs=check_files)
        return batch

    def check_cost_limit(self, batch: _Batch) -> Cost | None:
        """With ``max_cost_usd``, refuse a batch whose worst-case cost (every output of every row with identity) is
        above it, or unknown for any row, before anything is submitted: :class:`PhotaCostLimitError`. Returns the
        estimate (``None`` without a limit). ``batch`` comes from :meth:`prepare`, which has validated the rows and
        ``max_cost_usd``. The limit is for the whole batch, also on a retry that finds rows already done."""
        from airflow_provider_phota.pricing import combined, estimate_worst_case, limit_refusal, parse_limit, usd

        limit = parse_limit("max_cost_usd", self.max_cost_usd)
        if limit is None or isinstance(limit, Violation):
            return None
        prices = self.hook.settings.prices
        estimate = combined([estimate_worst_case(self.endpoint, row.request, prices) for row in batch.rows])
        scope = f"this batch of {len(batch.rows)} row{'' if len(batch.rows) == 1 else 's'}"
        refusal = limit_refusal(estimate, limit, scope=scope, where=f"connection {self.phota_conn_id!r}")
        if refusal:
            raise PhotaCostLimitError(refusal)
        assert estimate.usd is not None  # an unknown cost is refused
        self.log.info("Worst-case cost %s fits max_cost_usd %s (%s)", usd(estimate.usd), usd(limit), estimate.basis)
        return estimate

    # --- state: the manifest ----------------------------------------------------------------------------------

    def _stem(self, context: Context) -> str:
        from airflow_provider_phota.storage import path_segment

        map_index = getattr(context["ti"], "map_index", -1)
        suffix = f"-map{map_index}" if map_index is not None and map_index >= 0 else ""
        return f"{path_segment(self.task_id)}{suffix}"

    def _folder(self) -> ObjectStoragePath:
        from airflow_provider_phota.storage import storage_path

        return storage_path(self.output_path)

    def _manifest_path(self, context: Context) -> ObjectStoragePath:
        return self._folder() / f"{self._stem(context)}-manifest.json"

    def _identity(self, context: Context) -> dict[str, Any]:
        ti = context["ti"]
        return {
            "dag_id": ti.dag_id,
            "run_id": ti.run_id,
            "task_id": ti.task_id,
            "map_index": getattr(ti, "map_index", -1),
            "endpoint": str(self.endpoint),
        }

    def _read_manifest(self, context: Context) -> dict[str, Any]:
        """The manifest an earlier try (or wave) of this very task instance wrote; ``{}`` when there is none, or when
        the file belongs to another run or task (then it is overwritten)."""
        path = self._manifest_path(context)
        try:
            document = json.loads(path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            self.log.warning("Ignoring the unreadable manifest %s: %s", path, error)
            return {}
        if not isinstance(document, dict) or document.get("batch") != self._identity(context):
            return {}
        return document

    def _attach(self, batch: _Batch, manifest: Mapping[str, Any], *, verify_outputs: bool) -> None:
        """Take over each row's job, failed jobs and outputs from the manifest, when its key chain still matches
        (same run, task, row and request). With ``verify_outputs`` (a new try: files may have been removed since),
        a row whose outputs are not all in ``output_path`` any more (one listing, not one request per file) is
        collected again; on resume the manifest was written by this try's previous wave and is trusted."""
        entries = {entry.get("row"): entry for entry in manifest.get("rows") or [] if isinstance(entry, dict)}
        present: set[str] | None = None
        if verify_outputs and any(entry.get("status") == SUCCEEDED for entry in entries.values()):
            present = {path.name for path in self._folder().iterdir()}
        for row in batch.rows:
            entry = entries.get(row.number)
            if not entry:
                continue
            key = row.first_key
            for failed in entry.get("failed_jobs") or []:
                key = derived_client_request_id(key, str(failed["job_id"]))
            if key != entry.get("client_request_id"):
                continue  # another request than the one the manifest describes
            row.key, row.failed_jobs = key, list(entry.get("failed_jobs") or [])
            row.job_id = entry.get("job_id")
            status = entry.get("status")
            uris = list(entry.get("output_uris") or [])
            written = present is None or all(uri.rsplit("/", 1)[-1] in present for uri in uris)
            if status == FAILED:
                row.status, row.error = FAILED, entry.get("error")
            elif status == SUCCEEDED and written:
                row.status, row.output_uris = SUCCEEDED, uris
                row.count, row.known_subjects = int(entry.get("count") or 0), dict(entry.get("known_subjects") or {})
            elif row.job_id:
                row.status = IN_FLIGHT

    def _row_cost(self, row: _Row) -> Cost | None:
        """What a row that SUCCEEDED cost (count x rate, at the identity rate for its ``known_subjects``); ``None``
        for a row that did not: a FAILED job is refunded, a row refused at submit was never charged."""
        from airflow_provider_phota.pricing import cost_of

        if row.status != SUCCEEDED:
            return None
        prices = self.hook.settings.prices
        return cost_of(self.endpoint, row.request, prices, count=row.count, known_subjects=row.known_subjects)

    def _batch_cost(self, batch: _Batch) -> Cost:
        """The total of the rows that SUCCEEDED so far (unknown if any of them is)."""
        from airflow_provider_phota.pricing import combined

        return combined([cost for cost in map(self._row_cost, batch.rows) if cost is not None])

    def _row_entry(self, row: _Row) -> dict[str, Any]:
        """One row of the manifest."""
        cost = self._row_cost(row)
        if cost is not None:
            priced = cost.as_extra()
        elif row.status == FAILED:
            priced = {"cost_usd": 0.0, "cost_basis": FAILED_ROW_COST}
        else:
            priced = {"cost_usd": None, "cost_basis": "not finished yet"}
        return {
            "row": row.number,
            "request": _abbreviated(row.request, Endpoint(self.endpoint)),
            "client_request_id": row.key,
            "job_id": row.job_id,
            "status": row.status,
            "count": row.count,
            "known_subjects": row.known_subjects,
            "output_uris": row.output_uris,
            "error": row.error,
            "failed_jobs": row.failed_jobs,
            **priced,
        }

    def _write_manifest(self, context: Context, batch: _Batch, *, complete: bool) -> str:
        from airflow_provider_phota.storage import write_json

        subjects: dict[str, int] = {}
        for row in batch.having(SUCCEEDED):
            for profile_id, count in row.known_subjects.items():
                subjects[profile_id] = subjects.get(profile_id, 0) + count
        document = {
            "manifest_version": MANIFEST_VERSION,
            "batch": self._identity(context),
            "complete": complete,
            "counts": batch.counts(),
            "known_subjects": subjects,
            **self._batch_cost(batch).as_extra(),
            "profiles": batch.profiles,
            "rows": [self._row_entry(row) for row in batch.rows],
        }
        return write_json(self._manifest_path(context), document)

    # --- execution --------------------------------------------------------------------------------------------

    def execute(self, context: Context) -> BatchOperatorResult:
        with fail_fast_on_permanent_errors():
            batch = self.prepare(context)
            self.check_cost_limit(batch)
        counts = batch.counts()
        if counts["pending"] < counts["rows"]:
            self.log.info(
                "Taking over from an earlier try: %d rows done, %d failed, %d jobs to collect, %d rows to submit",
                counts[SUCCEEDED],
                counts[FAILED],
                counts[IN_FLIGHT],
                counts[PENDING],
            )
        return self._advance(context, batch, {})

    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> BatchOperatorResult:
        """Resume after a wave: fetch every job of it once (the authoritative answer), write what finished and
        submit the next wave.

        :param context: the task context.
        :param event: the trigger's event.
        """
        event = validate_event(event, f"{type(self).__name__} {self.task_id}")
        if event["status"] == EVENT_ERROR and not error_is_retryable(event):
            raise AirflowFailException(f"Waiting for the Phota batch failed: {event.get('message')}")
        problem = None
        if event["status"] in (EVENT_TIMEOUT, EVENT_ERROR):
            problem = f"{event['status']}: {event.get('message') or ''}"
        with fail_fast_on_permanent_errors():
            batch = self.prepare(context, check_files=False)
        return self._advance(context, batch, {}, wave_problem=problem)

    def _advance(
        self, context: Context, batch: _Batch, seen: Mapping[str, JobState], *, wave_problem: str | None = None
    ) -> BatchOperatorResult:
        """Collect, submit, checkpoint, wait; until no job is outstanding. The manifest is written after every
        step, also when one fails (a retry then starts from it). One progress line per wave."""
        while True:
            try:
                with fail_fast_on_permanent_errors():
                    collected = self._collect(context, batch, seen)
                    if wave_problem and batch.having(IN_FLIGHT):
                        raise AirflowException(
                            f"{len(batch.having(IN_FLIGHT))} Phota jobs are not finished ({wave_problem}); a retry "
                            "resumes waiting for the same jobs"
                        )
                    submitted = self._submit_wave(batch)
            finally:
                self._write_manifest(context, batch, complete=False)
            in_flight = [row.job_id for row in batch.having(IN_FLIGHT) if row.job_id]
            if not in_flight:
                return self._finish(context, batch)
            counts = batch.counts()
            self.log.info(
                "Phota batch of %d rows: %s, %d submitted; now %d in flight, %d done (%d images), %d failed, "
                "%d waiting for a later wave; waiting %s (polling every %.0f s)",
                counts["rows"],
                collected,
                submitted,
                counts[IN_FLIGHT],
                counts[SUCCEEDED],
                counts["images"],
                counts[FAILED],
                counts[PENDING],
                "on the triggerer" if self.deferrable else "in the worker",
                self.poll_interval,
            )
            if self.deferrable:
                self._defer(in_flight, batch)
            seen, timed_out = self._wait_in_worker(in_flight)
            wave_problem = f"timeout after {self.timeout:.0f} s" if timed_out else None

    def _collect(self, context: Context, batch: _Batch, seen: Mapping[str, JobState]) -> str:
        """Look at every outstanding job once: write the outputs of those that SUCCEEDED, replace or fail those that
        FAILED; a job still running stays outstanding. Returns what happened, for the progress line."""
        from airflow_provider_phota.exceptions import PhotaJobFailedError, PhotaNotFoundError

        written = replaced = failed = 0
        for row in batch.having(IN_FLIGHT):
            assert row.job_id is not None
            try:
                state = seen.get(row.job_id) or self.hook.get_job(row.job_id)
            except PhotaNotFoundError as error:
                row.fail("NOT_FOUND", f"job {row.job_id}: {error}")
                failed += 1
                continue
            if not state.is_terminal:
                continue
            if state.succeeded and state.result is not None:
                self._write_outputs(context, row, state)
                written += 1
                continue
            failure = PhotaJobFailedError(state.job_id, state.error_type, state.error_message)
            if failure.retry_task and len(row.failed_jobs) + 1 < MAX_FAILED_JOBS:
                # the image operators' rule: a new job under a key derived from the failed one, stable across tries
                row.failed_jobs.append(
                    {"job_id": state.job_id, "error_type": failure.error_type, "message": failure.error_message}
                )
                row.key, row.job_id, row.status = derived_client_request_id(row.key, state.job_id), None, PENDING
                replaced += 1
            else:
                attempts = f" ({MAX_FAILED_JOBS} jobs FAILED)" if failure.retry_task else ""
                row.fail(str(failure.error_type), f"job {state.job_id}: {failure.error_message}{attempts}")
                failed += 1
        return f"{written} rows written, {failed} failed, {replaced} FAILED jobs to replace"

    def _output_names(self, context: Context, row: _Row, job_id: str, count: int) -> Iterator[ObjectStoragePath]:
        from airflow_provider_phota.storage import path_segment

        stem = f"{self._stem(context)}-row{row.number:05d}-{path_segment(job_id)[-12:]}"
        extension = contract.file_extension(row.request.get("output_format"))
        for index in range(count):
            yield self._folder() / f"{stem}-{index:02d}.{extension}"

    def _write_outputs(self, context: Context, row: _Row, state: JobState) -> None:
        """Each output of the row, streamed to its file atomically; a file already there (an earlier try wrote it,
        names are unique per job) is not downloaded again. The row's images and cost go to the metrics once, when it
        is written (a row a retry takes over from the manifest was counted by the try that wrote it)."""
        from airflow_provider_phota import metrics
        from airflow_provider_phota.storage import uri_of

        assert state.result is not None
        urls = state.result.download_urls
        uris = []
        for url, target in zip(urls, self._output_names(context, row, state.job_id, len(urls)), strict=True):
            if not target.exists():
                self.hook.download(url, target)
            uris.append(uri_of(target))
        row.status, row.output_uris = SUCCEEDED, uris
        row.count, row.known_subjects = state.result.count, dict(state.result.known_subjects)
        cost = self._row_cost(row)
        metrics.record_images(str(self.endpoint), row.request, row.count, cost.usd if cost else None)

    def _submit_wave(self, batch: _Batch) -> int:
        """Submit pending rows until ``max_in_flight`` jobs are outstanding; returns how many were submitted. A row
        the service refuses (moderation, an input it cannot use) fails alone; a transient error that outlasted the
        retries (a long 429) ends the wave, and fails the try only when nothing is outstanding to wait for."""
        from airflow_provider_phota.exceptions import PhotaBadRequestError, PhotaError, PhotaUnprocessableError

        slots = self.max_in_flight - len(batch.having(IN_FLIGHT))
        submitted = 0
        endpoint = Endpoint(self.endpoint)
        for row in batch.having(PENDING)[: max(0, slots)]:
            options, problems = self._resolve(row.request, row.key)
            if problems:  # an input file changed since the rows were checked
                row.fail("INVALID_REQUEST", "; ".join(problem.describe() for problem in problems))
                continue
            try:
                handle = self.hook.submit_job(endpoint, options, client_request_id=row.key)
            except (PhotaBadRequestError, PhotaUnprocessableError) as error:
                row.fail(str(error.error_type or "INVALID_REQUEST"), str(error))
                continue
            except PhotaError as error:
                if not error.retry_task or not batch.having(IN_FLIGHT):
                    raise
                self.log.warning("Submitting paused after %d jobs of this wave: %s", submitted, error)
                break
            row.job_id, row.status = handle.job_id, IN_FLIGHT
            submitted += 1
        return submitted

    def _defer(self, job_ids: list[str], batch: _Batch) -> None:
        from airflow_provider_phota.triggers.batch import PhotaBatchTrigger

        counts = batch.counts()
        progress = {name: counts[name] for name in ("rows", SUCCEEDED, FAILED, PENDING)}
        self.defer(
            trigger=PhotaBatchTrigger(
                job_ids, self.phota_conn_id, self.poll_interval, time.time() + self.timeout, progress=progress
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout + DEFER_TIMEOUT_GRACE_SECONDS),
        )

    def _wait_in_worker(self, job_ids: list[str]) -> tuple[dict[str, JobState], bool]:
        """Poll the jobs from the worker, each once per ``poll_interval``, until all are terminal or ``timeout``
        passed; returns the terminal states seen and whether the wave timed out."""
        from airflow_provider_phota.exceptions import PhotaError, PhotaNotFoundError, is_retryable

        deadline = time.monotonic() + self.timeout
        terminal: dict[str, JobState] = {}
        outstanding = list(job_ids)
        while outstanding:
            if time.monotonic() >= deadline:
                return terminal, True
            time.sleep(max(0.0, min(self.poll_interval, deadline - time.monotonic())))
            for job_id in list(outstanding):
                try:
                    state = self.hook.get_job(job_id)
                except PhotaNotFoundError:
                    outstanding.remove(job_id)  # _collect asks again and reports the row
                    continue
                except PhotaError as error:
                    if not is_retryable(error):
                        raise
                    self.log.warning("Phota job %s: transient error, still waiting: %s", job_id, error)
                    continue
                if state.is_terminal:
                    terminal[job_id] = state
                    outstanding.remove(job_id)
        return terminal, False

    def _finish(self, context: Context, batch: _Batch) -> BatchOperatorResult:
        manifest_uri = self._write_manifest(context, batch, complete=True)
        counts = batch.counts()
        cost = self._batch_cost(batch)
        result: BatchOperatorResult = {
            "endpoint": str(self.endpoint),
            "manifest_uri": manifest_uri,
            "rows": counts["rows"],
            "succeeded": counts[SUCCEEDED],
            "failed": counts[FAILED],
            "images": counts["images"],
            **cost.as_extra(),  # type: ignore[typeddict-item]
        }
        self.log.info(
            "Phota batch done: %d rows, %d succeeded (%d images), %d failed; cost: %s; manifest %s",
            result["rows"],
            result["succeeded"],
            result["images"],
            result["failed"],
            cost.basis,
            manifest_uri,
        )
        self._lineage = self._lineage_record(batch, result, cost)
        failed = batch.having(FAILED)
        if len(failed) > self.max_failed_rows:
            shown = "; ".join(
                f"row {row.number}: {(row.error or {}).get('type')}: {(row.error or {}).get('message')}"
                for row in failed[:MAX_REPORTED_PROBLEMS]
            )
            more = f"; and {len(failed) - MAX_REPORTED_PROBLEMS} more" if len(failed) > MAX_REPORTED_PROBLEMS else ""
            raise AirflowFailException(
                f"{len(failed)} of {len(batch.rows)} rows failed (max_failed_rows={self.max_failed_rows}); every "
                f"other output is written, see {manifest_uri}. Failed rows: {shown}{more}"
            )
        record_asset_events(context, list(self.outlets), dict(result))
        return result

    # --- lineage ----------------------------------------------------------------------------------------------

    def _lineage_record(self, batch: _Batch, result: BatchOperatorResult, cost: Cost) -> LineageRecord:
        """Inputs (every row's input images: URLs without their query, storage URIs, base64 by hash; the profiles
        the rows use), outputs (the written files and the manifest) and the run facet of the batch."""
        from airflow_provider_phota import lineage

        endpoint = Endpoint(self.endpoint)
        record = lineage.LineageRecord()
        profiles: list[str] = []
        for row in batch.rows:
            for name in contract.IMAGE_FIELDS[endpoint]:
                value = row.request.get(name)
                items = value if isinstance(value, list) else [value] if value is not None else []
                for index, item in enumerate(items):
                    kind = classify_image(name if name != "images" else f"images[{index}]", item)
                    if not isinstance(kind, Violation):
                        record.inputs.append(lineage.image_input_dataset(*kind))
            profile_ids = row.request.get("profile_ids") if endpoint is not Endpoint.GENERATE else None
            profiles += contract.referenced_profiles(row.request.get("prompt"), profile_ids)
            record.outputs += [lineage.storage_dataset(uri) for uri in row.output_uris]
        record.profiles_used = list(dict.fromkeys(profiles))
        record.outputs.append(lineage.storage_dataset(result["manifest_uri"]))
        subjects: dict[str, int] = {}
        for row in batch.having(SUCCEEDED):
            for profile_id, count in row.known_subjects.items():
                subjects[profile_id] = subjects.get(profile_id, 0) + count
        models = {str(row.request.get("base_model") or contract.DEFAULT_BASE_MODEL) for row in batch.rows}
        if endpoint in (Endpoint.ENHANCE, Endpoint.REMIX):
            models = {contract.DEFAULT_BASE_MODEL}  # they always run Nano Banana 2
        record.run = lineage.run_facts(
            endpoint=result["endpoint"],
            baseModel=models.pop() if len(models) == 1 else None,
            outputCount=result["images"],
            identityOutputs=cost.with_identity,
            knownSubjects=subjects,
            rowCount=result["rows"],
            succeededRows=result["succeeded"],
            failedRows=result["failed"],
            costUsd=result["cost_usd"],
            costBasis=result["cost_basis"],
        )
        return record

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The OpenLineage provider's hook: the batch's inputs, outputs and ``phota`` run facet
        (:mod:`airflow_provider_phota.lineage`). Called only where that provider is installed.

        :param task_instance: the finished task instance (unused: the task noted what it did while it ran).
        """
        from airflow_provider_phota.lineage import operator_lineage

        return operator_lineage(self._lineage, self.hook.settings.base_url if self._lineage else "")
