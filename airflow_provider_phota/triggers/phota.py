"""Triggers that wait for Phota on the triggerer: profile training and async image jobs.

Rules these follow, each learnt from a bug in another provider:

* fully async: the connection comes from ``aget_connection`` and requests go through the hook's aiohttp client;
  nothing blocks the event loop;
* GET only: a trigger never submits or creates anything, so running twice (HA triggerers, restarts) costs nothing;
* ``deadline`` is an absolute wall-clock time, so a trigger rebuilt after a triggerer restart keeps it;
* the status is checked once more before a timeout is reported, so a job that finished during the last sleep is
  not reported as timed out;
* exactly one event, with ``status`` in {success, failed, timeout, error} and a small JSON payload
  (:mod:`airflow_provider_phota.events`); an error event says whether a task retry can help;
* the first poll waits for a stable phase within the interval, so many waits do not poll in lock-step.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow_provider_phota._compat import AirflowNotFoundException, BaseTrigger, TriggerEvent
from airflow_provider_phota.contract import JobStatus
from airflow_provider_phota.events import EVENT_ERROR, EVENT_FAILED, EVENT_SUCCESS, EVENT_TIMEOUT
from airflow_provider_phota.exceptions import PhotaError, is_retryable
from airflow_provider_phota.hooks.phota import PhotaHook


class _Observation:
    """One poll's answer, reduced to what the loop needs."""

    __slots__ = ("api_status", "failed", "message", "succeeded")

    def __init__(self, api_status: str, *, succeeded: bool, failed: bool, message: str = "") -> None:
        self.api_status = api_status
        self.succeeded = succeeded
        self.failed = failed
        self.message = message


class _PhotaPollingTrigger(BaseTrigger):
    """Poll one resource until it is terminal or the deadline passes; subclasses say what to GET."""

    id_field: str = ""

    def __init__(self, *, resource_id: str, phota_conn_id: str, poll_interval: float, deadline: float) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.resource_id = resource_id
        self.phota_conn_id = phota_conn_id
        self.poll_interval = float(poll_interval)
        self.deadline = float(deadline)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        # The connection id, never the key: trigger kwargs are stored in the metadata database.
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                self.id_field: self.resource_id,
                "phota_conn_id": self.phota_conn_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
            },
        )

    async def _observe(self, hook: Any) -> _Observation:
        raise NotImplementedError

    def first_poll_delay(self) -> float:
        """A stable offset in ``[0, poll_interval)`` derived from the resource id."""
        digest = hashlib.blake2b(self.resource_id.encode(), digest_size=4).digest()
        return self.poll_interval * int.from_bytes(digest, "big") / 2**32

    def _event(self, status: str, api_status: str | None, message: str = "", **extra: Any) -> TriggerEvent:
        payload = {"status": status, self.id_field: self.resource_id, "api_status": api_status, "message": message}
        return TriggerEvent({**payload, **extra})  # type: ignore[no-untyped-call]

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = PhotaHook(self.phota_conn_id)
        started = time.monotonic()
        last_status: str | None = None
        last_error: str | None = None
        final_check = False
        try:
            # The task checked the status just before deferring, so the first poll can wait for this trigger's
            # phase: waits started together (a triggerer restart, a big mapped task) then poll spread over the
            # interval instead of in one burst that stalls the event loop. Never more than half the time left,
            # so there is always one look before the deadline's final re-check.
            await asyncio.sleep(min(self.first_poll_delay(), max(0.0, self.deadline - time.time()) / 2))
            while True:
                final_check = final_check or time.time() >= self.deadline
                try:
                    seen = await self._observe(hook)
                except AirflowNotFoundException as error:
                    # The connection is missing on this triggerer: as in a worker, a retry may find it.
                    yield self._event(EVENT_ERROR, last_status, f"Phota connection: {error}", retryable=True)
                    return
                except PhotaError as error:
                    if not is_retryable(error):
                        # The same outcome as the same error before deferral: a 404 or a 401 cannot heal.
                        yield self._event(EVENT_ERROR, last_status, str(error), retryable=error.retry_task)
                        return
                    # The hook already retried with backoff; keep waiting until the deadline.
                    last_error = str(error)
                    self.log.warning(
                        "Phota %s %s: transient error, still waiting: %s", self.id_field, self.resource_id, error
                    )
                else:
                    last_error = None
                    if seen.api_status != last_status:
                        elapsed = time.monotonic() - started
                        self.log.info(
                            "Phota %s %s is %s after %.0f s", self.id_field, self.resource_id, seen.api_status, elapsed
                        )
                        last_status = seen.api_status
                    if seen.succeeded:
                        yield self._event(EVENT_SUCCESS, seen.api_status, seen.message)
                        return
                    if seen.failed:
                        yield self._event(EVENT_FAILED, seen.api_status, seen.message)
                        return
                if final_check:
                    message = f"{self.id_field} {self.resource_id} still {last_status} at the deadline"
                    if last_error:
                        message += f" (last error: {last_error})"
                    yield self._event(EVENT_TIMEOUT, last_status, message)
                    return
                # Sleep until the next poll, or until the deadline for the final re-check.
                await asyncio.sleep(max(0.0, min(self.poll_interval, self.deadline - time.time())))
        finally:
            await hook.aclose()


class ProfileReadyTrigger(_PhotaPollingTrigger):
    """Wait until a profile's training is READY (success), or ERROR/INACTIVE (failed).

    :param profile_id: the profile to watch.
    :param phota_conn_id: the Airflow connection (its id only; the key is looked up on the triggerer).
    :param poll_interval: seconds between status checks (the service suggests 10-30 s).
    :param deadline: absolute time (``time.time()`` seconds) after which a timeout event is sent.
    """

    id_field = "profile_id"

    def __init__(self, profile_id: str, phota_conn_id: str, poll_interval: float, deadline: float) -> None:
        super().__init__(
            resource_id=profile_id, phota_conn_id=phota_conn_id, poll_interval=poll_interval, deadline=deadline
        )

    @property
    def profile_id(self) -> str:
        return self.resource_id

    async def _observe(self, hook: Any) -> _Observation:
        state = await hook.aget_profile_status(self.resource_id)
        return _Observation(state.status, succeeded=state.is_ready, failed=state.is_failed, message=state.message)


class PhotaJobTrigger(_PhotaPollingTrigger):
    """Wait until an async image job is SUCCEEDED (success) or FAILED (failed).

    The event carries the job id and, for a failure, the job's error message. The download URLs are not put in the
    event: the operator fetches the job once more on resume, which is the authoritative answer.

    :param job_id: the job to watch.
    :param phota_conn_id: the Airflow connection (its id only; the key is looked up on the triggerer).
    :param poll_interval: seconds between status checks.
    :param deadline: absolute time (``time.time()`` seconds) after which a timeout event is sent.
    """

    id_field = "job_id"

    def __init__(self, job_id: str, phota_conn_id: str, poll_interval: float, deadline: float) -> None:
        super().__init__(
            resource_id=job_id, phota_conn_id=phota_conn_id, poll_interval=poll_interval, deadline=deadline
        )

    @property
    def job_id(self) -> str:
        return self.resource_id

    async def _observe(self, hook: Any) -> _Observation:
        state = await hook.aget_job(self.resource_id)
        failed = state.status == JobStatus.FAILED
        message = f"{state.error_type}: {state.error_message or 'no message'}" if failed else ""
        return _Observation(state.status, succeeded=state.succeeded, failed=failed, message=message)
