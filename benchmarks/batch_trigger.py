"""Benchmark 6: one ``PhotaBatchTrigger`` watching 2,000 outstanding jobs, against 2,000 ``PhotaJobTrigger``s (what
the same wave costs the triggerer as mapped deferrable tasks), in one event loop each.

The approach of benchmark 2 (``trigger_scale``): one emulator process serves both sides; each run is a fresh Python
process (``--child``) whose CPU time is its own; a ticker coroutine sleeps 10 ms and records how late it wakes up
(event-loop lag, which every other trigger of the triggerer would suffer); the emulator's own request log is the
count of what was sent. The jobs never finish (the emulator's job time is huge), so every job stays outstanding for
the whole window. The two sides alternate.

* GETs per outstanding job per poll interval: per job, its GETs in the window minus one, over the time between its
  first and last GET in poll intervals; 1.0 means exactly one GET per interval. The smallest gap between two GETs of
  one job, in poll intervals, shows that no job was ever asked twice within an interval.
* event-loop lag p99 of the batch trigger, with the single triggers' as the counterpart.
* client CPU per GET, batch / single.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks._common import (
    API_KEY,
    API_PREFIX,
    Row,
    child_env,
    emulator,
    emulator_requests,
    ensure_airflow_env,
    median_spread,
    percentile,
    phota_connection,
    run_child,
    verdict,
    write_rows,
)
from benchmarks.trigger_scale import lag_ticker

JOBS = 2000
POLL_INTERVAL = 5.0  # the operators' default
WINDOW = 30.0
REPETITIONS = 2
GOAL_LAG_P99_MS = 20.0
STEADY_AFTER = 5.0


def submit_jobs(base_url: str, count: int) -> list[str]:
    """``count`` async /generate jobs (they never finish: the emulator's job time is huge), submitted concurrently."""
    from concurrent.futures import ThreadPoolExecutor

    import requests

    def submit(chunk: range) -> list[str]:
        with requests.Session() as session:
            ids = []
            for index in chunk:
                body = {
                    "prompt": f"campaign row {index}",
                    "async": True,
                    "response_mode": "urls",
                    "client_request_id": f"bench-batch-{index}",
                }
                response = session.post(
                    f"{base_url}{API_PREFIX}/generate", json=body, headers={"X-API-Key": API_KEY}, timeout=30
                )
                response.raise_for_status()
                ids.append(response.json()["job_id"])
            return ids

    chunks = [range(start, min(count, start + 250)) for start in range(0, count, 250)]
    with ThreadPoolExecutor(4) as pool:
        return [job_id for ids in pool.map(submit, chunks) for job_id in ids]


# --- one run (child process) -------------------------------------------------------------------------------------


async def _consume(trigger: Any, delay: float = 0.0) -> None:
    await asyncio.sleep(delay)
    async for _event in trigger.run():
        return


async def _run(variant: str, ids: list[str], window: float, interval: float) -> dict[str, Any]:
    import airflow_provider_phota.hooks.phota
    import airflow_provider_phota.triggers.batch
    import airflow_provider_phota.triggers.phota  # noqa: F401  # imports are not part of the measured cost
    from airflow_provider_phota.triggers.batch import PhotaBatchTrigger
    from airflow_provider_phota.triggers.phota import PhotaJobTrigger

    lags: list[tuple[float, float]] = []
    stop = asyncio.Event()
    ticker = asyncio.create_task(lag_ticker(lags, stop))
    deadline = time.time() + window + 600  # never reached: the window ends by cancellation
    cpu_start, start = time.process_time(), time.monotonic()
    if variant == "batch":
        tasks = [asyncio.create_task(_consume(PhotaBatchTrigger(ids, "phota_default", interval, deadline)))]
    else:  # staggered over the first second, as a triggerer picks deferred tasks up
        tasks = [
            asyncio.create_task(_consume(PhotaJobTrigger(job_id, "phota_default", interval, deadline), i / len(ids)))
            for i, job_id in enumerate(ids)
        ]
    await asyncio.sleep(window)
    end, cpu = time.monotonic(), time.process_time() - cpu_start
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await ticker
    return {
        "variant": variant,
        "start": start,
        "end": end,
        "cpu": cpu,
        "lags": [lag for _when, lag in lags],
        "steady_lags": [lag for when, lag in lags if when - start >= STEADY_AFTER],
    }


def child(args: argparse.Namespace) -> None:
    ids = json.loads(Path(args.ids).read_text())
    Path(args.out).write_text(json.dumps(asyncio.run(_run(args.child, ids, args.window, args.interval))))


# --- the benchmark (parent process) --------------------------------------------------------------------------------


def _count(log: list[dict[str, Any]], ids: set[str], start: float, end: float, interval: float) -> dict[str, Any]:
    """Per job: GETs per poll interval and the smallest gap between two of its GETs (in intervals)."""
    times: dict[str, list[float]] = {}
    other = 0
    for entry in log:
        if not start <= entry["time"] <= end:
            continue
        job_id = entry["path"].rsplit("/", 1)[-1]
        if entry["method"] == "GET" and job_id in ids:
            times.setdefault(job_id, []).append(entry["time"])
        else:
            other += 1
    rates, gaps = [], []
    per_job = [len(stamps) for stamps in times.values()]
    for stamps in times.values():
        stamps.sort()
        if len(stamps) >= 2:
            rates.append((len(stamps) - 1) / ((stamps[-1] - stamps[0]) / interval))
            gaps.append(min(b - a for a, b in itertools.pairwise(stamps)) / interval)
    return {
        "gets": sum(per_job),
        "rounds": max(per_job, default=0),
        "fewest": min(per_job, default=0),
        "jobs_seen": len(times),
        "rate_median": statistics.median(rates) if rates else float("nan"),
        "rate_max": max(rates) if rates else float("nan"),
        "min_gap": min(gaps) if gaps else float("nan"),
        "other": other,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--child", choices=("batch", "single"))
    parser.add_argument("--ids")
    parser.add_argument("--jobs", type=int, default=JOBS)
    parser.add_argument("--interval", type=float, default=POLL_INTERVAL)
    parser.add_argument("--window", type=float, default=WINDOW)
    parser.add_argument("--repetitions", type=int, default=REPETITIONS)
    parser.add_argument("--log-dir", default=None)
    args = parser.parse_args()
    ensure_airflow_env()
    if args.child:
        child(args)
        return
    log_dir = Path(args.log_dir) if args.log_dir else None
    child_log = log_dir / "batch_trigger-children.log" if log_dir else None
    runs: list[dict[str, Any]] = []
    with emulator(job_seconds=1e9, log_path=log_dir / "batch_trigger-emulator.log" if log_dir else None) as (
        base_url,
        _pid,
    ):
        ids = submit_jobs(base_url, args.jobs)
        ids_file = Path(os.environ["AIRFLOW_HOME"]) / "bench-batch-job-ids.json"
        ids_file.write_text(json.dumps(ids))
        env = child_env(AIRFLOW_CONN_PHOTA_DEFAULT=phota_connection(base_url))
        common = ["--ids", str(ids_file), "--window", str(args.window), "--interval", str(args.interval)]
        seen = len(emulator_requests(base_url))
        for rep in range(args.repetitions):
            for variant in ("batch", "single") if rep % 2 == 0 else ("single", "batch"):
                result = run_child("batch_trigger", "--child", variant, *common, env=env, log_path=child_log)
                log = emulator_requests(base_url)
                result.update(_count(log[seen:], set(ids), result["start"], result["end"], args.interval))
                seen = len(log)
                runs.append(result)
    rows = _rows(runs, args.jobs, args.interval, args.window)
    for run in runs:
        run["lag_p50"], run["lag_p99"], run["lag_max"] = (percentile(run["lags"], q) for q in (50, 99, 100))
        run.pop("lags")
        run.pop("steady_lags")
    write_rows(args.out, rows, {"runs": runs})


def _rows(runs: list[dict[str, Any]], jobs: int, interval: float, window: float) -> list[Row]:
    batch = [run for run in runs if run["variant"] == "batch"]
    single = [run for run in runs if run["variant"] == "single"]
    name = (
        f"6. Batch trigger ({jobs} outstanding jobs in ONE PhotaBatchTrigger, {interval:.0f} s polls, {window:.0f} s)"
    )
    rate = [run["rate_median"] for run in batch]
    rate_max = [run["rate_max"] for run in batch]
    gap = [run["min_gap"] for run in batch]
    lag99 = [percentile(run["lags"], 99) * 1000 for run in batch]
    single_lag99 = [percentile(run["lags"], 99) * 1000 for run in single]
    steady99 = [percentile(run["steady_lags"], 99) * 1000 for run in batch]
    lag_max = [max(run["lags"]) * 1000 for run in batch]
    single_max = [max(run["lags"]) * 1000 for run in single]
    cpu_per_get = [run["cpu"] / max(1, run["gets"]) * 1e3 for run in batch]
    single_cpu_per_get = [run["cpu"] / max(1, run["gets"]) * 1e3 for run in single]
    cpu_ratio = [
        b["cpu"] / max(1, b["gets"]) / (s["cpu"] / max(1, s["gets"])) for b, s in zip(batch, single, strict=True)
    ]
    per_round = [run["gets"] / (jobs * max(1, run["rounds"])) for run in batch]
    # Every job asked in every round exactly once, and each job's own rate one GET per interval (within 1 %: the
    # emulator timestamps a request when it has answered it, so queueing on a busy machine moves single GETs).
    rate_ok = all(run["fewest"] == run["rounds"] == run["gets"] / jobs for run in batch) and all(
        abs(value - 1.0) <= 0.01 for value in rate
    )
    return [
        Row(
            f"{name}: GETs per outstanding job per poll interval",
            f"{median_spread(per_round, '{:.3f}')} per job per round "
            f"({statistics.median(run['gets'] for run in batch):.0f} GETs, "
            f"{statistics.median(run['rounds'] for run in batch):.0f} rounds); each job's own rate "
            f"{median_spread(rate, '{:.3f}')}",
            "1.0",
            f"{jobs} PhotaJobTriggers: each job's own rate "
            f"{median_spread([run['rate_median'] for run in single], '{:.3f}')}",
            verdict(rate_ok),
            [
                "the trigger never asks a job twice within poll_interval (tests/triggers/test_batch_trigger.py checks "
                "it at the client); at the emulator, which timestamps a request when it has answered it, the "
                f"smallest gap between two GETs of one job was {min(gap):.2f} intervals and the worst job's rate "
                f"{max(rate_max):.3f}: queueing on this busy machine",
                f"jobs seen per run: {sorted({run['jobs_seen'] for run in batch})}; other requests during the runs: "
                f"{sum(run['other'] for run in runs)}",
            ],
        ),
        Row(
            f"{name}: event-loop lag p99",
            f"{median_spread(lag99, '{:.1f}')} ms (max {statistics.median(lag_max):.0f} ms)",
            f"<= {GOAL_LAG_P99_MS:.0f} ms",
            f"{jobs} PhotaJobTriggers: p99 {median_spread(single_lag99, '{:.1f}')} ms, max "
            f"{statistics.median(single_max):.0f} ms",
            verdict(statistics.median(lag99) <= GOAL_LAG_P99_MS),
            [f"steady state (after the first {STEADY_AFTER:.0f} s): batch p99 {median_spread(steady99, '{:.1f}')} ms"],
        ),
        Row(
            f"{name}: client CPU per GET, batch / single triggers",
            f"{median_spread(cpu_ratio)}x",
            "none (informational)",
            f"batch {median_spread(cpu_per_get)} ms, single {median_spread(single_cpu_per_get)} ms per GET",
            "info",
        ),
    ]


if __name__ == "__main__":
    main()
