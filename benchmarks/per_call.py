"""Benchmark 1: per-call overhead of ``PhotaHook.get_profile_status`` against a reused ``requests.Session``.

All clients call the same endpoint of the same emulator (its own process) in interleaved rounds, so machine noise
hits them alike; each round gives a calls-per-second ratio to the raw session of that round, and the table shows
the median and range of those ratios. The hook logs one INFO line per call (its task-log contract); it is measured
as configured by default (INFO, Airflow's console handler here; the task log in a worker) and with the hook's
logger at WARNING, to show what the log line costs. ``HttpHook.run`` (a hook built once, ``run()`` per call, which
builds a new ``Session`` and looks the connection up on every call) is the reference.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks._common import (
    API_KEY,
    API_PREFIX,
    Row,
    create_profiles,
    emulator,
    ensure_airflow_env,
    median_spread,
    verdict,
    write_rows,
)

ROUNDS = 40
CALLS = 30  # short interleaved blocks: a burst of load on this shared machine hits one block of each
GOAL = 0.9


def _rate(call: Callable[[], object], calls: int) -> tuple[float, float]:
    """Calls per second of wall time and of this process's CPU time."""
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        call()
    return calls / (time.perf_counter() - started), calls / max(1e-9, time.process_time() - cpu)


def measure(
    base_url: str, profile_id: str, rounds: int, calls: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    import requests
    from airflow.providers.http.hooks.http import HttpHook

    from airflow_provider_phota.hooks.phota import PhotaHook

    url = f"{base_url}{API_PREFIX}/profiles/{profile_id}/status"
    headers = {"X-API-Key": API_KEY}
    session = requests.Session()
    hook = PhotaHook("phota_default")  # built once: one connection lookup, one keep-alive session
    quiet_hook = PhotaHook("phota_default")
    http_hook = HttpHook(method="GET", http_conn_id="http_bench")
    endpoint = f"{API_PREFIX}/profiles/{profile_id}/status"
    hook_logger = logging.getLogger(hook.log.name)  # the stdlib logger behind the hook's structlog proxy

    def raw() -> object:
        response = session.get(url, headers=headers, timeout=30)
        response.raise_for_status()
        return response.json()

    clients: dict[str, Callable[[], object]] = {
        "raw": raw,
        "hook": lambda: hook.get_profile_status(profile_id),
        "hook_quiet": lambda: quiet_hook.get_profile_status(profile_id),
        "http_hook": lambda: http_hook.run(endpoint=endpoint, headers=headers).json(),
    }
    for call in clients.values():  # warm-up: imports, connection lookups, keep-alive connections
        for _ in range(20):
            call()
    rates: dict[str, list[float]] = {name: [] for name in clients}
    cpu_rates: dict[str, list[float]] = {name: [] for name in clients}
    names = list(clients)
    for index in range(rounds):
        order = names[index % len(names) :] + names[: index % len(names)]  # rotate who goes first
        for name in order:
            level = hook_logger.level
            if name == "hook_quiet":  # the same hook code with its log line below the logger's level
                hook_logger.setLevel(logging.WARNING)
            try:
                wall, cpu = _rate(clients[name], calls)
                rates[name].append(wall)
                cpu_rates[name].append(cpu)
            finally:
                hook_logger.setLevel(level)
    return rates, cpu_rates


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--calls", type=int, default=CALLS)
    parser.add_argument("--log-dir", default=None)
    args = parser.parse_args()
    ensure_airflow_env()
    log_path = Path(args.log_dir) / "per_call-emulator.log" if args.log_dir else None
    with emulator(log_path=log_path) as (base_url, _pid):
        profile_id = create_profiles(base_url, 1)[0]
        os.environ["AIRFLOW_CONN_PHOTA_DEFAULT"] = json.dumps(
            {"conn_type": "phota", "host": base_url, "password": API_KEY}
        )
        host, port = base_url.removeprefix("http://").rsplit(":", 1)
        os.environ["AIRFLOW_CONN_HTTP_BENCH"] = json.dumps(
            {"conn_type": "http", "host": host, "port": int(port), "schema": "http"}
        )
        rates, cpu_rates = measure(base_url, profile_id, args.rounds, args.calls)
    ratio = {name: [r / raw for r, raw in zip(values, rates["raw"], strict=True)] for name, values in rates.items()}
    cpu_ratio = {
        name: [r / raw for r, raw in zip(values, cpu_rates["raw"], strict=True)] for name, values in cpu_rates.items()
    }
    hook_median = sorted(ratio["hook"])[len(ratio["hook"]) // 2]
    quiet_median = sorted(ratio["hook_quiet"])[len(ratio["hook_quiet"]) // 2]
    notes = [
        f"raw requests.Session: {median_spread(rates['raw'], '{:.0f}')} calls/s on this run (scale only)",
        f"PhotaHook with its per-call INFO log line silenced (logger at WARNING): "
        f"{median_spread(ratio['hook_quiet'])}x the raw session",
        "calls per CPU-second of the client (less sensitive to other tenants): "
        f"hook {median_spread(cpu_ratio['hook'])}x, hook log off {median_spread(cpu_ratio['hook_quiet'])}x, "
        f"HttpHook.run {median_spread(cpu_ratio['http_hook'])}x the raw session",
    ]
    rows = [
        Row(
            "1. Per-call overhead: PhotaHook.get_profile_status calls/s vs a reused requests.Session",
            f"{median_spread(ratio['hook'])}x (INFO log on); {median_spread(ratio['hook_quiet'])}x (log off)",
            f">= {GOAL}x",
            f"HttpHook.run: {median_spread(ratio['http_hook'])}x (anchor 0.71x)",
            verdict(hook_median >= GOAL),
            notes,
        )
    ]
    write_rows(args.out, rows, {"rates": rates, "ratios": ratio, "cpu_ratios": cpu_ratio, "quiet_median": quiet_median})


if __name__ == "__main__":
    main()
