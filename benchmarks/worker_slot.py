"""Benchmark 5: how long a deferrable async job holds a worker slot, against the job's wall time.

``dag.test()`` runs ``benchmarks/dags/phota_bench_worker_slot.py`` (a deferrable ``PhotaGenerateOperator``, 1 s
polls, one output written to storage) against the emulator (its own process, jobs of ``JOB_SECONDS``). The DAG's
operator records when ``execute`` (validate, submit, note the job, defer) and ``execute_complete`` (fetch
the job, download and write the output) start and end. Worker-slot time is the sum of the two; the job's wall time
is from the start of ``execute`` to the end of ``execute_complete``. ``dag.test()`` runs the trigger inline in the
same process, which is not worker time. Each repetition is a fresh process, so the provider's imports are paid in
``execute`` as in a real worker; ``execute_complete`` runs in that same process here, so its imports are already
warm (a real worker resuming the task would pay the hook's imports again, tens of ms).
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

JOB_SECONDS = 10.0
REPETITIONS = 2
GOAL = 0.05


def child(args: argparse.Namespace) -> None:
    run = run_bench_dag("phota_bench_worker_slot", reset_db=args.reset_db)
    phases = [json.loads(line) for line in Path(os.environ["PHOTA_BENCH_TIMINGS"]).read_text().splitlines()]
    Path(args.out).write_text(json.dumps({"state": str(getattr(run, "state", "")), "phases": phases}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--reset-db", action="store_true")
    parser.add_argument("--repetitions", type=int, default=REPETITIONS)
    parser.add_argument("--job-seconds", type=float, default=JOB_SECONDS)
    parser.add_argument("--log-dir", default=None)
    args = parser.parse_args()
    ensure_airflow_env()
    if args.child:
        child(args)
        return
    log_dir = Path(args.log_dir) if args.log_dir else None
    runs: list[dict[str, Any]] = []
    emu_log = log_dir / "worker_slot-emulator.log" if log_dir else None
    with emulator(job_seconds=args.job_seconds, log_path=emu_log) as (base_url, _pid):
        for rep in range(args.repetitions):
            work = Path(tempfile.mkdtemp(prefix="phota-bench-slot-"))
            env = child_env(
                AIRFLOW_CONN_PHOTA_DEFAULT=phota_connection(base_url),
                AIRFLOW__CORE__UNIT_TEST_MODE="True",
                PHOTA_BENCH_TIMINGS=str(work / "timings.jsonl"),
                PHOTA_BENCH_OUTPUT=str(work / "out"),
            )
            extra = ["--reset-db"] if rep == 0 else []
            log_path = log_dir / "worker_slot-children.log" if log_dir else None
            result = run_child("worker_slot", "--child", *extra, env=env, log_path=log_path)
            phases = {p["phase"]: p for p in result["phases"]}
            if set(phases) != {"execute", "execute_complete"}:
                raise RuntimeError(f"the deferrable task did not defer and resume: {result}")
            worker = sum(p["end"] - p["start"] for p in phases.values())
            wall = phases["execute_complete"]["end"] - phases["execute"]["start"]
            outputs = sorted(p.name for p in (work / "out").glob("*")) if (work / "out").exists() else []
            runs.append({**result, "worker": worker, "wall": wall, "fraction": worker / wall, "outputs": outputs})
    fractions = [run["fraction"] for run in runs]
    execute = [run["phases"][0]["end"] - run["phases"][0]["start"] for run in runs]
    complete = [run["phases"][1]["end"] - run["phases"][1]["start"] for run in runs]
    rows = [
        Row(
            f"5. Worker-slot time: deferrable async job ({args.job_seconds:.0f} s emulator job, 1 s polls), "
            "worker time / job wall time",
            f"{median_spread([f * 100 for f in fractions], '{:.1f}')} %",
            f"<= {GOAL * 100:.0f} %",
            "a non-deferrable (polling) operator holds the slot for 100 %",
            verdict(statistics.median(fractions) <= GOAL),
            [
                "execute (validate, submit, note the job in the manifest, defer; first import of the hook): "
                f"{median_spread(execute, '{:.2f}')} s; "
                f"execute_complete (get job, download, write): {median_spread(complete, '{:.2f}')} s; "
                f"job wall time {median_spread([run['wall'] for run in runs], '{:.1f}')} s",
            ],
        )
    ]
    write_rows(args.out, rows, {"runs": runs})


if __name__ == "__main__":
    main()
