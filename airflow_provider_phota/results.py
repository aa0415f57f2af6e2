"""The XCom results of the Phota operators and the sensor: one ``TypedDict`` per operator, every key always present.

Every operator pushes each key as an XCom of its own (``multiple_outputs=True``), so downstream tasks read them the
same way everywhere: ``create.output["profile_id"]``, ``edit.output["output_uris"]``, ``batch.output["manifest_uri"]``.
The same quantity has the same key in every result (``images``, ``cost_usd``, ``manifest_uri``). A key that does not
apply holds ``None`` or ``[]``, never goes missing. Image bytes never go to XCom: only ids, URIs, counts, costs.

This module imports nothing but ``typing``, so DAG files and type checkers can use it for free.
"""

from __future__ import annotations

from typing import TypedDict

__all__ = [
    "BatchOperatorResult",
    "CreateProfileResult",
    "DeleteProfileResult",
    "ImageOperatorResult",
    "ProfileStatusResult",
]


class ImageOperatorResult(TypedDict):
    """What ``PhotaEditOperator``, ``PhotaGenerateOperator``, ``PhotaEnhanceOperator`` and ``PhotaRemixOperator``
    return."""

    endpoint: str
    """``"edit"``, ``"generate"``, ``"enhance"`` or ``"remix"``."""
    job_id: str | None
    """The async job that produced the images."""
    client_request_id: str | None
    """The idempotency key of that job."""
    request_id: str | None
    """The ``X-Request-Id`` of the answer that carried the result (quote it when reporting a problem)."""
    images: int
    """How many images were produced (and billed)."""
    known_subjects: dict[str, int]
    """Profile id -> the number of outputs in which that identity was recognised."""
    output_uris: list[str]
    """The files written under ``output_path`` (``file://`` URIs for local paths); ``[]`` without it."""
    download_urls: list[str]
    """The signed URLs of the images (they expire after 24 hours); ``[]`` when ``output_path`` is set."""
    manifest_uri: str | None
    """The JSON manifest under ``output_path`` (the batch's format, one row); ``None`` without ``output_path``."""
    cost_usd: float | None
    """What the task paid in dollars, counted once however often it was retried or re-run: the images (count x
    rate, at the identity rate where ``known_subjects`` recognised a profile) and any FAILED job (counted as charged);
    ``None`` when the price table has no rate for the request (see ``cost_basis``)."""
    cost_basis: str
    """How ``cost_usd`` was computed, e.g. ``"2 x $0.15 (identity recognised) = $0.30 (enhance rate)"``."""


class BatchOperatorResult(TypedDict):
    """What ``PhotaBatchOperator`` returns: counts, the cost and the manifest's URI. Each row's request, job, output
    URIs, ``known_subjects``, cost and error are in the manifest, never in XCom."""

    endpoint: str
    manifest_uri: str
    """The JSON manifest of the batch, under ``output_path``."""
    rows: int
    succeeded: int
    """Rows whose outputs are all written."""
    failed: int
    """Rows that failed for good (at most ``max_failed_rows``, or the task fails)."""
    images: int
    """Output images written (and billed)."""
    cost_usd: float | None
    """What the batch paid in dollars, counted once across tries and re-runs: each row priced like an image
    operator's result, FAILED jobs counted as charged; ``None`` when the price table has no rate for any of them
    (see ``cost_basis``)."""
    cost_basis: str
    """How ``cost_usd`` was computed, e.g. ``"2 request(s), 3 output(s) = $0.24"``; each row's basis is in the
    manifest."""


class ProfileStatusResult(TypedDict):
    """What ``ProfileReadySensor`` returns once the profile is READY."""

    profile_id: str
    status: str
    """The API's profile status: ``READY`` after a wait, else the status seen (``VALIDATING``, ``IN_PROGRESS``...)."""
    message: str
    """The API's status message; ``""`` when it gave none."""


class CreateProfileResult(ProfileStatusResult):
    """What ``PhotaCreateProfileOperator`` returns (``status`` is ``READY`` with ``wait_for_ready=True``)."""

    tag: str | None
    training_tier: str
    reused: bool
    """``True`` when an existing profile of the tag was reused, so no new training was paid for."""
    cost_usd: float | None
    """What the training cost in dollars (``0.0`` when reused); ``None`` when the price table has no price."""
    cost_basis: str
    """How ``cost_usd`` was computed, e.g. ``"1 profile x $2.90 (standard training)"``."""


class DeleteProfileResult(TypedDict):
    """What ``PhotaDeleteProfileOperator`` returns."""

    profile_id: str
    deleted: bool
    """``False`` when the profile was already gone (with ``ignore_missing=True``)."""
