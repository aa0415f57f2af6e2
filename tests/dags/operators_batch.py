"""DAGs that run PhotaBatchOperator in real Airflow tasks (dag.test()) for tests/operators/test_batch_operator.py."""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import DAG, Asset, task

from airflow_provider_phota.operators.batch import PhotaBatchOperator

START = pendulum.datetime(2026, 1, 1, tz="UTC")
PARAMS = {"out": "/tmp/phota-test-batch", "campaign": "/tmp/phota-test-batch/campaign.csv", "max_failed_rows": 0}
FAST = {"poll_interval": 0.1, "timeout": 120}
BATCH = Asset("phota://tests/batch")

with DAG("op_batch_file", schedule=None, start_date=START, params=PARAMS, default_args={"retries": 0}):
    PhotaBatchOperator(
        task_id="render",
        endpoint="generate",
        requests="{{ params.campaign }}",
        output_path="{{ params.out }}",
        output_format="jpg",
        deferrable=True,
        outlets=[BATCH],
        **FAST,
    )

with DAG("op_batch_xcom", schedule=None, start_date=START, params={**PARAMS, "rows": 3}):

    @task
    def campaign(params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        assert params is not None
        return [
            {"prompt": f"poster {index}", "aspect_ratio": "1:1", "resolution": "1K"} for index in range(params["rows"])
        ]

    PhotaBatchOperator(
        task_id="render",
        endpoint="generate",
        requests=campaign(),
        output_path="{{ params.out }}",
        deferrable=True,
        max_in_flight=2,
        **FAST,
    )
