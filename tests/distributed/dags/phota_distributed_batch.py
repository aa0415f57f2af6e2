"""The DAG of the distributed test (tests/distributed/test_distributed_deployment.py), shaped like the marketing
batch example: train a profile, wait for it on the triggerer, then render one deferrable async job per campaign row
(dynamic task mapping) and publish one manifest for the batch.

The rows are built in the DAG (the test passes their number and the output folder in the run's ``conf``), so the
test knows every row's prompt. The paying tasks (the create and the renders) run in the ``phota_api`` pool, which
caps how many of them call the API at once; deferred waits leave the pool (its ``include_deferred`` is off).

Test-only, in this file and nowhere in the provider: when ``PHOTA_DISTRIBUTED_HOLD_FILE`` is set, the first try of
the row ``HOLD_ROW`` stops between "job submitted" and "deferred" (it writes that file, then sleeps before
``defer``), so the test can SIGKILL the Celery worker that runs it inside that window, every run, not by luck.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, get_current_context, task

from airflow_provider_phota.operators.images import PhotaGenerateOperator
from airflow_provider_phota.operators.profile import PhotaCreateProfileOperator
from airflow_provider_phota.results import ImageOperatorResult
from airflow_provider_phota.sensors.phota import ProfileReadySensor

DAG_ID = "phota_distributed_batch"
POOL = "phota_api"
PROFILE_TAG = "distributed-subject"
HOLD_ROW = 0
HOLD_FILE_VARIABLE = "PHOTA_DISTRIBUTED_HOLD_FILE"
HOLD_SECONDS = 150.0  # the test kills the worker within seconds; this only bounds a run where it does not


def row_prompt(row: int) -> str:
    """Row ``row``'s prompt without the subject token (the test maps jobs back to rows by it)."""
    return f"campaign row {row:03d}: the subject on a rooftop at golden hour"


class HeldGenerateOperator(PhotaGenerateOperator):
    """PhotaGenerateOperator whose first try of ``HOLD_ROW`` to reach its deferral waits between its submit and the
    deferral (test-only; see the module docstring). Usually try 1; a try that an injected fault failed before it
    submitted does not use up the hold. Every other try and row behaves exactly like the provider's operator."""

    def defer(self, **kwargs: Any) -> Any:  # type: ignore[override]
        hold_file = os.environ.get(HOLD_FILE_VARIABLE)
        ti = get_current_context()["ti"]
        if hold_file and ti.map_index == HOLD_ROW and not Path(hold_file).exists():
            from airflow.sdk.api.client import get_hostname

            (job_id,) = kwargs["trigger"].job_ids  # one row: one job in the engine's job trigger
            details = {
                "job_id": job_id,
                "hostname": get_hostname(),
                "pid": os.getpid(),
                "try_number": ti.try_number,
            }
            Path(hold_file).write_text(json.dumps(details))
            self.log.info("Test hold: job %s submitted, not deferring for up to %.0f s", job_id, HOLD_SECONDS)
            time.sleep(HOLD_SECONDS)
        return super().defer(**kwargs)


with DAG(
    dag_id=DAG_ID,
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    max_active_tasks=128,  # the pool, not the DAG, caps the paid calls; deferred waits hold no slot
    tags=["phota", "distributed-test"],
    default_args={"retries": 3, "retry_delay": timedelta(seconds=3)},
):
    train = PhotaCreateProfileOperator(
        task_id="train_profile",
        image_urls=[f"https://photos.example.com/subject/{index:02d}.jpg" for index in range(12)],
        tag=PROFILE_TAG,
        training_tier="standard",
        pool=POOL,
    )
    ready = ProfileReadySensor(
        task_id="wait_for_profile",
        profile_id=train.output["profile_id"],
        deferrable=True,
        poke_interval=3,
        timeout=600,
    )

    @task
    def campaign(profile_id: str, dag_run: Any = None) -> list[dict[str, Any]]:
        """One generate request per row: the prompt names the row, every other row asks for two images."""
        rows = int(dag_run.conf["rows"])
        return [
            {
                "prompt": f"{row_prompt(row)}, featuring [[{profile_id}]]",
                "num_output_images": 1 + row % 2,
                "aspect_ratio": "1:1",
                "resolution": "1K",
            }
            for row in range(rows)
        ]

    renders = HeldGenerateOperator.partial(
        task_id="render",
        output_format="jpg",
        output_path="{{ dag_run.conf['output_path'] }}",
        deferrable=True,
        poll_interval=3,
        timeout=900,
        pool=POOL,
    ).expand_kwargs(campaign(ready.output["profile_id"]))

    @task
    def publish(summaries: list[ImageOperatorResult], dag_run: Any = None) -> dict[str, Any]:
        """One manifest for the batch: every row's job, key and files."""
        from airflow_provider_phota.storage import storage_path, write_json

        entries = [dict(summaries[index]) for index in range(len(summaries))]
        folder = storage_path(dag_run.conf["output_path"])
        manifest_uri = write_json(folder / "manifest.json", {"renders": entries})
        return {"manifest_uri": manifest_uri, "rows": len(entries), "images": sum(e["images"] for e in entries)}

    publish(renders.output)
