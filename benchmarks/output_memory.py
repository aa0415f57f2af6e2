"""Benchmark 4: peak memory while four 4K outputs are fetched and written to storage.

Each case runs in a fresh process (``--case``) that has already imported everything and looked its connection
up; only the request and the writes are measured. Two measures: ``tracemalloc`` peak over the case (Python
allocations: bytes, str, JSON objects; one process per case with tracing on) and, in a separate process without
tracing, RSS growth (``/proc/self/statm`` sampled every 2 ms by a thread, peak minus the RSS before the case).

Cases, each against the same server in the same run:

* ``phota_urls``: ``PhotaHook.generate(response_mode="urls")`` then ``PhotaHook.download`` of each URL to a
  ``file://`` ``ObjectStoragePath`` (the operator's ``output_path`` path). Goal: peak growth <= 16 MB.
* ``naive_urls``: the same with ``requests.get(url).content`` (the whole image in memory), as a counterpart.
* ``phota_bytes``: ``PhotaHook.generate(response_mode="bytes")`` then the operator's atomic write of each image.
  The hook parses bytes mode with the standard library (``json.loads`` + ``base64.b64decode``), as the naive
  client does: no goal, the row reports the peak / decoded bytes and its ratio to the naive client's, for
  information (the hook's docstring states the cost: about 4x the decoded bytes).
* ``naive_bytes``: ``requests.post(...).json()`` + ``base64.b64decode`` of each image (the anchor's 4x).

Sources: the emulator (real 4K PNGs, which its gradients compress to ~0.3 MB each) and a stand-in server with
photo-sized 24 MiB outputs (``benchmarks._image_server``), since a 4K photo as PNG is 20-30 MB.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks._common import (
    API_KEY,
    API_PREFIX,
    Row,
    child_env,
    emulator,
    ensure_airflow_env,
    phota_connection,
    run_child,
    server_process,
    verdict,
    write_rows,
)

GOAL_STREAM_MB = 16.0
CASES = ("phota_urls", "naive_urls", "phota_bytes", "naive_bytes")
LARGE_MIB = 24
MB = 1024 * 1024
REQUEST = {"prompt": "a mountain lake at dawn", "num_output_images": 4, "resolution": "4K", "aspect_ratio": "1:1"}


class RssSampler:
    """Peak RSS over a block, sampled from ``/proc/self/statm`` by a thread (the high-water mark of the whole
    process may predate the block)."""

    def __init__(self) -> None:
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * self.page

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(0.002)

    def __enter__(self) -> RssSampler:
        self.before = self.rss()
        self.peak = self.before
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def run_case(case: str, base_url: str, out_dir: Path) -> int:
    """Fetch the four outputs and write them under ``out_dir``; returns the decoded bytes written."""
    import base64

    import requests
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_phota.hooks.phota import PhotaHook
    from airflow_provider_phota.storage import atomic_write, storage_path

    folder = storage_path(str(out_dir))
    written = 0
    if case.startswith("phota"):
        hook = PhotaHook("phota_default")
        mode = "urls" if case.endswith("urls") else "bytes"
        result = hook.generate(**REQUEST, response_mode=mode)
        for index, data in enumerate(result.images):
            written += atomic_write(folder / f"out-{index}.png", [data])
        for index, url in enumerate(result.download_urls):
            written += hook.download(url, folder / f"out-{index}.png")
        return written
    session = requests.Session()
    headers = {"X-API-Key": API_KEY}
    mode = "urls" if case.endswith("urls") else "bytes"
    response = session.post(
        f"{base_url}{API_PREFIX}/generate", json={**REQUEST, "response_mode": mode}, headers=headers, timeout=600
    )
    response.raise_for_status()
    body = response.json()
    del response
    for index, url in enumerate(body["download_urls"]):
        data = session.get(url, timeout=600).content
        ObjectStoragePath(f"file://{out_dir}/out-{index}.png").write_bytes(data)
        written += len(data)
    for index, text in enumerate(body["images"]):
        data = base64.b64decode(text)
        ObjectStoragePath(f"file://{out_dir}/out-{index}.png").write_bytes(data)
        written += len(data)
    return written


def child(args: argparse.Namespace) -> None:
    import tracemalloc

    import requests  # noqa: F401  # everything is imported before the measurement
    from airflow.sdk import ObjectStoragePath  # noqa: F401

    from airflow_provider_phota.hooks.phota import PhotaHook
    from airflow_provider_phota.storage import storage_path

    hook = PhotaHook("phota_default")
    _ = hook.settings, hook.client  # the connection lookup and the session, as a task has them before its work
    out_dir = Path(tempfile.mkdtemp(prefix="phota-bench-out-"))
    storage_path(str(out_dir)).fs  # noqa: B018  # the fsspec filesystem, created once per process anyway
    gc.collect()
    result: dict[str, Any] = {"case": args.case, "method": args.method}
    try:
        if args.method == "tracemalloc":
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            result["written"] = run_case(args.case, args.base_url, out_dir)
            result["peak_growth"] = tracemalloc.get_traced_memory()[1] - before
            tracemalloc.stop()
        else:
            with RssSampler() as sampler:
                result["written"] = run_case(args.case, args.base_url, out_dir)
            result["peak_growth"] = sampler.peak - sampler.before
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    Path(args.out).write_text(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--case", choices=CASES)
    parser.add_argument("--method", choices=("tracemalloc", "rss"), default="tracemalloc")
    parser.add_argument("--base-url")
    parser.add_argument("--log-dir", default=None)
    args = parser.parse_args()
    ensure_airflow_env()
    if args.case:
        child(args)
        return
    log_dir = Path(args.log_dir) if args.log_dir else None
    child_log = log_dir / "output_memory-children.log" if log_dir else None
    results: list[dict[str, Any]] = []
    large = ["-m", "benchmarks._image_server", "--size-mib", str(LARGE_MIB)]
    with (
        emulator(job_seconds=1.0, log_path=log_dir / "output_memory-emulator.log" if log_dir else None) as emu,
        server_process(large, log_path=log_dir / "output_memory-images.log" if log_dir else None) as big,
    ):
        for source, (base_url, _pid) in (("emulator", emu), ("photo-sized", big)):
            env = child_env(AIRFLOW_CONN_PHOTA_DEFAULT=phota_connection(base_url))
            plan = [("tracemalloc", case) for case in CASES]
            if source == "photo-sized":
                plan += [("rss", "phota_urls"), ("rss", "phota_bytes")]
            else:  # the emulator renders every request's 4K images: keep its cases to the provider's two
                plan = [("tracemalloc", "phota_urls"), ("tracemalloc", "phota_bytes")]
            for method, case in plan:
                argv = ["--case", case, "--method", method, "--base-url", base_url]
                result = run_child("output_memory", *argv, env=env, log_path=child_log)
                result["source"] = source
                results.append(result)
    write_rows(args.out, _rows(results), {"results": results})


def _rows(results: list[dict[str, Any]]) -> list[Row]:
    def get(source: str, method: str, case: str) -> dict[str, Any]:
        return next(r for r in results if (r["source"], r["method"], r["case"]) == (source, method, case))

    def mb(value: float) -> str:
        return f"{value / MB:.1f} MB"

    rows = []
    big_t = {case: get("photo-sized", "tracemalloc", case) for case in CASES}
    big_r = {case: get("photo-sized", "rss", case) for case in ("phota_urls", "phota_bytes")}
    emu_t = {case: get("emulator", "tracemalloc", case) for case in ("phota_urls", "phota_bytes")}
    stream = [big_t["phota_urls"], big_r["phota_urls"], emu_t["phota_urls"]]
    rows.append(
        Row(
            "4. Output memory, urls mode: 4 x 4K outputs streamed to storage, peak growth",
            f"24 MiB photos: {mb(big_t['phota_urls']['peak_growth'])} tracemalloc, "
            f"{mb(big_r['phota_urls']['peak_growth'])} RSS; emulator PNGs "
            f"({mb(emu_t['phota_urls']['written'] / 4)} each): {mb(emu_t['phota_urls']['peak_growth'])} tracemalloc",
            f"<= {GOAL_STREAM_MB:.0f} MB whatever the image size",
            f"requests .content per URL: {mb(big_t['naive_urls']['peak_growth'])} tracemalloc (24 MiB photos)",
            verdict(max(result["peak_growth"] for result in stream) <= GOAL_STREAM_MB * MB),
        )
    )

    def ratio(result: dict[str, Any]) -> float:
        return float(result["peak_growth"]) / float(result["written"])

    naive = ratio(big_t["naive_bytes"])
    rows.append(
        Row(
            "4. Output memory, bytes mode: 4 x 4K outputs decoded from JSON and written, peak / decoded bytes",
            f"24 MiB photos: {ratio(big_t['phota_bytes']):.2f}x tracemalloc, {ratio(big_r['phota_bytes']):.2f}x RSS "
            f"({mb(big_t['phota_bytes']['written'])} decoded); emulator PNGs: {ratio(emu_t['phota_bytes']):.2f}x "
            f"tracemalloc ({mb(emu_t['phota_bytes']['written'])} decoded)",
            "none (informational; urls mode is the streaming path)",
            f"requests .json() + b64decode: {naive:.2f}x tracemalloc (anchor 4x); "
            f"hook / naive = {ratio(big_t['phota_bytes']) / naive:.2f}",
            "info",
            [
                "memory is deterministic here (one run per case and measure); the emulator's small PNGs carry "
                "fixed per-request overheads, so the photo-sized figures are the ones to read",
            ],
        )
    )
    return rows


if __name__ == "__main__":
    main()
