"""Reading and writing images in Airflow object storage, atomically: public helpers for DAGs and the operators.

Everything goes through Airflow's ``ObjectStoragePath``, so ``file://``, ``s3://conn_id@bucket/prefix`` and every
other scheme with an Airflow filesystem work the same way. A file is written under a hidden temporary name and
renamed into place only once complete, so a crash or a failed download never leaves a half-written image at the
final name (on object stores the rename is a server-side copy, still never a partial object).

The public helpers (:data:`__all__`):

* :func:`storage_path`: a path object for a URI or a local path;
* :func:`uri_of`: the URI to hand to XCom and downstream tasks;
* :func:`path_segment`: text made safe as one folder name (run ids contain ``:`` and ``+``);
* :func:`public_image_urls`: the public URLs of the images under a prefix (profile training takes URLs);
* :func:`atomic_write`, :func:`copy_file`, :func:`write_json`: write, copy and write a manifest, atomically.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow_provider_phota._compat import ObjectStoragePath
from airflow_provider_phota.contract import Violation

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

__all__ = [
    "atomic_write",
    "copy_file",
    "path_segment",
    "public_image_urls",
    "storage_path",
    "uri_of",
    "write_json",
]

PARTIAL_MARKER = ".partial-"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif")
STORAGE_LOCATIONS = "a local path or a URI such as file:///data/out or s3://conn_id@bucket/prefix"
INSTALLED_SCHEMES = (
    "file://, or a scheme whose Airflow filesystem is installed (s3:// needs apache-airflow-providers-amazon "
    "with s3fs, gs:// apache-airflow-providers-google with gcsfs)"
)
_LOCAL_PROTOCOLS = ("file", "local")


def storage_path(location: str | os.PathLike[str] | ObjectStoragePath) -> ObjectStoragePath:
    """An ``ObjectStoragePath`` for ``location``.

    :param location: a URI (``s3://aws_default@bucket/prefix``, ``file:///data``), a local path (made absolute,
        ``~`` expanded) or an ``ObjectStoragePath`` (returned as it is).
    """

    if isinstance(location, ObjectStoragePath):
        return location
    text = os.fspath(location)
    if "://" not in text:
        text = "file://" + os.path.abspath(os.path.expanduser(text))
    return ObjectStoragePath(text)


def _is_storage_path(location: object) -> bool:
    return hasattr(location, "protocol") and hasattr(location, "fs")  # an ObjectStoragePath


def validate_storage_uri(field: str, location: object) -> Violation | None:
    """What is wrong with ``location`` as a storage location, naming ``field``; ``None`` when it can be one.

    Besides the syntax, the scheme's filesystem must be installed in this Airflow: ``s3://`` without the Amazon
    provider and s3fs is refused here, before anything is paid for, not when the first file is written.
    """
    if _is_storage_path(location):
        return _filesystem_problem(field, location)
    if not isinstance(location, str | os.PathLike) or not os.fspath(location).strip():
        return Violation(field, f"{location!r} is not a storage location", STORAGE_LOCATIONS)
    text = os.fspath(location)
    if "://" not in text:
        return None  # a local path
    scheme, _, rest = text.partition("://")
    if not scheme.replace("+", "").replace("-", "").isalnum() or not rest.strip("/"):
        return Violation(field, f"{text!r} is not a valid URI", "scheme://[conn_id@]bucket/prefix")
    return _filesystem_problem(field, text)


def _filesystem_problem(field: str, location: Any) -> Violation | None:
    try:
        storage_path(location).fs  # noqa: B018 - resolving the filesystem is the check
    except Exception as error:  # ValueError (no filesystem registered), ImportError (s3fs missing), ...
        scheme = getattr(location, "protocol", None) or str(location).partition("://")[0]
        reason = str(error) or type(error).__name__
        return Violation(field, f"no filesystem for {scheme}:// is installed here ({reason})", INSTALLED_SCHEMES)
    return None


def validate_output_folder(field: str, location: object) -> Violation | None:
    """What would stop the outputs from being written under ``location``; ``None`` when nothing is known to.

    On top of :func:`validate_storage_uri`, a local folder must be creatable and writable: not a regular file, not
    under one, and the nearest existing folder writable by this process. Remote stores are checked by resolving
    their filesystem only: that needs no request and no permission.
    """

    problem = validate_storage_uri(field, location)
    if problem is not None:
        return problem
    path = storage_path(location)  # type: ignore[arg-type]  # a path, a URI or an ObjectStoragePath: checked above
    if path.protocol not in _LOCAL_PROTOCOLS:
        return None
    folder = os.path.abspath(path.path)
    existing = folder
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    allowed = "a folder that exists or can be created, and that the worker can write to"
    if not os.path.isdir(existing):
        where = "is a regular file" if existing == folder else f"is under {existing}, a regular file"
        return Violation(field, f"{folder} {where}", allowed)
    if not os.access(existing, os.W_OK | os.X_OK):
        return Violation(field, f"{existing} is not writable by this worker", allowed)
    return None


def atomic_write(destination: ObjectStoragePath, chunks: Iterable[bytes]) -> int:
    """Write ``chunks`` to ``destination`` through a temporary sibling and a rename; returns the bytes written.

    The parent folder is created when missing. If anything fails midway, the temporary file is removed and the
    error raised: ``destination`` is either complete or untouched.

    :param destination: the final path.
    :param chunks: the content, in pieces (a generator keeps memory flat).
    """
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
    """Write ``document`` as indented JSON (a manifest), atomically; returns its URI.

    :param destination: the file to write.
    :param document: anything ``json.dumps`` accepts.
    """
    atomic_write(destination, [json.dumps(document, indent=2).encode()])
    return uri_of(destination)


def copy_file(source: ObjectStoragePath, destination: ObjectStoragePath) -> int:
    """Stream one stored file to another location (across backends too), atomically; returns the bytes copied.

    :param source: the file to copy.
    :param destination: where the copy goes; its folder is created when missing.
    """
    with source.open("rb") as handle:  # type: ignore[no-untyped-call]
        return atomic_write(destination, iter(lambda: handle.read(1 << 20), b""))


def path_segment(text: str) -> str:
    """``text`` made safe as one folder name on every backend: characters other than letters, digits, ``.``,
    ``_`` and ``-`` become ``-`` (run ids contain ``:`` and ``+``). Register it as a Jinja filter to use it in
    templated paths: ``user_defined_filters={"path_segment": path_segment}``.

    :param text: any text, e.g. a run id.
    """
    return "".join(char if char.isalnum() or char in "._-" else "-" for char in text).strip("-.") or "_"


def uri_of(path: ObjectStoragePath) -> str:
    """The URI of ``path`` to hand to XCom and downstream tasks (``file:///...`` for local paths).

    :param path: a storage path.
    """
    text = str(path)
    return text if "://" in text else "file://" + text


def public_image_urls(prefix: str | os.PathLike[str] | ObjectStoragePath, base_url: str) -> list[str]:
    """The URLs of the images directly under a storage folder or prefix, as served under ``base_url``, sorted by
    name. Profile training takes public URLs, not storage paths; this bridges the two.

    :param prefix: the folder or prefix holding the photos (``.jpg``, ``.jpeg``, ``.png``, ``.webp``, ``.heic``,
        ``.heif``; other files are ignored).
    :param base_url: the public URL under which that prefix is served (a CDN or a bucket website).
    """
    folder = storage_path(prefix)
    names = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return [base_url.rstrip("/") + "/" + quote(name) for name in names]
