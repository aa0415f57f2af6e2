"""OpenLineage: with the OpenLineage provider installed and its transport writing to a file, a run of the subject
pipeline emits, for each Phota task, a COMPLETE event whose inputs and outputs are the files and URLs it used."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from airflow_provider_phota import lineage
from airflow_provider_phota.testing import PhotaEmulator
from airflow_provider_phota.testing.samples import PhotoServer, make_subject_photos

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"
DAG_ID = "phota_subject_pipeline"


@pytest.fixture
def lineage_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    from dagrun_support import openlineage_to_file

    with openlineage_to_file(tmp_path / "openlineage.jsonl", monkeypatch) as path:
        yield path


def complete_events(path: Path) -> dict[str, list[dict[str, Any]]]:
    """COMPLETE events by task id (a mapped task has one per map index)."""
    events: dict[str, list[dict[str, Any]]] = {}
    for line in path.read_text().splitlines():
        event = json.loads(line)
        if event["eventType"] == "COMPLETE" and "." in event["job"]["name"]:
            events.setdefault(event["job"]["name"].split(".", 1)[1], []).append(event)
    return events


def datasets(items: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(item["namespace"], item["name"]) for item in items}


def test_the_subject_pipeline_emits_the_lineage_of_each_phota_task(
    airflow_db: None,
    phota_conn_id: str,
    phota_emulator: PhotaEmulator,
    lineage_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.dag_processing.dagbag import DagBag
    from dagrun_support import return_value

    monkeypatch.setenv("PHOTA_EXAMPLE_POLL_SECONDS", "0.2")
    folder = tmp_path / "photos"
    make_subject_photos(folder, count=10, subject="lineage-subject")
    with PhotoServer(folder) as server:
        conf = {
            "photos_uri": str(folder),
            "photos_base_url": server.base_url,
            "output_uri": f"file://{tmp_path}/out",
            "publish_uri": f"file://{tmp_path}/pub",
            "subject": "lineage-subject",
        }
        run = DagBag(str(EXAMPLES)).get_dag(DAG_ID).test(run_conf=conf)
    assert str(run.state).endswith("success")

    events = complete_events(lineage_file)
    (profile_id,) = phota_emulator.profiles
    profile = (f"phota://{urlsplit(phota_emulator.base_url).netloc}", f"profiles/{profile_id}")

    # create_profile: the training photos' URLs in, the profile out.
    (create,) = events["create_profile"]
    photos = urlsplit(server.base_url)
    expected_photos = {(f"http://{photos.netloc}", f"/{path.name}") for path in sorted(folder.iterdir())}
    (sent,) = [request.json["image_urls"] for request in phota_emulator.requests_to("/v1/phota/profiles/add")]
    assert datasets(create["inputs"]) == expected_photos == {lineage.url_dataset(url) for url in sent}
    assert datasets(create["outputs"]) == {profile}
    facet = create["run"]["facets"]["phota"]
    assert (facet["endpoint"], facet["trainingTier"], facet["photoCount"], facet["costUsd"]) == (
        "profiles/add",
        "standard",
        10,
        2.9,
    )

    # wait_for_training: the profile in.
    (wait,) = events["wait_for_training"]
    assert datasets(wait["inputs"]) == {profile}

    # generate_variations: one event per style; the profile in, the written files out.
    variations = events["generate_variations"]
    assert len(variations) == 3
    written = set()
    for _map_index, event in enumerate(sorted(variations, key=lambda e: e["job"]["name"])):
        assert datasets(event["inputs"]) == {profile}
        facet = event["run"]["facets"]["phota"]
        assert facet["endpoint"] == "generate"
        assert facet["baseModel"] == "nb2"
        assert facet["outputCount"] == 2
        assert facet["jobId"] in phota_emulator.jobs
        written |= datasets(event["outputs"])
    summaries = [return_value(run, "generate_variations", i) for i in range(3)]
    xcom_uris = {uri for summary in summaries for uri in [*summary["output_uris"], summary["manifest_uri"]]}
    assert written == {("file", urlsplit(uri).path) for uri in xcom_uris}  # the images and each task's manifest
    assert all(Path(name).is_file() for _, name in written)

    # enhance_best: the chosen file and the profile in, the enhanced file out.
    (enhance,) = events["enhance_best"]
    best = return_value(run, "pick_best")
    final = return_value(run, "enhance_best")
    assert datasets(enhance["inputs"]) == {("file", urlsplit(best).path), profile}
    outputs = [*final["output_uris"], final["manifest_uri"]]
    assert datasets(enhance["outputs"]) == {("file", urlsplit(uri).path) for uri in outputs}
    facet = enhance["run"]["facets"]["phota"]
    assert (facet["endpoint"], facet["outputCount"], facet["identityOutputs"]) == ("enhance", 1, 1)
    assert facet["costUsd"] == final["cost_usd"] == 0.15
    assert facet["costBasis"] == final["cost_basis"]

    # No key and no signed-URL token in any event.
    text = lineage_file.read_text()
    assert phota_emulator.api_key not in text
    assert "token=" not in text
    assert "expires=" not in text


# --- naming rules --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "dataset"),
    [
        ("file:///data/out/a.png", ("file", "/data/out/a.png")),
        ("s3://bucket/prefix/a.png", ("s3://bucket", "prefix/a.png")),
        ("s3://aws_default@bucket/prefix/a.png", ("s3://bucket", "prefix/a.png")),
        ("gs://bucket/a.png", ("gs://bucket", "a.png")),
        (
            "https://cache-cdn.photalabs.com/20260101/x.jpg?token=abc&expires=1",
            ("https://cache-cdn.photalabs.com", "/20260101/x.jpg"),
        ),
        ("https://user:pw@photos.example.com:8443/a.jpg#frag", ("https://photos.example.com:8443", "/a.jpg")),
    ],
)
def test_dataset_names_follow_the_openlineage_conventions(uri: str, dataset: tuple[str, str]) -> None:
    assert lineage.storage_dataset(uri) == dataset


def test_a_base64_input_is_named_by_its_content_hash() -> None:
    import base64
    import hashlib

    data = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
    namespace, name = lineage.base64_dataset(base64.b64encode(data).decode())
    assert (namespace, name) == ("base64", f"sha256:{hashlib.sha256(data).hexdigest()}")


def test_a_base64_input_in_an_event_is_a_hash_never_the_bytes(
    phota_emulator: PhotaEmulator, phota_conn_id: str
) -> None:
    from types import SimpleNamespace

    from airflow_provider_phota.operators.images import PhotaRemixOperator
    from airflow_provider_phota.testing.samples import image_base64

    image = image_base64(32, 24)
    operator = PhotaRemixOperator(
        task_id="remix", input_image=image, reference_image="https://styles.example.com/s.jpg?sig=x", poll_interval=0.05
    )
    ti = SimpleNamespace(dag_id="d", run_id="r", task_id="remix", map_index=-1, try_number=1)
    result = operator.execute({"ti": ti})  # type: ignore[arg-type]
    facets = operator.get_openlineage_facets_on_complete(ti)
    assert datasets([{"namespace": d.namespace, "name": d.name} for d in facets.inputs]) == {
        lineage.base64_dataset(image),
        ("https://styles.example.com", "/s.jpg"),
    }
    # Without output_path the outputs are the download URLs, without their tokens.
    assert {d.name for d in facets.outputs} == {urlsplit(url).path for url in result["download_urls"]}
    assert all("?" not in d.name and "token" not in d.namespace for d in facets.outputs)
    assert image[:40] not in json.dumps([d.name for d in facets.inputs])


def test_a_deleted_profile_is_a_dropped_output(phota_emulator: PhotaEmulator, phota_conn_id: str) -> None:
    from types import SimpleNamespace

    from airflow_provider_phota.hooks.phota import PhotaHook
    from airflow_provider_phota.operators.profile import PhotaDeleteProfileOperator

    profile_id = PhotaHook().create_profile([f"https://example.com/{i}.jpg" for i in range(10)])
    operator = PhotaDeleteProfileOperator(task_id="delete", profile_id=profile_id)
    operator.execute({})  # type: ignore[arg-type]
    facets = operator.get_openlineage_facets_on_complete(SimpleNamespace())
    (output,) = facets.outputs
    assert output.name == f"profiles/{profile_id}"
    assert output.facets["lifecycleStateChange"].lifecycleStateChange.value == "DROP"


def test_a_task_that_noted_nothing_has_empty_lineage() -> None:
    from airflow_provider_phota.operators.images import PhotaGenerateOperator

    facets = PhotaGenerateOperator(task_id="g", prompt="x").get_openlineage_facets_on_complete(None)
    assert (facets.inputs, facets.outputs, facets.run_facets) == ([], [], {})
