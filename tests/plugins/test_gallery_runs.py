"""The gallery reads what real runs recorded: a batch run and an image-operator run list every image they wrote
(issue 22: one result shape, so the gallery no longer shows 0 images for a batch)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from dagrun_support import return_value, run_dag

from airflow_provider_phota.plugins.gallery import gallery_supported
from airflow_provider_phota.testing import PhotaEmulator

pytestmark = [
    pytest.mark.usefixtures("airflow_db"),
    pytest.mark.skipif(not gallery_supported(), reason="the gallery needs Airflow 3.1+"),
]


@pytest.fixture
def conn(phota_emulator: PhotaEmulator, phota_connection: Callable[..., str]) -> PhotaEmulator:
    phota_connection(retry_wait=0.01, retry_max_wait=0.05, max_attempts=3)
    return phota_emulator


def listed_and_served(dag_run: object, folder: Path) -> tuple[list[str], list[str]]:
    """The URIs the gallery lists for the run, and the media types it would serve them with."""
    from airflow_provider_phota.plugins.outputs import open_output, run_images

    images = run_images(dag_run.dag_id, dag_run.run_id)  # type: ignore[attr-defined]
    types = []
    for image in images:
        opened = open_output(image.uri, image.root)
        with opened.handle:
            types.append(opened.media_type)
    return [image.uri for image in images], types


def test_gallery_lists_every_image_of_a_batch_run(conn: PhotaEmulator, tmp_path: Path) -> None:
    dag_run = run_dag("op_batch_xcom", out=str(tmp_path), rows=4)
    summary = return_value(dag_run, "render")

    uris, types = listed_and_served(dag_run, tmp_path)

    written = sorted(path.resolve().as_uri() for path in tmp_path.glob("render-row*.png"))
    assert summary["images"] == 4
    assert summary["manifest_uri"]
    assert sorted(uris) == written
    assert len(written) == 4
    assert types == ["image/png"] * 4


def test_gallery_lists_the_images_of_an_image_operator_from_the_same_result_shape(
    conn: PhotaEmulator, tmp_path: Path
) -> None:
    dag_run = run_dag("op_generate_mapped", out=str(tmp_path))
    results = [return_value(dag_run, "generate", map_index=index) for index in range(3)]

    uris, _ = listed_and_served(dag_run, tmp_path)

    assert all(result["manifest_uri"] for result in results)
    assert sorted(uris) == sorted(uri for result in results for uri in result["output_uris"])
    assert len(uris) == sum(result["images"] for result in results) == 6
