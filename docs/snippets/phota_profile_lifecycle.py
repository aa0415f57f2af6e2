"""Create a profile, wait for it with the sensor, and delete it: the profile how-to pages."""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag

from airflow_provider_phota.operators.profile import PhotaCreateProfileOperator, PhotaDeleteProfileOperator
from airflow_provider_phota.sensors.phota import ProfileReadySensor


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"subject": Param("rex", type="string"), "photo_urls": Param([], type="array")},
)
def phota_profile_lifecycle() -> None:
    # [START howto_create_profile]
    create = PhotaCreateProfileOperator(
        task_id="create_profile",
        image_urls="{{ params.photo_urls }}",  # a list, or a template rendering to one
        tag="{{ params.subject }}",  # with reuse_existing (the default), a re-run reuses the tag's profile
        training_tier="standard",  # 10-50 photos; "fast" takes 5-10
        max_cost_usd=3.00,
    )
    # [END howto_create_profile]

    # [START howto_sensor]
    ready = ProfileReadySensor(
        task_id="wait_for_training",
        profile_id=create.output["profile_id"],
        deferrable=True,  # or mode="reschedule" to free the worker slot between pokes
        poke_interval=30,  # the service suggests 10-30 s
        timeout=2 * 60 * 60,  # seconds in all, then AirflowSensorTimeout
    )
    # [END howto_sensor]

    # [START howto_create_and_wait]
    trained = PhotaCreateProfileOperator(
        task_id="create_and_wait",
        image_urls="{{ params.photo_urls }}",
        tag="{{ params.subject }}",  # the same tag: reuses the profile made above, no second training
        wait_for_ready=True,  # one task that also waits for READY
        deferrable=True,
        poll_interval=30,
    )
    # [END howto_create_and_wait]

    # [START howto_delete_profile]
    delete = PhotaDeleteProfileOperator(
        task_id="delete_profile",
        profile_id=create.output["profile_id"],
        ignore_missing=True,  # a profile already gone (a retry's normal case) is a success
    )
    # [END howto_delete_profile]
    ready >> trained >> delete


phota_profile_lifecycle()
