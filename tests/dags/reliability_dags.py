"""DAGs of the reliability suite (tests/reliability): tasks with Airflow retries, run with dag.test()."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_phota.operators.images import PhotaGenerateOperator
from airflow_provider_phota.operators.profile import PhotaCreateProfileOperator

START = pendulum.datetime(2026, 1, 1, tz="UTC")
RETRY = {"retries": 1, "retry_delay": timedelta(seconds=0)}

with DAG(
    "reliability_generate_deferrable_retry",
    schedule=None,
    start_date=START,
    params={"out": "/tmp/phota-reliability-out", "prompt": "a lighthouse at dawn"},
):
    PhotaGenerateOperator(
        task_id="generate",
        prompt="{{ params.prompt }}",
        num_output_images=2,
        output_path="{{ params.out }}",
        deferrable=True,
        poll_interval=0.1,
        timeout=60,
        **RETRY,
    )

with DAG(
    "reliability_generate_retry",
    schedule=None,
    start_date=START,
    params={"out": "/tmp/phota-reliability-out", "prompt": "a lighthouse at dawn"},
):
    PhotaGenerateOperator(
        task_id="generate",
        prompt="{{ params.prompt }}",
        output_path="{{ params.out }}",
        deferrable=False,
        poll_interval=0.05,
        timeout=60,
        **RETRY,
    )

with DAG(
    "reliability_profile_retry",
    schedule=None,
    start_date=START,
    params={"tag": "reliability-subject", "urls": [f"https://example.com/r/{i}.jpg" for i in range(10)]},
):
    PhotaCreateProfileOperator(
        task_id="create_profile", image_urls="{{ params.urls }}", tag="{{ params.tag }}", **RETRY
    )
