"""The gallery plugin without a deployment: version gating, which outputs a run has, thumbnails, the page's HTML.

The routes themselves (auth manager, 401/403/404, the UI tab) run in a real API server in tests/browser.
"""

from __future__ import annotations

import io
import logging
import os
import random
import sys
from pathlib import Path

import pytest
from PIL import Image

from airflow_provider_phota.get_provider_info import get_provider_info
from airflow_provider_phota.plugins import gallery, thumbnails
from airflow_provider_phota.plugins.app import render_page
from airflow_provider_phota.plugins.outputs import images_from_results, is_image_result


def result(endpoint: str, *uris: str, **extra: object) -> dict[str, object]:
    return {"endpoint": endpoint, "job_id": "j", "count": len(uris), "output_uris": list(uris), **extra}


@pytest.mark.parametrize(
    ("version", "supported"),
    [("2.11.2", False), ("3.0.6", False), ("3.1.0", True), ("3.1.0rc1", True), ("3.1.8", True), ("3.3.2", True)],
)
def test_gallery_needs_airflow_3_1(version: str, supported: bool) -> None:
    assert gallery.gallery_supported(version) is supported


def test_plugin_is_registered_and_has_both_tabs_here() -> None:
    (plugin,) = get_provider_info()["plugins"]
    assert plugin["plugin-class"] == "airflow_provider_phota.plugins.gallery.PhotaGalleryPlugin"
    assert gallery.PhotaGalleryPlugin.name == "phota"
    (app,) = gallery.PhotaGalleryPlugin.fastapi_apps
    assert app["url_prefix"] == gallery.URL_PREFIX
    views = {view["destination"]: view for view in gallery.PhotaGalleryPlugin.external_views}
    assert set(views) == {"dag_run", "task_instance"}
    assert views["dag_run"]["href"] == "/phota/dags/{DAG_ID}/runs/{RUN_ID}/gallery"
    assert "task_id={TASK_ID}&map_index={MAP_INDEX}" in views["task_instance"]["href"]
    assert views["dag_run"]["url_route"] != views["task_instance"]["url_route"]


def test_plugin_loads_without_views_where_airflow_lacks_them(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(gallery, "gallery_supported", lambda version=None: False)
    with caplog.at_level(logging.INFO, logger=gallery.__name__):
        assert gallery._components() == ([], [])
    assert "needs Airflow 3.1.0+" in caplog.text


def test_plugin_loads_without_views_where_the_app_cannot_be_imported(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "airflow_provider_phota.plugins.app", None)  # as if fastapi were missing
    with caplog.at_level(logging.WARNING, logger=gallery.__name__):
        assert gallery._components() == ([], [])
    assert "Phota gallery disabled" in caplog.text


def test_run_outputs_come_from_image_results_only_in_run_order() -> None:
    rows = [
        ("build_prompts", -1, ["a", "b"]),  # not an image result
        ("generate", 1, result("generate", "file:///o/g1-0.png", "file:///o/g1-1.png", cost_usd=0.5)),
        ("generate", 0, result("generate", "file:///o/g0-0.png")),
        ("publish", -1, {"manifest_uri": "file:///p/manifest.json", "count": 3}),
        ("enhance", -1, result("enhance", "file:///o/final.png")),
        ("looks_alike", -1, {"endpoint": "generate", "output_uris": "file:///o/not-a-list.png"}),
        ("retry_copy", -1, result("remix", "file:///o/final.png")),  # already listed
    ]
    rendered = {("generate", 0): {"prompt": "studio", "base_model": "flux-2", "resolution": "2K"}}
    images = images_from_results(rows, rendered)
    assert [(image.number, image.task_id, image.map_index, image.uri) for image in images] == [
        (1, "generate", 0, "file:///o/g0-0.png"),
        (2, "generate", 1, "file:///o/g1-0.png"),
        (3, "generate", 1, "file:///o/g1-1.png"),
        (4, "enhance", -1, "file:///o/final.png"),
    ]
    assert (images[0].prompt, images[0].base_model, images[0].resolution) == ("studio", "flux-2", "2K")
    assert images[1].prompt is None
    assert [image.cost_usd for image in images] == [None, 0.25, 0.25, None]
    # One task instance keeps the run's numbers; map index -1 means every map index of the task.
    assert [image.number for image in images_from_results(rows, rendered, task_id="generate", map_index=1)] == [2, 3]
    assert len(images_from_results(rows, rendered, task_id="generate", map_index=-1)) == 3
    assert images_from_results(rows, rendered, task_id="build_prompts") == []
    assert not is_image_result({"endpoint": "generate", "output_uris": [1, 2]})


def noisy_image(path: Path, size: tuple[int, int], image_format: str) -> Path:
    """Random pixels: the worst case for a JPEG's size."""
    rng = random.Random(7)
    image = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    image.save(path, format=image_format)
    return path


def test_thumbnail_is_small_cached_and_remade_when_the_file_changes(tmp_path: Path) -> None:
    source = noisy_image(tmp_path / "out.png", (2048, 1536), "PNG")  # a 4K-class worst case
    cache = tmp_path / "cache"
    made = thumbnails.thumbnail_for(source.as_uri(), cache)
    data = made.path.read_bytes()
    assert len(data) <= thumbnails.MAX_THUMBNAIL_BYTES
    with Image.open(io.BytesIO(data)) as thumb:
        assert thumb.format == "JPEG"
        assert max(thumb.size) <= max(thumbnails.THUMBNAIL_BOX)
    assert (made.width, made.height, made.size_bytes) == (2048, 1536, source.stat().st_size)
    assert thumbnails.image_facts(source.as_uri(), cache) == (2048, 1536, source.stat().st_size)

    # Made once: a second request reads the cache (the source is not decoded again).
    before = made.path.stat().st_mtime_ns
    again = thumbnails.thumbnail_for(source.as_uri(), cache)
    assert again.path == made.path
    assert made.path.stat().st_mtime_ns == before
    # A re-run that rewrites the output gets a new thumbnail.
    Image.new("RGB", (640, 480), "red").save(source, format="PNG")
    os.utime(source, ns=(before + 10**9, before + 10**9))
    redone = thumbnails.thumbnail_for(source.as_uri(), cache)
    assert redone.path != made.path
    assert (redone.width, redone.height) == (640, 480)
    assert not [path for path in cache.iterdir() if path.name.startswith(".")]  # no partial files left


def test_thumbnail_of_a_transparent_image_and_of_what_is_not_an_image(tmp_path: Path) -> None:
    rgba = tmp_path / "cut-out.png"
    Image.new("RGBA", (800, 600), (0, 0, 0, 0)).save(rgba)
    assert thumbnails.thumbnail_for(rgba.as_uri(), tmp_path / "cache").path.read_bytes()[:2] == b"\xff\xd8"
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    assert thumbnails.image_facts(text.as_uri(), tmp_path / "cache") is None
    assert thumbnails.image_facts((tmp_path / "gone.png").as_uri(), tmp_path / "cache") is None
    with pytest.raises(FileNotFoundError):
        thumbnails.thumbnail_for((tmp_path / "gone.png").as_uri(), tmp_path / "cache")


def test_page_escapes_what_tasks_wrote_and_links_only_to_its_own_routes(tmp_path: Path) -> None:
    source = tmp_path / "a.png"
    Image.new("RGB", (64, 48), "blue").save(source)
    rows = [("gen<x>", -1, result("generate", source.as_uri(), cost_usd=0.12))]
    images = images_from_results(rows, {("gen<x>", -1): {"prompt": '<script>alert("x")</script>'}})
    page = render_page("dag", "run&1", images, task_id=None, map_index=None)
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    assert "gen&lt;x&gt;" in page
    assert "run&amp;1" in page
    assert "64 x 48 px" in page
    assert "$0.120" in page
    assert "$0.12 recorded cost" in page
    links = [part.split('"', 1)[0] for part in page.split('href="')[1:]] + [
        part.split('"', 1)[0] for part in page.split('src="')[1:]
    ]
    assert links
    assert all(link.startswith(("thumbnail?uri=", "image?uri=", "#")) for link in links), links
    empty = render_page("dag", "run", [], task_id="t", map_index=2)
    assert "No Phota task of this run has recorded output files" in empty
