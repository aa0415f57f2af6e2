"""The request side of the engine: resolving and checking a studio request, and its idempotency keys.

Every check runs before anything is paid for and names the field (and, for a batch, the row). The keys are stable:
the same DAG run, task, map index, row and request always give the same ``client_request_id``, so a retried or
cleared task gets its original job back instead of paying for another (api-decisions D4).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_phota import contract
from airflow_provider_phota._compat import Context
from airflow_provider_phota.contract import IMAGE_FORMATS, Endpoint, Violation, base64_head, image_format
from airflow_provider_phota.storage import storage_path, validate_storage_uri

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

LIST_FIELDS = frozenset({"images", "profile_ids"})  # may arrive as a rendered string from a template
PROMPT_REQUIRED = frozenset({Endpoint.EDIT, Endpoint.GENERATE})
DEFAULT_NUM_OUTPUT_IMAGES = 1  # sent even when not given: the remix guide marks it required
_BASE64_PATTERN = re.compile(r"[A-Za-z0-9+/\s]+={0,2}")
_KEY_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def stable_client_request_id(context: Context, endpoint: Endpoint | str, body: Mapping[str, Any]) -> str:
    """The async idempotency key: the same DAG run, task, map index and request always give the same key.

    A retried or cleared task therefore resubmits with the key of its first try and the service returns the
    original job, never a second charge (api-decisions D4). A changed request (another prompt) gives a new key.
    """
    ti = context["ti"]
    identity = [ti.dag_id, ti.run_id, ti.task_id, getattr(ti, "map_index", -1), str(Endpoint(endpoint)), body]
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()
    readable = _KEY_SAFE.sub("-", ti.task_id)[:48]
    return f"af:{readable}:{digest[:48]}"


def derived_client_request_id(client_request_id: str, failed_job_id: str) -> str:
    """The key of the job that replaces ``failed_job_id``, which ``client_request_id`` returned FAILED.

    Resubmitting the same key would return the same FAILED job forever. The new key is derived from both, so it is
    as stable as the first one: every later try of the task walks the same chain of keys (key, then the key after
    its failed job, ...) and reattaches to the first job that did not fail instead of paying for another.
    """
    digest = hashlib.sha256(f"{client_request_id}\x00{failed_job_id}".encode()).hexdigest()
    readable = _KEY_SAFE.sub("-", client_request_id.removeprefix("af:").split(":")[0])[:48] or "job"
    return f"af:{readable}:{digest[:48]}"


def _looks_like_base64(value: str) -> bool:
    return len(value) >= 16 and _BASE64_PATTERN.fullmatch(value) is not None and base64_head(value) is not None


def classify_image(field: str, value: Any) -> tuple[str, Any] | Violation:
    """``("url"|"base64"|"path", value)`` for an image argument, or a violation naming the field.

    Accepted: an http(s) URL, a base64 string, an ``ObjectStoragePath``, a storage URI (``s3://...``,
    ``file://...``) whose filesystem is installed, or a local file path.
    """
    allowed = "an http(s) URL, a base64 image, a local file path or a storage URI (file://, s3://, ...)"
    if hasattr(value, "protocol") and hasattr(value, "read_bytes"):  # an ObjectStoragePath
        return ("path", value)
    if not isinstance(value, str) or not value.strip():
        return Violation(field, f"{value!r} is not an image reference", allowed)
    text = value.strip()
    if text.startswith(("http://", "https://")):
        return (
            ("url", text) if contract.is_http_url(text) else Violation(field, f"{text!r} is a malformed URL", allowed)
        )
    if "://" in text[:24]:
        return validate_storage_uri(field, text) or ("path", storage_path(text))
    if len(text) < 4096 and (text.startswith(("/", "~", "./", "../")) or os.path.exists(text)):
        return ("path", storage_path(text))
    if _looks_like_base64(text):
        return ("base64", text)
    return Violation(field, f"{text[:60]!r} is not a URL, a base64 image or an existing file", allowed)


def resolve_images(endpoint: Endpoint, options: Mapping[str, Any], problems: list[Violation]) -> dict[str, Any]:
    """``options`` with the image fields of ``endpoint`` replaced by what the API takes: URLs and base64 as given,
    files read and encoded. What is wrong is appended to ``problems``, naming the field (``images[1]``...)."""
    resolved = dict(options)
    for name in contract.IMAGE_FIELDS[endpoint]:
        value = options.get(name)
        if value is None:
            continue
        if name != "images":
            resolved[name] = _resolve_image(name, value, problems)
        elif isinstance(value, list):  # list arguments are normalised by the caller
            resolved[name] = [_resolve_image(f"images[{i}]", item, problems) for i, item in enumerate(value)]
        else:
            problems.append(Violation("images", f"must be a list, got {type(value).__name__}", "a list of images"))
    return resolved


def _resolve_image(field: str, value: Any, problems: list[Violation]) -> Any:
    kind = classify_image(field, value)
    if isinstance(kind, Violation):
        problems.append(kind)
        return value
    category, reference = kind
    if category in ("url", "base64"):
        return reference  # the service fetches a URL; the contract checks that base64 is an image
    return _read_image(field, reference, problems)


def _read_image(field: str, path: ObjectStoragePath, problems: list[Violation]) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        problems.append(Violation(field, f"{path} does not exist", "an existing file"))
        return ""
    except (OSError, ValueError) as error:
        problems.append(Violation(field, f"{path} cannot be read: {error}", "a readable file"))
        return ""
    if image_format(data[:16]) is None:
        problems.append(Violation(field, f"{path} is not an image", IMAGE_FORMATS))
    return base64.b64encode(data).decode("ascii")


def missing_prompt(endpoint: Endpoint, prompt: Any) -> list[Violation]:
    """The violation of an endpoint that needs a prompt (``/edit``, ``/generate``) given none or an empty one."""
    if prompt is not None and not (isinstance(prompt, str) and not prompt.strip()):
        return []
    message = "is required" if prompt is None else "is empty"
    return [Violation("prompt", message, f"a non-empty prompt: /{endpoint.value} needs one")]
