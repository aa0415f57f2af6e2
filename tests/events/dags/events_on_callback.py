"""Scheduled on the asset the callback receiver updates: one run per recorded job callback (the deployment test)."""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import Asset, dag, task

GENERATE_JOBS = Asset("phota://jobs/generate")


@dag(schedule=[GENERATE_JOBS], start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def events_on_callback() -> None:
    @task
    def finished_jobs(triggering_asset_events: Any = None) -> list[str]:
        return [event.extra["job_id"] for event in triggering_asset_events[GENERATE_JOBS]]

    finished_jobs()


events_on_callback()
