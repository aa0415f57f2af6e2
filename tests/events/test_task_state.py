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
    assert return_value(run, "submit_then_fail") == {
        "job_id": "job_first_try",
        "cost_usd": None,
        "committed_usd": 0.2,
        "counted_again": False,
    }


class DictStore:
    """The synchronous half of ``TaskStateStoreAccessor``."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        assert value is not None
        self.values[key] = value


def test_a_job_commits_its_worst_case_then_its_cost_once() -> None:
    context = {"task_state_store": DictStore()}
    assert task_state.committed_usd(context) == 0.0
    task_state.remember_job(context, "a", "job_a", 0.5)
    task_state.remember_job(context, "b", "job_b", 0.5)
    assert task_state.committed_usd(context) == 1.0  # charged at submit: the worst case until the cost is known

    assert task_state.record_cost(context, "a", "job_a", 0.25) is True
    assert task_state.committed_usd(context) == 0.75
    assert task_state.record_cost(context, "a", "job_a", 0.25) is False  # a retry collecting job a again
    assert task_state.committed_usd(context) == 0.75
    assert task_state.remembered_job(context, "a") == task_state.RememberedJob("job_a", 0.5, 0.25)
    # The service's dedup answering the same job again changes nothing; a new job under the key is a new commitment.
    task_state.remember_job(context, "a", "job_a", 0.5)
    assert task_state.remembered_job(context, "a") == task_state.RememberedJob("job_a", 0.5, 0.25)
    task_state.remember_job(context, "a", "job_a2", 0.5)
    assert task_state.remembered_job(context, "a") == task_state.RememberedJob("job_a2", 0.5, None)
    assert task_state.committed_usd(context) == 1.25
    # A cost recorded for a job nobody remembered (submitted before an upgrade to 3.3) is counted as it comes.
    assert task_state.record_cost(context, "c", "job_c", 0.25) is True
    assert task_state.committed_usd(context) == 1.5


@pytest.mark.parametrize("job_id", ["", "..", "a/b", 42, None])
def test_a_stored_job_id_that_is_no_id_is_ignored(job_id: Any) -> None:
    store = DictStore()
    store.set("phota_job:a", {"job_id": job_id, "cost_usd": None} if job_id is not None else {"cost_usd": 1})
    assert task_state.remembered_job({"task_state_store": store}, "a") is None


def test_below_airflow_3_3_every_function_is_a_no_op() -> None:
    context: dict[str, Any] = {"ti": object()}  # what a context without AIP-103 has: no task_state_store

    assert task_state.remember_job(context, "a", "job_a", 1.0) is False
    assert task_state.remembered_job(context, "a") is None
    assert task_state.record_cost(context, "a", "job_a", 1.0) is True  # the caller counts what it sees
    assert task_state.committed_usd(context) is None
