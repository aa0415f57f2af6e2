"""The task state store adapter: a real DAG run on Airflow 3.3 (a retry reads what the first try stored), and the
no-op below 3.3 (no ``task_state_store`` in the context)."""

from __future__ import annotations

from typing import Any

import pytest
from airflow_versions import AIRFLOW_VERSION
from dagrun_support import return_value, run_dag, task_states, try_numbers
from packaging.version import Version
from task_state_support import JsonStore

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


def test_a_job_commits_its_worst_case_then_its_cost_once_across_processes() -> None:
    context = {"task_state_store": JsonStore()}
    journal = task_state.TaskJournal(context)
    assert journal.committed_usd() == 0.0
    journal.remember("a", "job_a", 0.5)
    journal.remember("b", "job_b", 0.5)
    assert journal.committed_usd() == 1.0  # charged at submit: the worst case until the cost is known
    journal.flush()

    later = task_state.TaskJournal(context)  # a retry, in another process
    assert later.job("a") == task_state.RememberedJob("job_a", 0.5, None)
    assert later.record_cost("a", "job_a", 0.25) is True
    assert later.record_cost("a", "job_a", 0.25) is False  # collected again: not counted twice
    assert later.committed_usd() == 0.75
    # The service's dedup answering the same job again changes nothing; a new job under the key is a new commitment.
    later.remember("a", "job_a", 0.5)
    assert later.job("a") == task_state.RememberedJob("job_a", 0.5, 0.25)
    later.remember("a", "job_a2", 0.5)
    assert later.committed_usd() == 1.0
    # A cost recorded for a job nobody remembered (submitted before an upgrade to 3.3) is counted as it comes.
    assert later.record_cost("c", "job_c", 0.25) is True
    later.flush()
    assert task_state.TaskJournal(context).committed_usd() == 1.25


def test_thousands_of_jobs_take_a_few_store_calls_per_wave() -> None:
    store = JsonStore()
    journal = task_state.TaskJournal({"task_state_store": store})
    for wave in range(5):  # five waves of 400 jobs
        for number in range(400):
            journal.remember(f"key-{wave}-{number}", f"job_{wave}_{number}", 0.1)
        journal.flush()
    assert store.calls == 1 + 5 * 3  # the count read once; per wave: the count and two chunks of 200
    store.calls = 0

    later = task_state.TaskJournal({"task_state_store": store})
    assert len(later.jobs) == 2000
    assert store.calls == 1 + 10  # the count, then each chunk once
    assert later.job("key-4-399") == task_state.RememberedJob("job_4_399", 0.1, None)


@pytest.mark.parametrize("entry", [["", 0.1, None], ["..", 0.1, None], ["a/b", 0.1, None], [42, 0.1, None], "job_a"])
def test_an_entry_this_task_did_not_write_is_ignored(entry: Any) -> None:
    store = JsonStore()
    store.set("phota_job_chunks", 1)
    store.set("phota_jobs:0", {"a": entry, "b": ["job_b", 0.1, None]})
    journal = task_state.TaskJournal({"task_state_store": store})
    assert journal.job("a") is None
    assert journal.job("b") == task_state.RememberedJob("job_b", 0.1, None)


def test_below_airflow_3_3_the_journal_remembers_nothing_and_writes_nothing() -> None:
    journal = task_state.TaskJournal({"ti": object()})  # a context without AIP-103: no task_state_store

    journal.remember("a", "job_a", 1.0)
    journal.flush()
    assert journal.job("a") is None
    assert journal.record_cost("a", "job_a", 1.0) is True  # the caller counts what it sees
    assert journal.committed_usd() is None
