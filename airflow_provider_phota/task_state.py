"""What a task instance's tries share: its job ids and its spend, in Airflow 3.3's task state store (AIP-103).

The engine calls these around its submits so that a retry reconnects to the jobs the earlier tries started (a GET by
job id, not a resubmit that pays again once the service's 24-hour idempotency window is over) and so that
``max_cost_usd`` holds for the task instance across all its tries.

* ``remember_job(context, key, job_id)`` right after a submit returns its job id, ``remembered_job(context, key)``
  before submitting on a later try;
* ``record_cost(context, key, cost_usd)`` when a job's cost is known (again with 0 after a refund: a job's cost
  is replaced, never added twice), ``spent_usd(context)`` for the spend of every try so far.

Entries are one per idempotency key (``phota_job:<key>``, ``{"job_id", "cost_usd"}``) plus the running total
(``phota_spent_usd``), so a batch of thousands of rows writes small values, never one growing blob. They follow
``[state_store] default_retention_days`` like any task state.

Below Airflow 3.3 the context has no ``task_state_store``: every function is a no-op that returns ``None`` (or
``False``), and the engine keeps its behaviour of today (the service's ``client_request_id`` deduplication, 24 h;
the spend from the manifest where there is one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

JOB_KEY_PREFIX = "phota_job:"
SPENT_KEY = "phota_spent_usd"


@dataclass(frozen=True)
class RememberedJob:
    """A job an earlier try of this task instance submitted; ``cost_usd`` is ``None`` until recorded."""

    job_id: str
    cost_usd: float | None = None


def task_state_store(context: Mapping[str, Any]) -> Any | None:
    """The task instance's state store (Airflow 3.3+), or ``None`` where Airflow has none."""
    return context.get("task_state_store")


def _job_key(idempotency_key: str) -> str:
    return JOB_KEY_PREFIX + idempotency_key


def _entry(store: Any, idempotency_key: str) -> RememberedJob | None:
    value = store.get(_job_key(idempotency_key))
    if not isinstance(value, Mapping) or not isinstance(value.get("job_id"), str):
        return None
    cost = value.get("cost_usd")
    return RememberedJob(value["job_id"], float(cost) if isinstance(cost, int | float) else None)


def remember_job(context: Mapping[str, Any], idempotency_key: str, job_id: str) -> bool:
    """Keep the job a submit with ``idempotency_key`` returned; ``False`` where there is no store.

    :param context: the task's context.
    :param idempotency_key: the submit's ``client_request_id``.
    :param job_id: the job id the service answered.
    """
    store = task_state_store(context)
    if store is None:
        return False
    previous = _entry(store, idempotency_key)
    cost = previous.cost_usd if previous is not None and previous.job_id == job_id else None
    store.set(_job_key(idempotency_key), {"job_id": job_id, "cost_usd": cost})
    return True


def remembered_job(context: Mapping[str, Any], idempotency_key: str) -> RememberedJob | None:
    """The job an earlier try submitted with ``idempotency_key``, or ``None`` (none yet, or no store).

    :param context: the task's context.
    :param idempotency_key: the submit's ``client_request_id``.
    """
    store = task_state_store(context)
    return None if store is None else _entry(store, idempotency_key)


def spent_usd(context: Mapping[str, Any]) -> float | None:
    """What every try of this task instance has spent so far (0.0 before the first cost); ``None`` without a
    store, where the caller falls back to its manifest.

    :param context: the task's context.
    """
    store = task_state_store(context)
    if store is None:
        return None
    value = store.get(SPENT_KEY)
    return float(value) if isinstance(value, int | float) else 0.0


def record_cost(context: Mapping[str, Any], idempotency_key: str, cost_usd: float) -> float | None:
    """Set the cost of the job remembered under ``idempotency_key`` and return the spend so far; recording the
    same job again replaces its cost (a refund records 0), so a retry never counts a job twice. ``None`` without a
    store.

    :param context: the task's context.
    :param idempotency_key: the submit's ``client_request_id``; :func:`remember_job` must have kept its job.
    :param cost_usd: the job's cost in USD.
    """
    store = task_state_store(context)
    if store is None:
        return None
    job = _entry(store, idempotency_key)
    if job is None:
        raise KeyError(f"no job remembered for idempotency key {idempotency_key!r}: call remember_job first")
    total = (spent_usd(context) or 0.0) - (job.cost_usd or 0.0) + float(cost_usd)
    # The total first: a crash between the two writes can count this job twice (the limit stops early), never
    # leave it out (the limit would let a try spend past it).
    store.set(SPENT_KEY, round(total, 6))
    store.set(_job_key(idempotency_key), {"job_id": job.job_id, "cost_usd": float(cost_usd)})
    return total
