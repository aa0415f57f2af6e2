"""The README's DAG: train a tagged profile, wait for it on the triggerer, generate portraits of it.

Works as written on a manual run (no logical date): the output folder is named after the run id, never ``ds``.
"""

from __future__ import annotations

# [START portraits]
import pendulum
from airflow.sdk import Param, dag

from airflow_provider_phota.operators.images import PhotaGenerateOperator
from airflow_provider_phota.operators.profile import PhotaCreateProfileOperator
from airflow_provider_phota.sensors.phota import ProfileReadySensor
from airflow_provider_phota.storage import path_segment


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    user_defined_filters={"path_segment": path_segment},  # run ids contain ':' and '+'
    params={
        "customer_id": Param("42", type="string"),
        "photo_urls": Param([], type="array", description="10-50 public URLs of the customer's photos"),
        "output_uri": Param("file:///tmp/phota-portraits", type="string", description="local path or storage URI"),
    },
)
def phota_portraits() -> None:
    profile = PhotaCreateProfileOperator(
        task_id="create_profile",
        image_urls="{{ params.photo_urls }}",
        tag="customer-{{ params.customer_id }}",  # the idempotency key: retries and re-runs reuse the profile
    )
    ready = ProfileReadySensor(
        task_id="wait_for_training",
        profile_id=profile.output["profile_id"],
        deferrable=True,  # wait on the triggerer, not in a worker slot
        poke_interval=30,
    )
    portraits = PhotaGenerateOperator(
        task_id="portraits",
        # profiles enter /generate only as [[id]] tokens; the id comes from XCom at run time
        prompt="A studio portrait of [[{{ ti.xcom_pull(task_ids='create_profile', key='profile_id') }}]]",
        num_output_images=2,
        aspect_ratio="3:4",
        resolution="2K",
        output_format="jpg",
        output_path="{{ params.output_uri }}/{{ run_id | path_segment }}",
        deferrable=True,
    )
    ready >> portraits


phota_portraits()
# [END portraits]
