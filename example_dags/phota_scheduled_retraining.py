"""Scheduled retraining: every week, train a fresh profile from the subject's current photos, wait until it is
READY, switch the profile id that downstream DAGs read, then delete the previous profile.

The switch happens only after the new profile is READY, so a failed training leaves the current profile in
place (the switch and the delete never run). Downstream DAGs read the id from the Airflow Variable
``phota_profile__<subject>`` and can be scheduled on the ``phota://examples/profiles/<subject>`` Asset.
Each run trains under its own tag (subject + run id), so a retried run reuses its own training instead of
paying for another, and never picks up the profile that is in use.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import Asset, Param, dag, task

from airflow_provider_phota.operators.profile import PhotaCreateProfileOperator, PhotaDeleteProfileOperator
from airflow_provider_phota.storage import path_segment

POLL_SECONDS = float(os.environ.get("PHOTA_EXAMPLE_POLL_SECONDS", "30"))
SUBJECT = "demo-subject"
CURRENT_PROFILE = Asset(f"phota://examples/profiles/{SUBJECT}")


def current_profile_variable(subject: str) -> str:
    """The Variable downstream DAGs read to find the subject's profile in use."""
    return f"phota_profile__{subject}"


@dag(
    schedule="@weekly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["phota", "example"],
    user_defined_filters={"path_segment": path_segment},
    params={
        "subject": Param(SUBJECT, type="string", minLength=1, maxLength=64),
        "photos_uri": Param("file:///tmp/phota-demo/photos", type="string"),
        "photos_base_url": Param("http://127.0.0.1:8765/", type="string"),
        "training_tier": Param("standard", enum=["standard", "fast"]),
    },
)
def phota_scheduled_retraining() -> None:
    @task
    def gather_photos(params: dict[str, Any] | None = None) -> list[str]:
        from airflow_provider_phota.storage import public_image_urls

        assert params is not None
        urls = public_image_urls(params["photos_uri"], params["photos_base_url"])
        if not urls:
            raise ValueError(f"No photos under {params['photos_uri']}: keeping the current profile")
        return urls

    trained = PhotaCreateProfileOperator(
        task_id="train_profile",
        image_urls=gather_photos(),
        tag="{{ params.subject }}-{{ run_id | path_segment }}",
        training_tier="{{ params.training_tier }}",
        wait_for_ready=True,
        # Wait for the ~20-minute training on the triggerer. Without it the wait follows [operators]
        # default_deferrable, which is False unless the deployment turns it on, and holds a worker slot.
        deferrable=True,
        poll_interval=POLL_SECONDS,
    )

    @task(outlets=[CURRENT_PROFILE])
    def switch_profile(
        new_profile_id: str, params: dict[str, Any] | None = None, outlet_events: Any = None
    ) -> str | None:
        """Point downstream DAGs at the new READY profile; return the previous one, if it should be deleted."""
        from airflow.sdk import Variable

        assert params is not None
        assert outlet_events is not None
        key = current_profile_variable(params["subject"])
        previous = Variable.get(key, None)  # the default, positional: Airflow 2 names it default_var
        Variable.set(key, new_profile_id)
        outlet_events[CURRENT_PROFILE].extra = {"subject": params["subject"], "profile_id": new_profile_id}
        return previous if previous and previous != new_profile_id else None

    previous = switch_profile(trained.output["profile_id"])

    @task.short_circuit
    def has_previous(profile_id: str | None) -> bool:
        return profile_id is not None

    has_previous(previous) >> PhotaDeleteProfileOperator(task_id="delete_previous_profile", profile_id=previous)


phota_scheduled_retraining()
