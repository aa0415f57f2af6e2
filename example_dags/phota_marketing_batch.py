"""Marketing batch: render a campaign file (CSV or JSON rows of profile tag, prompt, aspect ratio, resolution and
count) in ONE task with PhotaBatchOperator, write every output and a manifest under one storage prefix per run, and
emit one Asset event for the publish step.

The operator checks every row before anything is paid for, submits the rows as async jobs in waves (each with a
client_request_id stable per run, task and row, so a retried or cleared task is never charged twice), waits for each
wave on the triggerer with one trigger, and writes each row's images as they finish. A row that fails for good
(moderation) is listed in the manifest and fails the task once every other row is written; set max_failed_rows to
accept a few.

For one mapped task per row instead (each row visible in the grid, at about ten times the Airflow CPU), see the
README's "Batch rendering" section.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import Asset, Param, dag

from airflow_provider_phota.operators.batch import PhotaBatchOperator
from airflow_provider_phota.storage import path_segment

POLL_SECONDS = float(os.environ.get("PHOTA_EXAMPLE_POLL_SECONDS", "10"))
CAMPAIGN_RENDERS = Asset("phota://examples/marketing/renders")
RUN_FOLDER = "{{ run_id | path_segment }}"  # one storage-safe folder per run; the filter is registered on the DAG


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["phota", "example"],
    user_defined_filters={"path_segment": path_segment},
    params={
        "campaign_uri": Param("file:///tmp/phota-demo/campaign.csv", type="string", description="CSV or JSON rows"),
        "output_uri": Param("file:///tmp/phota-demo/campaigns", type="string"),
    },
)
def phota_marketing_batch() -> None:
    PhotaBatchOperator(
        task_id="render",
        endpoint="generate",
        # Columns: profile_tag (its newest READY profile replaces {subject} in the prompt), prompt, aspect_ratio,
        # resolution, count. A list of request dicts from an upstream task's XCom works too.
        requests="{{ params.campaign_uri }}",
        output_path="{{ params.output_uri }}/" + RUN_FOLDER,
        output_format="jpg",
        # Wait for each wave on the triggerer. Without it the waits follow [operators] default_deferrable, which is
        # False unless the deployment turns it on, and the task would hold a worker slot for the whole campaign.
        deferrable=True,
        poll_interval=POLL_SECONDS,
        outlets=[CAMPAIGN_RENDERS],  # one event per campaign: counts and the manifest's URI
    )


phota_marketing_batch()
