"""The in-process handle: the emulator's HTTP server on a background thread with its own event loop, and the
methods tests use to steer it (clock, faults, credit, outcomes) and to read what it saw (requests, ledger, jobs)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import fnmatch
import secrets
import threading
from collections.abc import Mapping
from typing import cast

from aiohttp import web

from airflow_provider_phota.testing.emulator.app import EmulatorApp
from airflow_provider_phota.testing.emulator.records import (
    CallbackDelivery,
    Charge,
    Download,
    Fault,
    JobView,
    ProfileView,
    RecordedRequest,
)
from airflow_provider_phota.testing.emulator.state import IDEMPOTENCY_SECONDS, EmulatorState


class PhotaEmulator:
    """The emulator as a context manager: a real HTTP server on a background thread, plus test helpers.

    :param api_key: the key clients must send (``X-API-Key``).
    :param training_seconds: how long a profile trains, on the emulator clock.
    :param job_seconds: how long an async job runs, on the emulator clock.
    :param host: the interface to bind.
    :param port: the port to bind; 0 picks a free one (read it back from ``port`` / ``base_url``).
    :param deliver_callbacks_over_http: test-only: POST ``https://`` loopback callback URLs over plain http (so a
        test's receiver needs no certificate). Callbacks go only to loopback receivers either way; each delivery
        (signed with ``webhook_secret``) is recorded in ``callbacks``.
    :param signing_key: the key that signs download URLs (random by default; fix it to keep URLs valid across
        restarts).
    :param idempotency_seconds: how long a ``client_request_id`` is remembered (api-decisions D4: 24 h); shorten
        it to test what a resubmit does after the window.
    """

    def __init__(
        self,
        api_key: str = "test-key",
        *,
        training_seconds: float = 2.0,
        job_seconds: float = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
        deliver_callbacks_over_http: bool = False,
        signing_key: str | None = None,
        idempotency_seconds: float = IDEMPOTENCY_SECONDS,
    ) -> None:
        self.host = host
        self.port = port
        self._state = EmulatorState(
            api_key=api_key,
            training_seconds=training_seconds,
            job_seconds=job_seconds,
            signing_key=signing_key or secrets.token_hex(32),
            idempotency_seconds=idempotency_seconds,
        )
        self._app = EmulatorApp(self._state, deliver_callbacks_over_http=deliver_callbacks_over_http)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # lifecycle
    def start(self) -> PhotaEmulator:
        if self._thread is not None:
            return self
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._serve, args=(ready,), name="phota-emulator", daemon=True)
        self._thread.start()
        try:
            ready.result(timeout=30)
        except BaseException:
            self._thread.join(timeout=5)
            self._thread = None
            raise
        return self

    def _serve(self, ready: concurrent.futures.Future[None]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._bind())
        except BaseException as error:
            ready.set_exception(error)
            loop.close()
            return
        ready.set_result(None)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _bind(self) -> None:
        self._runner = web.AppRunner(self._app.build(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024, reuse_address=True)
        await site.start()
        server = cast(asyncio.base_events.Server, site._server)  # the only way to read the bound port
        self.port = server.sockets[0].getsockname()[1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        self._app.media.base_url = f"http://{host}:{self.port}"

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        loop = self._loop
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout=30)
        self._thread = None
        self._loop = None
        self._runner = None

    def __enter__(self) -> PhotaEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # identity
    @property
    def base_url(self) -> str:
        return self._app.base_url

    @property
    def api_key(self) -> str:
        return self._state.api_key

    @property
    def webhook_secret(self) -> str:
        return self._state.webhook_secret

    @property
    def training_seconds(self) -> float:
        return self._state.training_seconds

    @property
    def job_seconds(self) -> float:
        return self._state.job_seconds

    @property
    def idempotency_seconds(self) -> float:
        return self._state.idempotency_seconds

    # state control
    def reset(self) -> None:
        self._state.reset()

    def advance(self, seconds: float) -> None:
        self._state.advance(seconds)

    def inject_fault(
        self,
        path_glob: str,
        *,
        status: int | None = None,
        count: int = 1,
        retry_after: float | None = None,
        delay: float | None = None,
        drop: bool = False,
        malformed: bool = False,
        after: bool = False,
        method: str | None = None,
    ) -> None:
        self._state.add_fault(Fault(path_glob, status, count, retry_after, delay, drop, malformed, after, method))

    def clear_faults(self) -> None:
        self._state.clear_faults()

    def set_credit(self, usd: float | None) -> None:
        self._state.set_credit(usd)

    def set_profile_outcome(self, profile_id: str, status: str = "ERROR", message: str = "") -> None:
        self._state.set_profile_outcome(profile_id, status, message)

    def fail_next_jobs(self, count: int = 1) -> None:
        """The next ``count`` new async jobs end FAILED with ``JOB_FAILED`` (a retryable failure), refunded like
        any failed job. A resubmit that returns an existing job does not count. Unlike the prompt marker, the
        request stays the same, so a test can show what a retry of the same request does after a failed job."""
        self._state.fail_next_jobs(count)

    def profile_status(self, profile_id: str) -> str:
        return self._state.profile_state(self._state.profile(profile_id))[0].value

    # observation
    @property
    def requests(self) -> list[RecordedRequest]:
        with self._state.lock:
            return list(self._state.requests)

    def requests_to(self, path_glob: str, method: str | None = None) -> list[RecordedRequest]:
        return [
            entry
            for entry in self.requests
            if fnmatch.fnmatchcase(entry.path, path_glob) and (method is None or entry.method == method.upper())
        ]

    @property
    def downloads(self) -> list[Download]:
        with self._state.lock:
            return list(self._state.downloads)

    @property
    def ledger(self) -> list[Charge]:
        with self._state.lock:
            return list(self._state.ledger)

    def charges(self, kind: str | None = None) -> list[Charge]:
        return [charge for charge in self.ledger if kind is None or charge.kind == kind]

    def total_charged_usd(self) -> float:
        return self._state.total_charged()

    @property
    def profiles(self) -> Mapping[str, ProfileView]:
        return self._state.profile_views()

    @property
    def jobs(self) -> Mapping[str, JobView]:
        return self._state.job_views()

    @property
    def callbacks(self) -> list[CallbackDelivery]:
        with self._state.lock:
            return list(self._state.callbacks)


# --- command line -----------------------------------------------------------------------------------------------
