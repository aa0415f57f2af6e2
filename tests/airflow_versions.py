"""What the tests need to know about the Airflow they run on (scripts/test-matrix runs them on 2.11 to 3.3).

The provider's own names come from ``airflow_provider_phota._compat``; this module holds only what the tests use
beyond them, with the version that moved each name.
"""

from __future__ import annotations

import importlib.metadata

from packaging.version import Version

AIRFLOW_VERSION = Version(importlib.metadata.version("apache-airflow"))
AIRFLOW_2 = AIRFLOW_VERSION.major < 3

if Version("3.2") <= AIRFLOW_VERSION:
    from airflow.sdk.exceptions import AirflowRescheduleException
else:  # airflow.sdk.exceptions has it from 3.2
    from airflow.exceptions import AirflowRescheduleException  # type: ignore[no-redef,attr-defined,unused-ignore]

__all__ = ["AIRFLOW_2", "AIRFLOW_VERSION", "AirflowRescheduleException"]
