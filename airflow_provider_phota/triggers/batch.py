"""The trigger of :class:`~airflow_provider_phota.operators.batch.PhotaBatchOperator`: one trigger for every job
of a wave.

It keeps the rules of :mod:`airflow_provider_phota.triggers.phota` (fully async, GET only, an absolute deadline with
one more look before a timeout is reported, exactly one small event) and adds what a wave of hundreds or thousands
of jobs needs:

* at most one GET per outstanding job per poll interval: a poll round starts every ``poll_interval`` seconds (start
  to start; a round that takes longer delays the next one) and asks each job that is not terminal yet once, never
  sooner than ``poll_interval`` after its previous GET (the deadline's final re-check included); a terminal job is
  never asked again;
* bounded concurrency: at most ``max_concurrency`` GETs are in flight at once, and a round's GETs are spread over
  the first :data:`SPREAD` of the interval instead of leaving in one burst, so the event loop the trigger shares
  with every other trigger of the triggerer stays responsive;
* one failing GET does not end the wait: a transient error (the hook already retried it) leaves the job
  outstanding for the next round; a job the API no longer knows (404) counts as terminal and the operator reports
  it; only errors that concern every job (a wrong key, a missing connection) end the wait early;
* at most one progress line per round, and only when something changed.

The event does not carry the jobs' states: the operator fetches every finished job once on resume, which is the
authoritative answer and brings the download URLs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from airflow_provider_phota._compat import AirflowNotFoundException, BaseTrigger, TriggerEvent
from airflow_provider_phota.contract import JobStatus
from airflow_provider_phota.events import EVENT_ERROR, EVENT_SUCCESS, EVENT_TIMEOUT
from airflow_provider_phota.exceptions import PhotaError, PhotaNotFoundError, is_retryable
from airflow_provider_phota.hooks.phota import PhotaHook

DEFAULT_MAX_CONCURRENCY = 16
SPREAD = 0.8  # a round's GETs leave over this fraction of the poll interval
_LAUNCH_GRANULARITY = 0.005  # seconds: GETs due closer together than this leave together
_GONE = "NOT_FOUND"  # the status counted for a job the API answers 404 for


class PhotaBatchTrigger(BaseTrigger):
    """Wait until every job of a batch wave is terminal (SUCCEEDED or FAILED), or the deadline passes.

    :param job_ids: the jobs of the wave.
    :param phota_conn_id: the Airflow connection (its id only; the key is looked up on the triggerer).
    :param poll_interval: seconds between two GETs of the same job.
    :param deadline: absolute time (``time.time()`` seconds) after which a timeout event is sent.
    :param max_concurrency: at most this many GETs in flight at once.
    :param progress: the batch's row counts when it deferred (``rows``, ``succeeded``, ``failed``, ``pending``), so
        the progress line speaks of rows, not only of this wave's jobs.
    """

    def __init__(
        self,
        job_ids: Sequence[str],
        phota_conn_id: str,
        poll_interval: float,
        deadline: float,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        progress: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.job_ids = list(job_ids)
        self.phota_conn_id = phota_conn_id
        self.poll_interval = float(poll_interval)
        self.deadline = float(deadline)
        self.max_concurrency = int(max_concurrency)
        self.progress = dict(progress or {})

    def serialize(self) -> tuple[str, dict[str, Any]]:
        # The connection id, never the key: trigger kwargs are stored in the metadata database.
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_ids": self.job_ids,
                "phota_conn_id": self.phota_conn_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "max_concurrency": self.max_concurrency,
                "progress": self.progress,
            },
        )

    def _event(self, status: str, counts: Mapping[str, int], message: str = "", **extra: Any) -> TriggerEvent:
        payload = {"status": status, "jobs": len(self.job_ids), "counts": dict(counts), "message": message}
        return TriggerEvent({**payload, **extra})  # type: ignore[no-untyped-call]

    async def _poll_round(self, hook: Any, job_ids: list[str], last_asked: dict[str, float]) -> list[tuple[str, Any]]:
        """GET each job once, spread over the first part of the interval, at most ``max_concurrency`` at a time and
        never sooner than ``poll_interval`` after the same job's previous GET (``last_asked``, updated);
        ``(job_id, JobState or the exception)`` pairs."""
        loop = asyncio.get_running_loop()
        semaphore = asyncio.Semaphore(self.max_concurrency)

        async def get(job_id: str) -> tuple[str, Any]:
            earliest = last_asked.get(job_id, float("-inf")) + self.poll_interval
            if earliest > loop.time():  # a late start of the previous GET, then a punctual round
                await asyncio.sleep(earliest - loop.time())
            async with semaphore:
                last_asked[job_id] = loop.time()
                try:
                    return job_id, await hook.aget_job(job_id)
                except Exception as error:  # sorted out by the caller: one job's error is not the round's
                    return job_id, error

        started = loop.time()
        spacing = self.poll_interval * SPREAD / max(1, len(job_ids))
        tasks = []
        if not last_asked and job_ids:
            # The hook opens its client (connection lookup, a share of the loop's HTTP session) on its first call;
            # first calls racing each other would each take a share. So the very first GET goes alone.
            tasks.append(asyncio.create_task(get(job_ids[0])))
            await asyncio.wait([tasks[0]])
            job_ids = job_ids[1:]
        for index, job_id in enumerate(job_ids, start=len(tasks)):
            delay = started + index * spacing - loop.time()
            if delay > _LAUNCH_GRANULARITY:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(get(job_id)))
        return await asyncio.gather(*tasks)

    def _progress_line(self, statuses: Mapping[str, str], elapsed: float) -> str:
        counts = _counts(statuses)
        known = counts.get(JobStatus.SUCCEEDED, 0) + counts.get(JobStatus.FAILED, 0) + counts.get(_GONE, 0)
        queued = len(self.job_ids) - known - counts.get(JobStatus.RUNNING, 0)  # QUEUED, not seen yet, or unknown
        text = (
            f"Phota batch after {elapsed:.0f} s: {len(self.job_ids)} jobs in this wave: "
            f"{counts.get(JobStatus.SUCCEEDED, 0)} succeeded, {counts.get(JobStatus.FAILED, 0)} failed, "
            f"{counts.get(JobStatus.RUNNING, 0)} running, {queued} queued"
        )
        if counts.get(_GONE):
            text += f", {counts[_GONE]} not found"
        if self.progress:
            text += (
                f"; batch of {self.progress.get('rows', 0)} rows: {self.progress.get('succeeded', 0)} done and "
                f"{self.progress.get('failed', 0)} failed before this wave, {self.progress.get('pending', 0)} "
                "waiting for a later wave"
            )
        return text

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = PhotaHook(self.phota_conn_id)
        started = time.monotonic()
        outstanding = list(dict.fromkeys(self.job_ids))
        statuses: dict[str, str] = {}
        last_asked: dict[str, float] = {}
        last_counts: dict[str, int] | None = None
        try:
            # The operator has just submitted the wave: nothing is finished yet. Never more than half the time
            # left, so there is always one look before the deadline's final re-check.
            await asyncio.sleep(min(self.poll_interval, max(0.0, self.deadline - time.time()) / 2))
            while True:
                round_started = time.monotonic()
                final_check = time.time() >= self.deadline
                transient: list[str] = []
                for job_id, seen in await self._poll_round(hook, outstanding, last_asked):
                    if isinstance(seen, AirflowNotFoundException):
                        # The connection is missing on this triggerer: as in a worker, a retry may find it.
                        yield self._event(EVENT_ERROR, _counts(statuses), f"Phota connection: {seen}", retryable=True)
                        return
                    if isinstance(seen, PhotaNotFoundError):
                        statuses[job_id] = _GONE  # terminal here; the operator reports the row
                    elif isinstance(seen, PhotaError) and not is_retryable(seen):
                        yield self._event(EVENT_ERROR, _counts(statuses), str(seen), retryable=seen.retry_task)
                        return
                    elif isinstance(seen, Exception):
                        transient.append(f"{job_id}: {seen}")
                    else:
                        statuses[job_id] = str(seen.status)
                outstanding = [job_id for job_id in outstanding if not _terminal(statuses.get(job_id))]
                if _counts(statuses) != last_counts:  # at most one line per round, and only on a change
                    last_counts = _counts(statuses)
                    self.log.info("%s", self._progress_line(statuses, time.monotonic() - started))
                if transient:
                    self.log.warning(
                        "Phota batch: %d status request(s) failed after retries; polling them again next round "
                        "(first: %s)",
                        len(transient),
                        transient[0],
                    )
                if not outstanding:
                    yield self._event(EVENT_SUCCESS, _counts(statuses))
                    return
                if final_check:
                    message = f"{len(outstanding)} of {len(self.job_ids)} jobs still not finished at the deadline"
                    if transient:
                        message += f" (last error: {transient[-1]})"
                    yield self._event(EVENT_TIMEOUT, _counts(statuses), message)
                    return
                # The next round starts one interval after this one started, or at the deadline's final re-check.
                next_round = self.poll_interval - (time.monotonic() - round_started)
                await asyncio.sleep(max(0.0, min(next_round, self.deadline - time.time())))
        finally:
            await hook.aclose()


def _terminal(status: str | None) -> bool:
    return status in (JobStatus.SUCCEEDED, JobStatus.FAILED, _GONE)


def _counts(statuses: Mapping[str, str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for status in statuses.values():
        counts[status] = counts.get(status, 0) + 1
    return counts
