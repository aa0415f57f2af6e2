"""Airflow names that moved between versions, resolved lazily, in one place.

Almost everything comes from ``apache-airflow-providers-common-compat``'s ``sdk`` module, as in the Apache
providers: it maps each name to ``airflow.sdk`` on Airflow 3 and to its Airflow 2 home (``Asset`` becomes
``Dataset`` there). What it does not cover is listed in ``_OWN_LOCATIONS`` with the version that moved it.

Names are imported on first use, so a DAG file that imports the operators does not pay for what only a
triggerer or a running task needs (``airflow.triggers.base`` alone costs about 17 ms).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import (
        Asset,
        BaseHook,
        BaseOperator,
        BaseSensorOperator,
        Context,
        ObjectStoragePath,
        PokeReturnValue,
    )
    from airflow.sdk._shared.observability.metrics.stats import Stats
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
    )
    from airflow.triggers.base import BaseTrigger, TriggerEvent

_COMMON_COMPAT_SDK = "airflow.providers.common.compat.sdk"

# Names common-compat does not map. ``airflow.triggers.base`` has not moved up to Airflow 3.3.
_OWN_LOCATIONS: dict[str, str] = {
    "BaseTrigger": "airflow.triggers.base",
    "TriggerEvent": "airflow.triggers.base",
}

__all__ = [
    "AirflowException",
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "Asset",
    "BaseHook",
    "BaseOperator",
    "BaseSensorOperator",
    "BaseTrigger",
    "Context",
    "ObjectStoragePath",
    "PokeReturnValue",
    "Stats",  # common-compat: airflow.sdk.observability.stats (3.2+), airflow.observability.stats, airflow.stats (2.x)
    "TaskDeferred",
    "TriggerEvent",
]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_OWN_LOCATIONS.get(name, _COMMON_COMPAT_SDK)), name)
    globals()[name] = value  # resolved once
    return value
