"""What a task instance's tries share: its jobs and what they committed, in Airflow 3.3's task state store (AIP-103).

The engine keeps a :class:`TaskJournal` per task process: each job a submit returned (its idempotency key, job id
and worst case) and, once the job is done, its cost. A later try reads the journal back and reconnects to those jobs
by id (a GET, not a resubmit that pays again once the service's 24-hour idempotency window is over), counts no job
twice, and checks ``max_cost_usd`` against what every try committed: finished jobs at their cost, unfinished ones at
their worst case.

The journal is read once per process and written once per wave (:meth:`TaskJournal.flush`), in chunks of
``CHUNK_SIZE`` jobs (``phota_jobs:0``, ``phota_jobs:1``, ... and their count ``phota_job_chunks``): a store call is a
round trip to the API server, and a batch of thousands of rows must not make one per job. The committed total is
summed from the entries, so no write can leave it out of step with them. Entries follow ``[state_store]
default_retention_days`` like any task state; ``[state_store] clear_on_success`` empties them when the task succeeds.

The store is written by this task and by users allowed to edit its task instance (the REST API's
``.../state-store``): entries are read defensively (an entry whose job id is not an id is ignored), and a forged one
can only name a job of the connection's own account.

Below Airflow 3.3 the context has no ``task_state_store``: the journal remembers nothing, ``committed_usd`` is
``None`` and ``record_cost`` returns ``True`` (the caller counts every job it sees, as it always did); the engine's
manifest and the service's 24-hour deduplication are what a retry has.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_phota.contract import validate_id

CHUNK_KEY = "phota_jobs:{}"
CHUNK_COUNT_KEY = "phota_job_chunks"
CHUNK_SIZE = 200  # jobs per stored value: about 30 KB, under [state_store] max_value_storage_bytes (64 KB)


@dataclass(frozen=True)
class RememberedJob:
    """A job a try of this task instance submitted; ``cost_usd`` is ``None`` until it is recorded."""

    job_id: str
    worst_usd: float = 0.0
    cost_usd: float | None = None


def _amount(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _job(value: Any) -> RememberedJob | None:
    """An entry as stored (``[job_id, worst_usd, cost_usd]``), or ``None`` for anything this task did not write."""
    if not isinstance(value, list) or len(value) != 3 or validate_id("job_id", value[0]):
        return None
    return RememberedJob(value[0], _amount(value[1]) or 0.0, _amount(value[2]))


class TaskJournal:
    """This task instance's jobs across its tries, for one task process.

    :param context: the task's context; without a ``task_state_store`` (below Airflow 3.3) the journal is empty and
        writes nothing.
    """

    def __init__(self, context: Mapping[str, Any]) -> None:
        self.store = context.get("task_state_store")
        self.jobs: dict[str, RememberedJob] = {}
        self.chunk_of: dict[str, int] = {}  # idempotency key -> the chunk it is stored in
        self.chunks: list[list[str]] = []  # the keys of each chunk, in order
        self.dirty: set[int] = set()
        if self.store is None:
            return
        count = self.store.get(CHUNK_COUNT_KEY)
        self.stored_chunks = count if isinstance(count, int) and not isinstance(count, bool) else 0
        for index in range(self.stored_chunks):
            stored = self.store.get(CHUNK_KEY.format(index))
            entries = stored.items() if isinstance(stored, Mapping) else ()
            self.chunks.append([])
            for key, value in entries:
                if (job := _job(value)) is not None and key not in self.jobs:
                    self.jobs[key], self.chunk_of[key] = job, index
                    self.chunks[index].append(key)

    def job(self, idempotency_key: str) -> RememberedJob | None:
        """The job a try submitted with ``idempotency_key``, or ``None`` (none yet, or no store)."""
        return self.jobs.get(idempotency_key)

    def counted(self, idempotency_key: str, job_id: str) -> bool:
        """Whether a try has recorded the cost of this job."""
        job = self.jobs.get(idempotency_key)
        return job is not None and job.job_id == job_id and job.cost_usd is not None

    def committed_usd(self) -> float | None:
        """What every try has committed so far (finished jobs at their cost, the others at their worst case; 0.0
        before the first submit), or ``None`` without a store."""
        if self.store is None:
            return None
        return sum(job.worst_usd if job.cost_usd is None else job.cost_usd for job in self.jobs.values())

    def remember(self, idempotency_key: str, job_id: str, worst_usd: float) -> None:
        """Keep the job a submit with ``idempotency_key`` returned; its worst case counts from now (the service
        charges at submit). The same job again (the service's deduplication answered it) changes nothing."""
        previous = self.jobs.get(idempotency_key)
        if previous is None or previous.job_id != job_id:
            self._set(idempotency_key, RememberedJob(job_id, worst_usd))

    def record_cost(self, idempotency_key: str, job_id: str, cost_usd: float) -> bool:
        """Replace a finished job's worst case with its cost, once: ``True`` when this record counted it (and where
        there is no store, so the caller counts what it sees), ``False`` when a try had already."""
        if self.store is None:
            return True
        if self.counted(idempotency_key, job_id):
            return False
        job = self.jobs.get(idempotency_key)
        worst = job.worst_usd if job is not None and job.job_id == job_id else 0.0
        self._set(idempotency_key, RememberedJob(job_id, worst, float(cost_usd)))
        return True

    def _set(self, idempotency_key: str, job: RememberedJob) -> None:
        if self.store is None:
            return
        if idempotency_key not in self.chunk_of:
            if not self.chunks or len(self.chunks[-1]) >= CHUNK_SIZE:
                self.chunks.append([])
            self.chunks[-1].append(idempotency_key)
            self.chunk_of[idempotency_key] = len(self.chunks) - 1
        self.jobs[idempotency_key] = job
        self.dirty.add(self.chunk_of[idempotency_key])

    def flush(self) -> None:
        """Write the chunks that changed; the engine calls it after every wave, with the manifest, so the jobs a
        wave submitted reach the store when the wave ends (a worker killed in the middle of a wave leaves them to
        the service's 24-hour deduplication, as it leaves them out of the manifest). The count goes first: a chunk
        it names that was never written reads as empty."""
        if self.store is None or not self.dirty:
            return
        if len(self.chunks) > self.stored_chunks:
            self.store.set(CHUNK_COUNT_KEY, len(self.chunks))
            self.stored_chunks = len(self.chunks)
        for index in sorted(self.dirty, reverse=True):  # the new jobs first, then costs of older ones
            entries = {key: self.jobs[key] for key in self.chunks[index]}
            self.store.set(
                CHUNK_KEY.format(index), {k: [j.job_id, j.worst_usd, j.cost_usd] for k, j in entries.items()}
            )
        self.dirty.clear()
