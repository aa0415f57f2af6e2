"""Scheduled retraining: every week, train a fresh profile from the subject's current photos, wait until it is
READY, point downstream DAGs at it, then delete the profile it replaces.

Downstream DAGs read the profile id from the Airflow Variable ``phota_profile__<subject>`` and can be scheduled on
the ``phota://examples/profiles/<subject>`` Asset. Beside it, ``phota_profile_as_of__<subject>`` holds the time the
run that trained that profile stands for (below).

Runs are ordered by the time they stand for, never by which one ran last: a scheduled run stands for the end of its
data interval, a manual run for the time it was triggered for (``run_after``; on Airflow 2, its data interval's
end). With catchup, clears of any run in any order, retries and runs at the same time, the DAG guarantees:

- the Variable only ever moves to a profile of a run that stands for the same time or a later one: never back to an
  older profile;
- a run older than the one whose profile is in use stops before training (nothing paid); one that was overtaken
  while it trained deletes its own new profile instead of switching;
- the only profiles it deletes are the one it replaces (trained for an earlier or the same time) and its own: never
  the profile in use, never one newer than its own;
- a training that ends in ERROR is deleted, the run fails, and the profile in use stays.

The switch (read, compare, write both Variables) runs as one task with ``max_active_tis_per_dag=1``, so two runs
never interleave there; only a run that switched emits an Asset event. Each run trains under its own tag (subject +
run id): a retried or cleared run reuses its own training instead of paying for another. A Variable set by hand,
without ``phota_profile_as_of__<subject>``, counts as older than any run. With ``catchup=True`` every missed
interval trains (and pays) in turn, and the newest wins.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
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


def as_of_variable(subject: str) -> str:
    """The Variable holding the time the run that trained the profile in use stands for."""
    return f"phota_profile_as_of__{subject}"


def training_tag(subject: str, run_id: str) -> str:
    """The tag a run trains under: one per run, so a retry or a clear of the run finds its own training."""
    return f"{subject}-{path_segment(run_id)}"


def run_time(dag_run: Any, data_interval_end: datetime | None) -> str:
    """The time a run stands for, as sortable UTC text: ``run_after`` (Airflow 3: a scheduled run's data interval
    end, a manual run's trigger time), else the data interval's end (Airflow 2)."""
    moment = getattr(dag_run, "run_after", None) or data_interval_end
    if moment is None:
        raise ValueError("The run has neither run_after nor a data interval: it cannot be ordered")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def is_not_older(subject: str, as_of: str) -> bool:
    """Whether a run standing for ``as_of`` is at least as new as the one whose profile is in use."""
    from airflow.sdk import Variable

    in_use = Variable.get(as_of_variable(subject), None)  # the default, positional: Airflow 2 names it default_var
    return in_use is None or as_of >= in_use


def switch(subject: str, profile_id: str, as_of: str) -> tuple[bool, list[str]]:
    """Point the subject at ``profile_id`` (trained for ``as_of``) unless a profile of a later run is in use.

    Returns whether it switched, and the profiles to delete: the one replaced, or this run's own when it lost.
    """
    from airflow.sdk import Variable

    current = Variable.get(current_profile_variable(subject), None)
    in_use = Variable.get(as_of_variable(subject), None)
    if current == profile_id:
        return False, []  # a retry or a clear of the run whose profile is in use
    if current is not None and in_use is not None and as_of < in_use:
        return False, [profile_id]  # overtaken while training: a later run's profile is in use
    # The time first: a crash between the two writes then leaves an older id with a newer time, which only this
    # run (same time) can correct; never an older time that would let an older run switch back.
    Variable.set(as_of_variable(subject), as_of)
    Variable.set(current_profile_variable(subject), profile_id)
    return True, [current] if current else []


@dag(
    schedule="@weekly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
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
    @task.short_circuit
    def newer_than_profile_in_use(
        params: dict[str, Any] | None = None, dag_run: Any = None, data_interval_end: datetime | None = None
    ) -> bool:
        """Stop here, before paying, when the profile in use was trained for a later time than this run's."""
        assert params is not None
        return is_not_older(params["subject"], run_time(dag_run, data_interval_end))

    @task
    def gather_photos(params: dict[str, Any] | None = None) -> list[str]:
        from airflow_provider_phota.storage import public_image_urls

        assert params is not None
        urls = public_image_urls(params["photos_uri"], params["photos_base_url"])
        if not urls:
            raise ValueError(f"No photos under {params['photos_uri']}: keeping the current profile")
        return urls

    photos = gather_photos()
    newer_than_profile_in_use() >> photos
    trained = PhotaCreateProfileOperator(
        task_id="train_profile",
        image_urls=photos,
        tag="{{ params.subject }}-{{ run_id | path_segment }}",  # training_tag(subject, run_id)
        training_tier="{{ params.training_tier }}",
        wait_for_ready=True,
        # Wait for the ~20-minute training on the triggerer. Without it the wait follows [operators]
        # default_deferrable, which is False unless the deployment turns it on, and holds a worker slot.
        deferrable=True,
        poll_interval=POLL_SECONDS,
    )

    @task(trigger_rule="all_done")
    def delete_failed_training(params: dict[str, Any] | None = None, run_id: str | None = None) -> list[str]:
        """Delete this run's profiles that ended in ERROR (runs whatever the training's outcome)."""
        from airflow_provider_phota.hooks.phota import PhotaHook

        assert params is not None
        assert run_id is not None
        hook = PhotaHook()
        failed = [
            profile_id
            for profile_id in hook.list_profile_ids(training_tag(params["subject"], run_id))
            if hook.get_profile_status(profile_id).status == "ERROR"
        ]
        for profile_id in failed:
            hook.delete_profile(profile_id)
        return failed

    trained >> delete_failed_training()

    @task(max_active_tis_per_dag=1)
    def switch_profile(
        new_profile_id: str,
        params: dict[str, Any] | None = None,
        dag_run: Any = None,
        data_interval_end: datetime | None = None,
    ) -> dict[str, Any]:
        """Point downstream DAGs at the new READY profile unless a later run's is in use; the profiles to delete."""
        assert params is not None
        as_of = run_time(dag_run, data_interval_end)
        switched, retired = switch(params["subject"], new_profile_id, as_of)
        return {"switched": switched, "retired": retired, "profile_id": new_profile_id, "as_of": as_of}

    switched = switch_profile(trained.output["profile_id"])

    @task
    def profiles_to_delete(result: dict[str, Any]) -> list[str]:
        return list(result["retired"])

    PhotaDeleteProfileOperator.partial(task_id="delete_replaced_profile").expand(
        profile_id=profiles_to_delete(switched)
    )

    @task.short_circuit
    def has_switched(result: dict[str, Any]) -> bool:
        return bool(result["switched"])

    @task(outlets=[CURRENT_PROFILE])
    def announce_profile(
        result: dict[str, Any], params: dict[str, Any] | None = None, outlet_events: Any = None
    ) -> None:
        """One Asset event per switch (none when the run did not switch), for DAGs scheduled on the profile."""
        assert params is not None
        assert outlet_events is not None
        extra = {"subject": params["subject"], "profile_id": result["profile_id"], "as_of": result["as_of"]}
        outlet_events[CURRENT_PROFILE].extra = extra

    has_switched(switched) >> announce_profile(switched)


phota_scheduled_retraining()
