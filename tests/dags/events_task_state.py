"""A task that fails its first try after remembering a job; the retry reports what it reads back and counts the job
(tests/events/test_task_state.py). Airflow 3 only: the adapter is a no-op below 3.3, tested without a DAG there."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum

try:
    from airflow.sdk import dag, task
except ImportError:  # Airflow 2.x: no DAG here (the test runs on 3.3 only)
    dag = None

if dag is not None:

    @dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, tags=["phota-test"])
    def events_task_state() -> None:
        @task(retries=1, retry_delay=timedelta(seconds=0))
        def submit_then_fail(**context: Any) -> dict[str, Any]:
            from airflow_provider_phota.task_state import TaskJournal

            key = "row-1"
            journal = TaskJournal(context)
            seen = journal.job(key)
            if context["ti"].try_number == 1:
                assert seen is None
                journal.remember(key, "job_first_try", 0.5)
                journal.flush()
                raise RuntimeError("the first try dies after its submit")
            assert seen is not None
            # The retry collects the job: its cost replaces its worst case; recording it again changes nothing.
            journal.record_cost(key, seen.job_id, 0.2)
            counted = journal.record_cost(key, seen.job_id, 0.2)
            journal.flush()
            committed = TaskJournal(context).committed_usd()
            return {
                "job_id": seen.job_id,
                "cost_usd": seen.cost_usd,
                "committed_usd": committed,
                "counted_again": counted,
            }

        submit_then_fail()

    events_task_state()
