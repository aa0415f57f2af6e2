"""Subject pipeline: ingest photos -> train a tagged profile -> wait on the triggerer -> generate variations
(one mapped task per style) -> pick the best -> enhance it -> publish with a manifest and an Asset event.

The pick is automatic by default. With the ``human_pick`` param on (Airflow 3.1+, the standard provider's
human-in-the-loop operators), a person chooses the variation in the Airflow UI instead: the question links to the
run's "Phota outputs" gallery, and the run waits for the answer before it pays for the enhancement.

Run it as it is against the bundled emulator (``bash scripts/demo``), or point ``phota_default`` at the real
service and the params at your storage. The tag makes creation idempotent: a retry or a re-run of the same
subject reuses the profile instead of paying for a second training.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import Asset, Param, dag, task

try:  # the standard provider's human-in-the-loop operators need Airflow 3.1+
    from airflow.providers.standard.operators.hitl import HITLOperator
except Exception:  # ImportError, or the provider's AirflowOptionalProviderFeatureException on Airflow 3.0
    HITLOperator = None

from airflow_provider_phota.operators.images import PhotaEnhanceOperator, PhotaGenerateOperator
from airflow_provider_phota.operators.profile import PhotaCreateProfileOperator
from airflow_provider_phota.results import ImageOperatorResult
from airflow_provider_phota.sensors.phota import ProfileReadySensor
from airflow_provider_phota.storage import path_segment

# The service suggests polling every 10-30 s; the demo and the tests use a shorter interval.
# The waits pass deferrable=True: without it they follow [operators] default_deferrable, which is False unless the
# deployment turns it on, and a 20-minute training or a minute-long job would hold a worker slot.
POLL_SECONDS = float(os.environ.get("PHOTA_EXAMPLE_POLL_SECONDS", "15"))
PUBLISHED = Asset("phota://examples/subject-pipeline/published")
# One storage-safe folder per DAG run (run ids contain ':' and '+'); the filter is registered on the DAG.
RUN_FOLDER = "{{ run_id | path_segment }}"
STYLES = [
    "A professional studio portrait of {subject}, soft key light, grey backdrop",
    "{subject} hiking on a mountain ridge at golden hour, cinematic",
    "A watercolor illustration of {subject} reading in a sunlit cafe",
]
IMAGES_PER_STYLE = 2
# The human pick's choices, fixed when the DAG is parsed: one per variation of the default styles.
PICK_OPTIONS = [f"Variation {number}" for number in range(1, len(STYLES) * IMAGES_PER_STYLE + 1)]


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["phota", "example"],
    user_defined_filters={"path_segment": path_segment},
    params={
        "subject": Param("demo-subject", type="string", minLength=1, maxLength=100),
        "photos_uri": Param("file:///tmp/phota-demo/photos", type="string", description="Folder or prefix of photos"),
        "photos_base_url": Param(
            "http://127.0.0.1:8765/", type="string", description="Public URL under which those photos are served"
        ),
        "training_tier": Param("standard", enum=["standard", "fast"]),
        "styles": Param(STYLES, type="array", description="Prompt templates; {subject} becomes the profile"),
        "output_uri": Param("file:///tmp/phota-demo/output", type="string"),
        "publish_uri": Param("file:///tmp/phota-demo/publish", type="string"),
        "human_pick": Param(
            False,
            type="boolean",
            description="Ask a person to pick the variation to enhance, in the Airflow UI (Airflow 3.1+)",
        ),
    },
)
def phota_subject_pipeline() -> None:
    @task
    def ingest_photos(params: dict[str, Any] | None = None) -> list[str]:
        """List the subject's photos and turn them into the public URLs training needs."""
        from airflow_provider_phota.storage import public_image_urls

        assert params is not None  # injected by Airflow
        if params["human_pick"]:  # checked here, before anything is paid for
            if HITLOperator is None:
                raise ValueError("human_pick needs Airflow 3.1+ (the standard provider's HITLOperator); turn it off")
            if len(params["styles"]) * IMAGES_PER_STYLE != len(PICK_OPTIONS):
                raise ValueError(
                    f"human_pick offers {len(PICK_OPTIONS)} choices ({len(STYLES)} styles x {IMAGES_PER_STYLE}); "
                    f"styles has {len(params['styles'])} entries: use {len(STYLES)} styles or turn human_pick off"
                )
        urls = public_image_urls(params["photos_uri"], params["photos_base_url"])
        if not urls:
            raise ValueError(f"No photos (jpg, png, webp, heic) under {params['photos_uri']}")
        return urls

    profile = PhotaCreateProfileOperator(
        task_id="create_profile",
        image_urls=ingest_photos(),
        tag="{{ params.subject }}",
        training_tier="{{ params.training_tier }}",
    )
    profile_id = profile.output["profile_id"]
    ready = ProfileReadySensor(
        task_id="wait_for_training",
        profile_id=profile_id,
        deferrable=True,  # wait on the triggerer (see POLL_SECONDS)
        poke_interval=POLL_SECONDS,
    )

    @task
    def build_prompts(profile_id: str, params: dict[str, Any] | None = None) -> list[str]:
        assert params is not None
        return [style.format(subject=f"[[{profile_id}]]") for style in params["styles"]]

    prompts = build_prompts(profile_id)
    ready >> prompts
    variations = PhotaGenerateOperator.partial(
        task_id="generate_variations",
        num_output_images=IMAGES_PER_STYLE,
        aspect_ratio="4:3",
        resolution="2K",
        output_format="png",
        output_path="{{ params.output_uri }}/" + RUN_FOLDER + "/variations",
        deferrable=True,  # wait for the jobs on the triggerer
        poll_interval=POLL_SECONDS,
    ).expand(prompt=prompts)

    @task
    def pick_best(summaries: list[ImageOperatorResult]) -> str:
        """The variation to enhance. Stand-in scoring: the largest file (the most detail); plug in your own."""
        from airflow_provider_phota.storage import storage_path

        # Index the mapped results (len + getitem): iterating a lazy XCom sequence to its end logs a 404 error.
        uris = [uri for i in range(len(summaries)) for uri in summaries[i]["output_uris"]]
        return max(uris, key=lambda uri: storage_path(uri).stat().st_size)

    @task.branch
    def choose_picker(params: dict[str, Any] | None = None) -> str:
        assert params is not None
        return "describe_variations" if params["human_pick"] else "pick_best"

    @task
    def describe_variations(prompts: list[str], summaries: list[ImageOperatorResult], dag_run: Any = None) -> str:
        """The question's text: each choice with its prompt, and a link to the run's gallery."""
        from urllib.parse import quote

        assert dag_run is not None
        gallery = f"/dags/{quote(dag_run.dag_id, safe='')}/runs/{quote(dag_run.run_id, safe='')}/plugin/phota-outputs"
        lines = [f"Compare the variations in the [Phota outputs gallery]({gallery}), then choose one to enhance.", ""]
        number = 0
        for i in range(len(summaries)):
            for _ in summaries[i]["output_uris"]:
                number += 1
                lines.append(f"* **Variation {number}**: {prompts[i]}")
        return "\n".join(lines)

    @task(trigger_rule="none_failed_min_one_success")
    def chosen_variation(
        summaries: list[ImageOperatorResult], params: dict[str, Any] | None = None, ti: Any = None
    ) -> str:
        """The variation to enhance: the person's choice when asked, else the automatic pick. Pulled from the branch
        that ran only: the skipped one has no XCom, and looking it up logs an "XCom not found" error."""
        assert params is not None
        assert ti is not None
        if not (params["human_pick"] and HITLOperator is not None):
            return str(ti.xcom_pull(task_ids="pick_best"))
        answer = ti.xcom_pull(task_ids="ask_for_pick")
        uris = [uri for i in range(len(summaries)) for uri in summaries[i]["output_uris"]]
        return uris[PICK_OPTIONS.index(answer["chosen_options"][0])]

    picker = choose_picker()
    variations >> picker
    automatic = pick_best(variations.output)
    picker >> automatic
    best = chosen_variation(variations.output)
    automatic >> best
    if HITLOperator is not None:
        described = describe_variations(prompts, variations.output)
        picker >> described
        ask = HITLOperator(
            task_id="ask_for_pick",
            subject="Which variation of {{ params.subject }} should be enhanced and published?",
            body="{{ ti.xcom_pull(task_ids='describe_variations') }}",
            options=PICK_OPTIONS,
        )
        described >> ask >> best
    final = PhotaEnhanceOperator(
        task_id="enhance_best",
        image=best,
        profile_ids=[profile_id],
        prompt="natural skin texture, crisp detail",
        output_format="png",
        output_path="{{ params.output_uri }}/" + RUN_FOLDER + "/final",
        deferrable=True,  # wait for the job on the triggerer
        poll_interval=POLL_SECONDS,
    )

    @task(outlets=[PUBLISHED])
    def publish(
        prompts: list[str],
        variations: list[ImageOperatorResult],
        final: ImageOperatorResult,
        params: dict[str, Any] | None = None,
        run_id: str | None = None,
        outlet_events: Any = None,
    ) -> dict[str, Any]:
        """Copy every output to the publish location, write manifest.json, and announce it on the Asset."""
        from airflow_provider_phota.storage import copy_file, storage_path, uri_of, write_json

        assert params is not None and run_id is not None and outlet_events is not None  # injected by Airflow
        target = storage_path(params["publish_uri"]) / path_segment(run_id)
        entries = []
        sources = [("variation", prompts[i], variations[i]) for i in range(len(variations))]
        sources.append(("final", "enhanced best variation", final))
        for kind, prompt, summary in sources:
            for uri in summary["output_uris"]:
                source = storage_path(uri)
                published = target / f"{kind}-{source.name}"
                size = copy_file(source, published)
                entry = {"kind": kind, "prompt": prompt, "source_uri": uri, "uri": uri_of(published), "bytes": size}
                entries.append({**entry, "known_subjects": summary["known_subjects"]})
        manifest_uri = write_json(target / "manifest.json", {"subject": params["subject"], "images": entries})
        result = {"manifest_uri": manifest_uri, "images": len(entries), "subject": params["subject"]}
        outlet_events[PUBLISHED].extra = result
        return result

    publish(prompts, variations.output, final.output)


phota_subject_pipeline()
