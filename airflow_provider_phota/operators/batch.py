"""PhotaBatchOperator: a whole campaign of studio requests in one task and one trigger.

Phota has no batch endpoint, so the batch is built on the client side from the API's async jobs by the job engine
(:mod:`airflow_provider_phota.engine.runner`), with every promise of the image operators for every row: checked
before anything is paid for (one bad row fails the task before the first submit, naming the row and the field),
paid once per row (stable keys, FAILED jobs replaced under derived keys and counted as charged), in waves of at most
``max_in_flight`` jobs waited for by ONE trigger, nothing lost (atomic outputs, a manifest that is also the batch's
state), partial failure up to ``max_failed_rows``, and priced (``max_cost_usd`` bounds the whole batch).

XCom and the Asset events of the outlets get counts and the manifest's URI only
(:class:`~airflow_provider_phota.results.BatchOperatorResult`); one event per batch, not per row.
"""

from __future__ import annotations

import ast
import json
import logging
from collections.abc import Collection, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_phota.campaign_files import check_rows, read_campaign, row_columns
from airflow_provider_phota.contract import OUTPUT_FORMATS, Endpoint, Violation
from airflow_provider_phota.engine.rows import SUCCEEDED, Batch
from airflow_provider_phota.engine.runner import PhotaJobsOperator
from airflow_provider_phota.pricing import Cost
from airflow_provider_phota.results import BatchOperatorResult

if TYPE_CHECKING:
    from airflow_provider_phota.hooks.phota import PhotaHook

# The API documents no rate limit (api-decisions D13 only says how a 429 looks). 100 jobs in flight keep the polling
# at 20 GETs/s at the default 5 s interval and one wave's submits at 100 POSTs, which the hook paces on 429s.
DEFAULT_MAX_IN_FLIGHT = 100
LIST_OF_ROWS = "a list of request dicts, or a .csv, .json or .jsonl file of rows"


def _count_violations(name: str, value: Any, *, minimum: int) -> list[Violation]:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        return [Violation(name, f"{value!r} is out of range", f"an integer >= {minimum}")]
    return []


class PhotaBatchOperator(PhotaJobsOperator):
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
        list literal), or the URI or local path of a campaign file: ``.csv`` with a header (as spreadsheets save it:
        a BOM, CRLF, ``,`` or ``;``, quoted newlines, blank lines), ``.json`` (a list of objects) or ``.jsonl``
        (templated). An ``id`` column names its row in messages and is never sent
        (:mod:`~airflow_provider_phota.campaign_files`).
    :param ignore_columns: columns of the rows to leave out (``owner_notes``...). Any other column a row may not set
        fails the task before anything is paid, named once with the rows it is in: a typo must not render the wrong
        thing (templated).
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
    :param timeout: seconds this try waits in all, across waves and deferrals (default 3600); then the try fails, and
        a retry resumes with the same jobs.
    :param max_cost_usd: the most the whole batch may spend, in dollars (templated). After the rows are checked and
        before the first submit, the worst-case cost of every row together (every output with identity, priced from
        the connection's price table) must fit, else the task fails without retries and nothing is submitted; a row
        whose rate is unknown is refused; a replacement job for a FAILED one (counted as charged) that would cross it
        is not sent, and its row fails with the reason. ``None`` (default): no limit.
    :param phota_conn_id: the Phota connection (default ``phota_default``; templated).
    """

    template_fields: Sequence[str] = (
        "endpoint",
        "requests",
        "ignore_columns",
        "output_path",
        "output_format",
        "max_cost_usd",
        "phota_conn_id",
    )
    template_fields_renderers = {"requests": "json"}
    ui_color = "#c4b5fd"

    def __init__(
        self,
        *,
        endpoint: str,
        requests: Sequence[Mapping[str, Any]] | str,
        output_path: str,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        max_failed_rows: int = 0,
        ignore_columns: Collection[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(output_path=output_path, **kwargs)
        self.endpoint = endpoint
        self.requests = requests
        self.ignore_columns = ignore_columns
        self.max_in_flight = max_in_flight
        self.max_failed_rows = max_failed_rows

    @cached_property
    def hook(self) -> PhotaHook:
        """The hook, its per-call lines at DEBUG: one per submit, status check and download would be thousands per
        batch (retries and transient errors still warn); the batch logs one progress line per wave instead."""
        from airflow_provider_phota.hooks.phota import PhotaHook

        return PhotaHook(self.phota_conn_id, call_log_level=logging.DEBUG)

    def studio_endpoint(self) -> Endpoint:
        return Endpoint(self.endpoint)

    def operator_violations(self) -> list[Violation]:
        problems = []
        if self.endpoint not in set(Endpoint):
            allowed = ", ".join(repr(e.value) for e in Endpoint)
            problems.append(Violation("endpoint", f"{self.endpoint!r} is not a studio endpoint", allowed))
        if self.output_format not in OUTPUT_FORMATS:
            problems.append(Violation("output_format", f"{self.output_format!r} is not a valid value", "'png', 'jpg'"))
        if self.output_path is None:
            problems.append(Violation("output_path", "is required for a batch", "a folder or storage URI"))
        problems += _count_violations("max_in_flight", self.max_in_flight, minimum=1)
        return problems + _count_violations("max_failed_rows", self.max_failed_rows, minimum=0)

    def raw_rows(self) -> tuple[list[tuple[str, Any]], list[Violation]]:
        """The rows, labelled with where they are (``line 302 (id 'spring-17')`` in a file, ``row 3`` inline), and
        one problem per column a row may not set: such a column is left out of every row, so it is named once."""
        value: Any = self.requests
        allowed = row_columns(self.endpoint) if self.endpoint in set(Endpoint) else frozenset()
        if isinstance(value, str):
            text = value.strip()
            if not text.startswith("["):
                rows, problems = read_campaign(text, allowed=allowed, ignore_columns=self.ignore_columns)
                return [(row.label, {k: v for k, v in row.values.items() if k in allowed}) for row in rows], problems
            try:  # a list rendered by a template: JSON, or the Python literal of an XCom value
                value = json.loads(text)
            except ValueError:
                try:
                    value = ast.literal_eval(text)
                except (ValueError, SyntaxError):
                    return [], [Violation("requests", "is neither a list literal nor a file", LIST_OF_ROWS)]
        if not isinstance(value, list | tuple):
            return [], [Violation("requests", f"must be a list, got {type(value).__name__}", LIST_OF_ROWS)]
        rows, problems = check_rows(value, allowed=allowed, ignore_columns=self.ignore_columns)
        return [(row.label, {k: v for k, v in row.values.items() if k in allowed}) for row in rows], problems

    def result(self, batch: Batch, cost: Cost, manifest_uri: str | None) -> BatchOperatorResult:
        counts = batch.counts()
        return {
            "endpoint": str(self.endpoint),
            "manifest_uri": manifest_uri or "",
            "rows": counts["rows"],
            "succeeded": counts[SUCCEEDED],
            "failed": counts["failed"],
            "images": counts["images"],
            **cost.as_extra(),  # type: ignore[typeddict-item]
        }
