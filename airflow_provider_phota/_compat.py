"""Airflow imports that differ between versions, in one place, resolved lazily.

The provider targets Airflow 3 (``airflow.sdk``); supporting an older Airflow means adding fallback paths to
``_LOCATIONS`` and nothing else. Names are imported on first use, so a DAG file that imports the operators does
not pay for what only a triggerer or a running task needs (``airflow.triggers.base`` alone costs ~17 ms).
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
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
    )
    from airflow.triggers.base import BaseTrigger, TriggerEvent

# name -> modules to try, newest first
_LOCATIONS: dict[str, tuple[str, ...]] = {
    "Asset": ("airflow.sdk",),
    "BaseHook": ("airflow.sdk",),
    "BaseOperator": ("airflow.sdk",),
    "BaseSensorOperator": ("airflow.sdk",),
    "Context": ("airflow.sdk",),
    "ObjectStoragePath": ("airflow.sdk",),
    "PokeReturnValue": ("airflow.sdk",),
    "AirflowException": ("airflow.sdk.exceptions",),
    "AirflowFailException": ("airflow.sdk.exceptions",),
    "AirflowNotFoundException": ("airflow.sdk.exceptions",),
    "AirflowSensorTimeout": ("airflow.sdk.exceptions", "airflow.exceptions"),
    "AirflowSkipException": ("airflow.sdk.exceptions",),
    "TaskDeferred": ("airflow.sdk.exceptions", "airflow.exceptions"),
    "BaseTrigger": ("airflow.triggers.base",),
    "TriggerEvent": ("airflow.triggers.base",),
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
    "TaskDeferred",
    "TriggerEvent",
]


def __getattr__(name: str) -> Any:
    if name not in _LOCATIONS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    for module_name in _LOCATIONS[name]:
        value = getattr(importlib.import_module(module_name), name, None)
        if value is not None:
            globals()[name] = value  # resolved once
            return value
    raise ImportError(f"{name} is not available in this Airflow version (looked in {_LOCATIONS[name]})")
