"""The four image operators, one task each, as the how-to pages show them."""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag

from airflow_provider_phota.operators.images import (
    PhotaEditOperator,
    PhotaEnhanceOperator,
    PhotaGenerateOperator,
    PhotaRemixOperator,
)
from airflow_provider_phota.storage import path_segment

# [START howto_output]
# One folder per run; the DAG registers the filter: user_defined_filters={"path_segment": path_segment}
OUTPUT = "{{ params.output_uri }}/{{ run_id | path_segment }}"
# [END howto_output]


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    user_defined_filters={"path_segment": path_segment},
    params={
        "profile_id": Param("", type="string", description="a READY profile"),
        "photo": Param("file:///tmp/phota-howto/photo.jpg", type="string", description="an input image"),
        "style": Param("file:///tmp/phota-howto/style.jpg", type="string", description="a style reference"),
        "output_uri": Param("file:///tmp/phota-howto/output", type="string"),
    },
)
def phota_image_howtos() -> None:
    # [START howto_generate]
    generate = PhotaGenerateOperator(
        task_id="generate",
        prompt="[[{{ params.profile_id }}]] on a beach at sunrise, golden light",
        num_output_images=2,
        aspect_ratio="3:4",
        resolution="2K",
        output_format="jpg",
        output_path=OUTPUT + "/generate",
        deferrable=True,
    )
    # [END howto_generate]

    # [START howto_edit]
    edit = PhotaEditOperator(
        task_id="edit",
        prompt="Put the person in a snowy forest, keep the pose",
        images=["{{ params.photo }}"],  # URLs, base64, local paths or storage URIs; 1-10 of them
        profile_ids=["{{ params.profile_id }}"],
        output_path=OUTPUT + "/edit",
        deferrable=True,
    )
    # [END howto_edit]

    # [START howto_enhance]
    enhance = PhotaEnhanceOperator(
        task_id="enhance",
        # the first image the generate task wrote (its result is in XCom: URIs, never image bytes)
        image="{{ ti.xcom_pull(task_ids='generate')['output_uris'][0] }}",
        profile_ids=["{{ params.profile_id }}"],
        prompt="natural skin texture, crisp detail",
        output_path=OUTPUT + "/enhance",
        max_cost_usd=0.50,  # refused before any request if the worst case (1 x $0.15 list price) costs more
        deferrable=True,
    )
    generate >> enhance
    # [END howto_enhance]

    # [START howto_remix]
    remix = PhotaRemixOperator(
        task_id="remix",
        input_image="{{ params.photo }}",
        reference_image="{{ params.style }}",  # the look to take over
        profile_ids=["{{ params.profile_id }}"],
        output_path=OUTPUT + "/remix",
        deferrable=True,
    )
    # [END howto_remix]
    edit >> remix


phota_image_howtos()
