"""The gallery plugin without a deployment: version gating, which outputs a run has, thumbnails, the page's HTML.

The routes themselves (auth manager, 401/403/404, the UI tab) run in a real API server in tests/browser.
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from airflow_provider_phota.get_provider_info import get_provider_info
from airflow_provider_phota.plugins import gallery, thumbnails
from airflow_provider_phota.plugins.app import _map_index, file_size, render_page
from airflow_provider_phota.plugins.outputs import (
    NotServable,
    images_from_results,
    is_image_result,
    open_output,
    output_root,
    raster_type,
    within,
)


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
        assert gallery._fastapi_apps() == []
        assert not gallery._supported_here()
    assert "needs Airflow 3.1.0+" in caplog.text


def test_plugin_loads_without_views_where_the_app_cannot_be_imported(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "airflow_provider_phota.plugins.app", None)  # as if fastapi were missing
    with caplog.at_level(logging.WARNING, logger=gallery.__name__):
        assert gallery._fastapi_apps() == []
    assert "Phota gallery disabled" in caplog.text


def test_unmapped_task_tab_placeholder_means_every_map_index() -> None:
    assert _map_index("{MAP_INDEX}") is None
    assert _map_index("") is None
    assert _map_index(None) is None
    assert _map_index("-1") == -1
    assert _map_index("2") == 2


def test_file_sizes_read_sensibly() -> None:
    assert [file_size(size) for size in (512, 48_213, 999_000, 1_500_000, 24_000_000)] == [
        "512 bytes",
        "48 KB",
        "999 KB",
        "1.5 MB",
        "24.0 MB",
    ]


OUT = "file:///o"


def test_run_outputs_come_from_results_under_their_tasks_rendered_output_path_in_run_order() -> None:
    rows = [
        ("build_prompts", -1, ["a", "b"]),  # not an image result
        ("generate", 1, result("generate", f"{OUT}/g/g1-0.png", f"{OUT}/g/g1-1.png", cost_usd=0.5)),
        ("generate", 0, result("generate", f"{OUT}/g/g0-0.png")),
        ("publish", -1, {"manifest_uri": "file:///p/manifest.json", "count": 3}),
        ("enhance", -1, result("enhance", f"{OUT}/e/final.png")),
        ("looks_alike", -1, {"endpoint": "generate", "output_uris": "file:///o/not-a-list.png"}),
        ("retry_copy", -1, result("remix", f"{OUT}/e/final.png")),  # already listed
        ("no_fields", -1, result("generate", f"{OUT}/g/unrendered.png")),  # no rendered output_path: not trusted
    ]
    rendered = {
        ("generate", 0): {"output_path": f"{OUT}/g", "prompt": "studio", "base_model": "flux-2", "resolution": "2K"},
        ("generate", 1): {"output_path": f"{OUT}/g/"},
        ("enhance", -1): {"output_path": "/o/e"},  # a local path, as a DAG may write it
        ("retry_copy", -1): {"output_path": f"{OUT}/e"},
        ("publish", -1): {"output_path": "file:///p"},
    }
    images = images_from_results(rows, rendered, dag_id="d", run_id="r", reader=lambda uri, root: None)
    assert [(image.number, image.task_id, image.map_index, image.uri) for image in images] == [
        (1, "generate", 0, f"{OUT}/g/g0-0.png"),
        (2, "generate", 1, f"{OUT}/g/g1-0.png"),
        (3, "generate", 1, f"{OUT}/g/g1-1.png"),
        (4, "enhance", -1, f"{OUT}/e/final.png"),
    ]
    assert (images[0].prompt, images[0].base_model, images[0].resolution) == ("studio", "flux-2", "2K")
    assert images[1].prompt is None
    assert [image.cost_usd for image in images] == [None, 0.25, 0.25, None]
    assert {image.root for image in images} == {f"{OUT}/g", f"{OUT}/e"}
    # One task instance keeps the run's numbers; map index -1 means every map index of the task.
    select = {"dag_id": "d", "run_id": "r", "reader": lambda uri, root: None}
    assert [
        image.number for image in images_from_results(rows, rendered, task_id="generate", map_index=1, **select)
    ] == [2, 3]
    assert len(images_from_results(rows, rendered, task_id="generate", map_index=-1, **select)) == 3
    assert images_from_results(rows, rendered, task_id="build_prompts", **select) == []
    assert not is_image_result({"endpoint": "generate", "output_uris": [1, 2]})


def test_a_result_claiming_files_outside_its_output_path_lists_none_of_them() -> None:
    claims = [
        "file:///etc/passwd",
        "file:///home/airflow/airflow.cfg",
        f"{OUT}/g/../../etc/passwd",
        f"{OUT}/g/./a.png",
        f"{OUT}/g//a.png",
        f"{OUT}/g/%2e%2e/x.png",
        f"{OUT}/g\\..\\x.png",
        f"{OUT}/g/a.png?x=1",
        f"{OUT}/g/a.png\x00.png",
        f"{OUT}/gallery-of-another-dag/a.png",  # a sibling folder sharing the prefix
        f"{OUT}/g",  # the folder itself
        "file://host/o/g/a.png",
        "s3://o/g/a.png",
        "o/g/a.png",
    ]
    rows = [("generate", -1, result("generate", *claims))]
    rendered = {("generate", -1): {"output_path": f"{OUT}/g"}}
    assert images_from_results(rows, rendered, dag_id="d", run_id="r", reader=lambda uri, root: None) == []
    for unusable in ("/", "file:///", "relative/out", "/o/../etc", "/o/%2e%2e", None, 3, ["/o"]):
        assert output_root({"output_path": unusable}) is None, unusable
    # A rendered output_path is tidied ("//" and "." segments, as the operator's path object does), never ".."
    assert output_root({"output_path": "file:///o//run/./g/"}) == "file:///o/run/g"
    assert within(f"{OUT}/g/sub/a.png", f"{OUT}/g")
    assert not within(f"{OUT}/gx/a.png", f"{OUT}/g")


def test_roots_allow_list_narrows_where_the_gallery_serves_from(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOTA_GALLERY_ROOTS", "file:///data/phota/, s3://aws_default@bucket/out")
    assert output_root({"output_path": "/data/phota/run-1"}) == "file:///data/phota/run-1"
    assert output_root({"output_path": "s3://aws_default@bucket/out/x"}) == "s3://aws_default@bucket/out/x"
    assert output_root({"output_path": "/home/airflow"}) is None
    assert output_root({"output_path": "s3://other@bucket/out/x"}) is None


def test_a_manifest_is_read_only_under_the_output_path_and_only_for_its_own_task_instance() -> None:
    identity = {"dag_id": "d", "run_id": "r", "task_id": "batch", "map_index": -1, "endpoint": "generate"}
    rows = [{"row": 0, "request": {"prompt": "a red bag"}, "output_uris": [f"{OUT}/b/r0-0.png"], "cost_usd": 0.3}]
    manifests = {
        f"{OUT}/b/batch-manifest.json": {"batch": identity, "rows": rows},
        f"{OUT}/b/other-manifest.json": {"batch": {**identity, "dag_id": "other"}, "rows": rows},
    }
    asked: list[tuple[str, str]] = []

    def reader(uri: str, root: str) -> object:
        asked.append((uri, root))
        return manifests.get(uri)

    rendered = {("batch", -1): {"output_path": f"{OUT}/b"}}

    def listed(manifest_uri: str) -> list[tuple[str, str | None, float | None]]:
        value = {"endpoint": "generate", "manifest_uri": manifest_uri, "images": 1}
        found = images_from_results([("batch", -1, value)], rendered, dag_id="d", run_id="r", reader=reader)  # type: ignore[arg-type]
        return [(image.uri, image.prompt, image.cost_usd) for image in found]

    assert listed(f"{OUT}/b/batch-manifest.json") == [(f"{OUT}/b/r0-0.png", "a red bag", 0.3)]
    assert listed(f"{OUT}/b/other-manifest.json") == []  # another DAG's manifest copied here
    assert asked[-1] == (f"{OUT}/b/other-manifest.json", f"{OUT}/b")


def test_open_output_takes_the_type_from_the_bytes_and_refuses_the_rest(tmp_path: Path) -> None:
    root = tmp_path / "out"
    root.mkdir()
    Image.new("RGB", (8, 8), "red").save(root / "a.png")
    Image.new("RGB", (8, 8), "red").save(root / "named.png", format="JPEG")
    Image.new("RGB", (8, 8), "red").save(root / "w.webp", format="WEBP")
    (root / "x.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
    (root / "fake.png").write_text("[core]\nfernet_key = secret\n")
    secret = tmp_path / "airflow.cfg"
    secret.write_text("[core]\nfernet_key = secret\n")
    real_png = tmp_path / "elsewhere.png"
    Image.new("RGB", (8, 8), "blue").save(real_png)
    (root / "link.png").symlink_to(real_png)  # the last part a symlink
    (root / "inside").symlink_to(tmp_path)  # a folder symlink that leads out of the root
    base = root.as_uri()

    def media(name: str) -> str:
        opened = open_output(f"{base}/{name}", base)
        with opened.handle:
            return opened.media_type

    assert media("a.png") == "image/png"
    assert media("named.png") == "image/jpeg"
    assert media("w.webp") == "image/webp"
    for refused in ("x.svg", "fake.png", "link.png", "inside/elsewhere.png", "inside/airflow.cfg", "gone.png", ""):
        with pytest.raises(NotServable):
            open_output(f"{base}/{refused}", base)
    with pytest.raises(NotServable):
        open_output(secret.as_uri(), base)
    assert raster_type(b"\x00\x00\x00\x1cftypheic" + b"\x00" * 8) == "image/heic"
    assert raster_type(b"\x00\x00\x00\x1cftypavif" + b"\x00" * 8) == "image/avif"
    assert raster_type(b"GIF89a") is None
    assert raster_type(b"<?xml version") is None


def test_worker_writing_an_output_never_imports_the_web_app(tmp_path: Path) -> None:
    """A task writes its output through ObjectStoragePath, which makes Airflow load plugins in the task process:
    the phota plugin loads there, and neither FastAPI nor airflow.api_fastapi may come with it."""
    script = f"""
import json, sys
from airflow_provider_phota.storage import atomic_write, storage_path
atomic_write(storage_path({str(tmp_path / "out" / "a.png")!r}), [b"x"])
print(json.dumps({{
    "plugin_loaded": "airflow_provider_phota.plugins.gallery" in sys.modules,
    "web": sorted(m for m in sys.modules if m == "fastapi" or m.startswith(("fastapi.", "airflow.api_fastapi"))),
}}))
"""
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "home"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",  # Airflow's example plugin imports airflow.models itself
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert (tmp_path / "out" / "a.png").read_bytes() == b"x"
    assert seen == {"plugin_loaded": True, "web": []}


def noisy_image(path: Path, size: tuple[int, int], image_format: str) -> Path:
    """Random pixels: the worst case for a JPEG's size."""
    rng = random.Random(7)
    image = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    image.save(path, format=image_format)
    return path


def test_thumbnail_is_small_cached_and_remade_when_the_file_changes(tmp_path: Path) -> None:
    source = noisy_image(tmp_path / "out.png", (2048, 1536), "PNG")  # a 4K-class worst case
    root, uri, cache = tmp_path.as_uri(), source.as_uri(), tmp_path / "cache"
    made = thumbnails.thumbnail_for(uri, root, cache)
    assert len(made.data) <= thumbnails.MAX_THUMBNAIL_BYTES
    with Image.open(io.BytesIO(made.data)) as thumb:
        assert thumb.format == "JPEG"
        assert max(thumb.size) <= max(thumbnails.THUMBNAIL_BOX)
    assert (made.width, made.height, made.size_bytes) == (2048, 1536, source.stat().st_size)
    assert thumbnails.image_facts(uri, root, cache) == (2048, 1536, source.stat().st_size)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    (entry,) = cache.glob("*.jpg")
    assert entry.read_bytes() == made.data

    # Made once: a second request reads the cache (the entry is not rewritten).
    before = entry.stat().st_ino
    assert thumbnails.thumbnail_for(uri, root, cache) == made
    assert entry.stat().st_ino == before
    # A re-run that rewrites the output gets a new thumbnail.
    Image.new("RGB", (640, 480), "red").save(source, format="PNG")
    redone = thumbnails.thumbnail_for(uri, root, cache)
    assert (redone.width, redone.height) == (640, 480)
    assert len(list(cache.glob("*.jpg"))) == 2
    assert not [path for path in cache.iterdir() if path.name.startswith(".") and path.name != ".key"]


def test_thumbnail_cache_follows_no_planted_symlink_and_trusts_no_shared_folder(tmp_path: Path) -> None:
    source = tmp_path / "out" / "a.png"
    source.parent.mkdir()
    Image.new("RGB", (64, 48), "green").save(source)
    root, uri, cache = source.parent.as_uri(), source.as_uri(), tmp_path / "cache"
    thumbnails.thumbnail_for(uri, root, cache)
    secret = tmp_path / "airflow.cfg"
    secret.write_text("[core]\nfernet_key = secret\n")
    for entry in [*cache.glob("*.jpg"), *cache.glob("*.json")]:  # someone who could write there plants links
        entry.unlink()
        entry.symlink_to(secret)
    again = thumbnails.thumbnail_for(uri, root, cache)
    assert again.data[:2] == b"\xff\xd8"
    assert b"fernet_key" not in again.data
    assert not [entry for entry in cache.iterdir() if entry.is_symlink()]  # replaced by real entries

    # A folder open to others, or a symlink to one, is not used: thumbnails are made and nothing is cached.
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    assert thumbnails.thumbnail_for(uri, root, shared).width == 64
    assert list(shared.iterdir()) == []
    linked = tmp_path / "linked"
    linked.symlink_to(cache)
    with pytest.raises(PermissionError):
        thumbnails.checked_folder(linked)
    # Keys are an HMAC under the cache's own secret: another cache names the same thumbnail differently.
    other = tmp_path / "other-cache"
    thumbnails.thumbnail_for(uri, root, other)
    assert {p.name for p in other.glob("*.jpg")}.isdisjoint(p.name for p in cache.glob("*.jpg"))


def test_thumbnail_cache_default_folder_and_size_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PHOTA_GALLERY_CACHE_DIR", raising=False)
    from airflow.configuration import AIRFLOW_HOME

    assert thumbnails.cache_folder() == Path(AIRFLOW_HOME) / "phota-gallery-cache"
    cache = thumbnails.checked_folder(tmp_path / "cache")
    for number in range(10):
        (cache / f"{number}.jpg").write_bytes(b"x" * 1000)
        os.utime(cache / f"{number}.jpg", ns=(number * 10**9, number * 10**9))
    thumbnails.evict(cache, limit=5000)
    assert sorted(path.name for path in cache.glob("*.jpg")) == ["6.jpg", "7.jpg", "8.jpg", "9.jpg"]  # newest kept
    monkeypatch.setenv("PHOTA_GALLERY_CACHE_MB", "3")
    assert thumbnails.cache_limit_bytes() == 3 * 1024 * 1024


def test_thumbnail_of_a_transparent_image_and_of_what_is_not_an_image(tmp_path: Path) -> None:
    rgba = tmp_path / "cut-out.png"
    Image.new("RGBA", (800, 600), (0, 0, 0, 0)).save(rgba)
    root = tmp_path.as_uri()
    assert thumbnails.thumbnail_for(rgba.as_uri(), root, tmp_path / "cache").data[:2] == b"\xff\xd8"
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    assert thumbnails.image_facts(text.as_uri(), root, tmp_path / "cache") is None
    assert thumbnails.image_facts((tmp_path / "gone.png").as_uri(), root, tmp_path / "cache") is None
    with pytest.raises(NotServable):
        thumbnails.thumbnail_for((tmp_path / "gone.png").as_uri(), root, tmp_path / "cache")


def test_page_escapes_what_tasks_wrote_and_links_only_to_its_own_routes(tmp_path: Path) -> None:
    source = tmp_path / "a.png"
    Image.new("RGB", (64, 48), "blue").save(source)
    rows = [("gen<x>", -1, result("generate", source.as_uri(), cost_usd=0.12))]
    fields = {("gen<x>", -1): {"output_path": str(tmp_path), "prompt": '<script>alert("x")</script>'}}
    images = images_from_results(rows, fields, dag_id="dag", run_id="run&1")
    page = render_page("dag", "run&1", images, task_id=None, map_index=None)
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    assert "gen&lt;x&gt;" in page
    assert "run&amp;1" in page
    assert "64 x 48 px" in page
    assert "0.0 MB" not in page
    assert f"{source.stat().st_size} bytes" in page
    assert "$0.120" in page
    assert "$0.12 recorded cost" in page
    links = [part.split('"', 1)[0] for part in page.split('href="')[1:]] + [
        part.split('"', 1)[0] for part in page.split('src="')[1:]
    ]
    assert links
    assert all(link.startswith(("thumbnail?uri=", "image?uri=", "#")) for link in links), links
    empty = render_page("dag", "run", [], task_id="t", map_index=2)
    assert "No Phota task of this run has recorded output files" in empty


def test_xcom_values_decode_however_airflow_stored_them() -> None:
    from airflow_provider_phota.plugins.outputs import _decode

    value = {"endpoint": "generate", "output_uris": ["file:///o/a.png"]}
    once = json.dumps(value)
    assert _decode(value) == value
    assert _decode(once) == value
    assert _decode(json.dumps(once)) == value  # Airflow 3.1's REST API PATCH encodes twice
    assert _decode("not json") == "not json"
