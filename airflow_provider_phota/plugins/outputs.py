"""Which images a DAG run's Phota tasks wrote, and opening one of them for the gallery (docs/security.md).

XCom is not a trust boundary: Airflow's ``user`` role may create and patch XCom entries through the REST API. So a
file is listed, and served, only when all three hold:

* **claimed**: the run's XCom results name it (``output_uris``, or ``rows[].output_uris`` of the manifest at
  ``manifest_uri``, read only when the manifest itself passes the next check and names this task instance);
* **where the task wrote**: it lies under the ``output_path`` that the task instance itself rendered (the
  rendered-task-instance-fields table is written by the task through the execution API, never by the REST API),
  spelled without ``..``, ``%``, ``\\``, ``?`` or ``#``, and, on local disk, the file actually opened (symlinks
  resolved, without following a symlink as the last part) is still under it; with ``PHOTA_GALLERY_ROOTS`` set
  (comma-separated URIs) that ``output_path`` must also lie under one of those;
* **a raster image**: its first bytes are PNG, JPEG, WebP, AVIF or HEIC/HEIF, and the content type comes from
  those bytes, never from the name.

:func:`images_from_results` is pure (rows in, images out; the manifest reader is a parameter); :func:`run_images`
reads the rows from Airflow's metadata database inside the API server; :func:`open_output` opens one file.
"""

from __future__ import annotations

import json
import os
import posixpath
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import urlsplit

from airflow.models.dagrun import DagRun
from airflow.models.renderedtifields import RenderedTaskInstanceFields as Rendered
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session
from sqlalchemy import select

from airflow_provider_phota.contract import image_format
from airflow_provider_phota.storage import storage_path

IMAGE_ENDPOINTS = frozenset({"edit", "generate", "enhance", "remix"})
ROOTS_ENV = "PHOTA_GALLERY_ROOTS"
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
_HEAD_BYTES = 32
_UNSAFE_IN_URI = ("%", "\\", "?", "#", "\x00", "\n", "\r")
_HEIF_BRANDS = {b"heic": "image/heic", b"heix": "image/heic", b"heif": "image/heif", b"mif1": "image/heif"}
_AVIF_BRANDS = (b"avif", b"avis")
_MEDIA_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/avif"})
"""Raster types browsers show; the gallery serves the others (HEIC/HEIF) as attachments."""


class NotServable(Exception):
    """The file is not one the gallery serves: gone, outside its task's output folder, or not a raster image."""


@dataclass(frozen=True)
class GalleryImage:
    """One output image of a run, with what the gallery shows next to its thumbnail."""

    uri: str
    root: str
    """The ``output_path`` the task rendered (canonical URI): the file is served only from under it."""
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
    """The task's (or the manifest row's) cost divided among its images, when recorded."""


@dataclass
class OpenedOutput:
    """A file opened for reading, with what its bytes say it is."""

    handle: IO[bytes]
    media_type: str
    size: int
    version: str
    """Changes when the file is rewritten (size, mtime, inode): part of the thumbnail cache key."""


def raster_type(head: bytes) -> str | None:
    """The image type of a file from its first bytes (PNG, JPEG, WebP, AVIF, HEIC/HEIF), else ``None``: the
    contract's formats, plus AVIF and the HEIF brands the gallery may show as well."""
    known = _MEDIA_TYPES.get(image_format(head) or "")
    if known is None and head[4:8] == b"ftyp":
        brand = head[8:12]
        return "image/avif" if brand in _AVIF_BRANDS else _HEIF_BRANDS.get(brand)
    return known


def _split(location: str, *, tidy: bool = False) -> tuple[str, str, str] | None:
    """``(scheme, netloc, path)`` of a URI or absolute local path spelled plainly, else ``None`` (relative paths,
    ``..`` segments, percent-encoding, backslashes, queries, fragments, NUL; and, unless ``tidy`` is set to tidy them
    away, ``.`` segments and doubled slashes)."""
    if not location or any(char in location for char in _UNSAFE_IN_URI):
        return None
    if "://" not in location:
        if not location.startswith("/"):
            return None  # relative to a worker's working folder: unknown here
        location = "file://" + location
    parts = urlsplit(location)
    path = parts.path
    if not path.startswith("/") or ".." in path.split("/"):
        return None
    if tidy:
        path = posixpath.normpath(path).replace("//", "/")
    elif posixpath.normpath(path) != path:
        return None
    return parts.scheme, parts.netloc, path


def output_root(fields: Mapping[str, Any]) -> str | None:
    """The canonical URI of the ``output_path`` a task instance rendered, when it is one the gallery may serve
    from (see the module's docstring); ``None`` otherwise."""
    value = fields.get("output_path")
    split = _split(value.rstrip("/"), tidy=True) if isinstance(value, str) else None
    if split is None or split[2] == "/":
        return None
    root = f"{split[0]}://{split[1]}{split[2]}"
    allowed = [entry.strip() for entry in os.environ.get(ROOTS_ENV, "").split(",") if entry.strip()]
    if allowed and not any(root == entry or within(root, entry) for entry in (_canonical(a) for a in allowed)):
        return None
    return root


def _canonical(location: str) -> str:
    split = _split(location.rstrip("/"), tidy=True)
    return f"{split[0]}://{split[1]}{split[2]}" if split else "\x00"  # an unusable root allows nothing


def within(uri: str, root: str) -> bool:
    """Whether ``uri``, spelled plainly, names something strictly under the folder ``root`` (a canonical URI)."""
    split, root_split = _split(uri), _split(root)
    if split is None or root_split is None or split[:2] != root_split[:2]:
        return False
    return split[2].startswith(root_split[2].rstrip("/") + "/")


def _open_local(path: str, root_path: str) -> tuple[IO[bytes], int, str]:
    """Open a regular file without following a symlink as its last part, and check that the file opened is under
    ``root_path`` once every symlink is resolved (``/proc/self/fd`` names what was opened: no race)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as error:  # gone, a symlink (ELOOP), unreadable
        raise NotServable(f"cannot open: {error.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotServable("not a regular file")
        proc = f"/proc/self/fd/{fd}"
        opened = os.readlink(proc) if os.path.exists(proc) else os.path.realpath(path)
        real_root = os.path.realpath(root_path)
        if not opened.startswith(real_root.rstrip("/") + "/"):
            raise NotServable("outside the task's output folder once symlinks are resolved")
        return os.fdopen(fd, "rb"), info.st_size, f"{info.st_size}:{info.st_mtime_ns}:{info.st_dev}:{info.st_ino}"
    except BaseException:
        os.close(fd)
        raise


def _open_within(uri: str, root: str) -> tuple[IO[bytes], int, str]:
    """``(handle, size, version)`` of the file at ``uri`` when it lies under ``root``; raises :class:`NotServable`."""
    if not within(uri, root):
        raise NotServable("not under the task's rendered output_path")
    scheme, _, path = _split(uri)  # type: ignore[misc]  # within() checked it splits
    if scheme in ("file", "local"):
        return _open_local(path, _split(root)[2])  # type: ignore[index]

    source = storage_path(uri)
    try:
        info = source.stat()
        handle = source.open("rb")  # type: ignore[no-untyped-call]
    except (OSError, ValueError) as error:
        raise NotServable(f"cannot open: {error}") from None
    size = info.get("size") if isinstance(info, dict) else getattr(info, "st_size", None)
    if isinstance(info, dict):
        modified = info.get("mtime") or info.get("LastModified") or info.get("ETag")
    else:
        modified = getattr(info, "st_mtime", None)
    return handle, int(size or 0), f"{size}:{modified}"


def open_output(uri: str, root: str) -> OpenedOutput:
    """Open a listed output for serving: under ``root`` and a raster image by its bytes; raises
    :class:`NotServable` otherwise (the handle is then closed)."""
    handle, size, version = _open_within(uri, root)
    try:
        media_type = raster_type(handle.read(_HEAD_BYTES))
        if media_type is None:
            raise NotServable("not a raster image (PNG, JPEG, WebP, AVIF, HEIC)")
        handle.seek(0)
    except BaseException:
        handle.close()
        raise
    return OpenedOutput(handle, media_type, size, version)


def read_manifest(uri: str, root: str) -> Mapping[str, Any] | None:
    """The JSON manifest at ``uri`` when it lies under ``root`` and is at most ``MAX_MANIFEST_BYTES``; else
    ``None``."""
    try:
        handle, size, _ = _open_within(uri, root)
    except NotServable:
        return None
    with handle:
        if size > MAX_MANIFEST_BYTES:
            return None
        raw = handle.read(MAX_MANIFEST_BYTES + 1)
    try:
        document = json.loads(raw)
    except ValueError:
        return None
    return document if isinstance(document, Mapping) and len(raw) <= MAX_MANIFEST_BYTES else None


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


def _share(cost: object, count: int) -> float | None:
    if isinstance(cost, bool) or not isinstance(cost, int | float) or count == 0:
        return None
    return float(cost) / count


ManifestReader = Callable[[str, str], "Mapping[str, Any] | None"]


def _claimed(
    value: Mapping[str, Any], root: str, identity: Mapping[str, Any], reader: ManifestReader
) -> list[tuple[str, str | None, float | None]]:
    """``(uri, prompt or None, cost share)`` of each file a result claims: its ``output_uris``, then the rows of its
    manifest when that manifest names this very task instance."""
    claimed: list[tuple[str, str | None, float | None]] = []
    if is_image_result(value):
        uris = value["output_uris"]
        claimed += [(uri, None, _share(value.get("cost_usd"), len(uris))) for uri in uris]
    manifest_uri = value.get("manifest_uri")
    manifest = reader(manifest_uri, root) if isinstance(manifest_uri, str) else None
    batch = manifest.get("batch") if manifest else None
    if manifest and isinstance(batch, Mapping) and all(batch.get(key) == want for key, want in identity.items()):
        for row in manifest.get("rows") or []:
            uris = row.get("output_uris") if isinstance(row, Mapping) else None
            if not isinstance(uris, list) or not all(isinstance(uri, str) for uri in uris):
                continue
            request = row.get("request")
            prompt = request.get("prompt") if isinstance(request, Mapping) else None
            share = _share(row.get("cost_usd"), len(uris))
            claimed += [(uri, prompt if isinstance(prompt, str) else None, share) for uri in uris]
    return claimed


def images_from_results(
    results: Iterable[tuple[str, int, object]],
    rendered: Mapping[tuple[str, int], Mapping[str, Any]],
    *,
    dag_id: str,
    run_id: str,
    task_id: str | None = None,
    map_index: int | None = None,
    reader: ManifestReader = read_manifest,
) -> list[GalleryImage]:
    """The images of ``results`` (``(task_id, map_index, xcom value)``, oldest first) that lie under their task
    instance's rendered ``output_path``, optionally only those of one task instance (``map_index`` -1 or ``None``:
    every map index of the task).

    Tasks come in the order their first result was written, map indexes in order, and each image is numbered by
    its place in the whole run, so a task-instance view shows the same numbers as the run view. A result without a
    rendered ``output_path`` is ignored; a URI is listed once.
    """
    rows = [(task, index, value) for task, index, value in results if isinstance(value, Mapping)]
    first_seen: dict[str, int] = {}
    for position, (task, _, _) in enumerate(rows):
        first_seen.setdefault(task, position)
    rows.sort(key=lambda row: (first_seen[row[0]], row[1]))
    images: list[GalleryImage] = []
    seen: set[str] = set()
    for result_task, result_index, value in rows:
        assert isinstance(value, Mapping)
        fields = rendered.get((result_task, result_index), {})
        root = output_root(fields)
        if root is None:
            continue
        identity = {"dag_id": dag_id, "run_id": run_id, "task_id": result_task, "map_index": result_index}
        position = 0
        for uri, prompt, cost in _claimed(value, root, identity, reader):
            if uri in seen or not within(uri, root):
                continue
            seen.add(uri)
            images.append(
                GalleryImage(
                    uri=uri,
                    root=root,
                    number=len(images) + 1,
                    task_id=result_task,
                    map_index=result_index,
                    position=position,
                    endpoint=str(value.get("endpoint") or ""),
                    prompt=prompt or _text(fields, "prompt"),
                    base_model=_text(fields, "base_model"),
                    resolution=_text(fields, "resolution"),
                    aspect_ratio=_text(fields, "aspect_ratio"),
                    cost_usd=cost,
                )
            )
            position += 1
    if task_id is not None:
        images = [image for image in images if image.task_id == task_id]
    if map_index is not None and map_index >= 0:
        images = [image for image in images if image.map_index == map_index]
    return images


def _decode(raw: object) -> object:
    """An XCom column value as Python: Airflow 3 stores JSON, sometimes as JSON text, and 3.1's REST API stores a
    PATCHed value encoded twice; text is decoded until it is not JSON text any more (at most three times)."""
    for _ in range(3):
        if not isinstance(raw, bytes | str):
            break
        try:
            raw = json.loads(raw)
        except ValueError:
            break
    return raw


def run_exists(dag_id: str, run_id: str) -> bool:
    """Whether the DAG run exists (read from the metadata database)."""

    with create_session() as session:
        found = session.scalar(select(DagRun.id).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id).limit(1))
    return found is not None


def run_images(
    dag_id: str, run_id: str, *, task_id: str | None = None, map_index: int | None = None
) -> list[GalleryImage]:
    """The run's output images, in the order their tasks finished (read from the metadata database)."""

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
    return images_from_results(rows, fields, dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index)
