"""A task that fails its first try after remembering a job and its cost; the retry reports what it reads back
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
            from airflow_provider_phota import task_state

            key = "row-1"
            seen = task_state.remembered_job(context, key)
            if context["ti"].try_number == 1:
                assert seen is None
                task_state.remember_job(context, key, "job_first_try")
                task_state.record_cost(context, key, 0.25)
                raise RuntimeError("the first try dies after its submit")
            assert seen is not None
            # Recording the same job again (the retry learnt its final cost) replaces it, never adds it twice.
            spent = task_state.record_cost(context, key, 0.25)
            return {"job_id": seen.job_id, "cost_usd": seen.cost_usd, "spent_usd": spent}

        submit_then_fail()

    events_task_state()
