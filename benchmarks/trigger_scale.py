"""Benchmark 2: 1,000 ``ProfileReadyTrigger``s in one event loop against a bare aiohttp loop doing the same polls.

One emulator process serves both sides. Each run is a fresh Python process (``--child``) so its CPU time and
memory are its own: 1,000 pollers start staggered over the first second (a triggerer picks triggers up over time;
both sides get the same stagger), poll one profile each every second, and are cancelled after the window. The two
sides alternate, starting with a different one each repetition.

* requests completed: the emulator's own request log (no client-side hook or patch), counted up to the end of the
  window; the ideal is 1,000 pollers x 20 s = 20,000.
* requests per poll: the log's requests per profile, grouped into polls (requests less than 0.5 s apart are one
  poll), so a hidden retry or an extra lookup request would show.
* CPU: ``time.process_time()`` of the client process over the window; the ratio trigger / bare is taken per pair.
* event-loop lag: a ticker coroutine sleeps 10 ms and records how late it wakes up (p50, p99, max).
* memory per poller: RSS growth over the window / 1,000 (what the process really holds), and in a separate short
  run with ``tracemalloc`` the Python heap held per poller after its first polls (tracemalloc slows the loop, so it
  is never on during the timed runs).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
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
    create_profiles,
    emulator,
    emulator_requests,
    ensure_airflow_env,
    median_spread,
    percentile,
    phota_connection,
    rss_bytes,
    run_child,
    verdict,
    write_rows,
)

POLLERS = 1000
WINDOW = 20.0
REPETITIONS = 2
GOAL_MEMORY_KB = 25.0
GOAL_CPU_RATIO = 1.2
GOAL_LAG_P99_MS = 20.0
STEADY_AFTER = 5.0  # seconds; after the start-up (connection lookups, first polls) for the steady-state figures


# --- one run (child process) -------------------------------------------------------------------------------------


async def lag_ticker(lags: list[tuple[float, float]], stop: asyncio.Event) -> None:
    """How late a 10 ms sleep wakes up: the delay every coroutine in this loop suffers; (when, lag) pairs."""
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(0.01)
        lags.append((time.monotonic(), time.perf_counter() - started - 0.01))


async def _trigger_poller(index: int, pollers: int, profile_id: str, deadline: float) -> None:
    from airflow_provider_phota.triggers.phota import ProfileReadyTrigger

    await asyncio.sleep(index / pollers)
    trigger = ProfileReadyTrigger(profile_id, "phota_default", poll_interval=1.0, deadline=deadline)
    async for _event in trigger.run():
        return


async def _bare_poller(index: int, pollers: int, session: Any, url: str, polls: list[int]) -> None:
    """What the trigger does, minus the provider: GET, read the JSON, sleep one second, on one shared session."""
    await asyncio.sleep(index / pollers)
    headers = {"X-API-Key": API_KEY}
    while True:
        async with session.get(url, headers=headers) as response:
            response.raise_for_status()
            await response.json()
        polls[0] += 1
        await asyncio.sleep(1.0)


async def _run(variant: str, base_url: str, ids: list[str], window: float, traced: bool) -> dict[str, Any]:
    import aiohttp

    import airflow_provider_phota.hooks.phota
    import airflow_provider_phota.triggers.phota  # noqa: F401  # imports are not part of the per-poller cost

    if traced:
        import tracemalloc

        tracemalloc.start()
    gc.collect()
    rss_before = rss_bytes()
    traced_before = _traced()
    session = aiohttp.ClientSession() if variant == "bare" else None
    polls = [0]
    lags: list[tuple[float, float]] = []
    stop = asyncio.Event()
    ticker = asyncio.create_task(lag_ticker(lags, stop))
    deadline = time.time() + window + 60  # never reached: the window ends by cancellation
    cpu_start, start = time.process_time(), time.monotonic()
    if variant == "trigger":
        tasks = [asyncio.create_task(_trigger_poller(i, len(ids), pid, deadline)) for i, pid in enumerate(ids)]
    else:
        url = f"{base_url}{API_PREFIX}/profiles/{{}}/status"
        tasks = [
            asyncio.create_task(_bare_poller(i, len(ids), session, url.format(pid), polls)) for i, pid in enumerate(ids)
        ]
    rss_peak = rss_before
    traced_held = 0
    while (elapsed := time.monotonic() - start) < window:
        await asyncio.sleep(min(1.0, window - elapsed))
        rss_peak = max(rss_peak, rss_bytes())
    end, cpu = time.monotonic(), time.process_time() - cpu_start
    if traced:
        traced_held = _traced() - traced_before
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await ticker
    if session is not None:
        await session.close()
    return {
        "variant": variant,
        "start": start,
        "end": end,
        "cpu": cpu,
        "lags": [lag for _when, lag in lags],
        "steady_lags": [lag for when, lag in lags if when - start >= STEADY_AFTER],
        "rss_growth": rss_peak - rss_before,
        "traced_held": traced_held,
        "bare_polls": polls[0],
    }


def _traced() -> int:
    import tracemalloc

    return tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0


def child(args: argparse.Namespace) -> None:
    ids = json.loads(Path(args.ids).read_text())
    result = asyncio.run(_run(args.child, args.base_url, ids, args.window, args.traced))
    Path(args.out).write_text(json.dumps(result))


# --- the benchmark (parent process) --------------------------------------------------------------------------------


def _count(log: list[dict[str, Any]], ids: set[str], start: float, end: float) -> dict[str, float]:
    """Status requests in [start, end] per profile, and how many polls they form (gaps < 0.5 s = one poll)."""
    times: dict[str, list[float]] = {}
    other = 0
    for entry in log:
        if not start <= entry["time"] <= end:
            continue
        parts = entry["path"].split("/")
        if entry["path"].endswith("/status") and parts[-2] in ids:
            times.setdefault(parts[-2], []).append(entry["time"])
        else:
            other += 1
    requests = sum(len(t) for t in times.values())
    polls = sum(
        1 + sum(1 for a, b in zip(sorted(t), sorted(t)[1:], strict=False) if b - a >= 0.5) for t in times.values()
    )
    ok = sum(1 for entry in log if start <= entry["time"] <= end and entry["status"] == 200)
    return {"requests": requests, "ok": ok, "polls": polls, "other": other, "pollers_seen": len(times)}


def _cpu_seconds(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--child", choices=("trigger", "bare"))
    parser.add_argument("--base-url")
    parser.add_argument("--ids")
    parser.add_argument("--traced", action="store_true")
    parser.add_argument("--window", type=float, default=WINDOW)
    parser.add_argument("--pollers", type=int, default=POLLERS)
    parser.add_argument("--repetitions", type=int, default=REPETITIONS)
    parser.add_argument("--log-dir", default=None)
    args = parser.parse_args()
    ensure_airflow_env()
    if args.child:
        child(args)
        return
    log_dir = Path(args.log_dir) if args.log_dir else None
    child_log = log_dir / "trigger_scale-children.log" if log_dir else None
    with emulator(log_path=log_dir / "trigger_scale-emulator.log" if log_dir else None) as (base_url, emu_pid):
        ids = create_profiles(base_url, args.pollers)
        ids_file = Path(os.environ["AIRFLOW_HOME"]) / "bench-profile-ids.json"
        ids_file.write_text(json.dumps(ids))
        env = child_env(AIRFLOW_CONN_PHOTA_DEFAULT=phota_connection(base_url))
        common = ["--base-url", base_url, "--ids", str(ids_file), "--pollers", str(args.pollers)]
        runs: list[dict[str, Any]] = []
        seen = len(emulator_requests(base_url))
        plan = [("trigger", "bare") if rep % 2 == 0 else ("bare", "trigger") for rep in range(args.repetitions)]
        plan.append(("trigger", "bare"))  # the short tracemalloc pair
        for rep, pair in enumerate(plan):
            traced = rep == len(plan) - 1
            for variant in pair:
                extra = ["--traced", "--window", "8"] if traced else ["--window", str(args.window)]
                emu_cpu = _cpu_seconds(emu_pid)
                result = run_child("trigger_scale", "--child", variant, *common, *extra, env=env, log_path=child_log)
                result["emulator_cpu"] = _cpu_seconds(emu_pid) - emu_cpu
                log = emulator_requests(base_url)
                result.update(_count(log[seen:], set(ids), result["start"], result["end"]))
                seen = len(log)
                result["traced"] = traced
                runs.append(result)
    rows = _rows(runs, args.pollers, args.window)
    for run in runs:
        run["lag_p50"], run["lag_p99"], run["lag_max"] = (percentile(run["lags"], q) for q in (50, 99, 100))
        run.pop("lags")
        run.pop("steady_lags")
    write_rows(args.out, rows, {"runs": runs})


def _rows(runs: list[dict[str, Any]], pollers: int, window: float) -> list[Row]:
    timed = [run for run in runs if not run["traced"]]
    trig = [run for run in timed if run["variant"] == "trigger"]
    bare = [run for run in timed if run["variant"] == "bare"]
    traced = {run["variant"]: run for run in runs if run["traced"]}
    ideal = pollers * int(window)
    # CPU for the same polls: CPU seconds per completed request, trigger over bare, per pair of runs.
    cpu_ratio = [(t["cpu"] / t["ok"]) / (b["cpu"] / b["ok"]) for t, b in zip(trig, bare, strict=True)]
    completed = [run["ok"] / ideal for run in trig]
    bare_completed = [run["ok"] / ideal for run in bare]
    per_poll = [run["requests"] / run["polls"] for run in trig]
    bare_per_poll = [run["requests"] / max(1, run["polls"]) for run in bare]
    lag99 = [percentile(run["lags"], 99) * 1000 for run in trig]
    bare_lag99 = [percentile(run["lags"], 99) * 1000 for run in bare]
    lag_max = [max(run["lags"]) * 1000 for run in trig]
    bare_lag_max = [max(run["lags"]) * 1000 for run in bare]
    steady99 = [percentile(run["steady_lags"], 99) * 1000 for run in trig]
    bare_steady99 = [percentile(run["steady_lags"], 99) * 1000 for run in bare]
    lag50 = [percentile(run["lags"], 50) * 1000 for run in trig]
    rss_kb = [run["rss_growth"] / pollers / 1024 for run in trig]
    bare_rss_kb = [run["rss_growth"] / pollers / 1024 for run in bare]
    heap_kb = traced["trigger"]["traced_held"] / pollers / 1024
    bare_heap_kb = traced["bare"]["traced_held"] / pollers / 1024
    emu_util = [run["emulator_cpu"] / window for run in timed]
    name = f"2. Trigger scale ({pollers} ProfileReadyTriggers, 1 s polls, {window:.0f} s)"
    server_note = (
        f"emulator CPU during the runs: {median_spread(emu_util)} cores of 2 (a saturated server shows as "
        "requests completed below the ideal on both sides)"
    )
    return [
        Row(
            f"{name}: requests completed / ideal {ideal}",
            f"{median_spread(completed)} ({statistics.median(run['ok'] for run in trig):.0f} requests)",
            "as close to 1 as the server allows",
            f"bare aiohttp loop: {median_spread(bare_completed)}",
            "info",
            [server_note],
        ),
        Row(
            f"{name}: memory per trigger",
            f"{heap_kb:.1f} KB Python heap (tracemalloc); {median_spread(rss_kb, '{:.1f}')} KB RSS growth",
            f"<= {GOAL_MEMORY_KB:.0f} KB",
            f"bare poller: {bare_heap_kb:.1f} KB heap; {median_spread(bare_rss_kb, '{:.1f}')} KB RSS",
            verdict(heap_kb <= GOAL_MEMORY_KB and statistics.median(rss_kb) <= GOAL_MEMORY_KB),
        ),
        Row(
            f"{name}: client CPU time, trigger / bare aiohttp loop",
            f"{median_spread(cpu_ratio)}x",
            f"<= {GOAL_CPU_RATIO}x",
            "bare loop, one shared ClientSession = 1x (anchor: HttpAsyncHook.run 3.0x)",
            verdict(statistics.median(cpu_ratio) <= GOAL_CPU_RATIO),
            [
                f"CPU per completed request: trigger {median_spread([r['cpu'] / r['ok'] * 1e3 for r in trig])} ms, "
                f"bare {median_spread([r['cpu'] / r['ok'] * 1e3 for r in bare])} ms; CPU seconds per window: "
                f"trigger {median_spread([r['cpu'] for r in trig])}, bare {median_spread([r['cpu'] for r in bare])}"
            ],
        ),
        Row(
            f"{name}: event-loop lag p99",
            f"{median_spread(lag99, '{:.1f}')} ms (p50 {statistics.median(lag50):.1f} ms, "
            f"max {statistics.median(lag_max):.0f} ms)",
            f"<= {GOAL_LAG_P99_MS:.0f} ms",
            f"bare loop: p99 {median_spread(bare_lag99, '{:.1f}')} ms, max {statistics.median(bare_lag_max):.0f} ms "
            "(anchor: HttpAsyncHook up to 500 ms)",
            verdict(statistics.median(lag99) <= GOAL_LAG_P99_MS),
            [
                f"steady state (after the first {STEADY_AFTER:.0f} s): trigger p99 "
                f"{median_spread(steady99, '{:.1f}')} ms, bare p99 {median_spread(bare_steady99, '{:.1f}')} ms"
            ],
        ),
        Row(
            f"{name}: requests per trigger per poll",
            f"{median_spread(per_poll, '{:.3f}')}",
            "exactly 1",
            f"bare loop: {median_spread(bare_per_poll, '{:.3f}')}",
            verdict(all(abs(value - 1.0) < 1e-9 for value in per_poll)),
            [f"non-status API requests during the trigger runs: {sum(run['other'] for run in trig)}"],
        ),
    ]


if __name__ == "__main__":
    main()
