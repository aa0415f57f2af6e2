"""OpenLineage of PhotaBatchOperator: inputs are every row's input images (URLs without their tokens, files by URI,
base64 by hash) and the profiles the rows use; outputs the written files and the manifest; a ``phota`` run facet with
the endpoint, the counts and the cost."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import pytest

from airflow_provider_phota import lineage
from airflow_provider_phota.hooks.phota import PhotaHook
from airflow_provider_phota.operators.batch import PhotaBatchOperator
from airflow_provider_phota.testing import PhotaEmulator
from airflow_provider_phota.testing.samples import image_base64


def datasets(items: list[Any]) -> set[tuple[str, str]]:
    return {(item.namespace, item.name) for item in items}


def test_the_batch_facets_name_every_rows_inputs_and_every_written_file(
    phota_emulator: PhotaEmulator, phota_conn_id: str, tmp_path: Path
) -> None:
    profile_id = PhotaHook().create_profile([f"https://example.com/p/{i}.jpg" for i in range(10)], tag="face")
    phota_emulator.advance(phota_emulator.training_seconds + 1)
    photo = tmp_path / "in" / "photo.png"
    photo.parent.mkdir()
    photo.write_bytes(base64.b64decode(image_base64(24, 24)))
    inline = image_base64(16, 16)
    rows = [
        {"image": inline, "profile_tag": "face"},
        {"image": "https://photos.example.com/a.jpg?X-Amz-Signature=secret", "num_output_images": 2},
        {"image": str(photo)},
    ]
    operator = PhotaBatchOperator(
        task_id="render", endpoint="enhance", requests=rows, output_path=str(tmp_path / "out"), poll_interval=0.05
    )
    ti = SimpleNamespace(dag_id="d", run_id="r", task_id="render", map_index=-1, try_number=1)
    result = operator.execute({"ti": ti, "task_instance": ti, "outlet_events": {}})  # type: ignore[arg-type]

    facets = operator.get_openlineage_facets_on_complete(ti)
    profile = (f"phota://{urlsplit(phota_emulator.base_url).netloc}", f"profiles/{profile_id}")
    assert datasets(facets.inputs) == {
        lineage.base64_dataset(inline),
        ("https://photos.example.com", "/a.jpg"),
        ("file", str(photo)),
        profile,
    }
    manifest = json.loads((tmp_path / "out" / "render-manifest.json").read_text())
    written = [uri for row in manifest["rows"] for uri in row["output_uris"]]
    assert len(written) == 4
    assert datasets(facets.outputs) == {("file", urlsplit(uri).path) for uri in [*written, result["manifest_uri"]]}
    facet = facets.run_facets["phota"]
    assert (facet.endpoint, facet.baseModel, facet.outputCount, facet.identityOutputs) == ("enhance", "nb2", 4, 1)
    assert (facet.rowCount, facet.succeededRows, facet.failedRows) == (3, 3, 0)
    assert facet.knownSubjects == {profile_id: 1}
    assert (facet.costUsd, facet.costBasis) == (result["cost_usd"], result["cost_basis"])
    assert result["cost_usd"] == 0.51  # 1 x $0.15 + 3 x $0.12: enhance has published prices
    text = json.dumps([[d.namespace, d.name] for d in [*facets.inputs, *facets.outputs]])
    assert "secret" not in text
    assert inline[:40] not in text


def test_a_batch_that_noted_nothing_has_empty_lineage() -> None:
    operator = PhotaBatchOperator(task_id="b", endpoint="generate", requests=[{"prompt": "x"}], output_path="/tmp")
    facets = operator.get_openlineage_facets_on_complete(None)
    assert (facets.inputs, facets.outputs, facets.run_facets) == ([], [], {})


@pytest.fixture
def lineage_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    from dagrun_support import openlineage_to_file

    with openlineage_to_file(tmp_path / "openlineage.jsonl", monkeypatch) as path:
        yield path


def test_a_deferred_batch_emits_a_complete_event_with_its_files(
    airflow_db: None, phota_emulator: PhotaEmulator, phota_conn_id: str, lineage_file: Path, tmp_path: Path
) -> None:
    from dagrun_support import return_value, run_dag

    profile_id = PhotaHook().create_profile([f"https://example.com/q/{i}.jpg" for i in range(10)], tag="brand-face")
    phota_emulator.advance(phota_emulator.training_seconds + 1)
    campaign = tmp_path / "campaign.csv"
    campaign.write_text(
        "profile_tag,prompt,aspect_ratio,resolution,count\n"
        "brand-face,{subject} holding our new mug,1:1,1K,2\n"
        ",A city street,16:9,1K,1\n"
    )
    out = tmp_path / "out"
    dag_run = run_dag("op_batch_file", out=str(out), campaign=str(campaign))
    summary = return_value(dag_run, "render")

    events = [json.loads(line) for line in lineage_file.read_text().splitlines()]
    (event,) = [e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"] == "op_batch_file.render"]
    written = {
        uri for row in json.loads((out / "render-manifest.json").read_text())["rows"] for uri in row["output_uris"]
    }
    assert len(written) == 3
    expected = {("file", urlsplit(uri).path) for uri in [*written, summary["manifest_uri"]]}
    assert {(d["namespace"], d["name"]) for d in event["outputs"]} == expected
    profile = (f"phota://{urlsplit(phota_emulator.base_url).netloc}", f"profiles/{profile_id}")
    assert {(d["namespace"], d["name"]) for d in event["inputs"]} == {profile}
    facet = event["run"]["facets"]["phota"]
    assert (facet["endpoint"], facet["outputCount"], facet["rowCount"], facet["succeededRows"]) == (
        "generate",
        3,
        2,
        2,
    )
    assert facet["failedRows"] == 0
    assert "costUsd" not in facet  # no price table on this connection: unknown, left out, never guessed
    assert facet["costBasis"] == summary["cost_basis"]
    assert phota_emulator.api_key not in lineage_file.read_text()
