"""What a task instance's tries share: its job ids and its spend, in Airflow 3.3's task state store (AIP-103).

The engine calls these around its submits so that a retry reconnects to the jobs the earlier tries started (a GET by
job id, not a resubmit that pays again once the service's 24-hour idempotency window is over) and so that
``max_cost_usd`` holds for the task instance across all its tries:

* ``remember_job(context, key, job_id, worst_usd)`` right after a submit returns its job id; the job's worst case
  counts in the spend from then on (the service charges at submit);
* ``remembered_job(context, key)`` before submitting on a later try;
* ``record_cost(context, key, job_id, cost_usd)`` when the job is finished: its cost replaces its worst case, once;
  a later record (a retry collecting the same job again) changes nothing;
* ``committed_usd(context)``: what every try so far has committed, finished jobs at their cost and unfinished ones
  at their worst case.

Entries are one per idempotency key (``phota_job:<key>``, ``{"job_id", "worst_usd", "cost_usd"}``) plus the running
total (``phota_committed_usd``), so a batch of thousands of rows writes small values, never one growing blob. They
follow ``[state_store] default_retention_days`` like any task state, and ``[state_store] clear_on_success`` empties
them when the task succeeds.

The store is written by this task and by users allowed to edit its task instance (the REST API's
``.../state-store``): a job id read back is checked as an id before it is used, and a forged one can only name a job
of the connection's own account.

Below Airflow 3.3 the context has no ``task_state_store``: the functions do nothing and return ``False`` or ``None``
(``record_cost`` returns ``True``: the caller counts every job it sees, as it always did), and the engine keeps its
behaviour of before (the service's ``client_request_id`` deduplication, 24 h; the spend from the manifest where there
is one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_phota.contract import validate_id

JOB_KEY_PREFIX = "phota_job:"
COMMITTED_KEY = "phota_committed_usd"


@dataclass(frozen=True)
class RememberedJob:
    """A job a try of this task instance submitted; ``cost_usd`` is ``None`` until it is recorded."""

    job_id: str
    worst_usd: float = 0.0
    cost_usd: float | None = None


def task_state_store(context: Mapping[str, Any]) -> Any | None:
    """The task instance's state store (Airflow 3.3+), or ``None`` where Airflow has none."""
    return context.get("task_state_store")


def _amount(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _entry(store: Any, idempotency_key: str) -> RememberedJob | None:
    value = store.get(JOB_KEY_PREFIX + idempotency_key)
    if not isinstance(value, Mapping) or validate_id("job_id", value.get("job_id")):
        return None  # nothing, or nothing this task wrote
    return RememberedJob(value["job_id"], _amount(value.get("worst_usd")) or 0.0, _amount(value.get("cost_usd")))


def _save(store: Any, idempotency_key: str, job: RememberedJob, committed_change: float) -> None:
    # A rise of the total is written before the entry, a fall after it: a crash between the two writes can leave
    # the total too high (the limit stops early), never too low (the limit would let a try spend past it).
    entry = {"job_id": job.job_id, "worst_usd": job.worst_usd, "cost_usd": job.cost_usd}
    if committed_change < 0:
        store.set(JOB_KEY_PREFIX + idempotency_key, entry)
    if committed_change:
        store.set(COMMITTED_KEY, round((_amount(store.get(COMMITTED_KEY)) or 0.0) + committed_change, 6))
    if committed_change >= 0:
        store.set(JOB_KEY_PREFIX + idempotency_key, entry)


def remember_job(context: Mapping[str, Any], idempotency_key: str, job_id: str, worst_usd: float) -> bool:
    """Keep the job a submit with ``idempotency_key`` returned, and commit its worst case; ``False`` where there is
    no store. The same job again (the service's deduplication answered it) changes nothing.

    :param context: the task's context.
    :param idempotency_key: the submit's ``client_request_id``.
    :param job_id: the job id the service answered.
    :param worst_usd: the most the job can cost, in USD.
    """
    store = task_state_store(context)
    if store is None:
        return False
    previous = _entry(store, idempotency_key)
    if previous is None or previous.job_id != job_id:
        _save(store, idempotency_key, RememberedJob(job_id, worst_usd), worst_usd)
    return True


def remembered_job(context: Mapping[str, Any], idempotency_key: str) -> RememberedJob | None:
    """The job a try submitted with ``idempotency_key``, or ``None`` (none yet, or no store).

    :param context: the task's context.
    :param idempotency_key: the submit's ``client_request_id``.
    """
    store = task_state_store(context)
    return None if store is None else _entry(store, idempotency_key)


def committed_usd(context: Mapping[str, Any]) -> float | None:
    """What every try of this task instance has committed so far: finished jobs at their cost, unfinished ones at
    their worst case (0.0 before the first submit); ``None`` without a store, where the caller uses its manifest.

    :param context: the task's context.
    """
    store = task_state_store(context)
    return None if store is None else _amount(store.get(COMMITTED_KEY)) or 0.0


def record_cost(context: Mapping[str, Any], idempotency_key: str, job_id: str, cost_usd: float) -> bool:
    """Count a finished job's cost, once: ``True`` when this record counted it (and where there is no store, so the
    caller counts what it sees), ``False`` when a try had already.

    :param context: the task's context.
    :param idempotency_key: the submit's ``client_request_id``.
    :param job_id: the job; one nobody remembered (submitted before an upgrade to 3.3) is counted as it comes.
    :param cost_usd: the job's cost in USD.
    """
    store = task_state_store(context)
    if store is None:
        return True
    job = _entry(store, idempotency_key)
    if job is None or job.job_id != job_id:
        job = RememberedJob(job_id)
    elif job.cost_usd is not None:
        return False
    _save(store, idempotency_key, RememberedJob(job_id, job.worst_usd, float(cost_usd)), cost_usd - job.worst_usd)
    return True
