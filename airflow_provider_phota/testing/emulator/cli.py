"""``phota-emulator``: run the emulator in the foreground (``phota-emulator --port 8089``; ``--help`` lists the
options)."""

from __future__ import annotations

import argparse
import signal
import threading

from airflow_provider_phota import contract
from airflow_provider_phota.testing.emulator.server import PhotaEmulator
from airflow_provider_phota.testing.emulator.state import IDEMPOTENCY_SECONDS


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="phota-emulator", description="Local emulator of the Phota image API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089, help="0 picks a free port")
    parser.add_argument("--api-key", default="test-key")
    parser.add_argument("--training-seconds", type=float, default=20.0)
    parser.add_argument("--job-seconds", type=float, default=5.0)
    parser.add_argument(
        "--idempotency-seconds",
        type=float,
        default=IDEMPOTENCY_SECONDS,
        help="how long a client_request_id is remembered (default %(default)g s = 24 h)",
    )
    parser.add_argument("--realistic", action="store_true", help="real-world timings: training 1200 s, jobs 60 s")
    parser.add_argument(
        "--deliver-callbacks-over-http",
        action="store_true",
        help="test-only: POST https callbacks to loopback receivers over plain http",
    )
    args = parser.parse_args(argv)
    if args.realistic:
        args.training_seconds, args.job_seconds = 1200.0, 60.0
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the emulator in the foreground until SIGINT or SIGTERM."""
    args = _parse_args(argv)
    stop = threading.Event()

    def _request_stop(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)
    emulator = PhotaEmulator(
        args.api_key,
        training_seconds=args.training_seconds,
        job_seconds=args.job_seconds,
        host=args.host,
        port=args.port,
        deliver_callbacks_over_http=args.deliver_callbacks_over_http,
        idempotency_seconds=args.idempotency_seconds,
    )
    with emulator:
        print(f"Phota emulator listening on {emulator.base_url}", flush=True)
        print(f"  API base: {emulator.base_url}{contract.API_PREFIX}  key: {args.api_key}", flush=True)
        print(f"  training {args.training_seconds:g} s, jobs {args.job_seconds:g} s; Ctrl-C stops", flush=True)
        while not stop.wait(0.5):
            pass
    print("Phota emulator stopped", flush=True)
    return 0
