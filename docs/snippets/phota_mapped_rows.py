"""The alternative to PhotaBatchOperator: one mapped image task per row."""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import Param, dag, task

from airflow_provider_phota.operators.images import PhotaGenerateOperator
from airflow_provider_phota.storage import path_segment


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    user_defined_filters={"path_segment": path_segment},
    params={"output_uri": Param("file:///tmp/phota-rows", type="string")},
)
def phota_mapped_rows() -> None:
    @task
    def campaign_rows() -> list[dict[str, Any]]:
        return [
            {"prompt": "A red sneaker on a white table", "aspect_ratio": "1:1"},
            {"prompt": "A red sneaker on a running track", "aspect_ratio": "16:9"},
        ]

    # [START howto_mapped_rows]
    PhotaGenerateOperator.partial(
        task_id="render",
        output_path="{{ params.output_uri }}/{{ run_id | path_segment }}",
        output_format="jpg",
        deferrable=True,
    ).expand_kwargs(campaign_rows())  # one task instance per row
    # [END howto_mapped_rows]


phota_mapped_rows()
