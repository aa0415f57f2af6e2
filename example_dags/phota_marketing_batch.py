"""Marketing batch: read a campaign file (CSV or JSON rows of profile tag, prompt, aspect ratio, resolution and
count), render every row as a deferrable async job (dynamic task mapping, one mapped task per row), write all
outputs under one storage prefix per run, and emit one Asset event for the publish step.

Async jobs carry a client_request_id stable per run, row and request, so retried rows are never charged twice.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import Asset, Param, dag, task

from airflow_provider_phota.operators.images import PhotaGenerateOperator
from airflow_provider_phota.results import ImageOperatorResult
from airflow_provider_phota.storage import path_segment

POLL_SECONDS = float(os.environ.get("PHOTA_EXAMPLE_POLL_SECONDS", "10"))
CAMPAIGN_RENDERS = Asset("phota://examples/marketing/renders")
RUN_FOLDER = "{{ run_id | path_segment }}"  # one storage-safe folder per run; the filter is registered on the DAG
CAMPAIGN_COLUMNS = ("profile_tag", "prompt", "aspect_ratio", "resolution", "count")


def parse_campaign(text: str, *, is_json: bool) -> list[dict[str, str]]:
    """Campaign rows from CSV (with a header) or a JSON list of objects, with every column present."""
    import csv
    import io
    import json

    rows = json.loads(text) if is_json else list(csv.DictReader(io.StringIO(text)))
    if not isinstance(rows, list) or not rows:
        raise ValueError("The campaign file has no rows")
    for number, row in enumerate(rows, start=1):
        missing = [column for column in CAMPAIGN_COLUMNS if not str(row.get(column) or "").strip()]
        if missing:
            raise ValueError(
                f"Campaign row {number} lacks {', '.join(missing)} (columns: {', '.join(CAMPAIGN_COLUMNS)})"
            )
    return [{column: str(row[column]).strip() for column in CAMPAIGN_COLUMNS} for row in rows]


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["phota", "example"],
    user_defined_filters={"path_segment": path_segment},
    params={
        "campaign_uri": Param("file:///tmp/phota-demo/campaign.csv", type="string", description="CSV or JSON rows"),
        "output_uri": Param("file:///tmp/phota-demo/campaigns", type="string"),
    },
)
def phota_marketing_batch() -> None:
    @task
    def read_campaign(params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """One generate request per row; each profile tag resolves to its newest READY profile."""
        from airflow_provider_phota.hooks.phota import PhotaHook
        from airflow_provider_phota.storage import storage_path

        assert params is not None
        source = storage_path(params["campaign_uri"])
        rows = parse_campaign(source.read_text(), is_json=source.suffix.lower() == ".json")
        hook, profiles = PhotaHook(), {}
        requests = []
        for row in rows:
            tag = row["profile_tag"]
            if tag not in profiles:
                found = hook.latest_profile(tag, ready_only=True)
                if found is None:
                    raise ValueError(f"No READY profile with tag {tag!r}: train it first")
                profiles[tag] = found.profile_id
            token = f"[[{profiles[tag]}]]"
            prompt = row["prompt"].replace("{subject}", token)
            requests.append(
                {
                    "prompt": prompt if token in prompt else f"{prompt}, featuring {token}",
                    "aspect_ratio": row["aspect_ratio"],
                    "resolution": row["resolution"],
                    "num_output_images": int(row["count"]),
                }
            )
        return requests

    renders = PhotaGenerateOperator.partial(
        task_id="render",
        output_format="jpg",
        output_path="{{ params.output_uri }}/" + RUN_FOLDER,
        # Wait for the jobs on the triggerer. Without it the waits follow [operators] default_deferrable, which is
        # False unless the deployment turns it on, and every row would hold a worker slot while its job runs.
        deferrable=True,
        poll_interval=POLL_SECONDS,
    ).expand_kwargs(read_campaign())

    @task(outlets=[CAMPAIGN_RENDERS])
    def publish_batch(
        summaries: list[ImageOperatorResult],
        params: dict[str, Any] | None = None,
        run_id: str | None = None,
        outlet_events: Any = None,
    ) -> dict[str, Any]:
        """One manifest and ONE asset event for the whole batch, so the publish DAG runs once per campaign."""
        from airflow_provider_phota.storage import storage_path, uri_of, write_json

        assert params is not None and run_id is not None and outlet_events is not None  # injected by Airflow
        folder = storage_path(params["output_uri"]) / path_segment(run_id)
        entries = [dict(summaries[i]) for i in range(len(summaries))]  # indexed: see the subject pipeline
        manifest_uri = write_json(folder / "manifest.json", {"renders": entries})
        result = {
            "manifest_uri": manifest_uri,
            "rows": len(entries),
            "images": sum(entry["count"] for entry in entries),
            "output_prefix": uri_of(folder),
        }
        outlet_events[CAMPAIGN_RENDERS].extra = result
        return result

    publish_batch(renders.output)


phota_marketing_batch()
