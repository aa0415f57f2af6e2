"""The DAG of the real-deployment integration test (tests/integration/test_real_deployment.py).

It only waits and generates: the test creates the profile up front and passes its id and an output folder in
the run's ``conf``. Both tasks defer, so a run needs the triggerer; the test holds the emulator's clock until it
has seen each task in the ``deferred`` state.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_phota.operators.images import PhotaGenerateOperator
from airflow_provider_phota.sensors.phota import ProfileReadySensor

DAG_ID = "phota_integration"

with DAG(
    dag_id=DAG_ID,
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["phota", "integration-test"],
    default_args={"retries": 0},
):
    wait_for_profile = ProfileReadySensor(
        task_id="wait_for_profile",
        profile_id="{{ dag_run.conf['profile_id'] }}",
        deferrable=True,
        poke_interval=1,
        timeout=300,
    )
    generate = PhotaGenerateOperator(
        task_id="generate",
        prompt="[[{{ dag_run.conf['profile_id'] }}]] reading on a beach at sunset",
        num_output_images=2,
        aspect_ratio="1:1",
        resolution="1K",
        output_path="{{ dag_run.conf['output_path'] }}",
        deferrable=True,
        poll_interval=1,
        timeout=300,
    )
    wait_for_profile >> generate
