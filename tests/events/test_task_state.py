"""The task state store adapter: a real DAG run on Airflow 3.3 (a retry reads what the first try stored), and the
no-op below 3.3 (no ``task_state_store`` in the context)."""

from __future__ import annotations

from typing import Any

import pytest
from airflow_versions import AIRFLOW_VERSION
from dagrun_support import return_value, run_dag, task_states, try_numbers
from packaging.version import Version

from airflow_provider_phota import task_state


@pytest.mark.skipif(Version("3.3") > AIRFLOW_VERSION, reason="the task state store (AIP-103) is Airflow 3.3+")
def test_a_retry_reads_the_job_and_the_spend_the_first_try_stored(airflow_db: None) -> None:
    run = run_dag("events_task_state")

    assert task_states(run) == {"submit_then_fail": "success"}
    assert try_numbers(run) == {"submit_then_fail": 2}
    assert return_value(run, "submit_then_fail") == {"job_id": "job_first_try", "cost_usd": 0.25, "spent_usd": 0.25}


class DictStore:
    """The synchronous half of ``TaskStateStoreAccessor``."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        assert value is not None
        self.values[key] = value


def test_costs_replace_per_job_and_add_up_across_jobs() -> None:
    context = {"task_state_store": DictStore()}
    assert task_state.spent_usd(context) == 0.0
    task_state.remember_job(context, "a", "job_a")
    task_state.remember_job(context, "b", "job_b")

    assert task_state.record_cost(context, "a", 0.5) == 0.5
    assert task_state.record_cost(context, "b", 0.25) == 0.75
    assert task_state.record_cost(context, "a", 0.0) == 0.25  # job a was refunded
    assert task_state.remembered_job(context, "a") == task_state.RememberedJob("job_a", 0.0)
    assert task_state.spent_usd(context) == 0.25
    with pytest.raises(KeyError, match="no job remembered"):
        task_state.record_cost(context, "never-submitted", 1.0)


def test_below_airflow_3_3_every_function_is_a_no_op() -> None:
    context: dict[str, Any] = {"ti": object()}  # what a context without AIP-103 has: no task_state_store

    assert task_state.remember_job(context, "a", "job_a") is False
    assert task_state.remembered_job(context, "a") is None
    assert task_state.record_cost(context, "a", 1.0) is None
    assert task_state.spent_usd(context) is None
