"""The engine's data: a row (one request) and where it stands, the rows of a task, and their default labels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_phota import contract
from airflow_provider_phota.contract import Endpoint
from airflow_provider_phota.pricing import Cost

MAX_REPORTED_PROBLEMS = 20  # a validation message names at most this many problems, then counts the rest
MANIFEST_VERSION = 1
PROFILE_TAG = "profile_tag"  # a row column: the newest READY profile of this tag
SUBJECT_PLACEHOLDER = "{subject}"  # where that profile's [[id]] goes in the prompt
COUNT_ALIAS = "count"  # the marketing campaign files' name for num_output_images
OPERATOR_FIELDS = frozenset({*contract.ASYNC_FIELDS, "response_mode"})  # set by the engine, never by a row
URL_LIFETIME_WARNING = "Download URLs expire after 24 hours: copy the images before then, or set output_path."
PENDING, IN_FLIGHT, SUCCEEDED, FAILED = "pending", "in_flight", "succeeded", "failed"


@dataclass
class Row:
    """One row (one request) and where it stands; the runner writes it to the manifest as one entry of ``rows``."""

    number: int  # 1-based
    label: str  # how messages name the row: "row 3", or where a campaign file has it ("line 302")
    request: dict[str, Any]  # the row's options as given (file paths, not their bytes), profile tag resolved
    first_key: str  # the client_request_id of the row's first job
    key: str = ""  # the key of its current job: first_key, or derived after FAILED jobs
    status: str = PENDING
    job_id: str | None = None
    failed_jobs: list[dict[str, Any]] = field(default_factory=list)  # FAILED jobs replaced by a new one
    output_uris: list[str] = field(default_factory=list)
    download_urls: list[str] = field(default_factory=list)  # only without output_path
    request_id: str | None = None
    count: int = 0
    known_subjects: dict[str, int] = field(default_factory=dict)
    error: dict[str, Any] | None = None  # why the row failed for good; ``cost_usd`` when its last job FAILED
    reattached: bool = False  # its job was an earlier try's

    def __post_init__(self) -> None:
        self.key = self.key or self.first_key

    def fail(self, error_type: str, message: str, charged: Cost | None = None) -> None:
        self.status, self.error = FAILED, {"type": error_type, "message": message}
        if charged is not None:
            self.error.update(job_id=self.job_id, **charged.as_extra())


@dataclass
class Batch:
    rows: list[Row]
    profiles: dict[str, str]  # profile tag -> the profile id its rows use (pinned for the whole task)
    deadline: float = 0.0  # time.time() at which this try stops waiting

    def having(self, status: str) -> list[Row]:
        return [row for row in self.rows if row.status == status]

    def counts(self) -> dict[str, int]:
        counts = {status: len(self.having(status)) for status in (PENDING, IN_FLIGHT, SUCCEEDED, FAILED)}
        return {"rows": len(self.rows), **counts, "images": sum(row.count for row in self.having(SUCCEEDED))}


def blank(value: Any) -> bool:
    return isinstance(value, str) and not value.strip()


def abbreviated(request: Mapping[str, Any], endpoint: Endpoint) -> dict[str, Any]:
    """The request for the manifest: inline base64 images are replaced by their length."""

    def short(value: Any) -> Any:
        if isinstance(value, str) and len(value) > 256 and "://" not in value[:16]:
            return f"<base64, {len(value)} characters>"
        return value

    shown = dict(request)
    for name in contract.IMAGE_FIELDS[endpoint]:
        value = shown.get(name)
        shown[name] = [short(item) for item in value] if isinstance(value, list) else short(value)
    return contract.compact(shown)


def row_labels(rows: Sequence[Any]) -> list[tuple[str, Any]]:
    """``("row N", row)`` pairs, N counted from 1: the default labels."""
    return [(f"row {number}", row) for number, row in enumerate(rows, start=1)]
