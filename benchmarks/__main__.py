"""Run every benchmark and print one table: ``python -m benchmarks`` (or ``bash scripts/bench``).

Each benchmark runs in its own process with a private Airflow home; their logs go to a temporary folder whose path
is printed. The table (benchmark | measured | goal | counterpart | verdict, plus notes) is printed and written to
``benchmarks/results.md`` with the machine and the date.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import BENCH_DIR, run_child

MODULES = (
    "per_call",
    "trigger_scale",
    "parse_cost",
    "output_memory",
    "worker_slot",
    "batch_trigger",
    "campaign_cost",
    "task_state_cost",
)


def machine() -> str:
    import airflow

    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"{os.cpu_count()} cores, {model}; Python {platform.python_version()}; Airflow {airflow.__version__}; "
        f"{platform.system()} {platform.release()}; load average at start {load}"
    )


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| Benchmark | Measured | Goal | Counterpart (same run) | Verdict |", "|---|---|---|---|---|"]
    for row in rows:
        cells = [row["benchmark"], row["measured"], row["goal"], row["counterpart"], row["verdict"]]
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |")
    notes = [f"- {row['benchmark'].split(':')[0]}: {note}" for row in rows for note in row["notes"]]
    return "\n".join(lines + (["", "Notes:", *notes] if notes else []))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--only", nargs="*", choices=MODULES, help="run only these benchmarks")
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="phota-bench-airflow-")
    logs = Path(tempfile.mkdtemp(prefix="phota-bench-logs-"))
    os.environ.update(
        AIRFLOW_HOME=home,
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(BENCH_DIR / "dags"),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
    )
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ.pop("AIRFLOW_CONN_PHOTA_DEFAULT", None)
    started = datetime.datetime.now(datetime.UTC)
    about = machine()
    print(f"Machine: {about}\nDate: {started:%Y-%m-%d %H:%M} UTC\nLogs: {logs}", flush=True)
    rows: list[dict[str, Any]] = []
    failures = []
    for module in args.only or MODULES:
        clock = time.monotonic()
        print(f"==> {module} ...", end=" ", flush=True)
        try:
            result = run_child(module, "--log-dir", str(logs), log_path=logs / f"{module}.log")
        except RuntimeError as error:
            print(f"FAILED: {error}", flush=True)
            failures.append(module)
            continue
        rows += result["rows"]
        print(f"{time.monotonic() - clock:.0f} s", flush=True)
    elapsed = (datetime.datetime.now(datetime.UTC) - started).total_seconds()
    text = table(rows)
    header = (
        f"Machine: {about}\n\nDate: {started:%Y-%m-%d %H:%M} UTC; total run time {elapsed:.0f} s; command: "
        "`bash scripts/bench`\n\nEvery timing is a ratio to a counterpart measured side by side in the same run "
        "(median over repeated interleaved runs, with the range and the number of runs n).\n"
    )
    print("\n" + text)
    (BENCH_DIR / "results.md").write_text(f"# Benchmark results\n\n{header}\n{text}\n")
    print(f"\nWritten to {BENCH_DIR / 'results.md'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
