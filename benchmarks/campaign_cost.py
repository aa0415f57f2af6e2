"""Benchmark 7: what a 200-row campaign costs Airflow, as mapped deferrable tasks and as one PhotaBatchOperator task,
on a real deployment.

The deployment is the integration tests' (``tests/integration/deployment_helpers.py``): ``airflow db migrate`` on
sqlite, then the API server, the scheduler (LocalExecutor), the triggerer and the DAG processor as processes in a
private AIRFLOW_HOME, on free loopback ports; the emulator runs in a process of its own (jobs of ``JOB_SECONDS``), so
its CPU is never counted. ``benchmarks/dags/campaign/phota_bench_campaign.py`` holds the two DAGs; both render the
same rows (1K JPEGs, one image each) with the same poll interval, and both write every image to disk.

* CPU: user + system seconds of every process of the deployment (the components and all their descendants:
  executor workers, task processes, the trigger runner, parsing processes), from just before the DAG run is
  triggered to just after it finished. A process that ended in the window is counted through its parent's
  ``children_*`` times (every process here is waited for by its parent). Divided by the rows: CPU per render.
* wall time: the DAG run's start to end, as Airflow records them.

The two variants run one after the other on the same deployment (alternating with more repetitions); the idle
deployment's CPU rate, measured before the first run, is given as a note: it is part of both figures.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks._common import (
    BENCH_DIR,
    ROOT,
    Row,
    emulator,
    median_spread,
    phota_connection,
    verdict,
    write_rows,
)

ROWS = 200
JOB_SECONDS = 10.0
POLL_SECONDS = 2.0
PARALLELISM = 4
REPETITIONS = 1
GOAL_CPU_RATIO = 0.1
IDLE_SECONDS = 20.0
RUN_TIMEOUT = 3600.0
DAGS = BENCH_DIR / "dags" / "campaign"
VARIANTS = {"mapped": "phota_bench_campaign_mapped", "batch": "phota_bench_campaign_batch"}


def _deployment_class() -> Any:
    """The integration tests' real deployment, reused as it is."""
    sys.path.insert(0, str(ROOT / "tests" / "integration"))
    from deployment_helpers import AirflowDeployment

    return AirflowDeployment


def cpu_seconds(airflow: Any) -> float:
    """CPU seconds of every live process of the deployment, with what their ended children used."""
    import psutil

    airflow.track()
    total = 0.0
    seen: set[int] = set()
    for component in airflow.components.values():
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(component.pid)
            for process in [root, *root.children(recursive=True)]:
                if process.pid in seen:
                    continue
                seen.add(process.pid)
                with contextlib.suppress(psutil.Error):
                    times = process.cpu_times()
                    total += times.user + times.system + times.children_user + times.children_system
    return total


def _parsed(airflow: Any, dag_id: str) -> bool | None:
    import requests

    try:
        dag = airflow.api("GET", f"/dags/{dag_id}")
    except requests.HTTPError:
        return None
    return True if not dag["is_paused"] else None


def _seconds(start: str, end: str) -> float:
    return (
        datetime.fromisoformat(end.replace("Z", "+00:00")) - datetime.fromisoformat(start.replace("Z", "+00:00"))
    ).total_seconds()


def run_variant(airflow: Any, variant: str, output: Path, rows: int) -> dict[str, Any]:
    dag_id = VARIANTS[variant]
    output.mkdir(parents=True)
    cpu_before = cpu_seconds(airflow)
    clock = time.monotonic()
    run = airflow.api(
        "POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": {"output_path": str(output)}}
    )
    run_id = run["dag_run_id"]

    def finished() -> dict[str, Any] | None:
        cpu_seconds(airflow)  # keeps the process snapshot fresh (task processes come and go)
        state = airflow.dag_run(dag_id, run_id)
        return state if state["state"] in ("success", "failed") else None

    state = airflow.wait_for(f"{dag_id} to finish", finished, RUN_TIMEOUT, interval=1.0)
    cpu = cpu_seconds(airflow) - cpu_before
    images = [path for path in output.glob("*.jpg") if not path.name.startswith(".")]
    result = {
        "variant": variant,
        "state": state["state"],
        "cpu": cpu,
        "cpu_per_render": cpu / rows,
        "wall": _seconds(state["start_date"], state["end_date"]),
        "observed_wall": time.monotonic() - clock,
        "images": len(images),
    }
    if state["state"] != "success" or len(images) != rows:
        states = airflow.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=1000")["task_instances"]
        summary: dict[str, int] = {}
        for ti in states:
            summary[str(ti["state"])] = summary.get(str(ti["state"]), 0) + 1
        raise RuntimeError(f"{dag_id} ended {state['state']} with {len(images)} of {rows} images: {summary}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--job-seconds", type=float, default=JOB_SECONDS)
    parser.add_argument("--repetitions", type=int, default=REPETITIONS)
    parser.add_argument("--parallelism", type=int, default=PARALLELISM)
    parser.add_argument("--log-dir", default=None)
    args = parser.parse_args()
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # the deployment inherits it: without .pyc, imports cost seconds
    log_dir = Path(args.log_dir) if args.log_dir else None
    work = Path(tempfile.mkdtemp(prefix="phota-bench-campaign-"))
    runs: list[dict[str, Any]] = []
    deployment_class = _deployment_class()
    emu_log = log_dir / "campaign_cost-emulator.log" if log_dir else None
    with emulator(job_seconds=args.job_seconds, log_path=emu_log) as (base_url, _pid):
        env = {
            "AIRFLOW_CONN_PHOTA_DEFAULT": phota_connection(base_url),
            "PHOTA_BENCH_CAMPAIGN_ROWS": str(args.rows),
            "PHOTA_BENCH_POLL_SECONDS": str(POLL_SECONDS),
        }
        airflow = deployment_class(work / "airflow-home", DAGS, env, parallelism=args.parallelism)
        try:
            airflow.start()
            airflow.wait_for("the API server", lambda: airflow.api("GET", "/monitor/health"), 300)
            airflow.wait_for("the execution API", airflow.execution_api_ready, 300)
            airflow.wait_for("a healthy deployment", airflow.healthy, 300)
            for dag_id in VARIANTS.values():
                airflow.wait_for(f"{dag_id} to be parsed", lambda dag_id=dag_id: _parsed(airflow, dag_id), 300)
            idle_before = cpu_seconds(airflow)
            time.sleep(IDLE_SECONDS)
            idle_rate = (cpu_seconds(airflow) - idle_before) / IDLE_SECONDS
            for rep in range(args.repetitions):
                for variant in ("mapped", "batch") if rep % 2 == 0 else ("batch", "mapped"):
                    runs.append(run_variant(airflow, variant, work / f"out-{variant}-{rep}", args.rows))
        finally:
            if log_dir is not None:
                with contextlib.suppress(OSError):
                    (log_dir / "campaign_cost-deployment.log").write_text(airflow.diagnostics(80))
            airflow.stop()
    write_rows(args.out, _rows(runs, args, idle_rate), {"runs": runs, "idle_cpu_rate": idle_rate})


def _rows(runs: list[dict[str, Any]], args: argparse.Namespace, idle_rate: float) -> list[Row]:
    mapped = [run for run in runs if run["variant"] == "mapped"]
    batch = [run for run in runs if run["variant"] == "batch"]
    ratio = [b["cpu_per_render"] / m["cpu_per_render"] for b, m in zip(batch, mapped, strict=True)]
    wall_ratio = [b["wall"] / m["wall"] for b, m in zip(batch, mapped, strict=True)]
    name = (
        f"7. Campaign cost on a real deployment ({args.rows} rows, {args.job_seconds:.0f} s emulator jobs, "
        f"{POLL_SECONDS:.0f} s polls, LocalExecutor parallelism {args.parallelism})"
    )
    idle_note = (
        f"idle deployment before the runs: {idle_rate:.2f} CPU-s per s (scheduler, DAG processor, triggerer, API "
        "server loops); it is inside both figures, in proportion to their wall times"
    )
    return [
        Row(
            f"{name}: Airflow CPU seconds per render, one batch task / mapped deferrable tasks",
            f"{median_spread(ratio, '{:.3f}')}x (batch {median_spread([r['cpu_per_render'] for r in batch], '{:.3f}')}"
            " CPU-s per render)",
            f"<= {GOAL_CPU_RATIO}x",
            f"mapped: {median_spread([r['cpu_per_render'] for r in mapped], '{:.2f}')} CPU-s per render "
            f"({median_spread([r['cpu'] for r in mapped], '{:.0f}')} CPU-s in all)",
            verdict(statistics.median(ratio) <= GOAL_CPU_RATIO),
            [idle_note],
        ),
        Row(
            f"{name}: wall time, batch / mapped",
            f"{median_spread(wall_ratio)}x (batch {median_spread([r['wall'] for r in batch], '{:.0f}')} s)",
            "<= 1x (no longer)",
            f"mapped: {median_spread([r['wall'] for r in mapped], '{:.0f}')} s",
            verdict(statistics.median(wall_ratio) <= 1.0),
        ),
    ]


if __name__ == "__main__":
    main()
