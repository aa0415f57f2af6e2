"""Writing outputs to Airflow object storage, atomically.

Outputs go through Airflow's ``ObjectStoragePath`` so that ``file://``, ``s3://conn_id@bucket/prefix`` and every
other fsspec backend work the same way. A file is written under a hidden temporary name and renamed into place
only once complete, so a crash or a failed download never leaves a half-written image at the final name (on
object stores the rename is a server-side copy, still never a partial object).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_phota.contract import Violation

PARTIAL_MARKER = ".partial-"


def storage_path(location: str | os.PathLike[str] | ObjectStoragePath) -> ObjectStoragePath:
    """An ``ObjectStoragePath`` for a URI, a local path, or a path object; local paths become absolute file URIs."""
    from airflow.sdk import ObjectStoragePath

    if isinstance(location, ObjectStoragePath):
        return location
    text = os.fspath(location)
    if "://" not in text:
        text = "file://" + os.path.abspath(os.path.expanduser(text))
    return ObjectStoragePath(text)


STORAGE_LOCATIONS = "a local path or a URI such as file:///data/out or s3://conn_id@bucket/prefix"


def validate_storage_uri(field: str, location: object) -> Violation | None:
    """What is wrong with ``location`` as a storage location, naming ``field``; ``None`` when it can be one."""
    from airflow_provider_phota.contract import Violation

    if not isinstance(location, str | os.PathLike) or not os.fspath(location).strip():
        return Violation(field, f"{location!r} is not a storage location", STORAGE_LOCATIONS)
    text = os.fspath(location)
    if "://" in text:
        scheme, _, rest = text.partition("://")
        if not scheme.replace("+", "").replace("-", "").isalnum() or not rest.strip("/"):
            return Violation(field, f"{text!r} is not a valid URI", "scheme://[conn_id@]bucket/prefix")
        from airflow.sdk.io.fs import has_fs
        from fsspec.registry import known_implementations

        if scheme not in known_implementations and not has_fs(scheme):
            return Violation(field, f"unknown storage scheme {scheme!r}", "file, s3, gs, abfs, ... any fsspec protocol")
    return None


def atomic_write(destination: ObjectStoragePath, chunks: Iterable[bytes]) -> int:
    """Write ``chunks`` to ``destination`` via a temporary sibling and a rename; returns the bytes written."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.parent / f".{destination.name}{PARTIAL_MARKER}{uuid.uuid4().hex[:12]}"
    written = 0
    try:
        with partial.open("wb") as handle:  # type: ignore[no-untyped-call]
            for chunk in chunks:
                handle.write(chunk)
                written += len(chunk)
        partial.rename(destination)
    except BaseException:
        with contextlib.suppress(Exception):  # keep the original error, not a cleanup one
            partial.unlink(missing_ok=True)
        raise
    return written


def write_json(destination: ObjectStoragePath, document: Any) -> str:
    """Write a JSON document (a manifest) atomically; returns its URI."""
    import json

    atomic_write(destination, [json.dumps(document, indent=2).encode()])
    return uri_of(destination)


def copy_file(source: ObjectStoragePath, destination: ObjectStoragePath) -> int:
    """Stream one stored file to another location (any backends), atomically; returns the bytes copied."""
    with source.open("rb") as handle:  # type: ignore[no-untyped-call]
        return atomic_write(destination, iter(lambda: handle.read(1 << 20), b""))


def path_segment(text: str) -> str:
    """``text`` made safe as one folder name on every backend (run ids contain ':' and '+')."""
    return "".join(char if char.isalnum() or char in "._-" else "-" for char in text).strip("-.") or "_"


def uri_of(path: ObjectStoragePath) -> str:
    """The URI to hand to XCom and downstream tasks (``file:///...`` for local paths)."""
    text = str(path)
    return text if "://" in text else "file://" + text


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif")


def public_image_urls(prefix: str | os.PathLike[str] | ObjectStoragePath, base_url: str) -> list[str]:
    """URLs of the images under a storage folder or prefix, as served under ``base_url`` (a CDN or bucket website
    in front of that prefix). Profile training takes public URLs, not storage paths; this bridges the two."""
    from urllib.parse import quote

    folder = storage_path(prefix)
    names = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return [base_url.rstrip("/") + "/" + quote(name) for name in names]
