"""Gallery thumbnails: made once per image on the API server, cached on its disk, at most 64 KB each.

An image is read from object storage once (Pillow decodes a reduced JPEG draft where it can), shrunk to fit
``THUMBNAIL_BOX`` and saved as JPEG; when that is over ``MAX_THUMBNAIL_BYTES`` the quality, then the size, steps
down until it fits. The cache key covers the URI and the file's size and modification time, so an output rewritten
by a re-run gets a new thumbnail. Cache files are written under a temporary name and renamed into place.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

THUMBNAIL_BOX = (480, 480)
MAX_THUMBNAIL_BYTES = 64 * 1024
_QUALITIES = (82, 70, 58, 46)
_CACHE_ENV = "PHOTA_GALLERY_CACHE_DIR"
_HEADER_BLOCK = 64 * 1024


@dataclass(frozen=True)
class Thumbnail:
    path: Path
    """The cached JPEG."""
    width: int
    """The original image's width in pixels."""
    height: int
    """The original image's height in pixels."""
    size_bytes: int
    """The original file's size."""


def cache_folder() -> Path:
    """``$PHOTA_GALLERY_CACHE_DIR``, else ``phota-gallery-cache`` in the system temporary folder."""
    configured = os.environ.get(_CACHE_ENV)
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "phota-gallery-cache"


def _stat(path: Any) -> tuple[int, str]:
    info = path.stat()
    size = info.get("size") if isinstance(info, dict) else getattr(info, "st_size", None)
    modified = None
    if isinstance(info, dict):
        modified = info.get("mtime") or info.get("LastModified") or info.get("last_modified") or info.get("ETag")
    else:
        modified = getattr(info, "st_mtime", None)
    return int(size or 0), str(modified)


def encode_thumbnail(image: Any) -> bytes:
    """``image`` (a Pillow image, modified in place) as a JPEG of at most ``MAX_THUMBNAIL_BYTES``."""
    from PIL import Image

    image.thumbnail(THUMBNAIL_BOX, Image.Resampling.LANCZOS)
    if image.mode != "RGB":
        background = Image.new("RGB", image.size, (255, 255, 255))
        converted = image.convert("RGBA")
        background.paste(converted, mask=converted.getchannel("A"))
        image = background
    while True:
        for quality in _QUALITIES:
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=quality, optimize=True, progressive=True)
            if buffer.tell() <= MAX_THUMBNAIL_BYTES:
                return buffer.getvalue()
        image = image.resize((max(1, image.width * 3 // 4), max(1, image.height * 3 // 4)), Image.Resampling.LANCZOS)


def _cache_paths(uri: str, source: Any, folder: Path | None) -> tuple[Path, Path, int]:
    size, modified = _stat(source)
    key = hashlib.sha256(f"{uri}\0{size}\0{modified}".encode()).hexdigest()[:32]
    folder = folder or cache_folder()
    return folder / f"{key}.jpg", folder / f"{key}.json", size


def image_facts(uri: str, folder: Path | None = None) -> tuple[int, int, int] | None:
    """``(width, height, bytes)`` of the image at ``uri``: from the thumbnail cache, else from the image's header
    (Pillow reads only the first kilobytes); ``None`` when the file is gone or not an image."""
    from PIL import Image, UnidentifiedImageError

    from airflow_provider_phota.storage import storage_path

    source = storage_path(uri)
    try:
        _, meta_path, size = _cache_paths(uri, source, folder)
        if meta_path.exists():
            meta = json.loads(meta_path.read_text())
            return meta["width"], meta["height"], meta["size_bytes"]
        # A small read-ahead: object stores otherwise fetch a whole block (5 MB on S3) for a header of a few KB.
        with source.open("rb", block_size=_HEADER_BLOCK) as handle, Image.open(handle) as image:  # type: ignore[no-untyped-call]
            width, height = image.size
    except (OSError, UnidentifiedImageError, ValueError):
        return None
    return width, height, size


def thumbnail_for(uri: str, folder: Path | None = None) -> Thumbnail:
    """The cached thumbnail of the image at ``uri``, made now when missing. Raises ``FileNotFoundError`` when the
    image is gone and ``PIL.UnidentifiedImageError`` when it is not an image."""
    from PIL import Image

    from airflow_provider_phota.storage import storage_path

    source = storage_path(uri)
    image_path, meta_path, size = _cache_paths(uri, source, folder)
    if image_path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        return Thumbnail(image_path, meta["width"], meta["height"], meta["size_bytes"])
    with source.open("rb") as handle, Image.open(handle) as image:  # type: ignore[no-untyped-call]
        width, height = image.size
        image.draft("RGB", THUMBNAIL_BOX)  # JPEG: decode at a fraction of the size; other formats ignore it
        data = encode_thumbnail(image)
    image_path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"uri": uri, "width": width, "height": height, "size_bytes": size}
    _write_atomically(image_path, data)
    _write_atomically(meta_path, json.dumps(meta).encode())  # last: its presence means the thumbnail is complete
    return Thumbnail(image_path, width, height, size)


def _write_atomically(target: Path, data: bytes) -> None:
    handle, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(handle, "wb") as output:
            output.write(data)
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
