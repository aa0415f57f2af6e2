"""The documentation's snippets are DAG files of their own bundle, so ``dag.test()`` can run them."""

from __future__ import annotations

import json
import os

from docs_helpers import BUNDLE, SNIPPETS

# tests/conftest.py declares the other bundles in the environment; the snippets' is added beside them.
_bundles = json.loads(os.environ.get("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", "[]"))
if BUNDLE not in {bundle["name"] for bundle in _bundles}:
    _bundles.append(
        {
            "name": BUNDLE,
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(SNIPPETS)},
        }
    )
    os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps(_bundles)
