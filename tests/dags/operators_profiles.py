"""DAGs that run the profile operators in real Airflow tasks (dag.test()) for tests/operators."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_phota.operators.profile import PhotaCreateProfileOperator, PhotaDeleteProfileOperator

START = pendulum.datetime(2026, 1, 1, tz="UTC")
PARAMS = {"urls": [], "tag": "subject-1", "profile_id": ""}

with DAG("op_create_profile", schedule=None, start_date=START, params=PARAMS):
    PhotaCreateProfileOperator(
        task_id="create",
        image_urls="{{ params.urls }}",
        tag="{{ params.tag }}",
        training_tier="fast",
        wait_for_ready=True,
        deferrable=True,
        poll_interval=0.1,
    )

with DAG("op_create_profile_retry", schedule=None, start_date=START, params=PARAMS):
    PhotaCreateProfileOperator(
        task_id="create",
        image_urls="{{ params.urls }}",
        tag="{{ params.tag }}",
        wait_for_ready=True,
        deferrable=False,
        poll_interval=0.1,
        retries=2,
        retry_delay=timedelta(seconds=0),
    )

with DAG("op_create_profile_wait_retries", schedule=None, start_date=START, params=PARAMS):
    PhotaCreateProfileOperator(
        task_id="create",
        image_urls="{{ params.urls }}",
        tag="{{ params.tag }}",
        training_tier="fast",
        wait_for_ready=True,
        deferrable=True,
        poll_interval=0.1,
        retries=2,
        retry_delay=timedelta(seconds=0),
    )

with DAG("op_delete_profile", schedule=None, start_date=START, params=PARAMS):
    PhotaDeleteProfileOperator(task_id="delete", profile_id="{{ params.profile_id }}")
