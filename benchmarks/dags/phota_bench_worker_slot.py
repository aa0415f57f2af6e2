"""DAG for benchmark 5: a deferrable async /generate job, with the operator's worker-side work timed.

``TimedGenerate`` only wraps ``execute`` and ``execute_complete`` with clocks and appends each phase's start and
end to the JSON-lines file named by ``PHOTA_BENCH_TIMINGS``; the provider's code runs unchanged.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from airflow.sdk import DAG

from airflow_provider_phota.operators.images import PhotaGenerateOperator


def _record(phase: str, started: float) -> None:
    path = os.environ.get("PHOTA_BENCH_TIMINGS")
    if path:
        with open(path, "a") as handle:
            handle.write(json.dumps({"phase": phase, "start": started, "end": time.monotonic()}) + "\n")


class TimedGenerate(PhotaGenerateOperator):
    """PhotaGenerateOperator with the time each worker-side phase takes recorded."""

    def execute(self, context: Any) -> Any:
        started = time.monotonic()
        try:
            return super().execute(context)
        finally:  # a deferral leaves through TaskDeferred: the worker slot is free from here
            _record("execute", started)

    def execute_complete(self, context: Any, event: Any = None, **kwargs: Any) -> Any:
        started = time.monotonic()
        try:
            return super().execute_complete(context, event, **kwargs)
        finally:
            _record("execute_complete", started)


with DAG("phota_bench_worker_slot", schedule=None, catchup=False) as dag:
    TimedGenerate(
        task_id="generate",
        prompt="a lighthouse in a storm",
        deferrable=True,  # the point of the benchmark; the default follows [operators] default_deferrable
        poll_interval=1.0,
        output_path=os.environ.get("PHOTA_BENCH_OUTPUT", "/tmp/phota-bench-worker-slot"),
    )
