"""Airflow imports that differ between versions, in one place.

The provider targets Airflow 3 (``airflow.sdk``). Supporting an older Airflow later means adding the fallback
paths here and nowhere else.
"""

from __future__ import annotations

from airflow.sdk import (
    Asset,
    BaseHook,
    BaseOperator,
    BaseOperatorLink,
    BaseSensorOperator,
    Context,
    Metadata,
    ObjectStoragePath,
    PokeReturnValue,
    conf,
)
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowNotFoundException,
    AirflowSkipException,
    TaskDeferred,
)
from airflow.triggers.base import BaseTrigger, TriggerEvent

try:  # Airflow 3.1+
    from airflow.sdk.exceptions import AirflowSensorTimeout
except ImportError:  # pragma: no cover - older 3.0 layout
    from airflow.exceptions import AirflowSensorTimeout  # type: ignore[no-redef,attr-defined,unused-ignore]

__all__ = [
    "AirflowException",
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "Asset",
    "BaseHook",
    "BaseOperator",
    "BaseOperatorLink",
    "BaseSensorOperator",
    "BaseTrigger",
    "Context",
    "Metadata",
    "ObjectStoragePath",
    "PokeReturnValue",
    "TaskDeferred",
    "TriggerEvent",
    "conf",
]
