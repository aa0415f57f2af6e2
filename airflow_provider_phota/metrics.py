"""Airflow metrics of the Phota provider, sent through Airflow's own ``Stats`` (StatsD, Datadog or OpenTelemetry,
whichever the deployment configured under ``[metrics]``; nothing is sent where none is).

=============================  ========================================  ===============================
metric                         counts                                    tags
=============================  ========================================  ===============================
``phota.images_produced``      output images a task received             ``endpoint``, ``base_model``
``phota.profiles_trained``     trainings paid for (a reuse is not one)   ``training_tier``
``phota.cost_usd_micros``      known cost in millionths of a dollar      ``endpoint``, ``base_model``
``phota.request_retries``      retried API calls and downloads           ``endpoint``, ``base_model``
``phota.rate_limited``         429 answers                               ``endpoint``, ``base_model``
=============================  ========================================  ===============================

StatsD counters are integers, hence the cost in micro-dollars (``$0.45`` adds 450000). ``endpoint`` is the API
operation (``edit``, ``generate``, ``enhance``, ``remix``, ``jobs``, ``profiles_add``, ``profile_status``,
``download``...), never an id, so the tag's values stay few; ``base_model`` is set on the studio endpoints
(``/enhance`` and ``/remix`` always run ``nb2``). A metric that cannot be sent never fails a task.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from airflow_provider_phota import _compat, contract

IMAGES_PRODUCED = "phota.images_produced"
PROFILES_TRAINED = "phota.profiles_trained"
COST_USD_MICROS = "phota.cost_usd_micros"
REQUEST_RETRIES = "phota.request_retries"
RATE_LIMITED = "phota.rate_limited"

_STUDIO = frozenset(endpoint.value for endpoint in contract.Endpoint)
_FIXED_MODEL = {contract.Endpoint.ENHANCE.value, contract.Endpoint.REMIX.value}  # Nano Banana 2 only [BM]
log = logging.getLogger(__name__)


def incr(stat: str, count: int = 1, tags: Mapping[str, str] | None = None) -> None:
    """``Stats.incr``; an error of the metrics backend is logged, never raised."""
    try:
        _compat.Stats.incr(stat, count, tags=dict(tags or {}))
    except Exception:  # a metrics backend must not fail a paid task
        log.debug("Could not send metric %s", stat, exc_info=True)


def studio_tags(endpoint: str, body: Mapping[str, Any] | None) -> dict[str, str]:
    """``endpoint`` and (for the studio endpoints) ``base_model`` of a request."""
    tags = {"endpoint": endpoint}
    if endpoint in _FIXED_MODEL:
        tags["base_model"] = contract.DEFAULT_BASE_MODEL
    elif endpoint in _STUDIO:
        tags["base_model"] = str((body or {}).get("base_model") or contract.DEFAULT_BASE_MODEL)
    return tags


def request_tags(request: contract.ApiRequest) -> dict[str, str]:
    """The tags of an API request (or of a download: a path outside the API)."""
    if not request.path.startswith(contract.API_PREFIX + "/"):
        return {"endpoint": "download"}
    parts = request.path.removeprefix(contract.API_PREFIX + "/").split("/")
    if parts[0] != "profiles":
        return studio_tags(parts[0], request.json)
    if len(parts) == 2 and parts[1] in ("add", "ids"):
        return {"endpoint": f"profiles_{parts[1]}"}
    if len(parts) == 3:
        return {"endpoint": f"profile_{parts[2]}"}
    return {"endpoint": "profile_delete" if request.method == "DELETE" else "profiles"}


def record_images(endpoint: str, body: Mapping[str, Any], count: int, cost_usd: Decimal | None) -> None:
    """What an image task received: its images and (when known) their cost; a FAILED job has no images and is
    counted at its charge."""
    tags = studio_tags(endpoint, body)
    if count:
        incr(IMAGES_PRODUCED, count, tags)
    if cost_usd is not None:
        incr(COST_USD_MICROS, int(cost_usd * 1_000_000), tags)


def record_training(training_tier: str, cost_usd: Decimal | None) -> None:
    """A training paid for."""
    incr(PROFILES_TRAINED, 1, {"training_tier": training_tier})
    if cost_usd is not None:
        incr(COST_USD_MICROS, int(cost_usd * 1_000_000), {"endpoint": "profiles_add"})
