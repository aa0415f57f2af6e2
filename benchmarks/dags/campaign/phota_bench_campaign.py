"""DAGs for benchmark 7: the same campaign rendered as mapped deferrable tasks and as one batch task.

Both DAGs start with the same ``rows`` task (the campaign's request dicts, from the environment's row count), then
render every row with a deferrable async job and write its image to ``conf["output_path"]``: one mapped
``PhotaGenerateOperator`` task instance per row, or one ``PhotaBatchOperator``. Poll interval and everything else
are the same on both sides.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_phota.operators.batch import PhotaBatchOperator
from airflow_provider_phota.operators.images import PhotaGenerateOperator

ROWS = int(os.environ.get("PHOTA_BENCH_CAMPAIGN_ROWS", "200"))
POLL_SECONDS = float(os.environ.get("PHOTA_BENCH_POLL_SECONDS", "2"))
OUTPUT = "{{ dag_run.conf['output_path'] }}"
COMMON: dict[str, Any] = {"output_format": "jpg", "deferrable": True, "poll_interval": POLL_SECONDS, "timeout": 1800}
START = pendulum.datetime(2026, 1, 1, tz="UTC")


def campaign() -> list[dict[str, Any]]:
    return [{"prompt": f"campaign row {n}", "aspect_ratio": "1:1", "resolution": "1K"} for n in range(ROWS)]


with DAG("phota_bench_campaign_mapped", schedule=None, start_date=START, catchup=False, default_args={"retries": 0}):

    @task(task_id="rows")
    def mapped_rows() -> list[dict[str, Any]]:
        return campaign()

    PhotaGenerateOperator.partial(task_id="render", output_path=OUTPUT, **COMMON).expand_kwargs(mapped_rows())

with DAG("phota_bench_campaign_batch", schedule=None, start_date=START, catchup=False, default_args={"retries": 0}):

    @task(task_id="rows")
    def batch_rows() -> list[dict[str, Any]]:
        return campaign()

    PhotaBatchOperator(task_id="render", endpoint="generate", requests=batch_rows(), output_path=OUTPUT, **COMMON)
