"""OpenLineage for the Phota operators: what a task read, what it wrote, and a ``phota`` run facet.

The operators note, while they run, the datasets of their inputs and outputs and the facts of the run
(:class:`LineageRecord`); the OpenLineage provider, when it is installed and enabled, asks for them after the task
(``get_openlineage_facets_on_complete``) and only then is OpenLineage imported. Without the provider nothing of
this module's OpenLineage half is ever imported.

Dataset names follow the conventions of the OpenLineage provider and the storage providers:

* ``file:///data/a.png`` -> namespace ``file``, name ``/data/a.png``; ``s3://bucket/key`` -> ``s3://bucket``,
  ``key``; ``gs://bucket/key`` -> ``gs://bucket``, ``key``; another scheme -> ``<scheme>://<host>``, the path.
  A connection id in a storage URI (``s3://aws_default@bucket/key``) is not part of the name.
* An http(s) URL -> ``https://<host>[:port]``, the path, without its query string, fragment or user info: a signed
  CDN URL's token, or a presigned URL's signature, never reaches a lineage backend.
* A base64 input -> namespace ``base64``, name ``sha256:<hex digest of the decoded image>``; never the bytes.
* A profile -> namespace ``phota://<API host>``, name ``profiles/<profile_id>``: the create task's output and the
  input of every task that uses the identity, so a lineage graph links photos -> profile -> images.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_phota.storage import uri_of

Dataset = tuple[str, str]  # (namespace, name)
RUN_FACET = "phota"


@dataclass
class LineageRecord:
    """What one task read and wrote, and the ``phota`` run facet's fields (camelCase, as OpenLineage facets).

    Profiles are kept as ids: their namespace needs the connection's host, which is read only when OpenLineage
    asks (a lineage problem never fails a task)."""

    inputs: list[Dataset] = field(default_factory=list)
    outputs: list[Dataset] = field(default_factory=list)
    run: dict[str, Any] = field(default_factory=dict)
    profiles_used: list[str] = field(default_factory=list)
    profiles_made: list[str] = field(default_factory=list)
    profiles_deleted: list[str] = field(default_factory=list)


def url_dataset(url: str) -> Dataset:
    """An http(s) URL without its query, fragment and user info."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{host}:{parts.port}" if parts.port else host
    return f"{parts.scheme.lower()}://{netloc}", parts.path or "/"


def storage_dataset(uri: str) -> Dataset:
    """A storage URI (``file://``, ``s3://``, ``gs://``...) as the storage providers name it in OpenLineage."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return url_dataset(uri)
    if scheme in ("", "file", "local"):
        return "file", parts.path if scheme else uri
    bucket = parts.netloc.rpartition("@")[2]  # s3://conn_id@bucket/key: the connection id is no part of the name
    return f"{scheme}://{bucket}", parts.path.lstrip("/") or "/"


def base64_dataset(value: str) -> Dataset:
    """An inline image by the SHA-256 of its decoded bytes (of the text itself, if it does not decode)."""
    try:
        data = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        data = value.encode()
    return "base64", f"sha256:{hashlib.sha256(data).hexdigest()}"


def profile_dataset(base_url: str, profile_id: str) -> Dataset:
    """A Phota profile of the account behind ``base_url``."""
    return f"phota://{url_dataset(base_url)[0].split('://', 1)[1]}", f"profiles/{profile_id}"


def image_input_dataset(kind: str, value: Any) -> Dataset:
    """The dataset of an image argument classified as ``url``, ``base64`` or ``path`` (an ObjectStoragePath)."""
    if kind == "url":
        return url_dataset(str(value))
    if kind == "base64":
        return base64_dataset(str(value))
    return storage_dataset(uri_of(value))


# --- the OpenLineage half: imported only when the OpenLineage provider asks ----------------------------------------


@cache
def _run_facet_class() -> type:
    import attr
    from airflow.providers.common.compat.openlineage.facet import RunFacet

    @attr.define
    class PhotaRunFacet(RunFacet):
        """The ``phota`` run facet: endpoint, base model, counts (of a batch: its rows too), job and request ids,
        cost (unset fields: None, left out of the event)."""

        endpoint: str
        baseModel: str | None = None  # OpenLineage facets are camelCase
        outputCount: int | None = None
        identityOutputs: int | None = None
        knownSubjects: dict[str, int] | None = None
        jobId: str | None = None
        clientRequestId: str | None = None
        requestId: str | None = None
        profileId: str | None = None
        trainingTier: str | None = None
        photoCount: int | None = None
        reused: bool | None = None
        costUsd: float | None = None
        costBasis: str | None = None
        rowCount: int | None = None  # a batch's rows: all, those whose outputs are written, those that failed
        succeededRows: int | None = None
        failedRows: int | None = None

    return PhotaRunFacet


def operator_lineage(record: LineageRecord | None, base_url: str) -> Any:
    """The ``OperatorLineage`` of ``record`` (empty when the task noted nothing, e.g. it failed before its call);
    ``base_url`` is the API origin of the task's connection, the namespace of its profiles."""
    from airflow.providers.common.compat.openlineage.facet import (
        InputDataset,
        LifecycleStateChange,
        LifecycleStateChangeDatasetFacet,
        OutputDataset,
    )
    from airflow.providers.openlineage.extractors import OperatorLineage

    if record is None:
        return OperatorLineage()

    def profiles(ids: list[str]) -> list[Dataset]:
        return [profile_dataset(base_url, profile_id) for profile_id in ids]

    drop: dict[str, Any] = {
        "lifecycleStateChange": LifecycleStateChangeDatasetFacet(lifecycleStateChange=LifecycleStateChange.DROP)
    }
    inputs = dict.fromkeys([*record.inputs, *profiles(record.profiles_used)])
    outputs = dict.fromkeys([*record.outputs, *profiles(record.profiles_made)])
    return OperatorLineage(
        inputs=[InputDataset(namespace=ns, name=name) for ns, name in inputs],
        outputs=[OutputDataset(namespace=ns, name=name) for ns, name in outputs]
        + [OutputDataset(namespace=ns, name=name, facets=drop) for ns, name in profiles(record.profiles_deleted)],
        run_facets={RUN_FACET: _run_facet_class()(**record.run)},
    )


def run_facts(**facts: Any) -> dict[str, Any]:
    """The run facet's fields without the unset ones."""
    return {name: value for name, value in facts.items() if value is not None}


def image_run_facts(summary: Mapping[str, Any], base_model: str | None, with_identity: int) -> dict[str, Any]:
    """The ``phota`` run facet of an image task, from its XCom result."""
    return run_facts(
        endpoint=summary["endpoint"],
        baseModel=base_model,
        outputCount=summary["count"],
        identityOutputs=with_identity,
        knownSubjects=dict(summary["known_subjects"]),
        jobId=summary["job_id"],
        clientRequestId=summary["client_request_id"],
        requestId=summary["request_id"],
        costUsd=summary["cost_usd"],
        costBasis=summary["cost_basis"],
    )
