"""The job engine under every paid studio operator: one row (an image operator) or thousands (the batch).

For each row it keeps the same promises:

* **checked before anything is paid for**: every row is resolved and validated (:mod:`.requests`), and one bad row
  fails the task before the first submit, naming the row (its ``label``: ``row 3``, or a campaign file's line) and
  the field;
* **paid once**: each row's job carries a ``client_request_id`` derived from the DAG run, the task, the map index and
  the row's request, so a retried or cleared task gets the same jobs back. A FAILED job whose error a new job may not
  have is replaced by a job with a derived key (:func:`.requests.derived_client_request_id`), at most
  ``MAX_FAILED_JOBS`` times per row. A FAILED job is counted as charged (the public docs never say it is
  refunded), and a replacement that would take the task's spending past ``max_cost_usd`` is not sent;
* **in waves**: at most ``max_in_flight`` jobs are outstanding at once; the task defers to ONE
  :class:`~airflow_provider_phota.triggers.batch.PhotaBatchTrigger` for all of them, or polls them in the worker
  (:meth:`PhotaHook.wait_for_jobs`). ``timeout`` is the total wait of the try, across waves and deferrals;
* **nothing lost, counted once**: outputs are written atomically under ``output_path``; a JSON manifest next to them
  is rewritten after every wave and is also the task's state, so a retry or a re-run resubmits nothing that has a
  job, downloads nothing already written, and counts (metrics, cost) nothing an earlier try counted. Without
  ``output_path`` (an image operator returning signed URLs) the state travels with the deferral instead;
* **durable on Airflow 3.3+**: each job a wave submits, and each cost it counts, goes to the task state store
  (:class:`~airflow_provider_phota.task_state.TaskJournal`, written with the manifest after every wave), so a retry
  or a clear reconnects to its jobs by id (a GET, however long after the service forgot the key) and
  ``max_cost_usd`` holds for the task instance across its tries, with or without ``output_path``.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, replace
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from airflow import __version__ as AIRFLOW_VERSION
from airflow.providers.common.compat.sdk import conf

from airflow_provider_phota import contract, lineage, metrics
from airflow_provider_phota._compat import AirflowException, AirflowFailException, BaseOperator, Context
from airflow_provider_phota.contract import Endpoint, JobState, Violation
from airflow_provider_phota.engine.common import (
    DEFAULT_CONN_ID,
    DEFAULT_JOB_TIMEOUT,
    DEFAULT_POLL_INTERVAL,
    DEFER_TIMEOUT_GRACE_SECONDS,
    MAX_FAILED_JOBS,
    PhotaHookMixin,
    fail_fast_on_permanent_errors,
    parse_list_argument,
    record_asset_events,
    validate_event,
    wait_argument_violations,
)
from airflow_provider_phota.engine.requests import (
    DEFAULT_NUM_OUTPUT_IMAGES,
    LIST_FIELDS,
    PROMPT_REQUIRED,
    classify_image,
    derived_client_request_id,
    missing_prompt,
    resolve_images,
    stable_client_request_id,
)
from airflow_provider_phota.engine.rows import (
    COUNT_ALIAS,
    FAILED,
    IN_FLIGHT,
    MANIFEST_VERSION,
    MAX_REPORTED_PROBLEMS,
    OPERATOR_FIELDS,
    PENDING,
    PROFILE_TAG,
    SUBJECT_PLACEHOLDER,
    SUCCEEDED,
    URL_LIFETIME_WARNING,
    Batch,
    Row,
    abbreviated,
    blank,
)
from airflow_provider_phota.events import EVENT_ERROR, EVENT_TIMEOUT, error_is_retryable
from airflow_provider_phota.exceptions import (
    PhotaAPIError,
    PhotaBadRequestError,
    PhotaError,
    PhotaJobFailedError,
    PhotaNotFoundError,
    PhotaUnprocessableError,
    PhotaValidationError,
)
from airflow_provider_phota.pricing import Cost, combined, cost_of, estimate_worst_case, total, usd
from airflow_provider_phota.storage import path_segment, storage_path, uri_of, validate_output_folder, write_json
from airflow_provider_phota.task_state import TaskJournal

# Each key of the result is an XCom of its own (``op.output["images"]``), except on Airflow 3.0, whose execution API
# refuses an XCom whose value is null (``manifest_uri`` or ``cost_usd`` may be): there the result is one XCom.
PER_KEY_XCOM = not AIRFLOW_VERSION.startswith("3.0.")
# The error type of a job that SUCCEEDED but whose outputs an earlier try did not write before its links expired: it
# is counted as charged and replaced like a FAILED job, so a clear the next day renders again (under max_cost_usd).
OUTPUTS_LOST = "OUTPUTS_LOST"

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath


class PhotaJobsOperator(PhotaHookMixin, BaseOperator):
    """The engine's operator base: subclasses give the endpoint, the rows and the result's shape.

    :param output_path: the folder images and the manifest are written to (templated); see the subclasses.
    :param output_format: ``png`` (default) or ``jpg`` for rows that do not set their own (templated).
    :param deferrable: wait on the triggerer, freeing the worker slot. Defaults to ``[operators]
        default_deferrable``.
    :param poll_interval: seconds between two status checks of the same job (default 5).
    :param timeout: seconds this try waits in all, across waves and deferrals (default 3600).
    :param max_cost_usd: the most the task may spend, in dollars, replacement jobs included (templated).
    :param phota_conn_id: the Phota connection (default ``phota_default``; templated).
    """

    ui_color = "#ddd6fe"
    max_in_flight: int = 1
    _journal = TaskJournal({})  # this process's view of the task state store; execute and execute_complete set it
    client_request_id: str | None = None
    callback_url: str | None = None

    def __init__(
        self,
        *,
        output_path: str | None = None,
        output_format: str = "png",
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: float = DEFAULT_JOB_TIMEOUT,
        max_cost_usd: float | str | None = None,
        phota_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("multiple_outputs", PER_KEY_XCOM)
        super().__init__(**kwargs)
        self.output_path = output_path
        self.output_format = output_format
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.max_cost_usd = max_cost_usd
        self.phota_conn_id = phota_conn_id

    # --- what a subclass says ---------------------------------------------------------------------------------

    def studio_endpoint(self) -> Endpoint:
        raise NotImplementedError

    def raw_rows(self) -> tuple[list[tuple[str, Any]], list[Violation]]:
        """``(label, row)`` pairs (a row is a mapping of request fields), and what is wrong with the rows argument
        itself (a file that cannot be read, a column no row may set)."""
        raise NotImplementedError

    def operator_violations(self) -> list[Violation]:
        """What is wrong with the operator's own arguments (the rows are checked by the engine)."""
        return []

    def result(self, batch: Batch, cost: Cost, manifest_uri: str | None) -> Any:
        raise NotImplementedError

    # --- rows -------------------------------------------------------------------------------------------------

    def normalize(self, raw: Any, profiles: Mapping[str, str]) -> tuple[dict[str, Any], list[Violation]]:
        """The row's options as the API takes them, files not yet read; and what is wrong with the row's shape."""
        if not isinstance(raw, Mapping):
            return {}, [Violation("row", f"must be an object, got {type(raw).__name__}", "a dict of request fields")]
        endpoint = self.studio_endpoint()
        problems = []
        images = contract.IMAGE_FIELDS[endpoint]  # an empty image is named as such, not as a missing one
        row = {str(k): v for k, v in raw.items() if v is not None and (k in images or not blank(v))}
        if COUNT_ALIAS in row:
            if "num_output_images" in row:
                problems.append(Violation(COUNT_ALIAS, "is given together with num_output_images", "one of them"))
            row["num_output_images"] = row.pop(COUNT_ALIAS)
        for name in sorted(OPERATOR_FIELDS & row.keys()):
            problems.append(Violation(name, "is set by the batch operator (async jobs, download URLs)", "omit it"))
            row.pop(name)
        count = row.setdefault("num_output_images", DEFAULT_NUM_OUTPUT_IMAGES)  # the remix guide requires it
        if isinstance(count, str):  # a CSV cell or a template; a string that is no integer is left to the contract
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

    def resolve(self, request: Mapping[str, Any], key: str) -> tuple[dict[str, Any], list[Violation]]:
        """The row's options with its files read, and every violation of the endpoint's rules."""
        endpoint = self.studio_endpoint()
        problems: list[Violation] = []
        if endpoint in PROMPT_REQUIRED:
            problems += missing_prompt(endpoint, request.get("prompt"))
        options = resolve_images(endpoint, request, problems)
        body = contract.job_body(endpoint, options, client_request_id=key, callback_url=self.callback_url)
        named = {problem.field for problem in problems}
        problems += [v for v in contract.validate_image_request(endpoint, body) if v.field not in named]
        return options, problems

    def _profiles(self, raw_rows: list[tuple[str, Any]], pinned: Mapping[str, str]) -> dict[str, str]:
        """Profile tag -> the newest READY profile, for the tags the rows name (pinned ones are kept)."""
        tags = {str(r[PROFILE_TAG]).strip() for _, r in raw_rows if isinstance(r, Mapping) and r.get(PROFILE_TAG)}
        profiles = {tag: pinned[tag] for tag in tags if tag in pinned}
        for tag in sorted(tags - profiles.keys()):
            found = self.hook.latest_profile(tag, ready_only=True)
            if found is not None:
                profiles[tag] = found.profile_id
        return profiles

    def prepare(self, context: Context, *, check_files: bool = True, state: Mapping[str, Any] | None = None) -> Batch:
        """Read and check every row, and attach what an earlier try (or wave) of this task did; nothing is sent.

        Raises :class:`PhotaValidationError` naming every bad row and field. With ``check_files=False`` (on resume:
        the rows were checked when the try started) input files are not read again, nor outputs looked for.
        """
        name = type(self).__name__
        problems = [*wait_argument_violations(self), *self.operator_violations()]
        if self.output_path is not None:
            problem = validate_output_folder("output_path", self.output_path)
            problems += [problem] if problem else []
        if problems:
            raise PhotaValidationError(problems, context=name)
        raw_rows, problems = self.raw_rows()
        if not raw_rows and not problems:
            problems = [Violation("requests", "has no rows", "at least one row")]
        if not raw_rows:
            raise PhotaValidationError(problems, context=name)
        manifest = dict(state) if state is not None else self._read_manifest(context)
        profiles = self._profiles(raw_rows, manifest.get("profiles") or {})
        rows: list[Row] = []
        seen: dict[str, int] = {}
        single = len(raw_rows) == 1 and not raw_rows[0][0]  # an image operator's one unlabelled row
        for number, (label, raw) in enumerate(raw_rows, start=1):
            request, row_problems = self.normalize(raw, profiles)
            identity = json.dumps(request, sort_keys=True, default=str)
            seen[identity] = occurrence = seen.get(identity, 0) + 1
            key = self.client_request_id if single and self.client_request_id else None
            key = key or stable_client_request_id(context, self.studio_endpoint(), {"row": request, "n": occurrence})
            if check_files and not row_problems:
                row_problems += self.resolve(request, key)[1]
            where = f"{label} " if label else ""
            problems += [Violation(f"{where}{p.field}", p.message, p.allowed, p.status) for p in row_problems]
            rows.append(Row(number, label, request, key))
        if problems:
            shown = problems[:MAX_REPORTED_PROBLEMS]
            if len(problems) > len(shown):
                more = len(problems) - len(shown)
                shown.append(Violation("requests", f"{more} more problem(s) not shown", "rows that pass every check"))
            raise PhotaValidationError(shown, context=name)
        batch = Batch(rows, profiles, float(manifest.get("deadline") or 0))
        self._attach(batch, manifest, verify_outputs=check_files and state is None)
        return batch

    # --- the manifest: the task's state -----------------------------------------------------------------------

    def _stem(self, context: Context) -> str:
        map_index = getattr(context["ti"], "map_index", -1)
        suffix = f"-map{map_index}" if map_index is not None and map_index >= 0 else ""
        return f"{path_segment(self.task_id)}{suffix}"

    def _folder(self) -> ObjectStoragePath:
        assert self.output_path is not None
        return storage_path(self.output_path)

    def _manifest_path(self, context: Context) -> ObjectStoragePath:
        return self._folder() / f"{self._stem(context)}-manifest.json"

    def _identity(self, context: Context) -> dict[str, Any]:
        ti = context["ti"]
        keys = ("dag_id", "run_id", "task_id")
        return {**{k: getattr(ti, k) for k in keys}, "map_index": getattr(ti, "map_index", -1), "endpoint": self._ep}

    @property
    def _ep(self) -> str:
        return self.studio_endpoint().value

    def _read_manifest(self, context: Context) -> dict[str, Any]:
        """The manifest an earlier try (or wave) of this very task instance wrote; ``{}`` when there is none, or when
        the file belongs to another run or task (then it is overwritten)."""
        if self.output_path is None:
            return {}
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

    def _attach(self, batch: Batch, manifest: Mapping[str, Any], *, verify_outputs: bool) -> None:
        """Take over each row's job, failed jobs and outputs from the manifest, when its key chain still matches
        (same run, task, row and request). With ``verify_outputs`` (a new try: files may have been removed since),
        a row whose outputs are not all in ``output_path`` any more (one listing) is collected again."""
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
            row.job_id, row.reattached = entry.get("job_id"), bool(entry.get("job_id")) and verify_outputs
            row.request_id, row.download_urls = entry.get("request_id"), list(entry.get("download_urls") or [])
            uris = list(entry.get("output_uris") or [])
            written = present is None or all(uri.rsplit("/", 1)[-1] in present for uri in uris)
            if entry.get("status") == FAILED:
                row.status, row.error = FAILED, entry.get("error")
            elif entry.get("status") == SUCCEEDED and written:
                row.status, row.output_uris = SUCCEEDED, uris
                row.count, row.known_subjects = int(entry.get("count") or 0), dict(entry.get("known_subjects") or {})
            elif row.job_id:
                row.status = IN_FLIGHT

    def _row_cost(self, row: Row) -> Cost | None:
        """What a row cost so far: its outputs (count x rate, identity rate for ``known_subjects``) and every FAILED
        job of it, counted as charged; ``None`` for a row that has cost nothing yet."""
        prices = self.hook.prices
        costs = [self._failed_charge(row)] * (len(row.failed_jobs) + bool(row.error and row.error.get("cost_basis")))
        if row.status == SUCCEEDED:
            costs.append(cost_of(self._ep, row.request, prices, count=row.count, known_subjects=row.known_subjects))
        if not costs:
            return None
        return costs[0] if len(costs) == 1 else combined(costs, endpoint=self._ep)

    def _failed_charge(self, row: Row) -> Cost:
        """What a FAILED job of the row is counted at: its worst case (the public docs never say it is refunded)."""
        worst = estimate_worst_case(self._ep, row.request, self.hook.prices)
        return replace(worst, basis=f"{worst.basis}; a FAILED job, counted as charged", count=0)

    def _total_cost(self, batch: Batch) -> Cost:
        """The total of every row's cost so far (unknown if any of them is)."""
        costs = [cost for cost in map(self._row_cost, batch.rows) if cost is not None]
        return costs[0] if len(costs) == 1 else combined(costs, endpoint=self._ep)

    def _entry(self, row: Row) -> dict[str, Any]:
        """One row of the manifest."""
        cost = self._row_cost(row)
        priced = cost.as_extra() if cost else {"cost_usd": 0.0 if row.status == FAILED else None, "cost_basis": ""}
        if cost is None:
            priced["cost_basis"] = "nothing charged" if row.status == FAILED else "not finished yet"
        entry = asdict(row)
        for name in ("number", "first_key", "key", "reattached", "request"):
            entry.pop(name)
        return {"row": row.number, "request": abbreviated(row.request, self.studio_endpoint()),
                "client_request_id": row.key, **entry, **priced}  # fmt: skip

    def _state(self, context: Context, batch: Batch, *, complete: bool) -> dict[str, Any]:
        subjects: dict[str, int] = {}
        for row in batch.having(SUCCEEDED):
            for profile_id, count in row.known_subjects.items():
                subjects[profile_id] = subjects.get(profile_id, 0) + count
        return {
            "manifest_version": MANIFEST_VERSION,
            "batch": self._identity(context),
            "complete": complete,
            "deadline": batch.deadline,
            "counts": batch.counts(),
            "known_subjects": subjects,
            **self._total_cost(batch).as_extra(),
            "profiles": batch.profiles,
            "rows": [self._entry(row) for row in batch.rows],
        }

    def _write_manifest(self, context: Context, batch: Batch, *, complete: bool) -> str | None:
        if self.output_path is None:
            return None
        return write_json(self._manifest_path(context), self._state(context, batch, complete=complete))

    # --- execution --------------------------------------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        self._journal = TaskJournal(context)
        with fail_fast_on_permanent_errors():
            batch = self.prepare(context)
            reconnected = sum(self._reconnect(row) for row in batch.having(PENDING))
            if batch.having(PENDING) and isinstance(self.cost_limit(), Decimal):
                rows = len(batch.rows)
                scope = f"this batch of {rows} row{'s' if rows > 1 else ''}" if batch.rows[0].label else "this task"
                self.check_cost_limit(self._commitment(batch), scope=scope)
        batch.deadline = time.time() + self.timeout
        counts = batch.counts()
        if counts[PENDING] < counts["rows"]:
            self.log.info(
                "Taking over from an earlier try: %d rows done, %d failed, %d jobs to collect (%d of them found by "
                "id in the task state store), %d rows to submit",
                counts[SUCCEEDED],
                counts[FAILED],
                counts[IN_FLIGHT],
                reconnected,
                counts[PENDING],
            )
            for row in batch.having(IN_FLIGHT)[:1] if len(batch.rows) == 1 else []:
                self.log.info("Reattached to job %s (client_request_id %s)", row.job_id, row.key)
        return self._advance(context, batch, {})

    def execute_complete(
        self, context: Context, event: Mapping[str, Any] | None = None, state: Mapping[str, Any] | None = None
    ) -> Any:
        """Resume after a wave: fetch every job of it once (the authoritative answer), write what finished and
        submit the next wave.

        :param context: the task context.
        :param event: the trigger's event.
        :param state: the task's state when it has no manifest (no ``output_path``), passed by the deferral.
        """
        event = validate_event(event, f"{type(self).__name__} {self.task_id}")
        if event["status"] == EVENT_ERROR and not error_is_retryable(event):
            raise AirflowFailException(f"Waiting for Phota jobs failed: {event.get('message')}")
        problem = None
        if event["status"] in (EVENT_TIMEOUT, EVENT_ERROR):
            problem = f"{event['status']}: {event.get('message') or ''}"
        self._journal = TaskJournal(context)
        with fail_fast_on_permanent_errors():
            batch = self.prepare(context, check_files=False, state=state)
        return self._advance(context, batch, {}, wave_problem=problem)

    def _advance(
        self, context: Context, batch: Batch, seen: Mapping[str, JobState], *, wave_problem: str | None = None
    ) -> Any:
        """Collect, submit, checkpoint, wait; until no job is outstanding. The manifest is written after every
        step, also when one fails (a retry then starts from it). One progress line per wave."""
        while True:
            try:
                with fail_fast_on_permanent_errors():
                    collected = self._collect(context, batch, seen)
                    if wave_problem and batch.having(IN_FLIGHT):
                        raise AirflowException(
                            f"{len(batch.having(IN_FLIGHT))} Phota job(s) are not finished ({wave_problem}); a retry "
                            "resumes waiting for the same jobs"
                        )
                    submitted = self._submit_wave(batch)
            finally:
                self._journal.flush()
                self._write_manifest(context, batch, complete=False)
            in_flight = [row.job_id for row in batch.having(IN_FLIGHT) if row.job_id]
            if not in_flight:
                return self._finish(context, batch)
            counts = batch.counts()
            where = "on the triggerer" if self.deferrable else "in the worker"
            self.log.info(
                "Phota jobs of %d rows: %s, %d submitted; now %d in flight, %d done (%d images), %d failed, "
                "%d waiting for a later wave; waiting %s (polling every %g s)",
                counts["rows"],
                collected,
                submitted,
                counts[IN_FLIGHT],
                counts[SUCCEEDED],
                counts["images"],
                counts[FAILED],
                counts[PENDING],
                where,
                self.poll_interval,
            )
            if self.deferrable:
                self._defer(context, in_flight, batch)
            seen, timed_out = self.hook.wait_for_jobs(
                in_flight, poll_interval=self.poll_interval, timeout=max(0.0, batch.deadline - time.time())
            )
            wave_problem = f"timeout after {self.timeout:g} s" if timed_out else None

    def _defer(self, context: Context, job_ids: list[str], batch: Batch) -> None:
        from airflow_provider_phota.triggers.batch import PhotaBatchTrigger

        counts = batch.counts()
        progress = {name: counts[name] for name in ("rows", SUCCEEDED, FAILED, PENDING)}
        state = None if self.output_path else self._state(context, batch, complete=False)
        remaining = max(0.0, batch.deadline - time.time())
        self.defer(
            trigger=PhotaBatchTrigger(
                job_ids, self.phota_conn_id, self.poll_interval, batch.deadline, progress=progress
            ),
            method_name="execute_complete",
            kwargs={"state": state} if state else None,
            timeout=timedelta(seconds=remaining + DEFER_TIMEOUT_GRACE_SECONDS),
        )

    def _collect(self, context: Context, batch: Batch, seen: Mapping[str, JobState]) -> str:
        """Look at every outstanding job once: write the outputs of those that SUCCEEDED, replace or fail those that
        FAILED; a job still running stays outstanding. Returns what happened, for the progress line."""
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
                try:
                    self._write_outputs(context, row, state)
                    written += 1
                    continue
                except PhotaAPIError as error:  # 403/404/410 on a signed link: expired, or gone
                    if not row.reattached or error.status not in (403, 404, 410):
                        raise
                    problem = f"its outputs can no longer be downloaded ({error}): no try wrote them within 24 h"
                    state = replace(state, status=contract.JobStatus.FAILED, error_type=OUTPUTS_LOST,
                                    error_message=problem)  # fmt: skip
            replaced_now = self._job_failed(batch, row, state)
            replaced, failed = replaced + replaced_now, failed + (not replaced_now)
        return f"{written} rows written, {failed} failed, {replaced} FAILED jobs to replace"

    def _job_failed(self, batch: Batch, row: Row, state: JobState) -> bool:
        """A FAILED job is counted as charged (once: the try that sees it first records it). Replace it with a job
        under a derived key when its error allows and the replacement's worst case still fits ``max_cost_usd``; else
        the row fails with the reason. Returns whether it is replaced."""
        failure = PhotaJobFailedError(state.job_id, state.error_type, state.error_message)
        charged = self._failed_charge(row)
        if self._journal.record_cost(row.key, state.job_id, float(charged.usd or 0)):
            metrics.record_images(self._ep, row.request, 0, charged.usd)
        reason = f"job {state.job_id}: {failure.error_message}"
        if not failure.retry_task:
            row.fail(str(failure.error_type), reason, charged)
            return False
        if len(row.failed_jobs) + 1 >= MAX_FAILED_JOBS:
            row.fail(str(failure.error_type), f"{reason} ({MAX_FAILED_JOBS} jobs FAILED)", charged)
            return False
        entry = {"job_id": state.job_id, "error_type": failure.error_type, "message": failure.error_message}
        row.failed_jobs.append({**entry, **charged.as_extra()})
        failed_key, row.key = row.key, derived_client_request_id(row.key, state.job_id)
        row.job_id, row.status = None, PENDING
        if self._reconnect(row):  # an earlier try sent this replacement already: nothing new to pay
            return True
        limit = self.cost_limit()
        if isinstance(limit, Decimal):
            committed = self._commitment(batch).usd
            if committed is None or committed > limit:
                shown = "unknown" if committed is None else usd(committed)
                row.failed_jobs.pop()
                row.key, row.job_id = failed_key, state.job_id
                row.fail(
                    "COST_LIMIT",
                    f"{reason}; a replacement job was not sent: with it the task may spend {shown}, above "
                    f"max_cost_usd {usd(limit)}",
                    charged,
                )
                return False
        self.log.warning("%s: %s; submitting a replacement job", row.label, reason)
        return True

    def _reconnect(self, row: Row) -> bool:
        """On Airflow 3.3+, take the job an earlier try submitted under the row's key from the task state store
        instead of submitting again: it is then read by id (GET) and paid for once, however long ago the service
        forgot the key. Returns whether the row was reconnected."""
        job = self._journal.job(row.key)
        if job is None:
            return False
        row.job_id, row.status, row.reattached = job.job_id, IN_FLIGHT, True
        return True

    def _commitment(self, batch: Batch) -> Cost:
        """What the task instance may end up paying once every open row has a job: its rows' costs so far (this
        try's and the manifest's) plus the worst case of each job not finished; or, on Airflow 3.3 when it is more,
        what the task state store says every try committed (finished jobs at their cost, unfinished ones at their
        worst case) plus the worst case of the rows still without a job. The store knows jobs this try's rows do
        not: an earlier try's, for a request that has changed since, or without ``output_path`` to keep them."""
        prices = self.hook.prices

        def worst(rows: list[Row]) -> Cost:
            return combined([estimate_worst_case(self._ep, row.request, prices) for row in rows], endpoint=self._ep)

        open_rows = [row for row in batch.rows if row.status in (PENDING, IN_FLIGHT)]
        paid = total(cost for cost in map(self._row_cost, batch.rows) if cost is not None)
        counted = self._journal.counted  # an earlier try counted the row's job: its cost is in ``committed``
        to_come = worst([row for row in open_rows if not (row.job_id and counted(row.key, row.job_id))])
        committed = self._journal.committed_usd()
        if committed and paid is not None and to_come.usd is not None:
            new_jobs = worst([row for row in open_rows if row.job_id is None])
            if new_jobs.usd is None or Decimal(str(committed)) + new_jobs.usd > paid + to_come.usd:
                paid, to_come = Decimal(str(committed)), new_jobs
        if paid == 0:
            return to_come
        amount = None if paid is None or to_come.usd is None else paid + to_come.usd
        shown = "an unknown amount" if paid is None else usd(paid)
        basis = f"{shown} committed by this task instance's tries so far + the worst case of the rest: {to_come.basis}"
        return replace(to_come, usd=amount, basis=basis)

    def _output_names(self, context: Context, row: Row, job_id: str, count: int) -> Iterator[ObjectStoragePath]:
        stem = f"{self._stem(context)}-row{row.number:05d}-{path_segment(job_id)[-12:]}"
        extension = contract.file_extension(row.request.get("output_format"))
        for index in range(count):
            yield self._folder() / f"{stem}-{index:02d}.{extension}"

    def _write_outputs(self, context: Context, row: Row, state: JobState) -> None:
        """Each output of the row, streamed to its file atomically; a file already there (an earlier try wrote it,
        names are unique per job) is not downloaded again. The row's images and cost go to the metrics here, once:
        a row a later try takes over from the manifest (or, on 3.3, the journal) was counted by the try that
        collected it."""
        assert state.result is not None
        urls = state.result.download_urls
        uris = []
        if self.output_path is not None:
            for url, target in zip(urls, self._output_names(context, row, state.job_id, len(urls)), strict=True):
                if not target.exists():
                    size = self.hook.download(url, target)
                    self.log.debug("Wrote %s (%d bytes)", target, size)
                uris.append(uri_of(target))
        else:
            if row.reattached and urls:  # an earlier try's job: are its links still alive?
                self.hook.client.download(urls[0], lambda chunks: next(iter(chunks), b""))
            row.download_urls = list(urls)
        row.status, row.output_uris, row.request_id = SUCCEEDED, uris, state.result.request_id
        row.count, row.known_subjects = state.result.count, dict(state.result.known_subjects)
        prices = self.hook.prices
        cost = cost_of(self._ep, row.request, prices, count=row.count, known_subjects=row.known_subjects)
        if self._journal.record_cost(row.key, state.job_id, float(cost.usd or 0)):
            metrics.record_images(self._ep, row.request, row.count, cost.usd)

    def _submit_wave(self, batch: Batch) -> int:
        """Submit pending rows until ``max_in_flight`` jobs are outstanding; returns how many were submitted. A row
        the service refuses (moderation, an input it cannot use) fails alone; a transient error that outlasted the
        retries (a long 429) ends the wave, and fails the try only when nothing is outstanding to wait for."""
        slots = self.max_in_flight - len(batch.having(IN_FLIGHT))
        submitted = 0
        for row in batch.having(PENDING)[: max(0, slots)]:
            options, problems = self.resolve(row.request, row.key)
            if problems:  # an input file changed since the rows were checked
                row.fail("INVALID_REQUEST", "; ".join(problem.describe() for problem in problems))
                continue
            try:
                handle = self.hook.submit_job(
                    self.studio_endpoint(), options, client_request_id=row.key, callback_url=self.callback_url
                )
            except (PhotaBadRequestError, PhotaUnprocessableError) as error:
                if len(batch.rows) == 1:
                    raise
                row.fail(str(error.error_type or "INVALID_REQUEST"), str(error))
                continue
            except PhotaError as error:
                if not error.retry_task or not batch.having(IN_FLIGHT):
                    raise
                self.log.warning("Submitting paused after %d jobs of this wave: %s", submitted, error)
                break
            row.job_id, row.status = handle.job_id, IN_FLIGHT
            worst = estimate_worst_case(self._ep, row.request, self.hook.prices).usd
            self._journal.remember(row.key, handle.job_id, float(worst or 0))
            # A fresh job answers QUEUED; an earlier try's job (same key) answers with where it stands.
            row.reattached = handle.status != contract.JobStatus.QUEUED
            if len(batch.rows) == 1:
                verb = "Reattached to" if row.reattached else f"Submitted /{self._ep}"
                self.log.info("%s job %s (client_request_id %s)", verb, handle.job_id, row.key)
            submitted += 1
        return submitted

    def _finish(self, context: Context, batch: Batch) -> Any:
        manifest_uri = self._write_manifest(context, batch, complete=True)
        cost = self._total_cost(batch)
        result = self.result(batch, cost, manifest_uri)
        counts = batch.counts()
        self.log.info(
            "Phota %s done: %d rows, %d succeeded (%d images), %d failed; cost: %s; manifest %s",
            self._ep,
            counts["rows"],
            counts[SUCCEEDED],
            counts["images"],
            counts[FAILED],
            cost.basis,
            manifest_uri,
        )
        if self.output_path is None and counts["images"]:
            self.log.warning(URL_LIFETIME_WARNING)
        self._lineage = self._lineage_record(batch, cost, manifest_uri)
        failed = batch.having(FAILED)
        if len(failed) > getattr(self, "max_failed_rows", 0):
            if len(batch.rows) == 1:
                error = failed[0].error or {}
                raise AirflowFailException(f"The Phota request failed: {error.get('type')}: {error.get('message')}")
            shown = "; ".join(
                f"{row.label}: {(row.error or {}).get('type')}: {(row.error or {}).get('message')}"
                for row in failed[:MAX_REPORTED_PROBLEMS]
            )
            more = f"; and {len(failed) - MAX_REPORTED_PROBLEMS} more" if len(failed) > MAX_REPORTED_PROBLEMS else ""
            raise AirflowFailException(
                f"{len(failed)} of {len(batch.rows)} rows failed (max_failed_rows={self.max_failed_rows}); every "  # type: ignore[attr-defined]
                f"other output is written, see {manifest_uri}. Failed rows: {shown}{more}"
            )
        record_asset_events(context, list(self.outlets), {k: v for k, v in result.items() if k != "download_urls"})
        return result

    # --- lineage ----------------------------------------------------------------------------------------------

    def _lineage_record(self, batch: Batch, cost: Cost, manifest_uri: str | None) -> lineage.LineageRecord:
        """Inputs (every row's input images: URLs without their query, storage URIs, base64 by hash; the profiles
        the rows use), outputs (the written files or the URLs without their tokens, and the manifest) and the
        ``phota`` run facet."""
        endpoint = self.studio_endpoint()
        record = lineage.LineageRecord()
        profiles: list[str] = []
        subjects: dict[str, int] = {}
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
            record.outputs += [lineage.url_dataset(url) for url in row.download_urls]
            for profile_id, count in row.known_subjects.items():
                subjects[profile_id] = subjects.get(profile_id, 0) + count
        record.profiles_used = list(dict.fromkeys(profiles))
        if manifest_uri:
            record.outputs.append(lineage.storage_dataset(manifest_uri))
        models = {str(row.request.get("base_model") or contract.DEFAULT_BASE_MODEL) for row in batch.rows}
        if endpoint in (Endpoint.ENHANCE, Endpoint.REMIX):
            models = {contract.DEFAULT_BASE_MODEL}  # they always run Nano Banana 2
        counts = batch.counts()
        first = batch.rows[0]
        one = {"jobId": first.job_id, "clientRequestId": first.key, "requestId": first.request_id}
        record.run = lineage.run_facts(
            **(one if len(batch.rows) == 1 else {}),
            endpoint=self._ep,
            baseModel=models.pop() if len(models) == 1 else None,
            outputCount=counts["images"],
            identityOutputs=cost.with_identity,
            knownSubjects=subjects,
            rowCount=counts["rows"],
            succeededRows=counts[SUCCEEDED],
            failedRows=counts[FAILED],
            costUsd=cost.usd_float,
            costBasis=cost.basis,
        )
        return record
