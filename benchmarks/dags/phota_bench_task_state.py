"""DAG for benchmark 8: a batch whose worker-side cost is measured with Airflow 3.3's task state store and without.

``MeasuredBatch`` wraps ``execute`` with CPU and wall clocks and counts the calls to ``context["task_state_store"]``;
with ``PHOTA_BENCH_HIDE_STORE=1`` it hands the engine a context without the store (what Airflow 3.2 gives). The
provider's code runs unchanged. Results go to the JSON file named by ``PHOTA_BENCH_TIMINGS``.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from airflow.sdk import DAG

from airflow_provider_phota.operators.batch import PhotaBatchOperator

ROWS = int(os.environ.get("PHOTA_BENCH_ROWS", "100"))


class CountingStore:
    """The task state store, with its calls counted."""

    def __init__(self, store: Any) -> None:
        self.store, self.calls = store, 0

    def get(self, key: str, default: Any = None) -> Any:
        self.calls += 1
        return self.store.get(key, default)

    def set(self, key: str, value: Any, **kwargs: Any) -> None:
        self.calls += 1
        self.store.set(key, value, **kwargs)


class MeasuredBatch(PhotaBatchOperator):
    def execute(self, context: Any) -> Any:
        store = None
        if os.environ.get("PHOTA_BENCH_HIDE_STORE") == "1":
            context = {key: value for key, value in context.items() if key != "task_state_store"}
        elif context.get("task_state_store") is not None:
            store = CountingStore(context["task_state_store"])
            context = {**context, "task_state_store": store}
        cpu, wall = time.process_time(), time.monotonic()
        try:
            return super().execute(context)
        finally:
            figures = {"cpu": time.process_time() - cpu, "wall": time.monotonic() - wall}
            figures["store_calls"] = store.calls if store else 0
            with open(os.environ["PHOTA_BENCH_TIMINGS"], "w") as handle:
                json.dump(figures, handle)


with DAG("phota_bench_task_state", schedule=None, catchup=False) as dag:
    MeasuredBatch(
        task_id="render",
        endpoint="generate",
        requests=[{"prompt": f"a lighthouse, take {n}"} for n in range(ROWS)],
        output_path=os.environ.get("PHOTA_BENCH_OUTPUT", "/tmp/phota-bench-task-state"),
        max_in_flight=ROWS,
        deferrable=False,
        poll_interval=0.5,
    )
