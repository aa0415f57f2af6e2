"""Paid tasks whose retry comes a day later (tests/operators/test_durable_retries.py).

The first try waits briefly for its job, which the emulator holds (its clock does not move), and fails; the task's
``on_retry_callback`` moves the emulator's clock 25 hours, past the 24 hours the service keeps a
``client_request_id``. The retry then finds its job by id (Airflow 3.3: the task state store; any Airflow: the
manifest under ``output_path``) or, with neither, submits and pays again.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
import requests
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_phota.operators.images import PhotaGenerateOperator

START = pendulum.datetime(2026, 1, 1, tz="UTC")
A_DAY_AND_AN_HOUR = 25 * 3600
PARAMS = {"out": "", "emulator": "", "max_cost_usd": ""}


def a_day_passes(context: Any) -> None:
    """The emulator's clock moves 25 h between the tries (its admin API: the DAG runs where the test's emulator
    object is not at hand)."""
    url = f"{context['params']['emulator']}/_emulator/advance"
    requests.post(url, json={"seconds": A_DAY_AND_AN_HOUR}, timeout=10).raise_for_status()


RETRY_A_DAY_LATER = {
    "deferrable": False,
    "poll_interval": 0.05,
    "timeout": 1,
    "retries": 1,
    "retry_delay": timedelta(seconds=0),
    "on_retry_callback": a_day_passes,
}

with DAG("op_late_retry_files", schedule=None, start_date=START, params=PARAMS):
    PhotaGenerateOperator(
        task_id="generate", prompt="a lighthouse at dawn", output_path="{{ params.out }}", **RETRY_A_DAY_LATER
    )

with DAG("op_late_retry_urls", schedule=None, start_date=START, params=PARAMS):
    PhotaGenerateOperator(task_id="generate", prompt="a lighthouse at dawn", **RETRY_A_DAY_LATER)

# A request that differs per try stands for one edited between the tries (a Variable, a fixed campaign file): the
# retry needs a new job, and the limit counts what the first try committed.
with DAG("op_late_retry_new_request", schedule=None, start_date=START, params=PARAMS):
    PhotaGenerateOperator(
        task_id="generate",
        prompt="a lighthouse at dawn, take {{ ti.try_number }}",
        max_cost_usd="{{ params.max_cost_usd }}",
        **RETRY_A_DAY_LATER,
    )
