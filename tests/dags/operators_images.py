"""DAGs that run each image operator in a real Airflow task (dag.test()) for tests/operators."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.common.compat.sdk import DAG, Asset

from airflow_provider_phota.operators.images import (
    PhotaEditOperator,
    PhotaEnhanceOperator,
    PhotaGenerateOperator,
    PhotaRemixOperator,
)

START = pendulum.datetime(2026, 1, 1, tz="UTC")
PARAMS = {
    "out": "/tmp/phota-test-out",
    "image": "",
    "reference": "",
    "profile_id": "",
    "prompt": "a lighthouse at dawn",
    "count": 3,
    "aspect_ratio": "9:16",
}
FAST = {"poll_interval": 0.1, "timeout": 60}
GENERATED = Asset("phota://tests/generated")

with DAG("op_generate_deferrable", schedule=None, start_date=START, params=PARAMS):
    PhotaGenerateOperator(
        task_id="generate",
        prompt="{{ params.prompt }}",
        num_output_images=2,
        aspect_ratio="16:9",
        resolution="2K",
        output_format="jpg",
        output_path="{{ params.out }}",
        deferrable=True,
        outlets=[GENERATED],
        **FAST,
    )

with DAG("op_generate_in_worker", schedule=None, start_date=START, params=PARAMS):
    PhotaGenerateOperator(
        task_id="generate",
        prompt="{{ params.prompt }}",
        num_output_images="{{ params.count }}",
        aspect_ratio="{{ params.aspect_ratio }}",
        output_format="png",
        output_path="{{ params.out }}",
        deferrable=False,
        **FAST,
    )

with DAG("op_generate_urls_only", schedule=None, start_date=START, params=PARAMS):
    PhotaGenerateOperator(task_id="generate", prompt="{{ params.prompt }}", deferrable=False, **FAST)

with DAG("op_generate_retry", schedule=None, start_date=START, params=PARAMS):
    PhotaGenerateOperator(
        task_id="generate",
        prompt="{{ params.prompt }}",
        output_path="{{ params.out }}",
        deferrable=False,
        retries=2,
        retry_delay=timedelta(seconds=0),
        **FAST,
    )

with DAG("op_generate_mapped", schedule=None, start_date=START, params=PARAMS):
    PhotaGenerateOperator.partial(
        task_id="generate", output_path="{{ params.out }}", deferrable=True, num_output_images=2, **FAST
    ).expand(prompt=["a red fox", "a blue whale", "a green parrot"])

with DAG("op_edit", schedule=None, start_date=START, params=PARAMS):
    PhotaEditOperator(
        task_id="edit",
        prompt="Make [[{{ params.profile_id }}]] smile wider",
        images=["{{ params.image }}"],
        profile_ids=["{{ params.profile_id }}"],
        num_output_images=2,
        aspect_ratio="1:1",
        resolution="4K",
        output_format="jpg",
        output_path="{{ params.out }}",
        deferrable=True,
        **FAST,
    )

with DAG("op_enhance", schedule=None, start_date=START, params=PARAMS):
    PhotaEnhanceOperator(
        task_id="enhance",
        image="{{ params.image }}",
        profile_ids=["{{ params.profile_id }}"],
        output_format="png",
        output_path="{{ params.out }}",
        deferrable=False,
        **FAST,
    )

with DAG("op_remix", schedule=None, start_date=START, params=PARAMS):
    PhotaRemixOperator(
        task_id="remix",
        input_image="{{ params.image }}",
        reference_image="{{ params.reference }}",
        num_output_images=2,
        output_format="jpg",
        output_path="{{ params.out }}",
        deferrable=True,
        **FAST,
    )

with DAG("op_invalid", schedule=None, start_date=START, params=PARAMS):
    PhotaGenerateOperator(
        task_id="generate",
        prompt="{{ params.prompt }}",
        base_model="flux-2",
        resolution="4K",
        output_path="{{ params.out }}",
        retries=3,
        retry_delay=timedelta(seconds=0),
    )
