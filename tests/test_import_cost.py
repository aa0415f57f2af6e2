"""What a DAG file pays for importing the provider: no HTTP client, no aiohttp, no Pillow, no trigger machinery."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = """
import json, sys
from airflow.sdk import DAG, BaseOperator, BaseSensorOperator, BaseHook
before = set(sys.modules)
from airflow_provider_phota.operators.images import PhotaEditOperator, PhotaGenerateOperator
from airflow_provider_phota.operators.images import PhotaEnhanceOperator, PhotaRemixOperator
from airflow_provider_phota.operators.profile import PhotaCreateProfileOperator, PhotaDeleteProfileOperator
from airflow_provider_phota.sensors.phota import ProfileReadySensor
from airflow_provider_phota.operators.batch import PhotaBatchOperator
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_operators_and_sensor_import_nothing_heavy_at_parse_time() -> None:
    env = {**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    output = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True)
    added = json.loads(output.stdout.strip().splitlines()[-1])

    assert any(name.startswith("airflow_provider_phota.operators") for name in added)  # the probe measured something
    for heavy in ("requests", "urllib3", "aiohttp", "PIL", "airflow.triggers.base"):
        assert heavy not in added, f"{heavy} is imported at DAG-parse time"
    assert not [name for name in added if name.startswith("airflow_provider_phota.hooks")]
    # The OpenLineage provider is imported when a task ends, never when a DAG file is parsed. (The provider's own
    # lineage, pricing and metrics modules are cheap, standard library only, and imported at the top.)
    for module in ("openlineage", "airflow.providers.openlineage"):
        assert not [name for name in added if name == module or name.startswith(module + ".")], module


def test_compat_names_all_resolve() -> None:
    from airflow_provider_phota import _compat

    for name in _compat.__all__:
        assert getattr(_compat, name) is not None
    # common-compat resolves to the current Airflow's own classes, not copies
    from airflow.sdk import BaseOperator
    from airflow.sdk.exceptions import AirflowFailException

    assert _compat.BaseOperator is BaseOperator
    assert _compat.AirflowFailException is AirflowFailException
