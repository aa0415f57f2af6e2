"""A DAG that waits for a profile's training with the deferrable ProfileReadySensor (tests/sensors)."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_phota.sensors.phota import ProfileReadySensor

with DAG(
    "sensor_wait",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    params={"profile_id": ""},
) as dag:
    ProfileReadySensor(
        task_id="wait_for_profile",
        profile_id="{{ params.profile_id }}",
        deferrable=True,
        poke_interval=0.2,
        timeout=60,
    )

with DAG(
    "sensor_wait_with_retries",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    params={"profile_id": ""},
):
    ProfileReadySensor(
        task_id="wait_for_profile",
        profile_id="{{ params.profile_id }}",
        deferrable=True,
        poke_interval=0.2,
        timeout=60,
        retries=2,
        retry_delay=timedelta(seconds=0),
    )
