"""Benchmark 8: what keeping job ids and spend in Airflow 3.3's task state store costs a batch task.

The journal is read once per task process and written once per wave; the first version wrote four to eight store
calls per job, and this benchmark measured it at 7.7x the task CPU of a batch without the store.

``dag.test()`` runs ``benchmarks/dags/phota_bench_task_state.py`` (a non-deferrable batch of ``ROWS`` rows, one
wave, outputs written to storage) against the emulator (its own process), alternately with the store and with the
store hidden from the engine (what Airflow 3.2 and older give). Each run is a fresh process. The task's CPU time
includes the store's handling, because ``dag.test()`` serves the execution API in the same process; on a real
deployment each store call is a round trip from the worker to the API server instead, so the wall time per call
there is the network's, not this figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from benchmarks._common import (
    Row,
    child_env,
    emulator,
    ensure_airflow_env,
    median_spread,
    phota_connection,
    run_bench_dag,
    run_child,
    verdict,
    write_rows,
)

ROWS = 100
JOB_SECONDS = 1.0
PAIRS = 3
GOAL = 1.25  # the store may add at most a quarter to the task's CPU


def child(args: argparse.Namespace) -> None:
    run = run_bench_dag("phota_bench_task_state", reset_db=args.reset_db)
    figures = json.loads(Path(os.environ["PHOTA_BENCH_TIMINGS"]).read_text())
    Path(args.out).write_text(json.dumps({"state": str(getattr(run, "state", "")), **figures}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--reset-db", action="store_true")
    parser.add_argument("--pairs", type=int, default=PAIRS)
    parser.add_argument("--log-dir", default=None)
    args = parser.parse_args()
    ensure_airflow_env()
    if args.child:
        child(args)
        return
    log_dir = Path(args.log_dir) if args.log_dir else None
    runs: dict[str, list[dict[str, Any]]] = {"store": [], "hidden": []}
    emu_log = log_dir / "task_state-emulator.log" if log_dir else None
    with emulator(job_seconds=JOB_SECONDS, log_path=emu_log) as (base_url, _pid):
        for pair in range(args.pairs):
            for kind in ("store", "hidden") if pair % 2 == 0 else ("hidden", "store"):
                work = Path(tempfile.mkdtemp(prefix="phota-bench-state-"))
                env = child_env(
                    AIRFLOW_CONN_PHOTA_DEFAULT=phota_connection(base_url),
                    AIRFLOW__CORE__UNIT_TEST_MODE="True",
                    PHOTA_BENCH_TIMINGS=str(work / "timings.json"),
                    PHOTA_BENCH_OUTPUT=str(work / "out"),
                    PHOTA_BENCH_ROWS=str(ROWS),
                    PHOTA_BENCH_HIDE_STORE="1" if kind == "hidden" else "0",
                )
                extra = ["--reset-db"] if not (runs["store"] or runs["hidden"]) else []
                log_path = log_dir / "task_state-children.log" if log_dir else None
                result = run_child("task_state_cost", "--child", *extra, env=env, log_path=log_path)
                written = len(list((work / "out").glob("*.png"))) if (work / "out").exists() else 0
                if written != ROWS:
                    raise RuntimeError(f"the batch wrote {written} of {ROWS} images: {result}")
                runs[kind].append(result)
    ratios = [s["cpu"] / h["cpu"] for s, h in zip(runs["store"], runs["hidden"], strict=True)]
    calls = [run["store_calls"] / ROWS for run in runs["store"]]
    extra_ms = [
        (s["cpu"] - h["cpu"]) / max(1, s["store_calls"]) * 1000
        for s, h in zip(runs["store"], runs["hidden"], strict=True)
    ]
    rows = [
        Row(
            f"8. Task state store (Airflow 3.3): a {ROWS}-row batch ({JOB_SECONDS:.0f} s emulator jobs, one wave), "
            "task CPU with the store / with it hidden",
            f"{median_spread(ratios)}x",
            f"<= {GOAL}x",
            f"store hidden (Airflow 3.2 behaviour): {median_spread([r['cpu'] for r in runs['hidden']])} CPU-s",
            verdict(statistics.median(ratios) <= GOAL),
            [
                f"store calls per job on a first try: {median_spread(calls, '{:.2f}')} "
                f"({median_spread([r['store_calls'] for r in runs['store']], '{:.0f}')} per try); task CPU per "
                f"store call (execution API in-process): {median_spread(extra_ms, '{:.2f}')} ms; wall with the store "
                f"{median_spread([r['wall'] for r in runs['store']], '{:.1f}')} s, hidden "
                f"{median_spread([r['wall'] for r in runs['hidden']], '{:.1f}')} s",
            ],
        )
    ]
    write_rows(args.out, rows, {"runs": runs})


if __name__ == "__main__":
    main()
