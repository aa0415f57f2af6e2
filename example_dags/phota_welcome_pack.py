"""Welcome pack: when a customer's profile finishes training, render their welcome pack (Airflow 3).

No schedule and no sensor: the DAG is scheduled on an asset that an ``AssetWatcher`` updates. Its trigger,
:class:`~airflow_provider_phota.triggers.events.PhotaProfileReadyEventTrigger`, runs in the triggerer, looks at the
profiles tagged ``customers`` every ``POLL_SECONDS`` (GET only) and sends one event per profile that becomes READY;
the event's payload (``profile_id``, ``tag``, ``status``) is in the asset event's ``extra["payload"]``.

Profiles that become READY close together can arrive in one DAG run (Airflow batches the asset events queued
before the run starts), so the DAG renders one pack per event of its run: every READY profile is rendered once.
Profiles already READY when the watcher first looks are not welcomed (see the trigger's ``include_existing``).
On Airflow 3.3 the watcher's watermark is in the asset state store and survives triggerer restarts; on 3.0-3.2 a
restarted watcher does not welcome the profiles that finished while it was down (docs/events.md).
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import Asset, AssetWatcher, dag, task

from airflow_provider_phota.operators.images import PhotaGenerateOperator
from airflow_provider_phota.storage import path_segment
from airflow_provider_phota.triggers.events import PhotaProfileReadyEventTrigger

POLL_SECONDS = float(os.environ.get("PHOTA_EXAMPLE_POLL_SECONDS", "30"))
CUSTOMER_TAG = os.environ.get("PHOTA_EXAMPLE_CUSTOMER_TAG", "customers")
OUTPUT_URI = os.environ.get("PHOTA_EXAMPLE_OUTPUT_URI", "file:///tmp/phota-demo/welcome-packs")

CUSTOMER_PROFILE_READY = Asset(
    f"phota://examples/profiles-ready/{CUSTOMER_TAG}",
    watchers=[
        AssetWatcher(
            name=f"phota_profiles_ready_{CUSTOMER_TAG}",
            trigger=PhotaProfileReadyEventTrigger(tag=CUSTOMER_TAG, poll_interval=POLL_SECONDS),
        )
    ],
)


@dag(
    schedule=[CUSTOMER_PROFILE_READY],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["phota", "example"],
    user_defined_filters={"path_segment": path_segment},
)
def phota_welcome_pack() -> None:
    @task
    def welcome_prompts(triggering_asset_events: Any = None) -> list[str]:
        """One prompt per profile that became READY; the profile comes in as an inline ``[[profile_id]]``."""
        assert triggering_asset_events is not None
        profile_ids = [
            event.extra["payload"]["profile_id"] for event in triggering_asset_events[CUSTOMER_PROFILE_READY]
        ]
        return [f"Welcome card portrait of [[{profile_id}]], warm studio light, confetti" for profile_id in profile_ids]

    PhotaGenerateOperator.partial(
        task_id="render_welcome_pack",
        num_output_images=2,
        aspect_ratio="4:3",
        output_path=OUTPUT_URI + "/{{ run_id | path_segment }}",
        deferrable=True,  # wait for the jobs on the triggerer, not in a worker slot
        poll_interval=POLL_SECONDS,
    ).expand(prompt=welcome_prompts())


phota_welcome_pack()
