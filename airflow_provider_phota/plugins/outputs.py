"""Which images a DAG run's Phota tasks wrote: read from that run's XCom results, never from the storage listing.

The gallery serves a file only when its URI is one of these (exact string match), so a path that no Phota task of
the run recorded is unknown whatever its spelling or encoding. The prompt and base model come from the task's
rendered template fields; ``cost_usd`` from the result when the provider version that wrote it records it.

:func:`images_from_results` is pure (rows in, images out); :func:`run_images` reads the rows from Airflow's metadata
database inside the API server.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

IMAGE_ENDPOINTS = frozenset({"edit", "generate", "enhance", "remix"})


@dataclass(frozen=True)
class GalleryImage:
    """One output image of a run, with what the gallery shows next to its thumbnail."""

    uri: str
    number: int
    """The image's place in the run (1-based), the same in the run's and in a task instance's view."""
    task_id: str
    map_index: int
    position: int
    """The image's place among its task's outputs (0-based)."""
    endpoint: str
    prompt: str | None
    base_model: str | None
    resolution: str | None
    aspect_ratio: str | None
    cost_usd: float | None
    """The task's cost divided among its images, when the result records ``cost_usd``."""


def is_image_result(value: object) -> bool:
    """Whether an XCom value has the shape of :class:`~airflow_provider_phota.results.ImageOperatorResult`."""
    return (
        isinstance(value, Mapping)
        and value.get("endpoint") in IMAGE_ENDPOINTS
        and isinstance(value.get("output_uris"), list)
        and all(isinstance(uri, str) for uri in value["output_uris"])
    )


def _text(fields: Mapping[str, Any], name: str) -> str | None:
    value = fields.get(name)
    return None if value is None else str(value)


def _cost_share(result: Mapping[str, Any]) -> float | None:
    cost, count = result.get("cost_usd"), len(result["output_uris"])
    if isinstance(cost, bool) or not isinstance(cost, int | float) or count == 0:
        return None
    return float(cost) / count


def images_from_results(
    results: Iterable[tuple[str, int, object]],
    rendered: Mapping[tuple[str, int], Mapping[str, Any]],
    *,
    task_id: str | None = None,
    map_index: int | None = None,
) -> list[GalleryImage]:
    """The images of ``results`` (``(task_id, map_index, xcom value)``, oldest first), optionally only those of one
    task instance (``map_index`` -1 or ``None``: every map index of the task).

    Tasks come in the order their first result was written, map indexes in order, and each image is numbered by
    its place in the whole run, so a task-instance view shows the same numbers as the run view. Values that are
    not Phota image results are ignored; a URI is listed once.
    """
    rows = [(task, index, value) for task, index, value in results if is_image_result(value)]
    first_seen: dict[str, int] = {}
    for position, (task, _, _) in enumerate(rows):
        first_seen.setdefault(task, position)
    rows.sort(key=lambda row: (first_seen[row[0]], row[1]))
    images: list[GalleryImage] = []
    seen: set[str] = set()
    for result_task, result_index, value in rows:
        assert isinstance(value, Mapping)
        fields = rendered.get((result_task, result_index), {})
        for position, uri in enumerate(value["output_uris"]):
            if uri in seen:
                continue
            seen.add(uri)
            images.append(
                GalleryImage(
                    uri=uri,
                    number=len(images) + 1,
                    task_id=result_task,
                    map_index=result_index,
                    position=position,
                    endpoint=str(value["endpoint"]),
                    prompt=_text(fields, "prompt"),
                    base_model=_text(fields, "base_model"),
                    resolution=_text(fields, "resolution"),
                    aspect_ratio=_text(fields, "aspect_ratio"),
                    cost_usd=_cost_share(value),
                )
            )
    if task_id is not None:
        images = [image for image in images if image.task_id == task_id]
    if map_index is not None and map_index >= 0:
        images = [image for image in images if image.map_index == map_index]
    return images


def _decode(raw: object) -> object:
    """An XCom column value as Python: Airflow 3 stores JSON (sometimes still as a JSON string)."""
    if isinstance(raw, bytes | str):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def run_exists(dag_id: str, run_id: str) -> bool:
    """Whether the DAG run exists (read from the metadata database)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        found = session.scalar(select(DagRun.id).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id).limit(1))
    return found is not None


def run_images(
    dag_id: str, run_id: str, *, task_id: str | None = None, map_index: int | None = None
) -> list[GalleryImage]:
    """The run's output images, in the order their tasks finished (read from the metadata database)."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as Rendered
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    query = (
        select(XComModel.task_id, XComModel.map_index, XComModel.value)
        .where(XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.key == "return_value")
        .order_by(XComModel.timestamp, XComModel.task_id, XComModel.map_index)
    )
    fields_query = select(Rendered.task_id, Rendered.map_index, Rendered.rendered_fields).where(
        Rendered.dag_id == dag_id, Rendered.run_id == run_id
    )
    with create_session() as session:
        rows = [(row.task_id, row.map_index, _decode(row.value)) for row in session.execute(query)]
        rendered = {(row.task_id, row.map_index): _decode(row.rendered_fields) for row in session.execute(fields_query)}
    fields = {key: value for key, value in rendered.items() if isinstance(value, Mapping)}
    return images_from_results(rows, fields, task_id=task_id, map_index=map_index)
