"""Gallery thumbnails: made once per image on the API server, cached on its disk, at most 64 KB each.

An image is read from storage once (Pillow decodes a reduced JPEG draft where it can), shrunk to fit
``THUMBNAIL_BOX`` and saved as JPEG; when that is over ``MAX_THUMBNAIL_BYTES`` the quality, then the size, steps
down until it fits.

The cache (docs/security.md) is a folder only the API server's user may use: ``$PHOTA_GALLERY_CACHE_DIR``, else
``$AIRFLOW_HOME/phota-gallery-cache``; created ``0700`` and refused, with nothing cached, when it is a symlink, is
not owned by this user or is open to others. Entries are named by an HMAC, under a random secret kept in the cache,
of the URI and the file's size, modification time and inode, so no one else can compute a name and a rewritten
output gets a new entry. Entries are opened without following symlinks (a planted link is removed and the
thumbnail made again), written under a temporary name and renamed into place. The folder holds at most
``$PHOTA_GALLERY_CACHE_MB`` megabytes (default 256, about 4,000 thumbnails): past that the least recently used
entries are removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import json
import logging
import os
import secrets
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow.configuration import AIRFLOW_HOME
from PIL import Image, UnidentifiedImageError

from airflow_provider_phota.plugins.outputs import NotServable, OpenedOutput, open_output

log = logging.getLogger(__name__)

THUMBNAIL_BOX = (480, 480)
MAX_THUMBNAIL_BYTES = 64 * 1024
DEFAULT_CACHE_MB = 256
_QUALITIES = (82, 70, 58, 46)
_CACHE_ENV = "PHOTA_GALLERY_CACHE_DIR"
_CACHE_MB_ENV = "PHOTA_GALLERY_CACHE_MB"
_KEY_FILE = ".key"
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True)
class Thumbnail:
    data: bytes
    """The JPEG."""
    width: int
    """The original image's width in pixels."""
    height: int
    """The original image's height in pixels."""
    size_bytes: int
    """The original file's size."""


def cache_folder() -> Path:
    """``$PHOTA_GALLERY_CACHE_DIR``, else ``phota-gallery-cache`` in ``$AIRFLOW_HOME``."""
    configured = os.environ.get(_CACHE_ENV)
    if configured:
        return Path(configured)

    return Path(AIRFLOW_HOME) / "phota-gallery-cache"


def cache_limit_bytes() -> int:
    """The cache's size bound: ``$PHOTA_GALLERY_CACHE_MB`` megabytes (default 256)."""
    try:
        return max(1, int(os.environ.get(_CACHE_MB_ENV, DEFAULT_CACHE_MB))) * 1024 * 1024
    except ValueError:
        return DEFAULT_CACHE_MB * 1024 * 1024


def checked_folder(folder: Path) -> Path:
    """``folder``, created ``0700`` when missing; raises ``PermissionError`` when it is a symlink, not a folder, not
    owned by this user or open to group or others."""
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700, parents=True)
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode):
        raise PermissionError(f"thumbnail cache {folder} is not a folder (or is a symlink)")
    if info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise PermissionError(f"thumbnail cache {folder} must be owned by this user with mode 0700")
    return folder


def _read(path: Path) -> bytes | None:
    """The content of a regular file, not following a symlink; ``None`` when missing; a symlink or anything but a
    regular file is removed (it was planted) and reads as missing."""
    try:
        fd = os.open(path, _READ_FLAGS)
    except FileNotFoundError:
        return None
    except OSError:  # ELOOP: a symlink
        log.warning("Removing %s from the thumbnail cache: not a regular file", path)
        path.unlink(missing_ok=True)
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return None
        return handle.read(MAX_THUMBNAIL_BYTES + 4096)


def _secret(folder: Path) -> bytes:
    path = folder / _KEY_FILE
    existing = _read(path)
    if existing and len(existing) >= 32:
        return existing
    key = secrets.token_bytes(32)
    _write_atomically(path, key)
    return key


def _key(folder: Path, uri: str, version: str) -> str:
    return hmac.new(_secret(folder), f"{uri}\0{version}".encode(), hashlib.sha256).hexdigest()[:40]


def encode_thumbnail(image: Any) -> bytes:
    """``image`` (a Pillow image, modified in place) as a JPEG of at most ``MAX_THUMBNAIL_BYTES``."""

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


def _cached(folder: Path | None, uri: str, opened: OpenedOutput) -> tuple[Path, Thumbnail | None] | None:
    """``(entry path, cached thumbnail or None)``; ``None`` when the cache folder is unusable (then nothing is
    cached: thumbnails are still made and served)."""
    try:
        where = checked_folder(folder or cache_folder())
        entry = where / f"{_key(where, uri, opened.version)}.jpg"
        data, meta = _read(entry), _read(entry.with_suffix(".json"))
    except (OSError, ValueError) as error:
        log.warning("Phota gallery: not caching thumbnails: %s", error)
        return None
    if data is None or meta is None:
        return entry, None
    try:
        facts = json.loads(meta)
        thumbnail = Thumbnail(data, int(facts["width"]), int(facts["height"]), int(facts["size_bytes"]))
    except (ValueError, KeyError, TypeError):
        return entry, None
    with contextlib.suppress(OSError):
        os.utime(entry, follow_symlinks=False)  # least recently used goes first
    return entry, thumbnail


def image_facts(uri: str, root: str, folder: Path | None = None) -> tuple[int, int, int] | None:
    """``(width, height, bytes)`` of the listed image at ``uri``: from the thumbnail cache, else from the image's
    header (Pillow reads only the first kilobytes); ``None`` when it is gone or not a raster image."""

    try:
        opened = open_output(uri, root)
    except NotServable:
        return None
    with opened.handle as handle:
        cached = _cached(folder, uri, opened)
        if cached and cached[1]:
            return cached[1].width, cached[1].height, cached[1].size_bytes
        try:
            with Image.open(handle) as image:
                width, height = image.size
        except (OSError, UnidentifiedImageError, ValueError):
            return None
    return width, height, opened.size


def thumbnail_for(uri: str, root: str, folder: Path | None = None) -> Thumbnail:
    """The thumbnail of the listed image at ``uri``, from the cache or made now. Raises :class:`NotServable` when
    the file is not one the gallery serves and ``PIL.UnidentifiedImageError`` when Pillow cannot decode it."""

    opened = open_output(uri, root)
    with opened.handle as handle:
        cached = _cached(folder, uri, opened)
        if cached and cached[1]:
            return cached[1]
        with Image.open(handle) as image:
            width, height = image.size
            image.draft("RGB", THUMBNAIL_BOX)  # JPEG: decode at a fraction of the size; other formats ignore it
            data = encode_thumbnail(image)
    made = Thumbnail(data, width, height, opened.size)
    if cached:
        entry = cached[0]
        try:
            _write_atomically(entry, data)
            meta = {"width": width, "height": height, "size_bytes": opened.size}
            _write_atomically(entry.with_suffix(".json"), json.dumps(meta).encode())  # last: marks it complete
            evict(entry.parent)
        except OSError as error:
            log.warning("Phota gallery: could not cache a thumbnail: %s", error)
    return made


def evict(folder: Path, limit: int | None = None) -> None:
    """Remove the least recently used entries until the folder holds at most 90% of ``limit`` bytes (default:
    :func:`cache_limit_bytes`), when it holds more than ``limit``."""
    limit = cache_limit_bytes() if limit is None else limit
    entries = []
    with os.scandir(folder) as listing:
        for item in listing:
            if item.name == _KEY_FILE:
                continue
            info = item.stat(follow_symlinks=False)
            entries.append((info.st_mtime_ns, info.st_size, item.path))
    total = sum(size for _, size, _ in entries)
    if total <= limit:
        return
    for _, size, path in sorted(entries):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        total -= size
        if total <= limit * 9 // 10:
            break


def _write_atomically(target: Path, data: bytes) -> None:
    handle, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(handle, "wb") as output:
            output.write(data)
        os.replace(partial, target)  # replaces a planted symlink itself, never its target
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
