"""The gallery's FastAPI app, mounted by the API server under ``/phota`` (Airflow 3.1+).

Routes, all under ``/dags/{dag_id}/runs/{run_id}/``:

* ``gallery`` (``?task_id=&map_index=`` to show one task instance): the HTML page of thumbnails;
* ``thumbnail?uri=``: a cached JPEG of at most 64 KB;
* ``image?uri=``: the full image, streamed from object storage.

Airflow does not protect a plugin's routes: every route here depends on Airflow's own ``requires_access_dag``
(read access to the DAG's XComs, asked of the deployment's auth manager), so an anonymous caller gets 401 and a
user the auth manager does not let read that DAG gets 403, before anything is looked up. A file is served only when
its URI is, character for character, one the run's Phota tasks recorded, it lies under the ``output_path`` its task
rendered and its bytes are a raster image (:mod:`~airflow_provider_phota.plugins.outputs`, docs/security.md); any
other value is 404 with no bytes. Files go out with a sandboxing CSP and ``nosniff``, the content type taken from
the bytes. The page carries no API key and no signed URL: it links to these routes only.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from PIL import UnidentifiedImageError

from airflow_provider_phota.plugins import callbacks
from airflow_provider_phota.plugins.outputs import (
    INLINE_TYPES,
    GalleryImage,
    NotServable,
    open_output,
    run_exists,
    run_images,
)
from airflow_provider_phota.plugins.thumbnails import image_facts, thumbnail_for

CHUNK_BYTES = 256 * 1024
_UNSAFE_IN_HEADER = re.compile(r"[^A-Za-z0-9._-]")
_PAGE_HEADERS = {
    # Only this origin may frame the page (the Airflow UI's plugin tab); nothing but its own images may load.
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'self'; "
        "base-uri 'none'; form-action 'none'"
    ),
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}
_FILE_HEADERS = {
    # Opened top-level, a file can run nothing and load nothing; the type is the one its bytes showed.
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cache-Control": "private, max-age=3600",
    "X-Content-Type-Options": "nosniff",
}
_GONE = "No image of this run is served at that URI"


def _read_access() -> Any:
    """Airflow's dependency: the caller (JWT cookie or bearer token) may read the XComs of the path's DAG."""

    return Depends(requires_access_dag("GET", DagAccessEntity.XCOM))


def _recorded(dag_id: str, run_id: str, uri: str) -> GalleryImage:
    for image in run_images(dag_id, run_id):
        if image.uri == uri:
            return image
    raise HTTPException(status_code=404, detail=_GONE)


def _map_index(value: str | None) -> int | None:
    """The ``map_index`` query value as a number; anything else (the UI leaves ``{MAP_INDEX}`` unfilled on an
    unmapped task's page) means every map index of the task."""
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def create_app() -> FastAPI:
    """A new gallery app (the plugin makes one per process)."""
    app = FastAPI(title="Phota outputs", docs_url=None, redoc_url=None, openapi_url=None)
    access = _read_access()
    app.include_router(callbacks.router)  # POST /phota/callbacks: signed job callbacks -> asset events

    @app.get("/dags/{dag_id}/runs/{run_id}/gallery", response_class=HTMLResponse, dependencies=[access])
    def gallery(dag_id: str, run_id: str, task_id: str | None = None, map_index: str | None = None) -> HTMLResponse:
        if not run_exists(dag_id, run_id):
            raise HTTPException(status_code=404, detail="No such DAG run")
        index = _map_index(map_index)
        images = run_images(dag_id, run_id, task_id=task_id or None, map_index=index)
        page = render_page(dag_id, run_id, images, task_id=task_id or None, map_index=index)
        return HTMLResponse(page, headers=_PAGE_HEADERS)

    @app.get("/dags/{dag_id}/runs/{run_id}/thumbnail", dependencies=[access])
    def thumbnail(dag_id: str, run_id: str, uri: str = Query(...)) -> Response:

        image = _recorded(dag_id, run_id, uri)
        try:
            made = thumbnail_for(image.uri, image.root)
        except (NotServable, UnidentifiedImageError):
            raise HTTPException(status_code=404, detail=_GONE) from None
        return Response(made.data, media_type="image/jpeg", headers=_FILE_HEADERS)

    @app.get("/dags/{dag_id}/runs/{run_id}/image", dependencies=[access])
    def full_image(dag_id: str, run_id: str, uri: str = Query(...)) -> StreamingResponse:
        image = _recorded(dag_id, run_id, uri)
        try:
            opened = open_output(image.uri, image.root)
        except NotServable:
            raise HTTPException(status_code=404, detail=_GONE) from None

        def chunks() -> Iterator[bytes]:
            with opened.handle as handle:
                while chunk := handle.read(CHUNK_BYTES):
                    yield chunk

        name = _UNSAFE_IN_HEADER.sub("_", image.uri.rsplit("/", 1)[-1])
        shown = "inline" if opened.media_type in INLINE_TYPES else "attachment"
        headers = {
            **_FILE_HEADERS,
            "Content-Disposition": f'{shown}; filename="{name}"',
            "Content-Length": str(opened.size),
        }
        return StreamingResponse(chunks(), media_type=opened.media_type, headers=headers)

    return app


# --- the page -------------------------------------------------------------------------------------------------------


def file_size(size_bytes: int) -> str:
    """A file size for people: bytes, KB below a megabyte, MB with one decimal above (decimal units)."""
    if size_bytes < 1000:
        return f"{size_bytes} bytes"
    if size_bytes < 1_000_000:
        return f"{size_bytes / 1000:.0f} KB"
    return f"{size_bytes / 1_000_000:.1f} MB"


def _facts(image: GalleryImage, measured: tuple[int, int, int] | None) -> list[str]:
    """Size, model and cost of one image, as short labels."""
    facts = []
    if measured is not None:
        width, height, size_bytes = measured
        facts.append(f"{width} x {height} px · {file_size(size_bytes)}")
    requested = " ".join(value for value in (image.resolution, image.aspect_ratio) if value)
    if requested:
        facts.append(requested)
    facts.append(image.base_model or "default model")
    if image.cost_usd is not None:
        facts.append(f"${image.cost_usd:.3f}")
    return facts


def _card(image: GalleryImage) -> str:

    query = urlencode({"uri": image.uri}, quote_via=quote)
    where = image.task_id + (f" [{image.map_index}]" if image.map_index >= 0 else "")
    prompt = image.prompt or f"({image.endpoint}: no prompt)"
    measured = image_facts(image.uri, image.root)
    facts = "".join(f"<li>{html.escape(fact)}</li>" for fact in _facts(image, measured))
    picture = (
        f'<a href="#view-{image.number}" title="Open the full image">'
        f'<img src="thumbnail?{query}" alt="{html.escape(prompt)}" loading="lazy" decoding="async"></a>'
        if measured is not None
        else '<div class="missing">no image to show: gone, or not a raster image</div>'
    )
    return f"""
<figure class="card" data-uri="{html.escape(image.uri)}">
  {picture}
  <figcaption>
    <div class="task">#{image.number} · {html.escape(where)} · image {image.position + 1}</div>
    <div class="prompt" title="{html.escape(prompt)}">{html.escape(prompt)}</div>
    <ul class="facts">{facts}</ul>
  </figcaption>
</figure>"""


def _viewer(image: GalleryImage) -> str:
    """The full image, shown over the page when its card is clicked (CSS ``:target``: the Airflow UI's plugin
    frame allows neither scripts from other origins nor pop-ups). Lazy, so hidden originals are never fetched."""
    query = urlencode({"uri": image.uri}, quote_via=quote)
    return f"""
<div class="viewer" id="view-{image.number}">
  <a class="backdrop" href="#" aria-label="Close"></a>
  <figure>
    <img src="image?{query}" alt="{html.escape(image.prompt or image.endpoint)}" loading="lazy">
    <figcaption>#{image.number} · <a href="image?{query}" download>Download the original</a> ·
      <a href="#">Close</a></figcaption>
  </figure>
</div>"""


def render_page(
    dag_id: str, run_id: str, images: list[GalleryImage], *, task_id: str | None, map_index: int | None
) -> str:
    """The gallery page: a header with the run and totals, then one card per image."""
    scope = ""
    if task_id:
        scope = f" · task {html.escape(task_id)}" + (
            f" [{map_index}]" if map_index is not None and map_index >= 0 else ""
        )
    costs = [image.cost_usd for image in images if image.cost_usd is not None]
    total = f" · ${sum(costs):.2f} recorded cost" if costs else ""
    count = f"{len(images)} image{'s' if len(images) != 1 else ''}"
    viewers = "".join(_viewer(image) for image in images)
    cards = "".join(_card(image) for image in images) or (
        '<p class="empty">No Phota task of this run has recorded output files yet (only tasks with '
        "<code>output_path</code> write files the gallery can show).</p>"
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Phota outputs · {html.escape(dag_id)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body {{ font: 14px/1.4 system-ui, sans-serif; margin: 16px; color: #1f2933; background: #fff; }}
  header h1 {{ font-size: 18px; margin: 0 0 4px; }}
  header p {{ margin: 0 0 16px; color: #52606d; }}
  .grid {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(240px, 1fr)); gap: 16px; }}
  .card {{ margin: 0; border: 1px solid #d9e2ec; border-radius: 8px; overflow: hidden; background: #f8fafc; }}
  .card img {{ display: block; width: 100%; aspect-ratio: 4 / 3; object-fit: cover; background: #e4e7eb; }}
  figcaption {{ padding: 8px 10px; }}
  .task {{ font-weight: 600; }}
  .prompt {{ display: -webkit-box; -webkit-line-clamp: 3; -webkit-box-orient: vertical; overflow: hidden; }}
  .facts {{ list-style: none; padding: 0; margin: 6px 0 0; color: #52606d; display: flex; flex-wrap: wrap;
            gap: 4px 10px; }}
  .empty {{ color: #52606d; }}
  .viewer {{ display: none; position: fixed; inset: 0; z-index: 10; background: rgba(15, 23, 42, 0.88); }}
  .viewer:target {{ display: flex; align-items: center; justify-content: center; }}
  .viewer .backdrop {{ position: absolute; inset: 0; }}
  .viewer figure {{ position: relative; margin: 0; text-align: center; color: #f8fafc; }}
  .viewer img {{ max-width: 94vw; max-height: 86vh; display: block; margin: 0 auto 8px; }}
  .viewer a {{ color: #bfdbfe; }}
  .missing {{ aspect-ratio: 4 / 3; display: grid; place-items: center; color: #9aa5b1; background: #e4e7eb; }}
</style></head>
<body>
<header><h1>Phota outputs</h1>
<p>{html.escape(dag_id)} · {html.escape(run_id)}{scope} · {count}{total}</p></header>
<main class="grid">{cards}</main>
{viewers}
</body></html>
"""
