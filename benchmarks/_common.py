"""Shared by every benchmark: the Airflow environment, servers in their own processes, and statistics.

Each benchmark runs as its own Python process (``python -m benchmarks.<name> RESULT.json``) started by the runner,
so CPU time, memory and imported modules of one benchmark never leak into another. Servers (the emulator, the
image server) run as further processes, so their CPU is never counted as the client's.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
API_KEY = "bench-key-0123456789abcdef"  # long enough that Airflow's secrets masker takes it without a warning
API_PREFIX = "/v1/phota"


@dataclass
class Row:
    """One line of the results table."""

    benchmark: str
    measured: str
    goal: str
    counterpart: str
    verdict: str  # "met", "missed" or "info"
    notes: list[str] = field(default_factory=list)


def verdict(ok: bool) -> str:
    return "met" if ok else "missed"


def write_rows(path: str, rows: Sequence[Row], details: dict[str, Any] | None = None) -> None:
    """A benchmark's output for the runner: its rows plus raw figures (kept in the JSON, not in the table)."""
    Path(path).write_text(json.dumps({"rows": [asdict(row) for row in rows], "details": details or {}}, indent=1))


def median_spread(values: Sequence[float], fmt: str = "{:.2f}") -> str:
    """``median (min-max, n=N)``: the spread is the whole range over the repeated runs."""
    med = statistics.median(values)
    return f"{fmt.format(med)} ({fmt.format(min(values))}-{fmt.format(max(values))}, n={len(values)})"


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a benchmark process: the runner's Airflow home and bytecode writing allowed.

    The environment this project runs in sets ``PYTHONDONTWRITEBYTECODE=1``; without ``.pyc`` files every
    ``import airflow`` costs seconds more, so it is removed for every process the benchmarks start.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(extra)
    return env


def phota_connection(base_url: str, api_key: str = API_KEY) -> str:
    return json.dumps({"conn_type": "phota", "host": base_url, "password": api_key})


def run_bench_dag(name: str, *, reset_db: bool) -> Any:
    """``dag.test()`` of the DAG ``dag`` in ``benchmarks/dags/<name>.py`` (after ``resetdb`` when asked); the run."""
    import importlib.util

    if reset_db:
        from airflow.utils.db import resetdb

        resetdb()
    spec = importlib.util.spec_from_file_location(name, BENCH_DIR / "dags" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag.test()


def ensure_airflow_env() -> None:
    """Benchmarks started on their own (not by the runner) still get a private Airflow home."""
    if "AIRFLOW_HOME" not in os.environ:
        import tempfile

        home = tempfile.mkdtemp(prefix="phota-bench-airflow-")
        os.environ["AIRFLOW_HOME"] = home
        os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{home}/airflow.db"
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(BENCH_DIR / "dags"))
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


@contextmanager
def server_process(args: Sequence[str], *, log_path: Path | None = None) -> Iterator[tuple[str, int]]:
    """Start a server as a separate process; yields its base URL (from its first line) and its pid.

    The server prints ``... listening on http://HOST:PORT`` as its first line. It is stopped with SIGTERM to its
    own pid (never by name).
    """
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, stderr=log, env=child_env(), cwd=ROOT, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError(f"server {args} did not start: {line!r}")
        yield line.strip().rsplit(" ", 1)[-1], process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log_path:
            log.close()  # type: ignore[union-attr]


@contextmanager
def emulator(
    *, training_seconds: float = 1e9, job_seconds: float = 5.0, log_path: Path | None = None
) -> Iterator[tuple[str, int]]:
    """The provider's emulator (CLI) in its own process. A huge training time keeps profiles in progress."""
    args = ["-m", "airflow_provider_phota.testing.emulator", "--port", "0", "--api-key", API_KEY]
    args += ["--training-seconds", str(training_seconds), "--job-seconds", str(job_seconds)]
    with server_process(args, log_path=log_path) as server:
        yield server


def create_profiles(base_url: str, count: int) -> list[str]:
    """``count`` profiles (fast tier, five remote URLs that the emulator does not fetch), created concurrently."""
    from concurrent.futures import ThreadPoolExecutor

    import requests

    def create(chunk: range) -> list[str]:
        with requests.Session() as session:
            ids = []
            for index in chunk:
                urls = [f"https://images.example.com/bench/{index}-{n}.jpg" for n in range(5)]
                response = session.post(
                    f"{base_url}{API_PREFIX}/profiles/add",
                    json={"image_urls": urls, "training_tier": "fast"},
                    headers={"X-API-Key": API_KEY},
                    timeout=30,
                )
                response.raise_for_status()
                ids.append(response.json()["profile_id"])
            return ids

    chunks = [range(start, min(count, start + 100)) for start in range(0, count, 100)]
    with ThreadPoolExecutor(4) as pool:
        return [pid for ids in pool.map(create, chunks) for pid in ids]


def emulator_requests(base_url: str) -> list[dict[str, Any]]:
    """The emulator's request log (admin API; the log itself is not recorded)."""
    import requests

    response = requests.get(f"{base_url}/_emulator/requests", timeout=120)
    response.raise_for_status()
    return list(response.json()["requests"])


def run_child(module: str, *args: str, env: dict[str, str] | None = None, log_path: Path | None = None) -> Any:
    """Run ``python -m benchmarks.<module> ...`` to completion and return the JSON it wrote to its result file."""
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = handle.name
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    try:
        completed = subprocess.run(
            [sys.executable, "-m", f"benchmarks.{module}", *args, "--out", out],
            env=env or child_env(),
            cwd=ROOT,
            stdout=log,
            stderr=log,
            check=False,
        )
        if completed.returncode != 0:
            raise RuntimeError(f"benchmarks.{module} {' '.join(args)} failed ({completed.returncode}); see {log_path}")
        return json.loads(Path(out).read_text())
    finally:
        if log_path:
            log.close()  # type: ignore[union-attr]
        Path(out).unlink(missing_ok=True)


def rss_bytes() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def max_rss_bytes() -> int:
    """The process's RSS high-water mark (Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def now() -> float:
    return time.monotonic()
